"""The aggregator's commands (and Home Assistant's plain values): decode, check, apply, answer.

``CommandHandler.handle`` never raises: every payload gets a ``Result``, accepted or rejected with a
reason naming the field, the value refused and what is allowed, and a rejected command changes
nothing (neither the dispatcher, nor the overrides, nor the replay guard). In order:

1. the command name, the payload's size (``MAX_PAYLOAD_BYTES``, checked before decoding), UTF-8 JSON,
   an object, the command's typed fields (``edge.link.payloads``, strict);
2. freshness: ``issued_at`` at most ``mqtt.command_max_age_s`` old and at most ``MAX_CLOCK_SKEW_S`` ahead;
3. the replay guard of its name: ``issued_at`` after, and ``id`` other than, the last command applied
   under that name (kept durably under ``REPLAY_KEY``, updated only when a command is applied);
4. the command itself: a dispatch (or a mode with an expiry) goes to the dispatcher as the
   aggregator's, with the dispatcher's own validation; planner inputs go to the local planner
   (``plan_inputs``); a lasting mode, the owner's wishes and grid curves become overrides (``edge.link.overrides``) whose effective settings must pass the settings
   checks and be taken by ``apply`` (the daemon's reload path) before they are kept.

An applied aggregator command counts as hearing the aggregator (``Dispatcher.heard``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, NoReturn, get_args

import msgspec

from edge.daemon.dispatch import Dispatch, Dispatcher, DispatchError, SchedulePoint
from edge.link import overrides as ov
from edge.link.overrides import MetaStore
from edge.link.payloads import (
    COMMAND_TYPES,
    DispatchCommand,
    GridCommand,
    ModeCommand,
    OwnerCommand,
    PlanInputsCommand,
    Result,
    utc,
)
from edge.link.topics import COMMANDS, HA_COMMANDS
from edge.planner.inputs import PlanInputs
from edge.planner.problem import PlanInputError
from edge.settings.changes import get_value
from edge.settings.errors import SettingsError, validation_error
from edge.settings.model import OperationMode, Settings
from edge.settings.paths import lookup

log = logging.getLogger(__name__)

# A full-day schedule (edge.daemon.dispatch.MAX_SCHEDULE_POINTS points of ~60 bytes) fits; a payload
# larger than this is refused before it is decoded.
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_HA_PAYLOAD_BYTES = 64
MAX_CLOCK_SKEW_S = 60.0
REPLAY_KEY = "link.replay"
_MAX_VALUE_CHARS = 120  # a refused value is echoed in the result, shortened
# Grid sections a command may carry, with the function that owns each.
GRID_FUNCTIONS = {"volt_var": "volt_var", "volt_watt": "volt_watt", "freq_droop": "frequency_droop"}
NEVER_REMOTE = ("voltage_trip", "frequency_trip", "ride_through", "enter_service")
_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`")
MODES = ", ".join(get_args(OperationMode))


class LastApplied(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The replay guard of one command name."""

    id: str
    issued_at: datetime


class _RejectedError(Exception):
    """A command refused: the parts of its Result."""

    def __init__(self, field: str | None, value: Any, reason: str, allowed: str | None = None) -> None:
        super().__init__(reason)
        self.field = field
        self.value = value
        self.reason = reason
        self.allowed = allowed


def _guard_name(name: str, cmd: object) -> str:
    """The replay guard a command answers to: one per thing it replaces. A mode with an expiry is a
    dispatch (it takes the aggregator's one dispatch slot), so it shares the dispatch's guard: an
    older dispatch arriving after it must not replace it."""
    if isinstance(cmd, ModeCommand) and cmd.expiry is not None:
        return "dispatch"
    return name


def _reject(field: str | None, value: Any, reason: str, allowed: str | None = None) -> NoReturn:
    raise _RejectedError(field, value, reason, allowed)


def _short(value: Any) -> Any:
    """A refused value small enough to echo (a 10 MiB string is not sent back)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
    if len(text) <= _MAX_VALUE_CHARS:
        return value
    return text[:_MAX_VALUE_CHARS] + f"… ({len(text)} characters)"


class CommandHandler:
    """Turns command payloads into dispatches and overrides; see the module docstring.

    ``settings`` returns the file's settings (overrides are laid over them here); ``apply`` takes a
    whole new effective Settings and returns None, or why the daemon refused it; ``rand`` draws the
    start-window delays (uniform in [0, 1)); ``meta`` is the durable key/value store.
    """

    def __init__(
        self,
        *,
        dispatcher: Dispatcher,
        meta: MetaStore,
        settings: Callable[[], Settings],
        apply: Callable[[Settings], str | None],
        rand: Callable[[], float],
        allow_grid: bool,
    ) -> None:
        self.dispatcher = dispatcher
        self.meta = meta
        self.settings = settings
        self.apply = apply
        self.rand = rand
        self.allow_grid = allow_grid
        # The local planner's intake (edge.daemon.plan_task): None where the planner is off.
        self.plan_inputs: Callable[[PlanInputs], str | None] | None = None

    # --- entry points ---------------------------------------------------------------------------

    def handle(self, name: str, payload: bytes, *, t_unix_s: float, t_s: float) -> Result:
        """Answer one command from a ``cmd/<name>`` topic."""
        return self._answer(name, payload, t_unix_s, t_s, ha=False)

    def handle_ha(self, name: str, payload: bytes, *, t_unix_s: float, t_s: float) -> Result:
        """Answer one Home Assistant plain value from ``ha/<name>/set``: a mode name, a local
        departure time ``HH:MM`` (empty clears it), or a SoC in percent (``departure_soc``,
        ``min_soc``). It becomes a mode or owner command issued now, with id ``ha-<ns>``."""
        return self._answer(name, payload, t_unix_s, t_s, ha=True)

    def effective(self, settings: Settings) -> Settings:
        """The file's ``settings`` with the kept overrides on top (at start and on SIGHUP). Overrides
        the file has since changed, or that no longer validate over it, are dropped and forgotten."""
        current = ov.load(self.meta)
        usable = current
        if not self.allow_grid:
            # The site no longer takes curves from the aggregator: those it sent go too (it could
            # not even clear them now that the state no longer offers the grid command).
            usable = {p: o for p, o in current.items() if not p.startswith("grid.")}
            for path in sorted(set(current) - set(usable)):
                log.warning("link override dropped: %s: mqtt.allow_grid_settings is off", path)
        result, kept, dropped = ov.effective(settings, usable)
        for why in dropped:
            log.warning("link override dropped: %s", why)
        if kept != current:
            ov.save(self.meta, kept)
        return result

    # --- the common path ------------------------------------------------------------------------

    def _answer(self, name: str, payload: bytes, t_unix_s: float, t_s: float, *, ha: bool) -> Result:
        now = utc(t_unix_s)
        label = f"ha/{name}" if ha else name
        cid: str | None = None
        try:
            if ha:
                cmd_name, obj = self._from_ha(name, payload, t_unix_s)
            else:
                cmd_name, obj = name, self._decode(name, payload)
            raw_id = obj.get("id")
            cid = raw_id[:64] if isinstance(raw_id, str) else None
            cmd = self._convert(cmd_name, obj)
            self._check_fresh(cmd.issued_at, t_unix_s)
            guard = _guard_name(cmd_name, cmd)
            self._check_replay(guard, cmd.id, cmd.issued_at)
            reason, start = self._apply(cmd, t_unix_s, t_s, from_aggregator=not ha)
            self._remember(guard, cmd.id, cmd.issued_at)
            if not ha:
                self.dispatcher.heard(t_s)
            return Result(id=cmd.id, command=label, status="accepted", t=now, reason=reason, start=start)
        except _RejectedError as r:
            return Result(
                id=cid,
                command=label,
                status="rejected",
                t=now,
                reason=r.reason,
                field=r.field,
                value=_short(r.value),
                allowed=r.allowed,
            )
        except Exception as exc:  # a bug must cost one command, never the MQTT session
            log.exception("command %s: unexpected failure", label)
            return Result(
                id=cid, command=label, status="rejected", t=now, reason=f"internal error: {exc!r}"[:300]
            )

    def _decode(self, name: str, payload: bytes) -> dict[str, Any]:
        if name not in COMMANDS:
            _reject("command", name, "unknown command", ", ".join(COMMANDS))
        if len(payload) > MAX_PAYLOAD_BYTES:
            _reject("payload", f"{len(payload)} bytes", "too large", f"at most {MAX_PAYLOAD_BYTES} bytes")
        if name == "grid" and not self.allow_grid:
            _reject(
                "command",
                name,
                "grid-support settings are not accepted from the aggregator at this site"
                " (mqtt.allow_grid_settings = false)",
                ", ".join(c for c in COMMANDS if c != "grid"),
            )
        try:
            obj = msgspec.json.decode(payload)
        except msgspec.DecodeError as exc:
            _reject("payload", None, f"not UTF-8 JSON: {exc}")
        except RecursionError:
            _reject("payload", None, "not JSON this charger takes: nested too deeply")
        if not isinstance(obj, dict):
            _reject("payload", type(obj).__name__, "must be a JSON object", "{...}")
        return obj

    def _from_ha(self, name: str, payload: bytes, t_unix_s: float) -> tuple[str, dict[str, Any]]:
        if name not in HA_COMMANDS:
            _reject("command", name, "unknown Home Assistant command", ", ".join(HA_COMMANDS))
        if len(payload) > MAX_HA_PAYLOAD_BYTES:
            _reject("payload", f"{len(payload)} bytes", "too large", f"at most {MAX_HA_PAYLOAD_BYTES} bytes")
        try:
            text = payload.decode("utf-8").strip()
        except UnicodeDecodeError:
            _reject("payload", None, "not UTF-8 text")
        head: dict[str, Any] = {"id": f"ha-{round(t_unix_s * 1e9)}", "issued_at": utc(t_unix_s).isoformat()}
        if name == "mode":
            return "mode", {**head, "mode": text}
        if name == "departure_time":
            return "owner", {**head, "departure_time": text or None}
        try:
            percent = float(text)
        except ValueError:
            _reject(name, text, "not a number", "0 … 100 (%)")
        if not (math.isfinite(percent) and 0.0 <= percent <= 100.0):
            _reject(name, text, "not a percentage", "0 … 100 (%)")
        return "owner", {**head, name: percent / 100.0}

    def _convert(self, name: str, obj: dict[str, Any]) -> Any:
        typ = COMMAND_TYPES[name]
        try:
            return msgspec.convert(obj, typ)
        except msgspec.ValidationError as exc:
            unknown = _UNKNOWN_FIELD.search(str(exc))
            if name == "grid" and unknown and unknown.group(1) in NEVER_REMOTE:
                field = unknown.group(1)
                _reject(field, None, "never settable remotely (protection and ride-through are set locally)")
            err = validation_error(exc, obj, typ=typ)
            path = None if err.path == "<settings>" else err.path
            allowed = err.allowed
            if allowed is None and path is not None and path.rsplit(".", 1)[-1] == "mode":
                allowed = MODES
            if allowed is None and unknown:
                allowed = ", ".join(f.name for f in msgspec.structs.fields(typ))
            _reject(path, err.value, str(exc), allowed)
        except (ValueError, OverflowError) as exc:
            _reject("payload", None, f"not a valid {name} command: {exc}")

    def _check_fresh(self, issued_at: datetime, t_unix_s: float) -> None:
        issued_s = issued_at.timestamp()
        max_age_s = self.settings().mqtt.command_max_age_s
        if issued_s < t_unix_s - max_age_s:
            _reject(
                "issued_at",
                issued_at.isoformat(),
                f"expired: issued {t_unix_s - issued_s:.0f} s ago",
                f"at most {max_age_s:g} s old (mqtt.command_max_age_s)",
            )
        if issued_s > t_unix_s + MAX_CLOCK_SKEW_S:
            _reject(
                "issued_at",
                issued_at.isoformat(),
                f"not yet valid: {issued_s - t_unix_s:.0f} s in the future (a clock is wrong)",
                f"at most {MAX_CLOCK_SKEW_S:g} s ahead of the charger's clock {utc(t_unix_s).isoformat()}",
            )

    # --- replay guard ---------------------------------------------------------------------------

    def _guards(self) -> dict[str, LastApplied]:
        text = self.meta.get_meta(REPLAY_KEY)
        if not text:
            return {}
        try:
            return msgspec.json.decode(text, type=dict[str, LastApplied])
        except msgspec.DecodeError as exc:
            # Refusing every command forever would be worse: the freshness check still bounds replays.
            log.warning("command replay guard unreadable (%s): starting afresh", exc)
            return {}

    def _check_replay(self, name: str, cid: str, issued_at: datetime) -> None:
        last = self._guards().get(name)
        if last is None:
            return
        if cid == last.id:
            _reject("id", cid, f"replayed: the last {name} command applied had this id")
        if issued_at <= last.issued_at:
            _reject(
                "issued_at",
                issued_at.isoformat(),
                f"not newer than the last {name} command applied ({last.id})",
                f"after {last.issued_at.isoformat()}",
            )

    def _remember(self, name: str, cid: str, issued_at: datetime) -> None:
        guards = self._guards()
        guards[name] = LastApplied(cid, issued_at)
        self.meta.put_meta(REPLAY_KEY, msgspec.json.encode(guards).decode())

    # --- applying -------------------------------------------------------------------------------

    def _apply(
        self, cmd: Any, t_unix_s: float, t_s: float, *, from_aggregator: bool
    ) -> tuple[str | None, datetime | None]:
        if isinstance(cmd, DispatchCommand):
            return self._dispatch(cmd, t_unix_s, t_s)
        if isinstance(cmd, ModeCommand):
            if cmd.expiry is None:
                self._override({ov.MODE_PATH: cmd.mode})
                return f"mode {cmd.mode} until another mode command", None
            if cmd.mode not in ("idle", "v1g", "v2h"):
                _reject(
                    "mode",
                    cmd.mode,
                    f"{cmd.mode} with an expiry needs set points: send a dispatch command, or give no"
                    " expiry for a lasting mode",
                    "idle, v1g, v2h (with an expiry)",
                )
            d = Dispatch(id=cmd.id, start=utc(t_unix_s), expiry=cmd.expiry, mode=cmd.mode)
            self._offer(d, t_unix_s, t_s)
            return f"mode {cmd.mode} until {cmd.expiry.isoformat()}", None
        if isinstance(cmd, PlanInputsCommand):
            self._plan_inputs(cmd.inputs)
            return None, None
        if isinstance(cmd, OwnerCommand):
            changes: dict[str, Any] = {}
            if not isinstance(cmd.min_soc, msgspec.UnsetType):
                changes["owner.min_soc"] = cmd.min_soc
            if not isinstance(cmd.departure_soc, msgspec.UnsetType):
                changes["owner.departure_soc"] = cmd.departure_soc
            if not isinstance(cmd.departure_time, msgspec.UnsetType):
                dep = cmd.departure_time
                changes["owner.departure_time"] = None if dep is None else f"{dep}:00"
            if not changes:
                _reject(None, None, "nothing to change", "min_soc, departure_time, departure_soc")
            self._override(changes)
            return None, None
        assert isinstance(cmd, GridCommand)
        return self._grid(cmd), None

    def _offer(self, d: Dispatch, t_unix_s: float, t_s: float) -> None:
        try:
            self.dispatcher.offer(d, "aggregator", t_unix_s, t_s)
        except DispatchError as exc:
            try:
                value = lookup(msgspec.to_builtins(d), exc.field)
            except KeyError:
                value = None
            _reject(exc.field, value, str(exc))

    def _dispatch(
        self, cmd: DispatchCommand, t_unix_s: float, t_s: float
    ) -> tuple[str | None, datetime | None]:
        start, schedule = cmd.start, cmd.schedule
        window = cmd.start_window_s
        if window > 0.0:
            span_s = (cmd.expiry - cmd.start).total_seconds()
            if window >= span_s:
                _reject(
                    "start_window_s",
                    window,
                    "the window reaches the expiry: every drawn start must leave time to follow it",
                    f"< {span_s:g} s (expiry - start)",
                )
            try:
                start = cmd.start + timedelta(seconds=self.rand() * window)
            except OverflowError:
                _reject("start", cmd.start.isoformat(), "outside the range of dates")
            if schedule:
                # A point without a time zone cannot be compared: the dispatcher's validation names it.
                with contextlib.suppress(TypeError):
                    schedule = _from(schedule, start)
        d = Dispatch(
            id=cmd.id,
            start=start,
            expiry=cmd.expiry,
            p_w=cmd.p_w,
            q_var=cmd.q_var,
            schedule=schedule,
            mode=cmd.mode,
        )
        self._offer(d, t_unix_s, t_s)
        if window > 0.0:
            return f"start drawn within the {window:g} s window: {start.isoformat()}", start
        return None, start

    def _plan_inputs(self, inputs: PlanInputs) -> None:
        if self.plan_inputs is None:
            _reject("command", "plan_inputs", "this charger runs no planner (planner.enabled = false)")
        try:
            inputs.check()
        except PlanInputError as exc:
            _reject(f"inputs.{exc.field}", None, str(exc))
        why = self.plan_inputs(inputs)
        if why is not None:
            _reject(None, None, f"the planner did not take them: {why}")

    def _grid(self, cmd: GridCommand) -> str | None:
        file = self.settings()
        changes: dict[str, Any] = {}
        for section, function in GRID_FUNCTIONS.items():
            curve = getattr(cmd, section)
            if curve is None:
                continue
            owner = getattr(file.functions, function)
            if owner == "off":
                _reject(
                    section,
                    None,
                    f"functions.{function} is off at this site: the curve would not be used",
                    "a function owned by the daemon or the inverter",
                )
            changes[f"grid.{section}"] = msgspec.to_builtins(curve)
        if not changes:
            _reject(None, None, "nothing to change", ", ".join(GRID_FUNCTIONS))
        self._override(changes)
        return None

    def _override(self, changes: dict[str, Any]) -> None:
        """Lay ``changes`` over the file with the kept overrides; validated, taken by ``apply``, kept."""
        file = self.settings()
        _, kept, _ = ov.effective(file, ov.load(self.meta))
        candidate = dict(kept)
        for path, value in changes.items():
            candidate[path] = ov.Override(value=value, file=get_value(file, path))
        try:
            new = ov.compose(file, candidate)
        except SettingsError as exc:
            _reject(exc.path, exc.value, exc.reason, exc.allowed)
        why = self.apply(new)
        if why is not None:
            _reject(None, None, f"the daemon did not take it: {why}")
        ov.save(self.meta, candidate)


def _from(schedule: list[SchedulePoint], start: datetime) -> list[SchedulePoint]:
    """The schedule as followed from a delayed ``start``: the point in force then moves to the start,
    the points before it go (what is asked from the start on is unchanged)."""
    later = [pt for pt in schedule if pt.at > start]
    earlier = [pt for pt in schedule if pt.at <= start]
    if earlier:
        later.insert(0, msgspec.structs.replace(earlier[-1], at=start))
    return later
