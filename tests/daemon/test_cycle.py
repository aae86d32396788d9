"""The daemon's cycle against the bench plant over real Modbus: readiness, the watchdog, SIGHUP reloads,
the output-mismatch event, the cycle recorder and the wall clock.

The daemon runs in-process (in this test's event loop, or in a thread of its own where a test must
watch it hang); systemd is a real datagram socket at NOTIFY_SOCKET.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge.ctl.main import main as v2gctl
from edge.daemon import status as status_file
from edge.daemon.app import Daemon
from edge.daemon.recorder import read_dump, replay, write_dump
from edge.daemon.snapshot import Dither
from hil.plant import events as ev
from tests.conftest import NotifyReceiver
from tests.daemon.bench_support import bench_config_text, running_daemon, running_plant, settings_for, until

NO_BATTERY: dict[str, Any] = {"estimate": False}


async def _notified(sock: NotifyReceiver, prefix: str, timeout_s: float = 10.0) -> str:
    return await asyncio.to_thread(sock.wait_for, lambda m: m.startswith(prefix), timeout_s)


# --- readiness and STATUS= ---------------------------------------------------------------------------


async def test_ready_after_the_first_command_reached_the_stage(
    tmp_path: Path, notify_socket: NotifyReceiver
) -> None:
    async with running_plant() as plant:
        plant.apply(ev.HouseLoad(w=2000.0))
        async with running_daemon(settings_for(plant, battery=NO_BATTERY), tmp_path) as daemon:
            ready = await _notified(notify_socket, "READY=1")
            assert daemon._writer is not None and daemon._writer.acknowledged >= 1
            assert daemon.counters.cycles >= 1
            assert "STATUS=" in ready
            # STATUS= follows what the charger does, for `systemctl status`.
            await _notified(notify_socket, "STATUS=normal: P ")


async def test_ready_with_the_reason_when_the_stage_does_not_answer(
    tmp_path: Path, notify_socket: NotifyReceiver
) -> None:
    async with running_plant() as plant:
        plant.apply(ev.Link(device="power_stage", up=False))
        t0 = time.monotonic()
        settings = settings_for(plant, battery=NO_BATTERY)
        async with running_daemon(settings, tmp_path, ready_timeout_s=2.0):
            ready = await _notified(notify_socket, "READY=1", 15.0)
            assert time.monotonic() - t0 >= 2.0  # not before the daemon gave the stage its chance
            assert "holding P = Q = 0" in ready
            assert "power stage not answering" in ready
        assert abs(plant.snapshot()["p_ev_w"]) < 50.0  # idle consumption only: it never ran


@contextlib.asynccontextmanager
async def daemon_in_thread(daemon_factory) -> AsyncIterator[Daemon]:  # type: ignore[no-untyped-def]
    """Run a daemon on an event loop of its own, so the test can watch it while it is blocked (the
    plant goes on serving on the test's loop)."""
    started = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        box["daemon"] = daemon = daemon_factory()
        box["stop"] = stop = asyncio.Event()
        box["loop"] = asyncio.get_running_loop()
        started.set()
        await daemon.run(stop)

    thread = threading.Thread(target=lambda: asyncio.run(main()), name="daemon-thread")
    thread.start()
    try:
        assert await asyncio.to_thread(started.wait, 10)
        yield box["daemon"]
    finally:
        if "loop" in box:
            box["loop"].call_soon_threadsafe(box["stop"].set)
        await asyncio.to_thread(thread.join, 20)
        assert not thread.is_alive()


async def test_a_hung_cycle_stops_the_watchdog_pings(
    tmp_path: Path, notify_socket: NotifyReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # 1 s: pings every 0.5 s while healthy
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    async with running_plant() as plant:
        plant.apply(ev.HouseLoad(w=2000.0))
        settings = settings_for(plant, battery=NO_BATTERY)
        async with daemon_in_thread(lambda: Daemon(settings, runtime_dir=tmp_path)) as daemon:
            await _notified(notify_socket, "READY=1")
            stamps: list[float] = []

            def watch(seconds: float) -> None:
                end = time.monotonic() + seconds
                while (left := end - time.monotonic()) > 0:
                    notify_socket.sock.settimeout(left)
                    try:
                        if notify_socket.sock.recv(4096) == b"WATCHDOG=1":
                            stamps.append(time.monotonic())
                    except TimeoutError:
                        return

            watching = asyncio.create_task(asyncio.to_thread(watch, 6.0))
            await asyncio.sleep(1.5)
            step = daemon.controllers.step
            hang: list[float] = []

            def hang_once(snap):  # type: ignore[no-untyped-def]
                if not hang:
                    hang.append(time.monotonic())
                    time.sleep(3.0)  # the cycle blocks: nothing else runs on its loop
                    hang.append(time.monotonic())
                return step(snap)

            daemon.controllers.step = hang_once  # type: ignore[method-assign]
            await watching
            assert len(hang) == 2, "the cycle hung"
            before = [s for s in stamps if s < hang[0]]
            during = [s for s in stamps if hang[0] + 0.05 < s < hang[1] - 0.05]
            after = [s for s in stamps if s > hang[1]]
            assert len(before) >= 2, f"a healthy cycle pings: {stamps}"
            assert during == [], "no ping while the cycle hangs"
            assert after, "pings resume once the cycle runs again"


# --- SIGHUP: reload ----------------------------------------------------------------------------------


async def test_reload_takes_a_valid_file_and_refuses_a_broken_one(
    tmp_path: Path, notify_socket: NotifyReceiver
) -> None:
    async with running_plant() as plant:
        plant.apply(ev.HouseLoad(w=2000.0))
        path = tmp_path / "v2g-edge.toml"
        path.write_text(bench_config_text(plant, battery=NO_BATTERY))
        settings = settings_for(plant, battery=NO_BATTERY)
        async with running_daemon(settings, tmp_path, config_path=path) as daemon:
            await _notified(notify_socket, "READY=1")
            await until(lambda: plant.snapshot()["p_ev_w"] > 1500.0, 10, "serving the house")

            # A valid change the running daemon can take: the export margin.
            path.write_text(path.read_text().replace("export_margin_w = 100.0", "export_margin_w = 600.0"))
            daemon.request_reload()
            await _notified(notify_socket, "STATUS=configuration reloaded")
            assert daemon.settings.site.export_margin_w == 600.0
            await until(lambda: plant.snapshot()["p_site_import_w"] > 450.0, 10, "the new margin acts")
            assert daemon.last is not None and daemon.last[1].state == "normal"  # not a restart

            # A broken file: refused, and the daemon runs on with what it had.
            path.write_text("[site\nmode = ")
            daemon.request_reload()
            refused = await _notified(notify_socket, "STATUS=configuration reload refused")
            assert str(path) in refused or "TOML" in refused or "line" in refused
            cycles = daemon.counters.cycles
            await asyncio.sleep(0.5)
            assert daemon.counters.cycles > cycles
            assert daemon.settings.site.export_margin_w == 600.0

            # Not even text (a Latin-1 byte): refused the same way, never the end of the daemon.
            path.write_bytes(b"[site]\n# caf\xe9\n")
            notify_socket.received.clear()
            daemon.request_reload()
            refused = await _notified(notify_socket, "STATUS=configuration reload refused")
            assert "not UTF-8" in refused
            await asyncio.sleep(0.5)
            assert daemon.counters.cycles > cycles + 5

            # A change the daemon cannot take while running: refused, naming the section.
            text = bench_config_text(plant, battery=NO_BATTERY).replace(
                "timeout_s = 0.3", "timeout_s = 0.5", 1
            )
            path.write_text(text)
            notify_socket.received.clear()
            daemon.request_reload()
            refused = await _notified(notify_socket, "STATUS=configuration reload refused")
            assert "buses" in refused and "restart" in refused
            assert plant.snapshot()["p_ev_w"] > 1000.0


# --- output mismatch ---------------------------------------------------------------------------------


async def test_an_output_mismatch_is_reported_with_its_cause(tmp_path: Path) -> None:
    async with running_plant() as plant:
        plant.apply(ev.HouseLoad(w=2000.0))
        async with running_daemon(settings_for(plant, battery=NO_BATTERY), tmp_path) as daemon:
            await until(lambda: plant.snapshot()["p_ev_w"] > 1500.0, 10, "serving the house")
            assert daemon.mismatch is None
            # Someone disables the stage's permit-service behind the daemon's back (703 ES): the
            # daemon's start command (715 OpCtl) cannot undo that, so the output stays at zero.
            plant.stage.es_permit = False
            await until(lambda: daemon.mismatch is not None, 10, "an output mismatch")
            assert daemon.mismatch is not None
            assert "reports it is off" in daemon.mismatch.cause
            await until(
                lambda: (
                    (status_file.read(tmp_path / "status.json")[0].output_mismatch or "").find("off") >= 0
                ),
                5,
                "the status file says so",
            )
            plant.stage.es_permit = True
            await until(lambda: daemon.mismatch is None, 15, "the mismatch ends when the output follows")


async def test_the_active_anti_islanding_is_shown_in_the_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Where the daemon owns anti-islanding, a technician reads its dither and the grid's response at
    commissioning: the status file carries both (from the kernel, through real Modbus), v2gctl shows them."""
    async with running_plant() as plant:
        plant.apply(ev.HouseLoad(w=3000.0))
        settings = settings_for(
            plant,
            battery=NO_BATTERY,
            functions={"anti_islanding": "daemon"},
            daemon={"cycle_s": 0.05, "actuation_latency_s": 0.1},
        )
        amplitude = settings.site.island_dither_pu * settings.inverter.s_rated_va  # type: ignore[union-attr]
        async with running_daemon(settings, tmp_path):

            def dither() -> Dither | None:
                path = tmp_path / "status.json"  # written from the first cycle on
                return status_file.read(path)[0].island_dither if path.exists() else None

            await until(lambda: (d := dither()) is not None and d.response_hz is not None, 15, "a response")
            d = dither()
            assert d is not None and d.response_hz is not None
            assert d.amplitude_var == pytest.approx(amplitude)
            assert abs(d.q_var) == pytest.approx(amplitude)  # exporting: the dither is on
            assert abs(d.response_hz) < settings.site.island_dither_df_hz  # a stiff grid: no island
            assert (d.threshold_hz, d.halves) == (
                settings.site.island_dither_df_hz,
                settings.site.island_dither_halves,
            )
            assert v2gctl(["status", "--runtime-dir", str(tmp_path)]) == 0
            out = capsys.readouterr().out
            assert f"islanding  active method: Q dither +/- {amplitude:.0f} var" in out
            assert f"trips after {d.halves} in a row above {d.threshold_hz:.3f} Hz" in out


# --- recorder: dump and replay -----------------------------------------------------------------------


async def test_a_dump_of_the_cycles_replays_to_the_same_commands(tmp_path: Path) -> None:
    async with running_plant() as plant:
        plant.apply(ev.HouseLoad(w=2000.0))
        settings = settings_for(plant)  # with the battery estimator: its view is part of the snapshot
        async with running_daemon(settings, tmp_path) as daemon:
            await until(lambda: plant.snapshot()["p_ev_w"] > 1500.0, 10, "serving the house")
            plant.apply(ev.Hob(w=2000.0, period_s=1.0, duty=0.5))
            await asyncio.sleep(2.0)
            dump = daemon.recorder.freeze(daemon.settings)
        path = tmp_path / "cycles.msgpack"
        await asyncio.to_thread(write_dump, path, dump)
    back = read_dump(path)
    assert back.settings == settings
    assert len(back.pairs) == len(dump.pairs) > 20
    commands = replay(back.settings, [p.snapshot for p in back.pairs])
    assert commands == [p.command for p in back.pairs]
    assert any(c.p_w > 1000.0 for c in commands) and any("export_cap" in c.binding for c in commands)


async def test_sigusr1_dump_lands_in_the_runtime_dir(tmp_path: Path) -> None:
    async with (
        running_plant() as plant,
        running_daemon(settings_for(plant, battery=NO_BATTERY), tmp_path) as daemon,
    ):
        await until(lambda: daemon.counters.cycles > 5, 10, "cycling")
        daemon.request_dump()
        await until(lambda: any(tmp_path.glob("cycles-*.msgpack")), 5, "a dump file")
    dump = await asyncio.to_thread(lambda: read_dump(next(tmp_path.glob("cycles-*.msgpack"))))
    assert len(dump.pairs) > 5


# --- the wall clock is not a control clock -----------------------------------------------------------


async def test_a_wall_clock_step_changes_no_control_timer(tmp_path: Path) -> None:
    """Enter service owned by the daemon waits its delay on the monotonic clock, whatever the wall
    clock does (an NTP step of an hour back, then a day forward, while it waits)."""
    steps = iter([0.0] * 5 + [-3600.0] * 10 + [86400.0] * 1_000_000)

    def wall_clock() -> float:
        return time.time() + next(steps)

    async with running_plant() as plant:
        plant.apply(ev.HouseLoad(w=2000.0))
        settings = settings_for(
            plant,
            battery=NO_BATTERY,
            functions={"enter_service": "daemon"},
            grid={"enter_service": {"delay_s": 3.0, "ramp_s": 1.0}},
        )
        delay_s = settings.grid.enter_service.delay_s if settings.grid else 0.0
        t0 = time.monotonic()
        async with running_daemon(settings, tmp_path, wall_clock=wall_clock) as daemon:
            await until(
                lambda: plant.snapshot()["p_ev_w"] > 1000.0, delay_s + 15.0, "in service after the delay"
            )
            assert time.monotonic() - t0 >= delay_s - 0.2  # the delay was waited, not skipped
            status, _ = status_file.read(tmp_path / "status.json")
            assert status.written_at > time.time() + 80000.0  # the report did use the stepped wall clock
            assert daemon.last is not None and daemon.last[1].state in ("ramping", "normal")


async def test_v2g_hil_replay_reports_what_other_settings_would_have_done(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hil.cli import main as v2g_hil

    async with running_plant() as plant:
        plant.apply(ev.HouseLoad(w=2000.0))
        text = bench_config_text(plant, battery=NO_BATTERY)
        async with running_daemon(settings_for(plant, battery=NO_BATTERY), tmp_path) as daemon:
            await until(lambda: plant.snapshot()["p_ev_w"] > 1500.0, 10, "serving the house")
            dump = daemon.recorder.freeze(daemon.settings)
    path = tmp_path / "cycles.msgpack"
    await asyncio.to_thread(write_dump, path, dump)
    assert v2g_hil(["replay", str(path)]) == 0
    assert "0 of" in capsys.readouterr().out
    other = tmp_path / "other.toml"
    other.write_text(text.replace("export_margin_w = 100.0", "export_margin_w = 900.0"))
    assert v2g_hil(["replay", str(path), "--config", str(other)]) == 1
    out = capsys.readouterr().out
    assert "replayed normal" in out and "differ" in out


# --- a cancelled daemon ------------------------------------------------------------------------------


async def test_a_cancelled_daemon_still_stops_the_stage_and_closes_everything(tmp_path: Path) -> None:
    """Cancelling the daemon's task (an embedding loop shutting down) must not cut its shutdown short:
    every step of it still runs, the power stage's stop command first."""
    async with running_plant() as plant:
        plant.apply(ev.HouseLoad(w=2000.0))
        daemon = Daemon(
            settings_for(plant, battery=NO_BATTERY), runtime_dir=tmp_path, state_dir=tmp_path / "state"
        )
        task = asyncio.create_task(daemon.run(asyncio.Event()), name="daemon-under-test")
        await until(lambda: plant.snapshot()["p_ev_w"] > 1500.0, 20, "serving the house")
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=15.0)
        assert done and task.cancelled()
        stage = daemon.drivers.power_stage
        assert stage is not None and stage.latest() is not None
        # Stopped by its stop command, not by a reversion timer that has not run out yet.
        await until(lambda: abs(plant.snapshot()["p_ev_w"]) < 50.0, 10, "the stage at zero")
        assert plant.snapshot()["stage_reverted"] == 0.0
        # The steps after the stage's stop ran too.
        assert daemon.departure._task is None and daemon.planner._task is None
        assert daemon._io._shutdown
