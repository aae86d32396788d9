"""SoH: capacity by weighted TLS over anchored throughput, resistance growth, across sessions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from ecm_support import Synthetic, duty, simulate

from edge.estimation.capacity import AnchorTracker, CapacityEstimator, CapacityPoint
from edge.estimation.estimator import BatteryEstimator
from edge.estimation.profile import BatteryProfile, load_profile
from edge.estimation.record import VehicleRecord
from edge.estimation.resistance import ResistanceTracker
from edge.state import StateStore


def test_wtls_finds_the_capacity_behind_noisy_points() -> None:
    rng = np.random.default_rng(5)
    est = CapacityEstimator(5.0)
    for _ in range(30):
        dsoc_true = rng.choice([-1.0, 1.0]) * rng.uniform(0.1, 0.6)
        ah = 4.2 * dsoc_true + rng.normal(0, 0.01)
        # Swings down to empty: no fade can hide below them.
        est.add(CapacityPoint(dsoc_true + rng.normal(0, 0.01), ah, 1e-4, 1e-4, soc_low=0.0))
    e = est.estimate
    assert e.capacity_ah == pytest.approx(4.2, rel=0.01)
    assert 0.0 < e.sigma_ah < 0.05
    assert e.points == 30


@pytest.mark.parametrize(("soc_low", "sigma_ah"), [(1.0, 0.75), (0.45, 0.75), (0.15, 0.375), (0.0, 0.0)])
def test_a_fade_below_the_deepest_anchor_stays_in_the_reported_sigma(soc_low: float, sigma_ah: float) -> None:
    """Anchors read SoC on the new cell's table: an aged cell whose loss lies below them looks new.

    Forty exact observations in the window above ``soc_low``: the fit alone would be sure of the
    capacity, but a fade of up to ``soc_low`` can hide below the window, so the reported sigma keeps
    that share of the prior (the whole prior, 15 % = 0.75 Ah, from 30 % SoC up).
    """
    est = CapacityEstimator(5.0)
    for _ in range(40):
        est.add(CapacityPoint(0.4, 2.0, 1e-6, 1e-6, soc_low=soc_low))
    e = est.estimate
    assert e.capacity_ah == pytest.approx(5.0, rel=1e-3)
    assert e.hidden_sigma_ah == pytest.approx(sigma_ah)
    assert e.sigma_ah >= sigma_ah
    assert e.sigma_ah <= max(sigma_ah, 0.01) * 1.01  # and the fit's own width adds little


def test_one_deep_swing_among_shallow_ones_clears_only_its_share() -> None:
    # Twenty shallow observations of an aged pack read as a new cell's 5.0 Ah (the fade below them is
    # invisible), one swing to 5 % SoC sees its true 4.0 Ah: the estimate stays near the shallow
    # ones, and so must the sigma, or the band would exclude the truth (was 4.85 +/- 0.13 Ah).
    est = CapacityEstimator(5.0)
    for _ in range(20):
        est.add(CapacityPoint(0.4, 2.0, 1e-4, 1e-4, soc_low=0.45))
    est.add(CapacityPoint(0.85, 3.4, 1e-4, 1e-4, soc_low=0.05))
    e = est.estimate
    assert abs(e.capacity_ah - 4.0) <= 2.0 * e.sigma_ah
    # Deep swings only: nothing hides, the fit's width is all.
    deep = CapacityEstimator(5.0)
    for _ in range(20):
        deep.add(CapacityPoint(0.85, 3.4, 1e-4, 1e-4, soc_low=0.05))
    assert deep.estimate.capacity_ah == pytest.approx(4.0, rel=0.01)
    assert deep.estimate.hidden_sigma_ah == pytest.approx(0.125)
    assert deep.estimate.sigma_ah < 0.15


def test_prior_alone_is_nameplate_and_weak_points_barely_move_it() -> None:
    est = CapacityEstimator(5.0)
    assert est.estimate.capacity_ah == pytest.approx(5.0, abs=1e-5)
    assert est.estimate.sigma_ah == pytest.approx(0.75, rel=0.01)
    est.add(CapacityPoint(0.05, 0.2, 0.05**2, 0.01))  # 4 Ah, but from a 5-point swing with 5-point errors
    assert est.estimate.capacity_ah > 4.8


def test_old_sessions_fade_so_the_estimate_follows_aging() -> None:
    est = CapacityEstimator(5.0, fade_per_session=0.8)
    for _ in range(5):
        est.add(CapacityPoint(0.5, 2.5, 1e-4, 1e-4))
    for _ in range(10):
        est.new_session()
    for _ in range(5):
        est.add(CapacityPoint(0.5, 2.2, 1e-4, 1e-4))
    # The old points keep 0.8^10 of their weight: (0.54 * 5.0 + 5 * 4.4) / 5.54.
    assert est.estimate.capacity_ah == pytest.approx(4.46, abs=0.02)
    for _ in range(20):
        est.new_session()
    assert len(est.points) == 0  # all faded below the minimum weight


def test_anchor_tracker_pairs_rests_and_ignores_short_swings() -> None:
    tr = AnchorTracker(
        rest_current_a=0.01,
        rest_min_s=300.0,
        min_dsoc=0.1,
        gain_sigma=0.01,
        offset_sigma_a=0.005,
        soc_sigma_floor=0.01,
    )
    assert all(tr.update(1.0, 0.0, 0.8, 1e-6) is None for _ in range(400))
    assert all(tr.update(1.0, 1.0, 0.8, 1e-6) is None for _ in range(100))  # rest ended: first anchor
    for _ in range(400):
        tr.update(1.0, 0.0, 0.6, 1e-6)
    point = tr.update(1.0, -1.0, 0.6, 1e-6)
    assert point is not None
    assert point.dsoc == pytest.approx(0.2)
    assert point.ah == pytest.approx(100 / 3600)
    assert point.var_dsoc == pytest.approx(2 * 0.01**2)
    assert point.soc_low == pytest.approx(0.6)  # the lower anchor: how deep the pair reaches
    # A 5-point swing is too short to pair: nothing comes out.
    for _ in range(400):
        tr.update(1.0, 0.0, 0.55, 1e-6)
    assert tr.commit() is None


def test_resistance_tracker_upper_bound_shrinks_with_evidence() -> None:
    tr = ResistanceTracker(capacity_ah=5.0)
    first = tr.estimate
    assert first.growth == 1.0
    assert first.upper == pytest.approx(2.0)
    rng = np.random.default_rng(2)
    for _ in range(300):
        di = rng.choice([-0.2, 0.2])
        tr.update(1.0, 0.0, di, 3.8, 3.8 - 1.6 * 0.03 * di + rng.normal(0, 0.002), 0.0, 0.03)
    e = tr.estimate
    assert e.growth == pytest.approx(1.6, abs=0.05)
    assert e.upper - e.growth < 0.1
    assert e.steps == 300
    tr.update(5.0, 0.0, 0.5, 3.8, 3.0, 0.0, 0.03)  # a gap: not a step response
    assert tr.estimate.steps == 300


def session_current(seed: int) -> np.ndarray:
    """Rest, 3 h discharge, rest, 2.5 h charge, rest, with 20 s wiggles for the resistance."""
    wiggle = duty(10_000, seed=seed, amplitude_a=8.0)
    parts = [
        np.zeros(900),
        21.5 + np.resize(wiggle, 10_800),
        np.zeros(1200),
        -21.5 + np.resize(wiggle, 9_000),
        np.zeros(1200),
    ]
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def aged_session(nmc: BatteryProfile) -> Synthetic:
    # An aged cell: 4.3 Ah against 5.0 nameplate, 1.5x resistance, the profile's OCV shape.
    return simulate(nmc, session_current(1), soc0=0.8, capacity_ah=4.3, growth=1.5, temp_c=25.0)


def run_session(est: BatteryEstimator, s: Synthetic, noise: np.random.Generator) -> float:
    err = 0.0
    v = s.pack_v_v + noise.normal(0.0, 0.19, len(s.pack_v_v))
    for j in range(len(s.t_s)):
        est.update(float(s.t_s[j]), float(v[j]), float(s.pack_i_a[j]), 25.0)
        if s.t_s[j] >= 900:
            err = max(err, abs(est.soc - s.soc[j]))
    return err


async def test_capacity_and_growth_converge_over_sessions_and_persist(
    tmp_path: Path, nmc: BatteryProfile, aged_session: Synthetic, open_state: Callable[..., StateStore]
) -> None:
    rng = np.random.default_rng(9)
    capacities = []
    for session in range(3):
        store = open_state(tmp_path)  # a daemon restart between sessions: what is learnt is on disk
        est, key = BatteryEstimator.for_vehicle(store, "WVWZZZ1KZAW000001", nmc, initial_soc=0.6)
        max_err = run_session(est, aged_session, rng)
        store.put_vehicle(key, est.end_session())
        await store.aclose()
        capacities.append(est.soh.capacity_ah / nmc.parallel)
        assert est.record.sessions == session + 1
        assert est.soh.resistance_growth == pytest.approx(1.5, abs=0.08)
    # Two anchor pairs per session (discharge and charge) pull it from 5.0 towards 4.3.
    assert capacities[0] < 4.6
    assert capacities[-1] == pytest.approx(4.3, rel=0.03)
    assert max_err < 0.025
    # A later session starts from what was learned, not from nameplate.
    est, _ = BatteryEstimator.for_vehicle(open_state(tmp_path), "WVWZZZ1KZAW000001", nmc)
    assert est.soh.capacity_ah / nmc.parallel == pytest.approx(capacities[-1], rel=0.02)
    assert est.soh.resistance_growth == pytest.approx(1.5, abs=0.08)


def test_a_record_keeps_how_deep_each_observation_reached() -> None:
    point = CapacityPoint(0.4, 2.0, 1e-4, 1e-4, 0.97, soc_low=0.12)
    record = VehicleRecord(profile="nmc-lgm50", capacity_points=[point])
    assert VehicleRecord.from_json(record.to_json()).capacity_points == [point]
    # A record written before the depth was kept: its observations count as shallow (the fade below
    # them unknown), not as deep.
    old = record.to_json()
    del old["capacity_points_soc_low"]
    (loaded,) = VehicleRecord.from_json(old).capacity_points
    assert loaded == CapacityPoint(0.4, 2.0, 1e-4, 1e-4, 0.97, soc_low=1.0)
    # The rows keep their former shape, so that a release before this one reads the record too.
    assert record.to_json()["capacity_points"] == [[0.4, 2.0, 1e-4, 1e-4, 0.97]]


def test_a_large_format_cell_identifies_its_growth_from_a_v2h_load() -> None:
    # The steps the tracker takes are C-rates of the cell: in amperes (0.02 A .. 2.5 A, a 5 Ah cell's
    # 0.004C .. 0.5C) this 160 Ah cell at 1p, 20 A per cell at 7 kW, took 1 673 steps of two hours of
    # this load, nearly all of them the sensor's noise, and read 1.08 +/- 0.48.
    profile = load_profile("lfp-prismatic")
    s = simulate(profile, duty(7200, seed=5, amplitude_a=25.0), soc0=0.6, growth=1.5)
    rng = np.random.default_rng(4)
    v = s.pack_v_v + rng.normal(0.0, 0.002 * profile.series, len(s.t_s))
    i = s.pack_i_a + rng.normal(0.0, 0.05, len(s.t_s))  # the sensor's noise: steps of 0.02 A at rest
    est = BatteryEstimator(profile, initial_soc=0.6, initial_soc_sigma=0.02)
    for j in range(len(s.t_s)):
        est.update(float(s.t_s[j]), float(v[j]), float(i[j]), 25.0)
    g = est.resistance.estimate
    assert g.growth == pytest.approx(1.5, abs=0.05)
    assert g.sigma < 0.05
