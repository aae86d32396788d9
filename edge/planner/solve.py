"""The planning program and its solution: ``solve(problem)`` returns a ``Plan`` (docs/planner.md, "Model").

A linear program over the steps the EV is plugged in, solved by HiGHS (``highspy``): an open-source
(MIT) solver kept by the University of Edinburgh group, with wheels for x86-64 and aarch64 and no
licence server, the fastest open LP/MIP solver in the Mittelmann benchmarks, and the one SciPy itself
ships (``scipy.optimize.linprog``'s default). Per step: the AC charge and discharge of each SoC
segment of the wear model, the power tranches of the C-rate cost, the site's import and export.
Constraints: each segment's energy balance with the asymmetric efficiencies, the site balance, the
export cap (the EV never makes export exceed the cap, nor worsen it where PV alone exceeds it), the
owner's reserve, the departure target over the whole uncertainty window, and, without a departure
in the horizon, an end SoC no lower than the start (the plan does not sell the owner's energy) and
no lower than what a departure beyond the horizon needs (``Problem.end_soc``).

The LP may charge and discharge in one step where that is worth it on paper (negative prices:
burning energy in the losses). Then the program is solved again with a binary for the direction of
the EV's power on those steps (a MILP), until no step does (a few rounds at most);
``Plan.mixed_integer`` says whether binaries were needed. An export price above the import price
is planned at the import price (the meter cannot import and export at once; saying so would take a
binary on every such step), and judged at its own price in ``outcome``. The cost of the departure margin is the objective with the margin minus the one without.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import highspy
import numpy as np
from highspy._core import _Highs

from edge.planner.problem import FloatArray, PlanInputError, Problem
from edge.planner.wear import SEGMENTS, TRANCHES

SIMULTANEOUS_KW = 1e-4  # a step that charges and discharges more than this needs the MILP
MAX_ROUNDS = 4  # rounds of binaries added where the LP needs them
TIME_LIMIT_S = 10.0  # a plan that takes longer is refused: the daemon keeps its previous one


class PlanError(RuntimeError):
    """The solver found no plan (infeasible inputs, a time-out): the daemon keeps the previous one."""


@dataclass(frozen=True)
class Outcome:
    """What an EV schedule costs over the horizon (currency, kg CO2), judged the same way for every
    strategy: wear by the physical SoC trajectory (``edge.planner.wear``)."""

    energy_cost: float
    demand_cost: float
    wear_cycle_cost: float
    wear_c_rate_cost: float
    wear_calendar_cost: float
    emissions_kg: float
    emissions_cost: float
    soc: FloatArray  # at each time index 0..n
    import_w: FloatArray
    export_w: FloatArray
    e_charged_ac_wh: float
    e_discharged_ac_wh: float

    @property
    def wear_cost(self) -> float:
        return self.wear_cycle_cost + self.wear_c_rate_cost + self.wear_calendar_cost

    @property
    def total(self) -> float:
        return self.energy_cost + self.demand_cost + self.wear_cost + self.emissions_cost


@dataclass(frozen=True)
class Plan:
    """The schedule (``p_w`` per step, > 0 discharge) and what it is expected to bring."""

    problem: Problem
    p_w: FloatArray
    outcome: Outcome
    objective: float
    margin_cost: float  # what holding the target over the margin window costs (0 without)
    target_soc: float | None  # the SoC held over the departure window (lowered when unreachable)
    target_reachable: bool
    mixed_integer: bool
    solve_s: float
    reasons: tuple[str, ...]


def emissions_arbitrage_pays(
    i_charge_g_per_kwh: float, i_discharge_g_per_kwh: float, round_trip: float
) -> bool:
    """Whether moving energy from a charge-time intensity to a discharge-time one cuts emissions:
    only when the discharge-time intensity exceeds the charge-time one over the round-trip
    efficiency (a kWh drawn returns ``round_trip`` kWh)."""
    return i_discharge_g_per_kwh > i_charge_g_per_kwh / round_trip


class _Lp:
    """Columns and rows collected for one ``highspy.HighsLp`` (row-wise)."""

    def __init__(self) -> None:
        self.cost: list[float] = []
        self.lo: list[float] = []
        self.hi: list[float] = []
        self.integer: list[bool] = []
        self.row_lo: list[float] = []
        self.row_hi: list[float] = []
        self.starts: list[int] = [0]
        self.index: list[int] = []
        self.value: list[float] = []

    def col(self, cost: float, lo: float, hi: float, *, integer: bool = False) -> int:
        self.cost.append(cost)
        self.lo.append(lo)
        self.hi.append(hi)
        self.integer.append(integer)
        return len(self.cost) - 1

    def row(self, terms: list[tuple[int, float]], lo: float, hi: float) -> None:
        for j, a in terms:
            self.index.append(j)
            self.value.append(a)
        self.starts.append(len(self.index))
        self.row_lo.append(lo)
        self.row_hi.append(hi)

    def solve(self) -> tuple[FloatArray, float]:
        inf = highspy.kHighsInf
        lp = highspy.HighsLp()
        lp.num_col_ = len(self.cost)
        lp.num_row_ = len(self.row_lo)
        lp.col_cost_ = np.array(self.cost)
        lp.col_lower_ = np.array(self.lo)
        lp.col_upper_ = np.minimum(np.array(self.hi), inf)
        lp.row_lower_ = np.maximum(np.array(self.row_lo), -inf)
        lp.row_upper_ = np.minimum(np.array(self.row_hi), inf)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.start_ = np.array(self.starts, dtype=np.int32)
        lp.a_matrix_.index_ = np.array(self.index, dtype=np.int32)
        lp.a_matrix_.value_ = np.array(self.value)
        if any(self.integer):
            kinds = highspy.HighsVarType
            lp.integrality_ = [kinds.kInteger if b else kinds.kContinuous for b in self.integer]
        # The bare solver: highspy.Highs adds Python callbacks and prints a banner on stdout (a
        # daemon's journal, v2gctl's output) before any option can turn output off.
        h = _Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("time_limit", TIME_LIMIT_S)
        h.setOptionValue("mip_rel_gap", 1e-4)
        h.passModel(lp)
        h.run()
        status = h.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            raise PlanError(f"no plan: the solver says {h.modelStatusToString(status)}")
        return np.asarray(h.getSolution().col_value, dtype=np.float64), float(
            h.getInfo().objective_function_value
        )


def _build(pb: Problem, binary: set[int]) -> tuple[_Lp, dict[str, np.ndarray]]:
    """The program; the steps in ``binary`` get a binary per flow's direction."""
    lp = _Lp()
    inf = math.inf
    n_on, dt = pb.present, pb.dt_h
    e_kwh, seg_kwh = pb.e_kwh, pb.e_kwh / SEGMENTS
    eta_c, eta_d = pb.charge_efficiency, pb.discharge_efficiency
    pc, pd = pb.p_charge_max_w / 1000.0, pb.p_discharge_max_w / 1000.0
    seg_cost = pb.wear.segment_costs()
    tc_c = pb.wear.tranche_costs(eta_c * pc, e_kwh) if pc > 0 else np.zeros(TRANCHES)
    tc_d = pb.wear.tranche_costs(pd / eta_d, e_kwh) if pd > 0 else np.zeros(TRANCHES)
    _, cal_b = pb.wear.calendar_rate(e_kwh)
    em = pb.emissions_g_per_kwh
    w_em = pb.emissions_weight_per_kg / 1000.0 if em is not None else 0.0
    export_max_kw = pb.site_export_max_w() / 1000.0
    base = pb.base_import_w / 1000.0
    # An export dearer than the import is taken at the import's price: the meter cannot import and
    # export at once, and only binaries could say so; no tariff we know pays more for export.
    xp = np.minimum(pb.export_price, pb.import_price)
    e_prev = [float(np.clip(pb.soc0 * e_kwh - i * seg_kwh, 0.0, seg_kwh)) for i in range(SEGMENTS)]
    lower = pb.min_soc_path()
    tgt = pb.target()
    peak = None
    if pb.demand_charge_per_kw > 0.0:
        after = base[n_on:]
        floor = max(pb.demand_peak_so_far_w / 1000.0, float(after.max()) if after.size else 0.0)
        peak = lp.col(pb.demand_charge_per_kw, floor, inf)
    idx: dict[str, list[int]] = {"c": [], "d": [], "e": []}
    e_cols_prev: list[int] | None = None
    for t in range(n_on):
        intensity = float(em[t]) if em is not None else 0.0
        # The owner leaving within this step takes no discharge (Problem.leaves_now).
        pd_t = 0.0 if pb.leaves_now and t == 0 else pd
        c = [lp.col(0.0, 0.0, pc) for _ in range(SEGMENTS)]
        d = [lp.col(float(seg_cost[i]) * dt / eta_d, 0.0, pd_t) for i in range(SEGMENTS)]
        e = [lp.col(cal_b / e_kwh * dt, 0.0, seg_kwh) for _ in range(SEGMENTS)]
        uc = [lp.col(float(tc_c[k]) * eta_c * dt, 0.0, pc / TRANCHES) for k in range(TRANCHES)]
        ud = [lp.col(float(tc_d[k]) / eta_d * dt, 0.0, pd / TRANCHES) for k in range(TRANCHES)]
        # Bounded by what the site can physically draw or send (an export dearer than the import
        # would otherwise make the LP unbounded), and export by the cap or the PV surplus alone.
        b = float(base[t])
        gi = lp.col((float(pb.import_price[t]) + w_em * intensity) * dt, 0.0, max(b, 0.0) + pc)
        ge = lp.col(-(float(xp[t]) + w_em * intensity) * dt, 0.0, float(export_max_kw[t]))
        for i in range(SEGMENTS):
            terms = [(e[i], 1.0), (c[i], -eta_c * dt), (d[i], dt / eta_d)]
            if e_cols_prev is None:
                lp.row(terms, e_prev[i], e_prev[i])
            else:
                lp.row([*terms, (e_cols_prev[i], -1.0)], 0.0, 0.0)
        lp.row([(j, 1.0) for j in c] + [(j, -1.0) for j in uc], 0.0, 0.0)
        lp.row([(j, 1.0) for j in d] + [(j, -1.0) for j in ud], 0.0, 0.0)
        lp.row([(gi, 1.0), (ge, -1.0)] + [(j, -1.0) for j in c] + [(j, 1.0) for j in d], base[t], base[t])
        soc_lo = float(lower[t + 1])
        if tgt is not None and tgt[0] <= t + 1:
            soc_lo = max(soc_lo, tgt[1])
        if t == n_on - 1 and pb.departure_index is None:
            soc_lo = max(soc_lo, min(pb.soc0, pb.max_soc), pb.end_soc)
        lp.row([(j, 1.0) for j in e], soc_lo * e_kwh - 1e-9, pb.max_soc * e_kwh + 1e-9)
        if pb.leaves_now and t == 0 and tgt is not None and pb.soc0 < tgt[1]:
            # The owner leaves within this step: the rest of the target as soon as possible, that is
            # at full power (up to the pack's top), not spread over a step that outlasts the departure.
            room_kw = (pb.max_soc - pb.soc0) * e_kwh / (eta_c * dt)
            lp.row([(j, 1.0) for j in c], min(pc, room_kw) - 1e-9, inf)
        if peak is not None:
            lp.row([(peak, 1.0), (gi, -1.0)], 0.0, inf)
        if t in binary:
            z = lp.col(0.0, 0.0, 1.0, integer=True)  # 1: charging allowed, 0: discharging
            lp.row([(j, 1.0) for j in c] + [(z, -pc)], -inf, 0.0)
            lp.row([(j, 1.0) for j in d] + [(z, pd)], -inf, pd)
        idx["c"].extend(c)
        idx["d"].extend(d)
        idx["e"].extend(e)
        e_cols_prev = e
    return lp, {k: np.array(v, dtype=np.int64).reshape(n_on, -1) for k, v in idx.items()}


def _solve_once(pb: Problem, mixed_integer: bool | None) -> tuple[FloatArray, float, bool]:
    """(p_w per step, objective, whether binaries were used). None: binaries only on the steps where
    the LP charges and discharges at once, added round by round."""
    if pb.present == 0:
        return np.zeros(pb.n), 0.0, False
    binary: set[int] = set(range(pb.present)) if mixed_integer else set()
    for _ in range(MAX_ROUNDS):
        lp, idx = _build(pb, binary)
        x, obj = lp.solve()
        c = x[idx["c"]].sum(axis=1)
        d = x[idx["d"]].sum(axis=1)
        new = set(np.flatnonzero(np.minimum(c, d) > SIMULTANEOUS_KW).tolist()) - binary
        if mixed_integer is not None or not new:
            break
        binary |= new
    p_w = np.zeros(pb.n)
    p_w[: pb.present] = (d - c) * 1000.0
    # Below a milliwatt is the solver's tolerance, not a request; so is a hair beyond the limits (the
    # dispatcher refuses a set point above the ratings by any amount).
    p_w[np.abs(p_w) < 1e-3] = 0.0
    np.clip(p_w, -pb.p_charge_max_w, pb.p_discharge_max_w, out=p_w)
    return p_w, obj, bool(binary)


def outcome(pb: Problem, p_w: FloatArray, base_import_w: FloatArray | None = None) -> Outcome:
    """What the EV schedule ``p_w`` costs with the problem's prices and wear, on ``base_import_w``
    (default: the problem's forecast; the bench passes what really happened)."""
    if p_w.shape != (pb.n,):
        raise PlanInputError("p_w", f"has {p_w.shape} values, the plan has {pb.n} steps")
    base = pb.base_import_w if base_import_w is None else base_import_w
    dt = pb.dt_h
    chg_w = np.clip(-p_w, 0.0, None)
    dis_w = np.clip(p_w, 0.0, None)
    delta_wh = (pb.charge_efficiency * chg_w - dis_w / pb.discharge_efficiency) * dt
    soc = pb.soc0 + np.concatenate(([0.0], np.cumsum(delta_wh))) / pb.e_per_soc_wh
    site = base - p_w
    imp, exp_ = np.clip(site, 0.0, None), np.clip(-site, 0.0, None)
    energy = float((pb.import_price * imp - pb.export_price * exp_).sum() * dt / 1000.0)
    peak_w = float(imp.max()) if imp.size else 0.0
    demand = pb.demand_charge_per_kw * max(0.0, peak_w - pb.demand_peak_so_far_w) / 1000.0
    em = pb.emissions_g_per_kwh
    em_kg = float((em * (imp - exp_)).sum() * dt / 1e6) if em is not None else 0.0
    e_kwh, on = pb.e_kwh, pb.present
    a, b = pb.wear.calendar_rate(e_kwh)
    mid = 0.5 * (soc[:-1] + soc[1:])
    return Outcome(
        energy_cost=energy,
        demand_cost=demand,
        wear_cycle_cost=pb.wear.cycle_cost(soc, e_kwh),
        wear_c_rate_cost=pb.wear.c_rate_cost(
            pb.charge_efficiency * chg_w / 1000.0,
            dt,
            pb.charge_efficiency * pb.p_charge_max_w / 1000.0,
            e_kwh,
        )
        + pb.wear.c_rate_cost(
            dis_w / pb.discharge_efficiency / 1000.0,
            dt,
            pb.p_discharge_max_w / pb.discharge_efficiency / 1000.0,
            e_kwh,
        ),
        wear_calendar_cost=float((a + b * mid[:on]).sum() * dt),
        emissions_kg=em_kg,
        emissions_cost=em_kg * pb.emissions_weight_per_kg,
        soc=soc,
        import_w=imp,
        export_w=exp_,
        e_charged_ac_wh=float(chg_w.sum() * dt),
        e_discharged_ac_wh=float(dis_w.sum() * dt),
    )


def solve(pb: Problem, *, mixed_integer: bool | None = None) -> Plan:
    """The plan of ``pb``; ``mixed_integer`` None: the LP, and the MILP only where the LP needs it.
    Raises PlanError when the solver finds none."""
    t0 = time.perf_counter()
    p_w, obj, milp = _solve_once(pb, mixed_integer)
    margin_cost = 0.0
    if pb.margin_steps > 0 and pb.departure_index is not None:
        _, obj0, _ = _solve_once(replace(pb, margin_steps=0), mixed_integer)
        margin_cost = max(0.0, obj - obj0)
    solve_s = time.perf_counter() - t0
    out = outcome(pb, p_w)
    tgt = pb.target()
    return Plan(
        problem=pb,
        p_w=p_w,
        outcome=out,
        objective=obj,
        margin_cost=margin_cost,
        target_soc=None if tgt is None else tgt[1],
        target_reachable=True if tgt is None else tgt[2],
        mixed_integer=milp,
        solve_s=solve_s,
        reasons=_reasons(pb, p_w, out, margin_cost, tgt),
    )


def _reasons(
    pb: Problem, p_w: FloatArray, out: Outcome, margin_cost: float, tgt: tuple[int, float, bool] | None
) -> tuple[str, ...]:
    """Why the plan is what it is, in a few lines for people."""
    out_lines: list[str] = list(pb.notes)
    chg, dis = p_w < 0.0, p_w > 0.0
    rt = pb.charge_efficiency * pb.discharge_efficiency
    if chg.any():
        avg = float(np.average(pb.import_price[chg], weights=-p_w[chg]))
        out_lines.append(
            f"charges {out.e_charged_ac_wh / 1000:.1f} kWh in {int(chg.sum())} steps at {avg:.3f}/kWh on average"
            f" (the horizon's import prices run {pb.import_price.min():.3f} … {pb.import_price.max():.3f})"
        )
    if dis.any():
        avg = float(np.average(np.maximum(pb.import_price, pb.export_price)[dis], weights=p_w[dis]))
        out_lines.append(
            f"discharges {out.e_discharged_ac_wh / 1000:.1f} kWh where a kWh is worth {avg:.3f} on average;"
            f" a kWh cycled costs {pb.wear.per_kwh_cycled(0.5):.3f} of wear at 50 % depth and returns"
            f" {rt:.0%} of itself"
        )
    if not chg.any() and not dis.any():
        out_lines.append(
            f"holds: no price spread ({pb.import_price.min():.3f} … {pb.import_price.max():.3f}/kWh) pays for"
            f" the losses ({1 - rt:.0%} a round trip) and the wear, and no target needs energy"
        )
    if pb.emissions_g_per_kwh is not None and chg.any() and dis.any():
        i_c = float(np.average(pb.emissions_g_per_kwh[chg], weights=-p_w[chg]))
        i_d = float(np.average(pb.emissions_g_per_kwh[dis], weights=p_w[dis]))
        pays = emissions_arbitrage_pays(i_c, i_d, rt)
        out_lines.append(
            f"emissions: charging at {i_c:.0f} g/kWh, discharging at {i_d:.0f} g/kWh:"
            f" {'cuts' if pays else 'does not cut'} emissions (it does above {i_c / rt:.0f} g/kWh)"
        )
    if tgt is not None:
        first, soc, ok = tgt
        when = pb.t0_unix_s + first * pb.step_s
        hhmm = time.strftime("%H:%M", time.gmtime(when))
        if ok:
            out_lines.append(
                f"holds {soc:.0%} from {hhmm} UTC ({pb.margin_steps} steps before the departure);"
                f" that margin costs {margin_cost:.2f}"
            )
        else:
            out_lines.append(
                f"the owner's {pb.departure_soc:.0%} is unreachable by {hhmm} UTC: charging to {soc:.0%}"
            )
    return tuple(out_lines)
