"""The inverter's own reactive modes (drivers/sunspec/functions.py) against the bench's SunSpec inverter:
constant PF and constant var (704) and watt-var (712, adopt protocol) owned by the inverter are written,
read back and then measured at the plant's output; only one reactive mode runs in the inverter (the
others are written off first); each mismatch is the stage's ``config_problem`` naming the function, the
point, the value expected and the value read.

Q is judged at the plant's output (701 through the driver) with IEEE 1547.1's accuracy, +-5 % of the
rating, against the settings' curve at the measured P. P is set through 704 ``WSet`` with the checked
writer rather than ``write_setpoint``: the power stage's set-point arm enables 704 ``VarSetEna`` (the
daemon's reactive channel), which an inverter-owned reactive mode must not have on.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest

from drivers.capabilities import PowerStageReading
from drivers.sunspec.functions import FunctionsPlan, plan_from_settings
from drivers.sunspec.power_stage import SunSpecPowerStage
from edge.settings import Settings
from hil.plant import Plant
from hil.plant import config as plant_config
from hil.plant.devices import StageDevice
from tests.daemon.bench_support import settings_for
from tests.drivers.conftest import BuildDrivers
from tests.drivers.test_write_path import WriteLog, plant_stage

# The default configuration gives volt-var to the daemon: one reactive mode at a time.
NO_REACTIVE = {"volt_var": "off", "constant_pf": "off", "constant_var": "off", "watt_var": "off"}
S_RATED_VA = 7400.0  # the plant's stage and the default configuration's inverter.s_rated_va
Q_TOL_VAR = 0.05 * S_RATED_VA  # IEEE 1547.1: Q within +-5 % of the rating
SETTLE_S = 15.0  # the 1547 response-time limit of these modes is 10 s
# A watt-var curve other than the plant's factory one (1547.1 characteristic 1), so that it is adopted.
WV_NOT_FACTORY = {"p2_pu": 0.6, "q3_pu": -0.25, "p2_charging_pu": -0.6, "q3_charging_pu": 0.25}


def owning(mode: str) -> dict[str, str]:
    return {**NO_REACTIVE, mode: "inverter"}


def plan_for(settings: Settings) -> FunctionsPlan:
    assert settings.grid is not None
    return plan_from_settings(settings.functions, settings.grid, settings.inverter)


@pytest.fixture
async def plant() -> AsyncIterator[Plant]:
    p = Plant(plant_config.load(None, {}))
    await p.start()
    yield p
    await p.stop()


def stage_device(plant: Plant) -> StageDevice:
    """The plant's SunSpec inverter (70x models), where faults are injected."""
    dev = plant.stage_dev
    assert isinstance(dev, StageDevice)
    return dev


async def run_at(stage: SunSpecPowerStage, p_w: float) -> None:
    """The inverter at ``p_w`` (> 0 discharge) through 704 WSet, VarSet* untouched."""
    c = stage._ctl_model()
    await stage.writer.write_settings(c, {"WSetEna": 1, "WSetMod": 1})
    await stage.writer.write_setpoints(c, {"WSet": p_w})


async def settled(
    stage: SunSpecPowerStage, p_w: float, q_of_p: Any, timeout_s: float = SETTLE_S
) -> PowerStageReading:
    """The first reading at ``p_w`` (+-5 % of the rating) whose Q is within +-5 % of the rating of
    ``q_of_p(measured P)``; fails with the last reading after ``timeout_s``."""
    last: PowerStageReading | None = None
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                last = await stage.read()
                p, q = last.p_w, last.q_var
                if (
                    p is not None
                    and q is not None
                    and abs(p - p_w) <= 0.05 * S_RATED_VA
                    and abs(q - q_of_p(p)) <= Q_TOL_VAR
                ):
                    return last
                await asyncio.sleep(0.1)
    except TimeoutError:
        got = None if last is None else (last.p_w, last.q_var)
        expected = None if last is None or last.p_w is None else q_of_p(last.p_w)
        raise AssertionError(
            f"not within {timeout_s} s: Q {expected} var +-{Q_TOL_VAR:g} at P {p_w:g} W; read (P, Q) = {got}"
        ) from None


def interp(points: Iterable[tuple[float, float]], x: float) -> float:
    """Piecewise linear through ``points`` (increasing x), flat beyond the ends."""
    pts = list(points)
    if x <= pts[0][0]:
        return pts[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return pts[-1][1]


def enables(plant: Plant) -> dict[str, Any]:
    """Every reactive mode's enable as the inverter holds it."""
    dev = plant.stage_dev.dev
    out = {f"704.{p}": dev.get_raw(704, p) for p in ("PFWInjEna", "PFWAbsEna", "VarSetEna")}
    out["705.Ena"] = dev.get_raw(705, "Ena")
    if any(lay.model.id == 712 for lay, _ in dev.image.layouts):
        out["712.Ena"] = dev.get_raw(712, "Ena")
    return out


def only_on(plant: Plant, *on: str) -> dict[str, int]:
    """``enables(plant)`` as it must read with only the ``on`` enables on."""
    return {k: 1 if k in on else 0 for k in enables(plant)}


async def shipped_with_other_modes_on(stage: SunSpecPowerStage, owned: str | None) -> None:
    """An inverter as it may come from the factory or another controller: every reactive mode other
    than ``owned`` on (written through Modbus, so that the plant's own state follows)."""
    c = stage._ctl_model()
    on: dict[str, float] = {}
    if owned != "constant_pf":
        on |= {"PFWInjEna": 1, "PFWAbsEna": 1}
    if owned != "constant_var":
        on |= {"VarSetEna": 1, "VarSetMod": 4}
    await stage.writer.write_settings(c, on)
    for mid, mode in ((705, "volt_var"), (712, "watt_var")):
        inst = stage.device.instance(mid)
        if inst is not None and owned != mode:
            await stage.writer.write_settings(await stage.device.read_model(inst), {"Ena": 1})


def written_at(log: WriteLog, mid: int, point: str, raw: int) -> int:
    """The index of the first request that wrote ``raw`` to ``point`` of model ``mid``."""
    for k, req in enumerate(log.requests):
        if (mid, point, raw) in req:
            return k
    raise AssertionError(f"{mid} {point} = {raw} never written; writes: {log.requests}")


# --- constant power factor -------------------------------------------------------------------------


async def test_constant_pf_owned_by_the_inverter_holds_its_excitation_both_ways(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    """One PF and excitation in the settings: written to PFWInj and PFWAbs, both enabled, every other
    reactive mode written off before; absorbing, Q < 0 whether the EV discharges or charges."""
    pf = 0.95
    settings = settings_for(
        plant, functions=owning("constant_pf"), grid={"constant_pf": {"pf": pf, "excitation": "absorb"}}
    )
    stage = await plant_stage(plant, drivers_factory)
    await shipped_with_other_modes_on(stage, "constant_pf")
    log = WriteLog(plant)
    report = await stage.configure_functions(plan_for(settings))
    assert report.ok, report.problems
    assert (await stage.read()).config_problem is None
    dev = plant.stage_dev.dev
    assert enables(plant) == only_on(plant, "704.PFWInjEna", "704.PFWAbsEna")
    pf_raw = round(pf / 10.0 ** dev.sf(704, "PFWInj.PF"))
    assert [dev.get_raw(704, p) for p in ("PFWInj.PF", "PFWInj.Ext", "PFWAbs.PF", "PFWAbs.Ext")] == [
        pf_raw,
        1,  # UNDER_EXCITED
        pf_raw,
        1,
    ]
    # No PF reversion: off where the inverter has it (written only where implemented).
    assert [dev.get_raw(704, p) for p in ("PFWInjEnaRvrt", "PFWAbsEnaRvrt")] in ([None, None], [0, 0])
    # The other modes were off before constant PF went on.
    on = written_at(log, 704, "PFWInjEna", 1)
    assert written_at(log, 704, "VarSetEna", 0) < on and written_at(log, 705, "Ena", 0) < on

    tan_phi = math.tan(math.acos(pf))
    for p_w in (5000.0, -5000.0):
        await run_at(stage, p_w)
        await settled(stage, p_w, lambda p: -abs(p) * tan_phi)


async def test_constant_pf_the_inverter_does_not_take_is_named_and_stays_off(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    stage_device(plant).refuse_writes = {(704, "PFWAbs.Ext")}
    settings = settings_for(
        plant, functions=owning("constant_pf"), grid={"constant_pf": {"pf": 0.95, "excitation": "absorb"}}
    )
    stage = await plant_stage(plant, drivers_factory)
    report = await stage.configure_functions(plan_for(settings))
    assert not report.ok
    assert any(
        p.startswith("constant_pf: model 704 PFWAbs.Ext expected 1 (raw 1), read 0") for p in report.problems
    ), report.problems
    assert (
        "constant_pf: model 704 PFWAbsEna expected ENABLED (owner 'inverter'), read DISABLED"
        in report.problems
    )
    assert all(p.startswith("constant_pf") for p in report.problems), report.problems
    assert (plant.stage_dev.dev.get_raw(704, "PFWInjEna"), plant.stage_dev.dev.get_raw(704, "PFWAbsEna")) == (
        0,
        0,
    )
    problem = (await stage.read()).config_problem
    assert problem is not None
    assert "PFWAbs.Ext expected 1" in problem


# --- constant var ----------------------------------------------------------------------------------


async def test_constant_var_owned_by_the_inverter_does_not_revert(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    """VarSetPct in % of S rated (VarSetMod VA_MAX_PCT), reversion off: with the 1 s reversion the
    inverter was shipped with (as a set-point arm leaves it), Q would fall back to 0 var a second
    after the last write."""
    q_pu = -0.3
    settings = settings_for(plant, functions=owning("constant_var"), grid={"constant_var": {"q_pu": q_pu}})
    stage = await plant_stage(plant, drivers_factory)
    await shipped_with_other_modes_on(stage, "constant_var")
    await stage.writer.write_settings(
        stage._ctl_model(),
        {"VarSetEnaRvrt": 1, "VarSetRvrtTms": 1, "VarSetRvrt": 0, "VarSetPctRvrt": 0},
    )
    report = await stage.configure_functions(plan_for(settings))
    assert report.ok, report.problems
    dev = plant.stage_dev.dev
    assert enables(plant) == only_on(plant, "704.VarSetEna")
    assert dev.get(704, "VarSetPct") == pytest.approx(q_pu * 100.0)
    assert [dev.get_raw(704, p) for p in ("VarSetMod", "VarSetEnaRvrt", "VarSetRvrtTms", "VarSetPri")] == [
        3,  # VA_MAX_PCT
        0,
        0,
        1,  # REACTIVE: Q kept, as the daemon's kernel does
    ]
    for p_w in (3000.0, -3000.0):
        await run_at(stage, p_w)
        await settled(stage, p_w, lambda _p: q_pu * S_RATED_VA)
    await asyncio.sleep(2.0)  # no write for twice the reversion time the inverter came with
    await settled(stage, -3000.0, lambda _p: q_pu * S_RATED_VA, timeout_s=0.5)


async def test_constant_var_in_a_mode_the_inverter_lacks_is_named(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    stage_device(plant).refuse_writes = {(704, "VarSetMod")}  # an inverter that takes vars only
    settings = settings_for(plant, functions=owning("constant_var"), grid={"constant_var": {"q_pu": 0.2}})
    stage = await plant_stage(plant, drivers_factory)
    report = await stage.configure_functions(plan_for(settings))
    assert not report.ok
    assert any(
        p.startswith("constant_var: model 704 VarSetMod expected 3 (raw 3), read 4") for p in report.problems
    ), report.problems
    assert (
        "constant_var: model 704 VarSetEna expected ENABLED (owner 'inverter'), read DISABLED"
        in report.problems
    )
    assert (await stage.read()).config_problem == report.message()


# --- watt-var --------------------------------------------------------------------------------------


async def test_watt_var_owned_by_the_inverter_is_adopted_read_back_and_followed(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    settings = settings_for(plant, functions=owning("watt_var"), grid={"watt_var": WV_NOT_FACTORY})
    g = settings.grid
    assert g is not None
    wv = g.watt_var
    stage = await plant_stage(plant, drivers_factory)
    await shipped_with_other_modes_on(stage, "watt_var")
    log = WriteLog(plant)
    report = await stage.configure_functions(plan_for(settings))
    assert report.ok, report.problems
    assert (await stage.read()).config_problem is None
    assert (712, "AdptCrvReq") in log.points()
    on = written_at(log, 712, "Ena", 1)
    assert max(written_at(log, 704, p, 0) for p in ("PFWInjEna", "PFWAbsEna", "VarSetEna")) < on
    assert written_at(log, 705, "Ena", 0) < on
    assert enables(plant) == {
        "704.PFWInjEna": 0,
        "704.PFWAbsEna": 0,
        "704.VarSetEna": 0,
        "705.Ena": 0,
        "712.Ena": 1,
    }
    # The active curve (set 1): P'3, P'2, P'1, P1, P2, P3 in % of WMax, Q in % of S rated.
    curve = [
        (wv.p3_charging_pu, wv.q3_charging_pu),
        (wv.p2_charging_pu, wv.q2_charging_pu),
        (wv.p1_charging_pu, wv.q1_charging_pu),
        (wv.p1_pu, wv.q1_pu),
        (wv.p2_pu, wv.q2_pu),
        (wv.p3_pu, wv.q3_pu),
    ]
    dev = plant.stage_dev.dev
    assert [dev.get_raw(712, f"Crv[0].{p}") for p in ("ActPt", "DeptRef", "Pri")] == [6, 3, 1]
    held = [(dev.get(712, f"Crv[0].Pt[{k}].W"), dev.get(712, f"Crv[0].Pt[{k}].Var")) for k in range(6)]
    assert [x for pt in held for x in pt] == pytest.approx([x * 100.0 for pt in curve for x in pt], abs=0.1)

    assert settings.inverter is not None
    p_rated_w = settings.inverter.p_rated_w
    for p_w in (0.75 * p_rated_w, -0.75 * p_rated_w, 0.3 * p_rated_w):
        await run_at(stage, p_w)
        await settled(stage, p_w, lambda p: interp(curve, p / p_rated_w) * S_RATED_VA)

    # Configured again (as after a reconnect): the curve already holds, nothing is adopted or written.
    log.requests.clear()
    report = await stage.configure_functions(plan_for(settings))
    assert report.ok, report.problems
    assert log.requests == []


async def test_a_watt_var_curve_the_inverter_fails_to_adopt_is_named_and_stays_off(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    stage_device(plant).fail_adopt = {712}
    stage = await plant_stage(plant, drivers_factory)
    settings = settings_for(plant, functions=owning("watt_var"), grid={"watt_var": WV_NOT_FACTORY})
    report = await stage.configure_functions(plan_for(settings))
    assert "watt_var: model 712 AdptCrvRslt FAILED for curve set 2 (AdptCrvReq = 2)" in report.problems
    assert "watt_var: model 712 Ena expected ENABLED (owner 'inverter'), read DISABLED" in report.problems
    assert any(
        p.startswith("watt_var: model 712 Crv[0].Pt[1].W expected -60 (raw -600), read -50")
        for p in report.problems
    ), report.problems
    assert plant.stage_dev.dev.get_raw(712, "Ena") == 0


async def test_watt_var_charging_points_are_converted_to_percent_of_wmax(plant: Plant) -> None:
    """712 takes P in % of WMax (the discharge rating); the settings' charging side is per unit of
    p_rated_charge_w. Without the ratings the plan refuses rather than guess."""
    settings = settings_for(plant, functions=owning("watt_var"), inverter={"p_rated_charge_w": 3700.0})
    assert settings.grid is not None and settings.inverter is not None
    wv = settings.grid.watt_var
    (f,) = [f for f in plan_for(settings).functions if f.name == "watt_var"]
    assert [f.curve[f"Pt[{k}].W"] for k in range(6)] == pytest.approx(
        [p * 100.0 * 3700.0 / 7400.0 for p in (wv.p3_charging_pu, wv.p2_charging_pu, wv.p1_charging_pu)]
        + [p * 100.0 for p in (wv.p1_pu, wv.p2_pu, wv.p3_pu)]
    )
    without = plan_from_settings(settings.functions, settings.grid)
    assert any(
        p.startswith("watt_var: owner 'inverter' needs the inverter ratings") for p in without.unsupported
    )


# --- the daemon's reactive channel -----------------------------------------------------------------


async def test_without_an_inverter_owned_reactive_mode_varset_is_left_to_the_set_points(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    """The daemon owning the reactive mode: 704 VarSetEna is its set point channel (armed by the power
    stage), not a mode to switch off; constant PF, volt-var and watt-var are written off."""
    settings = settings_for(plant, functions={**NO_REACTIVE, "volt_var": "daemon"})
    plan = plan_for(settings)
    assert plan.inverter_reactive is None
    stage = await plant_stage(plant, drivers_factory)
    await shipped_with_other_modes_on(stage, None)
    log = WriteLog(plant)
    report = await stage.configure_functions(plan)
    assert report.ok, report.problems
    assert (704, "VarSetEna") not in log.points()
    assert enables(plant) == only_on(plant, "704.VarSetEna")


async def test_set_points_stay_out_of_varset_while_the_inverter_owns_a_reactive_mode(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    """The set points' arm (VarSetEna on, VarSetMod VARS, a reversion to 0 var) would undo an
    inverter-owned constant var, and turn VarSet on beside constant PF: it leaves 704 VarSet* alone
    then, and a reactive set point is refused; back with the daemon, the next set point arms VarSet."""
    q_pu = -0.3
    stage = await plant_stage(plant, drivers_factory)
    dev = plant.stage_dev.dev
    settings = settings_for(plant, functions=owning("constant_var"), grid={"constant_var": {"q_pu": q_pu}})
    assert (await stage.configure_functions(plan_for(settings))).ok
    ratings = stage.ratings()
    assert ratings is not None and not ratings.q_setpoints  # what the daemon's dither checks
    log = WriteLog(plant)
    await stage.write_setpoint(3000.0, 0.0)
    assert not [p for p in log.points() if p[1].startswith("VarSet")], log.points()
    assert [dev.get_raw(704, p) for p in ("VarSetEna", "VarSetMod", "VarSetRvrtTms")] == [1, 3, 0]
    await settled(stage, 3000.0, lambda _p: q_pu * S_RATED_VA)
    # A reactive set point is dropped, the active power still written (an old export set point must
    # not stand until the reversion timer because Q could not go out).
    log.requests.clear()
    await stage.write_setpoint(4000.0, 500.0)
    assert not [p for p in log.points() if p[1].startswith("VarSet")], log.points()
    await settled(stage, 4000.0, lambda _p: q_pu * S_RATED_VA)

    pf = settings_for(plant, functions=owning("constant_pf"))
    assert (await stage.configure_functions(plan_for(pf))).ok
    await stage.write_setpoint(2000.0, 0.0)
    await stage.stop()
    assert dev.get_raw(704, "VarSetEna") == 0

    daemon = settings_for(plant, functions={**NO_REACTIVE, "volt_var": "daemon"})
    stage.use_functions(plan_for(daemon))  # as the daemon does on a settings change
    await stage.read()
    await stage.write_setpoint(2000.0, 1000.0)
    assert [dev.get_raw(704, p) for p in ("VarSetEna", "VarSetMod")] == [1, 4]
    ratings = stage.ratings()
    assert ratings is not None and ratings.q_setpoints


async def test_constant_var_given_back_by_the_inverter_stops_at_the_next_safe_write(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    """Constant var moved from the inverter to nobody: the mode goes back to var (the set points'
    own), so the safe write (VarSet = 0) stops the old percent setting before any set point arms the
    channel again; left in percent, Q would go on at the old setting at 0 W."""
    q_pu = -0.3
    stage = await plant_stage(plant, drivers_factory)
    owned = settings_for(plant, functions=owning("constant_var"), grid={"constant_var": {"q_pu": q_pu}})
    assert (await stage.configure_functions(plan_for(owned))).ok
    await run_at(stage, 3000.0)
    await settled(stage, 3000.0, lambda _p: q_pu * S_RATED_VA)
    released = settings_for(plant, functions=NO_REACTIVE)
    report = await stage.configure_functions(plan_for(released))
    assert report.ok, report.problems
    assert plant.stage_dev.dev.get_raw(704, "VarSetMod") == 4  # VARS
    await stage.write_setpoint(0.0, 0.0)
    await settled(stage, 0.0, lambda _p: 0.0)
