"""The SoP's conservative side: the growth it uses is floored by a cold-side Arrhenius law (issue 17)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ecm_support import duty, simulate

from edge.estimation import _ecm_ref as k
from edge.estimation.estimator import BatteryEstimator
from edge.estimation.profile import GAS_CONSTANT, BatteryProfile


def charge_limit_after(nmc: BatteryProfile, temp_c: float | None, growth: float = 1.0) -> tuple[float, float]:
    """10 s charge limit and SoP growth after 20 min of regulation-like duty on a cell of ``growth``."""
    current = duty(1200, amplitude_a=40.0, hold_s=3)
    s = simulate(nmc, current, soc0=0.6, growth=growth, temp_c=25.0 if temp_c is None else temp_c)
    est = BatteryEstimator(nmc, initial_soc=0.6)
    for j in range(len(s.t_s)):
        est.update(float(s.t_s[j]), float(s.pack_v_v[j]), float(s.pack_i_a[j]), temp_c)
    return est.limits()[1].charge_current_voltage_limited_a, est.sop_growth


def test_a_cell_better_than_the_profile_gets_no_credit_beyond_the_floor(nmc: BatteryProfile) -> None:
    # A cell with 0.6 x the profile's resistance: the tracker finds it, the SoP does not follow it
    # below the new cell at the reference temperature (less the sensor's error).
    chg_good, g_good = charge_limit_after(nmc, 25.0, growth=0.6)
    chg_new, _ = charge_limit_after(nmc, 25.0, growth=1.0)
    ea_r = nmc.sop_resistance_ea_floor_j_per_mol / GAS_CONSTANT
    expected = math.exp(ea_r * (1.0 / (23.0 + k.KELVIN) - 1.0 / (25.0 + k.KELVIN)))
    assert g_good == pytest.approx(expected, rel=1e-9)
    assert chg_good == pytest.approx(chg_new, rel=0.02)


def test_cold_and_unknown_temperature_lower_the_charge_limit(nmc: BatteryProfile) -> None:
    warm, _ = charge_limit_after(nmc, 25.0)
    cold, g_cold = charge_limit_after(nmc, 5.0)
    unknown, g_unknown = charge_limit_after(nmc, None)
    # At 5 degC the floor law (30 kJ/mol at 3 degC) outgrows the profile's own kinetics.
    assert g_cold > 1.2
    assert cold < 0.8 * warm
    # No temperature at all: the SoP assumes the profile's cold side (0 degC by default) while the
    # filter runs at the reference temperature.
    assert g_unknown > 2.0
    assert unknown < 0.6 * warm


def test_the_floor_never_lowers_an_uncertain_growth(nmc: BatteryProfile) -> None:
    est = BatteryEstimator(nmc, initial_soc=0.6)
    v = float(np.interp(0.6, nmc.ocv_soc, nmc.ocv_v)) * nmc.series
    est.update(0.0, v, 0.0, 25.0)
    est.update(1.0, v, 0.0, 25.0)
    # An unknown vehicle: growth 1.0 +/- 0.5, the SoP takes mean + 2 sigma = 2.0 (above the floor).
    assert est.sop_growth == pytest.approx(2.0)
