"""The flexibility envelope: every bound is reachable, every energy inside it can go on inside it
(so an aggregator may follow any path within it), the owner's reserve and departure window hold on
every such path, the plan lies inside it, and nothing moves after the departure."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edge.planner.envelope import envelope
from edge.planner.problem import Problem
from edge.planner.solve import solve
from tests.planner.support import problem

ETA_C, ETA_D = 0.94, 0.95


def _step(e_wh: float, p_w: float, dt_h: float) -> float:
    return e_wh + (ETA_C * -p_w if p_w < 0 else -p_w / ETA_D) * dt_h


def _random_walk(pb: Problem, rng: np.random.Generator) -> np.ndarray:
    """Follow random powers inside the envelope, each chosen so that the next energy stays inside."""
    env = envelope(pb)
    e = 0.0
    path = [e]
    for k in range(pb.n):
        lo_p, hi_p = env.p_min_w[k], env.p_max_w[k]
        # The powers that keep the next energy within its bounds, from this energy.
        candidates = np.linspace(lo_p, hi_p, 201)
        nxt = np.array([_step(e, p, pb.dt_h) for p in candidates])
        ok = (nxt >= env.e_min_wh[k + 1] - 1e-6) & (nxt <= env.e_max_wh[k + 1] + 1e-6)
        assert ok.any(), f"step {k}: no power inside the envelope keeps the energy inside it"
        e = float(rng.choice(nxt[ok]))
        path.append(e)
    return np.array(path)


@pytest.mark.parametrize("seed", range(5))
def test_every_path_inside_the_envelope_keeps_the_owners_constraints(seed: int) -> None:
    pb = problem(soc0=0.45, departure_index=70, departure_soc=0.85, margin_steps=6)
    path = _random_walk(pb, np.random.default_rng(seed))
    soc = 0.45 + path / 60_000.0
    assert soc.min() >= 0.3 - 1e-9
    assert soc[64:71].min() >= 0.85 - 1e-6
    assert soc.max() <= 1.0 + 1e-9


def test_the_bounds_are_reachable() -> None:
    pb = problem(soc0=0.45, departure_index=70, departure_soc=0.85, margin_steps=6)
    env = envelope(pb)
    up = ETA_C * 11_000.0 * 0.25
    assert env.e_max_wh[1] == pytest.approx(up)  # full charge from now
    assert env.e_max_wh[40] == pytest.approx(0.55 * 60_000.0)  # the pack's top
    assert env.e_min_wh[1] == pytest.approx(-11_000.0 / ETA_D * 0.25)  # full discharge from now
    # The lowest energy in the morning is where charging at full power just reaches 85 % at the window.
    k = 30
    assert env.e_min_wh[k] == pytest.approx(max(-0.15 * 60_000.0, 0.4 * 60_000.0 - up * (64 - k)))
    assert env.e_min_wh[64] == pytest.approx(0.4 * 60_000.0)
    assert env.p_min_w[0] == pytest.approx(-11_000.0)
    assert env.p_max_w[0] == pytest.approx(11_000.0)


def test_a_step_that_must_charge_offers_no_discharge() -> None:
    # 30 % short of 90 % with 2 h of full charge needed and 2 h left: no slack at all.
    need_steps = 8
    soc_gain = ETA_C * 11_000.0 * 0.25 * need_steps / 60_000.0
    pb = problem(soc0=0.9 - soc_gain, departure_index=need_steps, departure_soc=0.9)
    env = envelope(pb)
    assert np.all(env.p_max_w[:need_steps] == pytest.approx(-11_000.0))


def test_the_plan_lies_inside_the_envelope_and_nothing_moves_after_departure() -> None:
    price = np.full(96, 0.30)
    price[20:40] = 0.1
    pb = problem(
        import_price=price, export_price=price - 0.05, departure_index=80, departure_soc=0.8, margin_steps=4
    )
    plan = solve(pb)
    env = envelope(pb)
    e = (plan.outcome.soc - pb.soc0) * pb.e_per_soc_wh
    assert np.all(e >= env.e_min_wh - 1e-3)
    assert np.all(e <= env.e_max_wh + 1e-3)
    assert np.all(plan.p_w >= env.p_min_w - 1e-3)
    assert np.all(plan.p_w <= env.p_max_w + 1e-3)
    assert np.all(env.p_min_w[80:] == 0.0)
    assert np.all(env.p_max_w[80:] == 0.0)
    assert np.all(env.e_min_wh[80:] == env.e_min_wh[80])


def test_a_departure_beyond_the_horizon_holds_the_end_of_the_envelope_up() -> None:
    pb = problem(soc0=0.5, end_soc=0.9)
    env = envelope(pb)
    up = ETA_C * 11_000.0 * 0.25
    assert env.e_min_wh[-1] == pytest.approx(0.4 * 60_000.0)
    assert env.e_min_wh[-3] == pytest.approx(0.4 * 60_000.0 - 2 * up)
    path = _random_walk(pb, np.random.default_rng(7))
    assert 0.5 + path[-1] / 60_000.0 >= 0.9 - 1e-6


def test_a_non_export_site_offers_no_more_discharge_than_the_house_takes() -> None:
    # No export at all, the house drawing 500 W: the EV can displace that much import and no more, so
    # an aggregator adding envelopes up must not count 11 kW of discharge here. Under a PV surplus
    # (steps 40-59) it can offer none; charging stays free.
    base = np.full(96, 500.0)
    base[40:60] = -2000.0
    pb = problem(soc0=0.8, export_cap_w=0.0, base_import_w=base)
    env = envelope(pb)
    assert env.p_max_w[:40] == pytest.approx(500.0)
    assert env.p_max_w[40:60] == pytest.approx(0.0)
    assert env.p_max_w[60:] == pytest.approx(500.0)
    assert env.p_min_w[0] == pytest.approx(-11_000.0)
    # The lowest energy follows that discharge, not the charger's 11 kW.
    assert env.e_min_wh[1] == pytest.approx(-500.0 / ETA_D * 0.25)
    assert env.e_min_wh[41] == pytest.approx(-40 * 500.0 / ETA_D * 0.25)
    assert env.e_min_wh[60] == env.e_min_wh[41]
    # The plan stays inside it (the LP bounds export the same way) and any path inside it is feasible.
    plan = solve(replace(pb, import_price=np.where(np.arange(96) < 20, 0.45, 0.30)))
    assert np.all(plan.p_w <= env.p_max_w + 1e-3)
    assert plan.p_w[:20].max() == pytest.approx(500.0)
    path = _random_walk(pb, np.random.default_rng(3))
    assert np.all(np.diff(path) >= -500.0 / ETA_D * 0.25 - 1e-6)


def test_an_export_cap_bounds_the_discharge_above_the_house_load() -> None:
    # A 2 kW cap over a 500 W house: 2.5 kW; a 3 kW PV surplus above the cap: nothing (the EV may not
    # worsen it); a 1 kW surplus under the cap: the 1 kW the cap still allows.
    base = np.full(96, 500.0)
    base[10:20] = -3000.0
    base[20:30] = -1000.0
    env = envelope(problem(export_cap_w=2000.0, base_import_w=base))
    assert env.p_max_w[0] == pytest.approx(2500.0)
    assert env.p_max_w[10:20] == pytest.approx(0.0)
    assert env.p_max_w[20:30] == pytest.approx(1000.0)
    # Without a cap the charger's rating bounds it, as before.
    assert envelope(problem(base_import_w=base)).p_max_w[10] == pytest.approx(11_000.0)
