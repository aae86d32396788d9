"""``v2g-hil demo``: the simulated plant and the real daemon together, with live values.

Starts a Mosquitto broker on 1883 (unless one already listens there), the plant served on the ports
the embedded configuration names (power stage 15020, site meter 15021), and ``v2g-edged`` as a
separate process on the embedded defaults with those ports (``--stage-port``, ``--mqtt-port`` move
them). Then it plays a short evening at the plant (a kettle, an induction hob pulsing, the load
dropping), names each event as it plays it, and prints one line a second: the plant as measured, the
daemon's decision and why (from its status file), and the telemetry seen on MQTT.

Ctrl-C, SIGTERM, SIGHUP or a reader that goes away (``v2g-hil demo | head``) stop all it started:
the daemon, the plant and the broker. Exit codes: 0 stopped, 1 the daemon exited on its own or a
part could not start (a port in use: one line naming it, no traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

import aiomqtt
import tomlkit

from edge.daemon import status as status_file
from edge.daemon.tasks import wait_set
from edge.settings.load import default_config_text
from hil.broker import Mosquitto
from hil.plant import Plant
from hil.plant import config as plant_config
from hil.plant import events as ev
from hil.report import describe_event

STAGE_PORT = 15020  # the embedded configuration's [buses.stage_link]; the meter is on the next port
MQTT_PORT = 1883  # the embedded configuration's [mqtt]
LOG = "v2g-edged.log"

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
    parser.add_argument(
        "--stage-port",
        type=int,
        default=STAGE_PORT,
        metavar="N",
        help=f"power stage on N, site meter on N+1 (default {STAGE_PORT})",
    )
    parser.add_argument(
        "--mqtt-port",
        type=int,
        default=MQTT_PORT,
        metavar="N",
        help=f"the broker's port; one already listening there is used (default {MQTT_PORT})",
    )


class DemoError(Exception):
    """A part of the demo cannot start: said in one line."""


def say(text: str) -> bool:
    """Print a line; False once the reader has gone (a closed pipe), after which nothing is printed."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # `v2g-hil demo | head`: stdout goes nowhere from now on, so the exit flush fails no more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return False
    return True


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _check_ports(stage_port: int) -> None:
    busy = [p for p in (stage_port, stage_port + 1) if _port_in_use(p)]
    if busy:
        raise DemoError(
            f"port {busy[0]} is in use: is another v2g-hil demo or v2g-hil plant running?"
            " (stop it, or choose other ports with --stage-port N)"
        )


def _daemon_exe() -> str:
    exe = Path(sys.executable).parent / "v2g-edged"
    return str(exe) if exe.exists() else (shutil.which("v2g-edged") or "v2g-edged")


def daemon_config(stage_port: int, mqtt_port: int) -> str:
    """The embedded configuration with the plant's and the broker's ports."""
    doc = tomlkit.parse(default_config_text())
    doc["buses"]["stage_link"]["port"] = stage_port  # type: ignore[index]
    doc["buses"]["meter_link"]["port"] = stage_port + 1  # type: ignore[index]
    doc["mqtt"]["port"] = mqtt_port  # type: ignore[index]
    return tomlkit.dumps(doc)


async def _count_telemetry(counter: list[int], port: int) -> None:
    """Count the daemon's telemetry messages on the broker (reconnects until cancelled)."""
    while True:
        try:
            async with aiomqtt.Client("127.0.0.1", port, identifier=f"v2g-hil-demo-{os.getpid()}") as client:
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


async def _stop_daemon(daemon: asyncio.subprocess.Process) -> None:
    if daemon.returncode is None:
        daemon.send_signal(signal.SIGTERM)
        # wait_for, not asyncio.timeout: called from a finally block, inside the task's own
        # cancellation, where a timeout only turns into TimeoutError from Python 3.11.3 on
        # (gh-102780) and the kill below must happen.
        try:
            await asyncio.wait_for(daemon.wait(), 10.0)
        except TimeoutError:
            daemon.kill()
            await daemon.wait()


async def _show(
    args: argparse.Namespace,
    stop: asyncio.Event,
    plant: Plant,
    daemon: asyncio.subprocess.Process,
    workdir: Path,
) -> int:
    """The live display until stopped: a line a second, and each event of the evening as it plays."""
    log_path = workdir / LOG
    counter = [0]
    counting = asyncio.create_task(_count_telemetry(counter, args.mqtt_port))
    try:
        if not say(
            f"plant: power stage 127.0.0.1:{args.stage_port}, site meter 127.0.0.1:{args.stage_port + 1};"
            f" daemon pid {daemon.pid} (log {log_path}); Ctrl-C stops"
        ):
            return 0
        pending = sorted(EVENING, key=lambda e: e.at_s)
        next_line_s = 1.0
        while not stop.is_set():
            wake_s = min(next_line_s, pending[0].at_s if pending else next_line_s)
            await wait_set(stop, max(0.0, wake_s - plant.t_s))
            if stop.is_set():
                break
            if daemon.returncode is not None:
                log = await asyncio.to_thread(log_path.read_text)
                say(f"v2g-edged exited with {daemon.returncode}:\n{log[-2000:]}")
                return 1
            while pending and pending[0].at_s <= plant.t_s:
                e = pending.pop(0)
                if not say(f"t={e.at_s:5.1f}s  EVENT {describe_event(e)}"):
                    return 0
            if plant.t_s < next_line_s:
                continue
            next_line_s += 1.0
            try:
                status, _ = status_file.read(workdir / "status.json")
            except (FileNotFoundError, json.JSONDecodeError, ValueError):
                status = None
            if not say(_line(plant.t_s, plant, status, counter[0])):
                return 0
            if args.seconds is not None and plant.t_s >= args.seconds:
                break
    finally:
        counting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await counting
    return 0


async def run(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    for sig in stop_signals:
        loop.add_signal_handler(sig, stop.set)
    # Each part is stopped however the others end (a closed pipe, a failed start): innermost first.
    try:
        async with contextlib.AsyncExitStack() as parts:
            _check_ports(args.stage_port)
            workdir = Path(tempfile.mkdtemp(prefix="v2g-demo-"))
            if not _port_in_use(args.mqtt_port):
                try:
                    broker = await asyncio.to_thread(Mosquitto(port=args.mqtt_port, workdir=workdir).start)
                except (OSError, RuntimeError) as exc:
                    raise DemoError(f"cannot start the MQTT broker on port {args.mqtt_port}: {exc}") from None
                parts.callback(broker.stop)
            plant = Plant(plant_config.load(None, {"serve": {"tcp_base_port": args.stage_port}}))
            try:
                await plant.start()
            except OSError as exc:
                raise DemoError(
                    f"cannot serve the plant on ports {args.stage_port}-{args.stage_port + 1}: {exc.strerror or exc}"
                    " (another v2g-hil demo or v2g-hil plant? --stage-port N)"
                ) from None
            parts.push_async_callback(plant.stop)
            plant.schedule(EVENING)
            config = workdir / "daemon.toml"
            config.write_text(daemon_config(args.stage_port, args.mqtt_port))
            log_path = workdir / LOG
            with log_path.open("wb") as log_file:
                try:
                    daemon = await asyncio.create_subprocess_exec(
                        _daemon_exe(),
                        "--config",
                        str(config),
                        "--runtime-dir",
                        str(workdir),
                        "--state-dir",
                        str(workdir / "state"),
                        stdin=asyncio.subprocess.DEVNULL,
                        stdout=log_file,
                        stderr=log_file,
                    )
                except OSError as exc:
                    raise DemoError(f"cannot start v2g-edged: {exc}") from None
            try:
                rc = await _show(args, stop, plant, daemon, workdir)
            finally:
                await _stop_daemon(daemon)
                say(f"daemon stopped ({daemon.returncode}); plant after the stop: {plant.status_line()}")
            return rc
    except DemoError as exc:
        sys.stdout.flush()
        print(f"v2g-hil demo: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig in stop_signals:
            loop.remove_signal_handler(sig)


def main(args: argparse.Namespace) -> int:
    return asyncio.run(run(args))
