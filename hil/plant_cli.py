"""``v2g-hil plant``: serve the simulated plant over Modbus until SIGINT/SIGTERM.

Prints one line per served device (``power_stage tcp 127.0.0.1:15020 unit 1``), then ``ready``, then a
status line every second (grid V/f, P setpoint and actual, house load, site import, EV SoC). With
``--print-ports`` it prints only the device lines and ``ready`` (for scripts), no status lines.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from edge.daemon.tasks import wait_set
from hil.plant import Plant, PlantConfigError
from hil.plant import config as plant_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PLANT.toml", help="plant settings (default: built-in defaults)")
    parser.add_argument(
        "--tcp-base-port",
        type=int,
        metavar="N",
        help="serve the power stage on port N and the meter on N+1 (default: free ports)",
    )
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--rtu", action="store_true", help="also serve both devices on a byte-timed RS-485 line"
    )
    parser.add_argument(
        "--print-ports",
        action="store_true",
        help="print the device addresses and 'ready' only (no status lines)",
    )
    parser.add_argument(
        "--status-s", type=float, default=1.0, metavar="S", help="status line period (default 1 s)"
    )


async def serve(args: argparse.Namespace) -> int:
    overrides: dict[str, dict[str, object]] = {"serve": {}}
    if args.tcp_base_port is not None:
        overrides["serve"]["tcp_base_port"] = args.tcp_base_port
    if args.host:
        overrides["serve"]["host"] = args.host
    if args.rtu:
        overrides["serve"]["rtu"] = True
    try:
        cfg = plant_config.load(args.config, overrides)
    except PlantConfigError as exc:
        print(f"v2g-hil plant: {exc}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    plant = Plant(cfg)
    try:
        await plant.start()
    except OSError as exc:
        print(f"v2g-hil plant: cannot serve: {exc}", file=sys.stderr)
        return 1
    try:
        for addr in plant.addresses:
            print(addr.line(), flush=True)
        print("ready", flush=True)
        while not stop.is_set():
            await wait_set(stop, args.status_s)
            if not args.print_ports and not stop.is_set():
                print(plant.status_line(), flush=True)
    finally:
        await plant.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def main(args: argparse.Namespace) -> int:
    return asyncio.run(serve(args))
