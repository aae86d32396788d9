"""The dispatch input (what an aggregator, a local file or a technician asks of the charger) and the
operating modes that turn it, each cycle, into the dispatch basis for kernel I.

One typed, validated input for every source: a ``Dispatch`` is a P (and optional Q) set point or a
schedule of set points, with a start, an expiry (absolute UTC) and an id, and optionally a mode for
its lifetime. A dispatch out of the charger's range, with an expiry in the past or before its start,
or contradicting its mode is refused whole with a message naming the field; nothing is clamped
silently. A Q set point (``q_var``, even 0) while the inverter runs its own reactive mode (a
``functions`` owner ``inverter``) is refused too: the charger would not follow it. An expired
dispatch is never followed, and an aggregator's dispatch is followed only while the aggregator was
heard within ``operation.dispatch_timeout_s`` (a local one, or the local planner's, needs no
heartbeat: the planner's expires on its own when it stops re-planning).

The basis is an input to kernel I, never a bypass: protection, the export cap, the owner's reserve
and departure, and the battery's limits all apply after it. Pure: the wall clock (``t_unix_s``, for
start and expiry) and the monotonic clock (``t_s``, for silence) are arguments.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from drivers.sunspec.functions import inverter_reactive_modes
from edge.settings.model import Functions, Inverter, Operation, OperationMode

Source = Literal["aggregator", "local", "planner"]
# A technician on site wins, then the aggregator, then the local planner's schedule (edge.planner).
LOCAL_FIRST: tuple[Source, ...] = ("local", "aggregator", "planner")
DispatchId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
MAX_SCHEDULE_POINTS = 2000  # a day at 1-minute resolution, with room
# A dispatch runs for a week at most: one that outlives its sender (or a wall clock set wrong at boot)
# must not steer the charger for years.
MAX_LIFETIME_S = 7 * 86_400.0


class DispatchError(ValueError):
    """A dispatch refused: ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"dispatch {field}: {message}")
        self.field = field


class SchedulePoint(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """From ``at`` until the next point (or the dispatch's expiry): P, and Q where given."""

    at: datetime
    p_w: float
    q_var: float | None = None


class Dispatch(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One request to the charger; ``p_w`` > 0 export (discharge), < 0 charging; ``q_var`` > 0 injection."""

    id: DispatchId
    start: datetime
    expiry: datetime
    p_w: float | None = None
    q_var: float | None = None
    schedule: list[SchedulePoint] | None = None
    mode: OperationMode | None = None


@dataclass(frozen=True)
class Basis:
    """The dispatch basis of one cycle and where it came from (for status and telemetry)."""

    mode: OperationMode
    p_w: float  # NaN: no request of its own (the mode's local policy applies in Controllers)
    q_var: float
    source: str


def _utc(field: str, value: datetime) -> float:
    if value.tzinfo is None:
        raise DispatchError(field, f"{value.isoformat()} has no time zone; give UTC (e.g. ...Z)")
    try:
        return value.astimezone(UTC).timestamp()
    except (OverflowError, ValueError):
        raise DispatchError(field, f"{value.isoformat()} is outside the range of dates") from None


def _finite(field: str, value: float, lo: float, hi: float, unit: str) -> None:
    if not (math.isfinite(value) and lo <= value <= hi):
        raise DispatchError(
            field, f"{value:g} {unit} is outside {lo:g} … {hi:g} {unit} (the charger's ratings)"
        )


def validate(d: Dispatch, inverter: Inverter, t_unix_s: float, functions: Functions | None = None) -> None:
    """Raise DispatchError unless ``d`` can be followed by this charger (now or later); ``functions``
    (who owns Q) None: no reactive mode runs in the inverter."""
    start, expiry = _utc("start", d.start), _utc("expiry", d.expiry)
    if expiry <= start:
        raise DispatchError("expiry", f"{d.expiry.isoformat()} is not after start {d.start.isoformat()}")
    if expiry <= t_unix_s:
        raise DispatchError("expiry", f"{d.expiry.isoformat()} has passed")
    if expiry - max(start, t_unix_s) > MAX_LIFETIME_S:
        raise DispatchError(
            "expiry", f"{d.expiry.isoformat()} is more than {MAX_LIFETIME_S / 86_400:g} days ahead"
        )
    if d.p_w is not None and d.schedule is not None:
        raise DispatchError("p_w", "give either p_w (and optionally q_var) or a schedule, not both")
    if d.p_w is None and d.schedule is None and d.mode not in ("idle", "v1g", "v2h"):
        raise DispatchError("p_w", "give p_w or a schedule (only idle, v1g and v2h can be asked without)")
    if d.schedule is not None and d.q_var is not None:
        raise DispatchError("q_var", "with a schedule, give Q per point")
    points: list[tuple[str, float, float | None]] = (
        [("p_w", d.p_w, d.q_var)] if d.p_w is not None else [
            (f"schedule[{k}].p_w", pt.p_w, pt.q_var) for k, pt in enumerate(d.schedule or [])
        ]
    )  # fmt: skip
    if d.schedule is not None:
        if not d.schedule:
            raise DispatchError("schedule", "is empty")
        if len(d.schedule) > MAX_SCHEDULE_POINTS:
            raise DispatchError("schedule", f"has {len(d.schedule)} points, at most {MAX_SCHEDULE_POINTS}")
        times = [_utc(f"schedule[{k}].at", pt.at) for k, pt in enumerate(d.schedule)]
        for k in range(1, len(times)):
            if times[k] <= times[k - 1]:
                raise DispatchError(f"schedule[{k}].at", "points must be in increasing time order")
        if times[0] < start or times[-1] >= expiry:
            raise DispatchError("schedule", "every point must lie within [start, expiry)")
    q_inj, q_abs = inverter.q_max_inj_var, inverter.q_max_abs_var
    q_owner = inverter_reactive_modes(functions) if functions is not None else ()
    for field, p_w, q_var in points:
        _finite(field, p_w, -inverter.p_rated_charge_w, inverter.p_rated_w, "W")
        if q_var is not None:
            q_field = field.replace("p_w", "q_var")
            if q_owner:
                # The power stage would drop it and follow P alone: a request half followed is refused.
                raise DispatchError(
                    q_field,
                    f"{q_var:g} var refused: reactive power is owned by the inverter "
                    f"(functions.{q_owner[0]} = inverter); give no q_var",
                )
            _finite(q_field, q_var, -q_abs, q_inj, "var")
        if d.mode == "v1g" and p_w > 0.0:
            raise DispatchError(field, f"{p_w:g} W asks for discharge, but mode v1g never discharges")
        if d.mode in ("idle", "v2h"):
            raise DispatchError(
                "mode", f"{d.mode} takes no set points: give mode v1g, v2g or schedule with them"
            )
    if d.mode == "schedule" and d.schedule is None:
        raise DispatchError("mode", "schedule needs a schedule")


def parse(payload: bytes) -> Dispatch:
    """A dispatch from JSON, typed but not yet checked against a charger (``validate``); raises
    DispatchError naming the field."""
    try:
        return msgspec.json.decode(payload, type=Dispatch)
    except msgspec.ValidationError as exc:
        raise DispatchError("payload", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise DispatchError("payload", f"not JSON: {exc}") from None


@dataclass(frozen=True)
class _Held:
    """A dispatch taken, with its times as Unix seconds (converted once, not every cycle)."""

    dispatch: Dispatch
    source: Source
    start_s: float
    expiry_s: float
    times_s: tuple[float, ...]  # the schedule's points

    @classmethod
    def of(cls, d: Dispatch, source: Source) -> _Held:
        times = tuple(_utc("at", pt.at) for pt in d.schedule or [])
        return cls(d, source, _utc("start", d.start), _utc("expiry", d.expiry), times)

    def point(self, t_unix_s: float) -> tuple[float, float] | None:
        d = self.dispatch
        if d.p_w is not None:
            return d.p_w, d.q_var or 0.0
        k = bisect.bisect_right(self.times_s, t_unix_s) - 1
        if k < 0 or d.schedule is None:
            return None
        pt = d.schedule[k]
        return pt.p_w, pt.q_var or 0.0


class Dispatcher:
    """Holds the dispatch of each source and picks what the cycle follows."""

    def __init__(
        self, operation: Operation, inverter: Inverter | None, functions: Functions | None = None
    ) -> None:
        self.operation = operation
        self.inverter = inverter
        self.functions = functions  # who owns Q (None: not the inverter)
        self._held: dict[Source, _Held] = {}
        self._heard_s: float | None = None  # the aggregator, monotonic

    def take(self, payload: bytes, source: Source, t_unix_s: float, t_s: float) -> Dispatch:
        """Decode, validate and take a JSON dispatch; raises DispatchError (nothing changes)."""
        return self.offer(parse(payload), source, t_unix_s, t_s)

    def _ratings(self) -> Inverter:
        if self.inverter is None:
            raise DispatchError(
                "payload", "the charger has no [inverter] ratings: no dispatch can be checked"
            )
        return self.inverter

    def offer(self, d: Dispatch, source: Source, t_unix_s: float, t_s: float) -> Dispatch:
        """Take ``d`` (replacing the source's previous one) or raise DispatchError (nothing changes).

        A dispatch without a mode is for the mode in force now: it is checked against it and keeps
        it (a later change of the configured mode does not make a charge request a discharge)."""
        if d.mode is None:
            d = msgspec.structs.replace(d, mode=self.operation.mode)
        validate(d, self._ratings(), t_unix_s, self.functions)
        self._held[source] = _Held.of(d, source)
        if source == "aggregator":
            self._heard_s = t_s
        return d

    def heard(self, t_s: float) -> None:
        """The aggregator is alive (any valid message or heartbeat)."""
        self._heard_s = t_s

    def withdraw(self, source: Source) -> None:
        self._held.pop(source, None)

    def withdraw_reactive(self) -> list[str]:
        """After a reload that gave reactive power to the inverter: withdraw every held dispatch that
        asks for Q (it would now be followed for P alone); one line per withdrawal, for the log."""
        owner = inverter_reactive_modes(self.functions) if self.functions is not None else ()
        if not owner:
            return []
        out = []
        for source, held in list(self._held.items()):
            d = held.dispatch
            if d.q_var is not None or any(pt.q_var is not None for pt in d.schedule or []):
                del self._held[source]
                out.append(
                    f"{source} dispatch {d.id!r} withdrawn: it asks for q_var and reactive power is now "
                    f"the inverter's (functions.{owner[0]} = inverter)"
                )
        return out

    def current(self, source: Source) -> Dispatch | None:
        held = self._held.get(source)
        return None if held is None else held.dispatch

    def _active(self, t_unix_s: float, t_s: float) -> tuple[_Held | None, str]:
        """The dispatch to follow now (a local one wins: a technician on site), or why none."""
        why = "no dispatch"
        for source in LOCAL_FIRST:
            held = self._held.get(source)
            if held is None:
                continue
            d = held.dispatch
            if held.expiry_s <= t_unix_s:
                why = f"dispatch {d.id} expired"
                continue
            if held.start_s > t_unix_s:
                why = f"dispatch {d.id} starts at {d.start.isoformat()}"
                continue
            if source == "aggregator":
                silent = math.inf if self._heard_s is None else t_s - self._heard_s
                if silent > self.operation.dispatch_timeout_s:
                    why = f"aggregator silent for {silent:.0f} s"
                    continue
            return held, f"{source} dispatch {d.id}"
        return None, why

    def basis(self, t_unix_s: float, t_s: float) -> Basis:
        """The mode in force and its request for this cycle (NaN P: the mode's local policy)."""
        held, source = self._active(t_unix_s, t_s)
        mode = self.operation.mode
        if held is not None and held.dispatch.mode is not None:
            mode = held.dispatch.mode
        if mode == "idle":
            return Basis(mode, 0.0, 0.0, source if held is not None else "mode idle")
        if mode == "v2h":
            return Basis(mode, math.nan, 0.0, source if held is not None else "mode v2h: serve the home")
        point = held.point(t_unix_s) if held is not None else None
        if point is not None:
            p_w, q_var = point
            return Basis(mode, min(p_w, 0.0) if mode == "v1g" else p_w, q_var, source)
        if mode == "v1g":
            return Basis(mode, math.nan, 0.0, f"mode v1g, {source}: charge toward the owner's target")
        # v2g or schedule with nothing to follow: the local fallback ("charge" is v1g's local policy).
        fallback = self.operation.fallback
        return Basis(
            "v1g" if fallback == "charge" else fallback,
            0.0 if fallback == "idle" else math.nan,
            0.0,
            f"fallback {fallback}: {source}",
        )
