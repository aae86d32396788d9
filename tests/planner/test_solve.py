"""The planning program: it charges where energy is cheap, meets the departure over its whole margin
window and prices that margin, follows the asymmetric efficiencies, keeps the export cap, weighs wear
and emissions as documented, and refuses bad inputs naming the field."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge.planner.problem import PlanInputError
from edge.planner.solve import emissions_arbitrage_pays, outcome, solve
from tests.planner.support import NO_WEAR, problem, wear


def test_charges_in_the_cheapest_steps_to_reach_the_departure_target() -> None:
    price = np.full(96, 0.30)
    price[20:32] = 0.10  # three cheap hours
    pb = problem(import_price=price, departure_index=80, departure_soc=0.8, margin_steps=0)
    plan = solve(pb)
    charging = np.flatnonzero(plan.p_w < -1.0)
    assert charging.size > 0
    assert set(charging) <= set(range(20, 32))
    assert plan.outcome.soc[80] == pytest.approx(0.8, abs=1e-6)
    assert plan.target_reachable


def test_the_target_holds_over_the_margin_window_and_the_margin_has_a_price() -> None:
    price = np.full(96, 0.30)
    price[76:80] = 0.05  # the cheapest hour is the last one before the stated departure
    pb = problem(
        import_price=price, base_import_w=np.zeros(96), departure_index=80, departure_soc=0.7, margin_steps=8
    )
    plan = solve(pb)
    assert np.all(plan.outcome.soc[72:81] >= 0.7 - 1e-6)  # leaving 2 h early still finds 70 %
    no_margin = solve(
        problem(import_price=price, base_import_w=np.zeros(96), departure_index=80, departure_soc=0.7)
    )
    assert no_margin.outcome.soc[72] < 0.7  # without the margin it waits for the cheap hour
    assert plan.margin_cost == pytest.approx(plan.objective - no_margin.objective, rel=1e-6)
    assert plan.margin_cost > 0.1 * 12 * 0.25 * 0.5  # a good part of 12 kWh moved to 0.30 from 0.05
    assert any("margin costs" in r for r in plan.reasons)


def test_asymmetric_efficiencies_set_the_energy_drawn_and_returned() -> None:
    pb = problem(charge_efficiency=0.90, discharge_efficiency=0.80, departure_index=40, departure_soc=0.6)
    plan = solve(pb)
    o = plan.outcome
    stored_wh = (o.soc[40] - 0.5) * 60_000.0
    assert o.e_charged_ac_wh * 0.90 - o.e_discharged_ac_wh / 0.80 == pytest.approx(stored_wh, rel=1e-6)
    assert o.soc[40] == pytest.approx(0.6, abs=1e-6)


def test_export_never_exceeds_the_cap_and_the_ev_never_worsens_a_pv_surplus() -> None:
    xp = np.zeros(96)
    xp[:60] = 0.25  # export pays well until 11:30 UTC ...
    price = np.full(96, 0.30)
    price[70:90] = 0.05  # ... and energy is cheap to buy back later
    base = np.full(96, 300.0)
    base[40:60] = -4000.0  # PV alone exports 4 kW
    pb = problem(export_price=xp, import_price=price, base_import_w=base, export_cap_w=2000.0)
    plan = solve(pb)
    allowed = np.maximum(2000.0, -base)
    assert np.all(plan.outcome.export_w <= allowed + 1e-6)
    assert plan.outcome.export_w[:40].max() == pytest.approx(2000.0, rel=1e-6)  # it does use the cap
    assert np.all(plan.p_w[40:60] <= 1e-6)  # no discharge on top of a PV surplus beyond the cap


@pytest.mark.parametrize(("factor", "discharges"), [(1.05, True), (0.95, False)])
def test_emissions_arbitrage_only_above_charge_intensity_over_round_trip(
    factor: float, discharges: bool
) -> None:
    rt = 0.94 * 0.95
    i_c = 200.0
    em = np.full(96, i_c)
    em[48:] = factor * i_c / rt
    zero = np.zeros(96)
    pb = problem(
        import_price=zero,
        export_price=zero,
        base_import_w=zero,
        emissions_g_per_kwh=em,
        emissions_weight_per_kg=1.0,
        wear=NO_WEAR,
    )
    plan = solve(pb)
    assert bool(plan.p_w[48:].max() > 1.0) is discharges
    assert emissions_arbitrage_pays(i_c, float(em[60]), rt) is discharges


def test_wear_cost_stops_arbitrage_that_does_not_pay_for_it() -> None:
    price = np.full(96, 0.20)
    price[60:76] = 0.26  # a 6-cent spread: pays at 89 % round trip only without wear
    zero = np.zeros(96)
    cheap = solve(problem(import_price=price, export_price=price, base_import_w=zero, wear=NO_WEAR, soc0=0.6))
    dear = solve(
        problem(
            import_price=price,
            export_price=price,
            base_import_w=zero,
            wear=wear(battery_cost_per_kwh=400.0),
            soc0=0.6,
        )
    )
    assert cheap.outcome.e_discharged_ac_wh > 10_000.0
    assert dear.outcome.e_discharged_ac_wh == pytest.approx(0.0, abs=1.0)


def test_without_a_departure_the_plan_ends_no_lower_than_it_starts() -> None:
    price = np.full(96, 0.30)
    price[80:] = 0.60  # dear at the end: selling everything then would pay on paper
    plan = solve(problem(import_price=price, export_price=price))
    assert plan.outcome.soc[-1] >= 0.5 - 1e-6
    assert plan.outcome.soc.min() >= 0.3 - 1e-6  # the owner's reserve


def test_a_departure_beyond_the_horizon_sets_the_end_soc() -> None:
    price = np.full(96, 0.30)
    price[:8] = 0.10  # cheap now, dear later: without the end SoC nothing would be charged
    plan = solve(problem(import_price=price, soc0=0.4, end_soc=0.6))
    assert plan.outcome.soc[-1] >= 0.6 - 1e-6
    assert plan.outcome.e_charged_ac_wh > 0.2 * 60_000.0 / 0.94 - 1.0
    assert np.all(plan.p_w[8:] >= -1.0)  # all of it in the cheap steps


def test_an_unreachable_target_is_lowered_and_said() -> None:
    pb = problem(soc0=0.2, departure_index=8, departure_soc=0.9, margin_steps=0)
    plan = solve(pb)
    assert not plan.target_reachable
    assert plan.target_soc is not None and plan.target_soc < 0.9
    assert np.all(plan.p_w[:8] == pytest.approx(-11_000.0))
    assert any("unreachable" in r for r in plan.reasons)


def test_a_soc_below_the_reserve_is_restored_at_full_power() -> None:
    plan = solve(problem(soc0=0.1))
    assert plan.p_w[0] == pytest.approx(-11_000.0)
    assert plan.p_w.min() >= -11_000.0  # exactly within the rating: the dispatcher refuses a hair more
    assert plan.outcome.soc.min() == pytest.approx(0.1)


def test_negative_prices_need_the_mixed_integer_program() -> None:
    price = np.full(96, 0.30)
    price[:12] = -0.50  # paid to draw with a full pack: the LP would charge and discharge at once
    pb = problem(import_price=price, export_price=np.full(96, 0.0), soc0=1.0)
    plan = solve(pb)
    assert plan.mixed_integer
    lp_only = solve(pb, mixed_integer=False)
    # The LP's paper gain from burning energy in the losses is gone once the binaries forbid it.
    assert plan.objective > lp_only.objective + 0.01
    assert plan.outcome.soc.max() <= 1.0 + 1e-9


def test_the_demand_charge_lowers_the_peak() -> None:
    price = np.full(96, 0.30)
    price[0:8] = 0.05
    base = np.full(96, 3000.0)
    plain = solve(problem(import_price=price, base_import_w=base, departure_index=90, departure_soc=0.9))
    peaky = solve(
        problem(
            import_price=price,
            base_import_w=base,
            departure_index=90,
            departure_soc=0.9,
            demand_charge_per_kw=20.0,
        )
    )
    assert plain.outcome.import_w.max() == pytest.approx(14_000.0)
    assert peaky.outcome.import_w.max() < 0.7 * plain.outcome.import_w.max()
    assert peaky.outcome.soc[90] == pytest.approx(0.9, abs=1e-6)


def test_288_steps_solve() -> None:
    rng = np.random.default_rng(1)
    price = 0.2 + 0.1 * rng.random(288)
    plan = solve(
        problem(
            n=288,
            step_s=300.0,
            import_price=price,
            export_price=price - 0.1,
            departure_index=250,
            departure_soc=0.8,
            margin_steps=12,
        )
    )
    assert plan.outcome.soc[238:251].min() >= 0.8 - 1e-6


def test_outcome_matches_the_plans_energy_cost() -> None:
    price = np.linspace(0.1, 0.5, 96)
    plan = solve(problem(import_price=price, export_price=price - 0.05, wear=NO_WEAR))
    o = outcome(plan.problem, plan.p_w)
    # With no wear and the EV there all along, the objective is the energy cost.
    assert o.energy_cost == pytest.approx(plan.objective, rel=1e-6, abs=1e-6)
    assert o.e_discharged_ac_wh > 1000.0  # it did arbitrage: the accounting covered both directions


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"export_price": np.full(95, 0.3)}, "export_price"),
        ({"soc0": math.nan}, "soc0"),
        ({"departure_index": 10}, "departure_index"),
        ({"base_import_w": np.full(96, np.inf)}, "base_import_w[0]"),
        ({"charge_efficiency": 1.2}, "charge_efficiency"),
        ({"export_cap_w": -1.0}, "export_cap_w"),
        ({"departure_index": 10, "departure_soc": 0.8, "end_soc": 0.5}, "end_soc"),
        ({"import_price": np.full(96, 300.0)}, "import_price[0]"),
    ],
)
def test_bad_inputs_are_refused_naming_the_field(over: dict[str, object], field: str) -> None:
    with pytest.raises(PlanInputError) as err:
        problem(**over)
    assert err.value.field == field
