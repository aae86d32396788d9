"""The estimator on packs it was not tuned for (issue 17), from an initial SoC 20 points off.

Data: the generalization set copied into tests/data/battery (README-generalization.md). What tuned
what (docs/estimation.md, "Generalization"): nothing of warm_freqreg; the SoP's cold activation energy
was checked (not fitted) against cool_v2h; the R0/RC of the two built profiles were fitted on the
measured columns of the first 40 / 30 minutes of mohtat_v2h (house load) and lfp_day (regulation),
windows that hold no SoP truth point (the scoring would leave any out); their OCV is a generic
chemistry curve at a dozen points, not the cells'.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
from ecm_support import BATTERY_DATA, datasheet_only

from edge.estimation import estimator
from edge.estimation.estimator import BatteryEstimator
from edge.estimation.profile import load_profile, with_pack
from edge.estimation.record import FORMER_UPPER_BOUND, VehicleRecord
from edge.estimation.resistance import UNKNOWN_GROWTH_SIGMA
from hil.estimate import EvSocFeed, Replay, Trace, default_initial_soc, replay, trace_profile

# Profiles built for cells judged and not shipped (tests/data/battery/README.md).
JUDGED_PROFILES = BATTERY_DATA / "profiles"
CASES = {
    "warm_freqreg": "nmc-lgm50",
    "cool_v2h": "nmc-lgm50",
    "mohtat_v2h": "nmc532-pouch",
    "lfp_day": "lfp-a123-26650",
    # Generated here (tests/data/battery/generate_extra.py): aged by contact resistance alone (its
    # charge limit was +9.7 % over before the growth's whole upper excess was priced as series),
    # soaked at 0 degC, an 8-parallel pack (14 kWh) at up to 0.47C, and a 6-parallel one (11 kWh) at
    # 10 degC down to 14 % and charged at 0.6C (+7.0 % over before the step regressor's chord), and
    # aged2's cell in the 8-parallel pack (+14.1 % over before the chord and the upper excess).
    "aged2_v2h": "nmc-lgm50",
    "cold0_v2h": "nmc-lgm50",
    "small8_v2h": "nmc-lgm50",
    "small6c_v2h": "nmc-lgm50",
    "small8sa_v2h": "nmc-lgm50",
    # lfp_day's LFP pack charged from the plateau into its top knee (98 %); from 15 % through the
    # bottom knee (7 %) to 97 % at 10 degC; from 12 % down to 3 % and up to 99 % at 30 degC (the
    # shared lfp_day stays on the plateau). From the wrong start lfpfull_v2h's truth sat outside the
    # 2-sigma band 43 % of the time, and the charge limit the daemon uses was +13.5 % over at 98 %,
    # before the table's error was counted once; lfplow_v2h then set the LFP curve's sigma_soc and
    # lfpwarm_v2h judged both.
    "lfpfull_v2h": "lfp-a123-26650",
    "lfplow_v2h": "lfp-a123-26650",
    "lfpwarm_v2h": "lfp-a123-26650",
    # Made after the surface lead's diffusion time was chosen on the three above, to judge it: the LFP
    # pack at 5 degC (6-98 %), in a 16 kWh 108s20p pack (13-98 %: before, its charge limit was +24.7 %
    # and the discharge limit used +50.3 % over), and a new LG M50 14 kWh pack down to 5 %. Below 15 %
    # that pack's 10 s charge limit is its electrolyte's: the model's figure was +46.7 % over until the
    # kinetic credit (+1.1 %, only because this new cell reads 0.955 of the profile), -8.9 % since the
    # SoP holds the electrolyte's limit, which holds it with the credit forced to 1 too
    # (test_the_electrolytes_limit_holds_a_cell_credited_the_profiles_kinetics).
    "lfpcold_v2h": "lfp-a123-26650",
    "lfpsmall_v2h": "lfp-a123-26650",
    "nmcdeep_v2h": "nmc-lgm50",
    # The LFP cell with OCV hysteresis (PyBaMM's one-state model, which Prada2013 lacks): 10 mV either
    # side of the mean (the profile's figure) in lfpsmall_v2h's pack, and 15 mV in lfpfull_v2h's pack
    # and scenario (test_hysteresis.py).
    "lfphyst_v2h": "lfp-a123-26650",
    "lfphystp_v2h": "lfp-a123-26650",
    # ORegan2022's LG M50 aged by contact resistance, whose 10 s response does not flatten with current as
    # the profile's (Chen2020's) does: at 20 degC (+18 % over before the profile's kinetics were credited
    # only to a cell at or above its new cell's resistance) and, made after that to judge it, in the
    # 14 kWh pack at 25 degC (+56 % over before), and the same cell aged in its kinetics instead, at
    # 20 degC (+7.6 % before, -0.2 % with it: the thinnest margin of the packs made to judge it).
    "orsa20": "nmc-lgm50",
    "orsa25s8": "nmc-lgm50",
    "orka20": "nmc-lgm50",
    # nmcdeep_v2h's new cell at 20 degC, read at the profile's new cell (growth 1.0): its kinetics are
    # credited in full, and below 15 % the 10 s charge limit is the electrolyte's (+26.4 % over before
    # the SoP held it; docs/estimation.md, "The electrolyte's limit").
    "nmcdeep20": "nmc-lgm50",
    # aged2_v2h's cell in the 14 kWh pack, warmed from 25 to 29 degC by its 0.47C charge: the growth
    # identified at 25 degC, scaled by the profile's law, put the charge limit +7.6 % over until the SoP
    # stopped crediting warmth (docs/estimation.md, "No credit for warmth").
    "deepsa25": "nmc-lgm50",
    # nmcdeep20's cell charged at 11 kW in 10 min blocks with 3 min pauses: 2 s into a pause the
    # electrolyte still held the charge's depletion, and the 10 s charge limit was +19.6 % over while
    # the SoP credited the fall at once (development), +13.2 % on the second pack, its truth 10, 25 and
    # 40 s into the pauses (made to judge; docs/estimation.md, "The electrolyte's memory"), and +9.3 %
    # at 15 degC with 3 min blocks and 90 s pauses (made to judge after the review's mend).
    "nmcstop20": "nmc-lgm50",
    "nmcstopb20": "nmc-lgm50",
    "nmcstopc15": "nmc-lgm50",
    # Other kinds of cell, made to judge after the electrolyte's memory (2026-12-07) and tuning nothing:
    # an NCA cell at 20 and 5 degC and a high-power NMC layer (one electrode pair of a pouch) at
    # 15 degC, each with a profile built from a datasheet holding a generic curve of its chemistry and
    # 25 minutes of its first record.
    "nca20": str(JUDGED_PROFILES / "nca-judge.toml"),
    "nca5": str(JUDGED_PROFILES / "nca-judge.toml"),
    "ecker15": str(JUDGED_PROFILES / "nmc-hp-judge.toml"),
    # Large-format cells of the A123 and LG M50 designs (electrodes scaled: 160 Ah at 104s1p, 77 Ah at
    # 96s3p): the shipped lfp-prismatic profile, whose public-knowledge curve claimed 5 mV and left the
    # truth outside the band 38 % of the time, and a profile built from a datasheet.
    "lfpbig25": "lfp-prismatic",
    "nmcbig20": str(JUDGED_PROFILES / "nmc-big-judge.toml"),
}
GENERATED = {
    "aged2_v2h",
    "cold0_v2h",
    "small8_v2h",
    "small6c_v2h",
    "small8sa_v2h",
    "lfpfull_v2h",
    "lfplow_v2h",
    "lfpwarm_v2h",
    "lfpcold_v2h",
    "lfpsmall_v2h",
    "nmcdeep_v2h",
    "lfphyst_v2h",
    "lfphystp_v2h",
    "orsa20",
    "orsa25s8",
    "orka20",
    "nmcdeep20",
    "deepsa25",
    "nmcstop20",
    "nmcstopb20",
    "nmcstopc15",
    "nca20",
    "nca5",
    "ecker15",
    "lfpbig25",
    "nmcbig20",
}
# At the LFP knees the 10 s limits were +13.8 % (charge, lfpfull_v2h at 98 %), +34.4 % (charge,
# lfpwarm_v2h at 99 %) and +17.8 % (discharge, lfpwarm_v2h at 7.5 %) over before the SoP counted the
# particles' surface lead and read the voltage's offset as SoC (docs/estimation.md, "Surface lead").
# From a known start one point is still over: KNOWN_START_DIS_OVER_PCT.
# lfpwarm_v2h at 4 % from a known start: +17.4 % (the generic curve's end, extended below empty, is
# not the cell's; docs/estimation.md, "Surface lead"). A ceiling against a regression.
KNOWN_START_DIS_OVER_PCT = {"lfpwarm_v2h": 20.0}
KNEE_TOP_SOC, KNEE_BOTTOM_SOC = 0.95, 0.10  # where a truth point counts as at a knee
KNEES = {  # top, bottom
    "lfpfull_v2h": (True, False),
    "lfplow_v2h": (True, True),
    "lfpwarm_v2h": (True, True),
    "lfpcold_v2h": (True, True),
    "lfpsmall_v2h": (True, False),
    "lfphyst_v2h": (True, False),
    "lfphystp_v2h": (True, False),
}


@pytest.fixture(scope="module")
def generalized(load: Callable[[str], Trace]) -> Callable[[str], Replay]:
    cache: dict[str, Replay] = {}

    def _run(name: str) -> Replay:
        if name not in cache:
            trace = load(name)
            assert trace.meta is not None
            profile = trace_profile(CASES[name], trace)
            cache[name], _ = replay(profile, trace, default_initial_soc(trace))
        return cache[name]

    return _run


@pytest.mark.parametrize("name", list(CASES))
def test_charge_limit_is_never_over_predicted_on_unseen_packs(
    load: Callable[[str], Trace], generalized: Callable[[str], Replay], name: str
) -> None:
    r = generalized(name)
    meta = load(name).meta
    assert meta is not None
    points = meta["sop_truth"]["points"]  # type: ignore[index]
    assert len(r.chg10_true_a) == (len(points) if name in GENERATED else 20)  # every truth point scored
    soc_at = {float(p["t_s"]): float(p["soc_true"]) for p in points}
    soc = np.asarray([soc_at[t] for t in r.chg10_t_s])
    true_chg, true_dis = np.asarray(r.chg10_true_a), np.asarray(r.dis10_true_a)
    assert np.all(np.asarray(r.chg10_est_a) <= 1.05 * true_chg)  # the model's own figure
    # What the daemon uses (rating, derating, SoC window applied) likewise.
    assert np.all(np.asarray(r.chg10_limit_a) <= 1.05 * true_chg)
    assert np.all(np.asarray(r.dis10_limit_a) <= 1.05 * true_dis)
    # The knee packs are scored at their knees, where the limits fall ten-fold.
    top, bottom = KNEES.get(name, (False, False))
    assert (not top or soc.max() >= KNEE_TOP_SOC) and (not bottom or soc.min() <= KNEE_BOTTOM_SOC)


@pytest.mark.parametrize(("name", "soc_low_max"), [("small6c_v2h", 0.15), ("small8_v2h", 0.30)])
def test_a_small_pack_sees_its_rests_and_anchors_its_capacity(
    load: Callable[[str], Trace], name: str, soc_low_max: float
) -> None:
    # The rest threshold and offset were per cell at the profile's 43 in parallel: 0.06-0.08 A at
    # these packs, under the sensor's own 0.1 A offset, so no rest counted and no capacity anchored.
    trace = load(name)
    assert trace.meta is not None
    profile = trace_profile(CASES[name], trace)
    _, est = replay(profile, trace, default_initial_soc(trace))
    (point,) = est.capacity.points  # the rest after the discharge paired with the final one
    assert point.soc_low <= soc_low_max and abs(point.dsoc) >= 0.5
    truth = float(trace.meta["cell"]["true_capacity_ah"])  # type: ignore[index]
    assert est.capacity.estimate.capacity_ah == pytest.approx(truth, rel=0.03)


@pytest.mark.parametrize(
    "name",
    [
        "lfp_day",
        "lfpfull_v2h",
        "lfplow_v2h",
        "lfpwarm_v2h",
        "lfpcold_v2h",
        "lfpsmall_v2h",
        "lfphyst_v2h",
        "lfphystp_v2h",
    ],
)
def test_lfp_from_a_known_start_keeps_its_soc(load: Callable[[str], Trace], name: str) -> None:
    # Coulomb counting carries a known SoC over the plateau; at the knees the generic curve, 3-10
    # points from this cell's along the SoC axis, pulled it 4-5 points off (4.4-4.5 % RMSE on
    # lfplow_v2h and lfpwarm_v2h) before its axis error was declared (ocv.sigma_soc).
    trace = load(name)
    assert trace.meta is not None
    profile = trace_profile("lfp-a123-26650", trace)
    s0 = float(trace.meta["initial_soc_true"])  # type: ignore[arg-type]
    r, est = replay(profile, trace, None, BatteryEstimator(profile, initial_soc=s0, initial_soc_sigma=0.02))
    assert r.soc_rmse_pct <= 1.0
    assert r.soc_in_2sigma >= 0.9
    # Every knee fix at the knee it names (truth 0.973-0.975 at the top ones, 0.166-0.168 at the bottom
    # ones); each pack charged to 98 % or more has one at the top (lfplow_v2h stops at 97 %, where
    # this cell's slope has not yet reached the knee's).
    assert trace.soc_true is not None
    for t_s, fix, _ in est.knee_fixes:
        truth = float(np.interp(t_s, trace.t_s, trace.soc_true))
        assert truth >= 0.95 if fix.knee == "top" else truth <= 0.2
        assert abs(fix.soc - truth) <= 0.06
    if float(np.max(trace.soc_true)) >= 0.98:
        assert any(fix.knee == "top" for _, fix, _ in est.knee_fixes)
    # An estimate at the knee sees the knee: the 10 s limits the daemon uses stay within 5 % of the
    # cell's there too (lfpwarm_v2h: charge +15.7 % at 99 %, discharge +133 % at 4 % before the
    # surface lead), but for one point (KNOWN_START_DIS_OVER_PCT).
    true_chg, true_dis = np.asarray(r.chg10_true_a), np.asarray(r.dis10_true_a)
    assert np.all(np.asarray(r.chg10_limit_a) <= 1.05 * true_chg)
    dis_over = 1.0 + KNOWN_START_DIS_OVER_PCT.get(name, 5.0) / 100.0
    assert np.all(np.asarray(r.dis10_limit_a) <= dis_over * true_dis)


@pytest.mark.parametrize("name", ["lfpfull_v2h", "lfphystp_v2h"])
def test_a_charge_into_lfps_top_knee_fixes_a_wrong_soc(load: Callable[[str], Trace], name: str) -> None:
    # Started 20 points low, the estimate sat on the plateau's reading through the charge into the
    # knee and an hour's rest at 98 %: 0.788 +/- 0.11 at the end on both, its 25 mV innovation no
    # more than the curve's offset allows. The voltage's slope against the counted charge carries no
    # offset (docs/estimation.md, "Knee fixes"): the fix 1.8 points early (the curve's knee against
    # this cell's), weighed as a repeating error. lfpfull_v2h's own update at the knee sits on the
    # consider update's threshold: since the resistance tracker's steps are C-rates (more of them on
    # this 2.3 Ah cell) it crosses it 2 minutes before the charge ends, 0.79 -> 0.90 +/- 0.05 without
    # the fix, which then moves it to 0.911 (0.938 before, from 0.788 +/- 0.12); lfphystp_v2h 0.928.
    trace = load(name)
    assert trace.soc_true is not None
    r, est = replay(trace_profile(CASES[name], trace), trace, default_initial_soc(trace))
    ((t_s, fix, outcome),) = est.knee_fixes
    assert (
        fix.knee == "top" and outcome == "fused" and float(np.interp(t_s, trace.t_s, trace.soc_true)) > 0.97
    )
    without, _ = replay(
        replace(trace_profile(CASES[name], trace), ocv_knee_slope_v=0.0), trace, default_initial_soc(trace)
    )
    # The fix itself within 2 points of the cell (0.961 at 0.973-0.975, the curve's knee early).
    assert fix.soc == pytest.approx(float(np.interp(t_s, trace.t_s, trace.soc_true)), abs=0.02)
    final_true = float(trace.soc_true[-1])
    assert abs(final_true - float(r.soc[-1])) < abs(final_true - float(without.soc[-1]))
    if name == "lfphystp_v2h":  # the plateau's reading holds to the end without the fix
        assert final_true - float(without.soc[-1]) > 0.15
    assert abs(final_true - float(r.soc[-1])) <= 0.08
    assert r.soc_sigma is not None
    assert abs(final_true - float(r.soc[-1])) <= 2.0 * float(r.soc_sigma[-1])  # and still in its band


@pytest.mark.parametrize("name", ["warm_freqreg", "small8_v2h", "small6c_v2h", "nmcdeep_v2h"])
def test_soc_from_a_wrong_start_with_a_matching_profile(
    generalized: Callable[[str], Replay], name: str
) -> None:
    # The LG M50 cell of the profile's OCV table at 35 degC, in 14 and 11 kWh packs, and down to 5.5 %.
    # nmcdeep_v2h was 1.05 % (its SoC 3 points low after the charge) while the offset seen at rest
    # moved the SoC through b's covariance (test_an_offset_seen_at_rest_leaves_the_soc_to_the_voltage).
    r = generalized(name)
    assert r.soc_rmse_pct <= 1.0
    assert r.soc_in_2sigma >= 0.9


def test_the_electrolytes_limit_holds_a_cell_credited_the_profiles_kinetics(
    load: Callable[[str], Trace], monkeypatch: pytest.MonkeyPatch
) -> None:
    # nmcdeep_v2h's cell reads 0.955 of the profile, so part of the profile's kinetic flattening is
    # withheld from it; a profile refit that reads it at 1 credits all of it. Below 15 % the cell's
    # 10 s charge limit is then its electrolyte's, which the ECM's curve does not hold: +46.7 % over
    # without the limit (+17.3 % since the fast branch's time constant is identified, 0.71 of the
    # profile's there), within the 5 % with it (a current already flowing spends its share).
    monkeypatch.setattr(estimator, "kinetic_credit", lambda _upper: 1.0)
    trace = load("nmcdeep_v2h")
    profile = trace_profile(CASES["nmcdeep_v2h"], trace)
    over = {}
    for k_a_sqrt_s in (0.0, profile.electrolyte_k_a_sqrt_s):
        r, _ = replay(replace(profile, electrolyte_k_a_sqrt_s=k_a_sqrt_s), trace, default_initial_soc(trace))
        over[k_a_sqrt_s] = float(np.max(np.asarray(r.chg10_est_a) / np.asarray(r.chg10_true_a)))
    assert over[0.0] > 1.1
    assert over[profile.electrolyte_k_a_sqrt_s] <= 1.05


def test_a_deep_swing_with_rests_measures_the_capacity(load: Callable[[str], Trace]) -> None:
    # nmcdeep_v2h rests at 5.5 % and 88 %: one pair of anchors 82 points apart. +2.4 % before the
    # offset seen at rest stopped moving the SoC (the upper anchor read 0.857 for 0.880).
    trace = load("nmcdeep_v2h")
    assert trace.meta is not None
    profile = trace_profile(CASES["nmcdeep_v2h"], trace)
    _, est = replay(profile, trace, default_initial_soc(trace))
    (point,) = est.capacity.points
    assert point.soc_low <= 0.06 and abs(point.dsoc) >= 0.8
    truth = float(trace.meta["cell"]["true_capacity_ah"])  # type: ignore[index]
    cap = est.capacity.estimate
    # The table is the cell's (a vendor's), so both anchors read within a few tenths of a point:
    # within 1 %, not only the 3 %.
    assert cap.capacity_ah == pytest.approx(truth, rel=0.01)
    assert abs(cap.capacity_ah - truth) <= 2.0 * cap.sigma_ah


@pytest.mark.parametrize("name", list(CASES))
def test_the_reported_band_holds_the_truth_on_unseen_packs(
    generalized: Callable[[str], Replay], name: str
) -> None:
    # The built profiles hold a generic chemistry curve at a dozen points (tens of mV off the cell),
    # cool_v2h is another parametrisation at 8 degC: the SoC can be points off, but the reported
    # 2-sigma band must say so at least 90 % of the scored time.
    r = generalized(name)
    assert r.soc_in_2sigma >= 0.9
    # And the band is not so wide that it says nothing: the error is within it with room to spare.
    assert r.soc_rmse_pct <= 100.0 * 2.0 * float(np.median(r.soc_sigma))  # type: ignore[arg-type]


def test_lfp_plateau_reports_a_wider_band_than_a_steep_nmc_curve(
    generalized: Callable[[str], Replay],
) -> None:
    lfp = generalized("lfp_day").soc_sigma
    nmc = generalized("warm_freqreg").soc_sigma
    assert lfp is not None and nmc is not None
    # On the plateau the voltage says little: the band is several points wide and wider than NMC's
    # at the same fade uncertainty.
    assert float(np.median(lfp)) >= 0.05
    assert float(np.median(lfp)) >= 1.5 * float(np.median(nmc))


def test_a_profile_is_not_judged_on_the_window_it_was_fitted_on(load: Callable[[str], Trace]) -> None:
    # The SoP truth points inside the profile's fit window on the record it was fitted on are left
    # out of the scoring; on another record, or outside the window, they count.
    trace = load("lfp_day")
    assert trace.meta is not None
    times = [float(p["t_s"]) for p in trace.meta["sop_truth"]["points"]]  # type: ignore[index]
    window = (0.0, 5000.0)
    fitted = replace(load_profile("lfp-a123-26650"), fit_trace="lfp_day", fit_window_s=window)
    r, _ = replay(fitted, trace, default_initial_soc(trace))
    assert r.chg10_t_s == [t for t in times if not window[0] <= t <= window[1]]
    assert len(r.chg10_t_s) < len(times)
    elsewhere = replace(fitted, fit_trace="another_record")
    r, _ = replay(elsewhere, trace, default_initial_soc(trace))
    assert len(r.chg10_t_s) == len(times)


@pytest.mark.parametrize(
    ("name", "profile", "bias", "rmse_max_pct"),
    [
        # A table that fits (the LG M50's): a figure 3 points off the truth must not drag it there.
        ("v2h_evening", "nmc-lgm50", 0.03, 1.0),
        ("v2h_evening", "nmc-lgm50", -0.03, 1.0),
        # A generic table 20-40 mV off (2.7 % alone): the EV's figure on the cell's scale corrects it.
        ("mohtat_v2h", "nmc532-pouch", 0.0, 1.0),
        # Biased there, it cannot be told from the table's error: better than none, the band honest.
        ("mohtat_v2h", "nmc532-pouch", 0.03, 3.5),
        # LFP's plateau (15 % alone from the wrong start): the figure carries the SoC, its bias shows.
        ("lfp_day", "lfp-a123-26650", 0.0, 1.0),
        ("lfp_day", "lfp-a123-26650", -0.03, 4.0),
    ],
)
def test_the_evs_own_soc_helps_without_being_trusted_beyond_its_scale_error(
    load: Callable[[str], Trace], name: str, profile: str, bias: float, rmse_max_pct: float
) -> None:
    # Figures fused as independent readings collapsed the filter's variance: with +3 points the truth
    # left the 2-sigma band 16 % (v2h_evening) and 21 % (mohtat_v2h) of the time, 2.1 / 3.0 % RMSE.
    trace = load(name)
    assert trace.meta is not None
    prof = trace_profile(profile, trace)
    r, est = replay(prof, trace, default_initial_soc(trace), ev=EvSocFeed(bias))
    assert est.ev.rejected == 0 and est.ev.fused >= 1
    assert r.soc_rmse_pct <= rmse_max_pct
    assert r.soc_in_2sigma >= 0.9


@pytest.mark.parametrize("profile", ["nmc532-pouch", "datasheet-only"])
def test_a_profile_of_another_cell_identifies_the_growth_and_keeps_the_limit_below_the_cell(
    load: Callable[[str], Trace], profile: str
) -> None:
    # The aged LG M50 pack (instant step resistance 1.7 x a new M50's) met with the profile of another
    # NMC cell: the NMC532 pouch fitted on mohtat_v2h, or the same datasheet without a replay (series
    # resistance only). Its growth against either is above 5: the tracker must find it rather than hold
    # a bound, and the 10 s charge limit the daemon uses must stay below the cell's at every point.
    trace = load("aged_v2h")
    assert trace.meta is not None
    pack = trace.meta["pack"]
    base = datasheet_only("nmc532-pouch") if profile == "datasheet-only" else load_profile(profile)
    prof = with_pack(base, pack["series"], pack["parallel"])  # type: ignore[index]
    r, est = replay(prof, trace, default_initial_soc(trace))
    g = est.resistance.estimate
    assert 5.0 < g.growth < 0.95 * est.resistance.bounds[1]
    used = np.asarray(r.chg10_limit_a) / np.asarray(r.chg10_true_a) - 1.0
    assert len(used) >= 15
    assert float(used.max()) <= 0.0, f"used 10 s charge limit up to {100 * used.max():+.1f} % over the cell's"


def test_a_growth_stored_at_a_bound_starts_the_next_session_as_unknown(load: Callable[[str], Trace]) -> None:
    # Held at a bound the growth is the clamp's value: a record must not carry it as identified, and
    # a record written when the upper bound was 5 (growth exactly 5.0, the steps' narrow sigma) must
    # not pin the aged pack there now.
    trace = load("aged_v2h")
    assert trace.meta is not None
    pack = trace.meta["pack"]
    prof = with_pack(datasheet_only("nmc532-pouch"), pack["series"], pack["parallel"])  # type: ignore[index]
    old = VehicleRecord(profile=prof.name, sessions=3, growth=FORMER_UPPER_BOUND, growth_sigma=0.05)
    est = BatteryEstimator(prof, initial_soc=default_initial_soc(trace), record=old)
    r, est = replay(prof, trace, None, estimator=est)
    assert est.resistance.estimate.growth > FORMER_UPPER_BOUND + 0.5
    used = np.asarray(r.chg10_limit_a) / np.asarray(r.chg10_true_a) - 1.0
    assert float(used.max()) <= 0.0, f"used 10 s charge limit up to {100 * used.max():+.1f} % over the cell's"

    mohtat = load("mohtat_v2h")
    assert mohtat.meta is not None
    lgm50 = trace_profile("nmc-lgm50", mohtat)
    _, est = replay(lgm50, mohtat, default_initial_soc(mohtat))
    record = est.record  # what end_session kept
    assert record.growth == pytest.approx(est.resistance.bounds[0])
    assert est.resistance.estimate.sigma < UNKNOWN_GROWTH_SIGMA / 2  # the steps alone would say "known"
    assert record.growth_sigma >= UNKNOWN_GROWTH_SIGMA


@pytest.mark.parametrize("name", ["aged_v2h", "cool_v2h"])
def test_a_vehicle_seen_again_keeps_the_truth_in_its_bands(load: Callable[[str], Trace], name: str) -> None:
    # Three sessions of the same record with the vehicle's record carried over. The anchors stay above
    # 43 % SoC, where the aged cell's OCV counted from full looks like a new cell's: each session's
    # pair "confirms" about the new cell's capacity. Kept as learned, the aged pack's capacity was
    # 5-6 sigma off in sessions 2-3 and the narrowed SoC band held the truth 37 % and 22 % of the
    # time (cool_v2h: 73 %, 42 %); the fade that can hide below the anchors stays in both bands.
    trace = load(name)
    assert trace.meta is not None
    prof = trace_profile("nmc-lgm50", trace)
    true_ah = float(trace.meta["pack"]["true_capacity_ah"])  # type: ignore[index]
    record = None
    for _ in range(3):
        est = BatteryEstimator(prof, initial_soc=default_initial_soc(trace), record=record)
        r, est = replay(prof, trace, None, estimator=est)
        record = est.record
        assert r.soc_in_2sigma >= 0.9
        soh = est.soh
        assert abs(soh.capacity_ah - true_ah) <= 2.0 * soh.capacity_sigma_ah
        assert not est.capacity_learned
    assert record is not None and record.sessions == 3
    assert min(p.soc_low for p in record.capacity_points) > 0.4  # what the bands are kept open for


def test_a_truth_at_the_bisections_cap_is_reported_as_a_bound(generalized: Callable[[str], Replay]) -> None:
    # mohtat_v2h's discharge truth is the shared generator's 50 A cap at every point (flagged there):
    # the cell takes more, so its "+22.5 % over" is a bound on the error, not known to be one.
    # orsa25s8 (generated here, no flag) has one point at the last bisection step below the cap.
    for name, dis_capped in (("mohtat_v2h", 20), ("orsa25s8", 1), ("nmcdeep20", 0)):
        r = generalized(name)
        assert (r.chg10_truth_capped, r.dis10_truth_capped) == (0, dis_capped)
        figures = {f.name: f.value for f in r.figures}
        if dis_capped:
            assert figures[f"estimate.{name}.dis10_truth_capped"] == dis_capped
        else:
            assert f"estimate.{name}.dis10_truth_capped" not in figures
        assert f"estimate.{name}.chg10_truth_capped" not in figures
