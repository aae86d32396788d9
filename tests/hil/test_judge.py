"""Judging recorded signals: each check kind on synthetic columns, passing and failing."""

from __future__ import annotations

import pytest

from hil import scenario
from hil.judge import judge


def columns(values: list[float], dt: float = 0.1, ref: list[float] | None = None) -> dict[str, list[float]]:
    t = [k * dt for k in range(len(values))]
    return {"t_s": t, "p_site_export_w": values, "house_load_w": ref or [0.0] * len(values)}


def check(**kw: object) -> scenario.Check:
    sc = scenario.parse({"name": "t", "duration_s": 100.0, "checks": [{"signal": "p_site_export_w", **kw}]})
    return sc.checks[0]


def test_bound_tolerates_allow_s_outside() -> None:
    cols = columns([0.0] * 10 + [500.0] * 5 + [0.0] * 10)  # 0.5 s above
    assert judge(check(kind="bound", max=50.0, allow_s=0.5), cols, 2.4).passed
    res = judge(check(kind="bound", max=50.0, allow_s=0.3), cols, 2.4)
    assert not res.passed
    assert res.measured["worst_value"] == 500.0
    assert res.measured["time_outside_s"] == pytest.approx(0.5)


def test_settle_needs_to_enter_in_time_and_stay() -> None:
    cols = columns([900.0] * 5 + [10.0] * 20)
    assert judge(check(kind="settle", from_s=0.0, within_s=0.6, max=50.0), cols, 2.4).passed
    assert not judge(check(kind="settle", from_s=0.0, within_s=0.3, max=50.0), cols, 2.4).passed
    relapse = columns([900.0] * 5 + [10.0] * 10 + [100.0] + [10.0] * 9)
    res = judge(check(kind="settle", from_s=0.0, within_s=1.0, max=50.0), relapse, 2.4)
    assert not res.passed
    assert "still outside at 1.50 s" in res.detail


def test_energy_integrates_in_watt_hours() -> None:
    cols = columns([3600.0] * 11, dt=1.0)  # 3600 W for 10 s = 10 Wh
    res = judge(check(kind="energy", max_wh=10.5), cols, 10.0)
    assert res.passed
    assert res.measured["energy_wh"] == pytest.approx(10.0)
    assert not judge(check(kind="energy", max_wh=9.5), cols, 10.0).passed


def test_excursions_are_judged_one_by_one() -> None:
    # two episodes: 0.3 s at 3600 W (0.3 Wh) and 1.0 s at 360 W (0.1 Wh)
    cols = columns([0.0] * 5 + [3600.0] * 3 + [0.0] * 5 + [360.0] * 10 + [0.0] * 5)
    res = judge(check(kind="excursion", above=20.0, max_s=1.5, max_wh=0.35), cols, 2.7)
    assert res.passed
    assert res.measured["episodes"] == 2
    assert res.measured["largest_wh"] == pytest.approx(0.3)
    assert res.measured["longest_s"] == pytest.approx(1.0)
    assert not judge(check(kind="excursion", above=20.0, max_s=0.5), cols, 2.7).passed
    assert not judge(check(kind="excursion", above=20.0, max_wh=0.2), cols, 2.7).passed


def test_tv_ratio_compares_with_the_reference() -> None:
    load = [0.0, 1000.0] * 10
    tracking = columns(list(load), ref=load)
    assert judge(check(kind="tv_ratio", reference="house_load_w", max=1.25), tracking, 1.9).measured[
        "tv_ratio"
    ] == pytest.approx(1.0)
    wobbly = columns([v + (100.0 if k % 2 else -100.0) for k, v in enumerate(load)], ref=load)
    res = judge(check(kind="tv_ratio", reference="house_load_w", max=1.25), wobbly, 1.9)
    assert res.measured["tv_ratio"] == pytest.approx(1.2)
    assert res.passed
    assert not judge(check(kind="tv_ratio", reference="house_load_w", max=1.1), wobbly, 1.9).passed


def test_std_and_mean() -> None:
    cols = columns([100.0, 104.0] * 10)
    assert judge(check(kind="std", max=2.5), cols, 2.0).measured["std"] == pytest.approx(2.0)
    assert not judge(check(kind="std", max=1.5), cols, 2.0).passed
    assert judge(check(kind="mean", min=101.0, max=103.0), cols, 1.9).passed


def test_a_signal_the_backend_did_not_record_fails_clearly() -> None:
    sc = scenario.parse(
        {"name": "t", "duration_s": 10.0, "checks": [{"kind": "mean", "signal": "ev_soc", "min": 0.5}]}
    )
    res = judge(sc.checks[0], columns([0.0] * 5), 10.0)
    assert not res.passed
    assert res.detail == "ev_soc was not recorded by this backend"
