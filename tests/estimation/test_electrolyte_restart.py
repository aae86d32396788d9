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


def test_a_blind_spell_holds_the_cells_ratings(nmc: BatteryProfile) -> None:
    # Samples refused or missing while the charger runs: what flowed is not known.
    est, pack_v, i_cell = charged(nmc, seconds=30)  # 0.74C: above the datasheet's 0.7C charge
    est.blind()
    memory = est.checkpoint(T0).electrolyte
    assert memory is not None
    assert memory.held_dis_a == nmc.cell_i_discharge_max_a
    assert memory.held_chg_a == pytest.approx(max(nmc.cell_i_charge_max_a, -i_cell))
    # The next accepted sample holds them from its own time (they may have flowed until then; the
    # kernel also holds the last current seen over the gap).
    est.update(100.0, pack_v, 0.0, 25.0)
    assert float(est._state[k.S_ELEC_DIS]) == nmc.cell_i_discharge_max_a
    assert float(est._state[k.S_ELEC_CHG]) == pytest.approx(memory.held_chg_a)
    est.update(200.0, pack_v, 0.0, 25.0)
    assert float(est._state[k.S_ELEC_DIS]) < nmc.cell_i_discharge_max_a  # and relaxes again
    assert est.held_now()[1] < memory.held_chg_a


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
    lfp = load_profile("lfp-prismatic")  # no electrolyte limit: nothing to remember
    other = BatteryEstimator(lfp, initial_soc=0.5)
    other.update(0.0, 3.3 * lfp.series, -50.0, 25.0)
    assert other.end_session(T0).electrolyte is None
