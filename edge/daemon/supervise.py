"""Does the power stage do what it is told? The "output mismatch" event and its likely cause.

A stage that silently ignores its setpoint (stopped by command, faulted, an EV that takes no power, a
derating the ratings do not show) looks healthy on every link while the charger does nothing. This
compares the measured active power with the command on each cycle's snapshot: a difference beyond
the tolerance that lasts longer than the stage can take to respond is an output mismatch, reported
once when it begins (with the likely cause) and once when it ends. Pure computation: time is the
snapshot's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from edge.daemon.snapshot import Command, Snapshot
from edge.daemon.vehicle import ev_present

log = logging.getLogger(__name__)

TOLERANCE_MIN_W = 200.0
TOLERANCE_SHARE = 0.05  # of the stage's rating
WINDOW_MIN_S = 2.0


@dataclass(frozen=True)
class Mismatch:
    """An output mismatch under way since ``since_s``."""

    since_s: float
    p_cmd_w: float
    p_meas_w: float
    cause: str

    def message(self) -> str:
        return f"commanded {self.p_cmd_w:.0f} W, measured {self.p_meas_w:.0f} W: {self.cause}"


def likely_cause(snap: Snapshot, cmd: Command) -> str:
    """The most likely reason the stage's output differs from ``cmd``, from what the stage reports."""
    st = snap.stage
    assert st is not None
    assert st.p_w is not None
    if cmd.service is False:
        return "the stage still delivers power after the stop command"
    if st.stopped:
        return f"the stage reports it is off (state {st.operating}); the start command was sent"
    if st.operating == "FAULT" or st.alarms:
        alarms = ", ".join(sorted(st.alarms)) or "none named"
        return f"the stage reports a fault (state {st.operating}, alarms: {alarms})"
    if st.connected is False:
        return "the stage reports it is not connected to the grid"
    if ev_present(st) is False:
        return "no EV is plugged in"
    if abs(st.p_w) < TOLERANCE_MIN_W:
        return "no power flows: the EV takes none, or the EVSE's contactors are open"
    if abs(st.p_w) < abs(cmd.p_w) and (st.p_w > 0) == (cmd.p_w > 0):
        return f"the stage limits its output to about {abs(st.p_w):.0f} W (its own or the EV's limits)"
    return "the stage does not follow its setpoint"


class OutputMonitor:
    """Tracks the measured output against the command; ``update`` returns the mismatch under way."""

    def __init__(self, rated_w: float, response_tau_s: float, latency_s: float) -> None:
        self._since_s: float | None = None
        self.current: Mismatch | None = None
        self.configure(rated_w, response_tau_s, latency_s)

    def configure(self, rated_w: float, response_tau_s: float, latency_s: float) -> None:
        """New settings; a mismatch under way goes on (a reload does not end it)."""
        self.tolerance_w = max(TOLERANCE_MIN_W, TOLERANCE_SHARE * rated_w)
        # Five time constants (within 1 % of a step) plus the latency, never less than two seconds.
        self.window_s = max(WINDOW_MIN_S, 5.0 * response_tau_s + latency_s)

    def update(self, snap: Snapshot, cmd: Command) -> Mismatch | None:
        st = snap.stage
        fresh = st is not None and st.p_w is not None and snap.t_s - st.t_s <= self.window_s
        if not fresh or cmd.service is None or st is None or st.p_w is None:
            # Nothing to compare (no data, or a hold where the stage's operation is not ours to judge).
            self._since_s = None
            self._end(snap.t_s)
            return None
        target = 0.0 if cmd.service is False else cmd.p_w
        if abs(st.p_w - target) <= self.tolerance_w:
            self._since_s = None
            self._end(snap.t_s)
            return None
        if self._since_s is None:
            self._since_s = snap.t_s
        if self.current is None and snap.t_s - self._since_s >= self.window_s:
            self.current = Mismatch(self._since_s, target, st.p_w, likely_cause(snap, cmd))
            log.warning("output mismatch: %s", self.current.message())
        return self.current

    def _end(self, t_s: float) -> None:
        if self.current is not None:
            log.info("output matches the command again (mismatch lasted %.1f s)", t_s - self.current.since_s)
            self.current = None
