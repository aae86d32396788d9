"""Helpers for the driver tests: SunSpec and vendor-map devices on real pymodbus servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers import Drivers, build
from drivers.maps import encode_point, load_map

BuildDrivers = Callable[..., Awaitable[Drivers]]


def tcp_bus(srv: ModbusTcpServer, **kw: Any) -> dict[str, Any]:
    host, port = srv.comm_params.source_address
    return {"transport": "tcp", "host": host, "port": port, "timeout_s": 0.3, "retries": 0, **kw}


@pytest.fixture
async def drivers_factory() -> AsyncIterator[BuildDrivers]:
    """``d = await make(buses, devices, start=True)``; every Drivers built is stopped at teardown."""
    made: list[Drivers] = []

    async def make(
        buses: dict[str, Any], devices: dict[str, Any], *, start: bool = True, poll: bool = False
    ) -> Drivers:
        d = build(buses, devices)
        made.append(d)
        if start:
            await d.start(poll=poll)
        return d

    yield make
    for d in made:
        await d.stop()


class Fault:
    """A pymodbus ``SimDevice`` action that injects faults: a delay, or an exception code."""

    def __init__(self) -> None:
        self.delay_s = 0.0
        self.code: Any = None
        self.calls = 0
        self.log: list[tuple[int, int]] = []  # (function code, address) of every request

    async def action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: Any,
    ) -> Any:
        self.calls += 1
        self.log.append((function_code, address))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return self.code


def sdm630_image(**values: float) -> list[int]:
    """Input registers 0..79 of an SDM630 holding engineering ``values`` by map point name (others 0)."""
    vmap = load_map("eastron-sdm630")
    regs = [0] * 80
    for name, p in vmap.points.items():
        v = values.get(name, 0.0)
        regs[p.address : p.address + 2] = encode_point(vmap, p, v)
    return regs


def sdm630_device(unit_id: int, action: Any = None, **values: float) -> SimDevice:
    return SimDevice(
        id=unit_id,
        simdata=[SimData(address=0, values=sdm630_image(**values), datatype=DataType.REGISTERS)],
        action=action,
    )
