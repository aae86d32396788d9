"""``v2g-hil demo``: the simulated plant and the real daemon together, with live values.

Starts a Mosquitto broker on 1883 (unless one already listens there), the plant served on the ports
the embedded configuration names (power stage 15020, site meter 15021), and ``v2g-edged`` as a
separate process on its embedded defaults. Then it plays a short evening at the plant (a kettle, an
induction hob pulsing, the load dropping) and prints one line a second: the plant as measured, the
daemon's decision and why (from its status file), and the telemetry seen on MQTT. Ctrl-C stops all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

import aiomqtt

from edge.daemon import status as status_file
from hil.broker import Mosquitto
from hil.plant import Plant
from hil.plant import config as plant_config
from hil.plant import events as ev

STAGE_PORT = 15020  # the embedded configuration's [buses.stage_link]; the meter is on the next port
MQTT_PORT = 1883  # the embedded configuration's [mqtt]

# Steps fall between the once-a-second display lines, so a line shows the state half a second after
# a step; the transient itself is the export-cap scenarios' to judge (hil/scenarios).
EVENING = [
    ev.HouseLoad(at_s=0.0, w=800.0, label="base load"),
    ev.HouseLoad(at_s=15.5, w=3000.0, label="kettle on"),
    ev.HouseLoad(at_s=25.5, w=800.0, label="kettle off"),
    ev.Hob(at_s=35.5, w=2400.0, period_s=4.0, duty=0.5, label="induction hob pulsing"),
    ev.Hob(at_s=55.5, w=0.0, label="hob off"),
    ev.HouseLoad(at_s=65.5, w=5500.0, label="oven and dryer"),
    ev.HouseLoad(at_s=80.5, w=500.0, label="load drops by 5 kW"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seconds", type=float, metavar="S", help="stop after S seconds (default: run until Ctrl-C)"
    )


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _daemon_exe() -> str:
    exe = Path(sys.executable).parent / "v2g-edged"
    return str(exe) if exe.exists() else (shutil.which("v2g-edged") or "v2g-edged")


async def _count_telemetry(counter: list[int]) -> None:
    """Count the daemon's telemetry messages on the broker (reconnects until cancelled)."""
    while True:
        try:
            async with aiomqtt.Client("127.0.0.1", MQTT_PORT, identifier="v2g-hil-demo") as client:
                await client.subscribe("v2g/+/+/telemetry", qos=1)  # the embedded topic_prefix
                async for _ in client.messages:
                    counter[0] += 1
        except aiomqtt.MqttError:
            await asyncio.sleep(1.0)


def _line(t: float, plant: Plant, status: status_file.Status | None, telemetry: int) -> str:
    s = plant.snapshot()
    plant_part = (
        f"t={t:5.0f}s  load {s['house_load_w']:5.0f} W  EV {s['p_ev_w']:+6.0f} W  "
        f"site import {s['p_site_import_w']:+6.0f} W  SoC {100 * s['ev_soc']:4.1f}%"
    )
    if status is None:
        daemon_part = "daemon: starting"
    else:
        bound = ", ".join(status.binding[:2]) or "nothing"
        daemon_part = f"daemon {status.state}: cmd {status.p_cmd_w:+6.0f} W (bound by {bound})"
    return f"{plant_part} | {daemon_part} | mqtt {telemetry}"


async def run(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    workdir = Path(tempfile.mkdtemp(prefix="v2g-demo-"))
    broker = None
    if not _port_in_use(MQTT_PORT):
        broker = Mosquitto(port=MQTT_PORT, workdir=workdir).start()
    plant = Plant(plant_config.load(None, {"serve": {"tcp_base_port": STAGE_PORT}}))
    await plant.start()
    plant.schedule(EVENING)
    log_path = workdir / "v2g-edged.log"
    with log_path.open("wb") as log_file:
        daemon = await asyncio.create_subprocess_exec(
            _daemon_exe(),
            "--runtime-dir",
            str(workdir),
            "--state-dir",
            str(workdir / "state"),
            stdout=log_file,
            stderr=log_file,
        )
    counter = [0]
    counting = asyncio.create_task(_count_telemetry(counter))
    print(
        f"plant: power stage 127.0.0.1:{STAGE_PORT}, site meter 127.0.0.1:{STAGE_PORT + 1}; "
        f"daemon pid {daemon.pid} (log {log_path}); Ctrl-C stops",
        flush=True,
    )
    rc = 0
    try:
        t0 = loop.time()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            t = loop.time() - t0
            if daemon.returncode is not None:
                print(
                    f"v2g-edged exited with {daemon.returncode}:\n{log_path.read_text()[-2000:]}", flush=True
                )
                rc = 1
                break
            try:
                status, _ = status_file.read(workdir / "status.json")
            except (FileNotFoundError, json.JSONDecodeError, ValueError):
                status = None
            print(_line(t, plant, status, counter[0]), flush=True)
            if args.seconds is not None and t >= args.seconds:
                break
    finally:
        counting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await counting
        if daemon.returncode is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(daemon.wait(), 10.0)
            except TimeoutError:
                daemon.kill()
                await daemon.wait()
        print(
            f"daemon stopped ({daemon.returncode}); plant after the stop: {plant.status_line()}", flush=True
        )
        await plant.stop()
        if broker is not None:
            broker.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return rc


def main(args: argparse.Namespace) -> int:
    return asyncio.run(run(args))
