"""The planner on the documented days (tests/data/planner): it meets every departure, costs no more
than charging at plug-in or the cheapest-hours rule, and comes within a few per cent of perfect
foresight; the benchmark prints its figures."""

from __future__ import annotations

import pytest

from hil.bench import plan as bench
from hil.bench.plan import Day, days, judged, problem

DAYS = days()


def test_the_days_are_there() -> None:
    assert {d.name for d in DAYS} == {
        "winter-two-rate",
        "summer-pv-flat",
        "dynamic-spot",
        "cloudy-demand-charge",
    }


@pytest.mark.parametrize("day", DAYS, ids=lambda d: d.name)
def test_the_plan_beats_the_rules_and_meets_the_departure(day: Day) -> None:
    out = judged(day)
    k, target = day.session.departure_index, day.session.departure_soc
    for name, o in out.items():
        assert o.soc[k] >= target - 1e-6, name
        assert o.soc.min() >= min(day.session.min_soc, day.session.soc) - 1e-6, name
    assert out["plan"].total <= out["plugin"].total + 1e-6
    assert out["plan"].total <= out["cheapest"].total + 1e-6
    assert out["foresight"].total <= out["plan"].total * 1.01 + 1e-6


def test_the_forecast_error_costs_something_on_the_cloudy_day() -> None:
    day = next(d for d in DAYS if d.name == "cloudy-demand-charge")
    assert (
        problem(day, foresight=False).base_import_w.min() < problem(day, foresight=True).base_import_w.min()
    )
    out = judged(day)
    assert out["foresight"].total < out["plan"].total


def test_the_benchmark_reports_every_figure() -> None:
    figures = {f.name: f for f in bench.run(quick=True)}
    for day in DAYS:
        for strategy in bench.STRATEGIES:
            assert f"plan.{day.name}.{strategy}.cost" in figures
        assert figures[f"plan.{day.name}.plan.cost"].baseline == "plugin"
    assert figures["plan.solve_96_steps"].value > 0.0
    assert figures["plan.solve_288_steps"].value > 0.0
