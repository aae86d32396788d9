"""Benchmark of the local planner (``v2g-hil bench plan``): cost, wear and emissions on documented days,
against charging at plug-in, a cheapest-hours rule and the perfect-foresight optimum; solve times.

The days are JSON files in tests/data/planner (README.md there says how they were made): tariffs, the
house's load and PV as they happened and as forecast, the EV session and the site. Each strategy
gives an EV schedule; every schedule is judged by ``edge.planner.solve.outcome`` on what happened
(actual load and PV) with the same prices and wear model:

* ``plugin``: charge at full power from plug-in until the departure target, then idle;
* ``cheapest``: the cheapest steps before the departure that hold the energy needed, at full power
  (what evcc's and openWB's price-based chargers do), never discharging;
* ``plan``: the planner on the forecasts (no departure margin, as the others have none);
* ``foresight``: the planner on what happened (the best any plan could do with this model).

Figures per day: ``plan.<day>.<strategy>.cost`` (energy, demand charge, wear and priced emissions,
EUR), ``.wear`` (EUR) and ``.emissions`` (kg), the plan's cost with a ratio against ``plugin``, and
``plan.<day>.margin_cost`` (what a 1 h departure margin costs). Solve times of 96 and 288 steps (the
target is under 1 s); quick mode solves each fewer times.
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import msgspec
import numpy as np
from msgspec import Meta

from edge.planner.problem import FloatArray, Problem
from edge.planner.solve import Outcome, outcome, solve
from edge.planner.wear import WearModel
from edge.settings.model import Planner
from hil.bench import Figure

DAYS_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "planner"
STRATEGIES = ("plugin", "cheapest", "plan", "foresight")


class DaySession(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    soc: float
    e_per_soc_wh: float
    p_charge_max_w: float
    p_discharge_max_w: float
    departure_index: int
    departure_soc: float
    min_soc: float


class Day(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One documented day (tests/data/planner/README.md)."""

    name: str
    description: str
    start: str
    step_s: Annotated[int, Meta(ge=60, le=3600)]
    import_price: list[float]
    export_price: list[float]
    emissions_g_per_kwh: list[float] | None
    emissions_weight_per_kg: float
    load_w: list[float]
    pv_w: list[float]
    load_forecast_w: list[float]
    pv_forecast_w: list[float]
    session: DaySession
    export_cap_w: float
    demand_charge_per_kw: float
    demand_peak_so_far_w: float = 0.0


def days() -> list[Day]:
    return [msgspec.json.decode(p.read_bytes(), type=Day) for p in sorted(DAYS_DIR.glob("*.json"))]


def problem(day: Day, *, foresight: bool, margin_steps: int = 0) -> Problem:
    """The day's planning problem on the forecasts, or (``foresight``) on what happened."""
    load = day.load_w if foresight else day.load_forecast_w
    pv = day.pv_w if foresight else day.pv_forecast_w
    s = day.session
    return Problem(
        t0_unix_s=datetime.fromisoformat(day.start).timestamp(),
        step_s=float(day.step_s),
        import_price=np.array(day.import_price),
        export_price=np.array(day.export_price),
        base_import_w=np.array(load) - np.array(pv),
        soc0=s.soc,
        e_per_soc_wh=s.e_per_soc_wh,
        p_charge_max_w=s.p_charge_max_w,
        p_discharge_max_w=s.p_discharge_max_w,
        charge_efficiency=0.94,
        discharge_efficiency=0.95,
        min_soc=s.min_soc,
        export_cap_w=day.export_cap_w,
        wear=WearModel.of(Planner()),
        departure_index=s.departure_index,
        departure_soc=s.departure_soc,
        margin_steps=margin_steps,
        emissions_g_per_kwh=None if day.emissions_g_per_kwh is None else np.array(day.emissions_g_per_kwh),
        emissions_weight_per_kg=day.emissions_weight_per_kg,
        demand_charge_per_kw=day.demand_charge_per_kw,
        demand_peak_so_far_w=day.demand_peak_so_far_w,
    )


def plugin(pb: Problem) -> FloatArray:
    """Full power from plug-in until the departure target, then idle."""
    p = np.zeros(pb.n)
    need_wh = max(0.0, (pb.departure_soc or 0.0) - pb.soc0) * pb.e_per_soc_wh
    per_step_wh = pb.charge_efficiency * pb.p_charge_max_w * pb.dt_h
    for k in range(pb.present):
        if need_wh <= 0.0:
            break
        take = min(1.0, need_wh / per_step_wh)
        p[k] = -take * pb.p_charge_max_w
        need_wh -= take * per_step_wh
    return p


def cheapest(pb: Problem) -> FloatArray:
    """The cheapest steps before the departure that hold the energy needed, at full power."""
    p = np.zeros(pb.n)
    need_wh = max(0.0, (pb.departure_soc or 0.0) - pb.soc0) * pb.e_per_soc_wh
    per_step_wh = pb.charge_efficiency * pb.p_charge_max_w * pb.dt_h
    for k in np.argsort(pb.import_price[: pb.present], kind="stable"):
        if need_wh <= 0.0:
            break
        take = min(1.0, need_wh / per_step_wh)
        p[k] = -take * pb.p_charge_max_w
        need_wh -= take * per_step_wh
    return p


def judged(day: Day) -> dict[str, Outcome]:
    """Each strategy's schedule judged on what happened."""
    forecast, actual = problem(day, foresight=False), problem(day, foresight=True)
    schedules = {
        "plugin": plugin(actual),
        "cheapest": cheapest(actual),
        "plan": solve(forecast).p_w,
        "foresight": solve(actual).p_w,
    }
    return {name: outcome(actual, p_w) for name, p_w in schedules.items()}


def _solve_ms(n: int, step_s: float, repeats: int) -> float:
    """Median wall time of one plan over ``n`` steps (a day at 15 min is 96, at 5 min 288)."""
    day = days()[0]
    base = problem(day, foresight=True)
    reps = n // base.n
    pb = Problem(
        t0_unix_s=base.t0_unix_s,
        step_s=step_s,
        import_price=np.repeat(base.import_price, reps),
        export_price=np.repeat(base.export_price, reps),
        base_import_w=np.repeat(base.base_import_w, reps),
        soc0=base.soc0,
        e_per_soc_wh=base.e_per_soc_wh,
        p_charge_max_w=base.p_charge_max_w,
        p_discharge_max_w=base.p_discharge_max_w,
        charge_efficiency=base.charge_efficiency,
        discharge_efficiency=base.discharge_efficiency,
        min_soc=base.min_soc,
        export_cap_w=base.export_cap_w,
        wear=base.wear,
        departure_index=(base.departure_index or 0) * reps,
        departure_soc=base.departure_soc,
        margin_steps=round(3600.0 / step_s),  # the daemon's default margin: two solves
    )
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        solve(pb)
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def run(quick: bool) -> list[Figure]:
    figures: list[Figure] = []
    for day in days():
        out = judged(day)
        plug = out["plugin"].total
        for name in STRATEGIES:
            o = out[name]
            ratio = o.total / plug if name != "plugin" and plug > 0.0 else None
            figures.append(
                Figure(f"plan.{day.name}.{name}.cost", o.total, "EUR", ratio, "plugin" if ratio else None)
            )
            figures.append(Figure(f"plan.{day.name}.{name}.wear", o.wear_cost, "EUR"))
            figures.append(Figure(f"plan.{day.name}.{name}.emissions", o.emissions_kg, "kg"))
        margin = solve(problem(day, foresight=False, margin_steps=4)).margin_cost
        figures.append(Figure(f"plan.{day.name}.margin_cost", margin, "EUR"))
    repeats = 3 if quick else 15
    figures.append(Figure("plan.solve_96_steps", _solve_ms(96, 900.0, repeats), "ms"))
    figures.append(Figure("plan.solve_288_steps", _solve_ms(288, 300.0, repeats), "ms"))
    return figures
