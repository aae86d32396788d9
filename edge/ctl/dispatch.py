"""``v2gctl dispatch``: give the daemon a local dispatch (a set point or a mode for a while, or a
schedule) through its dispatch file, checked first as the daemon will check it."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge.ctl.common import SYSTEM_CONFIG, give_to_service, os_error
from edge.daemon.dispatch import Dispatch, Dispatcher, DispatchError, SchedulePoint
from edge.daemon.dispatch_file import write as write_dispatch
from edge.settings import Settings, SettingsError, load_default, load_file


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
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise os_error(exc, path, "remove") from None
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
        Dispatcher(settings.operation, settings.inverter, settings.functions).offer(
            d, "local", now.timestamp(), 0.0
        )
    except (DispatchError, ValueError, OSError) as exc:
        print(f"refused, nothing written: {exc}")
        return 1
    try:
        write_dispatch(path, d)
        give_to_service(path)  # written by root (sudo): the daemon, another user, must read it
    except OSError as exc:
        raise os_error(exc, path, "write") from None
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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
