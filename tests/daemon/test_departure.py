"""The departure planner: departure instants across midnight and DST, the charge model (taper,
efficiency), the reserve (enter-service trip), hysteresis, unknown inputs, and simulated evenings on
an injected clock where an aggregator asks for full discharge until departure."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import msgspec
import pytest

from edge.daemon.departure import DepartureLimit, DeparturePlanner, trip_cost_s
from edge.settings import load_default
from edge.settings.model import EnterService, EvOwner, Settings

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
# The bench profile's pack (nmc-lgm50 96s43p, 5 Ah cells, mean OCV 3.72 V): 77 kWh.
E_WH = 76_860.0
P_RATED_W = 7400.0
TRIP_S = 450.0  # IEEE 1547 defaults: 300 s delay and half of the 300 s ramp


def _planner(target: float | None = 0.8, at: time | None = time(7, 30), **tuning: float) -> DeparturePlanner:
    args: dict[str, float] = {
        "p_rated_w": P_RATED_W,
        "p_rated_charge_w": P_RATED_W,
        "charge_efficiency": 0.94,
        "discharge_efficiency": 0.95,
        "trip_s": TRIP_S,
    }
    args.update(tuning)
    return DeparturePlanner(EvOwner(min_soc=0.3, departure_soc=target, departure_time=at), **args)


def _before(dep: datetime, seconds: float) -> datetime:
    """The local time ``seconds`` of real time before ``dep``."""
    assert dep.tzinfo is not None
    return (dep.astimezone(UTC) - timedelta(seconds=seconds)).astimezone(dep.tzinfo)


def _plan(p: DeparturePlanner, now: datetime, soc: float | None, p_chg: float = P_RATED_W) -> DepartureLimit:
    return p.plan(now, 0.0, soc, E_WH, p_chg)


DEPARTURE = datetime(2025, 1, 16, 7, 30, tzinfo=BERLIN)


def _at_slack(
    slack_s: float, soc: float, p_chg: float = P_RATED_W, target: float = 0.8, **tuning: float
) -> datetime:
    """The time before DEPARTURE at which a planner with ``tuning`` sees ``slack_s`` of discharge slack
    (at a fixed SoC and charge power the slack falls one for one with time)."""
    probe = _before(DEPARTURE, 12 * 3600.0)
    slack0 = _plan(_planner(target, time(7, 30), **tuning), probe, soc, p_chg).t_slack_s
    return probe + timedelta(seconds=slack0 - slack_s)


# -- when the departure is ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "now", "t_left_h"),
    [
        (time(0, 10), datetime(2025, 1, 15, 23, 50, tzinfo=BERLIN), 20 / 60),
        (time(0, 10), datetime(2025, 1, 16, 0, 5, tzinfo=BERLIN), 5 / 60),
        (time(7, 30), datetime(2025, 1, 15, 17, 0, tzinfo=BERLIN), 14.5),
        (time(7, 30), datetime(2025, 1, 15, 8, 31, tzinfo=BERLIN), 23.0 - 1 / 60),
        # The nights the clocks change: real hours, not wall-clock hours.
        (time(7, 30), datetime(2025, 3, 29, 17, 0, tzinfo=BERLIN), 13.5),
        (time(7, 30), datetime(2025, 10, 25, 17, 0, tzinfo=BERLIN), 15.5),
        (time(7, 30), datetime(2025, 3, 8, 17, 0, tzinfo=NEW_YORK), 13.5),
        (time(7, 30), datetime(2025, 11, 1, 17, 0, tzinfo=NEW_YORK), 15.5),
        # 02:30 does not exist on 30 March in Berlin: it counts as 03:30 CEST (00:00 UTC + 1.5 h).
        (time(2, 30), datetime(2025, 3, 30, 1, 0, tzinfo=BERLIN), 1.5),
        # 02:30 happens twice on 26 October: the first (CEST) one is the departure.
        (time(2, 30), datetime(2025, 10, 26, 1, 0, tzinfo=BERLIN), 1.5),
    ],
)
def test_time_left_is_real_time_to_the_next_departure(at: time, now: datetime, t_left_h: float) -> None:
    lim = _plan(_planner(at=at), now, 0.9)
    assert lim.t_left_s == pytest.approx(t_left_h * 3600.0, abs=1e-6)
    assert lim.departure is not None
    assert lim.departure.astimezone(UTC) - now.astimezone(UTC) == timedelta(hours=t_left_h)


def test_a_skipped_departure_time_is_reported_as_the_wall_time_it_becomes() -> None:
    lim = _plan(_planner(at=time(2, 30)), datetime(2025, 3, 30, 1, 0, tzinfo=BERLIN), 0.9)
    assert lim.departure is not None
    assert (lim.departure.hour, lim.departure.minute, lim.departure.utcoffset()) == (
        3,
        30,
        timedelta(hours=2),
    )


def test_after_the_departure_time_discharge_is_held_then_the_next_day_is_planned() -> None:
    p = _planner(late_hold_s=3600.0)
    late = _plan(p, datetime(2025, 1, 15, 7, 40, tzinfo=BERLIN), 0.9)
    assert (late.state, late.p_max_w) == ("departure_passed", 0.0)
    assert late.reason is not None
    assert "07:30 passed 10 min ago" in late.reason
    assert "08:30" in late.reason
    # The second occurrence of 02:30 on the autumn change night is 40 min after the departure.
    repeated = _plan(_planner(at=time(2, 30)), datetime(2025, 10, 26, 2, 10, fold=1, tzinfo=BERLIN), 0.9)
    assert repeated.state == "departure_passed"
    assert repeated.reason is not None
    assert "40 min ago" in repeated.reason
    later = _plan(p, datetime(2025, 1, 15, 8, 31, tzinfo=BERLIN), 0.9)
    assert later.state == "free"
    assert later.departure == datetime(2025, 1, 16, 7, 30, tzinfo=BERLIN)


def test_times_without_a_zone_are_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        _plan(_planner(), datetime(2025, 1, 15, 17, 0), 0.5)
    with pytest.raises(ValueError, match="without a UTC offset"):
        _planner(at=time(7, 30, tzinfo=UTC))
    with pytest.raises(ValueError, match=r"taper_soc = 1\.0 outside"):
        _planner(taper_soc=1.0)


# -- what is not known ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("soc", "says"), [(None, "SoC unknown"), (math.nan, "SoC unknown"), (1.3, "1.3 outside")]
)
def test_an_unknown_soc_with_a_departure_stops_discharge_and_says_so(soc: float | None, says: str) -> None:
    lim = _plan(_planner(), datetime(2025, 1, 15, 17, 0, tzinfo=BERLIN), soc)
    assert (lim.state, lim.p_max_w) == ("unknown_soc", 0.0)
    assert lim.reason is not None
    assert says in lim.reason
    assert "80 % by 07:30" in lim.reason


@pytest.mark.parametrize("e_wh", [None, math.nan, 0.0, -5.0, math.inf])
def test_an_unknown_pack_energy_stops_discharge(e_wh: float | None) -> None:
    lim = _planner().plan(datetime(2025, 1, 15, 17, 0, tzinfo=BERLIN), 0.0, 0.5, e_wh, P_RATED_W)
    assert (lim.state, lim.p_max_w) == ("unknown_capacity", 0.0)


def test_without_a_departure_discharge_is_free() -> None:
    now = datetime(2025, 1, 15, 17, 0, tzinfo=BERLIN)
    lim = _plan(_planner(target=None, at=None), now, None)
    assert (lim.state, lim.p_max_w, lim.reason) == ("no_departure", math.inf, None)
    half = _plan(_planner(target=None), now, 0.5)
    assert (half.state, half.p_max_w) == ("no_departure", math.inf)
    assert half.reason == "owner.departure_time is set without the other: no departure planned"


# -- the charge model -----------------------------------------------------------------------------------


def _integrate_s(p: DeparturePlanner, soc0: float, soc1: float, p_ac_w: float, dt_s: float = 1.0) -> float:
    """Charge time by stepping the taper as stated: linear from 1 at taper_soc to the end fraction at 1."""

    def rel(s: float) -> float:
        if s <= p.taper_soc:
            return 1.0
        return 1.0 + (p.taper_end_fraction - 1.0) * (s - p.taper_soc) / (1.0 - p.taper_soc)

    s, t = soc0, 0.0
    while s < soc1:
        s += p_ac_w * rel(s) / rel(soc0) * p.charge_efficiency * dt_s / (E_WH * 3600.0)
        t += dt_s
    return t


@pytest.mark.parametrize(("soc0", "soc1"), [(0.3, 0.7), (0.5, 0.95), (0.85, 1.0), (0.9, 0.92)])
def test_charge_time_matches_the_stepped_taper_and_inverts(soc0: float, soc1: float) -> None:
    p = _planner()
    t = p.charge_time_s(soc0, soc1, E_WH, 5000.0)
    assert t == pytest.approx(_integrate_s(p, soc0, soc1, 5000.0), rel=1e-3)
    assert p.soc_after_s(soc0, t, E_WH, 5000.0) == pytest.approx(soc1, abs=1e-9)


def test_the_taper_makes_the_difference() -> None:
    tapered, flat = _planner(0.95), _planner(0.95, taper_end_fraction=1.0)
    t_tapered = tapered.charge_time_s(0.75, 0.95, E_WH, P_RATED_W)
    t_flat = flat.charge_time_s(0.75, 0.95, E_WH, P_RATED_W)
    assert t_flat == pytest.approx(0.2 * E_WH * 3600.0 / (0.94 * P_RATED_W))
    assert t_tapered > 1.3 * t_flat  # 0.8 to 0.95 at 100 % falling to 44 % of the power
    # Just past where discharge must stop for the tapered charge: the flat model would discharge.
    now = _at_slack(-1.0, 0.75, target=0.95)
    assert _plan(tapered, now, 0.75).state == "no_discharge"
    flat_lim = _plan(flat, now, 0.75)
    assert flat_lim.state == "free"
    assert flat_lim.t_slack_s > 0.9 * (t_tapered - t_flat)


def test_the_charge_efficiency_makes_the_difference_and_the_discharge_one_does_not() -> None:
    lossy, lossless = _planner(), _planner(charge_efficiency=1.0)
    t_lossy = lossy.charge_time_s(0.4, 0.8, E_WH, P_RATED_W)
    assert t_lossy == pytest.approx(lossless.charge_time_s(0.4, 0.8, E_WH, P_RATED_W) / 0.94)
    assert _planner(discharge_efficiency=0.5).charge_time_s(0.4, 0.8, E_WH, P_RATED_W) == t_lossy
    now = _at_slack(-1.0, 0.4)
    lim = _plan(lossy, now, 0.4)
    assert lim.state == "no_discharge"
    assert lim.e_needed_wh == pytest.approx(0.4 * E_WH / 0.94)
    assert _plan(lossless, now, 0.4).state == "free"


def test_the_reserve_holds_one_enter_service_trip() -> None:
    assert trip_cost_s(_enter_service(delay_s=300.0, ramp_s=300.0)) == 450.0
    assert trip_cost_s(_enter_service(delay_s=60.0, ramp_s=600.0, randomized_delay_s=200.0)) == 260.0
    with_trip, without = _planner(trip_s=450.0), _planner(trip_s=0.0)
    t = with_trip.charge_time_s(0.5, 0.8, E_WH, P_RATED_W)
    assert with_trip.reserve_s(t) - without.reserve_s(t) == 450.0
    now = _before(datetime(2025, 1, 16, 7, 30, tzinfo=BERLIN), t + without.reserve_s(t) + 900.0)
    assert _plan(with_trip, now, 0.5).state == "no_discharge"
    assert _plan(without, now, 0.5).state == "free"


def _enter_service(delay_s: float, ramp_s: float, randomized_delay_s: float = 0.0) -> EnterService:
    return EnterService(
        v_low_pu=0.917,
        v_high_pu=1.05,
        f_low_hz=59.5,
        f_high_hz=60.1,
        delay_s=delay_s,
        ramp_s=ramp_s,
        randomized_delay_s=randomized_delay_s,
    )


# -- the states ----------------------------------------------------------------------------------------


def test_hysteresis_keeps_the_limit_from_chattering() -> None:
    # A slow site: 10 min of look-ahead leave a band between stopping discharge and having to charge.
    p = _planner(hysteresis_s=600.0, lookahead_s=600.0)
    assert _plan(p, _at_slack(3600.0, 0.5, 7000.0, lookahead_s=600.0), 0.5, 7000.0).state == "free"
    # At the boundary the charge power jitters by 1 %: the slack swings by about +-120 s around 0.
    near = _at_slack(0.0, 0.5, 7000.0, lookahead_s=600.0)
    limits = [_plan(p, near, 0.5, 7000.0 * (0.99 if k % 2 else 1.01)) for k in range(40)]
    assert min(x.t_slack_s for x in limits) < -100.0
    assert 100.0 < max(x.t_slack_s for x in limits) < 600.0
    states = [s for s, _ in itertools.groupby(x.state for x in limits)]
    assert states == ["free", "no_discharge"]
    # Discharge is allowed again only with the hysteresis to spare.
    assert _plan(p, _at_slack(550.0, 0.5, 7000.0, lookahead_s=600.0), 0.5, 7000.0).state == "no_discharge"
    again = _plan(p, _at_slack(650.0, 0.5, 7000.0, lookahead_s=600.0), 0.5, 7000.0)
    assert again.state == "free"
    assert again.t_slack_s == pytest.approx(650.0)


def test_a_new_planner_needs_the_hysteresis_to_allow_discharge() -> None:
    lim = _plan(_planner(), _at_slack(300.0, 0.5), 0.5)
    assert lim.t_slack_s == pytest.approx(300.0)
    assert lim.state == "no_discharge"


def test_charging_starts_when_the_reserve_would_be_eaten_and_goes_on_to_the_target() -> None:
    p = _planner()
    t = p.charge_time_s(0.5, 0.8, E_WH, 3700.0)
    # Discharge stops with the look-ahead's worth of slack (30 s at 7.4 kW) left; then it idles.
    idle = _plan(p, _before(DEPARTURE, t + p.reserve_s(t) + 5.0), 0.5, 3700.0)
    assert (idle.state, idle.p_max_w) == ("no_discharge", 0.0)
    lim = _plan(p, _before(DEPARTURE, t + p.reserve_s(t) - 5.0), 0.5, 3700.0)
    assert (lim.state, lim.p_max_w) == ("charging_for_departure", -3700.0)
    assert lim.reason == (
        "24.5 kWh needed by 07:30 (6.6 h at 3.7 kW with taper, 1.0 h reserve), 7.7 h left: charging at 3.7 kW"
    )
    # More charge power brings the reserve back: the charge still goes on to the target ...
    faster = _plan(p, _before(DEPARTURE, t + p.reserve_s(t) - 10.0), 0.5, P_RATED_W)
    assert faster.t_slack_s > 3600.0
    assert (faster.state, faster.p_max_w) == ("charging_for_departure", -P_RATED_W)
    # ... and stops there: no forced charge beyond it, no discharge this close to departure.
    met = _plan(p, _before(DEPARTURE, 1500.0), 0.8, P_RATED_W)
    assert (met.state, met.p_max_w) == ("no_discharge", 0.0)
    assert met.reason is not None
    assert met.reason.startswith("target 80 % met (80 %)")


def test_a_target_met_with_time_to_spare_leaves_discharge_free() -> None:
    lim = _plan(_planner(), datetime(2025, 1, 15, 17, 0, tzinfo=BERLIN), 0.85)
    assert (lim.state, lim.p_max_w) == ("free", math.inf)
    assert lim.reason == "target 80 % met (85 %), 14.5 h to 07:30: discharge allowed"


def test_an_unreachable_target_charges_at_the_most_the_limits_allow_and_says_so() -> None:
    p = _planner()
    lim = _plan(p, datetime(2025, 1, 16, 5, 30, tzinfo=BERLIN), 0.2, 20_000.0)
    assert (lim.state, lim.p_max_w) == ("unreachable", -P_RATED_W)  # the rating caps what is given
    expected = p.soc_after_s(0.2, 7200.0, E_WH, P_RATED_W)
    assert lim.reason is not None
    assert lim.reason.startswith("80 % by 07:30 unreachable: 49.1 kWh needed by 07:30")
    assert lim.reason.endswith(f"charging at 7.4 kW, about {100 * expected:.0f} % expected")
    none = _plan(p, datetime(2025, 1, 16, 5, 30, tzinfo=BERLIN), 0.2, math.nan)
    assert (none.state, none.p_max_w) == ("unreachable", 0.0)
    assert none.reason is not None
    assert "no charge power available" in none.reason


def test_a_stale_plan_allows_no_discharge_but_keeps_a_forced_charge() -> None:
    free = DepartureLimit(math.inf, "free", None, 100.0, 15.0)
    assert free.p_max_at(115.0) == math.inf
    assert free.p_max_at(115.1) == 0.0
    charging = DepartureLimit(-3700.0, "charging_for_departure", None, 100.0, 15.0)
    assert charging.p_max_at(1000.0) == -3700.0


def test_from_settings_maps_the_charger_and_enter_service() -> None:
    settings = msgspec.structs.replace(
        load_default(), owner=EvOwner(departure_soc=0.8, departure_time=time(7, 30))
    )
    p = DeparturePlanner.from_settings(settings)
    assert p is not None and p.has_departure
    assert (p.owner.departure_soc, p.owner.departure_time) == (0.8, time(7, 30))
    bench = DeparturePlanner.from_settings(load_default())  # the bench sets no departure
    assert bench is not None and not bench.has_departure
    assert (p.p_rated_w, p.p_rated_charge_w, p.charge_efficiency) == (7400.0, 7400.0, 0.94)
    assert p.trip_s == 302.5  # the bench's IEEE 1547 profile: 300 s delay; its inverter ramps in 5 s
    assert p.lookahead_s == 15.0 + 5.0  # the plan's age, then half the 10 s ramp to zero at 0.1 pu/s
    assert DeparturePlanner.from_settings(Settings()) is None


# -- simulated evenings ---------------------------------------------------------------------------------

MIN_SOC = 0.3
EV_CHARGE_W = 3700.0  # the EV's on-board charger, below the 7.4 kW wallbox
ETA_C, ETA_D = 0.94, 0.95
STEP_S = 10.0


@dataclass
class Pack:
    """An energy integrator: charge efficiency in, discharge efficiency out, the EV's charge limit
    tapering linearly above 0.8 to a quarter at full, no discharge at the owner's reserve."""

    soc: float
    exported_wh: float = 0.0

    def charge_limit_w(self) -> float:
        return EV_CHARGE_W * (1.0 - 0.75 * max(0.0, self.soc - 0.8) / 0.2)

    def apply(self, p_w: float, cap_w: float = math.inf) -> float:
        """Apply ``p_w`` within the limits (and ``cap_w`` either way); return what flowed."""
        if p_w > 0.0:
            p_w = min(p_w, P_RATED_W, cap_w) if self.soc > MIN_SOC else 0.0
            self.soc -= p_w * STEP_S / (ETA_D * E_WH * 3600.0)
            self.exported_wh += p_w * STEP_S / 3600.0
        else:
            p_w = -min(-p_w, self.charge_limit_w(), cap_w)
            self.soc -= p_w * ETA_C * STEP_S / (E_WH * 3600.0)
        return p_w


@dataclass
class Evening:
    soc_end: float
    exported_wh: float
    first_stop_s: float | None  # the first time discharge was not allowed
    last_discharge_s: float | None
    limits: list[DepartureLimit]


def _evening(
    start: datetime,
    soc0: float,
    *,
    target: float = 0.9,
    soc_error: float = 0.0,
    trip_at_s: float | None = None,
    stop_discharge_at_s: float | None = None,
) -> Evening:
    """17:00 (or ``start``) to the 07:30 departure in 10 s steps on an injected clock. The aggregator asks
    for full discharge throughout; the planner, fed the SoC with ``soc_error``, bounds it. Without a
    planner (``stop_discharge_at_s`` given) the pack discharges until then and charges at the most after.
    A trip at ``trip_at_s`` holds the charger at 0 for the 300 s delay, then ramps over 300 s."""
    planner = _planner(target=target, lookahead_s=20.0, max_age_s=15.0)
    dep = datetime.combine(start.date() + timedelta(days=1), time(7, 30), tzinfo=start.tzinfo)
    start_utc = start.astimezone(UTC)
    steps = round((dep.astimezone(UTC) - start_utc).total_seconds() / STEP_S)
    pack = Pack(soc0)
    limits: list[DepartureLimit] = []
    first_stop = last_discharge = None
    for k in range(steps):
        t_s = k * STEP_S
        if stop_discharge_at_s is not None:
            request = P_RATED_W if t_s < stop_discharge_at_s else -P_RATED_W
        else:
            now = (start_utc + timedelta(seconds=t_s)).astimezone(BERLIN)
            soc_seen = min(1.0, max(0.0, pack.soc + soc_error))
            lim = planner.plan(now, t_s, soc_seen, E_WH, pack.charge_limit_w())
            limits.append(lim)
            request = min(P_RATED_W, lim.p_max_at(t_s))
            if first_stop is None and lim.state != "free":
                first_stop = t_s
        cap = math.inf
        if trip_at_s is not None and trip_at_s <= t_s < trip_at_s + 600.0:
            cap = 0.0 if t_s < trip_at_s + 300.0 else P_RATED_W * (t_s - trip_at_s - 300.0) / 300.0
        if pack.apply(request, cap) > 0.0:
            last_discharge = t_s
    return Evening(pack.soc, pack.exported_wh, first_stop, last_discharge, limits)


def _latest_stop_s(start: datetime, soc0: float, target: float) -> float:
    """The latest end of full discharge from which a full charge still meets the target (to 10 s)."""
    lo, hi = 0.0, 16 * 3600.0
    while hi - lo > STEP_S:
        mid = (lo + hi) / 2.0
        if _evening(start, soc0, target=target, stop_discharge_at_s=mid).soc_end >= target:
            lo = mid
        else:
            hi = mid
    return lo


# A winter evening, and the evenings before the clocks change (13.5 h and 15.5 h to 07:30).
EVENINGS = [datetime(2025, 1, 15, 17, 0, tzinfo=BERLIN), datetime(2025, 3, 29, 17, 0, tzinfo=BERLIN)]
EVENINGS.append(datetime(2025, 10, 25, 17, 0, tzinfo=BERLIN))


@pytest.mark.parametrize("start", EVENINGS, ids=["january", "spring-change", "autumn-change"])
def test_the_departure_is_met_after_an_evening_of_discharge(start: datetime) -> None:
    ev = _evening(start, 0.55)
    assert ev.soc_end >= 0.9
    assert ev.soc_end < 0.9 + 0.002  # charged to the target, not beyond
    # The planner is not simply conservative: it stops discharging first within the reserve of the
    # latest moment a full charge could still make it, and exports most of what that would allow.
    latest_s = _latest_stop_s(start, 0.55, 0.9)
    best = _evening(start, 0.55, stop_discharge_at_s=latest_s)
    assert ev.first_stop_s is not None
    stop = ev.limits[round(ev.first_stop_s / STEP_S)]
    # Each second of discharge later costs itself and the charge time it takes to put back.
    charge_s_per_discharge_s = (P_RATED_W / ETA_D) / (EV_CHARGE_W * ETA_C)
    bound_s = stop.t_reserve_s / (1.0 + charge_s_per_discharge_s) + 60.0
    assert 0.0 < latest_s - ev.first_stop_s < bound_s
    # Not simply conservative: most of what a perfect plan could export is exported. The rest is the
    # reserve, and the hold after charging for the departure (no second, shallow discharge cycle).
    assert ev.exported_wh > 0.7 * best.exported_wh
    assert ev.last_discharge_s is not None and ev.last_discharge_s < ev.first_stop_s, "discharged again"
    # It charges for the departure and holds the target at the end, never asking for discharge then.
    assert ev.limits[-1].state == "no_discharge"
    assert ev.last_discharge_s is not None
    assert ev.last_discharge_s < len(ev.limits) * STEP_S - ev.limits[-1].t_reserve_s


@pytest.mark.parametrize("soc_error", [0.02, -0.02])
def test_the_departure_is_met_within_the_estimators_error(soc_error: float) -> None:
    ev = _evening(EVENINGS[0], 0.55, soc_error=soc_error)
    assert ev.soc_end >= 0.9 - abs(soc_error)
    assert ev.soc_end == pytest.approx(0.9 - soc_error, abs=0.002)


def test_the_departure_is_met_after_a_trip_while_charging_for_it() -> None:
    ev = _evening(EVENINGS[0], 0.55)
    charging = [k for k, x in enumerate(ev.limits) if x.state == "charging_for_departure"]
    # The trip hits the last charge, 10 min in: the worst place for it.
    trip_at_s = (next(k for k in reversed(charging) if k - 1 not in charging) + 60) * STEP_S
    tripped = _evening(EVENINGS[0], 0.55, trip_at_s=trip_at_s)
    assert tripped.soc_end >= 0.9
    assert tripped.limits[round(trip_at_s / STEP_S)].state == "charging_for_departure"


def test_an_unreachable_target_charges_at_the_most_from_the_first_call() -> None:
    start = datetime(2025, 1, 16, 3, 0, tzinfo=BERLIN)
    pack = Pack(0.2)
    planner = _planner(target=0.9)
    first = planner.plan(start, 0.0, pack.soc, E_WH, pack.charge_limit_w())
    assert (first.state, first.p_max_w) == ("unreachable", -EV_CHARGE_W)
    assert first.reason is not None
    expected = planner.soc_after_s(0.2, first.t_left_s, E_WH, EV_CHARGE_W)
    assert f"about {100 * expected:.0f} % expected" in first.reason
    start_utc = start.astimezone(UTC)
    for k in range(round(first.t_left_s / STEP_S)):
        now = (start_utc + timedelta(seconds=k * STEP_S)).astimezone(BERLIN)
        lim = planner.plan(now, k * STEP_S, pack.soc, E_WH, pack.charge_limit_w())
        assert lim.state == "unreachable"
        assert pack.apply(lim.p_max_at(k * STEP_S)) == -EV_CHARGE_W
    assert pack.soc == pytest.approx(expected, abs=1e-6)
