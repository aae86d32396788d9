"""The estimator's API: samples, EV SoC fusion and reserve, limits (DC / AC / EV), persistence."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from ecm_support import duty, simulate

from edge.estimation import _ecm_ref as k
from edge.estimation.estimator import BatteryEstimator, ChargerEfficiency, EvLimits, SampleError
from edge.estimation.fusion import EvSocPolicy
from edge.estimation.profile import BatteryProfile, load_profile
from edge.estimation.record import VehicleRecord
from edge.state import StateStore


def files_bytes(folder: Path) -> bytes:
    return b"".join(f.read_bytes() for f in sorted(folder.iterdir()) if f.is_file())


def rested(nmc: BatteryProfile, soc: float = 0.6, seconds: int = 60) -> BatteryEstimator:
    est = BatteryEstimator(nmc, initial_soc=soc)
    v = float(np.interp(soc, nmc.ocv_soc, nmc.ocv_v)) * nmc.series
    for t in range(seconds):
        est.update(float(t), v, 0.0, 25.0)
    return est


def test_bad_samples_are_refused_by_name_and_leave_the_state(nmc: BatteryProfile) -> None:
    est = rested(nmc)
    soc = est.soc
    with pytest.raises(SampleError, match=r"pack_v_v = nan outside \[120.0, 483.84"):
        est.update(100.0, math.nan, 0.0, 25.0)
    with pytest.raises(SampleError, match=r"temp_c = 150.0 outside"):
        est.update(100.0, 370.0, 0.0, 150.0)
    with pytest.raises(SampleError, match=r"ev_soc = 1.5 outside"):
        est.update(100.0, 370.0, 0.0, 25.0, ev_soc=1.5)
    est.update(30.0, 370.0, 500.0, 25.0)  # earlier than the last sample: ignored
    assert est.rejected_samples == 4
    assert est.soc == soc


def test_initial_soc_from_ocv_when_unknown(nmc: BatteryProfile) -> None:
    est = BatteryEstimator(nmc)
    v = float(np.interp(0.42, nmc.ocv_soc, nmc.ocv_v)) * nmc.series
    est.update(0.0, v, 0.0, 25.0)
    assert est.soc == pytest.approx(0.42, abs=1e-3)
    with pytest.raises(ValueError, match=r"initial_soc = 2.0"):
        BatteryEstimator(nmc, initial_soc=2.0)


def test_recovers_from_a_wrong_start_on_the_model_itself(nmc: BatteryProfile) -> None:
    current = np.concatenate([np.zeros(300), duty(6000, amplitude_a=150.0)])
    s = simulate(nmc, current, soc0=0.7, temp_c=20.0)
    est = BatteryEstimator(nmc, initial_soc=0.5)
    for j in range(len(s.t_s)):
        est.update(float(s.t_s[j]), float(s.pack_v_v[j]), float(s.pack_i_a[j]), 20.0)
        if j > 900:
            assert abs(est.soc - s.soc[j]) < 0.01
    assert abs(est.soc - s.soc[-1]) < 0.003
    # The filter's own share is below 2 points; the rest is the unknown fade of a vehicle never seen
    # (the capacity's nameplate prior, 15 %, times the distance from full).
    assert est.soc_sigma < math.hypot(0.02, 0.15 * (1.0 - est.soc))


def test_ev_soc_is_checked_rejected_when_far_and_reserve_uses_the_lower(nmc: BatteryProfile) -> None:
    est = rested(nmc, 0.6)
    soc = est.soc
    v = float(np.interp(0.6, nmc.ocv_soc, nmc.ocv_v)) * nmc.series
    est.update(100.0, v, 0.0, 25.0, ev_soc=0.58)
    # A rested NMC pack's OCV tells its SoC better than the EV's figure can (its scale error is 3
    # points): the figure is checked, not fused.
    assert (est.ev.agreed, est.ev.fused, est.ev.rejected) == (1, 0, 0)
    assert est.soc == pytest.approx(soc, abs=1e-4)
    # With a fresh EV figure the reserve is on the EV's scale: the lower of its figure and our point.
    assert est.reserve_soc == pytest.approx(0.58)
    est.update(101.0, v, 0.0, 25.0, ev_soc=0.95)
    assert est.ev.rejected == 1
    assert est.soc < 0.62
    assert est.reserve_soc == pytest.approx(est.soc)  # a figure above ours never raises the reserve
    # An EV figure below ours wins while it is fresh; once stale, our 2-sigma lower bound judges.
    est.update(102.0, v, 0.0, 25.0, ev_soc=0.40)
    assert est.reserve_soc == pytest.approx(0.40)
    est.update(102.0 + EvSocPolicy().stale_s + 1.0, v, 0.0, 25.0)
    assert est.reserve_soc == pytest.approx(est.soc - 2.0 * est.soc_sigma)


def test_ev_soc_is_fused_down_to_its_own_error_and_repeated_figures_do_not_average() -> None:
    # On LFP's plateau the voltage says little: the EV's figure is worth fusing, but its scale error
    # is the same in every figure, so an hour of figures must not claim to know better than one.
    lfp = load_profile("lfp-a123-26650")
    est = BatteryEstimator(lfp, initial_soc=0.3, initial_soc_sigma=0.2)
    v = float(np.interp(0.5, lfp.ocv_soc, lfp.ocv_v)) * lfp.series
    policy = EvSocPolicy()
    err_sigma = math.sqrt(policy.variance(0.0, lfp.nameplate_capacity_ah / lfp.parallel))
    est.update(0.0, v, 0.0, 25.0)
    # The filter's own share (soc_sigma adds the unknown fade's, 7-9 points here, which would hide it).
    assert math.sqrt(est._state[k.S_P00]) > 2.0 * err_sigma  # the voltage alone left it open
    est.update(1.0, v, 0.0, 25.0, ev_soc=0.53)
    assert est.ev.fused == 1
    assert est.soc == pytest.approx(0.53, abs=0.02)
    assert math.sqrt(est._state[k.S_P00]) == pytest.approx(err_sigma, rel=1e-6)  # down to its error
    for t in range(2, 3600):
        est.update(float(t), v, 0.0, 25.0, ev_soc=0.53)
    assert est.ev.rejected == 0 and est.ev.fused + est.ev.agreed == 3599
    # Fused as independent readings the filter's share fell to 0.17 points.
    assert err_sigma * 0.999 <= math.sqrt(est._state[k.S_P00]) <= err_sigma * 1.5
    telemetry = est.telemetry()
    assert telemetry["ev_soc_fused"] + telemetry["ev_soc_agreed"] == 3599


def test_ev_soc_variance_grows_with_current_for_the_delay() -> None:
    p = EvSocPolicy()
    assert p.variance(5.0, 5.0) > p.variance(0.0, 5.0) > p.definition_sigma**2


def test_limits_are_pack_ac_side_and_the_lower_of_ours_and_the_evs(nmc: BatteryProfile) -> None:
    eff = ChargerEfficiency(charge=0.9, discharge=0.96)
    est = BatteryEstimator(nmc, initial_soc=0.6, efficiency=eff)
    v = float(np.interp(0.6, nmc.ocv_soc, nmc.ocv_v)) * nmc.series
    est.update(0.0, v, 0.0, 25.0)
    lims = {lim.horizon_s: lim for lim in est.limits()}
    assert set(lims) == {2.0, 10.0, 30.0}
    ten = lims[10.0]
    # The datasheet rating (0.7C charge) binds well below the voltage limit here.
    assert ten.charge_current_a == pytest.approx(nmc.cell_i_charge_max_a * nmc.parallel)
    assert ten.charge_current_voltage_limited_a > ten.charge_current_a
    assert ten.import_ac_w == pytest.approx(ten.charge_dc_w / 0.9)
    assert ten.export_ac_w == pytest.approx(ten.discharge_dc_w * 0.96)
    # Power at the end of the pulse: the charging voltage is above the rest voltage.
    assert ten.charge_current_a * v < ten.charge_dc_w < 1.08 * ten.charge_current_a * v
    assert lims[2.0].charge_current_voltage_limited_a >= ten.charge_current_voltage_limited_a
    assert ten.charge_current_voltage_limited_a >= lims[30.0].charge_current_voltage_limited_a
    est.update(1.0, v, 0.0, 25.0, ev_limits=EvLimits(max_charge_current_a=50.0, max_discharge_power_w=7000.0))
    ten = {lim.horizon_s: lim for lim in est.limits()}[10.0]
    assert ten.charge_current_a == 50.0
    assert ten.charge_dc_w == pytest.approx(50.0 * v, rel=1e-3)  # at the rest voltage: conservative
    assert ten.discharge_dc_w == 7000.0
    assert ten.export_ac_w == pytest.approx(7000.0 * 0.96)
    with pytest.raises(ValueError, match=r"charge = 1.2 outside"):
        ChargerEfficiency(charge=1.2)


def test_unknown_vehicle_gets_conservative_limits_until_steps_are_seen(nmc: BatteryProfile) -> None:
    est = rested(nmc, 0.6, seconds=5)
    first = est.limits()[1].charge_current_voltage_limited_a
    current = duty(3000, amplitude_a=40.0, hold_s=4)
    s = simulate(nmc, current, soc0=0.6)
    for j in range(len(s.t_s)):
        est.update(10.0 + float(s.t_s[j]), float(s.pack_v_v[j]), float(s.pack_i_a[j]), 25.0)
    assert est.soh.resistance_growth == pytest.approx(1.0, abs=0.03)
    assert est.limits()[1].charge_current_voltage_limited_a > 1.2 * first


async def test_telemetry_has_no_vehicle_id_and_carries_aging(
    tmp_path: Path, nmc: BatteryProfile, open_state: Callable[..., StateStore]
) -> None:
    store = open_state(tmp_path)
    vin = "WVWZZZ1KZAW123456"
    est, key = BatteryEstimator.for_vehicle(store, vin, nmc, initial_soc=0.85)
    v = float(np.interp(0.85, nmc.ocv_soc, nmc.ocv_v)) * nmc.series
    for t in range(7200):
        est.update(float(t), v, 0.0, 36.0)
    tel = est.telemetry()
    assert vin not in json.dumps(tel)
    assert tel["aging_hours_high_soc"] == pytest.approx(2.0, abs=0.01)
    assert tel["aging_hours_high_soc_and_temp"] == pytest.approx(2.0, abs=0.01)
    assert tel["aging_calendar_stress_h"] > 2.0 * 2.0  # hot and full: more than 2 h at 25 degC / 50 %
    assert tel["sop_10s_import_ac_w"] > 0.0
    # Every estimate with its uncertainty: a vehicle never seen has its capacity on the nameplate's
    # prior (not learned) and its growth's upper bound behind the limits.
    soh = est.soh
    assert tel["capacity_sigma_ah"] == soh.capacity_sigma_ah > 0.05 * soh.capacity_ah
    assert tel["capacity_learned"] == 0.0
    assert tel["resistance_growth_sigma"] == soh.resistance_growth_sigma > 0.0
    assert tel["sop_growth"] >= tel["resistance_growth"] + tel["resistance_growth_sigma"]
    store.put_vehicle(key, est.end_session())
    assert await store.flush()
    written = files_bytes(tmp_path)
    assert key.encode() in written
    assert vin.encode() not in written
    assert open_state(tmp_path / "other").key(vin) != key  # another installation, another key


async def test_a_vehicle_seen_with_another_profile_starts_over(
    tmp_path: Path, nmc: BatteryProfile, open_state: Callable[..., StateStore]
) -> None:
    store = open_state(tmp_path)
    key = store.key("car")
    store.put_vehicle(key, VehicleRecord(profile="lfp-prismatic", sessions=7, growth=2.0))
    est, _ = BatteryEstimator.for_vehicle(store, "car", nmc)
    assert est.record.sessions == 1
    assert est.soh.resistance_growth == 1.0


def test_checkpoint_is_the_end_record_without_ending_the_session(nmc: BatteryProfile) -> None:
    # Rest (first anchor), a discharge of ~0.17 SoC, then a rest still going on: its anchor is pending.
    current = np.concatenate([np.zeros(600), np.full(900, 150.0), np.zeros(600)])
    s = simulate(nmc, current, soc0=0.8)
    est = BatteryEstimator(nmc, initial_soc=0.8, record=VehicleRecord(profile=nmc.name, sessions=4))
    for j in range(len(s.t_s)):
        est.update(float(s.t_s[j]), float(s.pack_v_v[j]), float(s.pack_i_a[j]), 25.0)
    assert est.capacity.points == []
    first = est.checkpoint()
    # The pending rest's observation is in it, so a crash now does not lose the discharge counted.
    assert len(first.capacity_points) == 1
    assert first.capacity_points[0].dsoc == pytest.approx(0.17, abs=0.02)
    assert first.sessions == 5
    assert first.aging["hours_plugged"] == pytest.approx(2099 / 3600)
    # Taking it changes nothing, and what it hands out is the holder's.
    first.capacity_points.clear()
    first.aging.clear()
    again = est.checkpoint()
    assert len(again.capacity_points) == 1
    assert again.aging["hours_plugged"] == pytest.approx(2099 / 3600)
    assert est.capacity.points == []
    # Ending the session gives the same record: the session is counted once.
    end = est.end_session()
    assert end == again
    assert end.sessions == 5
    assert len(est.capacity.points) == 1


def test_lfp_profile_runs(nmc: BatteryProfile) -> None:
    lfp = load_profile("lfp-prismatic")
    s = simulate(lfp, duty(3000, amplitude_a=150.0), soc0=0.9)
    est = BatteryEstimator(lfp, initial_soc=0.9)
    for j in range(len(s.t_s)):
        est.update(float(s.t_s[j]), float(s.pack_v_v[j]), float(s.pack_i_a[j]), 25.0)
    assert abs(est.soc - s.soc[-1]) < 0.01
    assert est.limits()[1].discharge_current_a > 0.0


def test_current_offset_is_learned_at_rest_and_from_the_voltage(nmc: BatteryProfile) -> None:
    current = np.concatenate([np.zeros(600), duty(7200, amplitude_a=100.0), np.zeros(600)])
    s = simulate(nmc, current, soc0=0.6)
    est = BatteryEstimator(nmc, initial_soc=0.6)
    for j in range(len(s.t_s)):
        est.update(float(s.t_s[j]), float(s.pack_v_v[j]), float(s.pack_i_a[j]) + 0.3, 25.0)
    assert est.current_offset_a == pytest.approx(0.3, abs=0.05)
    assert abs(est.soc - s.soc[-1]) < 0.003
    # A charger that knows its setpoint is zero says so; the offset follows even beyond the threshold.
    for t in range(60):
        est.update(s.t_s[-1] + 1.0 + t, float(s.pack_v_v[-1]), 1.2, 25.0, at_rest=True)
    assert est.current_offset_a == pytest.approx(1.2, abs=0.05)


@pytest.mark.parametrize("name", ["nmc-lgm50", "nmc532-pouch", "lfp-a123-26650"])
def test_every_telemetry_figure_stays_finite_under_accepted_extremes(name: str) -> None:
    # Telemetry encodes NaN / inf as null, which the telemetry schema's numbers refuse: one
    # non-finite figure would make the aggregator drop the whole record.
    p = load_profile(name)
    rng = np.random.default_rng(7)
    v_lo, v_hi = 0.5 * p.cell_v_min * p.series, 1.2 * p.cell_v_max * p.series
    for initial_soc in (None, 0.0, 1.0):
        est = BatteryEstimator(p, initial_soc=initial_soc)
        t = 0.0
        for j in range(600):
            t += float(rng.choice([1e-6, 0.1, 1.0, 3600.0, 30 * 86400.0]))
            v = float(rng.choice([v_lo, v_hi, rng.uniform(v_lo, v_hi)]))
            i = float(rng.choice([0.0, -1e4, 1e4, rng.uniform(-300.0, 300.0)]))
            temp = [None, -40.0, 90.0, 25.0][j % 4]
            ev_soc = [None, 0.0, 1.0, float(rng.random())][(j // 4) % 4]
            est.update(t, v, i, temp, ev_soc=ev_soc, at_rest=[None, True, False][j % 3])
            bad = {key: value for key, value in est.telemetry().items() if not math.isfinite(value)}
            assert not bad, f"sample {j}: {bad}"
