"""The one path from the cycle's command to the power stage: the setpoint, the stage's operation
(start / stop command) and the heartbeat, written by one task that always sends the latest command.

The writer reconciles the stage's operation with the command instead of trusting its own memory. At
daemon start, and after any failed write, it does not know what the stage was last told: a daemon
stopped by SIGTERM left it stopped by command, an inverter that restarted may come back stopped. So
the first command that wants service sends the start command (and the first that wants it stopped
sends the stop command) whatever was believed before; and whenever the stage itself reports the
opposite of the command (off while it must operate, operating while it must be stopped) the command
is sent again, with a back-off so that a stage that will not start is not hammered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import drivers
from drivers.capabilities import PowerStage, PowerStageReading
from edge.daemon.snapshot import Command
from edge.daemon.tasks import cancel

log = logging.getLogger(__name__)

HEARTBEAT_PERIOD_S = 1.0
RESYNC_MIN_S = 5.0  # first re-send of start/stop when the stage reports the opposite
RESYNC_MAX_S = 60.0
CLOSE_AGAIN_S = 0.5  # close: cancel again after this if the task has not ended (a lost cancellation)


class SetpointWriter:
    """Sends the latest command to the power stage, one write at a time, plus the heartbeat."""

    def __init__(self, stage: PowerStage, clock: Callable[[], float]) -> None:
        self.stage = stage
        self.clock = clock
        self._latest: tuple[Command, PowerStageReading | None] | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # What the stage was last told and acknowledged: True started, False stopped, None unknown.
        self.operation: bool | None = None
        self._resync_at = 0.0
        self._resync_s = RESYNC_MIN_S
        self._last_heartbeat = -1e9
        self.busy_since: float | None = None
        self.errors = 0
        self.acknowledged = 0  # commands written in full
        self.last_error: str | None = None

    def submit(self, cmd: Command, stage: PowerStageReading | None) -> None:
        """Hand over the cycle's command (and the reading it was made from); never blocks."""
        self._latest = (cmd, stage)
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="setpoint-writer")

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def close(self) -> None:
        # It must have ended before the stage's stop, or a start it sends after would undo it.
        await cancel(self._task, again_after_s=CLOSE_AGAIN_S)
        self._task = None

    async def _run(self) -> None:
        failing = False
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._latest is None:
                continue
            cmd, reading = self._latest
            self.busy_since = self.clock()
            try:
                await self._apply(cmd, reading)
            except drivers.DriverError as exc:
                self.errors += 1
                self.last_error = str(exc)
                if exc.kind != "range":
                    self.operation = None  # the stage may or may not have taken it
                if not failing:
                    log.warning("setpoint write to %s failed: %s", self.stage.name, exc)
                failing = True
            else:
                self.acknowledged += 1
                self.last_error = None
                if failing:
                    log.info("setpoint writes to %s work again", self.stage.name)
                failing = False
            finally:
                self.busy_since = None

    def _needs(self, want: bool, reported_stopped: bool | None, now: float) -> bool:
        """Whether the start (``want``) or stop command must be sent now."""
        if self.operation is not want:
            return True
        if reported_stopped is None or reported_stopped is not want:
            self._resync_s = RESYNC_MIN_S  # the stage agrees (or does not say): nothing to re-send
            return False
        if now < self._resync_at:
            return False
        log.warning(
            "power stage %s reports it is %s although it was told to %s: sending the command again",
            self.stage.name,
            "stopped" if reported_stopped else "operating",
            "operate" if want else "stop",
        )
        return True

    def _superseded(self, cmd: Command) -> bool:
        """A newer command arrived while this one was being written: it goes first (a trip decided
        meanwhile must not wait behind the old setpoint and a heartbeat)."""
        return self._latest is not None and self._latest[0] is not cmd

    async def _apply(self, cmd: Command, reading: PowerStageReading | None) -> None:
        now = self.clock()
        reported_stopped = None if reading is None else reading.stopped
        if cmd.service is False:
            if self._needs(False, reported_stopped, now):
                await self.stage.stop()
                self._operation_sent(False, now)
        else:
            if cmd.service is True and self._needs(True, reported_stopped, now):
                await self.stage.resume()
                self._operation_sent(True, now)
                if self._superseded(cmd):
                    return
            await self.stage.write_setpoint(cmd.p_w, cmd.q_var)
        if now - self._last_heartbeat >= HEARTBEAT_PERIOD_S and not self._superseded(cmd):
            await self.stage.heartbeat()
            self._last_heartbeat = now

    def _operation_sent(self, started: bool, now: float) -> None:
        if self.operation is started:
            self._resync_s = min(self._resync_s * 2.0, RESYNC_MAX_S)  # a re-send: back off further
        else:
            self._resync_s = RESYNC_MIN_S  # a new command: its own back-off starts short
            log.info("power stage %s: %s command sent", self.stage.name, "start" if started else "stop")
        self.operation = started
        self._resync_at = now + self._resync_s
