"""The electrolyte's memory across a restart: kept in the vehicle's record with the wall-clock time until
which its currents may have flowed, and relaxed by the time that really passed (docs/estimation.md,
"The electrolyte's memory")."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ecm_support import simulate

from edge.estimation import _ecm_ref as k
from edge.estimation.estimator import BatteryEstimator
from edge.estimation.profile import BatteryProfile, load_profile
from edge.estimation.record import ElectrolyteMemory, VehicleRecord

T_UNIX_S = 1.8e9


def charged(nmc: BatteryProfile) -> tuple[BatteryEstimator, float, float]:
    """An estimator through 10 min of charge at 0.74C; the pack's voltage and the cell current."""
    i_pack = -0.74 * nmc.nameplate_capacity_ah * nmc.parallel
    s = simulate(nmc, np.full(600, i_pack), soc0=0.3)
    est = BatteryEstimator(nmc, initial_soc=0.3)
    for j in range(len(s.t_s)):
        est.update(float(s.t_s[j]), float(s.pack_v_v[j]), float(s.pack_i_a[j]), 25.0)
    return est, float(s.pack_v_v[-1]), i_pack / nmc.parallel


def test_a_restart_in_a_pause_keeps_the_charges_depletion(nmc: BatteryProfile) -> None:
    est, pack_v, i_cell = charged(nmc)
    record = est.end_session(T_UNIX_S)
    memory = record.electrolyte
    assert memory is not None
    assert memory.held_chg_a == pytest.approx(-i_cell, rel=0.02) and memory.held_dis_a == 0.0
    assert memory.until_unix_s == T_UNIX_S
    # It relaxes at the SoP's temperature (3 K below the measured one): slower than the reference's.
    assert memory.t_eq_s > nmc.electrolyte_t_eq_s
    # The continuing estimator, 2 s into a pause: its memory and its 10 s charge limit.
    est.update(601.0, pack_v, 0.0, 25.0)
    est.update(602.0, pack_v, 0.0, 25.0)
    held = float(est._state[k.S_ELEC_CHG])
    # Restarted 2 s after the session's end: what the record held, relaxed by those 2 s.
    again = BatteryEstimator(nmc, record=VehicleRecord.from_json(record.to_json()), t_unix_s=T_UNIX_S + 2.0)
    again.update(0.0, pack_v, 0.0, 25.0)
    assert float(again._state[k.S_ELEC_CHG]) == pytest.approx(held, rel=0.01)
    # Without the stamp the memory starts empty, and the 10 s charge limit credits the fall at once.
    blind = BatteryEstimator(nmc, record=VehicleRecord.from_json(record.to_json()))
    blind.update(0.0, pack_v, 0.0, 25.0)
    assert float(blind._state[k.S_ELEC_CHG]) == 0.0

    def chg10(e: BatteryEstimator) -> float:
        return next(x for x in e.limits() if x.horizon_s == 10.0).charge_current_voltage_limited_a

    assert chg10(again) < 0.9 * chg10(blind)


def test_the_memory_relaxes_by_the_wall_clock_and_not_before_its_time() -> None:
    memory = ElectrolyteMemory(held_dis_a=1.0, held_chg_a=3.0, until_unix_s=T_UNIX_S, t_eq_s=100.0)
    assert memory.after(T_UNIX_S + 100.0) == pytest.approx((math.exp(-1.0), 3.0 * math.exp(-1.0)))
    # A clock that reads earlier (stepped back, or not set yet after a reboot) relaxes nothing.
    assert memory.after(T_UNIX_S - 500.0) == (1.0, 3.0)
    assert memory.after(T_UNIX_S + 1e6) == (0.0, 0.0)


def test_the_record_keeps_it_and_reads_records_without_it(nmc: BatteryProfile) -> None:
    memory = ElectrolyteMemory(0.5, 2.0, T_UNIX_S, 103.0)
    record = VehicleRecord(profile=nmc.name, sessions=3, electrolyte=memory)
    assert VehicleRecord.from_json(record.to_json()) == record
    old = record.to_json()
    del old["electrolyte"]  # a record written before it
    assert VehicleRecord.from_json(old).electrolyte is None
    for bad in ([0.5, -1.0, T_UNIX_S, 103.0], [0.5, 2.0, T_UNIX_S, 0.0], [0.5, 2.0, float("nan"), 103.0]):
        with pytest.raises(ValueError, match="electrolyte memory"):
            VehicleRecord.from_json(record.to_json() | {"electrolyte": bad})


def test_only_a_profile_with_the_limit_and_a_session_with_samples_write_it(nmc: BatteryProfile) -> None:
    est, _, _ = charged(nmc)
    assert est.checkpoint().electrolyte is None  # not stamped: not kept
    assert est.checkpoint(T_UNIX_S + 60.0).electrolyte is not None
    # A session that took no sample leaves the record's memory as it was.
    kept = ElectrolyteMemory(0.0, 2.0, T_UNIX_S, 103.0)
    idle = BatteryEstimator(nmc, record=VehicleRecord(profile=nmc.name, electrolyte=kept), t_unix_s=T_UNIX_S)
    assert idle.end_session(T_UNIX_S + 10.0).electrolyte == kept
    lfp = load_profile("lfp-prismatic")  # no electrolyte limit: nothing to remember
    other = BatteryEstimator(lfp, initial_soc=0.5)
    other.update(0.0, 3.3 * lfp.series, -50.0, 25.0)
    assert other.end_session(T_UNIX_S).electrolyte is None
