"""Knee fixes (edge.estimation.knee): the slope of the voltage against counted charge, not its level."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from ecm_support import DATASHEETS, Synthetic, simulate

from edge.estimation.estimator import BatteryEstimator
from edge.estimation.knee import KneeFix, KneeTracker, table_knees
from edge.estimation.profile import BatteryProfile, ProfileError, configured_profile, load_profile

# The generic LFP curve of the lfp-a123-26650 profile.
SOC = np.array([0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0])
OCV = np.array([2.5, 3.05, 3.18, 3.23, 3.25, 3.27, 3.28, 3.29, 3.3, 3.32, 3.33, 3.34, 3.5])
CAPACITY_AH = 2.3


def tracker() -> KneeTracker:
    return KneeTracker(
        soc=SOC,
        ocv=OCV,
        slope_v=1.0,
        sigma_soc=0.04,
        min_current_a=0.02 * CAPACITY_AH,
        settle_s=60.0,
        outlier_v=0.016,
    )


def drive(
    knees: KneeTracker,
    soc0: float,
    soc1: float,
    *,
    i_a: float,
    shift_soc: float = 0.0,
    offset_v: float = 0.0,
    noise_v: float = 0.002,
    r_ohm: float = 0.04,
    seed: int = 1,
) -> list[tuple[KneeFix, float]]:
    """A cell whose OCV is the curve moved ``shift_soc`` along its axis and ``offset_v`` in volts, at
    a steady ``i_a`` (discharge positive) from ``soc0`` until ``soc1``: the fixes with the true SoC."""
    rng = np.random.default_rng(seed)
    fixes = []
    soc = soc0
    while min(soc0, soc1) <= soc <= max(soc0, soc1):
        soc -= i_a / (3600.0 * CAPACITY_AH)
        v = float(np.interp(soc - shift_soc, SOC, OCV)) + offset_v - r_ohm * i_a + rng.normal(0.0, noise_v)
        fix = knees.update(1.0, i_a, v, r_ohm, CAPACITY_AH)
        if fix is not None:
            fixes.append((fix, soc))
    return fixes


def test_the_tables_knees_are_where_its_slope_over_the_window_reaches_the_threshold() -> None:
    bottom, top = table_knees(SOC, OCV, 1.0, 0.02)
    # Piecewise linear: the least-squares slope over a window whose share f lies past a kink is the
    # flat side's plus the difference times 3 f^2 - 2 f^3. At the top 0.2 + 3.0 (...) reaches 1.0 at
    # f = 0.339 (past 0.95), at the bottom 0.5 + 2.1 (...) at f = 0.317 (below 0.1).
    assert top == pytest.approx(0.95 - 0.01 + 0.339 * 0.02, abs=0.0006)
    assert bottom == pytest.approx(0.10 + 0.01 - 0.317 * 0.02, abs=0.0006)
    # A straight line has no knee; one steep all along has no plateau.
    line = np.linspace(3.0, 4.0, len(SOC))
    assert table_knees(SOC, line, 2.0, 0.02) == (None, None)
    assert table_knees(SOC, line, 0.5, 0.02) == (None, None)
    assert table_knees(SOC[:-1], OCV[:-1], 1.0, 0.02)[1] is None  # a table that ends on its plateau
    # Steep between two flatter stretches (a flat pocket near empty; a step inside the plateau): the
    # first form took the end's knee (0.0275: a discharge fixed 0.018 where the cell was at 0.11), and
    # a charge over a step would read as the top knee. Refused.
    pocket_soc = np.array([0.0, 0.03, 0.05, 0.08, 0.12, 0.5, 0.9, 0.95, 1.0])
    pocket_ocv = np.array([2.5, 3.0, 3.005, 3.15, 3.25, 3.28, 3.33, 3.34, 3.5])
    step_soc = np.array([0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.51, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0])
    step_ocv = np.array([2.5, 3.05, 3.18, 3.23, 3.25, 3.27, 3.28, 3.30, 3.31, 3.32, 3.34, 3.35, 3.36, 3.52])
    for soc, ocv, at in ((pocket_soc, pocket_ocv, "0.0"), (step_soc, step_ocv, "0.50")):
        with pytest.raises(ValueError, match=f"steeper than 1 V per unit SoC at SoC {at}"):
            table_knees(soc, ocv, 1.0, 0.02)


@pytest.mark.parametrize("offset_v", [0.0, -0.03, 0.03])
@pytest.mark.parametrize("shift_soc", [0.0, 0.02, -0.03])
def test_a_charge_into_the_top_knee_gives_one_fix_there_whatever_the_curves_offset(
    offset_v: float, shift_soc: float
) -> None:
    knees = tracker()
    # Up to the cell's full charge (the curve held flat beyond its end would be no cell's).
    end = min(0.999, 0.999 + shift_soc)
    fixes = drive(knees, 0.6, end, i_a=-0.2 * CAPACITY_AH, shift_soc=shift_soc, offset_v=offset_v)
    ((fix, soc),) = fixes  # noise about the threshold makes no second one
    assert fix.knee == "top"
    # The fix reads the knee where the table has it: the cell's, less its shift along the axis.
    assert fix.soc == pytest.approx(soc - shift_soc, abs=0.006)
    assert fix.var == pytest.approx(0.04**2 + 0.02**2 / 12.0)


def test_the_bottom_knee_is_fixed_going_into_it_and_coming_out_of_it() -> None:
    knees = tracker()
    ((down, soc_down),) = drive(knees, 0.4, 0.02, i_a=0.3 * CAPACITY_AH)
    assert down.knee == "bottom" and down.soc == pytest.approx(soc_down, abs=0.006)
    ((up, soc_up),) = drive(knees, 0.02, 0.5, i_a=-0.3 * CAPACITY_AH)
    assert up.knee == "bottom" and up.soc == pytest.approx(soc_up, abs=0.006)
    # Leaving the top knee on a discharge.
    ((top, soc_top),) = drive(knees, 0.999, 0.8, i_a=0.2 * CAPACITY_AH)
    assert top.knee == "top" and top.soc == pytest.approx(soc_top, abs=0.006)
    assert knees.fixes == 3


def test_no_fix_on_the_plateau_nor_from_a_current_that_does_not_hold() -> None:
    knees = tracker()
    assert drive(knees, 0.2, 0.9, i_a=-0.3 * CAPACITY_AH) == []  # the curve's stage step is 0.2 V
    # Through the knee at a current that moves by 20 % every 100 s: no window is steady.
    rng = np.random.default_rng(4)
    soc = 0.8
    for j in range(4000):
        i_a = -0.2 * CAPACITY_AH * (1.2 if (j // 100) % 2 else 1.0)
        soc -= i_a / (3600.0 * CAPACITY_AH)
        v = float(np.interp(soc, SOC, OCV)) - 0.04 * i_a + rng.normal(0.0, 0.002)
        assert knees.update(1.0, i_a, v, 0.04, CAPACITY_AH) is None
    # Below 2 % of C the segment never starts.
    assert drive(knees, 0.9, 0.999, i_a=-0.015 * CAPACITY_AH) == []


def test_a_drift_of_the_current_is_taken_out_with_the_resistance() -> None:
    # A charger at constant power: the current falls as the voltage rises (here 8 % over the run,
    # within the segment's 10 %). Its IR change would read as 0.25 V per unit SoC on its own.
    knees = tracker()
    soc, fixes = 0.6, []
    while soc <= 0.999:
        i_a = -0.2 * CAPACITY_AH * (1.0 - 0.2 * (soc - 0.6))
        soc -= i_a / (3600.0 * CAPACITY_AH)
        v = float(np.interp(soc, SOC, OCV)) - 0.15 * i_a
        fix = knees.update(1.0, i_a, v, 0.15, CAPACITY_AH)
        if fix is not None:
            fixes.append((fix, soc))
    ((fix, at),) = fixes
    assert fix.soc == pytest.approx(at, abs=0.006)


def test_knees_are_the_lfp_profiles_and_a_slope_without_one_is_refused(tmp_path: Path) -> None:
    assert configured_profile("lfp-a123-26650", 108, 95).ocv_knee_slope_v == 1.0
    assert configured_profile("lfp-prismatic", 108, 1).ocv_knee_slope_v == 1.0
    assert configured_profile("nmc-lgm50", 96, 43).ocv_knee_slope_v == 0.0  # off where no plateau
    with pytest.raises(ValueError, match="knee slope"):
        KneeTracker(
            soc=SOC, ocv=OCV, slope_v=0.0, sigma_soc=0.04, min_current_a=0.05, settle_s=60.0, outlier_v=0.016
        )
    text = (DATASHEETS.parent / "lfp-a123-26650.toml").read_text()
    path = tmp_path / "p.toml"
    path.write_text(text.replace("knee_slope_v = 1.0", "knee_slope_v = 50.0"))
    with pytest.raises(ProfileError, match=r"'ocv.knee_slope_v' = 50.0: the table's slope never crosses"):
        load_profile(path)


def run(
    profile: BatteryProfile, c_rate: float, soc0: float, seconds: int, temp_c: float = 25.0, **kw: float
) -> tuple[BatteryEstimator, Synthetic]:
    """The estimator on the profile's own model at a steady ``c_rate`` (discharge positive)."""
    i_pack = c_rate * profile.nameplate_capacity_ah * profile.parallel
    s = simulate(profile, np.full(seconds, i_pack), soc0=soc0, temp_c=temp_c)
    v = s.pack_v_v.copy()
    if "dip_at" in kw:  # a disturbance: so many samples so many volts per cell low
        at = int(kw["dip_at"])
        v[at : at + int(kw.get("dip_n", 1))] -= kw["dip_v"] * profile.series
    est = BatteryEstimator(
        profile, initial_soc=kw.get("start", soc0), initial_soc_sigma=kw.get("sigma", 0.02)
    )
    for j in range(seconds):
        est.update(float(s.t_s[j]), float(v[j]), float(s.pack_i_a[j]), temp_c)
    return est, s


def one_top_fix_fused_at_the_truth(est: BatteryEstimator, s: Synthetic) -> None:
    assert est.knee is not None and est.knee.fixes == 1
    ((t_s, fix, outcome),) = est.knee_fixes
    assert fix.knee == "top" and outcome == "fused"
    assert fix.soc == pytest.approx(float(np.interp(t_s, s.t_s, s.soc)), abs=0.01)


@pytest.mark.parametrize(("c_rate", "soc0"), [(1.0, 0.5), (-1.0, 0.3), (1.0, 0.9)])
def test_the_models_own_rc_build_up_at_a_segments_start_is_no_knee(c_rate: float, soc0: float) -> None:
    # lfp-prismatic's second branch takes 400 s, at -10 degC and 1C its build-up read as steep and
    # falling a minute into the segment: a "top" fix of 0.963 at 0.376, a "bottom" one of 0.067 at
    # 0.42 (review). The slope is taken once three of its time constants have passed.
    profile = configured_profile("lfp-prismatic", 108, 2)
    est, _ = run(profile, c_rate, soc0, 1200, temp_c=-10.0)
    assert est.knee is not None and est.knee.fixes == 0


@pytest.mark.parametrize(
    ("dip_n", "dip_v", "sensor_sigma_v"),
    [
        (1, 0.25, None),
        (2, 0.12, None),
        (20, 0.02, None),
        (200, 0.02, None),  # a level step for 200 s: only the samples' bound stops it
        (20, 0.02, 0.01),  # under the bound of a noisier sensor: only the persistence stops it
    ],
)
def test_a_disturbance_of_the_voltage_is_no_knee(
    dip_n: int, dip_v: float, sensor_sigma_v: float | None
) -> None:
    # At 1C a window holds 72 samples: one sample 0.25 V low per cell at its edge moved the slope by
    # volts per unit (a "bottom" fix of 0.094 at 0.49), and so did two 0.12 V low and twenty 20 mV
    # low, under the filter's gate (review). Samples off the window's line by more than four of the
    # sensor's sigmas are left out (30 in a row start the segment over), and a crossing must hold
    # while the SoC moves a quarter of a window. Not stopped: a dip under the bound lasting half a
    # window (docs/estimation.md, "Knee fixes").
    profile = configured_profile("lfp-a123-26650", 108, 95)
    if sensor_sigma_v is not None:
        profile = replace(profile, voltage_sigma_v=sensor_sigma_v)
    est, _ = run(profile, 1.0, 0.6, 900, dip_at=600, dip_n=dip_n, dip_v=dip_v, start=0.5, sigma=0.2)
    assert est.knee is not None and est.knee.fixes == 0


def test_an_estimate_far_off_at_the_knee_still_gets_its_fix() -> None:
    # Review: resetting on the filter's normalised innovation lost the fix exactly where an estimate
    # 20 points low most needs it (lfp-prismatic at 0.1C: the innovation passed the gate at 0.981).
    # Told 0.1 of sigma (2 sigma off); told 0.05, the next test.
    profile = configured_profile("lfp-prismatic", 108, 2)
    one_top_fix_fused_at_the_truth(*run(profile, -0.1, 0.86, 4800, start=0.66, sigma=0.1))


@pytest.mark.xfail(
    strict=True,
    reason="known limitation (docs/estimation.md, 'Cells of other kinds'): a start 4 sigma off stays "
    "0.20 from the knee's fix, past its gate, since lfp-prismatic states its curve's 20 mV",
)
def test_an_estimate_four_sigma_off_at_the_knee_gets_its_fix() -> None:
    # Fused while the profile claimed its public-knowledge curve to 5 mV; at 20 mV the filter stays
    # further back on the plateau (0.79 at the knee) and the fix is rejected: 0.79 +/- 0.06 at the end
    # for a truth of 0.99, outside its band.
    profile = configured_profile("lfp-prismatic", 108, 2)
    one_top_fix_fused_at_the_truth(*run(profile, -0.1, 0.86, 4800, start=0.66, sigma=0.05))


def test_a_segment_that_began_flat_leaves_no_knee_and_a_gap_starts_it_over() -> None:
    # A cell whose curve has a bump of 2.5 V per unit on its plateau, discharged over it: the bump's
    # rise reads as the bottom knee (the threshold is what keeps plateau steps out), its fall would
    # read as leaving the top one, which a segment that began on the plateau never does.
    knees = tracker()
    bump_soc = np.array([0.0, 0.1, 0.2, 0.5, 0.53, 0.8, 1.0])
    bump_ocv = np.array([3.0, 3.18, 3.23, 3.28, 3.355, 3.36, 3.5])
    soc, fixes = 0.75, []
    while soc > 0.25:
        soc -= 0.3 / 3600.0
        fix = knees.update(
            1.0, 0.3 * CAPACITY_AH, float(np.interp(soc, bump_soc, bump_ocv)), 0.04, CAPACITY_AH
        )
        if fix is not None:
            fixes.append(fix)
    assert [f.knee for f in fixes] == ["bottom"]
    # More than 10 s without a sample: the segment starts over (its settling time again).
    knees.update(1.0, 0.3 * CAPACITY_AH, 3.25, 0.04, CAPACITY_AH)
    assert knees._age_s > 60.0
    knees.update(20.0, 0.3 * CAPACITY_AH, 3.25, 0.04, CAPACITY_AH)
    assert knees._age_s == 0.0


def test_a_charge_into_the_knee_fixes_a_soc_started_wrong() -> None:
    # The profile's own curve: the fix lands within the window of the truth, the estimate with it.
    profile = configured_profile("lfp-a123-26650", 108, 95)
    est, s = run(profile, -0.3, 0.80, 2300, start=0.60, sigma=0.2)
    one_top_fix_fused_at_the_truth(est, s)
    assert est.soc == pytest.approx(float(s.soc[-1]), abs=0.03)
    assert abs(est.soc - float(s.soc[-1])) <= 2.0 * est.soc_sigma


def test_a_knee_slope_without_the_tables_error_along_its_axis_is_refused(tmp_path: Path) -> None:
    text = (DATASHEETS.parent / "lfp-a123-26650.toml").read_text()
    path = tmp_path / "p.toml"
    path.write_text(text.replace("sigma_soc = 0.04", "sigma_soc = 0.0"))
    with pytest.raises(ProfileError, match=r"'ocv.knee_slope_v' needs 'ocv.sigma_soc' > 0"):
        load_profile(path)


def test_a_charge_that_stops_just_past_the_crossing_confirms_it() -> None:
    # The EV's own limit stops a charge at the top knee as often as it runs on (lfpfull_v2h stopped
    # 0.4 points past the crossing, before a quarter window): the segment's end confirms a crossing
    # it had not gone back over.
    knees = tracker()
    assert drive(knees, 0.6, 0.959, i_a=-0.2 * CAPACITY_AH) == []
    fix = knees.update(1.0, 0.0, 3.36, 0.04, CAPACITY_AH)
    assert fix is not None and fix.knee == "top" and fix.soc == pytest.approx(0.959, abs=0.006)


def test_a_gap_after_the_crossing_confirms_nothing_and_samples_left_out_are_counted() -> None:
    # Review: the segment's end confirmed a crossing at the window's last sample, so a fix after a
    # gap of 300 s at 0.5C read 0.957 where the cell was at 0.998, and after a run of samples off the
    # window's line it lagged by them.
    knees = tracker()
    assert drive(knees, 0.6, 0.959, i_a=-0.2 * CAPACITY_AH) == []
    assert knees.update(300.0, -0.2 * CAPACITY_AH, 3.36, 0.04, CAPACITY_AH) is None
    knees = tracker()
    assert drive(knees, 0.6, 0.959, i_a=-0.2 * CAPACITY_AH) == []
    soc, fix = 0.959, None
    for _ in range(31):  # 0.1 V off the line: left out, counted, then the segment starts over
        soc += 0.2 / 3600.0
        fix = knees.update(1.0, -0.2 * CAPACITY_AH, float(np.interp(soc, SOC, OCV)) + 0.1, 0.04, CAPACITY_AH)
        if fix is not None:
            break
    assert fix is not None and fix.knee == "top" and fix.soc == pytest.approx(soc, abs=0.001)
