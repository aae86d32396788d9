"""The real daemon survives its own restart and the inverter's: ``v2g-edged`` as a process of its own
(as systemd runs it), against the in-process plant over Modbus TCP.

Judged at the plant: the stage's output (``p_ev_w``), its state and its control registers, never the
daemon's word. The house draws 2 kW and the site is V2H, so a daemon in control has the EV serve the
house. Every wait is a bounded poll; the bounds are generous for a loaded 2-core machine (a daemon
start includes the interpreter's start-up).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tomllib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge.daemon import status as status_file
from edge.settings.load import default_config_text
from hil.plant import Plant
from hil.plant import events as ev
from hil.runner import DaemonProcess, daemon_command
from tests.daemon.bench_support import bench_config_text, running_plant

HOUSE_W = 2000.0
SERVING_W = 1500.0  # the EV serves the house (the export cap's margin keeps the site importing a little)
STILL_W = 50.0  # no output: the stage draws 15 W itself while energized
UP_S = 15.0  # a daemon start (or an inverter restart) to serving the house
COMES_UP_S = 15.0  # a daemon start to its first status file
STOP_S = 15.0  # SIGTERM to exit: the ramp down is bounded at 10 s, then the stop command
REVERT_S = 3  # the stage's reversion timer the daemon arms (devices.inverter.setpoint_revert_s)


@dataclass
class Bench:
    plant: Plant
    daemon: DaemonProcess
    status_path: Path

    async def start(self) -> float:
        """Start the daemon; return the plant time it was started at, once it writes its status."""
        t0 = self.plant.t_s
        await self.daemon.start(t0)
        proc = self.daemon.proc
        assert proc is not None
        await self.until(lambda: self._status_pid() == proc.pid, COMES_UP_S, "the daemon writes its status")
        return t0

    async def stop(self, sig: signal.Signals) -> int:
        proc = self.daemon.proc
        assert proc is not None and proc.returncode is None, self.why("the daemon was not running")
        proc.send_signal(sig)
        async with asyncio.timeout(STOP_S):
            code = await proc.wait()
        self.daemon.poll(self.plant.t_s)
        return code

    def _status_pid(self) -> int | None:
        try:
            status, _ = status_file.read(self.status_path)
        except (OSError, ValueError):
            return None
        return status.pid

    async def until(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Poll ``predicate``; fail naming ``what`` with the plant's and the daemon's state after
        ``timeout_s``, or at once if the daemon exits on its own."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not predicate():
            proc = self.daemon.proc
            if proc is not None and proc.returncode is not None:
                raise AssertionError(
                    self.why(f"the daemon exited with code {proc.returncode}, before: {what}")
                )
            if loop.time() > deadline:
                raise AssertionError(self.why(f"not within {timeout_s} s: {what}"))
            await asyncio.sleep(0.05)

    def why(self, what: str) -> str:
        """``what``, with the plant's state, the daemon's status file and the tail of its log."""
        st, dev = self.plant.stage, self.plant.stage_dev.dev
        snap = self.plant.snapshot()
        lines = [
            what,
            f"plant t={self.plant.t_s:.2f} s: p_ev_w={snap['p_ev_w']:.0f} p_set_w={snap['p_set_w']:.0f} "
            f"site_import={snap['p_site_import_w']:.0f} W; stage state={st.state} OpCtl={dev.get_raw(715, 'OpCtl')} "
            f"ES={dev.get_raw(703, 'ES')} InvSt={dev.get_raw(701, 'InvSt')} WSetEna={dev.get_raw(704, 'WSetEna')} "
            f"link_up={self.plant.link_up['power_stage']}",
        ]
        try:
            status, age = status_file.read(self.status_path)
            lines.append(
                f"daemon status ({age:.1f} s old, pid {status.pid}): state={status.state} "
                f"p_cmd_w={status.p_cmd_w:.0f} reasons={status.reasons} hold={status.hold_reasons}"
            )
        except (OSError, ValueError) as exc:
            lines.append(f"no daemon status: {exc}")
        log = self.daemon.log.read_text(errors="replace").splitlines() if self.daemon.log.exists() else []
        lines += ["daemon log (tail):", *log[-25:]]
        return "\n".join(lines)

    def serving(self) -> bool:
        return self.plant.snapshot()["p_ev_w"] > SERVING_W

    def still(self) -> bool:
        return abs(self.plant.snapshot()["p_ev_w"]) <= STILL_W

    def stopped_by_command(self) -> bool:
        """Off because it was told to stop (715 OpCtl = STOP), and saying so in 701 InvSt."""
        dev = self.plant.stage_dev.dev
        return (
            self.plant.stage.state == "off"
            and dev.get_raw(715, "OpCtl") == 0
            and dev.get_raw(701, "InvSt") == 0
        )

    def first_output_after(self, t0_s: float, above_w: float = 100.0) -> float | None:
        """Plant time of the first recorded sample after ``t0_s`` with the output above ``above_w``."""
        rec = self.plant.recorder
        for t, p in zip(rec.series("t_s"), rec.series("p_ev_w"), strict=True):
            if t >= t0_s and p > above_w:
                return t
        return None


@contextlib.asynccontextmanager
async def bench(tmp_path: Path, **sections: dict[str, Any]) -> AsyncIterator[Bench]:
    """The plant with a 2 kW house, and the daemon's config file pointed at it (not started)."""
    async with running_plant() as plant:
        plant.apply(ev.HouseLoad(w=HOUSE_W))
        (tmp_path / "state").mkdir()
        config = tmp_path / "daemon.toml"
        config.write_text(bench_config_text(plant, daemon={"state_dir": str(tmp_path / "state")}, **sections))
        run_dir = tmp_path / "run"
        cmd = [*daemon_command(None), "--config", str(config), "--runtime-dir", str(run_dir)]
        daemon = DaemonProcess(cmd, tmp_path / "daemon.log")
        try:
            yield Bench(plant, daemon, run_dir / "status.json")
        finally:
            await daemon.stop(plant.t_s)


async def test_after_a_clean_stop_and_a_restart_it_serves_the_house_again(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        await b.start()
        await b.until(b.serving, UP_S, "the EV serves the house")
        assert await b.stop(signal.SIGTERM) == 0
        # The clean stop: output to zero, and the stage stopped by command (not only at 0 W).
        await b.until(b.still, 2.0, "no output after the clean stop")
        await b.until(b.stopped_by_command, 2.0, "the stage stopped by command (OpCtl STOP, InvSt OFF)")
        await b.start()
        await b.until(b.serving, UP_S, "the EV serves the house again after the restart")


async def test_after_a_crash_and_a_restart_it_serves_the_house_again(tmp_path: Path) -> None:
    inverter = tomllib.loads(default_config_text())["devices"]["inverter"]
    async with bench(tmp_path, devices={"inverter": {**inverter, "setpoint_revert_s": REVERT_S}}) as b:
        await b.start()
        await b.until(b.serving, UP_S, "the EV serves the house")
        assert await b.stop(signal.SIGKILL) == -signal.SIGKILL
        # Nobody writes any more: the stage's own reversion timer takes it to 0 W.
        await b.until(b.still, REVERT_S + 3.0, "the stage reverts to 0 W by its own timer")
        assert b.plant.snapshot()["stage_reverted"] == 1.0
        await b.start()
        await b.until(b.serving, UP_S, "the EV serves the house again after the restart")


@pytest.mark.parametrize("how", ["stopped", "es_disabled"])
async def test_after_the_inverter_restarts_stopped_it_serves_the_house_again(
    tmp_path: Path, how: str
) -> None:
    revert_s = 10  # the drivers' default
    async with bench(tmp_path) as b:
        await b.start()
        await b.until(b.serving, UP_S, "the EV serves the house")
        assert b.plant.stage.wset_rvrt_tms_s == revert_s  # armed by the daemon
        b.plant.apply(
            ev.InverterRestart(offline_s=1.0, stopped=how == "stopped", es_disabled=how == "es_disabled")
        )
        assert b.plant.snapshot()["p_ev_w"] == 0.0
        await b.until(lambda: b.plant.link_up["power_stage"], 3.0, "the stage back on the bus")
        if how == "stopped":
            assert b.stopped_by_command(), b.why("the stage came back stopped")
        else:
            assert not b.plant.stage.es_permit and b.plant.stage.state == "off"
        assert b.plant.stage.wset_rvrt_tms_s == 0  # it forgot the reversion timer
        await b.until(b.serving, UP_S, "the EV serves the house again after the inverter's restart")
        # The power-on defaults had no reversion: the daemon arms it again (a crash now must still end at 0 W).
        await b.until(
            lambda: b.plant.stage.wset_rvrt_tms_s == revert_s,
            UP_S,
            f"the stage's reversion timer armed again ({revert_s} s)",
        )


async def test_enter_service_owned_by_the_daemon_holds_zero_for_the_delay_after_a_restart(
    tmp_path: Path,
) -> None:
    # Within ieee1547-2018's ranges: delay 0..600 s, ramp 1..1000 s.
    delay_s, ramp_s = 4.0, 1.0
    async with bench(
        tmp_path,
        functions={"enter_service": "daemon"},
        grid={"enter_service": {"delay_s": delay_s, "ramp_s": ramp_s}},
    ) as b:

        async def enters_service(what: str) -> None:
            t0 = await b.start()
            await b.until(b.serving, delay_s + ramp_s + UP_S, f"the EV serves the house after the {what}")
            first = b.first_output_after(t0)
            assert first is not None
            # The delay runs from the daemon's first cycle, so it cannot end sooner after the process start.
            assert first - t0 >= delay_s, b.why(
                f"output {first - t0:.2f} s after the {what}, before the delay"
            )

        await enters_service("start")
        assert await b.stop(signal.SIGTERM) == 0
        await b.until(b.still, 2.0, "no output after the clean stop")
        await enters_service("restart")


async def test_sighup_reloads_a_good_file_and_a_bad_one_leaves_it_running(tmp_path: Path) -> None:
    """The real signal to the real process (``systemctl reload``): a broken file is refused and the
    charger goes on serving; a good one is taken without a restart."""
    async with bench(tmp_path) as b:
        await b.start()
        await b.until(b.serving, UP_S, "the EV serves the house")
        proc = b.daemon.proc
        assert proc is not None
        config = tmp_path / "daemon.toml"
        good = config.read_text()
        config.write_text("[site\n")
        proc.send_signal(signal.SIGHUP)
        await b.until(lambda: "reload refused" in b.daemon.log.read_text(), 10, "the bad file refused")
        await asyncio.sleep(1.0)
        assert proc.returncode is None and b.serving(), b.why(
            "still running and serving after the bad reload"
        )
        config.write_text(good.replace("export_margin_w = 100.0", "export_margin_w = 600.0"))
        proc.send_signal(signal.SIGHUP)
        await b.until(lambda: "configuration reloaded" in b.daemon.log.read_text(), 10, "the good file taken")
        await b.until(lambda: b.plant.snapshot()["p_site_import_w"] > 450.0, 10, "the new margin acts")
        assert proc.returncode is None and b._status_pid() == proc.pid  # the same process: no restart
