"""Planner inputs: time-of-use tables in local time (across a DST change), series on the plan's grid
and over the tables, the departure and its margin on the grid, inputs refused naming the field, and
the default forecaster learning the house's day from the meter, and a departure within the current
step held at once."""

from __future__ import annotations

import math
from datetime import UTC, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import numpy as np
import pytest

from edge.planner.envelope import envelope
from edge.planner.forecast import SlotForecaster
from edge.planner.inputs import PlanInputs, Series, Session, build, decode, load_file, on_grid, tou
from edge.planner.problem import PlanInputError, Problem
from edge.planner.solve import solve
from edge.settings.model import EvOwner, Planner, Settings, Site, TouRate

BERLIN = ZoneInfo("Europe/Berlin")
ROWS = [
    TouRate(start=time(7, 0), price_per_kwh=0.30),
    TouRate(start=time(17, 0), price_per_kwh=0.45),
    TouRate(start=time(21, 0), price_per_kwh=0.30),
]


def test_time_of_use_wraps_and_follows_local_time_across_dst() -> None:
    # 2026-03-29: Berlin goes from UTC+1 to UTC+2 at 01:00 UTC.
    t0 = datetime(2026, 3, 28, 23, 0, tzinfo=UTC).timestamp()  # 00:00 local
    prices = tou(ROWS, t0, 900.0, 96, BERLIN)
    assert prices[0] == 0.30  # before 07:00 the last row (21:00) runs on
    # 07:00 local is 05:00 UTC after the change: step (05:00 - 23:00) / 15 min = 24.
    assert prices[23] == 0.30
    assert prices[24] == 0.30
    # 17:00 local = 15:00 UTC = step 64.
    assert prices[63] == 0.30
    assert prices[64] == 0.45
    assert prices[80] == 0.30  # 21:00 local = 19:00 UTC


def test_series_sit_on_the_grid_and_over_the_tables() -> None:
    t0 = datetime(2026, 6, 1, 0, 0, tzinfo=UTC).timestamp()
    s = Series(start=datetime(2026, 6, 1, 1, 0, tzinfo=UTC), step_s=3600, values=[0.1, 0.2])
    v = on_grid(s, t0, 900.0, 16)
    assert np.isnan(v[:4]).all()
    assert list(v[4:12]) == [0.1] * 4 + [0.2] * 4
    assert np.isnan(v[12:]).all()


def _settings(**planner: object) -> Settings:
    return Settings(
        owner=EvOwner(min_soc=0.2, departure_soc=0.8, departure_time=time(7, 30), time_zone="Europe/Berlin"),
        site=Site(non_export=False, export_cap_w=4000.0),
        planner=Planner(enabled=True, import_tariff=ROWS, **planner),  # type: ignore[arg-type]
    )


def test_build_puts_prices_departure_and_margin_on_the_grid() -> None:
    now = datetime(2026, 6, 1, 18, 7, tzinfo=UTC).timestamp()  # 20:07 local
    inputs = PlanInputs(
        import_price=Series(start=datetime(2026, 6, 1, 22, 0, tzinfo=UTC), step_s=3600, values=[0.05, 0.06]),
        load_w=Series(start=datetime(2026, 6, 1, 18, 0, tzinfo=UTC), step_s=900, values=[800.0] * 96),
        pv_w=Series(start=datetime(2026, 6, 1, 18, 0, tzinfo=UTC), step_s=900, values=[100.0] * 96),
    )
    departure = datetime(2026, 6, 2, 7, 30, tzinfo=BERLIN)
    pb = build(
        _settings(departure_margin_s=1800.0),
        Session(soc=0.4, e_per_soc_wh=50_000.0, p_charge_max_w=7000.0, p_discharge_max_w=7000.0),
        inputs,
        now_unix_s=now,
        zone=BERLIN,
        departure=departure,
        base_forecast_w=np.full(96, 300.0),
    )
    assert pb.t0_unix_s == datetime(2026, 6, 1, 18, 0, tzinfo=UTC).timestamp()
    assert pb.import_price[0] == 0.45  # 20:00 local: the 17:00 row, until 21:00
    assert pb.import_price[4] == 0.30  # 21:00 local
    assert pb.import_price[16] == 0.05  # the series from 22:00 UTC
    assert pb.import_price[20] == 0.06
    assert pb.import_price[24] == 0.30  # past the series: the table again
    assert pb.departure_index == 46  # 05:30 UTC is 11.5 h after 18:00
    assert pb.margin_steps == 2
    assert pb.base_import_w[0] == 700.0
    assert pb.export_cap_w == 4000.0
    assert pb.min_soc == 0.2


def test_build_without_a_departure_in_the_horizon() -> None:
    now = datetime(2026, 6, 1, 18, 0, tzinfo=UTC).timestamp()
    pb = build(
        _settings(horizon_h=6.0),
        Session(soc=0.4, e_per_soc_wh=50_000.0, p_charge_max_w=7000.0, p_discharge_max_w=7000.0),
        PlanInputs(),
        now_unix_s=now,
        zone=BERLIN,
        departure=datetime(2026, 6, 2, 7, 30, tzinfo=BERLIN),
        base_forecast_w=np.zeros(24),
    )
    assert pb.n == 24
    assert pb.departure_index is None
    assert pb.departure_soc is None
    # 05:30 UTC is 22 steps after the horizon's end: full power restores 0.94 · 7 kW · 5.5 h by then.
    assert pb.end_soc == pytest.approx(0.8 - 0.94 * 7000.0 * 5.5 / 50_000.0)


def test_bad_inputs_are_refused_naming_the_field(tmp_path: Path) -> None:
    good = {"start": "2026-06-01T00:00:00Z", "step_s": 900, "values": [0.1, 0.2]}
    assert decode(msgspec.json.encode({"import_price": good})).import_price is not None
    with pytest.raises(PlanInputError, match=r"import_price.values\[1\]"):
        decode(msgspec.json.encode({"import_price": {**good, "values": [0.1, 300.0]}}))
    with pytest.raises(PlanInputError, match=r"load_w.start"):
        decode(msgspec.json.encode({"load_w": {**good, "start": "2026-06-01T00:00:00"}}))
    with pytest.raises(PlanInputError, match="step_s"):
        decode(msgspec.json.encode({"pv_w": {**good, "step_s": 7}}))
    with pytest.raises(PlanInputError, match="unknown field"):
        decode(b'{"price": 1}')
    path = tmp_path / "inputs.json"
    assert load_file(path) == PlanInputs()  # none yet
    path.write_text("{not json")
    with pytest.raises(PlanInputError, match=str(path)):
        load_file(path)


def test_later_inputs_lie_over_earlier_ones() -> None:
    a = PlanInputs(
        demand_peak_so_far_w=5000.0,
        load_w=Series(start=datetime(2026, 1, 1, tzinfo=UTC), step_s=900, values=[1.0]),
    )
    b = PlanInputs(demand_peak_so_far_w=6000.0)
    merged = b.over(a)
    assert merged.demand_peak_so_far_w == 6000.0
    assert merged.load_w == a.load_w


def test_the_forecaster_learns_the_days_shape() -> None:
    f = SlotForecaster(BERLIN, slot_s=900.0, weight=0.5)
    day0 = datetime(2026, 6, 1, 0, 0, tzinfo=BERLIN).timestamp()
    for day in range(3):
        for k in range(96 * 15):  # one reading a minute
            t = day0 + day * 86_400.0 + k * 60.0
            hour = (k * 60.0 / 3600.0) % 24
            f.observe(t, 2000.0 if 18 <= hour < 21 else 400.0 + 100.0 * day)
    out = f.forecast(day0 + 3 * 86_400.0, 900.0, 96)
    assert out[18 * 4] == pytest.approx(2000.0)
    # 400, then 500, then 600 with weight 0.5: 400 → 450 → 525.
    assert out[4] == pytest.approx(525.0)
    assert math.isfinite(out[-1])


def test_the_forecaster_without_history_forecasts_zero() -> None:
    assert np.all(SlotForecaster(BERLIN).forecast(0.0, 900.0, 8) == 0.0)


def _leaving(soc: float, export_price: float) -> Problem:
    """A plan at 18:07 UTC for an owner leaving at 18:12 UTC: within the first step (18:00-18:15)."""
    now = datetime(2026, 6, 1, 18, 7, tzinfo=UTC).timestamp()
    inputs = PlanInputs(
        export_price=Series(start=datetime(2026, 6, 1, 18, 0, tzinfo=UTC), step_s=3600, values=[export_price])
    )
    return build(
        _settings(departure_margin_s=1800.0),
        Session(soc=soc, e_per_soc_wh=50_000.0, p_charge_max_w=7000.0, p_discharge_max_w=7000.0),
        inputs,
        now_unix_s=now,
        zone=BERLIN,
        departure=datetime(2026, 6, 1, 18, 12, tzinfo=UTC),
        base_forecast_w=np.full(96, 300.0),
    )


def test_a_departure_within_this_step_holds_the_target_now() -> None:
    # Below the target: the rest at full power at once, no discharge, and the plan ends there.
    pb = _leaving(0.5, export_price=0.08)
    assert (pb.departure_index, pb.departure_soc, pb.margin_steps, pb.leaves_now) == (1, 0.8, 0, True)
    assert any("within this step" in note for note in pb.notes)
    plan = solve(pb)
    assert plan.p_w[0] == pytest.approx(-7000.0)
    assert np.all(plan.p_w[1:] == 0.0)
    assert plan.target_reachable is False  # 7 kW for 5 min cannot add 30 %: said so
    env = envelope(pb)
    assert env.p_min_w[0] == pytest.approx(-7000.0) and env.p_max_w[0] == pytest.approx(-7000.0)
    assert np.all(env.p_max_w[1:] == 0.0)
    # A few % short of the target: still full power (a step outlasts the departure), not spread thin.
    plan = solve(_leaving(0.79, export_price=0.08))
    assert plan.p_w[0] == pytest.approx(-7000.0)
    # Above it, with export paying nearly the 0.45 import: no discharge in the minutes before leaving.
    pb = _leaving(0.9, export_price=0.44)
    plan = solve(pb)
    assert plan.p_w[0] <= 0.0
    assert envelope(pb).p_max_w[0] == 0.0
