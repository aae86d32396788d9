"""The dispatch input and the operating modes: validation, expiry, silence, schedules, fallbacks (pure,
times as inputs), and what the controllers make of each mode on replayed snapshots."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from drivers.capabilities import MeterReading, PowerStageRatings, PowerStageReading
from edge.daemon.battery import BatteryView
from edge.daemon.controllers import Controllers
from edge.daemon.dispatch import Basis, Dispatch, Dispatcher, DispatchError, SchedulePoint, parse, validate
from edge.daemon.snapshot import Command, Snapshot
from edge.settings import Settings
from tests.settings.conftest import settings_with

T0 = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
U0 = T0.timestamp()
RATINGS = PowerStageRatings(t_s=0.0, p_max_export_w=7400.0, p_max_charge_w=7400.0)
NOISE_W = (0.0, 7.0, -4.0, 3.0, -6.0)


def _d(**kw: object) -> Dispatch:
    fields: dict[str, object] = {"id": "d1", "start": T0, "expiry": T0 + timedelta(hours=1), "p_w": 3000.0}
    fields.update(kw)
    return Dispatch(**fields)  # type: ignore[arg-type]


def _dispatcher(**changes: object) -> Dispatcher:
    s = settings_with(**changes)
    return Dispatcher(s.operation, s.inverter)


# --- validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "field", "words"),
    [
        ({"p_w": 9000.0}, "p_w", "outside -7400 … 7400 W"),
        ({"p_w": math.nan}, "p_w", "outside"),
        ({"q_var": 5000.0}, "q_var", "outside -3256 … 3256 var"),
        ({"expiry": T0 - timedelta(minutes=1)}, "expiry", "not after start"),
        ({"start": T0 - timedelta(hours=2), "expiry": T0 - timedelta(hours=1)}, "expiry", "has passed"),
        ({"start": datetime(2026, 12, 4, 18, 0)}, "start", "no time zone"),
        ({"p_w": None, "mode": "schedule"}, "p_w", "give p_w or a schedule"),
        ({"start": datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))}, "start", "range of dates"),
        ({"expiry": T0 + timedelta(days=8)}, "expiry", "more than 7 days ahead"),
        ({"p_w": None, "mode": "v2g"}, "p_w", "only idle, v1g and v2h"),
        ({"mode": "v1g"}, "p_w", "mode v1g never discharges"),
        ({"mode": "v2h"}, "mode", "takes no set points"),
        ({"mode": "schedule"}, "mode", "needs a schedule"),
        (
            {"p_w": None, "schedule": [SchedulePoint(at=T0 + timedelta(hours=2), p_w=0.0)]},
            "schedule",
            "within [start, expiry)",
        ),
        (
            {
                "p_w": None,
                "schedule": [
                    SchedulePoint(at=T0 + timedelta(minutes=30), p_w=0.0),
                    SchedulePoint(at=T0 + timedelta(minutes=15), p_w=0.0),
                ],
            },
            "schedule[1].at",
            "increasing time order",
        ),
    ],
)
def test_a_bad_dispatch_is_refused_naming_the_field(kw: dict[str, object], field: str, words: str) -> None:
    d = _dispatcher()
    with pytest.raises(DispatchError) as err:
        d.offer(_d(**kw), "aggregator", U0, 0.0)
    assert err.value.field == field
    assert words in str(err.value)
    assert d.current("aggregator") is None  # nothing taken


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"{not json", "not JSON"),
        (
            b'{"id": "x", "start": "2026-12-04T18:00:00Z", "expiry": "2026-12-04T19:00:00Z", "p_w": "3 kW"}',
            "p_w",
        ),
        (b'{"id": "x y", "start": "2026-12-04T18:00:00Z", "expiry": "2026-12-04T19:00:00Z", "p_w": 1}', "id"),
        (b'{"id": "x", "start": "2026-12-04T18:00:00Z", "expiry": "2026-12-04T19:00:00Z", "pw": 1}', "pw"),
    ],
)
def test_a_malformed_payload_is_refused_with_a_clear_message(payload: bytes, words: str) -> None:
    with pytest.raises(DispatchError) as err:
        parse(payload)
    assert words in str(err.value)


# --- what is followed --------------------------------------------------------------------------------


def test_a_dispatch_is_followed_from_its_start_to_its_expiry_never_after() -> None:
    d = _dispatcher(operation__mode="v2g")
    d.offer(_d(start=T0 + timedelta(minutes=5), expiry=T0 + timedelta(minutes=20)), "local", U0, 0.0)
    before = d.basis(U0 + 60, 60)
    assert before.mode == "v1g" and math.isnan(before.p_w)  # the fallback charges
    assert "starts at" in before.source
    during = d.basis(U0 + 600, 600)
    assert (during.mode, during.p_w, during.source) == ("v2g", 3000.0, "local dispatch d1")
    after = d.basis(U0 + 1200, 1200)
    assert after.p_w != 3000.0 and "expired" in after.source


def test_an_aggregator_silent_too_long_is_not_followed_and_a_heartbeat_revives_it() -> None:
    d = _dispatcher(operation__mode="v2g", operation__dispatch_timeout_s=60.0)
    d.offer(_d(), "aggregator", U0, 100.0)
    assert d.basis(U0 + 50, 150.0).p_w == 3000.0
    silent = d.basis(U0 + 61, 161.0)
    assert math.isnan(silent.p_w) and "aggregator silent for 61 s" in silent.source
    assert silent.mode == "v1g"  # default fallback: no discharge, charge toward the target
    d.heard(170.0)
    assert d.basis(U0 + 70, 171.0).p_w == 3000.0


@pytest.mark.parametrize(
    ("fallback", "mode", "p_nan"), [("charge", "v1g", True), ("idle", "idle", False), ("v2h", "v2h", True)]
)
def test_fallback_policies(fallback: str, mode: str, p_nan: bool) -> None:
    d = _dispatcher(operation__mode="v2g", operation__fallback=fallback)
    b = d.basis(U0, 0.0)
    assert b.mode == mode and math.isnan(b.p_w) == p_nan and b.source.startswith(f"fallback {fallback}")


def test_a_local_dispatch_wins_over_the_aggregator() -> None:
    d = _dispatcher(operation__mode="v2g")
    d.offer(_d(id="agg", p_w=5000.0), "aggregator", U0, 0.0)
    d.offer(_d(id="tech", p_w=-2000.0), "local", U0, 0.0)
    assert d.basis(U0 + 1, 1.0).source == "local dispatch tech"
    d.withdraw("local")
    assert d.basis(U0 + 1, 1.0).p_w == 5000.0


def test_a_schedule_steps_through_its_points_and_switches_the_mode() -> None:
    points = [
        SchedulePoint(at=T0, p_w=-7000.0),
        SchedulePoint(at=T0 + timedelta(minutes=15), p_w=2000.0, q_var=500.0),
        SchedulePoint(at=T0 + timedelta(minutes=30), p_w=0.0),
    ]
    d = _dispatcher(operation__mode="v2h")
    d.offer(_d(p_w=None, schedule=points, mode="schedule"), "local", U0, 0.0)
    seen = [
        (b.mode, b.p_w, b.q_var) for b in (d.basis(U0 + m * 60, m * 60.0) for m in (0, 14, 15, 29, 30, 59))
    ]
    assert seen == [
        ("schedule", -7000.0, 0.0),
        ("schedule", -7000.0, 0.0),
        ("schedule", 2000.0, 500.0),
        ("schedule", 2000.0, 500.0),
        ("schedule", 0.0, 0.0),
        ("schedule", 0.0, 0.0),
    ]
    assert d.basis(U0 + 3600, 3600.0).mode == "v2h"  # expired: the configured mode again


def test_a_dispatch_without_a_mode_is_for_the_mode_in_force() -> None:
    d = _dispatcher(operation__mode="v1g")
    with pytest.raises(DispatchError, match="v1g never discharges"):
        d.offer(_d(p_w=3000.0), "local", U0, 0.0)
    with pytest.raises(DispatchError, match="v2h takes no set points"):
        _dispatcher().offer(_d(), "local", U0, 0.0)
    taken = d.offer(_d(p_w=-3000.0), "local", U0, 0.0)
    assert taken.mode == "v1g"
    d.operation = settings_with(operation__mode="v2g").operation  # a reload
    assert d.basis(U0, 0.0).mode == "v1g"  # the request keeps the mode it was made for


def test_v1g_never_discharges_and_idle_asks_nothing() -> None:
    d = _dispatcher(operation__mode="v1g")
    d.offer(_d(p_w=-4000.0), "local", U0, 0.0)
    assert d.basis(U0, 0.0).p_w == -4000.0
    d.offer(_d(p_w=2000.0, mode="v2g"), "local", U0, 0.0)  # switches to v2g: discharge allowed
    assert d.basis(U0, 0.0).p_w == 2000.0
    idle = _dispatcher(operation__mode="idle").basis(U0, 0.0)
    assert (idle.mode, idle.p_w) == ("idle", 0.0)


def test_a_dispatch_round_trips_as_json() -> None:
    s = settings_with()
    assert s.inverter is not None
    d = _d(p_w=None, schedule=[SchedulePoint(at=T0, p_w=-1000.0)], mode="schedule")
    back = parse(msgspec.json.encode(d))
    validate(back, s.inverter, U0)
    assert back == d


# --- the controllers on each mode --------------------------------------------------------------------


def _trace(
    settings: Settings,
    basis: Basis,
    *,
    house_w: float = 2000.0,
    seconds: float = 20.0,
    soc: float = 0.6,
    battery: BatteryView | None = None,
    p_max_w: float = math.inf,
    ev_reports_soc: bool = True,
    f_step: tuple[float, float] = (math.inf, 60.0),
) -> list[tuple[float, Command]]:
    """Replay a plant-free loop: the stage delivers the command, the meter sees house - P (with a
    few watts of noise, as a real meter: a value that never moves is a frozen meter); the grid is at
    60 Hz until ``f_step[0]`` s, then at ``f_step[1]`` Hz."""
    c = Controllers(settings)
    p = 0.0
    out = []
    for k in range(round(seconds / 0.1)):
        t = k * 0.1
        f = 60.0 if t < f_step[0] else f_step[1]
        stage = PowerStageReading(t_s=t, p_w=p, v_ac_v=240.0, f_hz=f, ev_soc=soc if ev_reports_soc else None)
        meter = MeterReading(t_s=t, p_site_import_w=house_w - p + NOISE_W[k % 5], v_l1_v=240.0, f_hz=f)
        snap = Snapshot(
            t, t, meter, stage, RATINGS, basis, battery or BatteryView(soc_est=soc), p_max_w=p_max_w
        )
        cmd = c.step(snap)
        p = cmd.p_w
        out.append((t, cmd))
    return out


def _run(settings: Settings, basis: Basis, **replay: Any) -> Command:
    """The last command of a replay (``_trace``)."""
    return _trace(settings, basis, **replay)[-1][1]


def test_v2g_dispatch_at_a_non_export_site_is_bounded_by_the_cap_and_says_so() -> None:
    cmd = _run(settings_with(operation__mode="v2g"), Basis("v2g", 5000.0, 0.0, "test"))
    assert 1700.0 < cmd.p_w < 2000.0  # the house load less the margin, not 5 kW
    assert cmd.binding[0] == "export_cap"


def test_v2g_dispatch_exports_up_to_the_sites_cap() -> None:
    s = settings_with(operation__mode="v2g", site__non_export=False, site__export_cap_w=2000.0)
    cmd = _run(s, Basis("v2g", 7000.0, 0.0, "test"), house_w=1000.0, seconds=40.0)
    # import = 1000 - P >= -2000 + margin: P <= 2900 W
    assert 2600.0 < cmd.p_w <= 2900.0 and "export_cap" in cmd.binding
    free = settings_with(operation__mode="v2g", site__non_export=False)
    assert _run(free, Basis("v2g", 4000.0, 0.0, "test"), house_w=1000.0, seconds=60.0).p_w == pytest.approx(
        4000.0
    )


def test_dispatch_is_limited_by_the_reserve_and_the_sop() -> None:
    s = settings_with(operation__mode="v2g", site__non_export=False)
    low = _run(s, Basis("v2g", 4000.0, 0.0, "test"), soc=0.25, seconds=60.0)
    assert low.p_w == 0.0 and any("soc" in b for b in low.binding)
    sop = _run(s, Basis("v2g", 4000.0, 0.0, "test"), battery=BatteryView(0.6, 1500.0, 7000.0), seconds=60.0)
    assert sop.p_w == pytest.approx(1500.0) and any("sop" in b for b in sop.binding)


def test_v1g_without_dispatch_charges_toward_the_target_then_stops() -> None:
    s = settings_with(operation__mode="v1g", owner__departure_soc=0.8)
    below = _run(s, Basis("v1g", math.nan, 0.0, "test"), soc=0.5, seconds=120.0)
    assert below.p_w == pytest.approx(-7400.0)
    above = _run(s, Basis("v1g", math.nan, 0.0, "test"), soc=0.85, seconds=60.0)  # departure_soc 0.8
    assert above.p_w == 0.0


def test_the_estimated_soc_counts_when_the_ev_reports_none() -> None:
    s = settings_with(operation__mode="v1g", owner__departure_soc=0.8)
    above = _run(s, Basis("v1g", math.nan, 0.0, "test"), soc=0.85, seconds=30.0, ev_reports_soc=False)
    assert above.p_w == 0.0  # the estimate says 85 %: the target is met


def test_a_pv_surplus_never_cuts_a_charge_in_v2h() -> None:
    """In V2H the export cap's bound goes negative when PV exports; it bounds discharge only."""
    cmd = _run(
        settings_with(), Basis("v2h", math.nan, 0.0, "test"), house_w=-4000.0, p_max_w=-3000.0, seconds=60.0
    )
    assert cmd.p_w == pytest.approx(-3000.0)
    assert cmd.binding[0] == "departure" and "export_cap" not in cmd.binding


def test_the_departure_bound_cuts_the_basis_and_is_named() -> None:
    s = settings_with(operation__mode="v2g", site__non_export=False)
    cmd = _run(s, Basis("v2g", 4000.0, 0.0, "test"), p_max_w=-3000.0, seconds=60.0)
    assert cmd.p_w == pytest.approx(-3000.0) and cmd.binding[0] == "departure"


def test_idle_holds_zero_but_droop_still_acts() -> None:
    trace = _trace(
        settings_with(operation__mode="idle"), Basis("idle", 0.0, 0.0, "test"), house_w=500.0, seconds=10.0,
        f_step=(2.0, 60.5),
    )  # fmt: skip
    assert all(cmd.p_w == 0.0 for t, cmd in trace if t < 2.0)
    assert trace[-1][1].p_w < -500.0  # over-frequency from idle: the EV absorbs (1547 allows droop from idle)


def test_v2h_droop_starts_from_the_delivered_power() -> None:
    """Over-frequency while the EV serves a 2 kW house: the response starts in the next cycle from
    the ~1.9 kW delivered, not from the full rating the V2H request stands for."""
    s = settings_with()
    replay = _trace(s, Basis("v2h", math.nan, 0.0, "test"), seconds=30.0, f_step=(20.0, 60.3))
    trace = [(t, cmd.p_w) for t, cmd in replay]
    before = next(p for t, p in trace if t >= 19.9)
    first = next(p for t, p in trace if t >= 20.05)
    assert first < before - 20.0, "no response in the first cycle after the step"
    droop = s.grid.freq_droop if s.grid else None
    assert droop is not None
    target = before - (60.3 - (60.0 + droop.db_of_hz)) / (60.0 * droop.k_of) * 7400.0
    t90 = next(t for t, p in trace if t >= 20.0 and p <= before - 0.9 * (before - target)) - 20.0
    assert t90 <= droop.olrt_s + 0.15, f"t90 {t90:.2f} s for an OLRT of {droop.olrt_s} s"


def test_under_frequency_reduces_charging_even_where_the_cap_wins() -> None:
    """At a non-export site with cap_vs_droop = cap_wins, under-frequency may not push export past the
    cap, but it must still cut charging: that imports less and exports nothing."""
    s = settings_with(operation__mode="v1g")
    trace = _trace(
        s, Basis("v1g", -5000.0, 0.0, "test"), house_w=500.0, seconds=40.0, soc=0.5, f_step=(30.0, 59.7)
    )
    assert trace[299][1].p_w == pytest.approx(-5000.0)
    p = trace[-1][1].p_w
    droop = s.grid.freq_droop if s.grid else None
    assert droop is not None
    expected_w = (60.0 - droop.db_uf_hz - 59.7) / (60.0 * droop.k_uf) * 7400.0
    assert p == pytest.approx(-5000.0 + expected_w, abs=0.05 * expected_w), "charging not cut by the droop"
    assert p <= 500.0  # and never past the cap: at most the house load
