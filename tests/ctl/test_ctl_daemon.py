"""``v2gctl`` as a technician runs it (the installed console script, its exit codes) against the real
``v2g-edged`` process and the in-process bench plant over Modbus TCP.

Every wait is a bounded poll (the daemon's start includes the interpreter's). The command line runs
as a subprocess of the event loop, so the plant keeps answering while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit

from edge.daemon import status as status_file
from hil.plant import Plant
from hil.runner import DaemonProcess, daemon_command
from tests.daemon.bench_support import bench_config_text, running_plant

V2GCTL = str(Path(sys.executable).parent / "v2gctl")
UP_S = 20.0


@dataclass
class Result:
    rc: int
    out: str
    err: str


@dataclass
class Bench:
    plant: Plant
    daemon: DaemonProcess
    config: Path
    run_dir: Path
    state_dir: Path

    async def ctl(self, *args: str, user: str | None = None) -> Result:
        env = {k: v for k, v in os.environ.items() if not k.startswith("V2G_EDGE_")}
        cmd = [V2GCTL, *args]
        if user is not None:  # as an operator without the service's rights
            cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None
        return Result(proc.returncode, out.decode(), err.decode())

    def status(self) -> status_file.Status | None:
        try:
            return status_file.read(self.run_dir / "status.json")[0]
        except (OSError, ValueError):
            return None

    async def until(self, what: str, predicate: Any, timeout_s: float = UP_S) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                proc = self.daemon.proc
                assert proc is None or proc.returncode is None, f"the daemon exited before: {what}"
                await asyncio.sleep(0.1)

    async def start(self) -> None:
        await self.daemon.start(self.plant.t_s)
        proc = self.daemon.proc
        assert proc is not None
        await self.until(
            "a status with its devices answering, out of the fail-safe",
            lambda: (
                (s := self.status()) is not None
                and s.pid == proc.pid
                and not s.fail_safe
                and s.devices
                and all(d.ok and d.last_success_age_s is not None for d in s.devices)
            ),
        )


@contextlib.asynccontextmanager
async def bench(tmp_path: Path, **sections: dict[str, Any]) -> AsyncIterator[Bench]:
    async with running_plant() as plant:
        state = tmp_path / "state"
        state.mkdir()
        config = tmp_path / "v2g-edge.toml"
        config.write_text(bench_config_text(plant, daemon={"state_dir": str(state)}, **sections))
        run_dir = tmp_path / "run"
        cmd = [*daemon_command(None), "--config", str(config), "--runtime-dir", str(run_dir)]
        daemon = DaemonProcess(cmd, tmp_path / "daemon.log")
        try:
            yield Bench(plant, daemon, config, run_dir, state)
        finally:
            await daemon.stop(plant.t_s)


async def test_status_names_the_daemon_and_its_links_and_is_readable_by_the_group(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        await b.start()
        r = await b.ctl("status", "--runtime-dir", str(b.run_dir))
        assert r.rc == 0, r.out + r.err
        proc = b.daemon.proc
        assert proc is not None
        assert f"pid {proc.pid}, up " in r.out and str(b.config) in r.out
        assert "energize   allowed" in r.out and "fail-safe  no" in r.out, r.out
        assert "device     inverter [power_stage] ok" in r.out
        assert "aggregator off" in r.out
        assert "daemon_start" in r.out  # the last events, from the state store
        # What the battery's power limits rest on: a vehicle just plugged in is not identified yet.
        assert "SoP basis: fallback: identification not converged" in r.out, r.out
        # No power stage reports a pack temperature; the simulated EV states its limits.
        assert "no pack temperature measured" in r.out and "the EV states its own charge limit" in r.out, (
            r.out
        )
        mode = stat.S_IMODE((b.run_dir / "status.json").stat().st_mode)
        assert mode == 0o640, oct(mode)

        r = await b.ctl("status", "--runtime-dir", str(b.run_dir), "--json")
        doc = json.loads(r.out)
        assert r.rc == 0 and doc["running"] is True and doc["problems"] == []
        assert doc["status"]["pid"] == proc.pid and doc["status"]["config_path"] == str(b.config)
        assert {d["name"] for d in doc["status"]["devices"]} == {"inverter", "site_meter"}
        assert doc["status"]["sop_basis"].startswith("fallback: ")

        await b.daemon.stop(b.plant.t_s)
        r = await b.ctl("status", "--runtime-dir", str(b.run_dir))
        assert r.rc == 3 and "not running" in r.err and "Traceback" not in r.err


async def test_a_device_that_does_not_answer_fails_status_with_the_cause(
    tmp_path: Path, free_tcp_port: int
) -> None:
    silent = free_tcp_port  # nothing listens there
    async with bench(tmp_path) as b:
        doc = tomlkit.parse(b.config.read_text())
        doc["buses"]["meter_link"]["port"] = silent  # type: ignore[index]
        b.config.write_text(tomlkit.dumps(doc))
        await b.daemon.start(b.plant.t_s)
        await b.until(
            "the meter reported failing with its error",
            lambda: (
                (s := b.status()) is not None
                and any(d.name == "site_meter" and not d.ok and d.last_error for d in s.devices)
            ),
        )
        r = await b.ctl("status", "--runtime-dir", str(b.run_dir))
        assert r.rc == 1, r.out + r.err
        st = b.status()
        assert st is not None
        meter = next(d for d in st.devices if d.name == "site_meter")
        assert meter.last_error is not None and meter.last_error in r.out
        assert "PROBLEMS   device site_meter:" in r.out
        assert "fail-safe  ACTIVE" in r.out  # no meter: no export


async def test_status_without_permission_says_so(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        await b.start()
        # The file is 0640 in the service's group: another user gets a clear refusal, exit 4.
        r = await b.ctl("status", "--runtime-dir", str(b.run_dir), user="65534")
        assert r.rc == 4, r.out + r.err
        assert "permission denied" in r.err and "v2g-edge" in r.err and "Traceback" not in r.err


async def test_config_set_validates_writes_and_has_the_daemon_reload(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        await b.start()
        audit = tmp_path / "audit.jsonl"
        base = ["--file", str(b.config), "--runtime-dir", str(b.run_dir), "--audit", str(audit)]
        r = await b.ctl("config", "set", "grid.volt_var.olrt_s", "7.5", "--who", "tech-1", *base)
        assert r.rc == 0, r.out + r.err
        assert "the daemon runs on the new configuration" in r.out
        assert (tmp_path / "v2g-edge.toml.bak").exists()
        r = await b.ctl("config", "get", "grid.volt_var.olrt_s", "--file", str(b.config))
        assert r.out.startswith("grid.volt_var.olrt_s = 7.5") and "1.0 … 90.0" in r.out

        r = await b.ctl("events", "--state-dir", str(b.state_dir), "--kind", "config_reloaded")
        assert r.rc == 0 and "config_reloaded" in r.out and "daemon is running" in r.out

        r = await b.ctl("config", "diff", "--file", str(b.config))
        assert "grid.volt_var.olrt_s: 5.0 -> 7.5" in r.out

        # A change the daemon takes only at a restart is refused by it: v2gctl says so.
        r = await b.ctl("config", "set", "buses.meter_link.timeout_s", "0.7", "--who", "t", *base)
        assert r.rc == 0 and "REFUSED" in r.out and "restart" in r.out

        r = await b.ctl("config", "rollback", "--who", "t", *base)
        assert r.rc == 0 and "buses.meter_link.timeout_s" in r.out

        r = await b.ctl("sessions", "--state-dir", str(b.state_dir))
        assert r.rc == 0 and "no finished sessions" in r.out
