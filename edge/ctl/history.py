"""``v2gctl events`` and ``v2gctl sessions``: what happened and the plug-in sessions, from the
daemon's state database (read-only; it works whether the daemon runs or not, and says which).

The state directory is ``--state-dir``, else V2G_EDGE_STATE_DIR, else ``daemon.state_dir`` of the
configuration the running daemon names (or ``/etc/v2g-edge/v2g-edge.toml``), else ``/var/lib/v2g-edge``.
It is the service's own: an operator without access reads the last events in ``v2gctl status``.
"""

from __future__ import annotations

import argparse
import errno
import os
import time
from datetime import datetime
from pathlib import Path

from edge.ctl.common import (
    NO_ACCESS,
    OK,
    SYSTEM_CONFIG,
    SYSTEM_STATE_DIR,
    CtlError,
    print_json,
    read_status,
    runtime_dir,
)
from edge.settings import SettingsError, load_file
from edge.state import query


def state_dir(args: argparse.Namespace) -> tuple[Path, bool]:
    """The state directory, and whether a daemon runs now."""
    running, config = False, SYSTEM_CONFIG
    try:
        ds = read_status(runtime_dir(args.runtime_dir))
    except CtlError:
        pass
    else:
        running = ds.running
        if ds.status.config_path is not None:
            config = Path(ds.status.config_path)
    if args.state_dir:
        return Path(args.state_dir), running
    if env := os.environ.get("V2G_EDGE_STATE_DIR"):
        return Path(env), running
    try:
        return Path(load_file(config).daemon.state_dir), running
    except SettingsError:
        return SYSTEM_STATE_DIR, running


def _db(args: argparse.Namespace) -> Path:
    folder, running = state_dir(args)
    if not args.json:
        print(
            f"from {query.database(folder)} ({'the daemon is running' if running else 'NO daemon is running'})"
        )
    return query.database(folder)


def _query_error(exc: query.QueryError) -> CtlError:
    if (
        isinstance(exc.__cause__, OSError) and exc.__cause__.errno == errno.EACCES
    ) or "unable to open" in str(exc):
        return CtlError(
            f"{exc} (the state directory is the service's: use sudo, or v2gctl status for the last events)",
            NO_ACCESS,
        )
    return CtlError(str(exc))


def _since(text: str | None) -> float | None:
    """``2026-12-01T08:00``, or an age: ``90s``, ``15m``, ``2h``, ``3d``."""
    if text is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return time.time() - float(text[:-1]) * units[text[-1]]
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise CtlError(
            f"--since {text!r}: expected an ISO time (2026-12-01T08:00) or an age (90s, 15m, 2h, 3d)"
        ) from None


def _when(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def cmd_events(args: argparse.Namespace) -> int:
    since = _since(args.since)
    db = _db(args)
    try:
        rows = query.events(db, limit=args.n, since_unix_s=since, kinds=tuple(args.kind or ()))
    except query.QueryError as exc:
        raise _query_error(exc) from None
    if args.json:
        print_json([{"t_unix_s": r.t_unix_s, "kind": r.kind, "detail": r.detail} for r in rows])
        return OK
    if not rows:
        print("no events" + (" of those kinds" if args.kind else "") + (" in that time" if since else ""))
    for r in rows:
        detail = ", ".join(f"{k}={v}" for k, v in r.detail.items())
        print(f"{_when(r.t_unix_s)}  {r.kind:<24} {detail}".rstrip())
    return OK


def cmd_sessions(args: argparse.Namespace) -> int:
    db = _db(args)
    try:
        rows = query.sessions(db, limit=args.n)
    except query.QueryError as exc:
        raise _query_error(exc) from None
    if args.json:
        print_json([r.__dict__ for r in rows])
        return OK
    if not rows:
        print("no finished sessions")
    for r in rows:
        soc = (
            f"SoC {r.soc_start * 100:.0f} % -> {r.soc_end * 100:.0f} %"
            if r.soc_start is not None and r.soc_end is not None
            else "SoC -"
        )
        print(
            f"{_when(r.start_unix_s)} .. {_when(r.end_unix_s)[11:]}  EV {(r.vehicle_key or 'unknown')[:8]}"
            f"  charged {r.e_charge_ac_wh / 1e3:.2f} kWh, discharged {r.e_discharge_ac_wh / 1e3:.2f} kWh (AC)"
            f"  {soc}  {', '.join(r.reasons)}"
        )
    return OK


def _count(text: str) -> int:
    n = int(text)
    if not 1 <= n <= 100_000:
        raise argparse.ArgumentTypeError(f"{n}: expected 1 … 100000")
    return n


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", type=_count, default=20, help="how many, newest (default 20)")
    p.add_argument("--state-dir", metavar="DIR", help="the daemon's state directory (default: see docs)")
    p.add_argument(
        "--runtime-dir", metavar="DIR", help="the daemon's runtime directory (default: /run/v2g-edge)"
    )
    p.add_argument("--json", action="store_true", help="as JSON")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("events", help="what happened: trips, fail-safe, links lost, reloads, sessions")
    p.add_argument("--since", help="from this ISO time, or this long ago (90s, 15m, 2h, 3d)")
    p.add_argument("--kind", action="append", help="only this kind (repeatable), e.g. device_lost")
    _common(p)
    p.set_defaults(fn=cmd_events)
    p = sub.add_parser("sessions", help="the finished plug-in sessions: energy, SoC, why they ended")
    _common(p)
    p.set_defaults(fn=cmd_sessions)
