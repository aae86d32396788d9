"""Benchmark of the protection kernel and the closed-loop V2H export-cap figures.

``closed_loop`` is the small plant the export-cap tests and this benchmark share: a first-order
inverter (time constant ``tau_s``) feeding a house load behind the site meter, the meter sampled once
per daemon cycle and delivered ``meter_delay_cycles`` late with its own timestamp and sequence number.
Export is integrated at ten sub-steps per cycle, so an excursion's energy is measured at the plant,
not at the meter.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from edge import accel
from edge.control import _protect_ref
from edge.control import protect_types as pt
from edge.control.protect import impl
from edge.control.protect_params import ProtectParams
from hil.bench import Figure

StepFn = Callable[[pt.FloatArray, pt.FloatArray, pt.FloatArray, pt.FloatArray], None]
SUBSTEPS = 10


@dataclass
class Trace:
    """Per-cycle record of a closed-loop run, plus the export excursions measured at the plant."""

    t_s: list[float] = field(default_factory=list)
    load_w: list[float] = field(default_factory=list)
    p_cmd_w: list[float] = field(default_factory=list)
    p_act_w: list[float] = field(default_factory=list)
    sample_import_w: list[float] = field(default_factory=list)  # meter value delivered this cycle
    sample_t_s: list[float] = field(default_factory=list)  # its timestamp (NaN before the first)
    sample_new: list[bool] = field(default_factory=list)
    load_est_w: list[float] = field(default_factory=list)
    state: list[int] = field(default_factory=list)
    reason: list[int] = field(default_factory=list)
    excursions_wh: list[float] = field(default_factory=list)


def closed_loop_params(**overrides: object) -> ProtectParams:
    """Category II defaults, already in service (no enter-service delay) for closed-loop runs."""
    base: dict[str, object] = {"es_delay_s": 0.0, "es_ramp_s": 0.0}
    base.update(overrides)
    return ProtectParams.for_category(2, 7000.0, **base)


def closed_loop(
    step: StepFn,
    params: ProtectParams,
    load_w: Sequence[float],
    *,
    p_req_w: Sequence[float] | float = 7000.0,
    dt_s: float = 0.1,
    tau_s: float = 0.1,
    meter_delay_cycles: Sequence[int] | int = 0,
    frozen_from_cycle: int | None = None,
    cap_mode: bool = True,
    meter_noise_w: float = 2.0,
    seed: int = 0,
    polled_refresh_cycles: int = 0,
    stage_every_cycles: int = 1,
) -> Trace:
    """Run the kernel against the plant, one cycle per entry of ``load_w``.

    ``meter_delay_cycles`` is one delay for all samples or one per cycle (a sample whose delivery
    would overtake a newer one is dropped, as a real meter link would); from ``frozen_from_cycle``
    the meter repeats its last value with fresh sequence numbers. The meter reading carries uniform
    noise of +-``meter_noise_w`` (a live meter never repeats itself exactly for long).

    ``polled_refresh_cycles`` > 0 models a meter polled like the daemon polls one: it measures every
    that many cycles, in the middle of a cycle, and holds the value; each cycle reads it, stamped with
    the read time, the previous read time given as the earliest instant of the measurement. The
    inverter's power at the measurement instant is then between two of its readings.
    ``stage_every_cycles`` > 1 reads the inverter's power only every that many cycles (a slow line):
    in between the kernel gets the older reading with its own time.
    """
    p = params.pack()
    s = pt.new_state()
    x = pt.new_inputs()
    o = pt.new_outputs()
    n = len(load_w)
    delays = [meter_delay_cycles] * n if isinstance(meter_delay_cycles, int) else list(meter_delay_cycles)
    requests = [p_req_w] * n if isinstance(p_req_w, float | int) else list(p_req_w)
    rng = random.Random(seed)
    cap = params.export_cap_w
    tr = Trace()
    p_act = 0.0
    taken: list[tuple[float, float]] = []  # (timestamp, import) taken at each cycle
    delivered_k = -1
    seq = 0
    last_value = math.nan
    excursion = 0.0
    decay = math.exp(-dt_s / SUBSTEPS / tau_s)
    held = load_w[0] if n else math.nan  # polled mode: the meter's held value
    for k in range(n):
        t = k * dt_s
        load = load_w[k]
        value = load - p_act + rng.uniform(-meter_noise_w, meter_noise_w)
        if polled_refresh_cycles > 0:
            value = held if frozen_from_cycle is None or k < frozen_from_cycle else taken[-1][1]
            taken.append((t, value))
            delivered_k = k
            seq += 1
            x[pt.I_METER_T_S] = t
            x[pt.I_METER_T_LO_S] = t - dt_s if k > 0 else math.nan
            x[pt.I_P_SITE_IMPORT_W] = value
            x[pt.I_METER_SEQ] = float(seq)
            last_value = value
            new = True
        else:
            if frozen_from_cycle is not None and k >= frozen_from_cycle:
                value = taken[-1][1]
            taken.append((t, value))
            # newest sample whose delay has elapsed, never going back to an older one
            new = False
            for j in range(k, delivered_k, -1):
                if j + delays[j] <= k:
                    delivered_k = j
                    seq += 1
                    new = True
                    break
            if delivered_k >= 0:
                tm, last_value = taken[delivered_k]
                x[pt.I_METER_T_S] = tm
                x[pt.I_P_SITE_IMPORT_W] = last_value
                x[pt.I_METER_SEQ] = float(seq)
        x[pt.I_T_S] = t
        x[pt.I_V_MAX_PU] = 1.0
        x[pt.I_V_MIN_PU] = 1.0
        x[pt.I_F_HZ] = 60.0
        x[pt.I_P_REQ_W] = requests[k]
        x[pt.I_CAP_MODE] = 1.0 if cap_mode else 0.0
        if k % stage_every_cycles == 0:
            x[pt.I_P_INV_MEAS_W] = p_act
            x[pt.I_P_INV_T_S] = t
        step(p, s, x, o)
        p_cmd = float(o[pt.O_P_W])
        tr.t_s.append(t)
        tr.load_w.append(load)
        tr.p_cmd_w.append(p_cmd)
        tr.p_act_w.append(p_act)
        tr.sample_import_w.append(last_value)
        tr.sample_t_s.append(taken[delivered_k][0] if delivered_k >= 0 else math.nan)
        tr.sample_new.append(new)
        tr.load_est_w.append(float(o[pt.O_LOAD_EST_W]))
        tr.state.append(int(o[pt.O_STATE]))
        tr.reason.append(int(o[pt.O_REASON]))
        for sub in range(SUBSTEPS):
            if polled_refresh_cycles > 0 and sub == SUBSTEPS // 2 and k % polled_refresh_cycles == 0:
                held = load - p_act + rng.uniform(-meter_noise_w, meter_noise_w)
            p_next = p_cmd + (p_act - p_cmd) * decay
            export = 0.5 * (p_act + p_next) - load - cap  # trapezoid over the sub-step
            if export > 0.0:
                excursion += export * dt_s / SUBSTEPS / 3600.0
            elif excursion > 0.0:
                tr.excursions_wh.append(excursion)
                excursion = 0.0
            p_act = p_next
    if excursion > 0.0:
        tr.excursions_wh.append(excursion)
    return tr


def load_drop(
    drop_w: float = 5000.0, base_w: float = 1000.0, at_s: float = 10.0, end_s: float = 20.0, dt_s: float = 0.1
) -> list[float]:
    """House load stepping down by ``drop_w`` at ``at_s``."""
    return [base_w + drop_w if k * dt_s < at_s else base_w for k in range(round(end_s / dt_s))]


def hob(
    period_s: float, on_w: float = 2000.0, base_w: float = 500.0, end_s: float = 60.0, dt_s: float = 0.1
) -> list[float]:
    """An induction hob pulsing ``on_w`` with a 50 % duty cycle over a steady base load."""
    return [
        base_w + (on_w if (k * dt_s) % period_s < period_s / 2 else 0.0) for k in range(round(end_s / dt_s))
    ]


def total_variation_ratio(tr: Trace) -> float:
    """Total variation of the command over that of the load: 1 tracks the load, > 1 oscillates."""
    cmd = np.abs(np.diff(np.asarray(tr.p_cmd_w))).sum()
    load = np.abs(np.diff(np.asarray(tr.load_w))).sum()
    return float(cmd / load) if load > 0 else math.inf


def _per_step_ns(step: StepFn, n: int) -> float:
    # the daemon's fullest cycle: discharging with a live meter and the active anti-islanding dither
    p = closed_loop_params(
        dither_var=35.0, q_max_inj_var=3000.0, q_max_abs_var=3000.0, s_rated_va=7000.0
    ).pack()
    best = math.inf
    for _ in range(5):
        s = pt.new_state()
        x = pt.new_inputs()
        o = pt.new_outputs()
        x[pt.I_V_MAX_PU] = 1.0
        x[pt.I_V_MIN_PU] = 1.0
        x[pt.I_F_HZ] = 60.0
        x[pt.I_P_REQ_W] = 3000.0
        x[pt.I_P_INV_MEAS_W] = 3000.0
        fn = step
        t0 = time.perf_counter_ns()
        for k in range(n):
            t = k * 0.1
            x[pt.I_T_S] = t
            x[pt.I_METER_T_S] = t
            x[pt.I_METER_SEQ] = k
            x[pt.I_P_SITE_IMPORT_W] = 400.0 + (k & 7)  # a live meter: every sample is new
            fn(p, s, x, o)
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def run(quick: bool = False) -> list[Figure]:
    n = 2_000 if quick else 50_000
    ref_ns = _per_step_ns(_protect_ref.step, n)
    figures = [Figure("protect.step.reference", ref_ns, "ns/step")]
    if accel.is_compiled(impl):
        c_ns = _per_step_ns(impl.step, n)
        figures.append(
            Figure("protect.step.compiled", c_ns, "ns/step", ref_ns / c_ns, "protect.step.reference")
        )
    params = closed_loop_params()
    for delay in (0, 3):
        tr = closed_loop(impl.step, params, load_drop(), meter_delay_cycles=delay)
        worst = max(tr.excursions_wh, default=0.0)
        figures.append(Figure(f"protect.exportcap.drop5kw.delay{delay}", worst, "Wh/excursion"))
    # timestamped meter samples, then a polled meter refreshing every other cycle with the inverter's
    # power also read every other cycle (the RS-485 bench)
    for period in (2.0, 8.0):
        for tag, refresh, every in (("", 0, 1), (".polled", 2, 2)):
            tr = closed_loop(
                impl.step, params, hob(period), polled_refresh_cycles=refresh, stage_every_cycles=every
            )
            name = f"protect.exportcap.hob{period:g}s{tag}"
            figures.append(Figure(f"{name}.tv_ratio", total_variation_ratio(tr), "ratio"))
            figures.append(Figure(f"{name}.worst", max(tr.excursions_wh, default=0.0), "Wh/excursion"))
    return figures
