"""Without a pack temperature the datasheet rating is derated at the profile's unknown-temperature
guess (0 degC: no charging for a cell that forbids it below 0 degC), unless the EV states its own
limits: its BMS knows the temperature, and a charger without a pack sensor (most of them) must still
charge. Found by the bench: a daemon on the embedded config never charged the simulated EV."""

from __future__ import annotations

import math

import numpy as np

from edge.estimation.estimator import BatteryEstimator, EvLimits
from edge.estimation.profile import load_profile


def _limits(ev: EvLimits | None, temp_c: float | None) -> tuple[float, float, str]:
    p = load_profile("nmc-lgm50")
    est = BatteryEstimator(p, initial_soc=0.6)
    v = float(np.interp(0.6, p.ocv_soc, p.ocv_v)) * p.series
    for t in range(60):
        est.update(float(t), v, 0.0, temp_c, ev_limits=ev)
    lim = next(x for x in est.limits() if x.horizon_s == 10.0)
    return lim.discharge_dc_w, lim.charge_dc_w, est.sop_basis


def test_unknown_temperature_without_ev_limits_keeps_the_cold_guess() -> None:
    _, chg, basis = _limits(None, None)
    assert chg == 0.0  # 0 degC is the cell's charge cut-off (charge_derating_c starts at 0)
    # A technician sees why (v2gctl status): the limits named nothing of it before.
    assert basis.endswith(
        "; no pack temperature measured: the resistance floor taken at 0 degC (sop.unknown_temp_c),"
        " the charge rating derated to 0 % there (the EV states no charge limit)"
    )


def test_unknown_temperature_with_the_evs_limits_charges_within_them() -> None:
    ev = EvLimits(max_charge_power_w=11_000.0, max_discharge_power_w=11_000.0)
    dis, chg, basis = _limits(ev, None)
    assert chg == 11_000.0 and dis == 11_000.0
    assert basis.endswith(
        "no pack temperature measured: the resistance floor taken at 0 degC (sop.unknown_temp_c),"
        " the discharge rating not derated (the EV states its own discharge limit),"
        " the charge rating not derated (the EV states its own charge limit)"
    )


def test_a_limit_the_ev_states_as_nan_is_no_limit_and_a_negative_one_is_nothing() -> None:
    # A NaN counted as stated: the rating was not derated at the unknown temperature and min() with
    # the NaN bounded nothing, so the charger could charge at the full rating of a pack at 0 degC.
    dis, chg, basis = _limits(EvLimits(max_charge_power_w=math.nan), None)
    assert chg == 0.0 and "the EV states no charge limit" in basis
    assert dis > 0.0
    # A negative limit allows nothing on its side, as the daemon's power_limits takes it.
    dis, _, basis = _limits(EvLimits(max_discharge_power_w=-1.0), None)
    assert dis == 0.0 and "the EV states its own discharge limit" in basis


def test_a_measured_cold_pack_is_derated_whatever_the_ev_states() -> None:
    ev = EvLimits(max_charge_power_w=11_000.0, max_discharge_power_w=11_000.0)
    _, chg, basis = _limits(ev, -5.0)
    assert chg == 0.0
    assert basis.endswith(
        "; the charge rating derated to 0 % at the pack's -5 degC +/- 3 K (the sensor's error and a margin)"
    )
    assert "no pack temperature measured" not in basis
