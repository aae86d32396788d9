"""Bytes a writer thread hands the kernel, and their rate over the last hour: shared by the state
store's writer (``edge.state.writer``) and the MQTT outbox's (``edge.link.spool``).

Measured from the thread's own ``/proc/thread-self/io``: ``wchar`` (what its write calls handed
the kernel: the database, its log, the checkpoints) and ``write_bytes`` (the page-cache pages it
dirtied, 4 KiB each, which is what writeback sends to the card). Where that file cannot be read
(not Linux), both fall back to the payload sizes the writer reports, a lower bound, and
``measured`` says so. ``begin`` and ``measure`` run on the writer thread; ``rates`` anywhere.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

RATE_WINDOW_S = 3600.0
_THREAD_IO = Path("/proc/thread-self/io")


def thread_io() -> tuple[int, int] | None:
    """(wchar, write_bytes) of the calling thread, or None where the kernel does not say."""
    try:
        text = _THREAD_IO.read_text(encoding="ascii")
    except OSError:
        return None
    fields = dict(line.partition(":")[::2] for line in text.splitlines())
    try:
        return int(fields["wchar"]), int(fields["write_bytes"])
    except (KeyError, ValueError):
        return None


@dataclass(frozen=True)
class Rates:
    bytes_written: int
    bytes_per_hour: float  # over the last hour (over the time since the first sample, when younger)
    bytes_dirtied: int
    dirtied_per_hour: float
    measured: bool  # False: both are the payload sizes (no /proc)


class WriteMeter:
    """See the module docstring. ``clock``: monotonic seconds, for the hourly window."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._base: tuple[int, int] | None = None
        self._bytes = (0, 0)  # written, dirtied
        self._samples: deque[tuple[float, tuple[int, int]]] = deque()  # (clock, _bytes) after commits

    def begin(self) -> None:
        """On the writer thread, before it writes anything: counting starts here."""
        self._base = thread_io()

    def measure(self, payload_bytes: int, *, sample: bool) -> None:
        """On the writer thread, after a write (``payload_bytes``: its size, for the fallback).
        ``sample``: a point of the hourly rate (after a commit, or at open as its start)."""
        with self._lock:
            if self._base is None:
                self._bytes = (self._bytes[0] + payload_bytes, self._bytes[1] + payload_bytes)
            else:
                now = thread_io()
                if now is not None:
                    self._bytes = (now[0] - self._base[0], now[1] - self._base[1])
            if sample:
                t = self.clock()
                self._samples.append((t, self._bytes))
                self._trim(t)

    def rates(self) -> Rates:
        now = self.clock()
        with self._lock:
            cutoff = self._trim(now)
            t0, b0 = self._samples[0] if self._samples else (now, self._bytes)
            span = now - max(t0, cutoff)
            per_hour = 3600.0 / span if span > 0.0 else 0.0
            return Rates(
                bytes_written=self._bytes[0],
                bytes_per_hour=(self._bytes[0] - b0[0]) * per_hour,
                bytes_dirtied=self._bytes[1],
                dirtied_per_hour=(self._bytes[1] - b0[1]) * per_hour,
                measured=self._base is not None,
            )

    def _trim(self, now: float) -> float:
        """Keep the samples of the last hour and the one before it; returns the hour's start.
        Call with the lock held."""
        cutoff = now - RATE_WINDOW_S
        while len(self._samples) >= 2 and self._samples[1][0] <= cutoff:
            self._samples.popleft()
        return cutoff
