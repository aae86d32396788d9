"""``v2gctl``: the technician's command line on the device.

``status`` says what the running daemon is doing and why (from its status file); ``config`` checks a
configuration, prints its JSON Schema, or changes one setting locally with an audit record;
``profiles`` lists the grid-code profiles shipped; ``dispatch`` gives the daemon a local dispatch (a set
point or a mode for a while, or a schedule) through its dispatch file. Commissioning and device detection come with the
commissioning issue.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
import tomllib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edge import __version__
from edge.daemon import status as status_file
from edge.daemon.dispatch import Dispatch, Dispatcher, DispatchError, SchedulePoint
from edge.daemon.dispatch_file import write as write_dispatch
from edge.daemon.main import runtime_dir
from edge.settings import (
    Settings,
    SettingsError,
    apply_local_change,
    available_profiles,
    energize_lock,
    load_default,
    load_file,
    load_profile,
)
from edge.settings.schema import render as render_schema

STALE_STATUS_S = 5.0
SYSTEM_CONFIG = Path("/etc/v2g-edge/v2g-edge.toml")  # the unit's --config


def _fmt(value: float | None, unit: str, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f} {unit}"


def cmd_status(args: argparse.Namespace) -> int:
    path = runtime_dir(args.runtime_dir) / "status.json"
    try:
        st, age = status_file.read(path)
    except FileNotFoundError:
        print(f"no status at {path}: is v2g-edged running?")
        return 3
    stale = age > STALE_STATUS_S
    print(
        f"daemon pid {st.pid}, status {age:.1f} s old{'  (STALE: the daemon may be stuck or gone)' if stale else ''}"
    )
    print(f"state      {st.state}" + ("" if st.energize_allowed else "  (held at P = Q = 0)"))
    if st.mode is not None:
        print(f"mode       {st.mode} ({st.dispatch_source})")
    if st.departure is not None:
        print(f"departure  {st.departure}")
    if (se := st.session) is not None:
        print(
            f"session    EV {(se.vehicle_key or 'unknown')[:8]} since"
            f" {time.strftime('%H:%M', time.localtime(se.start_unix_s))}:"
            f" charged {se.e_charge_ac_wh / 1e3:.2f} kWh, discharged {se.e_discharge_ac_wh / 1e3:.2f} kWh (AC)"
        )
    for reason in st.hold_reasons:
        print(f"  hold: {reason}")
    print(
        f"command    P {_fmt(st.p_cmd_w, 'W')}   Q {_fmt(st.q_cmd_var, 'var')}   (requested P {_fmt(st.p_request_w, 'W')})"
    )
    print(f"bound by   {', '.join(st.binding) or 'nothing'}")
    for reason in st.reasons:
        print(f"  reason: {reason}")
    print(
        f"measured   P {_fmt(st.p_meas_w, 'W')}   Q {_fmt(st.q_meas_var, 'var')}   site import {_fmt(st.p_site_import_w, 'W')}"
    )
    if st.stage_operation is not None:
        print(f"stage      told to operate: {'yes' if st.stage_operation == 'started' else 'no (stopped)'}")
    if st.output_mismatch is not None:
        print(f"MISMATCH   {st.output_mismatch}")
    print(
        f"grid       V {_fmt(st.v_pu, 'p.u.', 3)}   f {_fmt(st.f_hz, 'Hz', 3)}   EV SoC {_fmt(None if st.soc is None else st.soc * 100, '%', 1)}"
    )
    for d in st.devices:
        health = "ok" if d.ok else f"FAILING ({d.error})"
        print(
            f"device     {d.name} [{d.role}] {health}; last success {_fmt(d.last_success_age_s, 's ago', 1)};"
            f" rtt p50 {_fmt(d.rtt_p50_ms, 'ms', 1)} p99 {_fmt(d.rtt_p99_ms, 'ms', 1)};"
            f" errors {d.errors}, timeouts {d.timeouts}"
        )
    print(
        f"cycles     {st.cycles} ({st.overruns} overruns, {st.write_errors} write errors); telemetry backlog {st.telemetry_backlog}, dropped {st.telemetry_dropped}"
    )
    if st.state_write_bytes_per_hour is not None:
        print(f"storage    state store writes {st.state_write_bytes_per_hour / 1e3:.0f} kB/h")
    if st.state_problem is not None:
        print(f"STORAGE    {st.state_problem}")
    return 1 if stale else 0


def cmd_config_check(args: argparse.Namespace) -> int:
    try:
        settings = load_file(Path(args.file)) if args.file else load_default()
    except SettingsError as exc:
        print(f"invalid: {exc}")
        return 1
    print(f"{args.file or '(embedded configuration)'}: valid")
    hold = energize_lock(settings)
    print("energize: allowed" if hold is None else f"energize: held at P = Q = 0: {hold}")
    return 0


def cmd_config_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(render_schema())
    return 0


def _parse_value(text: str) -> Any:
    """A TOML value (``1.05``, ``"daemon"``, ``true``, ``{v1_pu = 0.92}``); a bare word is a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def cmd_config_set(args: argparse.Namespace) -> int:
    value = None if args.unset else _parse_value(args.value)
    try:
        apply_local_change(Path(args.file), args.path, value, who=args.who, audit_path=args.audit)
    except SettingsError as exc:
        print(f"refused, nothing written: {exc}")
        return 1
    print(f"{args.path} = {value!r} written to {args.file} (audited as {args.who})")
    return 0


def _dispatch_path(args: argparse.Namespace, settings: Settings) -> Path:
    if args.file:
        return Path(args.file)
    op = settings.operation
    return Path(op.dispatch_file) if op.dispatch_file else Path(settings.daemon.state_dir) / "dispatch.json"


def cmd_dispatch(args: argparse.Namespace) -> int:
    # The installed daemon's configuration where there is one: its ratings check the dispatch and its
    # state directory holds the file the daemon watches.
    config = args.config or (str(SYSTEM_CONFIG) if SYSTEM_CONFIG.exists() else None)
    try:
        settings = load_file(Path(config)) if config else load_default()
    except SettingsError as exc:
        print(f"configuration: {exc}")
        return 1
    path = _dispatch_path(args, settings)
    if args.clear:
        path.unlink(missing_ok=True)
        print(f"local dispatch withdrawn ({path} removed)")
        return 0
    now = datetime.now(UTC)
    try:
        schedule = _schedule(args.schedule) if args.schedule else None
        d = Dispatch(
            id=args.id or f"v2gctl-{int(now.timestamp())}",
            start=min([now] + [pt.at.astimezone(UTC) for pt in schedule or [] if pt.at.tzinfo is not None]),
            expiry=now + timedelta(minutes=args.minutes),
            p_w=args.p_w,
            q_var=args.q_var,
            schedule=schedule,
            mode=args.mode,
        )
        # What the daemon will check, checked here first: nothing is written that it would refuse.
        Dispatcher(settings.operation, settings.inverter).offer(d, "local", now.timestamp(), 0.0)
    except (DispatchError, ValueError, OSError) as exc:
        print(f"refused, nothing written: {exc}")
        return 1
    write_dispatch(path, d)
    what = f"mode {d.mode}" if d.mode else ""
    if d.p_w is not None:
        what = f"{what} P {d.p_w:g} W".strip()
    elif d.schedule is not None:
        what = f"{what} schedule of {len(d.schedule)} points".strip()
    print(f"local dispatch {d.id}: {what} until {d.expiry.isoformat(timespec='seconds')} written to {path}")
    return 0


def _schedule(path: str) -> list[SchedulePoint]:
    """A schedule from CSV lines ``ISO time,p_w[,q_var]`` (a header line is skipped)."""
    points = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        cells = [c.strip() for c in line.split(",")]
        if not line.strip() or (n == 1 and cells[0].lower() in ("at", "time", "t")):
            continue
        try:
            at = datetime.fromisoformat(cells[0])
            p_w = float(cells[1])
            q_var = float(cells[2]) if len(cells) > 2 and cells[2] else None
        except (ValueError, IndexError) as exc:
            raise ValueError(f"{path}:{n}: expected 'ISO time,p_w[,q_var]': {exc}") from None
        points.append(SchedulePoint(at=at, p_w=p_w, q_var=q_var))
    return points


def cmd_profiles(args: argparse.Namespace) -> int:
    for name in available_profiles():
        profile = load_profile(name)
        print(f"{name}: {getattr(profile, 'title', '') or name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="v2gctl", description="v2g-edge technician command line")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("status", help="what the daemon is doing and why")
    p.add_argument("--runtime-dir", metavar="DIR", help="the daemon's runtime directory")
    p.set_defaults(fn=cmd_status)

    cfg = sub.add_parser("config", help="check, describe or change the configuration").add_subparsers(
        dest="config_command", required=True, metavar="ACTION"
    )
    p = cfg.add_parser("check", help="validate a configuration file and say whether it may energize")
    p.add_argument("file", nargs="?", help="configuration file (default: the embedded one)")
    p.set_defaults(fn=cmd_config_check)
    p = cfg.add_parser("schema", help="print the configuration's JSON Schema")
    p.set_defaults(fn=cmd_config_schema)
    p = cfg.add_parser("set", help="change one setting in a file, keeping its comments, with an audit record")
    p.add_argument("file", help="configuration file to edit")
    p.add_argument("path", help="dotted setting path, e.g. grid.volt_var.olrt_s")
    p.add_argument("value", nargs="?", default="", help='TOML value, e.g. 5.0, "daemon", true')
    p.add_argument("--unset", action="store_true", help="remove the override (back to the profile's default)")
    p.add_argument("--who", default=getpass.getuser(), help="who makes the change (for the audit record)")
    p.add_argument("--audit", metavar="FILE", help="audit log (default: <daemon.state_dir>/audit.jsonl)")
    p.set_defaults(fn=cmd_config_set)

    p = sub.add_parser(
        "dispatch",
        help="give the daemon a local dispatch (set point, mode or schedule) for a while",
        description="Writes the daemon's local dispatch file; the daemon takes it within a second. "
        "Signs: P > 0 discharge (export from the EV), P < 0 charging; Q > 0 injection.",
    )
    p.add_argument("--p-w", type=float, help="active power set point, W")
    p.add_argument("--q-var", type=float, help="reactive power set point, var")
    p.add_argument(
        "--mode", choices=["idle", "v1g", "v2g", "v2h", "schedule"], help="operating mode meanwhile"
    )
    p.add_argument("--schedule", metavar="CSV", help="a schedule: lines 'ISO time,p_w[,q_var]'")
    p.add_argument("--minutes", type=float, default=60.0, help="how long it holds (default 60)")
    p.add_argument("--id", help="an id for the dispatch (default: v2gctl-<time>)")
    p.add_argument("--clear", action="store_true", help="withdraw the local dispatch")
    p.add_argument(
        "--config",
        metavar="FILE",
        help=f"the daemon's configuration (default: {SYSTEM_CONFIG}, else the embedded one)",
    )
    p.add_argument("--file", metavar="FILE", help="the dispatch file (default: from the configuration)")
    p.set_defaults(fn=cmd_dispatch)

    p = sub.add_parser("profiles", help="list the grid-code profiles shipped")
    p.set_defaults(fn=cmd_profiles)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rc: int = args.fn(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
