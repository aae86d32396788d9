"""Legacy SunSpec control (123 immediate controls, 124 storage) of a power stage without 704.

Against the bench plant serving a 123/124-only inverter (``power_stage.sunspec_controls``), every
write counted at its server: the stage discharges and charges through 124's pinned window, 123 caps
the export, the reversion timers are armed on change only and fire when the writes stop, charging is
refused when 123 is all there is, and a restarted inverter is re-armed before the first set point.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from drivers.errors import DriverError
from drivers.sunspec.power_stage import SunSpecPowerStage
from hil.plant import Plant
from hil.plant import config as plant_config
from hil.plant.events import InverterRestart
from hil.plant.stage import PowerStage
from tests.drivers.conftest import BuildDrivers
from tests.drivers.test_write_path import WriteLog

SETTINGS = {
    (124, "StorCtl_Mod"),
    (124, "InOutWRte_RvrtTms"),
    (123, "WMaxLim_Ena"),
    (123, "WMaxLimPct_RvrtTms"),
}
SETPOINTS = {(124, "OutWRte"), (124, "InWRte"), (123, "WMaxLimPct")}
IDLE_LOSS_W = 15.0  # the plant stage draws this while running at 0 W


@pytest.fixture
async def plant_factory() -> AsyncIterator[Callable[..., Any]]:
    made: list[Plant] = []

    async def make(controls: str, **stage: Any) -> Plant:
        p = Plant(plant_config.load(None, {"power_stage": {"sunspec_controls": controls, **stage}}))
        made.append(p)
        await p.start()
        return p

    yield make
    for p in made:
        await p.stop()


async def legacy_stage(
    plant: Plant, make: BuildDrivers, revert_s: int = 10, *, reversion_safe: bool = True
) -> SunSpecPowerStage:
    addr = next(a for a in plant.addresses if a.name == "power_stage" and a.transport == "tcp")
    link = {"transport": "tcp", "host": addr.host, "port": addr.port, "timeout_s": 0.3, "retries": 0}
    cfg = {
        "bus": "link",
        "unit_id": 1,
        "role": "power_stage",
        "protocol": "sunspec",
        "setpoint_revert_s": revert_s,
        "legacy_reversion_safe": reversion_safe,
    }
    d = await make({"link": link}, {"inv": cfg})
    stage = d.power_stage
    assert isinstance(stage, SunSpecPowerStage)
    return stage


async def expect_p(plant: Plant, stage: SunSpecPowerStage, target_w: float, tol_w: float = 40.0) -> None:
    """P as the driver reads it reaches ``target_w`` within ``tol_w`` (the stage's lag is 0.1 s; up to
    3 s of plant time are given, as a loaded test host may step the plant late)."""
    t_end = plant.t_s + 3.0
    while True:
        await plant.wait_until(plant.t_s + 0.1)
        p = (await stage.read()).p_w
        assert p is not None
        if abs(p - target_w) <= tol_w:
            return
        assert plant.t_s < t_end, f"P reads {p:g} W, expected {target_w:g} W within {tol_w:g} W"


async def back_in_contact(stage: SunSpecPowerStage) -> None:
    """Read until the device answers again (its back-off expires after the failed reads)."""
    for _ in range(40):
        try:
            await stage.read()
            return
        except DriverError:
            await asyncio.sleep(0.1)
    raise AssertionError("the device did not answer again")


async def test_a_123_124_inverter_discharges_and_charges(
    plant_factory: Callable[..., Any], drivers_factory: BuildDrivers
) -> None:
    plant = await plant_factory("123+124")
    stage = await legacy_stage(plant, drivers_factory)
    dev = plant.stage_dev.dev
    r = await stage.read()
    assert r.ev_soc == pytest.approx(0.6, abs=0.01)  # 124 ChaState
    assert stage.device.instance(704) is None

    await stage.write_setpoint(3000.0)
    # 3000 W of WChaMax 7400 W is 40.54 %, raw 405 at InOutWRte_SF -1: the window pinned at 40.5 %.
    assert dev.get_raw(124, "StorCtl_Mod") == 3
    assert dev.get(124, "OutWRte") == pytest.approx(40.5)
    assert dev.get(124, "InWRte") == pytest.approx(-40.5)
    assert dev.get_raw(124, "InOutWRte_RvrtTms") == 10
    assert dev.get_raw(123, "WMaxLim_Ena") == 1
    assert dev.get(123, "WMaxLimPct") == pytest.approx(40.5)  # the same cap on the export
    assert dev.get_raw(123, "WMaxLimPct_RvrtTms") == 10
    await expect_p(plant, stage, 0.405 * 7400 - IDLE_LOSS_W, 40)

    await stage.write_setpoint(-2000.0)  # charging: 27.0 % into the battery
    assert dev.get(124, "InWRte") == pytest.approx(27.0)
    assert dev.get(124, "OutWRte") == pytest.approx(-27.0)
    assert dev.get(123, "WMaxLimPct") == 0.0  # no export allowed while charging
    await expect_p(plant, stage, -0.27 * 7400 - IDLE_LOSS_W, 40)

    await stage.write_setpoint(0.0)
    assert (dev.get(124, "OutWRte"), dev.get(124, "InWRte")) == (0.0, 0.0)
    await expect_p(plant, stage, -IDLE_LOSS_W, 10)

    with pytest.raises(DriverError, match=r"no reactive set point") as e:
        await stage.write_setpoint(1000.0, 500.0)
    assert e.value.kind == "unsupported"

    await stage.write_setpoint(2000.0)
    await stage.stop()  # zero, then 123 Conn = DISCONNECT
    assert dev.get(124, "OutWRte") == 0.0
    assert dev.get_raw(123, "Conn") == 0
    t_end = plant.t_s + 2.0
    while plant.stage.state != "off" and plant.t_s < t_end:
        await plant.wait_until(plant.t_s + 0.05)
    assert plant.stage.state == "off"
    await stage.resume()
    assert dev.get_raw(123, "Conn") == 1


async def test_settings_are_written_on_change_only(
    plant_factory: Callable[..., Any], drivers_factory: BuildDrivers
) -> None:
    plant = await plant_factory("123+124")
    stage = await legacy_stage(plant, drivers_factory)
    log = WriteLog(plant)
    await stage.write_setpoint(1000.0)
    # Power-on: no mode, no reversion. Each setting once (four points, none adjacent: four requests),
    # then the set points: OutWRte and InWRte adjacent (one request), WMaxLimPct.
    assert sorted(log.points()) == sorted(SETTINGS | SETPOINTS)
    assert len(log.requests) == 6
    log.requests.clear()
    for i in range(50):
        await stage.write_setpoint(1000.0 + 10 * i)
        await stage.heartbeat()  # no 715: the last set point again
        if i % 10 == 9:
            await stage.refresh()  # reads 120, 123, 124: nothing contradicts the settings
    assert len(log.requests) == 200, "two requests per set point, nothing else"
    assert set(log.points()) == SETPOINTS

    # Contact lost and back: what the device holds is read again, not written again.
    plant.set_link("power_stage", False)
    with pytest.raises(DriverError) as e:
        await stage.read()
    assert e.value.kind == "timeout"
    plant.set_link("power_stage", True)
    await back_in_contact(stage)
    log.requests.clear()
    await stage.write_setpoint(1500.0)
    assert set(log.points()) == SETPOINTS


async def test_reversion_fires_when_writes_stop(
    plant_factory: Callable[..., Any], drivers_factory: BuildDrivers
) -> None:
    plant = await plant_factory("123+124")
    stage = await legacy_stage(plant, drivers_factory, revert_s=1)
    dev = plant.stage_dev.dev
    await stage.write_setpoint(3000.0)
    t_end = plant.t_s + 2.0
    while plant.t_s < t_end:  # the daemon's cycle: writes keep the 1 s timers from running out
        await stage.heartbeat()
        await asyncio.sleep(0.1)
    assert not plant.stage.rte_reverted and not plant.stage.lim_reverted
    assert (await stage.read()).p_w == pytest.approx(0.405 * 7400 - IDLE_LOSS_W, abs=40)

    await plant.wait_until(plant.t_s + 1.5)  # no write for longer than InOutWRte_RvrtTms
    assert plant.stage.rte_reverted and plant.stage.lim_reverted
    # The limits read back as the device's defaults and the stage is back in its own mode (0 W here).
    assert (dev.get(124, "OutWRte"), dev.get(124, "InWRte"), dev.get(123, "WMaxLimPct")) == (
        100.0,
        100.0,
        100.0,
    )
    await expect_p(plant, stage, -IDLE_LOSS_W, 10)

    # The settings survived the reversion: the next set point needs no re-arming.
    log = WriteLog(plant)
    await stage.write_setpoint(2000.0)
    assert set(log.points()) == SETPOINTS
    await expect_p(plant, stage, 0.27 * 7400 - IDLE_LOSS_W, 40)


def test_the_plant_reversion_timers_on_an_injected_clock() -> None:
    cfg = plant_config.load(None, {"power_stage": {"sunspec_controls": "123+124"}}).power_stage
    st = PowerStage(cfg, 60.0)
    st.storctl_mod, st.rte_rvrt_tms_s, st.lim_rvrt_tms_s = 3, 5.0, 3.0
    st.wmax_lim_ena = True
    st.set_rates(20.0, -20.0, t_s=10.0)
    st.set_limit_pct(20.0, t_s=11.0)
    kw: dict[str, Any] = {
        "dt_s": 0.005,
        "v_avg_pu": 1.0,
        "v_min_pu": 1.0,
        "v_max_pu": 1.0,
        "f_hz": 60.0,
        "islanded": False,
        "ev_plugged": True,
        "soc": 0.6,
        "soc_min": 0.1,
        "soc_max": 1.0,
        "ev_chg_w": 11000.0,
        "ev_dis_w": 11000.0,
    }
    st.step(t_s=13.99, **kw)
    assert (st.out_w_rte_pct, st.wmax_lim_pct) == (20.0, 20.0)
    assert st.p_target_w == pytest.approx(0.2 * 7400)
    st.step(t_s=14.0, **kw)  # 123: 3 s after its last write
    assert st.lim_reverted and st.wmax_lim_pct == 100.0
    assert not st.rte_reverted
    st.step(t_s=14.99, **kw)
    assert not st.rte_reverted
    st.step(t_s=15.0, **kw)  # 124: 5 s after its last write
    assert st.rte_reverted and (st.out_w_rte_pct, st.in_w_rte_pct) == (100.0, 100.0)
    assert st.p_target_w == 0.0  # its own mode (own_p_w = 0)
    st.set_rates(-10.0, 10.0, t_s=16.0)  # a write restarts the timer
    st.step(t_s=20.99, **kw)
    assert not st.rte_reverted and st.p_target_w == pytest.approx(-0.1 * 7400)


async def test_123_alone_limits_export_and_refuses_charging(
    plant_factory: Callable[..., Any], drivers_factory: BuildDrivers
) -> None:
    plant = await plant_factory("123", own_p_w=5000.0)  # a device that exports 5 kW in its own mode
    stage = await legacy_stage(plant, drivers_factory, revert_s=1)
    assert stage.device.instance(124) is None
    log = WriteLog(plant)
    with pytest.raises(DriverError, match=r"123 WMaxLimPct only limits the power output") as e:
        await stage.write_setpoint(-1000.0)
    assert e.value.kind == "range"
    assert "no model 124" in str(e.value)
    assert log.requests == []

    await stage.write_setpoint(2000.0)  # 27.0 % of WMax 7400 W
    assert plant.stage_dev.dev.get(123, "WMaxLimPct") == pytest.approx(27.0)
    t_end = plant.t_s + 1.5
    while plant.t_s < t_end:
        await stage.heartbeat()
        await asyncio.sleep(0.1)
    assert (await stage.read()).p_w == pytest.approx(0.27 * 7400 - IDLE_LOSS_W, abs=40)
    # Reversion lifts the limit: the device returns to its own mode (this is why a legacy device's
    # own mode must be checked at commissioning).
    await plant.wait_until(plant.t_s + 1.5)
    assert plant.stage.lim_reverted
    await expect_p(plant, stage, 5000.0 - IDLE_LOSS_W)
    await stage.write_setpoint(0.0)  # the safe command: export capped at 0 %
    await expect_p(plant, stage, -IDLE_LOSS_W, 10)


async def test_a_restarted_legacy_inverter_is_re_armed_before_the_first_set_point(
    plant_factory: Callable[..., Any], drivers_factory: BuildDrivers
) -> None:
    plant = await plant_factory("123+124")
    stage = await legacy_stage(plant, drivers_factory)
    await stage.write_setpoint(2000.0)
    log = WriteLog(plant)
    plant.apply(InverterRestart(at_s=0.0, offline_s=0.5))
    with pytest.raises(DriverError):
        await stage.read()  # the restart shows as a timeout or a dropped connection
    await plant.wait_until(plant.t_s + 0.7)
    await back_in_contact(stage)
    assert plant.stage_dev.dev.get_raw(124, "StorCtl_Mod") == 0  # power-on values
    await stage.write_setpoint(2000.0)
    points = log.points()
    first_setpoint = min(i for i, p in enumerate(points) if p in SETPOINTS)
    assert set(points[:first_setpoint]) == SETTINGS, points
    assert plant.stage_dev.dev.get_raw(124, "InOutWRte_RvrtTms") == 10
    await expect_p(plant, stage, 0.27 * 7400 - IDLE_LOSS_W, 40)


async def test_a_legacy_stage_holds_until_commissioning_confirms_its_own_mode(
    plant_factory: Callable[..., Any], drivers_factory: BuildDrivers
) -> None:
    """Its reversion returns to the device's own mode, not 0 W: the stage reports a configuration
    problem (the cycle holds zero) until legacy_reversion_safe says the own mode was checked."""
    plant = await plant_factory("123+124")
    stage = await legacy_stage(plant, drivers_factory, reversion_safe=False)
    problem = (await stage.read()).config_problem
    assert problem is not None and "devices.inv.legacy_reversion_safe = true" in problem
    confirmed = await legacy_stage(plant, drivers_factory, reversion_safe=True)
    assert (await confirmed.read()).config_problem is None
