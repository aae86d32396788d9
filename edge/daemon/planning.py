"""Runs the owner's departure planner beside the fast cycle and hands the cycle its limit.

Every ``PERIOD_S`` (every ``WAIT_S`` while its plan lacks a SoC or the pack's energy) a background
task takes the latest snapshot the cycle made (SoC, pack energy, the charge power the limits allow)
and the local wall time in the configured zone, and plans (``edge.daemon.departure``). The cycle
only reads ``limit.p_max_at(t)``: a plan that grew older than its ``max_age_s`` (a stalled task)
allows no discharge on its own.

The local zone is a real zoneinfo zone (``owner.time_zone``, else the system's ``/etc/localtime``), so
that a departure across a daylight-saving change is planned at the right instant.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge.daemon.battery import power_limits, reserve_soc
from edge.daemon.departure import DepartureLimit, DeparturePlanner
from edge.daemon.snapshot import Snapshot
from edge.daemon.tasks import cancel
from edge.settings import Settings

log = logging.getLogger(__name__)

PERIOD_S = 5.0
# How often it plans while it has no SoC or pack energy to plan with (no snapshot yet, none with the
# SoC, or a SoC lost): after a start, discharge waits for the first reading, not a whole period more.
WAIT_S = 0.25
WAITING = frozenset({"unknown_soc", "unknown_capacity"})
SYSTEM_ZONE = Path("/etc/localtime")


def local_zone(name: str | None) -> tzinfo:
    """The zone departure times are in: ``name`` (IANA), else the system's; UTC (said once) without."""
    if name:
        return ZoneInfo(name)
    try:
        with open(SYSTEM_ZONE, "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError, ZoneInfoNotFoundError) as exc:
        log.warning("no system time zone (%s): departure times are taken as UTC; set owner.time_zone", exc)
        return UTC


class DepartureTask:
    """The planner, its zone and its latest limit; ``start``/``stop`` run it in the background."""

    def __init__(
        self,
        settings: Settings,
        latest: Callable[[], Snapshot | None],
        *,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self.latest = latest
        self.clock = clock
        self.wall_clock = wall_clock
        self.limit: DepartureLimit | None = None
        self._task: asyncio.Task[None] | None = None
        self.configure(settings)

    def configure(self, settings: Settings) -> None:
        """New owner settings: a new planner (it keeps only two flags; starting afresh is the safe way)."""
        self.planner = DeparturePlanner.from_settings(settings, max_age_s=3.0 * PERIOD_S)
        self.zone = local_zone(settings.owner.time_zone)
        self.limit = None
        self.plan()  # at once: a reload must not leave a forced charge without a plan for a period

    def p_max_w(self, t_s: float) -> float:
        """The bound on the dispatch basis now; no plan yet with a departure set: no discharge."""
        if self.planner is None or not self.planner.has_departure:
            return math.inf
        return 0.0 if self.limit is None else self.limit.p_max_at(t_s)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="departure-planner")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        failing = False
        while True:
            try:
                self.plan()
                failing = False
            except Exception:  # the stale plan then allows no discharge (p_max_at); say so once
                if not failing:
                    log.exception("departure planning failed: discharge held while it fails")
                failing = True
            await asyncio.sleep(WAIT_S if self.waiting else PERIOD_S)

    @property
    def waiting(self) -> bool:
        """A departure is set and its plan waits for a SoC (or the pack's energy) it does not have."""
        if self.planner is None or not self.planner.has_departure:
            return False
        return self.limit is None or self.limit.state in WAITING

    def plan(self) -> DepartureLimit | None:
        """Plan once from the latest snapshot (a few microseconds: arithmetic only)."""
        snap = self.latest()
        if self.planner is None or snap is None:
            return None
        now = datetime.fromtimestamp(self.wall_clock(), self.zone)
        previous = self.limit
        self.limit = self.planner.plan(
            now, self.clock(), _soc(snap), snap.battery.e_per_soc_wh, _p_charge_w(snap)
        )
        if previous is None or previous.state != self.limit.state:
            log.info("departure: %s", self.limit.reason or self.limit.state)
        return self.limit


def _soc(snap: Snapshot) -> float | None:
    soc = math.nan if snap.stage is None else reserve_soc(snap.stage, snap.battery)
    return None if math.isnan(soc) else soc


def _p_charge_w(snap: Snapshot) -> float:
    return 0.0 if snap.stage is None else power_limits(snap.ratings, snap.stage, snap.battery)[1]
