"""RTU over a socat serial pair (real framing and CRC): several unit ids on one line with one dead,
and the wire-time budget of the polling plan."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer

from drivers.config import BusConfig
from drivers.errors import DriverError
from drivers.poll import Block, budget, coalesce, request_wire_s
from hil.serial_link import SocatPair
from hil.sunspec_server import SunSpecImage, charger_models
from tests.drivers.conftest import BuildDrivers, Fault, sdm630_device, sdm630_image

SDM = {"bus": "rs485", "unit_id": 3, "role": "site_meter", "protocol": "map", "map": "eastron-sdm630"}


def rtu_bus(port: str, **kw: Any) -> dict[str, Any]:
    return {"transport": "rtu", "serial_port": port, "baud": 115200, "timeout_s": 0.2, "retries": 0, **kw}


async def test_rtu_line_with_three_units_one_dead(
    serial_pair: SocatPair, drivers_factory: BuildDrivers, caplog: pytest.LogCaptureFixture
) -> None:
    img = SunSpecImage(charger_models(p_w=2500))
    srv = ModbusSerialServer(
        [img.sim_device(1), sdm630_device(3, p_total=800.0, v_l1=231.0)],
        port=serial_pair.b,
        framer=FramerType.RTU,
        baudrate=115200,
        ignore_missing_devices=True,
    )
    await srv.serve_forever(background=True)
    try:
        devices = {
            "inv": {"bus": "rs485", "unit_id": 1, "role": "power_stage", "protocol": "sunspec"},
            "meter": {
                "bus": "rs485",
                "unit_id": 3,
                "role": "site_meter",
                "protocol": "map",
                "map": "eastron-sdm630",
            },
        }
        d = await drivers_factory({"rs485": rtu_bus(serial_pair.a, backoff_s=5.0)}, devices)
        caplog.set_level(logging.WARNING, logger="drivers")
        ghost = d.buses["rs485"].device("ghost", 7)  # configured, but nothing answers at unit 7
        assert d.power_stage is not None
        assert d.site_meter is not None
        assert (await d.power_stage.read()).p_w == 2500.0
        assert (await d.site_meter.read()).p_site_import_w == pytest.approx(800.0)
        with pytest.raises(
            DriverError, match=r"device 'ghost' register 0 \(probe\): no answer within 0.2 s"
        ) as e:
            await ghost.read(0, 1, what="probe")
        assert e.value.kind == "timeout"
        t0 = time.monotonic()
        for _ in range(10):
            with pytest.raises(DriverError, match="back-off"):
                await ghost.read(0, 1, what="probe")
            await d.read_all()
        assert time.monotonic() - t0 < 1.0  # the dead unit took no more line time
        assert ghost.stats.timeouts == 1
        assert d.stats()["meter"].errors == 0
        assert d.stats()["inv"].errors == 0
        assert sum("is failing" in r.getMessage() for r in caplog.records) == 1
    finally:
        await srv.shutdown()


def test_wire_time_matches_the_frame_arithmetic() -> None:
    bus = BusConfig(transport="rtu", serial_port="x", baud=9600)
    # 50 registers at 9600 8N1: 8 + 105 bytes + two 3.5-character gaps, plus the stack's overhead.
    assert request_wire_s(3, 50, bus) == pytest.approx(120 * 10 / 9600 + 0.0015)
    even = BusConfig(transport="rtu", serial_port="x", baud=9600, parity="E")
    assert request_wire_s(3, 50, even) > request_wire_s(3, 50, bus)


def test_coalesce_merges_neighbours_without_splitting() -> None:
    assert coalesce([(40070, 123), (40363, 9), (40372, 45), (40417, 9)]) == [(40070, 123), (40363, 63)]
    assert coalesce([(0, 100), (100, 30)]) == [(0, 100), (100, 30)]  # together they would exceed 125


def test_budget_says_when_the_plan_does_not_fit() -> None:
    bus = BusConfig(transport="rtu", serial_port="x", baud=9600)
    sdm = [Block("fast", 4, 0, 80, 0.5)]
    ok = budget("rs485", bus, {"meter": sdm})
    assert ok.fits
    assert ok.load == pytest.approx(request_wire_s(4, 80, bus) / 0.5)
    tight = budget("rs485", bus, {"meter": [Block("fast", 4, 0, 80, 0.1)]})
    assert not tight.fits
    assert "does NOT fit" in tight.message()
    assert "meter" in tight.message()


async def test_start_warns_when_the_line_cannot_carry_the_plan(
    serial_pair: SocatPair, drivers_factory: BuildDrivers, caplog: pytest.LogCaptureFixture
) -> None:
    srv = ModbusSerialServer(
        [sdm630_device(3, p_total=1.0)], port=serial_pair.b, framer=FramerType.RTU, baudrate=9600
    )
    await srv.serve_forever(background=True)
    try:
        meter = {**SDM, "poll_s": 0.1}
        caplog.set_level(logging.INFO, logger="drivers")
        d = await drivers_factory({"rs485": rtu_bus(serial_pair.a, baud=9600)}, {"m": meter})
        [b] = d.budgets()
        assert not b.fits
        assert b.load > 1.5
        warned = [r for r in caplog.records if "does NOT fit" in r.getMessage()]
        assert len(warned) == 1
        assert warned[0].levelno == logging.WARNING
    finally:
        await srv.shutdown()


async def test_a_late_rtu_answer_is_not_taken_for_the_next_request(
    serial_pair: SocatPair, drivers_factory: BuildDrivers
) -> None:
    fault = Fault()
    srv = ModbusSerialServer(
        [sdm630_device(3, action=fault.action, v_l1=230.0, p_total=1234.0)],
        port=serial_pair.b,
        framer=FramerType.RTU,
        baudrate=115200,
    )
    await srv.serve_forever(background=True)
    try:
        bus = rtu_bus(serial_pair.a, timeout_s=0.1, backoff_s=0.01, backoff_max_s=0.01)
        d = await drivers_factory({"rs485": bus}, {"m": SDM}, start=False)
        await d.buses["rs485"].start()
        link = d.devices["m"].link
        fault.delay_s = 0.2  # answers 100 ms after the master gave up
        with pytest.raises(DriverError, match=r"no answer within 0\.1 s"):
            await link.read(0x00, 2, fc=4, what="v_l1")
        fault.delay_s = 0.0
        await asyncio.sleep(0.02)  # the back-off
        regs = await link.read(0x34, 2, fc=4, what="p_total")  # same size as the late answer
        p_total = sdm630_image(p_total=1234.0)[0x34:0x36]
        assert list(regs.values) == p_total
    finally:
        await srv.shutdown()
