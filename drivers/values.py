"""Timestamped values and frozen-device detection.

Every value the drivers publish carries the monotonic time it was read (``t_s``). A failed read
publishes nothing: the last good reading keeps its own, older time, so its age tells the daemon how
stale it is. A device whose points stop changing while the map says they must move (a heartbeat
counter, a measured voltage) is *frozen*: its readings are flagged, since a stuck register looks
exactly like a steady plant.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Registers:
    """Raw registers of one request and the monotonic time the answer arrived."""

    address: int
    values: tuple[int, ...]
    t_s: float


class FrozenDetector:
    """Flags a value that has not changed for ``window_s`` seconds (times are monotonic, passed in)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._value: object = None
        self._changed_t_s: float | None = None

    def update(self, value: object, t_s: float) -> bool:
        """Record a read; True when the value has been the same for at least ``window_s``."""
        if value is None:
            # A point that reads "not implemented" cannot prove the device alive; it is not evidence
            # of a freeze either, so the clock keeps running from the last change.
            return self.frozen(t_s)
        if self._changed_t_s is None or value != self._value:
            self._value = value
            self._changed_t_s = t_s
            return False
        return self.frozen(t_s)

    def frozen(self, t_s: float) -> bool:
        return self._changed_t_s is not None and t_s - self._changed_t_s >= self.window_s
