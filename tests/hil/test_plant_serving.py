"""The plant over real Modbus: SunSpec over TCP, RTU through the byte-timed relay, the CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from hil.plant import Plant, PlantConfig
from hil.plant import events as ev

STAGE_MODELS = [1, 701, 702, 703, 704, 705, 706, 707, 708, 709, 710, 711, 712, 713, 714, 715, 802]


async def walk(c: AsyncModbusTcpClient | AsyncModbusSerialClient, unit: int) -> dict[int, int]:
    rr = await c.read_holding_registers(40000, count=2, device_id=unit)
    assert rr.registers == [0x5375, 0x6E53]
    found: dict[int, int] = {}
    addr = 40002
    while True:
        rr = await c.read_holding_registers(addr, count=2, device_id=unit)
        mid, length = rr.registers
        if mid == 0xFFFF:
            return found
        found[mid] = addr
        addr += 2 + length


def s16(x: int) -> int:
    return x - 65536 if x >= 32768 else x


def addr_of(plant: Plant, name: str) -> tuple[str, int, int]:
    a = next(a for a in plant.addresses if a.name == name and a.transport == "tcp")
    return a.host, a.port, a.unit_id


@pytest.fixture
async def plant() -> Plant:
    p = Plant(PlantConfig())
    await p.start()
    yield p  # type: ignore[misc]
    await p.stop()


@pytest.fixture
async def stage_client(plant: Plant) -> AsyncModbusTcpClient:
    host, port, _ = addr_of(plant, "power_stage")
    c = AsyncModbusTcpClient(host, port=port, timeout=0.5, retries=0)
    await c.connect()
    yield c  # type: ignore[misc]
    c.close()


async def test_power_stage_is_a_sunspec_device_with_the_700_series(
    plant: Plant, stage_client: AsyncModbusTcpClient
) -> None:
    models = await walk(stage_client, 1)
    assert list(models) == STAGE_MODELS
    # 702 WMaxRtg with W_SF 0
    rr = await stage_client.read_holding_registers(models[702] + 2, count=1, device_id=1)
    assert rr.registers == [7400]


async def test_wset_write_drives_the_stage_and_reads_back_in_701(
    plant: Plant, stage_client: AsyncModbusTcpClient
) -> None:
    img = plant.stage_dev.dev.image
    await plant.wait_until(2.5)  # through the power-up ramp
    assert not (
        await stage_client.write_registers(img.address(704, "WSet"), [0, 3000], device_id=1)
    ).isError()
    assert not (await stage_client.write_registers(img.address(704, "WSetEna"), [1], device_id=1)).isError()
    await asyncio.sleep(0.8)  # 8 time constants
    rr = await stage_client.read_holding_registers(img.address(701, "W"), count=1, device_id=1)
    assert 2980 <= s16(rr.registers[0]) <= 2990  # 3000 W less the 15 W the stage draws itself
    assert plant.recorder.series("p_set_w")[-1] == 3000.0


async def test_bad_writes_are_refused_with_the_right_exception(
    plant: Plant, stage_client: AsyncModbusTcpClient
) -> None:
    img = plant.stage_dev.dev.image
    too_big = await stage_client.write_registers(img.address(704, "WSet"), [0, 30000], device_id=1)
    assert too_big.isError()
    assert too_big.exception_code == 3  # illegal value
    assert "704.WSet=30000 W outside" in plant.stage_dev.log[-1]
    read_only = await stage_client.write_registers(img.address(701, "W"), [5], device_id=1)
    assert read_only.exception_code == 2  # illegal address
    active_curve = await stage_client.write_registers(img.address(705, "Crv[0].Pt[0].V"), [900], device_id=1)
    assert active_curve.exception_code == 2  # the first curve set is read-only
    assert plant.stage.wset_w == 0.0


async def test_adopt_protocol_copies_a_curve_into_the_active_set(
    plant: Plant, stage_client: AsyncModbusTcpClient
) -> None:
    img = plant.stage_dev.dev.image
    await stage_client.write_registers(img.address(705, "Crv[1].Pt[0].V"), [900, 300], device_id=1)
    await stage_client.write_registers(img.address(705, "AdptCrvReq"), [2], device_id=1)
    rr = await stage_client.read_holding_registers(img.address(705, "AdptCrvRslt"), count=1, device_id=1)
    assert rr.registers == [0]  # in progress
    await asyncio.sleep(0.2)
    rr = await stage_client.read_holding_registers(img.address(705, "AdptCrvRslt"), count=1, device_id=1)
    assert rr.registers == [1]  # completed
    assert plant.stage.vv_curve[0] == (pytest.approx(0.90), pytest.approx(0.30))
    rr = await stage_client.read_holding_registers(img.address(705, "Crv[0].Pt[0].V"), count=2, device_id=1)
    assert rr.registers == [900, 300]
    # A curve whose voltages do not increase is refused.
    await stage_client.write_registers(img.address(705, "Crv[2].Pt[1].V"), [850], device_id=1)
    await stage_client.write_registers(img.address(705, "AdptCrvReq"), [3], device_id=1)
    await asyncio.sleep(0.2)
    rr = await stage_client.read_holding_registers(img.address(705, "AdptCrvRslt"), count=1, device_id=1)
    assert rr.registers == [2]  # failed
    assert plant.stage.vv_curve[0][0] == pytest.approx(0.90)


async def test_link_drop_silences_the_stage_and_it_comes_back(
    plant: Plant, stage_client: AsyncModbusTcpClient
) -> None:
    plant.apply(ev.Link(device="power_stage", up=False))
    with pytest.raises(ModbusIOException):
        await stage_client.read_holding_registers(40000, count=2, device_id=1)
    plant.apply(ev.Link(device="power_stage", up=True))
    rr = await stage_client.read_holding_registers(40000, count=2, device_id=1)
    assert rr.registers == [0x5375, 0x6E53]


@pytest.mark.parametrize(("sign", "factor"), [("import_positive", 1), ("export_positive", -1)])
async def test_meter_reports_import_in_its_configured_sign(sign: str, factor: int) -> None:
    cfg = PlantConfig()
    cfg.meter.sign = sign  # type: ignore[assignment]
    cfg.meter.noise_w = 0.0
    cfg.site.house_load_w = 1234.0
    async with Plant(cfg) as plant:
        host, port, unit = addr_of(plant, "site_meter")
        c = AsyncModbusTcpClient(host, port=port, timeout=0.5, retries=0)
        await c.connect()
        try:
            models = await walk(c, unit)
            assert list(models) == [1, 201]
            await plant.wait_until(0.5)
            rr = await c.read_holding_registers(models[201] + 18, count=1, device_id=unit)
            # the stage draws 15 W while idle at the site too
            assert s16(rr.registers[0]) == factor * (1234 + 15)
        finally:
            c.close()


async def test_vendor_map_meter_serves_float32_input_registers() -> None:
    cfg = PlantConfig()
    cfg.meter.protocol = "map"
    cfg.meter.noise_w = 0.0
    cfg.site.house_load_w = 2000.0
    async with Plant(cfg) as plant:
        a = next(a for a in plant.addresses if a.name == "site_meter")
        assert a.line().endswith("map eastron-sdm630")
        c = AsyncModbusTcpClient(a.host, port=a.port, timeout=0.5, retries=0)
        await c.connect()
        try:
            await plant.wait_until(0.5)
            rr = await c.read_input_registers(0x0034, count=2, device_id=a.unit_id)
            (w,) = struct.unpack(">f", struct.pack(">HH", *rr.registers))
            assert w == pytest.approx(2015.0)
            rr = await c.read_input_registers(0x0046, count=2, device_id=a.unit_id)
            (f,) = struct.unpack(">f", struct.pack(">HH", *rr.registers))
            assert f == pytest.approx(60.0)
        finally:
            c.close()


async def test_rtu_through_the_byte_timed_line_carries_both_devices() -> None:
    cfg = PlantConfig()
    cfg.serve.rtu = True
    cfg.serve.rtu_baud = 115200
    async with Plant(cfg) as plant:
        rtu = [a for a in plant.addresses if a.transport == "rtu"]
        assert [(a.name, a.unit_id) for a in rtu] == [("power_stage", 1), ("site_meter", 2)]
        c = AsyncModbusSerialClient(rtu[0].serial_port, baudrate=115200, timeout=1.0, retries=0)
        await c.connect()
        try:
            stage_models = await walk(c, 1)
            assert list(stage_models) == STAGE_MODELS
            meter_models = await walk(c, 2)
            assert list(meter_models) == [1, 201]
            t0 = time.monotonic()
            rr = await c.read_holding_registers(stage_models[701], count=50, device_id=1)
            elapsed = time.monotonic() - t0
            assert not rr.isError()
            # 8 request bytes + 105 response bytes at 10 bits each: the line cannot be faster
            assert elapsed >= 113 * 10 / 115200
            # the same image as over TCP
            host, port, _ = addr_of(plant, "power_stage")
            t = AsyncModbusTcpClient(host, port=port, timeout=0.5, retries=0)
            await t.connect()
            try:
                img = plant.stage_dev.dev.image
                await t.write_registers(img.address(704, "WSetRvrtTms"), [0, 7], device_id=1)
                rr = await c.read_holding_registers(img.address(704, "WSetRvrtTms"), count=2, device_id=1)
                assert rr.registers == [0, 7]
            finally:
                t.close()
        finally:
            c.close()


def test_cli_prints_addresses_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    conf = tmp_path / "plant.toml"
    conf.write_text("[site]\nhouse_load_w = 1500.0\n")
    exe = Path(sys.executable).parent / "v2g-hil"
    proc = subprocess.Popen(
        [str(exe), "plant", "--config", str(conf), "--status-s", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(4)]
        assert lines[0].startswith("power_stage tcp 127.0.0.1:")
        assert lines[0].endswith(" unit 1")
        assert lines[1].startswith("site_meter tcp 127.0.0.1:")
        assert lines[2] == "ready"
        assert "load=1500W" in lines[3]
        assert "grid=240.0V/60.00Hz" in lines[3]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err


def test_cli_refuses_a_bad_plant_file(tmp_path: Path) -> None:
    conf = tmp_path / "plant.toml"
    conf.write_text("[site]\nhouse_lod_w = 1500.0\n")
    exe = Path(sys.executable).parent / "v2g-hil"
    res = subprocess.run(
        [str(exe), "plant", "--config", str(conf)], capture_output=True, text=True, timeout=30, check=False
    )
    assert res.returncode == 2
    assert "house_lod_w" in res.stderr
    assert str(conf) in res.stderr
    assert os.path.exists(conf)


async def test_controller_heartbeat_holds_off_reversion_and_opctl_stops(
    plant: Plant, stage_client: AsyncModbusTcpClient
) -> None:
    img = plant.stage_dev.dev.image
    hb = img.address(715, "ControllerHb")
    await stage_client.write_registers(img.address(704, "WSetRvrtTms"), [0, 2], device_id=1)
    await stage_client.write_registers(img.address(704, "WSet"), [0, 2000], device_id=1)
    await stage_client.write_registers(img.address(704, "WSetEna"), [1], device_id=1)
    t0 = plant.t_s
    await plant.wait_until(t0 + 1.0)
    await stage_client.write_registers(hb, [0, 1], device_id=1)  # heartbeat only, no new setpoint
    await asyncio.sleep(0.1)
    rr = await stage_client.read_holding_registers(img.address(704, "WSetRvrtRem"), count=2, device_id=1)
    assert rr.registers[1] in (1, 2)  # the timer started again: about 2 s left
    await plant.wait_until(t0 + 2.5)  # 2.5 s after the setpoint, 1.5 s after the heartbeat
    assert not plant.stage.reverted
    await plant.wait_until(t0 + 4.0)
    assert plant.stage.reverted
    assert plant.stage.wset_w == 0.0
    # OpCtl STOP ceases at once, START brings it back through the enter-service ramp
    await stage_client.write_registers(img.address(704, "WSet"), [0, 2000], device_id=1)
    await stage_client.write_registers(img.address(715, "OpCtl"), [0], device_id=1)
    await asyncio.sleep(0.05)
    assert plant.stage.state == "off"
    assert plant.stage.p_ac_w == 0.0
    rr = await stage_client.read_holding_registers(img.address(701, "InvSt"), count=1, device_id=1)
    assert rr.registers == [0]
    await stage_client.write_registers(img.address(715, "OpCtl"), [1], device_id=1)
    await asyncio.sleep(0.05)
    assert plant.stage.state == "ramp"


async def test_inverter_restart_goes_silent_drops_connections_and_comes_back_stopped(
    plant: Plant, stage_client: AsyncModbusTcpClient
) -> None:
    img = plant.stage_dev.dev.image
    await stage_client.write_registers(img.address(704, "WSetRvrtTms"), [0, 10], device_id=1)
    await stage_client.write_registers(img.address(704, "WSet"), [0, 2000], device_id=1)
    await stage_client.write_registers(img.address(704, "WSetEna"), [1], device_id=1)
    host, port, _ = addr_of(plant, "power_stage")
    reader, writer = await asyncio.open_connection(host, port)  # a client connected before the restart
    await asyncio.sleep(0.5)
    assert plant.snapshot()["p_ev_w"] > 1900.0
    plant.apply(ev.InverterRestart(offline_s=0.6, stopped=True))
    assert plant.snapshot()["p_ev_w"] == 0.0
    with pytest.raises(ModbusIOException):  # off the bus while it restarts
        await stage_client.read_holding_registers(40000, count=2, device_id=1)
    assert not reader.at_eof()
    # At power-on the device has forgotten every connection.
    assert await asyncio.wait_for(reader.read(1), 2.0) == b""
    writer.close()
    await writer.wait_closed()
    c = AsyncModbusTcpClient(host, port=port, timeout=0.5, retries=0)
    await c.connect()
    try:

        async def raw(mid: int, path: str, count: int = 1) -> list[int]:
            rr = await c.read_holding_registers(img.address(mid, path), count=count, device_id=1)
            return list(rr.registers)

        assert await raw(701, "InvSt") == [0]  # OFF: stopped, waiting for a start command
        assert await raw(715, "OpCtl") == [0]
        assert await raw(703, "ES") == [1]
        assert await raw(704, "WSetEna") == [0]
        assert await raw(704, "WSetRvrtTms", 2) == [0, 0]
        assert await raw(704, "WSet", 2) == [0, 0]
        # A controller that starts it and writes a setpoint again gets its output back.
        await c.write_registers(img.address(715, "OpCtl"), [1], device_id=1)
        await c.write_registers(img.address(704, "WSet"), [0, 2000], device_id=1)
        await c.write_registers(img.address(704, "WSetEna"), [1], device_id=1)
        t_start = plant.t_s
        await plant.wait_until(t_start + plant.cfg.power_stage.es_ramp_s + 0.5)
        assert await raw(701, "InvSt") == [3]
        assert plant.snapshot()["p_ev_w"] > 1900.0
    finally:
        c.close()
