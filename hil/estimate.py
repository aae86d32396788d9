"""``v2g-hil estimate``: replay a battery trace through the estimator and score it against the truth.

The trace format is that of the PyBaMM ground-truth sets (``TRACE.csv.gz`` and, beside it,
``TRACE.json`` with the truth metadata; see tests/data/battery/README.md). The estimator sees only
the measured columns (pack current, pack voltage, temperature) and the battery profile; the truth
columns and the JSON are read by the scoring code alone. Prints BENCH lines:

* SoC RMSE and max error (%) after the first 15 minutes,
* final capacity error (%) against the true pack capacity, the reported standard deviation (%) and
  the error in those deviations (an honest bound keeps it within 2), and the resistance growth found,
* the share of the time the truth lies within the reported 2-sigma SoC band,
* 10 s charge-limit error (%) at the truth points (those outside the window the profile's R0 / RC were
  fitted on, when fitted on this record): worst over-prediction, 90th percentile and median
  (the model's own limit, voltage and electrolyte, which is what the truth defines), the same for
  the discharge limit (whose truth is mostly electrolyte depletion), and the worst
  over-prediction of the limits the daemon uses (after rating, derating and SoC window).

``--initial-soc`` defaults to the true initial SoC minus 20 points (plus 20 below 0.2): the target is
to recover from a wrong start; ``--initial-soc-sigma`` is what the estimator is told of it (0.2, an
unknown start, by default; a known start, e.g. the true SoC with 0.02, scores Coulomb counting on a
flat OCV). ``--fit-rc`` instead fits R0 / RC parameters to the trace's measured
columns and prints them as the profile's ``[model]`` lines. ``--drop``, ``--jitter-s`` and
``--offset-drift-a-per-h`` perturb the measured samples to test robustness. ``--ev-soc-bias B``
adds the EV's own SoC as the charger would forward it: the truth on the EV's scale (shifted by B),
in whole percent, some seconds old, every ``--ev-soc-every-s`` (the estimator must neither follow a
biased figure nor claim to know better from a thousand of them).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.estimation.estimator import BatteryEstimator, SampleError
from edge.estimation.fit import NoPhysicalFitError, fit_rc
from edge.estimation.profile import BatteryProfile, ProfileError, configured_profile
from edge.state import StateStore
from hil.bench import Figure

FloatArray = npt.NDArray[np.float64]
SKIP_S = 900.0  # SoC is scored after the first 15 minutes
MEASURED = ("t_s", "pack_current_a_meas", "pack_voltage_v_meas", "temp_c_meas")


@dataclass
class Trace:
    name: str
    t_s: FloatArray
    i_a: FloatArray
    v_v: FloatArray
    temp_c: FloatArray
    soc_true: FloatArray | None
    meta: dict[str, object] | None


@dataclass(frozen=True)
class EvSocFeed:
    """The EV's SoC as forwarded to the charger: the truth ``delay_s`` ago on the EV's scale (shifted
    by ``bias``), rounded to ``quantum``, every ``every_s``."""

    bias: float
    every_s: float = 5.0
    quantum: float = 0.01
    delay_s: float = 3.0

    def figure(self, t_s: FloatArray, soc_true: FloatArray, j: int) -> float:
        k = max(int(np.searchsorted(t_s, t_s[j] - self.delay_s, side="right")) - 1, 0)
        return min(max(round((float(soc_true[k]) + self.bias) / self.quantum) * self.quantum, 0.0), 1.0)


@dataclass
class Replay:
    """Estimates along the trace and the scores against its truth."""

    t_s: FloatArray
    soc: FloatArray
    soc_true: FloatArray | None
    figures: list[Figure] = field(default_factory=list)
    chg10_est_a: list[float] = field(default_factory=list)
    chg10_true_a: list[float] = field(default_factory=list)
    chg10_t_s: list[float] = field(default_factory=list)
    dis10_est_a: list[float] = field(default_factory=list)
    dis10_true_a: list[float] = field(default_factory=list)
    chg10_limit_a: list[float] = field(default_factory=list)  # after rating, derating, SoC window
    dis10_limit_a: list[float] = field(default_factory=list)
    soc_sigma: FloatArray | None = None
    soc_rmse_pct: float = math.nan
    soc_max_pct: float = math.nan
    capacity_err_pct: float = math.nan
    resistance_growth: float = math.nan
    chg10_over_max_pct: float = math.nan
    chg10_median_pct: float = math.nan
    soc_in_2sigma: float = math.nan  # share of the scored samples with the truth inside 2 sigma
    rejected: int = 0
    # Truth points at the bisection's cap: the cell's limit is higher, so an error against one is an
    # upper bound (an "over" there is not known to be one).
    chg10_truth_capped: int = 0
    dis10_truth_capped: int = 0


def load_trace(path: Path) -> Trace:
    """Read ``path`` (.csv.gz or .csv) and, when present, the JSON beside it."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        header = f.readline().strip().split(",")
        data = np.loadtxt(f, delimiter=",", ndmin=2)
    cols = {name: data[:, j] for j, name in enumerate(header)}
    missing = [c for c in MEASURED if c not in cols]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    base = path.name.removesuffix(".gz").removesuffix(".csv")
    meta_path = path.with_name(base + ".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
    return Trace(
        name=base,
        t_s=cols["t_s"].astype(np.float64),
        i_a=cols["pack_current_a_meas"],
        v_v=cols["pack_voltage_v_meas"],
        temp_c=cols["temp_c_meas"],
        soc_true=cols.get("soc_true"),
        meta=meta,
    )


def perturb(
    trace: Trace, drop: float = 0.0, jitter_s: float = 0.0, offset_drift_a_per_h: float = 0.0, seed: int = 7
) -> Trace:
    """A copy with samples dropped (fraction, in bursts), timestamps jittered and a drifting offset."""
    rng = np.random.default_rng(seed)
    n = len(trace.t_s)
    keep = np.ones(n, dtype=bool)
    if drop > 0.0:
        # Bursts of 1..30 missing samples until the fraction is reached (the first sample stays).
        target = int(drop * n)
        while (~keep).sum() < target:
            start = int(rng.integers(1, n - 1))
            keep[start : start + int(rng.integers(1, 31))] = False
        keep[0] = True
    t = trace.t_s + (rng.uniform(-jitter_s, jitter_s, n) if jitter_s > 0.0 else 0.0)
    t = np.maximum.accumulate(t)  # a jittered clock still never runs backwards
    i = trace.i_a + offset_drift_a_per_h * trace.t_s / 3600.0
    return Trace(
        name=trace.name,
        t_s=t[keep],
        i_a=i[keep],
        v_v=trace.v_v[keep],
        temp_c=trace.temp_c[keep],
        soc_true=None if trace.soc_true is None else trace.soc_true[keep],
        meta=trace.meta,
    )


def default_initial_soc(trace: Trace) -> float:
    """True initial SoC minus 20 points (plus 20 if that would leave 0..1): a deliberately wrong start."""
    if trace.meta is None or "initial_soc_true" not in trace.meta:
        raise ValueError(f"{trace.name}: no truth JSON; give --initial-soc")
    s0 = float(trace.meta["initial_soc_true"])  # type: ignore[arg-type]
    return s0 - 0.2 if s0 >= 0.2 else s0 + 0.2


def replay(
    profile: BatteryProfile,
    trace: Trace,
    initial_soc: float | None,
    estimator: BatteryEstimator | None = None,
    ev: EvSocFeed | None = None,
) -> tuple[Replay, BatteryEstimator]:
    """Run the estimator over the trace and score it (scoring, and ``ev``'s simulated EV, are the only
    readers of the truth)."""
    if ev is not None and trace.soc_true is None:
        raise ValueError(f"{trace.name}: no soc_true column to play the EV's SoC from")
    est = estimator or BatteryEstimator(profile, initial_soc=initial_soc)
    h10 = [j for j, h in enumerate(profile.horizons_s) if abs(h - 10.0) < 1e-9]
    points: dict[float, tuple[float, float, bool, bool]] = {}
    if trace.meta is not None and h10:
        sop = trace.meta.get("sop_truth")
        truth_points = sop.get("points", []) if isinstance(sop, dict) else []
        cap_a = float(sop.get("bisection_cap_a_cell", math.inf)) if isinstance(sop, dict) else math.inf
        # A profile fitted on this record (its R0 / RC) is not judged on the window it was fitted on.
        fit_window = profile.fit_window_s if profile.fit_trace == trace.name else None
        for p in truth_points:
            if fit_window is not None and fit_window[0] <= float(p["t_s"]) <= fit_window[1]:
                continue
            points[float(p["t_s"])] = (
                float(p["max_charge_current_a_pack"]),
                float(p["max_discharge_current_a_pack"]),
                _capped(p, "charge", cap_a),
                _capped(p, "discharge", cap_a),
            )
    n = len(trace.t_s)
    soc = np.empty(n)
    sigma = np.empty(n)
    result = Replay(t_s=trace.t_s, soc=soc, soc_true=trace.soc_true, soc_sigma=sigma)
    t_list = trace.t_s.tolist()
    v_list = trace.v_v.tolist()
    i_list = trace.i_a.tolist()
    temp_list = trace.temp_c.tolist()
    ev_next_s = -math.inf
    for j in range(n):
        ev_soc = None
        if ev is not None and trace.soc_true is not None and t_list[j] >= ev_next_s:
            ev_soc = ev.figure(trace.t_s, trace.soc_true, j)
            ev_next_s = t_list[j] + ev.every_s
        try:
            est.update(t_list[j], v_list[j], i_list[j], temp_list[j], ev_soc=ev_soc)
        except SampleError:
            result.rejected += 1
        soc[j] = est.soc
        sigma[j] = est.soc_sigma
        t_key = float(round(t_list[j]))
        if t_key in points and abs(t_list[j] - t_key) < 0.5:
            lim = est.limits()[h10[0]]
            chg_true, dis_true, chg_capped, dis_capped = points.pop(t_key)
            result.chg10_truth_capped += chg_capped
            result.dis10_truth_capped += dis_capped
            result.chg10_est_a.append(lim.charge_current_voltage_limited_a)
            result.chg10_true_a.append(chg_true)
            result.chg10_t_s.append(t_key)
            result.dis10_est_a.append(lim.discharge_current_voltage_limited_a)
            result.dis10_true_a.append(dis_true)
            result.chg10_limit_a.append(lim.charge_current_a)
            result.dis10_limit_a.append(lim.discharge_current_a)
    est.end_session()
    _score(result, est, trace)
    return result, est


def _capped(point: Mapping[str, Any], way: str, cap_a: float) -> bool:
    """Whether a truth point's ``way`` limit is the bisection's cap, not the cell's: the shared sets
    flag it (their values are rounded); ours end 14 halvings below the cap when every step held,
    2^-14 of it, which no failed step reaches."""
    flag = point.get(f"{way}_capped")
    if flag is not None:
        return bool(flag)
    return float(point[f"max_{way}_current_a_cell"]) >= cap_a * (1.0 - 1.5 * 2.0**-14)


def _over_pct(est: list[float], true: list[float]) -> FloatArray:
    """Estimate against truth, % (> 0: over-predicted)."""
    pct: FloatArray = (np.asarray(est) / np.asarray(true) - 1.0) * 100.0
    return pct


def _score(r: Replay, est: BatteryEstimator, trace: Trace) -> None:
    name = trace.name
    if r.soc_true is not None:
        sel = r.t_s >= r.t_s[0] + SKIP_S
        err = (r.soc[sel] - r.soc_true[sel]) * 100.0
        r.soc_rmse_pct = float(np.sqrt(np.mean(err**2)))
        r.soc_max_pct = float(np.max(np.abs(err)))
        assert r.soc_sigma is not None
        r.soc_in_2sigma = float(np.mean(np.abs(err) <= 200.0 * r.soc_sigma[sel]))
        r.figures += [
            Figure(f"estimate.{name}.soc_rmse", r.soc_rmse_pct, "%"),
            Figure(f"estimate.{name}.soc_max_err", r.soc_max_pct, "%"),
            Figure(f"estimate.{name}.soc_in_2sigma", r.soc_in_2sigma * 100.0, "%"),
        ]
    soh = est.soh
    if trace.meta is not None:
        pack = trace.meta.get("pack", {})
        true_ah = float(pack["true_capacity_ah"])  # type: ignore[index]
        r.capacity_err_pct = (soh.capacity_ah / true_ah - 1.0) * 100.0
        r.figures += [
            Figure(f"estimate.{name}.capacity_err", r.capacity_err_pct, "%"),
            Figure(f"estimate.{name}.capacity_sigma", soh.capacity_sigma_ah / soh.capacity_ah * 100.0, "%"),
            # Honesty of the published bound: |error| / sigma, within 2 for a 2-sigma band that holds.
            Figure(
                f"estimate.{name}.capacity_err_sigmas",
                (soh.capacity_ah - true_ah) / soh.capacity_sigma_ah,
                "sigma",
            ),
            Figure(f"estimate.{name}.capacity_learned", float(est.capacity_learned), "bool"),
        ]
    r.resistance_growth = soh.resistance_growth
    r.figures.append(Figure(f"estimate.{name}.resistance_growth", r.resistance_growth, "x"))
    # The scales at the profile's time constants; the most probable faster one, if any, and the one
    # the SoP took.
    rc = est.rc.profile.estimate
    fast = est.rc.fast()
    for j in (0, 1):
        r.figures += [
            Figure(f"estimate.{name}.rc{j + 1}_scale", rc.scale[j], "x"),
            Figure(f"estimate.{name}.rc{j + 1}_scale_sigma", rc.sigma[j], "x"),
        ]
    r.figures += [
        Figure(f"estimate.{name}.rc_tau1_scale", 1.0 if fast is None else fast.tau1_scale, "x"),
        Figure(f"estimate.{name}.rc_tau1_scale_sop", est.rc_choice.tau1_scale, "x"),
    ]
    if r.chg10_true_a:
        e = _over_pct(r.chg10_est_a, r.chg10_true_a)
        r.chg10_over_max_pct = float(np.max(e))
        r.chg10_median_pct = float(np.median(e))
        d = _over_pct(r.dis10_est_a, r.dis10_true_a)
        r.figures += [
            Figure(f"estimate.{name}.chg10_err_max", r.chg10_over_max_pct, "%"),
            Figure(f"estimate.{name}.chg10_err_p90", float(np.percentile(e, 90)), "%"),
            Figure(f"estimate.{name}.chg10_err_median", r.chg10_median_pct, "%"),
            Figure(f"estimate.{name}.chg10_abs_err_median", float(np.median(np.abs(e))), "%"),
            Figure(f"estimate.{name}.dis10_err_max", float(np.max(d)), "%"),
            Figure(f"estimate.{name}.dis10_err_median", float(np.median(d)), "%"),
            Figure(
                f"estimate.{name}.chg10_limit_err_max",
                float(np.max(_over_pct(r.chg10_limit_a, r.chg10_true_a))),
                "%",
            ),
            Figure(
                f"estimate.{name}.dis10_limit_err_max",
                float(np.max(_over_pct(r.dis10_limit_a, r.dis10_true_a))),
                "%",
            ),
        ]
        for way, capped in (("chg10", r.chg10_truth_capped), ("dis10", r.dis10_truth_capped)):
            if capped:
                r.figures.append(Figure(f"estimate.{name}.{way}_truth_capped", capped, "points"))


def plot(r: Replay, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=False)
    hours = r.t_s / 3600.0
    ax1.plot(hours, r.soc * 100.0, label="estimate")
    if r.soc_true is not None:
        ax1.plot(hours, r.soc_true * 100.0, "--", label="truth")
    ax1.set_ylabel("SoC (%)")
    ax1.set_xlabel("time (h)")
    ax1.set_title(title)
    ax1.legend()
    ax1.grid(alpha=0.3)
    if r.chg10_true_a:
        th = np.asarray(r.chg10_t_s) / 3600.0
        ax2.plot(th, r.chg10_true_a, "o", label="truth")
        ax2.plot(th, r.chg10_est_a, "x", label="estimate")
        ax2.set_ylabel("10 s charge limit (A, pack)")
        ax2.set_xlabel("time (h)")
        ax2.legend()
        ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", type=Path, help="trace file (.csv.gz) with the truth JSON beside it")
    parser.add_argument("--profile", default="nmc-lgm50", help="battery profile name or TOML path")
    parser.add_argument("--initial-soc", type=float, default=None, help="initial SoC (0..1)")
    parser.add_argument(
        "--initial-soc-sigma",
        type=float,
        default=0.2,
        help="standard deviation the estimator is given for the initial SoC (0.2: unknown; small: known)",
    )
    parser.add_argument(
        "--series", type=int, default=None, help="series count (default: the trace's, else the profile's)"
    )
    parser.add_argument(
        "--parallel", type=int, default=None, help="parallel count (default: the trace's, else the profile's)"
    )
    parser.add_argument("--plot", type=Path, default=None, help="write estimate vs truth to this PNG")
    parser.add_argument("--fit-rc", action="store_true", help="fit R0/RC to the trace and print them")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="keep the vehicle's record in DIR/state.db (as the daemon does)",
    )
    parser.add_argument("--vehicle-id", default="replay", help="vehicle identifier for --state-dir")
    parser.add_argument("--drop", type=float, default=0.0, help="fraction of samples to drop (bursts)")
    parser.add_argument("--jitter-s", type=float, default=0.0, help="uniform timestamp jitter (+/- s)")
    parser.add_argument("--offset-drift-a-per-h", type=float, default=0.0, help="current offset drift")
    parser.add_argument(
        "--ev-soc-bias",
        type=float,
        default=None,
        help="feed the EV's own SoC: the truth shifted by this (its scale), whole percent, 3 s old",
    )
    parser.add_argument("--ev-soc-every-s", type=float, default=5.0, help="period of the EV's SoC figure")


def trace_profile(
    name: str, trace: Trace, series: int | None = None, parallel: int | None = None
) -> BatteryProfile:
    """Profile ``name`` in the trace's own pack layout unless told otherwise: the profile's would
    judge another pack (its sensor figures and capacity scaled to a pack that was not recorded)."""
    pack: dict[str, int] = trace.meta.get("pack", {}) if trace.meta is not None else {}  # type: ignore[assignment]
    return configured_profile(
        name,
        series if series is not None else pack.get("series"),
        parallel if parallel is not None else pack.get("parallel"),
    )


def main(args: argparse.Namespace) -> int:
    try:
        trace = load_trace(args.trace)
        profile = trace_profile(args.profile, trace, args.series, args.parallel)
    except (ProfileError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.fit_rc:
        try:
            fit = fit_rc(profile, trace.t_s, trace.i_a, trace.v_v, trace.temp_c)
        except ValueError as exc:
            # A whole record with a long one-way swing counts SoC from nameplate off the table's error:
            # a window of rests and small swings fits where the record does not.
            hint = (
                "; fit a window instead: v2g-hil battery-profile DATASHEET --replay TRACE --window-s START:END"
                if isinstance(exc, NoPhysicalFitError)
                else ""
            )
            print(f"error: {trace.name}: {exc}{hint}", file=sys.stderr)
            return 2
        print(f"# fitted on {trace.name}: {fit.samples} samples, rms {fit.rms_v * 1000:.2f} mV")
        print(f"r0_ohm = {fit.r0_ohm:.5f}\nr1_ohm = {fit.r1_ohm:.5f}\ntau1_s = {fit.tau1_s:.1f}")
        print(f"r2_ohm = {fit.r2_ohm:.5f}\ntau2_s = {fit.tau2_s:.1f}")
        return 0
    trace = perturb(trace, args.drop, args.jitter_s, args.offset_drift_a_per_h)
    try:
        initial = args.initial_soc if args.initial_soc is not None else default_initial_soc(trace)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.ev_soc_bias is not None and (trace.soc_true is None or args.ev_soc_every_s <= 0.0):
        print("error: --ev-soc-bias needs a trace with soc_true and --ev-soc-every-s > 0", file=sys.stderr)
        return 2
    ev = None if args.ev_soc_bias is None else EvSocFeed(args.ev_soc_bias, args.ev_soc_every_s)
    if args.state_dir is None:
        result, est = replay(
            profile,
            trace,
            initial,
            BatteryEstimator(profile, initial_soc=initial, initial_soc_sigma=args.initial_soc_sigma),
            ev,
        )
    else:
        store = StateStore.open(args.state_dir)
        try:
            if store.problem is not None:
                print(f"error: {store.problem}", file=sys.stderr)
                return 2
            estimator, key = BatteryEstimator.for_vehicle(
                store, args.vehicle_id, profile, initial_soc=initial
            )
            result, est = replay(profile, trace, initial, estimator, ev)
            store.put_vehicle(key, est.record)
        finally:
            asyncio.run(store.aclose())
    for fig in result.figures:
        print(fig.line())
    if args.plot is not None:
        plot(result, args.plot, f"{trace.name} ({profile.name}, start {initial:.2f})")
    return 0
