"""``v2gctl plan``: the local planner's schedule, what it is expected to cost (energy, wear, emissions)
and why; ``--plot FILE`` draws it. By default the plan the daemon made (``plan.json`` in its runtime
directory, the same payload as the retained MQTT ``plan``); ``--soc`` plans here instead, from the
configuration, an optional inputs file and the SoC given (the daemon is not needed)."""

from __future__ import annotations

import argparse
import math
import sys
import time
from datetime import datetime
from pathlib import Path

import msgspec
import numpy as np

from edge.ctl.common import NO_DAEMON, PROBLEM, CtlError, config_file, os_error, runtime_dir
from edge.daemon.departure import DeparturePlanner
from edge.daemon.planning import local_zone
from edge.estimation.profile import ProfileError, configured_profile, pack_energy_per_soc_wh
from edge.link.payloads import PlanPayload
from edge.planner.envelope import envelope
from edge.planner.inputs import PlanInputs, Session, build, load_file
from edge.planner.problem import PlanInputError
from edge.planner.report import plot, render, to_payload
from edge.planner.solve import PlanError, solve
from edge.settings import Settings, SettingsError, load_default
from edge.settings import load_file as load_settings

PLAN_FILE = "plan.json"


def _from_daemon(args: argparse.Namespace) -> PlanPayload:
    path = runtime_dir(args.runtime_dir) / PLAN_FILE
    try:
        return msgspec.json.decode(path.read_bytes(), type=PlanPayload)
    except FileNotFoundError:
        raise CtlError(
            f"no plan at {path}: is v2g-edged running with planner.enabled and mode schedule?", NO_DAEMON
        ) from None
    except OSError as exc:
        raise os_error(exc, path, "read") from None
    except msgspec.DecodeError as exc:
        raise CtlError(f"{path}: not a plan: {exc}") from None


def _every(text: str) -> int:
    """``--every``: a whole number ≥ 1 (the step between the schedule's printed rows)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ≥ 1")
    return value


def _settings(args: argparse.Namespace) -> Settings:
    """The configuration to plan with, said on stderr (stdout may be JSON): the file, or where there is
    none the embedded bench configuration, whose ratings and tariffs are nobody's site."""
    path = config_file(args.config)
    exists = path.exists()
    if exists:
        print(f"v2gctl plan: configuration: {path}", file=sys.stderr)
    else:
        print(
            f"v2gctl plan: no {path}: planning with the embedded bench configuration (give one with --config)",
            file=sys.stderr,
        )
    try:
        return load_settings(path) if exists else load_default()
    except SettingsError as exc:
        raise CtlError(f"configuration {path}: {exc}") from None


def _here(args: argparse.Namespace) -> PlanPayload:
    """A plan made here from the configuration, the inputs file and ``--soc``."""
    s = _settings(args)
    inv = s.inverter
    if inv is None:
        raise CtlError("the configuration has no [inverter] ratings: nothing can be planned")
    if not 0.0 <= args.soc <= 1.0:
        raise CtlError(f"--soc {args.soc!r}: give 0 … 1")
    try:
        e_per_soc = (
            args.capacity_kwh * 1000.0
            if args.capacity_kwh
            else pack_energy_per_soc_wh(
                configured_profile(s.battery.profile, s.battery.series, s.battery.parallel)
            )
        )
        inputs = load_file(Path(args.inputs)) if args.inputs else PlanInputs()
    except (ProfileError, PlanInputError) as exc:
        raise CtlError(str(exc)) from None
    zone = local_zone(s.owner.time_zone)
    now = time.time()
    departure = None
    if s.owner.departure_time is not None and s.owner.departure_soc is not None:
        owner_plan = DeparturePlanner.from_settings(s)
        if owner_plan is not None:
            departure = owner_plan.departures(datetime.fromtimestamp(now, zone))[1]
    n = round(s.planner.horizon_h * 3600.0 / s.planner.step_s)
    session = Session(args.soc, e_per_soc, inv.p_rated_charge_w, inv.p_rated_w)
    try:
        pb = build(
            s,
            session,
            inputs,
            now_unix_s=now,
            zone=zone,
            departure=departure,
            base_forecast_w=np.full(n, args.house_w),
        )
        plan = solve(pb)
    except (PlanInputError, PlanError) as exc:
        raise CtlError(str(exc)) from None
    return to_payload(plan, envelope(pb), now, departure)


def cmd_plan(args: argparse.Namespace) -> int:
    payload = _here(args) if args.soc is not None else _from_daemon(args)
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(payload)).decode())
    else:
        age = time.time() - payload.t.timestamp()
        print("\n".join(render(payload, every=args.every)))
        if args.soc is None and math.isfinite(age):
            print(f"(made {age / 60:.0f} min ago by the daemon)")
    if args.plot:
        try:
            plot(payload, Path(args.plot))
        except ImportError:
            raise CtlError("--plot needs matplotlib (pip install 'v2g-edge[plot]')") from None
        except ValueError as exc:
            raise CtlError(str(exc)) from None
        except OSError as exc:
            raise os_error(exc, args.plot, "write") from None
        print(f"plot written to {args.plot}")
    return 0 if payload.status == "planned" else PROBLEM


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "plan",
        help="the local planner's schedule, its expected cost, wear and emissions, and why",
        description="The daemon's latest plan (plan.json in its runtime directory), or with --soc a plan"
        " made here from the configuration. Exit codes: 0 a plan, 1 none (the reason is printed),"
        " 3 no plan file (no daemon, or the planner is off).",
    )
    p.add_argument(
        "--runtime-dir", metavar="DIR", help="the daemon's runtime directory (default: /run/v2g-edge)"
    )
    p.add_argument("--json", action="store_true", help="the plan as JSON (the MQTT plan payload)")
    p.add_argument("--plot", metavar="PNG", help="draw the schedule, SoC, envelope and prices into a PNG")
    p.add_argument(
        "--every",
        type=_every,
        default=4,
        metavar="N",
        help="print every Nth step of the schedule (default 4)",
    )
    p.add_argument(
        "--soc", type=float, help="plan here from this SoC (0 … 1) instead of reading the daemon's"
    )
    p.add_argument("--config", metavar="FILE", help="with --soc: the configuration (default: the unit's)")
    p.add_argument("--inputs", metavar="JSON", help="with --soc: a planner inputs file (prices, forecasts)")
    p.add_argument(
        "--capacity-kwh", type=float, help="with --soc: the pack's energy (default: the profile's)"
    )
    p.add_argument(
        "--house-w",
        type=float,
        default=0.0,
        help="with --soc: the house's import without the EV where no forecast is given",
    )
    p.set_defaults(fn=cmd_plan)
