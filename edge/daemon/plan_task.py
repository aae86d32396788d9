"""Runs the local planner beside the fast cycle and hands its schedule to the dispatcher.

With ``planner.enabled`` and ``operation.mode = "schedule"``, a background task plans every
``planner.replan_s`` (every ``TICK_S`` while it has no plan), at once on new inputs (the inputs file changed, an MQTT ``plan_inputs``
command, a settings reload) and when the SoC strays more than ``DEVIATION_SOC`` from what the plan
expected by now. The plan is offered to the dispatcher as the ``planner`` source, the lowest in
priority (a technician's local dispatch and a live aggregator's dispatch win), with an expiry of
``EXPIRY_PERIODS`` re-planning periods: a planner that stops re-planning stops steering the charger,
and the mode's fallback takes over. The departure planner (``edge.daemon.planning``) still bounds
whatever the schedule asks, as it bounds every dispatch.

The solve runs in a worker thread (tens of ms for 96 steps; a loop cycle must not wait for it), and
so do the inputs file's stat and read (a slow SD card must not stall the loop either). No
plan without a known SoC and an EV plugged in: the planner's dispatch is withdrawn and the retained
plan says why. Every plan (or its absence) goes to ``on_plan`` (the uplink's retained ``plan``) and
to ``plan.json`` in the runtime directory for ``v2gctl plan``. The default forecaster learns the
house's import without the EV from the snapshots (site import plus the EV's own discharge).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

import msgspec
import numpy as np

from edge.daemon.battery import power_limits, reserve_soc
from edge.daemon.dispatch import Dispatch, Dispatcher, DispatchError, SchedulePoint
from edge.daemon.planning import DepartureTask, local_zone
from edge.daemon.snapshot import Snapshot
from edge.daemon.tasks import cancel, wait_set
from edge.daemon.vehicle import ev_present
from edge.fileio import write_atomic
from edge.link.payloads import PlanPayload, utc
from edge.planner.envelope import envelope
from edge.planner.forecast import SlotForecaster
from edge.planner.inputs import PlanInputs, Session, build, load_file
from edge.planner.problem import PlanInputError
from edge.planner.report import none_payload, to_payload
from edge.planner.solve import Plan, PlanError, solve
from edge.settings import Settings

log = logging.getLogger(__name__)

TICK_S = 10.0  # how often the task looks at the snapshot (forecaster, deviation, file, due)
START_POLL_S = 0.5  # until the cycle has read the power stage once: the first plan comes at once
DEVIATION_SOC = 0.03
EXPIRY_PERIODS = 2.0


class PlanTask:
    """The planner of one charger; ``start``/``stop`` run it; ``take_inputs`` is the MQTT intake."""

    def __init__(
        self,
        settings: Settings,
        latest: Callable[[], Snapshot | None],
        dispatcher: Dispatcher,
        departure: DepartureTask,
        *,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        runtime_dir: Path | None = None,
    ) -> None:
        self.latest = latest
        self.dispatcher = dispatcher
        self.departure = departure
        self.clock = clock
        self.wall_clock = wall_clock
        self.plan_path = None if runtime_dir is None else runtime_dir / "plan.json"
        self.on_plan: Callable[[bytes], Awaitable[None]] | None = None
        self.plan: Plan | None = None
        self.why: str = "not planned yet"
        self.mqtt_inputs = PlanInputs()
        self.file_inputs = PlanInputs()
        self._file_mtime: float | None = None
        self._last_plan_s: float | None = None  # wall clock: the plan's steps are wall-clock steps
        self.tick_s = TICK_S
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.settings = settings
        self.forecaster = SlotForecaster(local_zone(settings.owner.time_zone), float(settings.planner.step_s))
        self.configure(settings)

    @property
    def active(self) -> bool:
        p = self.settings
        return p.planner.enabled and p.operation.mode == "schedule"

    def configure(self, settings: Settings) -> None:
        """New settings: a new zone or step restarts the forecaster; plan again at once."""
        old = self.settings
        self.settings = settings
        self.zone = local_zone(settings.owner.time_zone)
        if (old.owner.time_zone, old.planner.step_s) != (settings.owner.time_zone, settings.planner.step_s):
            self.forecaster = SlotForecaster(self.zone, float(settings.planner.step_s))
        self._file_mtime = None
        self.request()

    def take_inputs(self, inputs: PlanInputs) -> str | None:
        """MQTT inputs (checked by the command handler): kept over the earlier ones, planned on at once."""
        if not self.settings.planner.enabled:
            return "planner.enabled = false"
        self.mqtt_inputs = inputs.over(self.mqtt_inputs)
        self.request()
        return None

    def request(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="local-planner")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        failing = False
        while True:
            try:
                await self.tick()
                failing = False
            except Exception:  # the planner's dispatch expires on its own; say so once
                if not failing:
                    log.exception("local planner failed: its schedule expires unless a plan succeeds")
                failing = True
            snap = self.latest()
            starting = snap is None or snap.stage is None
            await wait_set(self._wake, START_POLL_S if starting else self.tick_s)

    async def tick(self) -> None:
        """Learn from the snapshot, and plan when a plan is due (see the module docstring)."""
        snap = self.latest()
        if snap is not None:
            self._observe(snap)
        await self._read_file()
        # Without a plan every tick tries (an EV plugged in, a SoC known: a plan at once); a tick that
        # finds no session costs microseconds.
        due = self._wake.is_set() or self.plan is None
        self._wake.clear()
        # A wall clock set back (NTP at boot) counts as time gone by: plan again rather than wait.
        since = None if self._last_plan_s is None else abs(self.wall_clock() - self._last_plan_s)
        if since is not None and since >= self.settings.planner.replan_s:
            due = True
        if snap is not None and self._strayed(snap):
            due = True
        if due:
            await self.replan(snap)

    def _observe(self, snap: Snapshot) -> None:
        if snap.meter is None or snap.meter.p_site_import_w is None:
            return
        p_ev = snap.stage.p_w if snap.stage is not None and snap.stage.p_w is not None else 0.0
        self.forecaster.observe(snap.t_unix_s, snap.meter.p_site_import_w + p_ev)

    async def _read_file(self) -> None:
        name = self.settings.planner.inputs_file
        if not name:
            self.file_inputs = PlanInputs()
            return
        known = self._file_mtime
        # Off the loop: a stat and a read on a slow SD card (or a FIFO, or NFS) must not stretch a cycle.
        mtime, read = await asyncio.to_thread(_read_if_changed, Path(name), known)
        if self.settings.planner.inputs_file != name or self._file_mtime != known:
            return  # reconfigured meanwhile: the next tick reads the file the new settings name
        if read is None:
            return
        self._file_mtime = mtime
        if isinstance(read, PlanInputError):
            log.error("planner inputs file refused, planning without it: %s", read)
            self.file_inputs = PlanInputs()
        else:
            self.file_inputs = read
        self._wake.set()

    def _strayed(self, snap: Snapshot) -> bool:
        plan = self.plan
        # Only while the cycle follows the plan: under another source's dispatch it strays by design.
        if plan is None or snap.stage is None or not snap.dispatch.source.startswith("planner"):
            return False
        soc = reserve_soc(snap.stage, snap.battery)
        pb = plan.problem
        i = (snap.t_unix_s - pb.t0_unix_s) / pb.step_s
        if math.isnan(soc) or not 0.0 <= i < pb.n:
            return False
        # Within the step the SoC moves linearly (one step at full power moves it by several %).
        k = int(i)
        expected = float(np.interp(i, (k, k + 1), plan.outcome.soc[k : k + 2]))
        return abs(soc - expected) > DEVIATION_SOC

    async def _none(self, why: str) -> None:
        self.dispatcher.withdraw("planner")
        changed = self.plan is not None or why != self.why
        self.plan, self.why = None, why
        self._last_plan_s = self.wall_clock()
        if changed:
            log.info("local planner: no plan: %s", why)
            await self._publish(none_payload(self.wall_clock(), why))

    async def replan(self, snap: Snapshot | None) -> Plan | None:
        """Plan now from ``snap``; offer the schedule or withdraw it (and say why)."""
        if not self.active:
            await self._none("the planner runs with planner.enabled = true and operation.mode = schedule")
            return None
        why = _no_session(snap, self.settings)
        if why is not None or snap is None:
            await self._none(why or "no snapshot yet")
            return None
        stage = snap.stage
        assert stage is not None
        inv = self.settings.inverter
        assert inv is not None
        p_dis, p_chg = power_limits(snap.ratings, stage, snap.battery)
        session = Session(
            soc=reserve_soc(stage, snap.battery),
            e_per_soc_wh=snap.battery.e_per_soc_wh,
            p_charge_max_w=min(p_chg, inv.p_rated_charge_w),
            p_discharge_max_w=min(p_dis, inv.p_rated_w),
        )
        now = self.wall_clock()
        departure = self._departure(now)
        p = self.settings.planner
        n = round(p.horizon_h * 3600.0 / p.step_s)
        t0 = math.floor(now / p.step_s) * p.step_s
        try:
            pb = build(
                self.settings,
                session,
                self.mqtt_inputs.over(self.file_inputs),
                now_unix_s=now,
                zone=self.zone,
                departure=departure,
                base_forecast_w=self.forecaster.forecast(t0, float(p.step_s), n),
            )
            plan = await asyncio.to_thread(solve, pb)
        except (PlanInputError, PlanError) as exc:
            await self._none(str(exc))
            return None
        try:
            self.dispatcher.offer(self._dispatch(plan, now), "planner", now, self.clock())
        except DispatchError as exc:
            await self._none(f"the schedule was refused: {exc}")
            return None
        if self.plan is None:
            log.info("local planner: %s", "; ".join(plan.reasons) or "planned")
        self.plan, self.why = plan, "planned"
        self._last_plan_s = now
        await self._publish(to_payload(plan, envelope(pb), now, departure))
        return plan

    def _departure(self, now_unix_s: float) -> datetime | None:
        planner = self.departure.planner
        if planner is None or not planner.has_departure:
            return None
        return planner.departures(datetime.fromtimestamp(now_unix_s, self.zone))[1]

    def _dispatch(self, plan: Plan, now_unix_s: float) -> Dispatch:
        pb = plan.problem
        end = pb.t0_unix_s + pb.n * pb.step_s
        expiry = min(end, now_unix_s + EXPIRY_PERIODS * self.settings.planner.replan_s)
        points = [
            SchedulePoint(at=utc(pb.t0_unix_s + k * pb.step_s), p_w=float(plan.p_w[k]))
            for k in range(pb.n)
            if pb.t0_unix_s + k * pb.step_s < expiry
        ]
        return Dispatch(
            id=f"plan-{int(now_unix_s)}",
            start=utc(pb.t0_unix_s),
            expiry=utc(expiry),
            schedule=points,
            mode="schedule",
        )

    async def _publish(self, payload: PlanPayload) -> None:
        body = msgspec.json.encode(payload)
        if self.on_plan is not None:
            await self.on_plan(body)
        if self.plan_path is not None:
            try:  # off the loop: a slow SD card must not stretch a cycle
                # Readable by the operators' group (v2gctl plan), like the status file.
                await asyncio.to_thread(write_atomic, self.plan_path, body, durable=False, new_mode=0o640)
            except OSError as exc:
                log.warning("cannot write %s: %s", self.plan_path, exc)


def _read_if_changed(
    path: Path, known_mtime: float | None
) -> tuple[float, PlanInputs | PlanInputError | None]:
    """(the inputs file's mtime, -1 without one; its inputs, or why they were refused, or None when the
    mtime is ``known_mtime``). Blocking: ``PlanTask`` runs it in a worker thread."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = -1.0
    if mtime == known_mtime:
        return mtime, None
    try:
        return mtime, load_file(path)
    except PlanInputError as exc:
        return mtime, exc


def _no_session(snap: Snapshot | None, settings: Settings) -> str | None:
    """Why there is nothing to plan for, or None."""
    if settings.inverter is None:
        return "no [inverter] ratings: nothing can be planned"
    if snap is None or snap.stage is None:
        return "no reading of the power stage yet"
    if ev_present(snap.stage) is False:
        return "no EV plugged in"
    if math.isnan(reserve_soc(snap.stage, snap.battery)):
        return "the EV's SoC is not known"
    if not math.isfinite(snap.battery.e_per_soc_wh):
        return "the pack's energy is not known"
    return None
