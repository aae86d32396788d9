"""The owner's departure as a limit for the control kernels: how far the dispatch basis may go towards
discharge, or how hard it must charge, so that the EV leaves with ``owner.departure_soc`` at
``owner.departure_time`` (a local time of day).

``DeparturePlanner.plan`` runs outside the fast cycle, every few seconds; the cycle bounds the
dispatch basis with the latest ``DepartureLimit`` through ``p_max_at`` (a plan that stopped coming
allows no discharge). Pure: the local wall time and the monotonic time are arguments; nothing here
reads a clock or does I/O.

The plan starts charging as late as it can. Discharge (any mode) is allowed while charging from the
SoC that one more look-ahead of full discharge would leave, at the charge power available now, still
reaches the target before departure with the reserve to spare. Then the basis idles. When idling any
longer would eat into the reserve, it charges at the most the limits allow until the target is met.
When even that cannot reach the target in time, it charges at the most anyway and says what SoC to
expect. Which state it is in carries hysteresis: discharge is not allowed again until the slack
exceeds ``hysteresis_s``, so the limit does not chatter with the charge power's jitter.

The charge time models the asymmetric efficiency (the charge efficiency: DC into the pack per AC
drawn) and the taper near full: above ``taper_soc`` the power falls linearly to
``taper_end_fraction`` of it at SoC 1 (a CC-CV charge's constant-voltage phase). The reserve is a fixed
time, a fraction of the charge time (capacity, efficiency and power errors grow with it), and what one
trip would cost: the enter-service delay and the ramp (``trip_cost_s``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from edge.settings.model import EnterService, EvOwner, Settings

DepartureState = Literal[
    "no_departure",  # none set: free (the reserve min_soc is kernel I's business)
    "departure_passed",  # the departure time passed and the EV is still here: no discharge for a while
    "unknown_soc",  # a departure is set but the SoC is not known: no discharge
    "unknown_capacity",  # a departure is set but the pack's energy per unit SoC is not known: no discharge
    "free",  # the target stays reachable with the reserve after more discharge
    "no_discharge",  # it would not: idle (the target may already be met)
    "charging_for_departure",  # charging at the most the limits allow, to keep the reserve
    "unreachable",  # not even that reaches the target in time: charging at the most the limits allow
]

_H = 3600.0


@dataclass(frozen=True)
class DepartureLimit:
    """One plan: ``p_max_w`` bounds the dispatch basis (+inf free, 0 no discharge, < 0 charge this hard).

    ``t_needed_s`` is the charge time from the SoC now to the target at the power available now (taper
    and efficiency included, no reserve); ``t_reserve_s`` the reserve on top of it; ``t_slack_s`` what
    is left after one more look-ahead of full discharge (discharge is allowed while it is positive);
    ``e_needed_wh`` the AC energy to draw. NaN where the plan did not get that far.
    """

    p_max_w: float
    state: DepartureState
    reason: str | None
    t_s: float  # monotonic time of the plan
    max_age_s: float
    soc_target: float | None = None
    departure: datetime | None = None  # the departure instant planned for, local time
    t_left_s: float = math.nan
    t_needed_s: float = math.nan
    t_reserve_s: float = math.nan
    t_slack_s: float = math.nan
    e_needed_wh: float = math.nan

    def p_max_at(self, t_s: float) -> float:
        """The bound at monotonic time ``t_s``. A plan older than ``max_age_s`` allows no discharge (a
        stalled planner must not leave discharge free) but keeps asking for a forced charge."""
        if t_s - self.t_s <= self.max_age_s:
            return self.p_max_w
        return min(self.p_max_w, 0.0)


def trip_cost_s(es: EnterService) -> float:
    """Charge time one trip costs: the enter-service delay, then either the randomized delay (which
    replaces the ramp, at worst its whole length) or half the ramp (a linear ramp delivers half the
    energy of its duration at full power)."""
    if es.randomized_delay_s > 0.0:
        return es.delay_s + es.randomized_delay_s
    return es.delay_s + 0.5 * es.ramp_s


def _check(name: str, value: float, lo: float, hi: float, *, lo_open: bool = False) -> None:
    ok = math.isfinite(value) and (lo < value if lo_open else lo <= value) and value <= hi
    if not ok:
        bracket = "(" if lo_open else "["
        raise ValueError(f"departure planner {name} = {value!r} outside {bracket}{lo:g}, {hi:g}]")


def _hm(dt: datetime) -> str:
    return dt.strftime("%H:%M")


def _pct(soc: float) -> str:
    return f"{100.0 * soc:.0f} %"


class DeparturePlanner:
    """The departure plan of one owner and charger, called every few seconds; see the module docstring.

    ``p_rated_w`` (discharge) prices the look-ahead, ``p_rated_charge_w`` caps the charge power given to
    ``plan``. ``trip_s`` is what a trip costs (``trip_cost_s``). ``lookahead_s``: how long a discharge
    may go on after a plan allowed it: the plan's ``max_age_s`` plus the kernel's normal ramp from
    full discharge to zero, as energy (half its length). ``margin_s`` covers what does not scale with
    the charge time (the charger and EV starting to charge, the ramp up, the planner's period);
    ``margin_fraction`` what does (capacity, efficiency and charge power errors of a few % each).
    ``taper_soc`` 0.8 and ``taper_end_fraction`` 0.25 are a DC-fast-charge-like taper, early and deep
    for the low C-rates of a wallbox (whose CV phase starts nearer 0.9): it errs on charging early.
    ``late_hold_s``: after the departure time passes with the EV still plugged in, the owner may be
    leaving late, so discharge stays held this long before the next day's departure is planned.
    """

    def __init__(
        self,
        owner: EvOwner,
        *,
        p_rated_w: float,
        p_rated_charge_w: float,
        charge_efficiency: float,
        discharge_efficiency: float,
        trip_s: float,
        lookahead_s: float = 30.0,
        max_age_s: float = 15.0,
        margin_s: float = 900.0,
        margin_fraction: float = 0.1,
        hysteresis_s: float = 600.0,
        taper_soc: float = 0.8,
        taper_end_fraction: float = 0.25,
        late_hold_s: float = 3600.0,
    ) -> None:
        _check("p_rated_w", p_rated_w, 0.0, 1e7, lo_open=True)
        _check("p_rated_charge_w", p_rated_charge_w, 0.0, 1e7, lo_open=True)
        _check("charge_efficiency", charge_efficiency, 0.5, 1.0)
        _check("discharge_efficiency", discharge_efficiency, 0.5, 1.0)
        _check("trip_s", trip_s, 0.0, 86_400.0)
        _check("lookahead_s", lookahead_s, 0.0, 3600.0)
        _check("max_age_s", max_age_s, 0.0, 3600.0, lo_open=True)
        _check("margin_s", margin_s, 0.0, 86_400.0)
        _check("margin_fraction", margin_fraction, 0.0, 1.0)
        _check("hysteresis_s", hysteresis_s, 0.0, 86_400.0)
        _check("taper_soc", taper_soc, 0.0, 0.99, lo_open=True)
        _check("taper_end_fraction", taper_end_fraction, 0.0, 1.0, lo_open=True)
        _check("late_hold_s", late_hold_s, 0.0, 86_400.0)
        if owner.departure_time is not None and owner.departure_time.tzinfo is not None:
            raise ValueError(
                f"owner.departure_time = {owner.departure_time.isoformat()}: give a local time of day "
                "without a UTC offset"
            )
        self.owner = owner
        self.p_rated_w = p_rated_w
        self.p_rated_charge_w = p_rated_charge_w
        self.charge_efficiency = charge_efficiency
        self.discharge_efficiency = discharge_efficiency
        self.trip_s = trip_s
        self.lookahead_s = lookahead_s
        self.max_age_s = max_age_s
        self.margin_s = margin_s
        self.margin_fraction = margin_fraction
        self.hysteresis_s = hysteresis_s
        self.taper_soc = taper_soc
        self.taper_end_fraction = taper_end_fraction
        # Relative power falls by this per unit SoC above taper_soc (0 with taper_end_fraction 1: none).
        self._taper_slope = (1.0 - taper_end_fraction) / (1.0 - taper_soc)
        self.late_hold_s = late_hold_s
        # A new planner has not judged discharge free yet: it needs the hysteresis to allow it.
        self._free = False
        self._charging = False

    @classmethod
    def from_settings(cls, settings: Settings, *, max_age_s: float = 15.0) -> DeparturePlanner | None:
        """The planner for ``settings`` (tuning at its defaults), None before the inverter and the grid
        profile are commissioned (the daemon holds P = 0 then)."""
        inv, grid, bat = settings.inverter, settings.grid, settings.battery
        if inv is None or grid is None:
            return None
        return cls(
            settings.owner,
            p_rated_w=inv.p_rated_w,
            p_rated_charge_w=inv.p_rated_charge_w,
            charge_efficiency=bat.charge_efficiency,
            discharge_efficiency=bat.discharge_efficiency,
            trip_s=trip_cost_s(grid.enter_service),
            lookahead_s=max_age_s + 0.5 / grid.ramp.normal_pu_per_s,
            max_age_s=max_age_s,
        )

    @property
    def has_departure(self) -> bool:
        return self.owner.departure_soc is not None and self.owner.departure_time is not None

    # -- the charge model -------------------------------------------------------------------------------

    def _f(self, soc: float) -> float:
        """Relative charge power at ``soc`` (1 below the taper)."""
        return 1.0 - self._taper_slope * max(0.0, min(soc, 1.0) - self.taper_soc)

    def _span(self, soc0: float, soc1: float) -> float:
        """The integral of 1 / f over [soc0, soc1]: SoC-equivalents of untapered charging."""
        below = max(0.0, min(soc1, self.taper_soc) - soc0)
        lo = max(soc0, self.taper_soc)
        if soc1 <= lo:
            return below
        if self._taper_slope == 0.0:
            return below + soc1 - lo
        return below + math.log(self._f(lo) / self._f(soc1)) / self._taper_slope

    def charge_time_s(self, soc0: float, soc1: float, e_per_soc_wh: float, p_charge_ac_w: float) -> float:
        """Seconds to charge from ``soc0`` to ``soc1``, starting at ``p_charge_ac_w`` (AC) at ``soc0``.

        The power at ``soc0`` may already be tapered (the SoP sees the voltage limit near full), so
        the taper is taken relative to it: f(soc) / f(soc0), never applied twice.
        """
        if soc1 <= soc0:
            return 0.0
        if p_charge_ac_w <= 0.0:
            return math.inf
        s_per_soc = e_per_soc_wh * _H / (self.charge_efficiency * p_charge_ac_w)
        return s_per_soc * self._f(soc0) * self._span(soc0, soc1)

    def soc_after_s(self, soc0: float, t_s: float, e_per_soc_wh: float, p_charge_ac_w: float) -> float:
        """The SoC that charging from ``soc0`` for ``t_s`` reaches (the inverse of ``charge_time_s``)."""
        if t_s <= 0.0 or p_charge_ac_w <= 0.0:
            return soc0
        span = t_s / (e_per_soc_wh * _H / (self.charge_efficiency * p_charge_ac_w) * self._f(soc0))
        below = max(0.0, self.taper_soc - soc0)
        if span <= below or self._taper_slope == 0.0:
            return min(1.0, soc0 + span)
        lo = max(soc0, self.taper_soc)
        f1 = self._f(lo) * math.exp(-self._taper_slope * (span - below))
        return min(1.0, self.taper_soc + (1.0 - f1) / self._taper_slope)

    def reserve_s(self, t_needed_s: float) -> float:
        """The time kept in hand beyond a charge of ``t_needed_s``."""
        return self.margin_s + self.margin_fraction * t_needed_s + self.trip_s

    # -- the plan ---------------------------------------------------------------------------------------

    def departures(self, now: datetime) -> tuple[datetime, datetime]:
        """(the last departure instant at or before ``now``, the next one after it), in ``now``'s zone.

        Each is the owner's wall-clock time on a calendar day, converted through UTC, so a DST change
        between now and then moves it by the hour it should. A time the spring change skips counts at
        the offset before it (02:30 becomes 03:30); one the autumn change repeats, at its first
        occurrence (the earlier: the owner is not kept waiting).
        """
        dep = self.owner.departure_time
        if dep is None:
            raise ValueError("owner.departure_time is not set")
        tz = now.tzinfo
        if tz is None or now.utcoffset() is None:
            raise ValueError(f"now = {now.isoformat()} has no time zone; give the local time zone-aware")
        now_utc = now.astimezone(UTC)
        # Aware datetimes sharing a zone subtract as wall times, so compare them in UTC.
        candidates = [
            datetime.combine(now.date() + timedelta(days=d), dep, tzinfo=tz).astimezone(UTC)
            for d in (-1, 0, 1)
        ]
        last = max(c for c in candidates if c <= now_utc)
        following = min(c for c in candidates if c > now_utc)
        return last.astimezone(tz), following.astimezone(tz)

    def plan(
        self,
        now: datetime,
        t_s: float,
        soc: float | None,
        e_per_soc_wh: float | None,
        p_charge_ac_w: float,
    ) -> DepartureLimit:
        """The limit for the next few seconds.

        ``now``: the local wall time, zone-aware (a ``zoneinfo`` zone, so that DST is known); ``t_s``:
        monotonic time; ``soc``: the SoC the owner's reserve is judged on (None or NaN: unknown);
        ``e_per_soc_wh``: the pack's DC energy per unit SoC (capacity with SoH, times voltage);
        ``p_charge_ac_w``: the charge power the limits allow now, AC side (the lowest of the charger's
        rating, the EV's limit and the estimator's SoP; NaN counts as none).
        """
        target, dep_time = self.owner.departure_soc, self.owner.departure_time
        lim = DepartureLimit(math.inf, "no_departure", None, t_s, self.max_age_s, soc_target=target)
        if target is None or dep_time is None:
            self._free, self._charging = True, False
            if (target is None) != (dep_time is None):
                given = "departure_soc" if dep_time is None else "departure_time"
                return replace(lim, reason=f"owner.{given} is set without the other: no departure planned")
            return lim

        last, following = self.departures(now)
        late_s = (now.astimezone(UTC) - last.astimezone(UTC)).total_seconds()
        if late_s < self.late_hold_s:
            self._free, self._charging = False, False
            until = _hm(last + timedelta(seconds=self.late_hold_s))
            reason = (
                f"departure {_hm(last)} passed {late_s / 60.0:.0f} min ago and the EV is still plugged in: "
                f"discharge held until {until}"
            )
            return replace(lim, p_max_w=0.0, state="departure_passed", reason=reason, departure=last)
        t_left = (following.astimezone(UTC) - now.astimezone(UTC)).total_seconds()
        goal = f"{_pct(target)} by {_hm(following)}"
        lim = replace(lim, p_max_w=0.0, departure=following, t_left_s=t_left)

        if soc is None or not 0.0 <= soc <= 1.0:
            self._free, self._charging = False, False
            what = "unknown" if soc is None or math.isnan(soc) else f"{soc!r} outside [0, 1]"
            return replace(lim, state="unknown_soc", reason=f"SoC {what}: discharge stopped to keep {goal}")
        if e_per_soc_wh is None or not 0.0 < e_per_soc_wh < math.inf:
            self._free, self._charging = False, False
            reason = f"pack energy per unit SoC {e_per_soc_wh!r} unknown: discharge stopped to keep {goal}"
            return replace(lim, state="unknown_capacity", reason=reason)

        p_chg = min(p_charge_ac_w, self.p_rated_charge_w) if p_charge_ac_w > 0.0 else 0.0
        t_needed = self.charge_time_s(soc, target, e_per_soc_wh, p_chg)
        e_needed = max(0.0, target - soc) * e_per_soc_wh / self.charge_efficiency
        # The SoC that a discharge allowed now could leave before the next plan takes effect.
        e_la_wh = self.p_rated_w * self.lookahead_s / _H / self.discharge_efficiency
        soc_la = max(0.0, soc - e_la_wh / e_per_soc_wh)
        t_needed_la = self.charge_time_s(soc_la, target, e_per_soc_wh, p_chg)
        reserve = self.reserve_s(t_needed)
        slack_now = t_left - t_needed - reserve
        slack = t_left - t_needed_la - self.reserve_s(t_needed_la)
        lim = replace(lim, t_needed_s=t_needed, t_reserve_s=reserve, t_slack_s=slack, e_needed_wh=e_needed)

        if soc >= target:
            if self._charging:
                # Charged for this departure: discharging again now would only add a shallow cycle
                # (and its recharge) before the owner leaves.
                self._free = False
                reason = f"target {_pct(target)} met ({_pct(soc)}) for {_hm(following)}: discharge held"
                return replace(lim, state="no_discharge", reason=reason)
            need = f"target {_pct(target)} met ({_pct(soc)}), {t_left / _H:.1f} h to {_hm(following)}"
        else:
            if p_chg > 0.0:
                need = (
                    f"{e_needed / 1000.0:.1f} kWh needed by {_hm(following)} ({t_needed / _H:.1f} h at "
                    f"{e_needed / t_needed * _H / 1000.0:.1f} kW with taper, {reserve / _H:.1f} h reserve), "
                    f"{t_left / _H:.1f} h left"
                )
            else:
                need = f"{e_needed / 1000.0:.1f} kWh needed by {_hm(following)} and no charge power available"
            charging = f"charging at {p_chg / 1000.0:.1f} kW"
            if t_needed > t_left:
                self._free, self._charging = False, True
                expect = _pct(self.soc_after_s(soc, t_left, e_per_soc_wh, p_chg))
                reason = f"{goal} unreachable: {need}; {charging}, about {expect} expected"
                return replace(lim, p_max_w=-p_chg, state="unreachable", reason=reason)
            # Once started, the charge goes on to the target: stopping as soon as the reserve is back
            # would toggle between charging and idling with every plan.
            if self._charging or slack_now <= 0.0:
                self._free, self._charging = False, True
                return replace(
                    lim, p_max_w=-p_chg, state="charging_for_departure", reason=f"{need}: {charging}"
                )

        self._free = slack > (0.0 if self._free else self.hysteresis_s)
        if self._free:
            return replace(lim, p_max_w=math.inf, state="free", reason=f"{need}: discharge allowed")
        return replace(lim, state="no_discharge", reason=f"{need}: discharge stopped")
