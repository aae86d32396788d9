"""The daemon's fixed cycle: read a snapshot, run the kernels, write once, publish.

The cycle never waits on a bus. The drivers poll their devices on their own (each device backs off
alone when it fails), and the cycle takes the freshest reading of each with its read time, so a dead
meter makes its data stale rather than the cycle late. The one setpoint write per cycle is handed to
a writer task that always sends the latest command; a slow bus drops intermediate commands, never
queues them. Whatever stops the daemon, the last act is the power stage's ``stop()``; and should the
process die without it, the reversion timer armed by every setpoint write brings the inverter to
0 W by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

import drivers
from drivers.capabilities import PowerStage, PowerStageReading
from edge.daemon import status as status_file
from edge.daemon.battery import UNKNOWN, BatteryTracker, BatteryView
from edge.daemon.controllers import Command, Controllers
from edge.daemon.notify import Notifier
from edge.daemon.tasks import cancel
from edge.daemon.telemetry import MqttTarget, TelemetryPublisher
from edge.settings import Settings

log = logging.getLogger(__name__)

STATUS_PERIOD_S = 1.0
TELEMETRY_PERIOD_S = 1.0
HEARTBEAT_PERIOD_S = 1.0
STOP_TIMEOUT_S = 3.0
STOP_RAMP_MAX_S = 10.0  # below the unit's TimeoutStopSec (15 s), with the stop command after it


class TelemetryRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One telemetry message (JSON); signs and units as everywhere (docs/conventions.md)."""

    t_unix_s: float
    state: str
    p_cmd_w: float
    q_cmd_var: float
    binding: list[str]
    reasons: list[str]
    p_meas_w: float | None = None
    q_meas_var: float | None = None
    p_site_import_w: float | None = None
    v_pu: float | None = None
    f_hz: float | None = None
    soc: float | None = None
    meter_age_s: float | None = None
    stage_age_s: float | None = None
    battery: dict[str, float] | None = None  # the estimator's figures (no vehicle identifier)


@dataclass
class CycleCounters:
    cycles: int = 0
    overruns: int = 0
    write_errors: int = 0


class SetpointWriter:
    """Sends the latest command to the power stage, one write at a time, plus the heartbeat."""

    def __init__(self, stage: PowerStage, clock: Callable[[], float]) -> None:
        self.stage = stage
        self.clock = clock
        self._latest: Command | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopped_device = False
        self._last_heartbeat = -1e9
        self.errors = 0
        self._failing = False

    def submit(self, cmd: Command) -> None:
        self._latest = cmd
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="setpoint-writer")

    async def close(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            cmd = self._latest
            if cmd is None:
                continue
            try:
                await self._apply(cmd)
                if self._failing:
                    log.info("setpoint writes to %s work again", self.stage.name)
                self._failing = False
            except drivers.DriverError as exc:
                self.errors += 1
                if not self._failing:
                    log.warning("setpoint write to %s failed: %s", self.stage.name, exc)
                self._failing = True

    async def _apply(self, cmd: Command) -> None:
        if cmd.stop:
            if not self._stopped_device:
                await self.stage.stop()
                self._stopped_device = True
        else:
            if self._stopped_device:
                await self.stage.resume()  # undo the stop command before setpoints count again
                self._stopped_device = False
            await self.stage.write_setpoint(cmd.p_w, cmd.q_var)
        now = self.clock()
        if now - self._last_heartbeat >= HEARTBEAT_PERIOD_S:
            await self.stage.heartbeat()
            self._last_heartbeat = now


class Daemon:
    """One controller: its settings, drivers, kernels and outputs."""

    def __init__(
        self,
        settings: Settings,
        *,
        runtime_dir: Path,
        state_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        notifier: Notifier | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.runtime_dir = runtime_dir
        self.status_path = runtime_dir / "status.json"
        self.notifier = notifier or Notifier()
        self.controllers = Controllers(settings)
        self.counters = CycleCounters()
        self.drivers = drivers.build(settings.buses, settings.devices, clock=clock)
        self.telemetry: TelemetryPublisher | None = None
        mq = settings.mqtt
        if mq.enabled:
            self.telemetry = TelemetryPublisher(
                MqttTarget(mq.host, mq.port, mq.client_id, mq.topic_prefix, keepalive_s=int(mq.keepalive_s))
            )
        self.last_command: Command | None = None
        self._reporting_failed: set[str] = set()
        self.battery = BatteryTracker(settings.battery, state_dir) if settings.battery.estimate else None

    async def run(self, stop: asyncio.Event) -> int:
        """Run cycles until ``stop`` is set, then ramp down (a non-protective stop) and stop the power
        stage; it always ends with the stage stopped (best effort)."""
        cycle_s = self.settings.daemon.cycle_s
        writer: SetpointWriter | None = None
        await self.drivers.start()
        try:
            if self.drivers.power_stage is not None:
                writer = SetpointWriter(self.drivers.power_stage, self.clock)
                writer.start()
            if self.telemetry is not None:
                self.telemetry.start()
            hold = self.controllers.hold_reason
            self.notifier.ready(f"cycling every {cycle_s} s" + (f"; holding P=Q=0: {hold}" if hold else ""))
            if hold:
                log.warning("holding P = Q = 0: %s", hold)
            await self._loop(stop, cycle_s, writer)
        finally:
            self.notifier.stopping("stopping: power stage to zero")
            if writer is not None:
                await writer.close()
            await self._safe_stop()
            if self.battery is not None:
                self.battery.end_session()
            if self.telemetry is not None:
                await self.telemetry.stop()
            await self.drivers.stop()
            self.notifier.close()
        return 0

    async def _loop(self, stop: asyncio.Event, cycle_s: float, writer: SetpointWriter | None) -> None:
        next_t = self.clock()
        last_status = last_telemetry = last_watchdog = -1e9
        wd = self.notifier.watchdog_interval_s
        stopping_since: float | None = None
        while True:
            t = self.clock()
            if stop.is_set() and stopping_since is None:
                # A clean stop is non-protective: ramp down (a fleet stepping off at once deepens a
                # frequency dip), bounded so that systemd's stop timeout is never reached.
                stopping_since = t
                self.notifier.stopping("ramping down")
                log.info("stopping: ramping the power stage down")
            meter = self.drivers.site_meter.latest() if self.drivers.site_meter else None
            stage = self.drivers.power_stage.latest() if self.drivers.power_stage else None
            ratings = self.drivers.power_stage.ratings() if self.drivers.power_stage else None
            battery = self._battery_view(stage)
            cmd = self.controllers.step(
                t, meter, stage, ratings, battery, stop_request=stopping_since is not None
            )
            self.last_command = cmd
            if writer is not None:
                writer.submit(cmd)
                self.counters.write_errors = writer.errors
            self.counters.cycles += 1
            if t - last_status >= STATUS_PERIOD_S:
                self._reporting("status file", self._write_status, t, cmd)
                last_status = t
            if self.telemetry is not None and t - last_telemetry >= TELEMETRY_PERIOD_S:
                self._reporting("telemetry", self._publish_telemetry, t, cmd)
                last_telemetry = t
            if wd is not None and t - last_watchdog >= wd / 2:
                self.notifier.watchdog()
                last_watchdog = t
            next_t += cycle_s
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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    def _battery_view(self, stage: PowerStageReading | None) -> BatteryView:
        if self.battery is None:
            return UNKNOWN
        last = self.last_command
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

    def _snapshot_fields(self, t: float) -> dict[str, float | None]:
        meter = self.drivers.site_meter.latest() if self.drivers.site_meter else None
        stage = self.drivers.power_stage.latest() if self.drivers.power_stage else None
        return {
            "p_meas_w": stage.p_w if stage else None,
            "q_meas_var": stage.q_var if stage else None,
            "p_site_import_w": meter.p_site_import_w if meter else None,
            "f_hz": (meter.f_hz if meter and meter.f_hz is not None else (stage.f_hz if stage else None)),
            "soc": stage.ev_soc if stage else None,
            "meter_age_s": (t - meter.t_s) if meter else None,
            "stage_age_s": (t - stage.t_s) if stage else None,
        }

    def _reporting(self, what: str, fn: Callable[[float, Command], None], t: float, cmd: Command) -> None:
        """Run a reporting step; a fault in reporting must never stop control (logged once per kind)."""
        try:
            fn(t, cmd)
        except Exception:
            if what not in self._reporting_failed:
                log.exception("%s failed; control goes on without it", what)
                self._reporting_failed.add(what)
        else:
            self._reporting_failed.discard(what)

    def _publish_telemetry(self, t: float, cmd: Command) -> None:
        assert self.telemetry is not None
        self.telemetry.submit(self._telemetry(t, cmd))

    def _telemetry(self, t: float, cmd: Command) -> bytes:
        fields = self._snapshot_fields(t)
        record = TelemetryRecord(
            t_unix_s=time.time(),
            state=cmd.state,
            p_cmd_w=cmd.p_w,
            q_cmd_var=cmd.q_var,
            binding=cmd.binding,
            reasons=cmd.reasons,
            v_pu=cmd.v_pu,
            battery=(self.battery.telemetry() or None) if self.battery is not None else None,
            **fields,
        )
        return msgspec.json.encode(record)

    def _write_status(self, t: float, cmd: Command) -> None:
        fields = self._snapshot_fields(t)
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
                )
            )
        status = status_file.Status(
            written_at=time.time(),
            pid=os.getpid(),
            state=cmd.state,
            energize_allowed=self.controllers.hold_reason is None,
            hold_reasons=[self.controllers.hold_reason] if self.controllers.hold_reason else [],
            p_cmd_w=cmd.p_w,
            q_cmd_var=cmd.q_var,
            p_request_w=cmd.p_request_w,
            binding=cmd.binding,
            reasons=cmd.reasons,
            p_meas_w=fields["p_meas_w"],
            q_meas_var=fields["q_meas_var"],
            p_site_import_w=fields["p_site_import_w"],
            v_pu=cmd.v_pu,
            f_hz=fields["f_hz"],
            soc=fields["soc"],
            devices=devices,
            cycles=self.counters.cycles,
            overruns=self.counters.overruns,
            telemetry_backlog=self.telemetry.backlog if self.telemetry else 0,
            telemetry_dropped=self.telemetry.dropped if self.telemetry else 0,
        )
        try:
            status_file.write(self.status_path, status)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.status_path, exc)
