"""Benchmark of the battery estimator: one filter + SoP update, compiled vs reference, and accuracy.

Speed: ``Kernel.step`` (EKF predict/update and the SoP over the profile's three horizons) called from
Python, the compiled class bound to numpy arrays against the pure-Python reference on plain lists
(its fastest form), and the whole ``BatteryEstimator.update`` per sample. Accuracy: the figures of
``v2g-hil estimate`` on the battery traces (only the shortest in quick mode), from a start 20 points
off, and the SoC RMSE from a known start (the true SoC, told with a sigma of KNOWN_START_SIGMA). The traces are looked
up in ``$V2G_BATTERY_DATA``, then tests/data/battery in the source tree.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge import accel
from edge.estimation import _ecm_ref
from edge.estimation.ecm import impl
from edge.estimation.estimator import BatteryEstimator
from edge.estimation.profile import load_profile
from hil.bench import Figure

# Trace -> the profile a charger would hold for that pack (the generalization packs: issue 17).
TRACES = {
    "freq_regulation": "nmc-lgm50",
    "v2h_evening": "nmc-lgm50",
    "aged_v2h": "nmc-lgm50",
    "warm_freqreg": "nmc-lgm50",
    "cool_v2h": "nmc-lgm50",
    "mohtat_v2h": "nmc532-pouch",
    "lfp_day": "lfp-a123-26650",
    # Generated in this repository (tests/data/battery/generate_extra.py); aged2_v2h and small8_v2h
    # showed the two SoP defects fixed on 2026-12-06 (docs/estimation.md), cold0_v2h, small6c_v2h and
    # small8sa_v2h tuned nothing.
    "aged2_v2h": "nmc-lgm50",
    "cold0_v2h": "nmc-lgm50",
    "small8_v2h": "nmc-lgm50",
    "small6c_v2h": "nmc-lgm50",
    "small8sa_v2h": "nmc-lgm50",
    # LFP into its knees: lfpfull_v2h showed the table's error counted several times over (2026-12-06),
    # lfplow_v2h and lfpwarm_v2h judged the fix (lfplow_v2h also set the LFP curve's sigma_soc); all
    # three set the default diffusion time of the SoP's surface lead (docs/estimation.md, "Surface lead").
    "lfpfull_v2h": "lfp-a123-26650",
    "lfplow_v2h": "lfp-a123-26650",
    "lfpwarm_v2h": "lfp-a123-26650",
    # Made after the diffusion time was chosen, to judge it: the LFP pack at 5 degC (6-98 %), in a
    # 108s20p pack (16 kWh, 0.40C charge; 13-98 %), and a new LG M50 14 kWh pack down to 5 %.
    "lfpcold_v2h": "lfp-a123-26650",
    "lfpsmall_v2h": "lfp-a123-26650",
    "nmcdeep_v2h": "nmc-lgm50",
    # The LFP cell with OCV hysteresis (PyBaMM's one-state model): 10 mV either side of the mean in the
    # 16 kWh pack, and 15 mV (50 % more than the profile says) in lfpfull_v2h's pack and scenario.
    "lfphyst_v2h": "lfp-a123-26650",
    "lfphystp_v2h": "lfp-a123-26650",
    # ORegan2022's LG M50 aged by contact resistance (flat with current, unlike the profile's kinetics):
    # orsa20 showed the profile's flattening credited to a cell below its new cell's resistance
    # (2026-12-06, twelfth session); orsa25s8, in the 14 kWh pack at 25 degC, and orka20, aged in its
    # kinetics instead, were made to judge the fix.
    "orsa20": "nmc-lgm50",
    "orsa25s8": "nmc-lgm50",
    "orka20": "nmc-lgm50",
    # nmcdeep_v2h's new cell at 20 degC, which reads at the profile (growth 1.0): below 15 % its 10 s
    # charge limit is the electrolyte's, +26.4 % over until the SoP held that limit (thirteenth session).
    "nmcdeep20": "nmc-lgm50",
    # aged2_v2h's cell in the 14 kWh pack, warmed to 29 degC by its charge: +7.6 % over until the SoP
    # took no credit for warmth on the identified growth (thirteenth session).
    "deepsa25": "nmc-lgm50",
    # nmcdeep20's cell in an intermittent 11 kW charge: the depletion a charge leaves in its pauses.
    "nmcstop20": "nmc-lgm50",
    "nmcstopb20": "nmc-lgm50",
    "nmcstopc15": "nmc-lgm50",
    # Cells of other kinds, made to judge (sixteenth session) and tuning nothing: an NCA cell at 20 and
    # 5 degC and a high-power NMC layer (one electrode pair of a pouch) at 15 degC, each with a profile
    # built from a datasheet (a generic curve) and 25 minutes of its first record (a path: relative to
    # the data directory).
    "nca20": "profiles/nca-judge.toml",
    "nca5": "profiles/nca-judge.toml",
    "ecker15": "profiles/nmc-hp-judge.toml",
    # Large-format cells (160 Ah LFP at 1p with the shipped lfp-prismatic, 77 Ah NMC at 3p), made to
    # judge the resistance tracker's steps in C-rates.
    "lfpbig25": "lfp-prismatic",
    "nmcbig20": "profiles/nmc-big-judge.toml",
}


# A known start (the EV's figure, the record of a session just ended): what Coulomb counting keeps.
KNOWN_START_SIGMA = 0.02


def _data_dir() -> Path | None:
    env = os.environ.get("V2G_BATTERY_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "tests" / "data" / "battery")
    for c in candidates:
        if (c / "freq_regulation.csv.gz").exists():
            return c
    return None


def _per_step_ns(kernel: Any, n: int) -> float:
    step = kernel.step  # bound once: the loop measures the update, not the lookup
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter_ns()
        for j in range(n):
            # Alternate the current so every update sees a step (the gate and Newton paths all run).
            step(1.0, 0.3 if j & 1 else -0.2, 3.80, 25.0)
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def _kernel(module: Any, as_lists: bool) -> Any:
    profile = load_profile("nmc-lgm50")
    state = np.zeros(_ecm_ref.S_N)
    state[_ecm_ref.S_SOC] = 0.55
    state[_ecm_ref.S_P00] = 1e-4
    state[_ecm_ref.S_P11] = state[_ecm_ref.S_P22] = 1e-6
    state[_ecm_ref.S_P33] = 1e-5
    params = profile.kernel_params()
    table = profile.ocv_table()
    horizons = np.asarray(profile.horizons_s, dtype=np.float64)
    out = np.zeros(_ecm_ref.O_N * len(horizons))
    coef = np.zeros(_ecm_ref.C_N)
    arrays = (state, params, table, horizons, out, coef)
    if as_lists:
        return module.Kernel(*(a.tolist() for a in arrays))
    return module.Kernel(*arrays)


def _estimator_ns(n: int) -> float:
    est = BatteryEstimator(load_profile("nmc-lgm50"), initial_soc=0.55)
    t0 = time.perf_counter_ns()
    for j in range(n):
        est.update(float(j), 365.0 + (0.5 if j & 1 else -0.3), 12.0 if j & 1 else -8.0, 25.0)
    return (time.perf_counter_ns() - t0) / n


def _estimator_lfp_ns(n: int) -> float:
    """The update on an LFP profile under a steady charge: the knee tracker's window runs every sample."""
    est = BatteryEstimator(load_profile("lfp-a123-26650"), initial_soc=0.5)
    t0 = time.perf_counter_ns()
    for j in range(n):
        est.update(float(j), 354.0 + (0.05 if j & 1 else -0.05), -40.0, 25.0)
    return (time.perf_counter_ns() - t0) / n


def run(quick: bool = False) -> list[Figure]:
    from hil.estimate import default_initial_soc, load_trace, replay, trace_profile

    n = 2_000 if quick else 50_000
    ref_ns = _per_step_ns(_kernel(_ecm_ref, as_lists=True), max(n // 20, 200))
    figures = [Figure("estimation.step.reference", ref_ns, "ns/update")]
    if accel.is_compiled(impl):
        c_ns = _per_step_ns(_kernel(impl, as_lists=False), n)
        figures.append(
            Figure("estimation.step.compiled", c_ns, "ns/update", ref_ns / c_ns, "estimation.step.reference")
        )
    figures.append(Figure("estimation.estimator.update", _estimator_ns(n // 2), "ns/sample"))
    figures.append(Figure("estimation.estimator.update_lfp", _estimator_lfp_ns(n // 2), "ns/sample"))
    data = _data_dir()
    if data is None:
        return figures
    for name in list(TRACES)[:1] if quick else TRACES:
        path, spec = data / f"{name}.csv.gz", TRACES[name]
        profile_path = data / spec if spec.endswith(".toml") else None
        # $V2G_BATTERY_DATA may hold only the shared sets (or no judged profiles): the others still print.
        if not path.exists() or (profile_path is not None and not profile_path.exists()):
            continue
        trace = load_trace(path)
        profile = trace_profile(str(profile_path) if profile_path is not None else spec, trace)
        result, _ = replay(profile, trace, default_initial_soc(trace))
        figures += [
            Figure(f.name.replace("estimate.", "estimation.", 1), f.value, f.unit) for f in result.figures
        ]
        if trace.meta is not None:
            s0 = float(trace.meta["initial_soc_true"])  # type: ignore[arg-type]
            known = BatteryEstimator(profile, initial_soc=s0, initial_soc_sigma=KNOWN_START_SIGMA)
            result, _ = replay(profile, trace, s0, known)
            figures.append(Figure(f"estimation.{name}.soc_rmse_known_start", result.soc_rmse_pct, "%"))
    return figures
