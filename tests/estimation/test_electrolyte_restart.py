"""The electrolyte's memory across a restart: kept in the vehicle's record with the moment until which its
currents may have flowed, and relaxed by the time that really passed (docs/estimation.md, "The
electrolyte's memory")."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ecm_support import simulate

from edge.estimation import _ecm_ref as k
from edge.estimation.estimator import BatteryEstimator
from edge.estimation.profile import BatteryProfile, load_profile
from edge.estimation.record import ClockStamp, ElectrolyteMemory, VehicleRecord

T0 = ClockStamp(unix_s=1.8e9, mono_s=5000.0, boot_id="boot-a")


def charged(nmc: BatteryProfile, seconds: int = 600) -> tuple[BatteryEstimator, float, float]:
    """An estimator through a charge at 0.74C; the pack's last voltage and the cell current."""
    i_pack = -0.74 * nmc.nameplate_capacity_ah * nmc.parallel
    s = simulate(nmc, np.full(seconds, i_pack), soc0=0.3)
    est = BatteryEstimator(nmc, initial_soc=0.3)
    for j in range(len(s.t_s)):
        est.update(float(s.t_s[j]), float(s.pack_v_v[j]), float(s.pack_i_a[j]), 25.0)
    return est, float(s.pack_v_v[-1]), i_pack / nmc.parallel


def chg10(e: BatteryEstimator) -> float:
    return next(x for x in e.limits() if x.horizon_s == 10.0).charge_current_voltage_limited_a


def test_a_restart_in_a_pause_keeps_the_charges_depletion(nmc: BatteryProfile) -> None:
    est, pack_v, i_cell = charged(nmc)
    record = est.end_session(T0)
    memory = record.electrolyte
    assert memory is not None
    assert memory.held_chg_a == pytest.approx(-i_cell, rel=0.02) and memory.held_dis_a == 0.0
    assert memory.until == T0
    # It relaxes at the SoP's temperature (3 K below the measured one): slower than the reference's.
    assert memory.t_eq_s > nmc.electrolyte_t_eq_s
    # The continuing estimator, 2 s into a pause: its memory and its 10 s charge limit.
    est.update(601.0, pack_v, 0.0, 25.0)
    est.update(602.0, pack_v, 0.0, 25.0)
    held = float(est._state[k.S_ELEC_CHG])
    # Restarted 2 s after the session's end: what the record held, relaxed by those 2 s.
    stored = VehicleRecord.from_json(record.to_json())
    again = BatteryEstimator(nmc, record=stored, now=T0.plus(2.0))
    again.update(0.0, pack_v, 0.0, 25.0)
    assert float(again._state[k.S_ELEC_CHG]) == pytest.approx(held, rel=0.01)
    # Without the moment the memory starts empty, and the 10 s charge limit credits the fall at once.
    blind = BatteryEstimator(nmc, record=VehicleRecord.from_json(record.to_json()))
    blind.update(0.0, pack_v, 0.0, 25.0)
    assert float(blind._state[k.S_ELEC_CHG]) == 0.0
    assert chg10(again) < 0.9 * chg10(blind)


def test_a_current_that_has_just_started_is_in_the_record(nmc: BatteryProfile) -> None:
    # The kernel holds the current of the interval before each sample; the record takes the present
    # one too (review: a checkpoint at a charge's first sample stored nothing of it).
    est = BatteryEstimator(nmc, initial_soc=0.5)
    pack_v = float(np.interp(0.5, nmc.ocv_soc, nmc.ocv_v)) * nmc.series
    est.update(0.0, pack_v, 0.0, 25.0)
    est.update(1.0, pack_v, -3.7 * nmc.parallel, 25.0)
    assert float(est._state[k.S_ELEC_CHG]) == 0.0
    memory = est.checkpoint(T0).electrolyte
    assert memory is not None and memory.held_chg_a == pytest.approx(3.7, rel=0.01)


def test_a_blind_spell_holds_what_the_chargers_power_says_flowed(nmc: BatteryProfile) -> None:
    # Samples refused or missing while the charger runs: the current its power tells.
    est, pack_v, i_cell = charged(nmc, seconds=30)
    est.blind(2.0 * i_cell)  # the charge doubled meanwhile
    memory = est.checkpoint(T0).electrolyte
    assert memory is not None
    assert memory.held_dis_a == 0.0 and memory.held_chg_a == pytest.approx(-2.0 * i_cell)
    # The next accepted sample holds it from its own time (it may have flowed until then), and it
    # relaxes after.
    est.update(100.0, pack_v, 0.0, 25.0)
    assert float(est._state[k.S_ELEC_CHG]) == pytest.approx(-2.0 * i_cell)
    est.update(200.0, pack_v, 0.0, 25.0)
    assert est.held_now()[1] < -2.0 * i_cell
    # Not even the power known: the last current seen is taken to go on (the kernel's hold).
    est.blind(None)
    assert est.held_now() == pytest.approx((0.0, float(est._state[k.S_ELEC_CHG])))


def test_one_missing_sample_leaves_the_limits_as_they_were(nmc: BatteryProfile) -> None:
    # Review: holding the cell's ratings after a blind spell took the discharge limit to 0 for six
    # minutes at the SoP's temperature with none measured (0 degC), after a single missing reading.
    i_pack = -0.5 * nmc.nameplate_capacity_ah * nmc.parallel
    s = simulate(nmc, np.full(120, i_pack), soc0=0.5)
    est = BatteryEstimator(nmc, initial_soc=0.5)
    for j in range(120):  # no temperature: the daemon's case
        est.update(float(s.t_s[j]), float(s.pack_v_v[j]), i_pack)
    pack_v, i_cell = float(s.pack_v_v[-1]), i_pack / nmc.parallel
    before = est.limits()[1]
    assert before.discharge_current_voltage_limited_a > 1.0
    est.blind(i_cell)
    est.update(121.0, pack_v, i_cell * nmc.parallel)
    after = est.limits()[1]
    assert after.discharge_current_voltage_limited_a == pytest.approx(
        before.discharge_current_voltage_limited_a, rel=0.05
    )
    assert after.charge_current_voltage_limited_a == pytest.approx(
        before.charge_current_voltage_limited_a, rel=0.05
    )


def test_the_time_that_passed_is_the_boots_clock_within_a_boot_and_the_wall_clock_across() -> None:
    memory = ElectrolyteMemory(held_dis_a=1.0, held_chg_a=3.0, t_eq_s=100.0, until=T0)
    later = ClockStamp(T0.unix_s + 100.0, T0.mono_s + 100.0, "boot-a")
    assert memory.after(later) == pytest.approx((math.exp(-1.0), 3.0 * math.exp(-1.0)))
    # The wall clock stepped forward a year in between (NTP's first sync): the boot's clock tells.
    stepped = ClockStamp(T0.unix_s + 3.2e7, T0.mono_s + 100.0, "boot-a")
    assert memory.after(stepped) == pytest.approx(memory.after(later))
    # Another boot: the monotonic clock started over, only the wall clock can tell.
    rebooted = ClockStamp(T0.unix_s + 100.0, 12.0, "boot-b")
    assert memory.after(rebooted) == pytest.approx(memory.after(later))
    # A wall clock that reads earlier (stepped back, not yet set after a reboot) relaxes nothing;
    # so does a machine without a boot id whose wall clock reads earlier.
    assert memory.after(ClockStamp(T0.unix_s - 500.0, 3.0, "boot-b")) == (1.0, 3.0)
    assert memory.after(ClockStamp(T0.unix_s - 500.0, T0.mono_s + 50.0, "")) == (1.0, 3.0)
    assert memory.after(later.plus(1e6)) == (0.0, 0.0)


def test_the_record_keeps_it_reads_records_without_it_and_survives_a_bad_one(nmc: BatteryProfile) -> None:
    memory = ElectrolyteMemory(0.5, 2.0, 103.0, T0)
    record = VehicleRecord(profile=nmc.name, sessions=3, growth=1.4, electrolyte=memory)
    assert VehicleRecord.from_json(record.to_json()) == record
    old = record.to_json()
    del old["electrolyte"]  # a record written before it
    assert VehicleRecord.from_json(old).electrolyte is None
    # A memory that cannot be read starts empty; the rest of what was learned is kept.
    good = record.to_json()["electrolyte"]
    for bad in ("1234", [0.5, 2.0, 103.0, 1.8e9], good | {"held_chg_a": -1.0}, good | {"t_eq_s": 0.0}):
        loaded = VehicleRecord.from_json(record.to_json() | {"electrolyte": bad})
        assert loaded.electrolyte is None and loaded.growth == 1.4 and loaded.sessions == 3


def test_only_a_profile_with_the_limit_and_a_session_that_saw_something_write_it(nmc: BatteryProfile) -> None:
    est, _, _ = charged(nmc)
    assert est.checkpoint().electrolyte is None  # no moment: not kept
    assert est.checkpoint(T0).electrolyte is not None
    # A session that took no sample leaves the record's memory as it was.
    kept = ElectrolyteMemory(0.0, 2.0, 103.0, T0)
    idle = BatteryEstimator(nmc, record=VehicleRecord(profile=nmc.name, electrolyte=kept), now=T0)
    assert idle.end_session(T0.plus(10.0)).electrolyte == kept
    # One blind before any sample keeps it, relaxed to the session's start (review: it held only
    # what the blind reading told).
    blind = BatteryEstimator(nmc, record=VehicleRecord(profile=nmc.name, electrolyte=kept), now=T0.plus(50.0))
    blind.blind(-0.5)
    memory = blind.checkpoint(T0.plus(60.0)).electrolyte
    assert memory is not None and memory.held_chg_a == pytest.approx(2.0 * math.exp(-50.0 / 103.0))
    lfp = load_profile("lfp-prismatic")  # no electrolyte limit: nothing to remember
    other = BatteryEstimator(lfp, initial_soc=0.5)
    other.update(0.0, 3.3 * lfp.series, -50.0, 25.0)
    assert other.end_session(T0).electrolyte is None
