"""The plan as people and aggregators see it: the retained MQTT payload (``edge.link.payloads.
PlanPayload``, also the runtime directory's ``plan.json``), its text for ``v2gctl plan`` and its plot.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

from edge.link.payloads import PlanCosts, PlanEnvelope, PlanPayload, utc
from edge.planner.envelope import Envelope
from edge.planner.solve import Plan


def _r(values: np.ndarray, digits: int) -> list[float]:
    return [round(float(v), digits) for v in values]


def to_payload(plan: Plan, env: Envelope, t_unix_s: float, departure: datetime | None) -> PlanPayload:
    pb, o = plan.problem, plan.outcome
    em = pb.emissions_g_per_kwh
    return PlanPayload(
        t=utc(t_unix_s),
        status="planned",
        reasons=list(plan.reasons),
        start=utc(pb.t0_unix_s),
        step_s=pb.step_s,
        p_w=_r(plan.p_w, 1),
        soc=_r(o.soc, 4),
        import_price=_r(pb.import_price, 5),
        export_price=_r(pb.export_price, 5),
        base_import_w=_r(pb.base_import_w, 1),
        emissions_g_per_kwh=None if em is None else _r(em, 1),
        departure=departure,
        target_soc=plan.target_soc,
        target_reachable=plan.target_reachable,
        costs=PlanCosts(
            total=round(o.total, 4),
            energy=round(o.energy_cost, 4),
            demand=round(o.demand_cost, 4),
            wear_cycle=round(o.wear_cycle_cost, 4),
            wear_c_rate=round(o.wear_c_rate_cost, 4),
            wear_calendar=round(o.wear_calendar_cost, 4),
            emissions_kg=round(o.emissions_kg, 4),
            emissions=round(o.emissions_cost, 4),
            margin=round(plan.margin_cost, 4),
            wear_per_kwh_cycled=round(pb.wear.per_kwh_cycled(0.5), 4),
        ),
        envelope=PlanEnvelope(
            p_min_w=_r(env.p_min_w, 1),
            p_max_w=_r(env.p_max_w, 1),
            e_min_wh=_r(env.e_min_wh, 1),
            e_max_wh=_r(env.e_max_wh, 1),
        ),
        mixed_integer=plan.mixed_integer,
        solve_s=round(plan.solve_s, 4),
    )


def none_payload(t_unix_s: float, why: str) -> PlanPayload:
    return PlanPayload(t=utc(t_unix_s), status="none", reasons=[why])


def render(p: PlanPayload, *, every: int = 4) -> list[str]:
    """Lines for a terminal: the summary, the costs, why, and the schedule every ``every`` (≥ 1) steps."""
    if every < 1:
        raise ValueError(f"every = {every}: give 1 or more")
    lines = [f"plan of {p.t.isoformat()}: {p.status}"]
    if p.status != "planned" or p.start is None or p.step_s is None or p.costs is None:
        lines.extend(f"  {r}" for r in p.reasons)
        return lines
    c = p.costs
    lines.append(
        f"expected  total {c.total:.2f} = energy {c.energy:.2f} + demand {c.demand:.2f} + wear"
        f" {c.wear_cycle + c.wear_c_rate + c.wear_calendar:.2f} (cycles {c.wear_cycle:.2f}, C-rate"
        f" {c.wear_c_rate:.2f}, calendar {c.wear_calendar:.2f}) + emissions {c.emissions:.2f}"
    )
    lines.append(
        f"emissions {c.emissions_kg:.2f} kg CO2; a kWh cycled wears {c.wear_per_kwh_cycled:.3f};"
        f" departure margin costs {c.margin:.2f}"
    )
    if p.departure is not None and p.target_soc is not None:
        ok = "" if p.target_reachable else " (lowered: the owner's target is unreachable)"
        lines.append(f"departure {p.departure.isoformat()}: {p.target_soc:.0%}{ok}")
    lines.append(f"solved in {1000 * (p.solve_s or 0.0):.0f} ms{' (MILP)' if p.mixed_integer else ''}")
    lines.extend(f"why       {r}" for r in p.reasons)
    lines.append("  time (UTC)   P kW   SoC    import/kWh  house kW")
    for k in range(0, len(p.p_w), every):
        at = datetime.fromtimestamp(p.start.timestamp() + k * p.step_s, p.start.tzinfo)
        lines.append(
            f"  {at:%d %H:%M}  {p.p_w[k] / 1000:6.1f}  {p.soc[k]:5.0%}  {p.import_price[k]:10.3f}"
            f"  {p.base_import_w[k] / 1000:8.1f}"
        )
    return lines


def plot(p: PlanPayload, path: Path) -> None:
    """The schedule, SoC, envelope and prices as a PNG (needs matplotlib: the ``plot`` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if p.start is None or p.step_s is None or p.envelope is None:
        raise ValueError("no plan to plot: " + "; ".join(p.reasons))
    hours = np.arange(len(p.p_w)) * p.step_s / 3600.0
    fig, (ax_p, ax_s, ax_c) = plt.subplots(3, 1, sharex=True, figsize=(10, 8))
    env = p.envelope
    ax_p.fill_between(
        hours,
        np.array(env.p_min_w) / 1000,
        np.array(env.p_max_w) / 1000,
        step="post",
        alpha=0.2,
        label="envelope",
    )
    ax_p.step(hours, np.array(p.p_w) / 1000, where="post", label="plan (> 0 discharge)")
    ax_p.step(hours, np.array(p.base_import_w) / 1000, where="post", label="house import without EV")
    ax_p.set_ylabel("kW")
    ax_p.legend(loc="upper right")
    h1 = np.arange(len(p.soc)) * p.step_s / 3600.0
    ax_s.plot(h1, np.array(p.soc) * 100, label="SoC planned")
    ax_s.set_ylabel("SoC %")
    ax_c.step(hours, p.import_price, where="post", label="import price")
    ax_c.step(hours, p.export_price, where="post", label="export price")
    ax_c.set_ylabel("per kWh")
    ax_c.set_xlabel(f"hours from {p.start.isoformat()}")
    ax_c.legend(loc="upper right")
    fig.suptitle("; ".join(p.reasons[:2])[:150], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
