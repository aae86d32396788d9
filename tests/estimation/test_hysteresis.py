"""LFP's OCV hysteresis: the estimator's one-state hysteresis (the cell's OCV is the table's plus half
the branches' gap times a state that a swing of a few points takes to its branch), its uncertainty
while the branch is unknown, and packs simulated with hysteresis (PyBaMM's one-state model)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import pytest

from edge.estimation import _ecm_ref as k
from edge.estimation.estimator import BatteryEstimator
from edge.estimation.profile import BatteryProfile, load_profile
from hil.estimate import Trace, default_initial_soc, replay, trace_profile


@pytest.fixture
def lfp() -> BatteryProfile:
    return load_profile("lfp-a123-26650")


def _run(est: BatteryEstimator, profile: BatteryProfile, t0: float, seconds: int, cell_a: float) -> float:
    """Feed ``seconds`` of a constant cell current at the table's voltage; the time after."""
    table = profile.ocv_table().tolist()
    for j in range(seconds):
        v = k.ocv_lookup(table, est.soc, 25.0) - cell_a * profile.r0_ohm
        est.update(t0 + j, v * profile.series, cell_a * profile.parallel, 25.0)
    return t0 + seconds


def test_a_swing_takes_the_state_to_its_branch_and_tells_it(lfp: BatteryProfile) -> None:
    m, rate = lfp.ocv_hysteresis_v, lfp.ocv_hysteresis_rate
    assert m > 0.0
    est = BatteryEstimator(lfp, initial_soc=0.5, initial_soc_sigma=0.02)
    # At plug-in the branch is not known: uniform over -1..1, in the table's error.
    assert est._params[k.P_OCV_VAR] == pytest.approx(lfp.ocv_var(lfp.reference_temp_c) + m * m / 3.0)
    assert est.ocv_hysteresis_v == 0.0
    # 10 % of SoC charged (1C for 6 min): exp(-rate * 0.1) of the way left.
    t = _run(est, lfp, 0.0, 361, -lfp.nameplate_capacity_ah)
    left = math.exp(-rate * 0.1)
    assert est.ocv_hysteresis_v == pytest.approx(m * (1.0 - left), rel=0.02)
    assert est._params[k.P_OCV_VAR] == pytest.approx(lfp.ocv_var(25.0) + m * m / 3.0 * left * left, rel=0.05)
    # Then 2 % discharged: back towards the discharge branch by 1 - exp(-rate * 0.02).
    h = est.ocv_hysteresis_v / m
    _run(est, lfp, t, 73, lfp.nameplate_capacity_ah)
    step = math.exp(-rate * 0.02)
    assert est.ocv_hysteresis_v / m == pytest.approx(-1.0 + (h + 1.0) * step, abs=0.02)


def test_without_hysteresis_nothing_changes(lfp: BatteryProfile) -> None:
    profile = replace(lfp, ocv_hysteresis_v=0.0)
    est = BatteryEstimator(profile, initial_soc=0.5, initial_soc_sigma=0.02)
    _run(est, profile, 0.0, 300, -profile.nameplate_capacity_ah)
    assert est.ocv_hysteresis_v == 0.0
    assert est._params[k.P_OCV_VAR] == pytest.approx(profile.ocv_var(25.0))


def test_a_pack_with_more_hysteresis_than_the_profile_keeps_the_truth_in_its_band(
    load: Callable[[str], Trace],
) -> None:
    # lfphystp_v2h: 15 mV either side of the mean (the profile says 10) on the plateau at 52 % after a
    # discharge, then charged into the top knee. Without the hysteresis the generic curve's error and
    # the discharge branch added up, and from the wrong start the truth sat inside the 2-sigma band
    # only 70 % of the time; with it, all but a few samples.
    # The knee fixes, which came after, lift the control to 81 %: both sides run without them.
    trace = load("lfphystp_v2h")
    shipped = trace_profile("lfp-a123-26650", trace)
    profile = replace(shipped, ocv_knee_slope_v=0.0)
    with_hyst, _ = replay(profile, trace, default_initial_soc(trace))
    without, _ = replay(replace(profile, ocv_hysteresis_v=0.0), trace, default_initial_soc(trace))
    assert with_hyst.soc_in_2sigma >= 0.9
    assert without.soc_in_2sigma < 0.8
    assert replay(shipped, trace, default_initial_soc(trace))[0].soc_in_2sigma >= 0.9
    assert with_hyst.soc_rmse_pct < without.soc_rmse_pct
