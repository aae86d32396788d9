"""Name what happened from one cycle to the next: trips, islanding, entering service, fail-safe, device
links lost and back, plug-in sessions. These are the events the aggregator and the state store get.

Pure: ``update`` compares this cycle's command, device health and session with the previous ones and
returns the events (kind and detail) that the change means; nothing is read from a clock or a bus.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edge.daemon.sessions import SessionStatus
from edge.daemon.snapshot import Command

# The reasons that make the cycle hold zero export for want of trustworthy data: the fail-safe.
FAIL_SAFE_REASONS = frozenset({"meter_stale", "meter_frozen", "export_backstop", "grid_meas_invalid"})
FAIL_SAFE_STATES = frozenset({"no_power_stage"})
ISLAND_REASONS = frozenset({"island_rocof", "island_phase_jump", "island_min_import", "island_active"})


@dataclass(frozen=True)
class DeviceState:
    """A device link as the cycle sees it: failing or not, and why."""

    failing: bool
    error: str | None = None


Event = tuple[str, dict[str, object]]


def fail_safe_reasons(cmd: Command) -> list[str]:
    """Why ``cmd`` is the fail-safe (zero export for want of trustworthy data), or [] when it is not."""
    if cmd.state in FAIL_SAFE_STATES:
        return [cmd.state, *cmd.reasons]
    return sorted(FAIL_SAFE_REASONS.intersection(cmd.reasons))


class EventDeriver:
    """Keeps the previous cycle's view; see the module docstring."""

    def __init__(self) -> None:
        self._cmd: Command | None = None
        self._devices: dict[str, DeviceState] = {}
        self._session: SessionStatus | None = None

    def update(self, cmd: Command, session: SessionStatus | None) -> list[Event]:
        """The events of this cycle's command and session (every cycle: a trip may be short)."""
        out: list[Event] = []
        prev = self._cmd
        if prev is None or prev.state != cmd.state:
            out.extend(self._state_change(prev, cmd))
        was_safe = fail_safe_reasons(prev) if prev is not None else []
        now_safe = fail_safe_reasons(cmd)
        if now_safe and not was_safe:
            out.append(("fail_safe_entered", {"reasons": now_safe, "p_w": cmd.p_w}))
        elif was_safe and not now_safe:
            out.append(("fail_safe_left", {"was": was_safe}))
        if session is not None and (
            self._session is None or session.start_unix_s != self._session.start_unix_s
        ):
            out.append(("session_start", {"start_unix_s": session.start_unix_s, "soc": session.soc_start}))
        if self._session is not None and (
            session is None or session.start_unix_s != self._session.start_unix_s
        ):
            s = self._session
            out.append(
                (
                    "session_end",
                    {
                        "start_unix_s": s.start_unix_s,
                        "e_charge_ac_wh": s.e_charge_ac_wh,
                        "e_discharge_ac_wh": s.e_discharge_ac_wh,
                        "soc_start": s.soc_start,
                        "soc_end": s.soc_now,
                        "limits": s.limits,
                    },
                )
            )
        self._cmd = cmd
        self._session = session
        return out

    def devices(self, devices: Mapping[str, DeviceState]) -> list[Event]:
        """The events of the device links (whenever their health is looked at: once a second)."""
        out: list[Event] = []
        for name, dev in devices.items():
            before = self._devices.get(name)
            if dev.failing and (before is None or not before.failing):
                out.append(("comm_lost", {"device": name, "error": dev.error}))
            elif not dev.failing and before is not None and before.failing:
                out.append(("comm_restored", {"device": name}))
        self._devices = dict(devices)
        return out

    @staticmethod
    def _state_change(prev: Command | None, cmd: Command) -> list[Event]:
        out: list[Event] = []
        detail: dict[str, object] = {
            "from": prev.state if prev else None,
            "to": cmd.state,
            "reasons": cmd.reasons,
        }
        if cmd.state == "tripped":
            island = sorted(ISLAND_REASONS.intersection(cmd.reasons))
            out.append(("island" if island else "trip", detail))
        elif prev is not None and prev.state == "waiting" and cmd.state in ("ramping", "normal"):
            out.append(("enter_service", detail))
        elif cmd.state == "momentary_cessation":
            out.append(("momentary_cessation", detail))
        return out
