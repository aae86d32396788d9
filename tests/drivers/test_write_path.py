"""The checked write path (drivers/sunspec/write.py) and the power stage's write side built on it.

Against the bench's SunSpec inverter served by the plant (hil.plant), every write counted at the
server: model checks before anything is written, read-back verification, settings written on change
only, a safe command that goes out while reads fail, and an inverter restart re-armed before the first
set point. A pymodbus device whose action alters what it stores plays a device that does not keep what
it is told.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymodbus.constants import ExcCodes

from drivers.errors import DriverError
from drivers.sunspec import models as ssm
from drivers.sunspec.device import ModelValues
from drivers.sunspec.discovery import ModelInstance
from drivers.sunspec.power_stage import SunSpecPowerStage
from hil.plant import Plant
from hil.plant import config as plant_config
from hil.plant.events import InverterRestart
from hil.sunspec_server import SunSpecImage, charger_models
from tests.drivers.conftest import BuildDrivers, tcp_bus

STAGE = {"bus": "link", "unit_id": 1, "role": "power_stage", "protocol": "sunspec", "setpoint_revert_s": 10}
SETPOINTS = {(704, "WSet"), (704, "VarSet"), (715, "ControllerHb")}


class WriteLog:
    """Every client write the plant's power stage takes, as (model, point, raw) per request."""

    def __init__(self, plant: Plant) -> None:
        self.dev = plant.stage_dev.dev
        self.requests: list[list[tuple[int, str, Any]]] = []
        # (WSet raw, WSetRvrtTms raw, WSetEnaRvrt raw) at the moment of each WSet write.
        self.wset_with_reversion: list[tuple[Any, Any, Any]] = []
        self.dev.live.hooks.append(self.hook)

    def hook(self, address: int, values: list[int]) -> None:
        changes = self.dev.decode_write(address, values)
        self.requests.append(changes)
        for mid, path, raw in changes:
            if (mid, path) == (704, "WSet"):
                self.wset_with_reversion.append(
                    (raw, self.dev.get_raw(704, "WSetRvrtTms"), self.dev.get_raw(704, "WSetEnaRvrt"))
                )

    def points(self) -> list[tuple[int, str]]:
        return [(mid, path) for req in self.requests for mid, path, _ in req]


@pytest.fixture
async def plant() -> AsyncIterator[Plant]:
    p = Plant(plant_config.load(None, {}))
    await p.start()
    yield p
    await p.stop()


async def plant_stage(plant: Plant, make: BuildDrivers, **bus: Any) -> SunSpecPowerStage:
    addr = next(a for a in plant.addresses if a.name == "power_stage" and a.transport == "tcp")
    link = {"transport": "tcp", "host": addr.host, "port": addr.port, "timeout_s": 0.3, "retries": 0, **bus}
    d = await make({"link": link}, {"inv": STAGE})
    stage = d.power_stage
    assert isinstance(stage, SunSpecPowerStage)
    return stage


def offline_model(model_id: int, regs: dict[str, int] | None = None) -> ModelValues:
    """A model as the write path sees it, with raw point values (scale factors) set."""
    lay = ssm.layout(ssm.load(model_id), {})
    return ModelValues(
        lay, ModelInstance(model_id, 40002, lay.length), tuple(ssm.model_registers(lay, regs or {})), 0.0
    )


# --- the model checks --------------------------------------------------------------------------------


async def test_model_checks_refuse_before_anything_is_written(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    stage = await plant_stage(plant, drivers_factory)
    log = WriteLog(plant)
    c = stage._ctl_model()
    w = stage.writer
    cases = {
        "WSetRvrtTms": (-1.0, r"outside the uint32 range 0\.\.4294967294"),  # unsigned never negative
        "WSetRvrtRem": (5.0, r"read-only"),
        "WSet_SF": (0.0, r"scale factor \(sunssf\) is not writable"),
        "WSetMod": (7.0, r"not one of the enum's values \{W_MAX_PCT=0, WATTS=1\}"),
        "WSetPct": (4000.0, r"outside the int16 range -32767\.\.32767"),  # WSetPct_SF -1: raw 40000
        "WMaxLimPct": (-5.0, r"outside the uint16 range 0\.\.65534"),
        "WSetEna": (float("nan"), r"not a finite number"),
    }
    for path, (value, message) in cases.items():
        with pytest.raises(DriverError, match=message) as e:
            await w.write_settings(c, {path: value})
        assert e.value.kind == "range"
        assert f"704 {path}" in str(e.value)
        assert "nothing written" in str(e.value)
    # A refusal anywhere in the request refuses all of it.
    with pytest.raises(DriverError, match="WSetRvrtTms"):
        await w.write_settings(c, {"WSetEnaRvrt": 1.0, "WSetRvrtTms": -10.0})
    assert log.requests == []

    # Bitfields: only the bits the definition names (124 StorCtl_Mod: CHARGE=0, DiSCHARGE=1).
    storage = offline_model(124)
    assert w.raw(storage, "StorCtl_Mod", 3.0) == 3
    with pytest.raises(DriverError, match=r"sets bits 0x4 the definition does not name"):
        w.raw(storage, "StorCtl_Mod", 4.0)
    # Scale factors: engineering value -> raw, rounded half away from zero.
    ctl = offline_model(704, {"WSet_SF": 1, "WSetPct_SF": -1})
    assert w.raw(ctl, "WSet", -3705.0) == -371
    assert w.raw(ctl, "WSetPct", 12.34) == 123
    no_sf = offline_model(704)  # WSet_SF not implemented
    with pytest.raises(DriverError, match=r"scale factor WSet_SF is not implemented"):
        w.raw(no_sf, "WSet", 100.0)


async def test_a_device_that_does_not_keep_a_setting_is_named_by_the_read_back(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    img = SunSpecImage(charger_models())
    rvrt_tms = img.address(704, "WSetRvrtTms")

    async def clamp(fc: int, start: int, address: int, count: int, regs: list[int], values: Any) -> Any:
        # Accepts the write but keeps at most 5 s of reversion time (low word of the uint32).
        if values and address <= rvrt_tms + 1 < address + count:
            i = rvrt_tms + 1 - address
            values[i] = min(values[i], 5)
        return None

    srv = await modbus_tcp_server([img.sim_device(1, action=clamp)], ignore_missing_devices=True)
    d = await drivers_factory({"link": tcp_bus(srv)}, {"inv": STAGE})
    stage = d.power_stage
    assert isinstance(stage, SunSpecPowerStage)
    with pytest.raises(DriverError) as e:
        await stage.write_setpoint(1000.0, 0.0)
    text = str(e.value)
    assert "model 704 WSetRvrtTms written 10 (raw 10) read back 5 (raw 5)" in text, text
    assert not stage._armed
    # No set point went out: WSet still holds its initial 0.
    regs = await stage.link.read(img.address(704, "WSet"), 2)
    assert regs.values == (0, 0)


# --- writes on change only -----------------------------------------------------------------------------


async def test_reversion_is_written_once_then_only_set_points(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    stage = await plant_stage(plant, drivers_factory)
    log = WriteLog(plant)
    await stage.write_setpoint(1000.0, 200.0)
    first = set(log.points())
    assert {(704, "WSetRvrtTms"), (704, "VarSetRvrtTms"), (704, "WSetEna"), (704, "VarSetEna")} <= first
    # The plant's power-on state already enables reversion to 0 W: read first, those are not written.
    assert not {(704, "WSetEnaRvrt"), (704, "WSetRvrt"), (704, "VarSetEnaRvrt")} & first
    assert plant.stage.wset_rvrt_tms_s == 10.0
    assert plant.stage.varset_rvrt_tms_s == 10.0
    log.requests.clear()

    n = 50
    for k in range(n):
        await stage.write_setpoint(1000.0 + k, -100.0)
        await stage.heartbeat()
        if k % 10 == 0:
            await stage.refresh()  # the slow read of 704 finds the settings in place
    points = log.points()
    assert set(points) == SETPOINTS, set(points) - SETPOINTS
    assert len(log.requests) == 3 * n  # WSet, VarSet, ControllerHb: one request each per cycle
    assert plant.stage_dev.dev.get_raw(704, "WSet") == 1000 + n - 1


async def test_after_a_reconnect_settings_are_checked_not_rewritten(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    stage = await plant_stage(plant, drivers_factory, backoff_s=0.05, backoff_max_s=0.05)
    await stage.write_setpoint(500.0, 0.0)
    log = WriteLog(plant)
    plant.set_link("power_stage", False)
    with pytest.raises(DriverError) as e:
        await stage.read()
    assert e.value.kind == "timeout"
    plant.set_link("power_stage", True)
    await asyncio.sleep(0.1)
    await stage.write_setpoint(600.0, 0.0)
    # The device kept its settings: the read before writing found them, only the set points went out.
    assert set(log.points()) == {(704, "WSet"), (704, "VarSet")}
    assert stage._armed


# --- a safe command while the reads fail ---------------------------------------------------------------


async def test_zero_goes_out_while_reads_fail_and_a_power_set_point_does_not(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    img = SunSpecImage(charger_models())
    wset = img.address(704, "WSet")
    state = {"reads_fail": False}
    writes: list[tuple[int, list[int]]] = []

    async def action(fc: int, start: int, address: int, count: int, regs: list[int], values: Any) -> Any:
        if values:
            writes.append((address, list(values)))
            return None
        return ExcCodes.DEVICE_FAILURE if state["reads_fail"] else None

    srv = await modbus_tcp_server([img.sim_device(1, action=action)], ignore_missing_devices=True)
    bus = tcp_bus(srv, backoff_s=30.0, backoff_max_s=30.0)
    d = await drivers_factory({"link": bus}, {"inv": STAGE})
    stage = d.power_stage
    assert isinstance(stage, SunSpecPowerStage)
    await stage.write_setpoint(4000.0, 0.0)
    state["reads_fail"] = True
    with pytest.raises(DriverError, match="device failure"):
        await stage.read()
    assert stage.stats().failing  # in back-off for 30 s: nothing but urgent writes use the bus
    writes.clear()
    with pytest.raises(DriverError) as e:
        await stage.write_setpoint(3000.0, 0.0)
    assert e.value.kind == "backoff"
    assert writes == []
    await stage.write_setpoint(0.0, 0.0)  # the cycle's safe command
    assert writes[0][0] == wset
    assert writes[0][1] == [0, 0]
    assert len(writes) == 2  # WSet 0 and VarSet 0: the modes are known to hold, not written again
    writes.clear()
    await stage.stop()
    assert [a for a, _ in writes] == [wset, img.address(704, "VarSet"), img.address(715, "OpCtl")]


# --- an inverter restart -------------------------------------------------------------------------------


async def test_inverter_restart_rearms_and_verifies_before_the_first_set_point(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    stage = await plant_stage(plant, drivers_factory, backoff_s=0.1, backoff_max_s=0.2)
    log = WriteLog(plant)
    errors: list[str] = []

    async def cycles(until_s: float) -> None:
        while plant.t_s < until_s:
            for step in (stage.read, lambda: stage.write_setpoint(2000.0, 0.0), stage.heartbeat):
                try:
                    await step()
                except DriverError as e:
                    errors.append(e.kind)
            await asyncio.sleep(0.05)

    await cycles(plant.t_s + 1.0)
    assert stage._armed
    restart_at = len(log.requests)
    plant.apply(InverterRestart(offline_s=1.0))
    await cycles(plant.t_s + 4.0)
    after = log.requests[restart_at:]
    assert after, "nothing was written after the restart"
    # The restarted stage came back with reversion off (its power-on value): every set point written
    # after the restart found it re-armed to 10 s, read back before the set point.
    assert plant.stage.wset_rvrt_tms_s == 10.0
    assert log.wset_with_reversion, "no set point was written"
    for wset, tms, ena in log.wset_with_reversion:
        assert (tms, ena) == (10, 1), (wset, tms, ena)
    re_arm = next(i for i, req in enumerate(after) if any(p == "WSetRvrtTms" for _, p, _ in req))
    first_wset = next(i for i, req in enumerate(after) if any(p == "WSet" for _, p, _ in req))
    assert re_arm < first_wset
    assert "timeout" in errors or "disconnected" in errors
    assert plant.stage.wset_w == 2000.0
