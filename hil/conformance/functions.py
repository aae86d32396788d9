"""The grid-support function tests of the conformance suite: volt-var (characteristics 1-3 and the
VRef test), volt-watt, frequency droop (characteristics 1 and 2, over and under frequency, charging
and discharging), the priority test, constant PF, constant var and watt-var, each for the owner the
daemon or the plant's inverter (``functions.<name>``). The step sequences follow the notes
(../shared/notes/ieee1547-sunspec.md B.2-B.5, B.9); each step is judged at the plant's output with
:func:`criteria.response_at_tr` (or the one-sided :func:`criteria.response_within` where 1547.1 says
"within") and the 4.2 steady-state band at 2 Tr after the step.

The equipment under test: the bench's 7.4 kW stage sized S = 8250 VA, so that 0.44 S of reactive
power (3630 var, Category B) is available at rated active power (sqrt(7400² + 3630²) < 8250) and
neither the daemon's reactive priority nor the stage's active priority decides a volt-var test. P and
Q are judged in per unit of that S (the MRAs are 5 % of it); curves given in per unit of P rated are
converted.

Power levels: a local dispatch (``v2g`` mode) sets the operating point; power steps (constant PF,
constant var, watt-var) lower the discharge limit the EV reports (``ev_limits``), so that they happen
at a known plant time for either owner.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hil.conformance.base import Band, Columns, ConformanceTest, Judge, Owner, Row, start_lead_s
from hil.conformance.criteria import (
    MRA_F_HZ,
    MRA_PQ_PU,
    MRA_V_PU,
    mean_over,
    mra_time_s,
    response_at_tr,
    response_within,
    steady_band,
    t90_s,
)
from hil.plant import events as ev
from hil.plant.config import PowerStageConfig
from hil.plant.stage import interp
from hil.scenario import Scenario

S_VA = 8250.0
P_W = 7400.0
Q_VAR = 0.44 * S_VA
PLANT: dict[str, Any] = {"power_stage": {"s_max_va": S_VA, "q_max_var": Q_VAR}}
EFF_DISCHARGE = PowerStageConfig().eff_discharge
EFF_CHARGE = PowerStageConfig().eff_charge
F_N = 60.0
AV = 1.5 * MRA_V_PU  # 1547.1 5.14.2
AF = 1.5 * MRA_F_HZ  # [SNL]; [UL] uses 1.0 MRA_F: UNCONFIRMED (notes E.7)
AP = 1.5 * MRA_PQ_PU * S_VA / P_W  # 1.5 MRA_P in per unit of P rated
VL, VH = 0.88, 1.10  # continuous operating range (Category II)
FL, FH = 58.8, 61.2
SETTLE_S = 6.0  # daemon start, start command, enter-service ramp and the dispatch reached (alone)
ROCOF_RAMP_HZ_S = 1.0  # frequency steps larger than RAMP_ABOVE_HZ are ramped at this rate
RAMP_ABOVE_HZ = 0.2
RAMP_STEP_S = 0.05  # the ramp as a staircase of 0.05 Hz steps at 1 Hz/s
# The lag the daemon compensates (inverter.response_tau_s), as commissioning measures it from a grid step
# to the stage's output: the stage's 0.1 s time constant plus the dead time before the daemon acts
# (the meter's 0.2 s refresh, half of it on average, and a cycle).
RESPONSE_TAU_S = 0.25
CPF_TR_S = 10.0
CHARGE_NOTE = (
    "Charging: battery.estimate = false. With the estimate on, the daemon's charge state of power is 0 W on "
    "the bench's EV (binding sop_charge, measured 2026-12-05): it never charges; the EV's reported limits "
    "bound charging instead."
)  # 1547.1: 90 % of the change within 10 s (constant PF and constant var)
GRID_FUNCTIONS = ("frequency_droop", "volt_var", "volt_watt", "constant_pf", "constant_var", "watt_var")

Stimulus = Literal["v", "f", "p"]
SIGNAL = {"v": "grid_v_pu", "f": "grid_f_hz", "p": "p_ev_w"}
UNIT = {"v": "pu", "f": "Hz", "p": "pu P"}
SCALE = {"v": 1.0, "f": 1.0, "p": P_W}
MRA_X = {"v": MRA_V_PU, "f": MRA_F_HZ, "p": MRA_PQ_PU * S_VA / P_W}


@dataclass(frozen=True)
class Step:
    """One stimulus step: from ``t_s`` the input moves to ``x`` (arrived at ``at_s``, the end of a
    ramp), and is held for ``hold_s`` from there."""

    label: str
    kind: Stimulus
    x: float
    t_s: float
    at_s: float
    hold_s: float


def _curve(points: Sequence[tuple[float, float]]) -> Callable[[float], float]:
    """A piecewise-linear characteristic, flat outside its points (the plant's own interpolation)."""
    pts = list(points)
    return lambda x: interp(pts, x)


def settle_s(quick: bool) -> float:
    """From the run's start to its first step."""
    return SETTLE_S + start_lead_s(quick)


def _timeline(
    plan: Sequence[tuple[str, Stimulus, float]],
    hold_s: float,
    x0: dict[Stimulus, float],
    t0_s: float,
) -> tuple[list[Step], list[Any]]:
    """Steps and plant events for ``plan`` [(label, stimulus, value)], each held ``hold_s`` after it
    arrives. Frequency steps larger than RAMP_ABOVE_HZ are ramped at ROCOF_RAMP_HZ_S (1547.1 ramps the
    frequency; a step of Δf_small is applied at once)."""
    steps: list[Step] = []
    events: list[Any] = []
    now = dict(x0)
    t = t0_s
    for label, kind, x in plan:
        start = t
        if kind == "v":
            events.append(ev.Grid(at_s=round(t, 3), v_pu=round(x, 4), label=label))
        elif kind == "f":
            df = x - now["f"]
            if abs(df) > RAMP_ABOVE_HZ:
                n = max(int(abs(df) / ROCOF_RAMP_HZ_S / RAMP_STEP_S), 1)
                events.extend(
                    ev.Grid(
                        at_s=round(t + RAMP_STEP_S * k, 3),
                        f_hz=round(now["f"] + df * k / n, 4),
                        label=label if k == n else "",
                    )
                    for k in range(1, n + 1)
                )
                t += RAMP_STEP_S * n
            else:
                events.append(ev.Grid(at_s=round(t, 3), f_hz=round(x, 4), label=label))
        else:
            events.append(_power_event(t, x, label))
        now[kind] = x
        steps.append(Step(label, kind, x, start, t, hold_s))
        t += hold_s
    return steps, events


def _power_event(at_s: float, p_pu: float, label: str) -> ev.EvLimits:
    """The EV's reported limit that holds the stage at ``p_pu`` of P rated (> 0 discharge, < 0 charge)."""
    if p_pu >= 0.0:
        return ev.EvLimits(at_s=round(at_s, 3), discharge_w=round(p_pu * P_W / EFF_DISCHARGE, 1), label=label)
    return ev.EvLimits(at_s=round(at_s, 3), charge_w=round(-p_pu * P_W * EFF_CHARGE, 1), label=label)


def _window_s(tr_s: float) -> float:
    """The steady-state averaging window: 10 cycles at least, a tenth of Tr for long ones, 2 s at most."""
    return min(max(10.0 / F_N, 0.1 * tr_s), 2.0)


def hold_for(tr_s: float, extra_s: float = 0.0) -> float:
    """A step's hold: 2 Tr to steady state, the averaging window, and a margin."""
    return 2.0 * tr_s + _window_s(tr_s) + 0.3 + extra_s


def _series(cols: Columns, name: str, scale: float) -> list[float]:
    return [v / scale for v in cols[name]]


def step_judge(
    steps: Sequence[Step],
    *,
    y_signal: Literal["p_ev_w", "q_ev_var"],
    curve_x: Stimulus,
    make_curve: Callable[[float], Callable[[float], float]],
    tr_s: float,
    rule: Literal["olrt", "within"],
    setting: str,
    p_set_pu: float,
) -> Judge:
    """Judge each step: the response rule at Tr and the 4.2 band at 2 Tr (both on the output in pu of
    S rated). ``make_curve(y0)`` gives the characteristic y(x) given the output before the first step
    (the pre-disturbance power for droop, the available power for volt-watt). The first row checks
    the operating point (``p_set_pu`` of P rated) before the first step, and a power step whose power
    was not reached fails: a stage that never ran would otherwise meet a curve that is 0 at P = 0."""
    y_name = "P" if y_signal == "p_ev_w" else "Q"

    def judge(cols: Columns) -> list[Row]:
        t = cols["t_s"]
        y = _series(cols, y_signal, S_VA)
        x = _series(cols, SIGNAL[curve_x], SCALE[curve_x])
        p_prated = _series(cols, "p_ev_w", P_W)
        w = _window_s(tr_s)
        first = steps[0]
        y0 = mean_over(t, y, first.t_s - 2.0 * w, first.t_s)
        curve = make_curve(y0)
        p0 = mean_over(t, p_prated, first.t_s - 2.0 * w, first.t_s)
        tol = MRA_X["p"] * 1.5
        rows = [
            Row(
                test="operating point before the first step",
                setting=f"P {p_set_pu:+g} Prated (dispatch)",
                measured=f"P {p0:+.3f} Prated",
                limit=f"[{p_set_pu - tol:+.3f}, {p_set_pu + tol:+.3f}] (1.5 MRA_P)",
                passed=abs(p0 - p_set_pu) <= tol,
                band=Band(
                    "p_ev_w",
                    (first.t_s - 2.0 * w, first.t_s),
                    (p_set_pu - tol,) * 2,
                    (p_set_pu + tol,) * 2,
                    ((first.t_s - w, p0),),
                    scale=P_W,
                ),
                window_s=(max(first.t_s - 5.0, 0.0), first.t_s + 1.0),
            )
        ]
        for s in steps:
            y_init = mean_over(t, y, s.t_s - w, s.t_s)
            ss_from = s.at_s + 2.0 * tr_s
            x_ss = mean_over(t, x, ss_from, ss_from + w)
            y_ss = mean_over(t, y, ss_from, ss_from + w)
            y_fin = curve(x_ss)
            lo, hi = steady_band(curve, x_ss, MRA_X[curve_x], MRA_PQ_PU)
            # A ramped step is judged at steady state only (1547.1 judges the response after the
            # small steps; a ramp has moved the output before it ends).
            ramped = s.at_s - s.t_s > 1e-9
            if rule == "olrt":
                r = response_at_tr(
                    t,
                    y,
                    t_step_s=s.at_s,
                    tr_s=tr_s,
                    y_initial=y_init,
                    y_final=y_fin,
                    mra_y=MRA_PQ_PU,
                    f_nominal_hz=F_N,
                )
            else:
                r = response_within(
                    t, y, t_step_s=s.at_s, within_s=tr_s, y_initial=y_init, y_final=y_fin, mra_y=MRA_PQ_PU
                )
            t90 = t90_s(t, y, t_step_s=s.t_s, y_initial=y_init, y_final=y_fin, to_s=s.at_s + s.hold_s)
            ok_ss = lo <= y_ss <= hi
            p_ss = mean_over(t, p_prated, ss_from, ss_from + w)
            # A power step must have reached its power (the stage may refuse to run at all).
            reached = s.kind != "p" or abs(p_ss - s.x) <= tol
            dt = 1.5 * mra_time_s(tr_s, F_N) if rule == "olrt" else 0.0
            t_tr = s.at_s + tr_s
            if ramped:
                band = Band(
                    y_signal,
                    (ss_from, ss_from + w),
                    (lo, lo),
                    (hi, hi),
                    ((ss_from + w / 2.0, y_ss),),
                    scale=S_VA,
                    stimulus=SIGNAL[s.kind],
                )
                tr_text, tr_limit = "", "Tr not judged (ramped step); "
            else:
                band = Band(
                    signal=y_signal,
                    scale=S_VA,
                    stimulus=SIGNAL[s.kind],
                    t_s=(t_tr - dt, t_tr + dt, math.nan, ss_from, ss_from + w),
                    lo=(r.lo, r.lo, math.nan, lo, lo),
                    hi=(r.hi, r.hi, math.nan, hi, hi),
                    marks=((t_tr, r.y_at_tr), (ss_from + w / 2.0, y_ss)),
                )
                tr_text, tr_limit = f"{y_name}(Tr) {r.y_at_tr:+.3f}, ", f"Tr [{r.lo:+.3f}, {r.hi:+.3f}]; "
            t90_txt = "n/a" if math.isnan(t90) else ("never" if math.isinf(t90) else f"{t90:.2f} s")
            rows.append(
                Row(
                    test=f"step {s.label}",
                    setting=f"{_stim_text(s)}; {setting}",
                    measured=f"{tr_text}{y_name}ss {y_ss:+.3f} pu at {x_ss:.3f} {UNIT[curve_x]}; t90 {t90_txt}"
                    + ("" if reached else f"; P not reached: {p_ss:+.3f} Prated"),
                    limit=f"{tr_limit}ss [{lo:+.3f}, {hi:+.3f}]"
                    + ("" if s.kind != "p" else f"; P ±{tol:.3f}"),
                    passed=(ramped or r.passed) and ok_ss and reached,
                    band=band,
                    window_s=(s.t_s - min(s.hold_s, 3.0 * w + 1.0), s.at_s + s.hold_s),
                )
            )
        return rows

    return judge


def _stim_text(s: Step) -> str:
    if s.kind == "v":
        return f"V {s.x:.3f} pu"
    if s.kind == "f":
        return f"f {s.x:.3f} Hz"
    return f"P {s.x:.3f} Prated"


def _daemon(
    owner: Owner,
    functions: Sequence[str],
    grid: dict[str, Any],
    *,
    cycle_s: float | None = None,
    category: str | None = None,
    charging: bool = False,
) -> dict[str, Any]:
    """The daemon's settings for a test: the functions under test owned by ``owner``, the other grid
    functions off, a site that may export, the dispatch followed, the normal ramp at its fastest.
    ``charging``: the EV charges; the daemon's state-of-power estimate is off (it holds charging at
    0 W on the bench's EV: CHARGE_NOTE), so the EV's reported limits bound it."""
    fn: dict[str, Any] = dict.fromkeys(GRID_FUNCTIONS, "off")
    fn.update(dict.fromkeys(functions, owner))
    d: dict[str, Any] = {
        "functions": fn,
        "site": {"non_export": False},
        "operation": {"mode": "v2g", "fallback": "idle"},
        "grid": {"ramp": {"normal_pu_per_s": 1.0}, **grid},
    }
    if charging:
        d["battery"] = {"estimate": False}
    if owner == "daemon":
        d["inverter"] = {"response_tau_s": RESPONSE_TAU_S}
    if cycle_s is not None:
        d["daemon"] = {"cycle_s": cycle_s}
    if category == "III":
        # The bench config writes the Cat II UV1 clearing time (10 s) out; Cat III's range is 21-50 s.
        d["commissioning"] = {"abnormal_category": category}
        d["grid"]["voltage_trip"] = {"uv1": {"clearing_s": 21.0}}
    return d


def _plant(
    category: str | None = None, meter_refresh_s: float | None = None, watt_var_olrt_s: float | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"power_stage": dict(PLANT["power_stage"])}
    if category is not None:
        out["power_stage"]["category"] = category
    if watt_var_olrt_s is not None:
        out["power_stage"]["watt_var_olrt_s"] = watt_var_olrt_s
    if meter_refresh_s is not None:
        out["meter"] = {"refresh_s": meter_refresh_s}
    return out


def _test(
    *,
    id: str,
    title: str,
    clause: str,
    owner: Owner,
    quick: bool,
    steps: list[Step],
    events: list[Any],
    daemon: dict[str, Any],
    judge: Judge,
    p_w: float,
    notes: Sequence[str],
    category: str | None = None,
    meter_refresh_s: float | None = None,
    watt_var_olrt_s: float | None = None,
) -> ConformanceTest:
    last = steps[-1]
    sc = Scenario(
        name=id,
        description=title,
        duration_s=round(last.at_s + last.hold_s + 0.5, 2),
        tags=["ieee1547", "conformance"],
        plant=_plant(category, meter_refresh_s, watt_var_olrt_s),
        daemon=daemon,
        events=events,
    )
    return ConformanceTest(
        id=id,
        title=title,
        clause=clause,
        owner=owner,
        scenario=sc,
        judge=judge,
        quick=quick,
        notes=tuple(notes),
        dispatch_p_w=p_w,
    )


# --- volt-var (B.2) ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VvChar:
    n: int
    v_ref: float
    v: tuple[float, float, float, float]
    q: tuple[float, float, float, float]  # pu of S rated
    tr_s: float


QI = Q_VAR / S_VA  # the reactive rating in pu of S (chars 2 and 3 are in fractions of it)
VV_CHARS = {
    1: VvChar(1, 1.00, (0.92, 0.98, 1.02, 1.08), (0.44, 0.0, 0.0, -0.44), 5.0),
    2: VvChar(2, 1.05, (0.88, 1.04, 1.07, 1.10), (QI, 0.5 * QI, 0.5 * QI, -QI), 1.0),
    3: VvChar(3, 0.95, (0.90, 0.93, 0.96, 1.10), (QI, -0.5 * QI, -0.5 * QI, -QI), 90.0),
}


def vv_plan(c: VvChar) -> list[tuple[str, Stimulus, float]]:
    """Steps g..dd of 1547.1 (notes B.2); steps outside [VL, VH] are left out."""
    v1, v2, v3, v4 = c.v
    seq = [
        ("g) V3-av", v3 - AV),
        ("h) V3+av", v3 + AV),
        ("i) (V3+V4)/2", (v3 + v4) / 2),
        ("j) V4-av", v4 - AV),
        ("k) V4+av", v4 + AV),
        ("l) VH-av", VH - AV),
        ("m) V4+av", v4 + AV),
        ("n) V4-av", v4 - AV),
        ("o) (V3+V4)/2", (v3 + v4) / 2),
        ("p) V3+av", v3 + AV),
        ("q) V3-av", v3 - AV),
        ("r) VRef", c.v_ref),
        ("s) V2+av", v2 + AV),
        ("t) V2-av", v2 - AV),
        ("u) (V1+V2)/2", (v1 + v2) / 2),
        ("v) V1+av", v1 + AV),
        ("w) V1-av", v1 - AV),
        ("x) VL+av", VL + AV),
        ("y) V1-av", v1 - AV),
        ("z) V1+av", v1 + AV),
        ("aa) (V1+V2)/2", (v1 + v2) / 2),
        ("bb) V2-av", v2 - AV),
        ("cc) V2+av", v2 + AV),
        ("dd) VRef", c.v_ref),
    ]
    return [(label, "v", round(v, 4)) for label, v in seq if VL <= v <= VH - 1e-9]


VV_QUICK = ("h)", "i)", "k)", "r)", "u)", "w)", "dd)")
VV3_FULL = ("h)", "i)", "r)", "u)")


def _vv_grid(c: VvChar, tr_s: float) -> dict[str, Any]:
    v1, v2, v3, v4 = c.v
    q1, q2, q3, q4 = c.q
    return {
        "volt_var": {
            "v_ref_pu": c.v_ref,
            "v1_pu": v1,
            "v2_pu": v2,
            "v3_pu": v3,
            "v4_pu": v4,
            "q1_pu": round(q1, 4),
            "q2_pu": round(q2, 4),
            "q3_pu": round(q3, 4),
            "q4_pu": round(q4, 4),
            "olrt_s": tr_s,
            "v_ref_auto": False,
        }
    }


def volt_var(owner: Owner, n: int, quick: bool) -> ConformanceTest:
    c = VV_CHARS[n]
    notes = ["EUT at P rated (dispatch 7400 W), auto-VRef off, other functions off."]
    plan = vv_plan(c)
    tr = c.tr_s
    if quick:
        tr = 1.0
        plan = [p for p in plan if p[0].split(" ")[0] in VV_QUICK]
        notes.append(
            f"Quick: Tr {c.tr_s:g} s shortened to 1 s (1547 range 1-90 s); steps h i k r u w dd only."
        )
    elif n == 3:
        plan = [p for p in plan if p[0].split(" ")[0] in VV3_FULL]
        notes.append("Tr 90 s: steps h i r u only (each held 2 Tr), to keep the suite within an hour.")
    steps, events = _timeline(plan, hold_for(tr), {"v": 1.0, "f": F_N, "p": 1.0}, t0_s=settle_s(quick))
    curve = _curve(list(zip(c.v, c.q, strict=True)))
    v_text = "/".join(f"{v:g}" for v in c.v)
    q_text = "/".join(f"{q:+.3f}" for q in c.q)
    setting = f"V {v_text} pu, Q {q_text} pu S, VRef {c.v_ref:g}, Tr {tr:g} s"
    judge = step_judge(
        steps,
        y_signal="q_ev_var",
        curve_x="v",
        make_curve=lambda _y0: curve,
        tr_s=tr,
        rule="olrt",
        setting=setting,
        p_set_pu=1.0,
    )
    return _test(
        id=f"vv-char{n}-{owner}",
        title=f"Volt-var characteristic {n} step test",
        clause="IEEE 1547.1-2020 5.14.4 (inferred)",
        owner=owner,
        quick=quick,
        steps=steps,
        events=events,
        daemon=_daemon(owner, ["volt_var"], _vv_grid(c, tr)),
        judge=judge,
        p_w=P_W,
        notes=notes,
    )


def volt_var_vref(owner: Owner, quick: bool) -> ConformanceTest:
    """5.14.5: autonomous VRef at Tref 300 s; after a step to (V3+V4)/2, |Q| falls below 10 % of |Q4|."""
    c = VV_CHARS[1]
    tref = 300.0
    v_step = (c.v[2] + c.v[3]) / 2.0
    hold = tref
    steps, events = _timeline(
        [("(V3+V4)/2", "v", v_step)], hold, {"v": 1.0, "f": F_N, "p": 1.0}, t0_s=settle_s(quick)
    )
    grid = _vv_grid(c, c.tr_s)
    grid["volt_var"].update({"v_ref_auto": True, "v_ref_tau_s": tref})
    limit = 0.1 * abs(c.q[3])

    def judge(cols: Columns) -> list[Row]:
        t = cols["t_s"]
        q = _series(cols, "q_ev_var", S_VA)
        s = steps[0]
        end = s.at_s + s.hold_s
        q_end = mean_over(t, q, end - 2.0, end)
        q_peak = min(q[i] for i, ts in enumerate(t) if s.at_s <= ts <= end)
        return [
            Row(
                test="VRef follows the voltage",
                setting=f"V {v_step:.3f} pu ((V3+V4)/2), Tref {tref:g} s, char 1",
                measured=f"|Q| {abs(q_end):.3f} pu at {hold:g} s after the step (peak {q_peak:+.3f})",
                limit=f"< {limit:.3f} pu (10 % of |Q4|) within 4 Tref = {4 * tref:g} s",
                passed=abs(q_end) < limit and q_peak < -0.5 * limit,
                band=Band(
                    "q_ev_var",
                    (end - 2.0, end),
                    (-limit, -limit),
                    (limit, limit),
                    ((end - 1.0, q_end),),
                    scale=S_VA,
                    stimulus="grid_v_pu",
                ),
                window_s=(s.t_s - 5.0, end),
            )
        ]

    notes = [
        f"Judged at 1 Tref = {hold:g} s, earlier than the 4 Tref the criterion allows (stricter); Tref 300 s"
        " (the range minimum); the 5000 s case is not run. The Q peak after the step must show the curve acted.",
    ]
    return _test(
        id=f"vv-vref-{owner}",
        title="Volt-var with autonomously adjusting VRef",
        clause="IEEE 1547.1-2020 5.14.5",
        owner=owner,
        quick=quick,
        steps=steps,
        events=events,
        daemon=_daemon(owner, ["volt_var"], grid),
        judge=judge,
        p_w=P_W,
        notes=notes,
    )


# --- volt-watt (B.3) -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VwChar:
    n: int
    v1: float
    v2: float
    p2_abs: float  # P'2 (can absorb), pu of P rated
    tr_s: float


VW_CHARS = {
    1: VwChar(1, 1.06, 1.10, 0.0, 10.0),
    2: VwChar(2, 1.05, 1.10, -1.0, 60.0),
    3: VwChar(3, 1.09, 1.10, -1.0, 0.5),
}


def volt_watt(owner: Owner, n: int, quick: bool) -> ConformanceTest:
    c = VW_CHARS[n]
    seq = [
        ("VL+av", VL + AV),
        ("V1-av", c.v1 - AV),
        ("V1+av", c.v1 + AV),
        ("(V1+V2)/2", (c.v1 + c.v2) / 2),
        ("V2-av", c.v2 - AV),
        ("V2+av", c.v2 + AV),
        ("VH-av", VH - AV),
        ("V2-av", c.v2 - AV),
        ("(V1+V2)/2", (c.v1 + c.v2) / 2),
        ("V1+av", c.v1 + AV),
        ("V1-av", c.v1 - AV),
        ("VL+av", VL + AV),
        ("VN", 1.0),
    ]
    plan: list[tuple[str, Stimulus, float]] = [
        (lb, "v", round(v, 4)) for lb, v in seq if VL <= v <= VH - 1e-9
    ]
    tr = c.tr_s
    notes = [
        "EUT at P rated (dispatch 7400 W), P'2 applies (the charger can absorb), other functions off; "
        "steps above VH (1.10) left out (the stage's 1.10 pu trip)."
    ]
    if c.p2_abs < 0.0:
        notes.append(CHARGE_NOTE)
    if quick:
        tr = 0.5
        plan = [p for p in plan if p[0] in ("V1+av", "(V1+V2)/2", "VH-av", "VN")]
        plan = list(dict.fromkeys(plan))
        notes.append(f"Quick: Tr {c.tr_s:g} s shortened to 0.5 s (1547 range 0.5-60 s); four steps.")
    elif n == 2:
        plan = [p for p in plan if p[0] in ("V1+av", "(V1+V2)/2", "VH-av", "VN")]
        plan = list(dict.fromkeys(plan))
        notes.append("Tr 60 s: four steps only (V1+av, (V1+V2)/2, VH-av, VN), each held 2 Tr.")
    steps, events = _timeline(plan, hold_for(tr), {"v": 1.0, "f": F_N, "p": 1.0}, t0_s=settle_s(quick))
    vw = _curve([(c.v1, 1.0), (c.v2, c.p2_abs)])

    def make_curve(y0: float) -> Callable[[float], float]:
        p_avail = y0  # the dispatch (pu of S) before the first step: the cap never raises it
        return lambda v: min(p_avail, vw(v) * P_W / S_VA)

    setting = f"V1 {c.v1:g} V2 {c.v2:g} pu, P1 1.0 P'2 {c.p2_abs:g} Prated, Tr {tr:g} s"
    judge = step_judge(
        steps,
        y_signal="p_ev_w",
        curve_x="v",
        make_curve=make_curve,
        tr_s=tr,
        rule="olrt",
        setting=setting,
        p_set_pu=1.0,
    )
    grid = {
        "volt_watt": {"v1_pu": c.v1, "v2_pu": c.v2, "p1_pu": 1.0, "p2_charging_pu": c.p2_abs, "olrt_s": tr}
    }
    return _test(
        id=f"vw-char{n}-{owner}",
        title=f"Volt-watt characteristic {n} step test",
        clause="IEEE 1547.1-2020 5.14.x volt-watt (number UNCONFIRMED)",
        owner=owner,
        quick=quick,
        steps=steps,
        events=events,
        daemon=_daemon(owner, ["volt_watt"], grid, charging=c.p2_abs < 0.0),
        judge=judge,
        p_w=P_W,
        notes=notes,
    )


# --- frequency droop (B.5) -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FwChar:
    n: int
    db: float
    k: float
    tr_s: float
    category: str | None


FW_CHARS = {1: FwChar(1, 0.036, 0.05, 5.0, None), 2: FwChar(2, 0.017, 0.02, 0.2, "III")}


def freq_droop(
    owner: Owner, n: int, direction: Literal["over", "under"], p_pu: float, quick: bool
) -> ConformanceTest:
    c = FW_CHARS[n]
    tr = 1.0 if (quick and n == 1) else c.tr_s
    df_small = 0.05 * F_N * c.k
    if direction == "over":
        b = F_N + c.db
        seq = [
            ("fN+db-af", b - AF),
            ("fN+db+af", b + AF),
            ("fN+db+dfs", b + df_small),
            ("fH", FH),
            ("fH-dfs", FH - df_small),
            ("fN+db+af", b + AF),
            ("fN+db-af", b - AF),
            ("fN", F_N),
        ]
    else:
        b = F_N - c.db
        seq = [
            ("fN-db+af", b + AF),
            ("fN-db-af", b - AF),
            ("fN-db-dfs", b - df_small),
            ("fL", FL),
            ("fL+dfs", FL + df_small),
            ("fN-db-af", b - AF),
            ("fN-db+af", b + AF),
            ("fN", F_N),
        ]
    plan: list[tuple[str, Stimulus, float]] = [(lb, "f", round(f, 4)) for lb, f in seq]
    hold = hold_for(tr)
    steps, events = _timeline(plan, hold, {"v": 1.0, "f": F_N, "p": p_pu}, t0_s=settle_s(quick))
    p_min = -1.0

    def make_curve(y0: float) -> Callable[[float], float]:
        p_pre = y0 * S_VA / P_W  # pu of P rated, measured before the first step

        def p(f: float) -> float:
            if f > F_N + c.db:
                out = max(p_pre - (f - (F_N + c.db)) / (F_N * c.k), p_min)
            elif f < F_N - c.db:
                out = min(p_pre + ((F_N - c.db) - f) / (F_N * c.k), 1.0)
            else:
                out = p_pre
            return out * P_W / S_VA

        return p

    setting = f"db {c.db:g} Hz, k {c.k:g}, Tr {tr:g} s, P {p_pu:+g} Prated"
    judge = step_judge(
        steps,
        y_signal="p_ev_w",
        curve_x="f",
        make_curve=make_curve,
        tr_s=tr,
        rule="olrt",
        setting=setting,
        p_set_pu=p_pu,
    )
    grid = {
        "freq_droop": {
            "db_of_hz": c.db,
            "db_uf_hz": c.db,
            "k_of": c.k,
            "k_uf": c.k,
            "olrt_s": tr,
            "p_min_pu": p_min,
        }
    }
    notes = [
        f"Frequency steps larger than {RAMP_ABOVE_HZ:g} Hz ramped at {ROCOF_RAMP_HZ_S:g} Hz/s (below the Cat II/III "
        "ROCOF ride-through); each step judged from the end of its ramp. af = 1.5 MRA_F (UNCONFIRMED).",
    ]
    if p_pu < 0:
        notes += ["Storage rerun: the EV charging, P min -1.0 Prated.", CHARGE_NOTE]
    if quick and n == 1:
        notes.append("Quick: Tr 5 s shortened to 1 s (Cat II range 1-10 s).")
    cycle_s = meter_s = None
    if n == 2:
        notes.append("Category III (k 0.02 and Tr 0.2 s are outside the Cat II ranges).")
        if owner == "daemon":
            cycle_s = meter_s = 0.02
            notes.append(
                "Daemon cycle 0.02 s (a 0.1 s cycle adds about 2 cycles to a 0.2 s response) and a site "
                "meter refreshing every 0.02 s (the bench's 0.2 s meter alone adds 0.1 s on average): "
                "a 0.2 s response needs both at a Cat III site."
            )
    sign = "dis" if p_pu > 0 else "chg"
    return _test(
        id=f"fw-char{n}-{direction}-{sign}-{owner}",
        title=f"Frequency droop characteristic {n}, {direction}-frequency, {'discharging' if p_pu > 0 else 'charging'}",
        clause=f"IEEE 1547.1-2020 {'5.15.2' if direction == 'over' else '5.15.3'}",
        owner=owner,
        quick=quick,
        steps=steps,
        events=events,
        daemon=_daemon(
            owner, ["frequency_droop"], grid, cycle_s=cycle_s, category=c.category, charging=p_pu < 0.0
        ),
        judge=judge,
        p_w=p_pu * P_W,
        notes=notes,
        category=c.category,
        meter_refresh_s=meter_s,
    )


# --- prioritization (B.9) --------------------------------------------------------------------------------

PRI_STEPS = [
    (1.00, 60.00),
    (1.09, 60.00),
    (1.09, 60.33),
    (1.09, 60.00),
    (1.09, 59.36),
    (1.00, 59.36),
    (1.00, 60.00),
    (1.00, 59.36),
]
PRI_TABLE_P = [0.5, 0.4, 0.3, 0.4, 0.4, 0.6, 0.5, 0.7]
VV1 = _curve([(0.92, 0.44), (0.98, 0.0), (1.02, 0.0), (1.08, -0.44)])


def pri_expected(vs: Sequence[float], fs: Sequence[float], p_limit: float, p2: float) -> list[float]:
    """P per step (pu of P rated) from the 1547 formulas with the pre-disturbance power carried."""
    db, k = 0.036, 0.05
    vw = _curve([(1.06, 1.0), (1.10, p2)])
    out: list[float] = []
    p_prev, p_pre, f_prev = p_limit, math.nan, F_N
    for v, f in zip(vs, fs, strict=True):
        if not (F_N - db <= f <= F_N + db) and F_N - db <= f_prev <= F_N + db:
            p_pre = p_prev
        if f > F_N + db:
            p = max(p_pre - (f - (F_N + db)) / (F_N * k), -1.0)
        elif f < F_N - db:
            p = min(p_pre + ((F_N - db) - f) / (F_N * k), 1.0)
        else:
            p = p_limit
        p = min(p, vw(v))
        out.append(p)
        p_prev, f_prev = p, f
    return out


def priority(owner: Owner, quick: bool) -> ConformanceTest:
    """5.16: volt-watt, droop and volt-var at their defaults, available power P rated, the active
    power limited to 0.5 P rated (the dispatch); V and f stepped together (Table 39)."""
    tr_vw, tr_fw, tr_vv = (0.5, 1.0, 1.0) if quick else (10.0, 5.0, 5.0)
    p_limit = 0.5
    hold = hold_for(max(tr_vw, tr_fw, tr_vv))
    events: list[Any] = []
    times: list[tuple[float, float]] = []  # (arrived, held until)
    t = settle_s(quick)
    v_prev, f_prev = 1.0, F_N
    for k, (v, f) in enumerate(PRI_STEPS):
        label = f"step {k + 1}: {v:g} pu {f:g} Hz"
        if v != v_prev:
            events.append(ev.Grid(at_s=round(t, 3), v_pu=v, label=label))
        seg, f_events = _timeline([(label, "f", f)], hold, {"v": v, "f": f_prev, "p": p_limit}, t0_s=t)
        if f != f_prev:
            events.extend(f_events)
        times.append((seg[0].at_s, seg[0].at_s + hold))
        t = seg[0].at_s + hold
        v_prev, f_prev = v, f
    w = _window_s(max(tr_vw, tr_fw, tr_vv))
    p2 = 0.0

    def judge(cols: Columns) -> list[Row]:
        ts = cols["t_s"]
        p = _series(cols, "p_ev_w", S_VA)
        q = _series(cols, "q_ev_var", S_VA)
        vm = cols["grid_v_pu"]
        fm = cols["grid_f_hz"]
        wins = [(end - w - 0.3, end - 0.3) for _, end in times]
        vs = [mean_over(ts, vm, a, b) for a, b in wins]
        fs = [mean_over(ts, fm, a, b) for a, b in wins]
        # 4.2 applied to both inputs at once: every corner of their uncertainty, the history carried.
        corners = [
            pri_expected([v + dv for v in vs], [f + df for f in fs], p_limit, p2)
            for dv in (-1.5 * MRA_V_PU, 0.0, 1.5 * MRA_V_PU)
            for df in (-1.5 * MRA_F_HZ, 0.0, 1.5 * MRA_F_HZ)
        ]
        nominal = corners[4]
        rows = []
        for k, (a, b) in enumerate(wins):
            p_ss = mean_over(ts, p, a, b)
            q_ss = mean_over(ts, q, a, b)
            s = P_W / S_VA
            lo = min(cn[k] for cn in corners) * s - 1.5 * MRA_PQ_PU
            hi = max(cn[k] for cn in corners) * s + 1.5 * MRA_PQ_PU
            q_lo, q_hi = steady_band(VV1, vs[k], MRA_V_PU, MRA_PQ_PU)
            ok = lo <= p_ss <= hi and q_lo <= q_ss <= q_hi
            rows.append(
                Row(
                    test=f"step {k + 1} (V {PRI_STEPS[k][0]:g}, f {PRI_STEPS[k][1]:g})",
                    setting=f"limit 0.5 Prated; expected P {nominal[k]:.3f} Prated (Table 39: {PRI_TABLE_P[k]:g})",
                    measured=f"P {p_ss:+.3f} pu S, Q {q_ss:+.3f} pu S",
                    limit=f"P [{lo:+.3f}, {hi:+.3f}]; Q [{q_lo:+.3f}, {q_hi:+.3f}]",
                    passed=ok,
                    band=Band(
                        "p_ev_w",
                        (a, b),
                        (lo, lo),
                        (hi, hi),
                        ((0.5 * (a + b), p_ss),),
                        scale=S_VA,
                        stimulus="grid_f_hz",
                    ),
                    window_s=(times[k][0] - 2.0, times[k][1]),
                )
            )
        return rows

    grid = {
        "volt_watt": {"olrt_s": tr_vw, "p2_charging_pu": p2},
        "freq_droop": {"olrt_s": tr_fw, "db_of_hz": 0.036, "db_uf_hz": 0.036, "k_of": 0.05, "k_uf": 0.05},
        "volt_var": {"olrt_s": tr_vv},
    }
    notes = [
        "Available power P rated, limit 0.5 Prated as the dispatch (3700 W); volt-watt, droop (char 1) and "
        "volt-var (Cat B) at their defaults; steady state judged at the end of each step.",
        "The charger can absorb, so volt-watt's P'2 = 0 applies (Table 39 assumes P2 = 0.2): the expected P is "
        "derived from the 1547 formulas at these settings, Table 39's value shown beside it.",
        "Frequency steps ramped at 1 Hz/s.",
    ]
    if quick:
        notes.append("Quick: response times shortened (volt-watt 0.5 s, droop 1 s, volt-var 1 s).")
    last_end = times[-1][1]
    sc = Scenario(
        name=f"pri-{owner}",
        description="Voltage and frequency regulation priority",
        duration_s=round(last_end + 0.5, 2),
        tags=["ieee1547", "conformance"],
        plant=_plant(),
        events=events,
        daemon=_daemon(owner, ["volt_watt", "frequency_droop", "volt_var"], grid),
    )
    return ConformanceTest(
        id=f"pri-{owner}",
        title="Voltage and frequency regulation priority (Table 39)",
        clause="IEEE 1547.1-2020 5.16",
        owner=owner,
        scenario=sc,
        judge=judge,
        quick=quick,
        notes=tuple(notes),
        dispatch_p_w=p_limit * P_W,
    )


# --- constant PF, constant var, watt-var (B.4) -----------------------------------------------------------


def _pv_plan() -> list[tuple[str, Stimulus, float]]:
    return [
        ("P -> Pmin (0.2)", "p", 0.2),
        ("P -> Prated", "p", 1.0),
        ("V -> VL+av", "v", VL + AV),
        ("V -> VH-av", "v", VH - AV),
        ("V -> VL+av", "v", VL + AV),
    ]


def constant_pf(
    owner: Owner, pf: float, excitation: Literal["inject", "absorb"], quick: bool
) -> ConformanceTest:
    sign = 1.0 if excitation == "inject" else -1.0
    ratio = math.sqrt(1.0 / pf**2 - 1.0)
    steps, events = _timeline(
        _pv_plan(), hold_for(CPF_TR_S), {"v": 1.0, "f": F_N, "p": 1.0}, t0_s=settle_s(quick)
    )

    def q_of_p(p_pu_prated: float) -> float:
        return sign * p_pu_prated * P_W * ratio / S_VA

    setting = f"PF {pf:g} {excitation}, Tr 10 s"
    judge = step_judge(
        steps,
        y_signal="q_ev_var",
        curve_x="p",
        make_curve=lambda _y0: q_of_p,
        tr_s=CPF_TR_S,
        rule="within",
        setting=setting,
        p_set_pu=1.0,
    )
    grid = {"constant_pf": {"pf": pf, "excitation": excitation}}
    notes = [
        "EUT at P rated; power steps by the EV's reported discharge limit; response: 90 % of the change "
        "within 10 s (one-sided), steady state per 4.2 at 20 s."
    ]
    tag = f"{round(pf * 100)}{'inj' if excitation == 'inject' else 'abs'}"
    return _test(
        id=f"cpf-{tag}-{owner}",
        title=f"Constant power factor {pf:g} {excitation}",
        clause="IEEE 1547.1-2020 5.14.3",
        owner=owner,
        quick=quick,
        steps=steps,
        events=events,
        daemon=_daemon(owner, ["constant_pf"], grid),
        judge=judge,
        p_w=P_W,
        notes=notes,
    )


def constant_var(owner: Owner, q_pu: float, quick: bool) -> ConformanceTest:
    steps, events = _timeline(
        _pv_plan(), hold_for(CPF_TR_S), {"v": 1.0, "f": F_N, "p": 1.0}, t0_s=settle_s(quick)
    )
    setting = f"Q {q_pu:+.3f} pu S, Tr 10 s"
    judge = step_judge(
        steps,
        y_signal="q_ev_var",
        curve_x="p",
        make_curve=lambda _y0: lambda _p: q_pu,
        tr_s=CPF_TR_S,
        rule="within",
        setting=setting,
        p_set_pu=1.0,
    )
    notes = [
        "EUT at P rated; power and voltage steps with the setting held: Q must stay at the setting "
        "(within 1.5 MRA_Q, UL 1741 SB); the reduced capability below 0.2 Prated is not reached."
    ]
    tag = f"{'p' if q_pu >= 0 else 'm'}{round(abs(q_pu) * 100):02d}"
    return _test(
        id=f"crp-{tag}-{owner}",
        title=f"Constant reactive power {q_pu:+.2f} pu",
        clause="IEEE 1547.1-2020 5.14.x constant var (number UNCONFIRMED)",
        owner=owner,
        quick=quick,
        steps=steps,
        events=events,
        daemon=_daemon(owner, ["constant_var"], {"constant_var": {"q_pu": q_pu}}),
        judge=judge,
        p_w=P_W,
        notes=notes,
    )


WV_Q = {1: (0.0, 0.0, -0.44), 2: (-0.22, -0.22, -0.44), 3: (0.0, -0.44, -0.44)}


def watt_var(owner: Owner, n: int, charging: bool, quick: bool) -> ConformanceTest:
    p1, p2, p3 = 0.2, 0.5, 1.0
    q1, q2, q3 = WV_Q[n]
    seq = [
        ("P1-ap", p1 - AP),
        ("P1+ap", p1 + AP),
        ("(P1+P2)/2", (p1 + p2) / 2),
        ("P2-ap", p2 - AP),
        ("P2+ap", p2 + AP),
        ("(P2+P3)/2", (p2 + p3) / 2),
        ("P3-ap", p3 - AP),
        ("Prated", 1.0),
    ]
    tr = 10.0
    notes = [
        "Power steps by the EV's reported limit (P1-ap ... Prated; the way back is not run); response within the setting's "
        "Tr (one-sided, 1547: at most 10 s)."
    ]
    if quick:
        tr = 1.0
        seq = [
            ("(P1+P2)/2", (p1 + p2) / 2),
            ("(P2+P3)/2", (p2 + p3) / 2),
            ("Prated", 1.0),
            ("P2-ap", p2 - AP),
        ]
        notes.append("Quick: Tr 1 s (range 0.5-10 s); four steps.")
    sgn = -1.0 if charging else 1.0
    plan: list[tuple[str, Stimulus, float]] = [(lb, "p", round(sgn * x, 4)) for lb, x in seq]
    steps, events = _timeline(plan, hold_for(tr), {"v": 1.0, "f": F_N, "p": sgn}, t0_s=settle_s(quick))
    pts_gen = [(p1, q1), (p2, q2), (p3, q3)]
    pts = [(-p, -q) for p, q in reversed(pts_gen)] if charging else pts_gen
    wv = _curve(pts)

    def q_of_p(p_pu_prated: float) -> float:
        return wv(p_pu_prated)  # Q already in pu of S

    setting = (
        "P "
        + "/".join(f"{sgn * p:+g}" for p in (p1, p2, p3))
        + " Prated, Q "
        + "/".join(f"{-q if charging else q:+g}" for q in (q1, q2, q3))
        + f" pu S, Tr {tr:g} s"
    )
    judge = step_judge(
        steps,
        y_signal="q_ev_var",
        curve_x="p",
        make_curve=lambda _y0: q_of_p,
        tr_s=tr,
        rule="within",
        setting=setting,
        p_set_pu=sgn,
    )
    grid = {
        "watt_var": {
            "p1_pu": p1,
            "p2_pu": p2,
            "p3_pu": p3,
            "q1_pu": q1,
            "q2_pu": q2,
            "q3_pu": q3,
            "p1_charging_pu": -p1,
            "p2_charging_pu": -p2,
            "p3_charging_pu": -p3,
            "q1_charging_pu": -q1,
            "q2_charging_pu": -q2,
            "q3_charging_pu": -q3,
            "olrt_s": tr,
        }
    }
    if charging:
        notes += [
            "Charging side (P' points, Q' = -Q): the EV charging at P'rated, steps by its charge limit.",
            CHARGE_NOTE,
        ]
    return _test(
        id=f"wv-char{n}-{'chg' if charging else 'dis'}-{owner}",
        title=f"Watt-var characteristic {n}{', charging' if charging else ''}",
        clause="IEEE 1547.1-2020 5.14.x watt-var (number UNCONFIRMED)",
        owner=owner,
        quick=quick,
        steps=steps,
        events=events,
        daemon=_daemon(owner, ["watt_var"], grid, charging=charging),
        judge=judge,
        p_w=sgn * P_W,
        notes=notes,
        # SunSpec 712 carries no response time: the inverter's own is set where the EUT is set up, as a
        # lab sets a certified inverter's through its vendor interface.
        watt_var_olrt_s=tr if owner == "inverter" else None,
    )


# --- the registry's entry point ----------------------------------------------------------------------------


def tests(owner: Owner, quick: bool) -> list[ConformanceTest]:
    """The function tests for ``owner``; ``quick``: the CI subset with shortened timers."""
    if quick:
        return [
            volt_var(owner, 1, True),
            volt_watt(owner, 1, True),
            freq_droop(owner, 1, "under", 0.5, True),
            freq_droop(owner, 2, "over", 1.0, True),
            priority(owner, True),
            watt_var(owner, 1, False, True),
        ]
    return [
        volt_var(owner, 1, False),
        volt_var(owner, 2, False),
        volt_var(owner, 3, False),
        volt_var_vref(owner, False),
        volt_watt(owner, 1, False),
        volt_watt(owner, 2, False),
        volt_watt(owner, 3, False),
        freq_droop(owner, 1, "over", 1.0, False),
        freq_droop(owner, 1, "under", 0.5, False),
        freq_droop(owner, 1, "over", -0.5, False),
        freq_droop(owner, 1, "under", -0.5, False),
        freq_droop(owner, 2, "over", 1.0, False),
        freq_droop(owner, 2, "under", 0.5, False),
        freq_droop(owner, 2, "over", -0.5, False),
        freq_droop(owner, 2, "under", -0.5, False),
        priority(owner, False),
        constant_pf(owner, 0.90, "inject", False),
        constant_pf(owner, 0.90, "absorb", False),
        constant_var(owner, 0.44, False),
        constant_var(owner, -0.44, False),
        watt_var(owner, 1, False, False),
        watt_var(owner, 1, True, False),
    ]
