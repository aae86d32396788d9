"""The daemon's fixed cycle: read one snapshot, run the controllers, write once, publish.

The cycle never waits on a bus or a disk. The drivers poll their devices on their own (each device
backs off alone when it fails), and the cycle freezes the freshest reading of each, with its read
time, into one ``Snapshot``; the controllers map it to one ``Command``; the setpoint writer, status,
telemetry, systemd and the recorder all take that one pair. Files are written by a worker thread and
the network by background tasks, so a slow SD card or broker cannot stretch a cycle.

Restart safety: the writer does not trust what a previous daemon (or an inverter that restarted) left
behind, it reconciles the stage's operation with each command (``edge.daemon.writer``). Whatever
stops the daemon, its last act is the power stage's ``stop()``; should the process die without it,
the reversion timer armed by the setpoint writes brings the inverter to 0 W by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import drivers
from drivers.sunspec.functions import plan_from_settings
from drivers.sunspec.power_stage import SunSpecPowerStage
from edge import __version__
from edge.daemon import status as status_file
from edge.daemon.battery import UNKNOWN, BatteryTracker, BatteryView, ev_soc_of
from edge.daemon.controllers import KERNEL_HOLD, Controllers, KernelSettingsError
from edge.daemon.dispatch import Dispatcher
from edge.daemon.dispatch_file import DispatchFile
from edge.daemon.events import DeviceState, EventDeriver, fail_safe_reasons
from edge.daemon.notify import Notifier
from edge.daemon.plan_task import PlanTask
from edge.daemon.planning import DepartureTask
from edge.daemon.recorder import Recorder, write_dump
from edge.daemon.sessions import SessionTracker
from edge.daemon.snapshot import Command, Snapshot
from edge.daemon.supervise import Mismatch, OutputMonitor
from edge.daemon.tasks import cancel, finish, wait_set
from edge.daemon.uplink import Uplink
from edge.daemon.writer import SetpointWriter
from edge.link import payloads as pl
from edge.settings import Settings, SettingsError, load_default, load_file, lock_reasons
from edge.state import StateStore

log = logging.getLogger(__name__)

STATUS_PERIOD_S = 1.0
NOTIFY_STATUS_MIN_S = 1.0
SOP_HORIZON = "10s"  # the state of power the aggregator gets: what the pack can give for 10 s
STOP_TIMEOUT_S = 3.0
STOP_RAMP_MAX_S = 10.0  # below the unit's TimeoutStopSec (15 s), with the stop command after it
READY_TIMEOUT_S = (
    20.0  # below the unit's start timeout: a stage that does not answer is reported, not waited on
)
RECORDER_S = 300.0  # the recorder keeps this much of the recent past,
RECORDER_MAX = 3000  # but no more cycles than this (~2.5 kB each: 300 s at 0.1 s, 60 s at 0.02 s)
# Sections a running daemon cannot take on SIGHUP (its buses, devices and links are built from them).
RESTART_SECTIONS = ("buses", "devices", "mqtt", "battery")


@dataclass
class CycleCounters:
    cycles: int = 0
    overruns: int = 0


class Daemon:
    """One controller: its settings, drivers, kernels and outputs."""

    def __init__(
        self,
        settings: Settings,
        *,
        runtime_dir: Path,
        state_dir: Path | None = None,
        config_path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        notifier: Notifier | None = None,
        ready_timeout_s: float = READY_TIMEOUT_S,
    ) -> None:
        self.file_settings = settings  # as the file says; ``settings`` adds the aggregator's overrides
        self.clock = clock
        self.wall_clock = wall_clock
        self.runtime_dir = runtime_dir
        self.config_path = config_path
        self.status_path = runtime_dir / "status.json"
        self.notifier = notifier or Notifier()
        self.ready_timeout_s = ready_timeout_s
        self._rand = random.SystemRandom().random  # the OS's entropy: no two units draw alike
        self.dispatcher = Dispatcher(settings.operation, settings.inverter, settings.functions)
        self.uplink: Uplink | None = None
        if settings.mqtt.enabled:
            self.uplink = Uplink(
                settings,
                state_dir=state_dir,
                dispatcher=self.dispatcher,
                file_settings=lambda: self.file_settings,
                current_settings=lambda: self.settings,
                apply=self._take_settings,
                devices=self._device_identities,
                rand=self._rand,
                clock=clock,
                wall_clock=wall_clock,
            )
            self.uplink.on_event = self._event
            settings = self._with_overrides(settings)
        self.settings = settings
        self.dispatcher.operation = settings.operation
        self.dispatcher.functions = settings.functions
        self.controllers = Controllers(settings)
        self.counters = CycleCounters()
        self.drivers = drivers.build(settings.buses, settings.devices, clock=clock)
        self.store = StateStore.open(state_dir) if state_dir is not None else None
        stage = self.drivers.power_stage
        # Built also with estimation off: its view then carries the nameplate pack energy the
        # departure planner needs.
        self.battery = (
            BatteryTracker(
                settings.battery,
                self.store,
                port=stage.name,
                revert_s=float(settings.devices[stage.name].setpoint_revert_s),
                reading_s=settings.devices[stage.name].poll_s,
                wall_clock=wall_clock,
            )
            if stage
            else None
        )
        self.sessions = SessionTracker(self.store, port=stage.name) if stage else None
        self.events = EventDeriver()
        dispatch_path = settings.operation.dispatch_file or (
            str(state_dir / "dispatch.json") if state_dir is not None else None
        )
        self.dispatch_file = (
            DispatchFile(
                Path(dispatch_path), self.dispatcher, wall_clock=wall_clock, clock=clock, store=self.store
            )
            if dispatch_path
            else None
        )
        self.last: tuple[Snapshot, Command] | None = None
        self.departure = DepartureTask(
            settings, lambda: self.last[0] if self.last else None, clock=clock, wall_clock=wall_clock
        )
        self.planner = PlanTask(
            settings,
            lambda: self.last[0] if self.last else None,
            self.dispatcher,
            self.departure,
            clock=clock,
            wall_clock=wall_clock,
            runtime_dir=runtime_dir,
        )
        if self.uplink is not None:
            self.uplink.handler.plan_inputs = self.planner.take_inputs
            self.planner.on_plan = self.uplink.publish_plan
        self.recorder = Recorder(min(RECORDER_MAX, max(1, round(RECORDER_S / settings.daemon.cycle_s))))
        self.monitor = OutputMonitor(*self._monitor_params(settings))
        self.mismatch: Mismatch | None = None
        self.ready = False
        # Read once (two /proc files): not every second on the loop.
        self._started_at = status_file.process_started_at(os.getpid())
        self._reporting_failed: set[str] = set()
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="v2g-edge-io")
        self._status_write: Future[None] | None = None
        self._reload: asyncio.Task[Settings] | None = None
        self._dump_requested = False
        self._writer: SetpointWriter | None = None

    @staticmethod
    def _monitor_params(settings: Settings) -> tuple[float, float, float]:
        inv = settings.inverter
        rated_w, tau_s = (inv.p_rated_w, inv.response_tau_s) if inv else (0.0, 0.0)
        return rated_w, tau_s, settings.daemon.actuation_latency_s

    # --- requests from signal handlers -------------------------------------------------------------

    def request_reload(self) -> None:
        """SIGHUP: read and validate the configuration file off the loop; applied between cycles."""
        if self._reload is not None and not self._reload.done():
            return
        path = self.config_path
        log.info("reloading the configuration from %s", path or "the embedded default")
        self._reload = asyncio.get_running_loop().create_task(
            asyncio.to_thread(load_file, path) if path else asyncio.to_thread(load_default),
            name="config-reload",
        )

    def request_dump(self) -> None:
        """SIGUSR1: dump the recorder's ring into the runtime directory."""
        self._dump_requested = True

    # --- run ---------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> int:
        """Run cycles until ``stop`` is set, then ramp down (a non-protective stop) and stop the power
        stage; it always ends with the stage stopped (best effort)."""
        self._configure_functions(self.settings)  # before the first reading is taken
        await self.drivers.start()
        try:
            if self.drivers.power_stage is not None:
                self._writer = SetpointWriter(self.drivers.power_stage, self.clock)
                self._writer.start()
            if self.uplink is not None:
                self.uplink.start()
            if self.dispatch_file is not None:
                self.dispatch_file.start()
            self.departure.start()
            self.planner.start()
            self._event("daemon_start", {"pid": os.getpid()})
            if self.controllers.hold_reason:
                log.warning("holding P = Q = 0: %s", self.controllers.hold_reason)
            await self._loop(stop)
        finally:
            await finish(self._shutdown(), "daemon-shutdown")
        return 0

    async def _shutdown(self) -> None:
        """Stop the stage first (bounded by STOP_TIMEOUT_S), then close down every task, file and link.
        A step that fails is logged and the rest still run: one broken part must not leave the stage
        running, the drivers' bus open or the spool unflushed."""
        self.notifier.stopping("stopping: power stage to zero")
        if self._writer is not None:
            await _closing("the setpoint writer", self._writer.close)
        await _closing("the power stage's stop", self._safe_stop)
        steps: list[tuple[str, Callable[[], object]]] = []
        if self.battery is not None:
            steps.append(("the battery session", self.battery.end_session))
        if self.sessions is not None:
            steps.append(("the charging session", self.sessions.stop))  # the next daemon goes on with it
        if self.dispatch_file is not None:
            steps.append(("the dispatch file", self.dispatch_file.stop))
        steps += [
            ("the departure watch", self.departure.stop),
            ("the planner", self.planner.stop),
            ("a configuration reload", self._drop_reload),
            ("the drivers", self.drivers.stop),
            ("the daemon_stop event", lambda: self._event("daemon_stop", {})),
        ]
        if self.uplink is not None:
            steps.append(("the aggregator link", self.uplink.stop))
        if self.store is not None:
            steps.append(("the state store", self.store.aclose))
        steps.append(
            ("the I/O thread", lambda: asyncio.get_running_loop().run_in_executor(None, self._io.shutdown))
        )
        for name, step in steps:
            await _closing(name, step)
        self.notifier.close()

    async def _drop_reload(self) -> None:
        if self._reload is not None:
            with contextlib.suppress(Exception):  # a reload still being read at stop is dropped
                await cancel(self._reload)

    def snapshot(self, t: float, stop_request: bool) -> Snapshot:
        """Freeze this cycle's inputs."""
        meter = self.drivers.site_meter.latest() if self.drivers.site_meter else None
        stage_dev = self.drivers.power_stage
        stage = stage_dev.latest() if stage_dev else None
        t_unix = self.wall_clock()
        return Snapshot(
            t_s=t,
            t_unix_s=t_unix,
            meter=meter,
            stage=stage,
            ratings=stage_dev.ratings() if stage_dev else None,
            battery=self._battery_view(stage),
            dispatch=self.dispatcher.basis(t_unix, t),
            p_max_w=self.departure.p_max_w(t),
            stop_request=stop_request,
            u_rand=self._rand(),
        )

    async def _loop(self, stop: asyncio.Event) -> None:
        t_start = next_t = self.clock()
        last_status = last_telemetry = last_watchdog = last_notify = -1e9
        notified = ""
        cycles_at_ping = -1
        stopping_since: float | None = None
        while True:
            t = self.clock()
            if stop.is_set() and stopping_since is None:
                # A clean stop is non-protective: ramp down (a fleet stepping off at once deepens a
                # frequency dip), bounded so that systemd's stop timeout is never reached.
                stopping_since = t
                self.notifier.stopping("ramping down")
                log.info("stopping: ramping the power stage down")
            if self._reload is not None and self._reload.done():
                self._apply_reload(self._reload)
                self._reload = None
            snap = self.snapshot(t, stopping_since is not None)
            cmd = self.controllers.step(snap)
            if self.sessions is not None:
                self._reporting("sessions", self.sessions.update, snap, cmd)
            mismatch = self.monitor.update(snap, cmd)
            if mismatch is not self.mismatch:
                self._event(
                    "output_mismatch", {"message": mismatch.message()} if mismatch else {"ended": True}
                )
                self.mismatch = mismatch
            if self.last is not None and self.last[1].state != cmd.state:
                self._event("state", {"from": self.last[1].state, "to": cmd.state, "reasons": cmd.reasons})
            session = self.sessions.status() if self.sessions is not None else None
            for kind, detail in self.events.update(cmd, session):
                self._event(kind, detail)
            if self._writer is not None:
                self._writer.submit(cmd, snap.stage)
            self.recorder.append(snap, cmd)
            self.last = (snap, cmd)
            self.counters.cycles += 1

            if not self.ready and self._may_report_ready(t - t_start):
                self.ready = True
                notified = self._summary(cmd)
                self.notifier.ready(notified)
                last_notify = t
                log.info("ready: %s", notified)
            elif self.ready and t - last_notify >= NOTIFY_STATUS_MIN_S:
                text = self._summary(cmd)
                if text != notified:
                    self.notifier.status(text)
                    notified, last_notify = text, t
            if t - last_status >= STATUS_PERIOD_S:
                self._reporting("status file", self._write_status, snap, cmd)
                self._reporting("device events", self._device_events, snap, cmd)
                last_status = t
            if self.uplink is not None and t - last_telemetry >= self.settings.mqtt.telemetry_period_s:
                self._reporting("telemetry", self._publish_telemetry, snap, cmd)
                last_telemetry = t
            if self._dump_requested:
                self._dump_requested = False
                self._reporting("cycle dump", self._dump, snap, cmd)
            wd = self.notifier.watchdog_interval_s
            if wd is not None and t - last_watchdog >= wd / 2 and self._progressing(t, wd, cycles_at_ping):
                self.notifier.watchdog()
                last_watchdog, cycles_at_ping = t, self.counters.cycles

            next_t += self.settings.daemon.cycle_s
            delay = next_t - self.clock()
            if delay < 0:
                # Overrun: start the next cycle now and do not try to catch up with a burst.
                self.counters.overruns += 1
                next_t = self.clock()
                delay = 0.0
            if stopping_since is not None:
                if abs(cmd.p_w) < 1.0 or t - stopping_since >= STOP_RAMP_MAX_S:
                    return
                await asyncio.sleep(delay)
                continue
            await wait_set(stop, delay)

    def _may_report_ready(self, elapsed_s: float) -> bool:
        """READY=1 once a command reached the power stage, or (a stage that does not answer, a
        locked configuration) once the daemon has waited long enough, holding zero and saying why."""
        w = self._writer
        return w is None or w.acknowledged > 0 or elapsed_s >= self.ready_timeout_s

    def _progressing(self, t: float, wd_s: float, cycles_at_ping: int) -> bool:
        """Ping the watchdog only while cycles run and the writer is neither dead nor stuck in a write."""
        if self.counters.cycles == cycles_at_ping:
            return False
        w = self._writer
        if w is None:
            return True
        return w.alive and (w.busy_since is None or t - w.busy_since < wd_s / 2)

    def _summary(self, cmd: Command) -> str:
        text = cmd.summary()
        w = self._writer
        if w is not None and w.acknowledged == 0:
            text += f"; power stage not answering ({w.last_error or 'no reading yet'})"
        if self.mismatch is not None:
            text += f"; output mismatch: {self.mismatch.message()}"
        return text

    def _apply_reload(self, task: asyncio.Task[Settings]) -> None:
        """Take a reloaded configuration, or refuse it and run on (logged and in STATUS=)."""
        try:
            new = task.result()
        except (SettingsError, OSError) as exc:
            self._refuse_reload(str(exc))
            return
        except Exception as exc:  # a reload must never end a running daemon, whatever the file holds
            log.exception("configuration reload failed unexpectedly")
            self._refuse_reload(repr(exc))
            return
        fixed = restart_needed(self.file_settings, new)
        if fixed:
            self._refuse_reload(f"{', '.join(fixed)} changed: that takes effect only at a restart")
            return
        switch_credentials = None
        if self.uplink is not None:
            why, switch_credentials = self.uplink.prepare_reload(new)
            if why is not None:
                self._refuse_reload(why)
                return
        effective = self._with_overrides(new)
        why = self._take_settings(effective)
        if why is not None:
            self._refuse_reload(why)
            return
        if switch_credentials is not None:
            switch_credentials()
        self.file_settings = new
        self._event("config_reloaded", {})
        logging.getLogger().setLevel(new.daemon.log_level)
        log.info("configuration reloaded")
        self.notifier.status("configuration reloaded")

    def _configure_functions(self, settings: Settings) -> None:
        """Have a SunSpec power stage's own grid functions set as commissioned (each one the inverter
        owns written and adopted, the others disabled) and read back by its next reading; until that
        reads back right the stage reports a configuration problem and the cycle holds zero."""
        stage = self.drivers.power_stage
        if isinstance(stage, SunSpecPowerStage) and settings.grid is not None:
            stage.use_functions(plan_from_settings(settings.functions, settings.grid, settings.inverter))

    def _with_overrides(self, file_settings: Settings) -> Settings:
        """The file's settings with the aggregator's persisted overrides (mode, owner, curves) on top."""
        if self.uplink is None:
            return file_settings
        return self.uplink.handler.effective(file_settings)

    def _take_settings(self, new: Settings) -> str | None:
        """Run on ``new`` from the next cycle (kernel state kept); returns why not, changing nothing."""
        try:
            self.controllers.reload(new)
        except KernelSettingsError as exc:
            return f"{KERNEL_HOLD}: {exc}"
        old, self.settings = self.settings, new
        self.monitor.configure(*self._monitor_params(new))
        self.dispatcher.operation = new.operation
        self.dispatcher.inverter = new.inverter
        self.dispatcher.functions = new.functions
        for why in self.dispatcher.withdraw_reactive():
            log.warning("%s", why)
            self._event("dispatch_withdrawn", {"why": why})
        self.departure.configure(new)
        self.planner.configure(new)
        if (new.functions, new.grid) != (old.functions, old.grid):
            self._configure_functions(new)
        if self.uplink is not None:
            self.uplink.link.state_changed()
        if self.controllers.hold_reason:
            log.warning("holding P = Q = 0: %s", self.controllers.hold_reason)
        return None

    def _refuse_reload(self, why: str) -> None:
        log.error("configuration reload refused, running on the previous configuration: %s", why)
        self.notifier.status(f"configuration reload refused: {why}")
        self._event("config_reload_refused", {"why": why})

    def _event(self, kind: str, detail: dict[str, Any]) -> None:
        t_unix = self.wall_clock()
        if self.store is not None:
            self.store.event(kind, detail, t_unix_s=t_unix)
        if self.uplink is not None:
            self.uplink.event(kind, detail, t_unix)

    def _battery_view(self, stage: drivers.PowerStageReading | None) -> BatteryView:
        if self.battery is None:
            return UNKNOWN
        last = self.last[1] if self.last is not None else None
        # At rest: nothing commanded and the stage has settled there, so its DC current is offset.
        at_rest = last is not None and last.p_w == 0.0 and stage is not None and abs(stage.p_w or 0.0) < 50.0
        return self.battery.update(stage, at_rest=at_rest)

    async def _safe_stop(self) -> None:
        stage = self.drivers.power_stage
        if stage is None:
            return
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await stage.stop()
            log.info("power stage %s stopped", stage.name)
        except (drivers.DriverError, TimeoutError) as exc:
            log.error("could not stop power stage %s (its reversion timer will): %s", stage.name, exc)

    # --- reporting: built from the cycle's pair, written off the loop ------------------------------

    def _reporting(
        self, what: str, fn: Callable[[Snapshot, Command], None], snap: Snapshot, cmd: Command
    ) -> None:
        """Run a reporting step; a fault in reporting must never stop control (logged once per kind)."""
        try:
            fn(snap, cmd)
        except Exception:
            if what not in self._reporting_failed:
                log.exception("%s failed; control goes on without it", what)
                self._reporting_failed.add(what)
        else:
            self._reporting_failed.discard(what)

    def _measured(self, snap: Snapshot) -> dict[str, Any]:
        stage, meter = snap.stage, snap.meter
        return {
            "p_meas_w": stage.p_w if stage else None,
            "q_meas_var": stage.q_var if stage else None,
            "p_site_import_w": meter.p_site_import_w if meter else None,
            "f_hz": snap.f_hz(),
            "soc": ev_soc_of(stage) if stage else None,
            "meter_age_s": snap.meter_age_s(),
            "stage_age_s": snap.stage_age_s(),
        }

    def _publish_telemetry(self, snap: Snapshot, cmd: Command) -> None:
        uplink = self.uplink
        assert uplink is not None
        stage, meter = snap.stage, snap.meter
        est = self.battery.telemetry() if self.battery is not None else {}
        session = self.sessions.status() if self.sessions is not None else None
        links = [
            pl.DeviceLink(
                name=name,
                ok=not (st.failing or st.frozen),
                error="frozen" if st.frozen else (st.last_error if st.failing else None),
                rtt_ms=st.rtt_p50_s * 1e3 if st.rtt_p50_s is not None else None,
                last_success_age_s=(snap.t_s - st.last_success_t_s)
                if st.last_success_t_s is not None
                else None,
            )
            for name, st in self.drivers.stats().items()
        ]

        def build(seq: int) -> pl.Telemetry:
            return pl.Telemetry(
                seq=seq,
                t=pl.utc(snap.t_unix_s),
                state=cmd.state,
                mode=snap.dispatch.mode,
                dispatch_source=snap.dispatch.source,
                p_cmd_w=cmd.p_w,
                q_cmd_var=cmd.q_var,
                binding=cmd.binding,
                reasons=cmd.reasons,
                meter=None
                if meter is None
                else pl.Point(
                    p_w=meter.p_site_import_w,
                    q_var=meter.q_site_import_var,
                    v_pu=cmd.v_pu,
                    f_hz=meter.f_hz,
                    age_s=snap.meter_age_s(),
                ),
                inverter=None
                if stage is None
                else pl.Point(
                    p_w=stage.p_w, q_var=stage.q_var, v_pu=None, f_hz=stage.f_hz, age_s=snap.stage_age_s()
                ),
                soc=ev_soc_of(stage) if stage is not None else None,
                soh=est.get("capacity_ratio"),
                sop_charge_w=est.get(f"sop_{SOP_HORIZON}_import_ac_w"),
                sop_discharge_w=est.get(f"sop_{SOP_HORIZON}_export_ac_w"),
                energy_wh=self.store.energy() if self.store is not None else {},
                departure=self._departure_text(),
                session=None if session is None else pl.Session.of(session),
                output_mismatch=self.mismatch.message() if self.mismatch else None,
                links=pl.LinkHealth(devices=links, **uplink.links()),
                battery=est or None,
            )

        uplink.telemetry(build, snap.t_unix_s)

    def _device_events(self, snap: Snapshot, cmd: Command) -> None:
        health = {
            name: DeviceState(st.failing, st.last_error if st.failing else None)
            for name, st in self.drivers.stats().items()
        }
        for kind, detail in self.events.devices(health):
            self._event(kind, detail)

    def _device_identities(self) -> list[pl.DeviceIdentity]:
        return [
            pl.DeviceIdentity(name=name, role=dev.config.role) for name, dev in self.drivers.devices.items()
        ]

    def _write_status(self, snap: Snapshot, cmd: Command) -> None:
        if self._status_write is not None and not self._status_write.done():
            return  # the disk is slow: skip a status rather than queue them
        t = snap.t_s
        devices = []
        for name, st in self.drivers.stats().items():
            dev = self.drivers.devices[name]
            devices.append(
                status_file.DeviceHealth(
                    name=name,
                    role=dev.config.role,
                    ok=not (st.failing or st.frozen),
                    last_success_age_s=(t - st.last_success_t_s) if st.last_success_t_s is not None else None,
                    error="frozen" if st.frozen else ("failing" if st.failing else None),
                    rtt_p50_ms=st.rtt_p50_s * 1e3 if st.rtt_p50_s is not None else None,
                    rtt_p99_ms=st.rtt_p99_s * 1e3 if st.rtt_p99_s is not None else None,
                    errors=st.errors,
                    timeouts=st.timeouts,
                    last_error=st.last_error,
                )
            )
        hold = self.controllers.hold_reason
        w = self._writer
        pid = os.getpid()
        status = status_file.Status(
            written_at=snap.t_unix_s,
            pid=pid,
            state=cmd.state,
            energize_allowed=hold is None,
            version=__version__,
            config_path=str(self.config_path) if self.config_path is not None else None,
            started_at=self._started_at,
            commissioning_missing=lock_reasons(self.settings),
            fail_safe=fail_safe_reasons(cmd),
            mode=snap.dispatch.mode,
            dispatch_source=snap.dispatch.source,
            departure=self._departure_text(),
            session=self.sessions.status() if self.sessions else None,
            hold_reasons=[hold] if hold else [],
            p_cmd_w=cmd.p_w,
            q_cmd_var=cmd.q_var,
            p_request_w=cmd.p_request_w,
            binding=cmd.binding,
            reasons=cmd.reasons,
            v_pu=cmd.v_pu,
            island_dither=cmd.dither,
            output_mismatch=self.mismatch.message() if self.mismatch else None,
            stage_operation=None
            if w is None or w.operation is None
            else ("started" if w.operation else "stopped"),
            devices=devices,
            cycles=self.counters.cycles,
            overruns=self.counters.overruns,
            write_errors=w.errors if w else 0,
            telemetry_backlog=self.uplink.spool.stats.backlog if self.uplink else 0,
            telemetry_dropped=self.uplink.spool.stats.dropped_telemetry if self.uplink else 0,
            aggregator=self._aggregator_health(),
            **self._battery_health(),
            **self._state_health(),
            **self._measured(snap),
        )
        db = self.store.path if self.store is not None and self.store.problem is None else None
        future = self._io.submit(status_file.write_with_events, self.status_path, status, db)
        future.add_done_callback(self._status_written)
        self._status_write = future

    def _aggregator_health(self) -> status_file.AggregatorHealth | None:
        if self.uplink is None:
            return None
        link, st = self.uplink.link, self.uplink.spool.stats
        return status_file.AggregatorHealth(
            connected=link.connected,
            problem=link.problem,
            backlog=st.backlog,
            dropped_telemetry=st.dropped_telemetry,
            dropped_events=st.dropped_events,
            spool_problem=st.problem,
        )

    def _battery_health(self) -> dict[str, Any]:
        est = self.battery.telemetry() if self.battery is not None else {}
        return {
            "soh": est.get("capacity_ratio"),
            "sop_charge_w": est.get(f"sop_{SOP_HORIZON}_import_ac_w"),
            "sop_discharge_w": est.get(f"sop_{SOP_HORIZON}_export_ac_w"),
            "sop_basis": self.battery.sop_basis() if self.battery is not None else None,
        }

    def _state_health(self) -> dict[str, Any]:
        if self.store is None:
            return {}
        st = self.store.stats
        return {
            "state_problem": self.store.problem or st.last_error,
            "state_write_bytes_per_hour": st.dirtied_per_hour,
        }

    def _departure_text(self) -> str | None:
        lim = self.departure.limit
        return None if lim is None or lim.reason is None else f"{lim.state}: {lim.reason}"

    def _status_written(self, future: Future[None]) -> None:
        exc = future.exception()
        if exc is not None and "status write" not in self._reporting_failed:
            self._reporting_failed.add("status write")
            log.warning("cannot write %s: %s", self.status_path, exc)
        elif exc is None:
            self._reporting_failed.discard("status write")

    def _dump(self, snap: Snapshot, cmd: Command) -> None:
        path = self.runtime_dir / f"cycles-{int(snap.t_unix_s)}.msgpack"
        dump = self.recorder.freeze(self.settings)
        future = self._io.submit(write_dump, path, dump)
        future.add_done_callback(lambda f: _log_dump(path, len(dump.pairs), f))


def restart_needed(old: Settings, new: Settings) -> list[str]:
    """The sections of ``new`` a running daemon cannot take (they build its buses, devices, links)."""
    fixed = [name for name in RESTART_SECTIONS if getattr(new, name) != getattr(old, name)]
    if new.daemon.state_dir != old.daemon.state_dir:
        fixed.append("daemon.state_dir")
    if new.operation.dispatch_file != old.operation.dispatch_file:
        fixed.append("operation.dispatch_file")
    return fixed


def _log_dump(path: Path, n: int, future: Future[None]) -> None:
    exc = future.exception()
    if exc is None:
        log.info("dumped the last %d cycles to %s", n, path)
    else:
        log.error("cannot dump the cycles to %s: %s", path, exc)


async def _closing(name: str, step: Callable[[], object]) -> None:
    """Run one shutdown step (a plain or async call); its failure is logged, not raised."""
    try:
        result = step()
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("stopping: %s failed; the shutdown goes on", name)
