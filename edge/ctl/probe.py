"""``v2gctl probe NAME``: read one configured device's live values through the daemon's own drivers.

The device and its bus come from the configuration file (the daemon's settings loader validates it
first); ``drivers.build`` makes the same driver the daemon would (SunSpec discovery or the vendor
map), which is set up and read once, or every ``--interval`` with ``--watch``. Nothing is written to
the device: setting up and reading a driver only reads. A failure is one line naming the device and
the register, with exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import time
from typing import Any

from drivers import DriverError, Drivers, PowerStage, build
from edge.ctl.common import OK, PROBLEM, CtlError, config_file, print_json
from edge.settings import Settings, SettingsError, load_file, load_text
from edge.settings.load import default_config_text

# Setting a device up is a bounded number of reads, each bounded by the bus's timeout and retries; this
# only guards against a device that keeps answering slowly enough to drag a discovery on.
READ_LIMIT_S = 30.0


def _settings(args: argparse.Namespace) -> tuple[Settings, str]:
    path = None if args.embedded else config_file(args.file)
    source = "(embedded bench configuration)" if path is None else str(path)
    if path is not None and not path.exists():
        raise CtlError(f"no configuration file {path} (give one with --config)")
    try:
        return (load_text(default_config_text(), source) if path is None else load_file(path)), source
    except SettingsError as e:
        raise CtlError(f"{source} is not valid: {e} (v2gctl config check lists every problem)") from None


def _values(reading: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(reading):
        v = getattr(reading, f.name)
        if f.name == "t_s" or v is None:
            continue
        out[f.name] = sorted(v) if isinstance(v, frozenset) else v
    return out


def _show(name: str, values: dict[str, Any], ratings: dict[str, Any] | None) -> None:
    width = max(len(k) for k in [*values, *(ratings or {})])
    print(f"{name} at {time.strftime('%H:%M:%S')}")
    for k, v in values.items():
        print(f"  {k.ljust(width)}  {v:.6g}" if isinstance(v, float) else f"  {k.ljust(width)}  {v}")
    for k, v in (ratings or {}).items():
        print(f"  {k.ljust(width)}  {v:.6g} (rating)")


async def _probe(drivers: Drivers, name: str, args: argparse.Namespace) -> int:
    dev = drivers.devices[name]
    for bus in drivers.buses.values():
        await bus.start()
    rc = OK
    n = 0
    while True:
        n += 1
        try:
            async with asyncio.timeout(READ_LIMIT_S):
                reading = await dev.read()
        except DriverError as e:
            if not args.watch:
                raise CtlError(f"{name}: {e}") from None
            print(f"{time.strftime('%H:%M:%S')} {name}: {e}", flush=True)
            rc = PROBLEM
        except TimeoutError:
            raise CtlError(f"{name}: no reading within {READ_LIMIT_S:.0f} s") from None
        else:
            rc = OK
            values = _values(reading)
            ratings = None
            if dev.config.role == "power_stage":
                stage: PowerStage = dev  # type: ignore[assignment]
                r = stage.ratings()
                ratings = None if r is None else _values(r)
            if args.json:
                print_json({"device": name, "role": dev.config.role, "values": values, "ratings": ratings})
            else:
                _show(name, values, ratings)
        if not args.watch or (args.count and n >= args.count):
            return rc
        await asyncio.sleep(args.interval)


async def _run(drivers: Drivers, name: str, args: argparse.Namespace) -> int:
    try:
        return await _probe(drivers, name, args)
    finally:
        await drivers.stop()


def cmd_probe(args: argparse.Namespace) -> int:
    settings, source = _settings(args)
    dev = settings.devices.get(args.name)
    if dev is None:
        have = ", ".join(sorted(settings.devices)) or "none"
        raise CtlError(f"no device {args.name!r} in {source} (devices: {have})")
    try:
        drivers = build({dev.bus: settings.buses[dev.bus]}, {args.name: dev})
    except DriverError as e:
        raise CtlError(str(e)) from None
    # The bus worker logs a device that fails; here the failure is the one line the command prints.
    logging.getLogger("drivers").setLevel(logging.CRITICAL)
    return asyncio.run(_run(drivers, args.name, args))


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.05 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{value:g} s is outside 0.05..3600")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("probe", help="read one configured device's live values through the daemon's drivers")
    p.add_argument("name", metavar="NAME", help="the device's name in [devices], e.g. inverter")
    p.add_argument(
        "--config",
        "--file",
        dest="file",
        metavar="FILE",
        help="configuration (default /etc/v2g-edge/v2g-edge.toml)",
    )
    p.add_argument("--embedded", action="store_true", help="the embedded bench configuration instead")
    p.add_argument("--watch", action="store_true", help="read again every --interval until Ctrl-C")
    p.add_argument("--interval", type=_positive, default=1.0, help="seconds between reads with --watch (1)")
    p.add_argument("--count", type=int, default=0, help="with --watch: stop after N reads")
    p.add_argument("--json", action="store_true", help="as JSON (one object per read)")
    p.set_defaults(fn=cmd_probe)
