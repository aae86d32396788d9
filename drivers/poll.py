"""Polling plans (which register blocks, how often), the RTU wire-time budget, and the poll loop.

A plan is a list of :class:`Block` reads. A block covers whole models or whole vendor-map groups so
that scale factors arrive in the same request as their values (a value and its scale factor from two
different moments could be off by a factor of ten). On an RTU line every request takes real wire
time; :func:`budget` adds up each device's plan at the configured baud rate and says when the line
cannot carry it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from drivers.config import BusConfig, DeviceConfig
from drivers.errors import DriverError
from drivers.stats import StatsSnapshot
from drivers.transport import MAX_READ, DeviceLink

log = logging.getLogger(__name__)

# The Modbus RTU frame gap: 3.5 character times of silence before each frame.
RTU_GAP_CHARS = 3.5
# What the stack adds per request on top of wire time (measured: 0.8 to 1.2 ms; docs/dependencies).
STACK_OVERHEAD_S = 0.0015


@dataclass(frozen=True)
class Block:
    """One read request: ``count`` registers at ``address`` with function code ``fc``, every ``period_s``."""

    name: str
    fc: int
    address: int
    count: int
    period_s: float


def coalesce(
    ranges: Iterable[tuple[int, int]], max_gap: int = 16, max_count: int = MAX_READ
) -> list[tuple[int, int]]:
    """Merge (address, count) ranges into as few reads as fit ``max_count``; a range is never split.

    Gaps up to ``max_gap`` registers are read over (cheaper than another request's overhead).
    """
    out: list[tuple[int, int]] = []
    for addr, count in sorted(ranges):
        if out:
            a0, c0 = out[-1]
            end = max(a0 + c0, addr + count)
            if addr <= a0 + c0 + max_gap and end - a0 <= max_count:
                out[-1] = (a0, end - a0)
                continue
        out.append((addr, count))
    return out


def request_wire_s(fc: int, count: int, bus: BusConfig) -> float:
    """Wire time of one RTU request and its answer at the bus's baud rate, frame gaps included.

    Read (fc 3/4): request 8 bytes, answer 5 + 2·count. Write multiple (fc 16): request 9 + 2·count,
    answer 8.
    """
    chars = 8 + 5 + 2 * count if fc in (3, 4) else 9 + 2 * count + 8
    return (chars + 2 * RTU_GAP_CHARS) * bus.bits_per_char / bus.baud + STACK_OVERHEAD_S


@dataclass(frozen=True)
class Budget:
    """Share of the line's time a bus's plans need (1.0 = the line never rests)."""

    bus: str
    load: float
    per_device: Mapping[str, float]

    @property
    def fits(self) -> bool:
        return self.load <= 1.0

    def message(self) -> str:
        parts = ", ".join(f"{d} {x:.0%}" for d, x in sorted(self.per_device.items()))
        verdict = "fits" if self.fits else "does NOT fit: polls will run late; lower poll rates or raise baud"
        return f"bus {self.bus!r}: polling plan needs {self.load:.0%} of the line ({parts}); {verdict}"


def budget(bus_name: str, bus: BusConfig, plans: Mapping[str, Sequence[Block]]) -> Budget:
    """The line load of ``plans`` (device name -> blocks) on an RTU bus; TCP buses report load 0."""
    per_device: dict[str, float] = {}
    for device, blocks in plans.items():
        if bus.transport != "rtu":
            per_device[device] = 0.0
            continue
        per_device[device] = sum(request_wire_s(b.fc, b.count, bus) / b.period_s for b in blocks)
    return Budget(bus_name, sum(per_device.values()), per_device)


R = TypeVar("R")


class PolledDevice(ABC, Generic[R]):
    """A device driver: set up once (discovery, ratings), then read its plan periodically.

    ``read()`` reads the fast blocks now and publishes the reading; ``latest()`` is the freshest good
    reading. The poll loop calls ``setup()`` until it succeeds, then ``read()`` every ``poll_s`` and
    ``refresh()`` (ratings, settings) every ``slow_poll_s``. Failures are counted and logged by the
    bus worker (once per breakdown); the loop carries on.
    """

    def __init__(self, name: str, link: DeviceLink, config: DeviceConfig) -> None:
        self.name = name
        self.link = link
        self.config = config
        self._latest: R | None = None
        self._ready = False
        self._setup_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._reported: set[str] = set()
        self.clock: Callable[[], float] = link.bus.clock

    @abstractmethod
    async def setup(self) -> None:
        """Find out what the device is (discovery, static points, ratings)."""

    @abstractmethod
    async def _read(self) -> R:
        """Read the fast blocks and decode them into a reading."""

    async def refresh(self) -> None:
        """Re-read slow points (ratings, settings); default: nothing."""

    @abstractmethod
    def plan(self) -> list[Block]:
        """The blocks this device reads (known after ``setup``), for the line budget."""

    @property
    def ready(self) -> bool:
        return self._ready

    async def ensure_setup(self) -> None:
        if self._ready:
            return
        async with self._setup_lock:  # the poll loop and the daemon may both ask first
            if not self._ready:
                await self.setup()
                self._ready = True

    async def read(self) -> R:
        await self.ensure_setup()
        reading = await self._read()
        self._latest = reading
        return reading

    def latest(self) -> R | None:
        return self._latest

    def stats(self) -> StatsSnapshot:
        return self.link.stats.snapshot()

    def start_polling(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._poll_loop(), name=f"poll-{self.name}")

    async def stop_polling(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        # pymodbus may turn a cancellation that lands inside a request into an I/O error, which the
        # loop survives by design: cancel again until the task has really ended.
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _poll_loop(self) -> None:
        next_slow = 0.0
        while True:
            t0 = time.monotonic()
            period = self.config.poll_s
            try:
                if not self._ready:
                    await self.ensure_setup()
                    next_slow = t0 + self.config.slow_poll_s
                elif t0 >= next_slow:
                    next_slow = t0 + self.config.slow_poll_s
                    await self.refresh()
                await self.read()
            except DriverError as e:
                if e.kind == "config":
                    log.error("device %r cannot be used: %s", self.name, e)
                    return
                if e.kind == "unsupported" and not e.retryable:
                    # Not what the config says it is (yet: a device may still be booting).
                    self._report(
                        f"device {self.name!r} is not usable, retrying every {self.config.slow_poll_s} s: {e}"
                    )
                    period = self.config.slow_poll_s
            except Exception as e:
                # A bug must not end polling silently; it is logged once per kind of failure.
                key = f"{type(e).__name__}: {e}"
                if key not in self._reported:
                    self._reported.add(key)
                    log.exception("device %r: unexpected error while polling", self.name)
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise asyncio.CancelledError  # a cancellation a library swallowed still ends polling
            await asyncio.sleep(max(0.0, period - (time.monotonic() - t0)))

    def _report(self, message: str) -> None:
        if message not in self._reported:
            self._reported.add(message)
            log.error("%s", message)
