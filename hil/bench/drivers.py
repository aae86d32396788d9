"""Benchmark of the driver layer: a snapshot (site meter + power stage) against the bare reads it needs.

The SunSpec charger (unit 1) and meter (unit 2) are served from a separate process, as real devices
answer from elsewhere (a server thread would share the GIL and blur both figures).
``drivers.snapshot.tcp`` is one ``Drivers.read_all()`` (every fast block of both devices, decoded,
signs normalized, timestamped); ``drivers.bare.tcp`` is the same requests made with a bare pymodbus
client, nothing decoded. The ratio is the driver layer's overhead (target <= 1.3). The same plan then
runs over the byte-timed RTU
relay at 115200 baud, where the wire dominates.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

from drivers import Drivers, build
from drivers.config import BusConfig
from drivers.poll import request_wire_s
from hil.bench import Figure
from hil.modbus_compat import patch_unknown_device_ids
from hil.procs import free_port
from hil.serial_link import TimedSerialLine
from hil.sunspec_server import SunSpecImage, charger_models, meter_models

BAUD = 115200


def _serve(kind: str, where: str) -> None:
    """Server process main: the charger (unit 1) and the meter (unit 2) on TCP ``where`` = port, or
    RTU ``where`` = serial port; prints ``ready`` once listening, runs until stdin closes."""

    async def main() -> None:
        patch_unknown_device_ids()
        if kind == "tcp":
            srv: Any = ModbusTcpServer(
                _devices(), address=("127.0.0.1", int(where)), framer=FramerType.SOCKET
            )
        else:
            srv = ModbusSerialServer(_devices(), port=where, framer=FramerType.RTU, baudrate=BAUD)
        await srv.serve_forever(background=True)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.read)  # the parent closes our stdin to stop us
        await srv.shutdown()

    asyncio.run(main())


class _ServerProcess:
    """The devices answer from another process, as real ones do from elsewhere (no shared GIL)."""

    def __init__(self, kind: str, where: str) -> None:
        self._args = [sys.executable, "-m", "hil.bench.drivers", kind, where]
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> _ServerProcess:
        self._proc = subprocess.Popen(self._args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if line.strip() != "ready":
            self.__exit__()
            raise RuntimeError(f"bench server process did not start: {line!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()


def _devices() -> list[Any]:
    return [SunSpecImage(charger_models()).sim_device(1), SunSpecImage(meter_models()).sim_device(2)]


DEVICES = {
    "inv": {"bus": "link", "unit_id": 1, "role": "power_stage", "protocol": "sunspec"},
    "meter": {"bus": "link", "unit_id": 2, "role": "site_meter", "protocol": "sunspec"},
}


def _requests(d: Drivers) -> list[tuple[int, int, int]]:
    """(unit, address, count) of every fast block of both devices, as the drivers read them."""
    return [
        (dev.link.unit_id, b.address, b.count)
        for dev in d.devices.values()
        for b in dev.plan()
        if b.period_s == dev.config.poll_s
    ]


async def _snapshots(d: Drivers, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await d.read_all()
        out.append(time.perf_counter() - t0)
    return out


async def _bare(client: Any, reqs: list[tuple[int, int, int]], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        for unit, addr, count in reqs:
            rr = await client.read_holding_registers(addr, count=count, device_id=unit)
            if rr.isError():
                raise RuntimeError(f"bare read failed: {rr}")
        out.append(time.perf_counter() - t0)
    return out


async def _measure(
    bus: dict[str, Any], make_client: Callable[[], Any], n: int, *, share_line: bool
) -> tuple[float, float, list[tuple[int, int, int]]]:
    """Median seconds per snapshot through the drivers, and per bare replay of the same requests.

    Over TCP the two alternate snapshot by snapshot on two connections, so load elsewhere on the
    machine hits both alike. A serial line has one master: there they alternate in rounds.
    """
    ours: list[float] = []
    bare: list[float] = []
    reqs: list[tuple[int, int, int]] = []
    rounds = 4 if share_line else 1
    for _ in range(rounds):
        d = build({"link": bus}, DEVICES)
        await d.start(poll=False)
        client = None
        try:
            reqs = _requests(d)
            if share_line:
                await _snapshots(d, 3)
                ours += await _snapshots(d, n // rounds)
                await d.stop()
            client = make_client()
            await client.connect()
            await _bare(client, reqs, 3)
            if share_line:
                bare += await _bare(client, reqs, n // rounds)
                continue
            await _snapshots(d, 3)
            for _ in range(n):
                ours += await _snapshots(d, 1)
                bare += await _bare(client, reqs, 1)
        finally:
            if client is not None:
                client.close()
            await d.stop()
    return statistics.median(ours), statistics.median(bare), reqs


def _tcp(n: int) -> list[Figure]:
    port = free_port()
    with _ServerProcess("tcp", str(port)):
        bus = {"transport": "tcp", "host": "127.0.0.1", "port": port, "timeout_s": 1.0}

        def client() -> AsyncModbusTcpClient:
            return AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1.0, retries=0)

        ours, bare, _ = asyncio.run(_measure(bus, client, n, share_line=False))
    return [
        Figure("drivers.bare.tcp", bare * 1e3, "ms/snapshot"),
        Figure("drivers.snapshot.tcp", ours * 1e3, "ms/snapshot", ours / bare, "drivers.bare.tcp"),
    ]


def _rtu(n: int) -> list[Figure]:
    with TimedSerialLine(BAUD) as line, _ServerProcess("rtu", line.server_port):
        bus = {"transport": "rtu", "serial_port": line.client_port, "baud": BAUD, "timeout_s": 1.0}

        def client() -> AsyncModbusSerialClient:
            return AsyncModbusSerialClient(
                line.client_port, framer=FramerType.RTU, baudrate=BAUD, timeout=1.0, retries=0
            )

        ours, bare, reqs = asyncio.run(_measure(bus, client, n, share_line=True))
    cfg = BusConfig(transport="rtu", serial_port="-", baud=BAUD)
    wire = sum(request_wire_s(3, count, cfg) for _, _, count in reqs)
    return [
        Figure("drivers.wire.rtu115200", wire * 1e3, "ms/snapshot"),
        Figure("drivers.bare.rtu115200", bare * 1e3, "ms/snapshot"),
        Figure(
            "drivers.snapshot.rtu115200", ours * 1e3, "ms/snapshot", ours / bare, "drivers.bare.rtu115200"
        ),
    ]


def run(quick: bool = False) -> list[Figure]:
    patch_unknown_device_ids()
    return _tcp(100 if quick else 2000) + _rtu(10 if quick else 200)


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2])
