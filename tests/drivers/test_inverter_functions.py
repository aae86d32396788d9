"""The inverter's own 1547 functions (drivers/sunspec/functions.py) against the bench's SunSpec
inverter: the commissioned settings written with the adopt protocol and read back, functions the
daemon owns disabled in the inverter, and every failure reported as the stage's ``config_problem``
naming the function, the point, the value expected and the value read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from drivers.errors import DriverError
from drivers.sunspec.functions import FunctionsPlan, plan_from_settings
from edge.settings import Settings
from hil.plant import Plant
from hil.plant import config as plant_config
from tests.daemon.bench_support import settings_for
from tests.drivers.conftest import BuildDrivers
from tests.drivers.test_write_path import WriteLog, plant_stage

INVERTER_OWNS = {
    "volt_var": "inverter",
    "volt_watt": "inverter",
    "frequency_droop": "inverter",
    "voltage_trip": "inverter",
    "frequency_trip": "inverter",
    "enter_service": "inverter",
    "anti_islanding": "inverter",
}


def plan_for(settings: Settings) -> FunctionsPlan:
    assert settings.grid is not None
    return plan_from_settings(settings.functions, settings.grid)


@pytest.fixture
async def plant(request: pytest.FixtureRequest) -> AsyncIterator[Plant]:
    overrides: dict[str, Any] = getattr(request, "param", {})
    p = Plant(plant_config.load(None, {"power_stage": overrides}))
    await p.start()
    yield p
    await p.stop()


@pytest.mark.parametrize("plant", [{"category": "III"}], indirect=True)
async def test_inverter_owned_functions_are_adopted_and_read_back(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    settings = settings_for(plant, functions=INVERTER_OWNS)
    g = settings.grid
    assert g is not None
    stage = await plant_stage(plant, drivers_factory)
    assert not plant.stage.vv_ena  # the plant starts with its volt-var off
    log = WriteLog(plant)
    report = await stage.configure_functions(plan_for(settings))
    assert report.ok, report.problems
    assert (await stage.read()).config_problem is None
    # Adopted where the inverter's active set differed (its volt-var/volt-watt curves, its category III
    # voltage trips); its frequency trips and droop already held the 1547 defaults: left alone.
    adopted = {mid for mid, path in log.points() if path in ("AdptCrvReq", "AdptCtlReq")}
    assert adopted == {705, 706, 707, 708}
    assert (703, "ESDlyTms") in log.points()

    st = plant.stage
    vv = g.volt_var
    assert st.vv_ena and st.droop_ena and plant.stage_dev.vw_ena
    expected_vv = [(vv.v1_pu, vv.q1_pu), (vv.v2_pu, vv.q2_pu), (vv.v3_pu, vv.q3_pu), (vv.v4_pu, vv.q4_pu)]
    assert [x for pt in st.vv_curve for x in pt] == pytest.approx(
        [x for pt in expected_vv for x in pt], abs=1e-3
    )
    assert st.vv_olrt_s == vv.olrt_s
    fd = g.freq_droop
    assert (st.droop.db_of_hz, st.droop.k_of, st.droop.olrt_s) == pytest.approx(
        (fd.db_of_hz, fd.k_of, fd.olrt_s)
    )
    vt, ft = g.voltage_trip, g.frequency_trip
    lv = [x for s in (vt.uv1, vt.uv2) if s.enabled for x in (s.pickup_pu, s.clearing_s)]
    hf = [x for s in (ft.of1, ft.of2) if s.enabled for x in (s.pickup_hz, s.clearing_s)]
    assert [x for pt in st.lv.points for x in pt] == pytest.approx(lv)
    assert [x for pt in st.hf.points for x in pt] == pytest.approx(hf)
    assert st.es_delay_s == round(g.enter_service.delay_s)
    dev = plant.stage_dev.dev
    assert dev.get(707, "Crv[0].MomCess.ActPt") == (1 if g.ride_through.momentary_cessation else 0)

    # Configured again (as after a reconnect): everything already holds, nothing is written.
    log.requests.clear()
    report = await stage.configure_functions(plan_for(settings))
    assert report.ok, report.problems
    assert log.requests == []


async def test_a_failed_adopt_is_a_config_problem_and_the_function_stays_off(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    plant.stage_dev.fail_adopt = {705}
    stage = await plant_stage(plant, drivers_factory)
    report = await stage.configure_functions(plan_for(settings_for(plant, functions=INVERTER_OWNS)))
    assert not report.ok
    assert "volt_var: model 705 AdptCrvRslt FAILED for curve set 2 (AdptCrvReq = 2)" in report.problems
    assert any(
        p.startswith("volt_var: model 705 Ena expected ENABLED (owner 'inverter'), read DISABLED")
        for p in report.problems
    )
    assert all(p.startswith("volt_var") for p in report.problems), report.problems
    assert not plant.stage.vv_ena
    problem = (await stage.read()).config_problem
    assert problem is not None
    assert "AdptCrvRslt FAILED" in problem


async def test_a_curve_the_inverter_clamps_is_named_with_expected_and_read_values(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    plant.stage_dev.vv_clamp_pct = 30.0
    settings = settings_for(plant, functions=INVERTER_OWNS)
    assert settings.grid is not None
    q1 = settings.grid.volt_var.q1_pu * 100.0
    stage = await plant_stage(plant, drivers_factory)
    report = await stage.configure_functions(plan_for(settings))
    assert not report.ok
    assert (
        f"volt_var: model 705 Crv[0].Pt[0].Var expected {q1:g} (raw {round(q1 * 10)}), read 30.0 (raw 300)"
        in report.problems
    ), report.problems


@pytest.mark.parametrize("plant", [{"volt_var": True, "freq_droop": True}], indirect=True)
async def test_functions_the_daemon_owns_are_disabled_in_the_inverter(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    before = (plant.stage.vv_ena, plant.stage.droop_ena)
    settings = settings_for(plant, functions={"volt_var": "daemon", "frequency_droop": "daemon"})
    stage = await plant_stage(plant, drivers_factory)
    report = await stage.configure_functions(plan_for(settings))
    assert report.ok, report.problems
    assert before == (True, True)
    assert (plant.stage.vv_ena, plant.stage.droop_ena) == (False, False)


@pytest.mark.parametrize("plant", [{"volt_var": True, "anti_islanding": False}], indirect=True)
async def test_a_function_locked_on_and_anti_islanding_off_refuse_energizing(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    plant.stage_dev.refuse_writes = {(705, "Ena"), (704, "AntiIslEna")}
    settings = settings_for(plant, functions={"volt_var": "daemon"})
    stage = await plant_stage(plant, drivers_factory)
    report = await stage.configure_functions(plan_for(settings))
    assert not report.ok
    problems = " | ".join(report.problems)
    assert "volt_var: model 705 Ena expected DISABLED (owner 'daemon'), read ENABLED" in problems
    assert "anti_islanding: model 704 AntiIslEna expected ENABLED, write failed" in problems
    assert (
        "anti_islanding: model 704 AntiIslEna expected ENABLED (owner 'inverter'), read DISABLED" in problems
    )
    assert (await stage.read()).config_problem == report.message()


async def test_after_a_contact_loss_the_first_reading_verifies_the_functions_again(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    stage = await plant_stage(plant, drivers_factory, backoff_s=0.05, backoff_max_s=0.05)
    assert (await stage.configure_functions(plan_for(settings_for(plant, functions=INVERTER_OWNS)))).ok
    plant.set_link("power_stage", False)
    with pytest.raises(DriverError, match="no answer"):
        await stage.read()
    assert stage.config_problem() == (
        "the inverter's grid functions are not verified since the last contact loss or restart"
    )
    # Meanwhile the inverter lost its volt-var enable (a replaced or reset unit).
    plant.stage_dev.dev.set_raw(705, "Ena", 0)
    plant.stage.vv_ena = False
    plant.set_link("power_stage", True)
    await asyncio.sleep(0.1)
    reading = await stage.read()
    assert reading.config_problem is None
    assert plant.stage.vv_ena  # configured again before that reading was published


async def test_certified_trips_stay_on_when_the_daemon_owns_the_trips(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    """The daemon owning the trips adds its own; it never switches the inverter's certified ones off
    (docs/safety.md): no write to 707-710, and they must read ENABLED."""
    settings = settings_for(plant, functions={"voltage_trip": "daemon", "frequency_trip": "daemon"})
    stage = await plant_stage(plant, drivers_factory)
    log = WriteLog(plant)
    report = await stage.configure_functions(plan_for(settings))
    assert report.ok, report.problems
    assert not [p for p in log.points() if p[0] in (707, 708, 709, 710)], log.points()
    dev = plant.stage_dev.dev
    assert all(dev.get_raw(mid, "Ena") == 1 for mid in (707, 708, 709, 710))


async def test_a_restart_seen_only_in_the_settings_verifies_the_functions_again(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    """A restart without a contact loss (a gateway keeps the session; no heartbeat counter): the
    reversion settings read back lost, so the functions are configured and verified again too."""
    settings = settings_for(plant, functions=INVERTER_OWNS)
    stage = await plant_stage(plant, drivers_factory)
    assert (await stage.configure_functions(plan_for(settings))).ok
    await stage.write_setpoint(1000.0)  # arms the reversion
    dev = plant.stage_dev.dev
    assert dev.get_raw(705, "Ena") == 1 and dev.get_raw(704, "WSetRvrtTms") not in (None, 0)
    dev.set_raw(704, "WSetRvrtTms", 0)  # the device came back with factory values
    dev.set_raw(705, "Ena", 0)
    await stage.refresh()
    reading = await stage.read()
    assert reading.config_problem is None
    assert dev.get_raw(705, "Ena") == 1


async def test_an_inverter_shipped_with_constant_pf_on_has_it_switched_off_or_refuses(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    """Constant PF on in the inverter would fight the daemon's own Q: it is written off and read
    back; where the inverter keeps it on, energizing is refused naming the point."""
    settings = settings_for(plant)
    assert settings.functions.constant_pf != "inverter"
    dev = plant.stage_dev.dev
    dev.set_raw(704, "PFWInjEna", 1)
    stage = await plant_stage(plant, drivers_factory)
    report = await stage.configure_functions(plan_for(settings))
    assert report.ok, report.problems
    assert dev.get_raw(704, "PFWInjEna") == 0
    dev.set_raw(704, "PFWInjEna", 1)
    plant.stage_dev.refuse_writes = {(704, "PFWInjEna")}
    await stage.refresh()  # the cache learns the register changed
    report = await stage.configure_functions(plan_for(settings))
    assert not report.ok
    assert any("constant_pf: model 704 PFWInjEna expected DISABLED" in p for p in report.problems), (
        report.problems
    )


@pytest.mark.parametrize("plant", [{"category": "III"}], indirect=True)
async def test_the_momentary_cessation_thresholds_reach_the_inverter_as_set(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    # The profile fixes 0.50 / 1.10 pu for 1547; other profiles (EN 50549) let a site move them, and
    # the inverter must then cease where the settings say, not at its own category's thresholds.
    settings = settings_for(
        plant,
        functions=INVERTER_OWNS,
        commissioning={"abnormal_category": "III"},
        grid={"voltage_trip": {}},  # its example override (uv1 10 s) is a Category II value
    )
    g = settings.grid
    assert g is not None and g.ride_through.momentary_cessation
    rt = msgspec.structs.replace(g.ride_through, mc_low_pu=0.62, mc_high_pu=1.13)
    grid = msgspec.structs.replace(g, ride_through=rt)
    assert not plant.stage.mc_lv.points and not plant.stage.mc_hv.points  # none before
    stage = await plant_stage(plant, drivers_factory)
    report = await stage.configure_functions(plan_from_settings(settings.functions, grid))
    assert report.ok, report.problems
    assert [x for pt in plant.stage.mc_lv.points for x in pt] == pytest.approx([0.62, 0.0])
    assert [x for pt in plant.stage.mc_hv.points for x in pt] == pytest.approx([1.13, 0.0])
