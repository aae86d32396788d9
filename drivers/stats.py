"""Per-device communication statistics: round-trip percentiles, errors, timeouts, last success."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class StatsSnapshot:
    """What the daemon reports for one device; times are monotonic seconds, None before any success."""

    device: str
    requests: int
    errors: int
    timeouts: int
    exceptions: int
    rtt_p50_s: float | None
    rtt_p99_s: float | None
    last_success_t_s: float | None
    failing: bool
    frozen: bool
    last_error: str | None = None  # the text of the last failure (kept after recovery)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..1)."""
    k = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


class DeviceStats:
    """Counters of one device, updated by the bus worker; round trips of the last ``window`` requests."""

    def __init__(self, device: str, window: int = 1000) -> None:
        self.device = device
        self.requests = 0
        self.errors = 0
        self.timeouts = 0
        self.exceptions = 0
        self.last_success_t_s: float | None = None
        self.failing = False
        self.frozen = False
        self.last_error: str | None = None
        self._rtt: deque[float] = deque(maxlen=window)

    def success(self, rtt_s: float, t_s: float) -> None:
        self.requests += 1
        self._rtt.append(rtt_s)
        self.last_success_t_s = t_s

    def failure(self, kind: str) -> None:
        self.requests += 1
        self.errors += 1
        if kind == "timeout":
            self.timeouts += 1
        elif kind == "exception":
            self.exceptions += 1

    def snapshot(self) -> StatsSnapshot:
        rtt = sorted(self._rtt)
        return StatsSnapshot(
            device=self.device,
            requests=self.requests,
            errors=self.errors,
            timeouts=self.timeouts,
            exceptions=self.exceptions,
            rtt_p50_s=percentile(rtt, 0.5) if rtt else None,
            rtt_p99_s=percentile(rtt, 0.99) if rtt else None,
            last_success_t_s=self.last_success_t_s,
            failing=self.failing,
            frozen=self.frozen,
            last_error=self.last_error,
        )
