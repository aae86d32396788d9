"""``v2g-hil run SCENARIO...``: run scenarios against the real daemon and judge them at the plant.

For each scenario: start the plant (in this process, stepped in real time), a Mosquitto broker if the
scenario needs one, and the daemon as a separate process from its console script (``v2g-edged
--config FILE``) with a generated config pointing at the plant; play the timeline; record every plant
signal; judge the checks; write a report folder (``result.json``, ``signals.json``, a PNG per check,
``summary.md``, the daemon's config and log). While a scenario runs it prints a line per event as it
plays (and on a terminal a status line redrawn in place); then ``PASS``/``FAIL`` per check and ``N
passed, M failed``; exits 1 on any failure, 2 on a scenario that cannot be run.

The generated daemon config is the embedded default (``config/v2g-edge.toml``) with ``[commissioning]``
and ``[inverter]`` matched to the plant, ``[buses]``/``[devices]`` pointing at it, ``[mqtt]`` at the bench
broker (or disabled), ``[daemon] state_dir`` in the report folder, then the scenario's ``[daemon]`` table
merged on top.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shlex
import shutil
import signal
import sys
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import tomlkit

from edge.settings.load import default_config_text
from hil import report, scenario
from hil.backends.base import Backend, UnsupportedEventError
from hil.backends.lab import LabBackend, LabConfig, load_lab
from hil.backends.software import SoftwareBackend
from hil.broker import Mosquitto
from hil.judge import judge
from hil.scenario import DaemonKill, DaemonStart, MqttPublish, Scenario, ScenarioError


def _merge(doc: Any, override: dict[str, Any]) -> None:
    for key, value in override.items():
        if isinstance(value, dict) and key in doc and isinstance(doc[key], dict):
            _merge(doc[key], value)
        else:
            doc[key] = value


def daemon_config(
    sc: Scenario, backend: Backend, workdir: Path, broker: Mosquitto | None, base: Path | None = None
) -> tomlkit.TOMLDocument:
    """The daemon config for one run (see the module docstring)."""
    doc = tomlkit.parse(base.read_text(encoding="utf-8") if base else default_config_text())
    site = backend.site_facts()
    f_n = int(site["f_nominal_hz"])
    commissioning: dict[str, Any] = {
        "profile": "ieee1547-2018" if f_n == 60 else "en50549-1",
        "v_nominal_v": float(site["v_nominal_v"]),
        "f_nominal_hz": f_n,
        "phase_topology": "three" if site["phases"] == 3 else "single",
        "voltage_basis": "line_neutral",
    }
    _merge(doc, {"commissioning": commissioning})
    if f_n != 60 and "commissioning" in doc:
        # EN 50549 has no IEEE 1547 categories.
        for key in ("normal_category", "abnormal_category"):
            doc["commissioning"].pop(key, None)
    _merge(doc, {"inverter": site["inverter"]})
    buses: dict[str, Any] = {}
    devices: dict[str, Any] = {}
    addrs = backend.daemon_addresses()
    for a in addrs:
        bus = "rs485" if a.transport == "rtu" else f"{a.name}_tcp"
        if a.transport == "rtu":
            buses[bus] = {
                "transport": "rtu",
                "serial_port": a.serial_port,
                "baud": a.baud,
                "parity": "N",
                "timeout_s": 0.5,
            }
        else:
            buses[bus] = {"transport": "tcp", "host": a.host, "port": a.port, "timeout_s": 0.5}
        dev: dict[str, Any] = {"bus": bus, "unit_id": a.unit_id, "role": a.name, "protocol": a.protocol}
        if a.protocol == "map":
            dev["map"] = a.map
        devices[a.name] = dev
    doc["buses"] = buses
    doc["devices"] = devices
    _merge(doc, {"mqtt": {"enabled": broker is not None}})
    if broker is not None:
        _merge(doc, {"mqtt": {"host": broker.host, "port": broker.port, "tls": False}})
    _merge(doc, {"daemon": {"state_dir": str(workdir / "state")}})
    _merge(doc, sc.daemon)
    # The meter is read once per daemon cycle, as the embedded config does (drivers default to 0.2 s);
    # so is the power stage over TCP. On the shared RS-485 line at 115200 baud the stage's SunSpec
    # blocks take about 30 ms of wire each poll; read every cycle next to the meter and the setpoint
    # writes the line runs over capacity, so there it is read every other cycle.
    cycle_s = doc.get("daemon", {}).get("cycle_s", 0.1)
    for dev in doc["devices"].values():
        rtu_stage = dev["role"] == "power_stage" and doc["buses"][dev["bus"]]["transport"] == "rtu"
        dev.setdefault("poll_s", 2 * cycle_s if rtu_stage else cycle_s)
    return doc


def daemon_command(override: str | None) -> list[str]:
    if override:
        return shlex.split(override)
    exe = Path(sys.executable).parent / "v2g-edged"
    found = str(exe) if exe.exists() else shutil.which("v2g-edged")
    if not found:
        raise FileNotFoundError(
            "v2g-edged is not installed (pip install -e .), and no --daemon-cmd was given"
        )
    return [found]


class Progress:
    """What a run shows while it runs: a line per event as it plays and, on a terminal, a status line
    redrawn in place (scenario time of its duration), erased before every other line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self._drawn = False
        self._last_s = -1.0

    def _write(self, text: str) -> None:
        # The reader left (``v2g-hil run ... | head``): the runs go on to their verdicts, unprinted.
        try:
            self.stream.write(text)
            self.stream.flush()
        except BrokenPipeError:
            silence_stdout()

    def line(self, text: str) -> None:
        self._write(("\r\x1b[K" if self._drawn else "") + text + "\n")
        self._drawn = False

    def tick(self, name: str, t_s: float, duration_s: float) -> None:
        if not self.tty or t_s - self._last_s < 0.5:
            return
        self._last_s = t_s
        self._write(f"\r\x1b[K  {name}: t={t_s:5.1f} s of {duration_s:g} s")
        self._drawn = True

    def done(self) -> None:
        if self._drawn:
            self._write("\r\x1b[K")
            self._drawn = False
        self._last_s = -1.0


def say(text: str) -> None:
    """Print a line of the run's output; a reader (or terminal) that left ends the printing, not the
    runs."""
    try:
        print(text, flush=True)
    except OSError:  # a pipe whose reader left, a terminal hung up (EIO)
        silence_stdout()


def silence_stdout() -> None:
    """Point stdout at /dev/null (its reader is gone): later prints, and the interpreter's final
    flush, neither raise nor print a traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


@dataclass
class DaemonProcess:
    """The daemon as a child process; its stderr and stdout go to files in the report folder."""

    cmd: list[str]
    log: Path
    proc: asyncio.subprocess.Process | None = None
    starts: list[float] = field(default_factory=list)
    exits: list[dict[str, Any]] = field(default_factory=list)
    killed_by_us: bool = False

    async def start(self, t_s: float) -> None:
        with self.log.open("ab") as f:
            f.write(f"--- start at t={t_s:.3f} s: {shlex.join(self.cmd)}\n".encode())
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.cmd, stdin=asyncio.subprocess.DEVNULL, stdout=fd, stderr=fd
            )
        finally:
            os.close(fd)
        self.starts.append(t_s)
        self.killed_by_us = False

    def poll(self, t_s: float) -> None:
        """Note an exit we did not cause."""
        if self.proc is not None and self.proc.returncode is not None:
            self.exits.append(
                {"t_s": round(t_s, 3), "code": self.proc.returncode, "expected": self.killed_by_us}
            )
            self.proc = None

    async def stop(self, t_s: float, sig: int = signal.SIGTERM, timeout_s: float = 5.0) -> None:
        if self.proc is None:
            return
        self.killed_by_us = True
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
            # wait_for, not asyncio.timeout: this runs in finally blocks, inside the task's own
            # cancellation, where a timeout only turns into TimeoutError from Python 3.11.3 on
            # (gh-102780) and the kill below must happen.
            try:
                await asyncio.wait_for(self.proc.wait(), timeout_s)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.poll(t_s)


async def run_one(
    sc: Scenario,
    out: Path,
    daemon_cmd: list[str],
    transport: str | None = None,
    *,
    backend: Backend | None = None,
    progress: Progress | None = None,
) -> report.RunResult:
    """Run one scenario and write its report folder ``out``; ``progress`` shows each event as it plays."""
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    backend = backend or SoftwareBackend(sc, transport=transport)
    broker: Mosquitto | None = None
    errors: list[str] = []
    # Its status file in the run's folder: not the machine's default, which a daemon in service (or
    # another bench run) writes too.
    daemon = DaemonProcess(
        [*daemon_cmd, "--config", str(out / "daemon.toml"), "--runtime-dir", str(out / "run")],
        out / "daemon.log",
    )
    (out / "daemon.log").write_bytes(b"")
    # The plant's servers log a client that vanishes mid-request (a link-drop scenario does that on
    # purpose); that belongs in the report folder, not between the verdicts.
    plant_log = logging.FileHandler(out / "plant.log")
    plant_log.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    quiet = [logging.getLogger(n) for n in ("pymodbus", "hil.plant")]
    for lg in quiet:
        lg.addHandler(plant_log)
        lg.propagate = False
    t_wall = time.monotonic()
    try:
        if "mqtt" in sc.needs:
            broker = Mosquitto(workdir=None)
            await asyncio.to_thread(broker.start)
        await backend.start()
        (out / "plant.toml").write_text(backend.describe_config())
        cfg = daemon_config(sc, backend, out, broker)
        (out / "state").mkdir(exist_ok=True)
        (out / "daemon.toml").write_text(tomlkit.dumps(cfg))
        if not isinstance(backend, LabBackend):  # the lab's events were checked and scheduled up front
            backend.schedule(sc.plant_events())
        await daemon.start(backend.t_s)
        pending = sorted(sc.runner_events(), key=lambda e: e.at_s)
        timeline = sorted(sc.events, key=lambda e: e.at_s)  # to announce, plant events and ours
        mqtt_client = None
        try:
            while True:
                next_at = pending[0].at_s if pending else sc.duration_s
                while backend.t_s < next_at:
                    await backend.wait_until(min(next_at, backend.t_s + 0.1))
                    daemon.poll(backend.t_s)
                    if progress is not None:
                        while timeline and timeline[0].at_s <= backend.t_s:
                            e = timeline.pop(0)
                            progress.line(f"  t={e.at_s:6.1f} s  {report.describe_event(e)}")
                        progress.tick(sc.name, backend.t_s, sc.duration_s)
                if not pending:
                    break
                e = pending.pop(0)
                if isinstance(e, DaemonKill):
                    await daemon.stop(backend.t_s, signal.SIGKILL if e.signal == "KILL" else signal.SIGTERM)
                elif isinstance(e, DaemonStart):
                    if daemon.proc is None:
                        await daemon.start(backend.t_s)
                elif isinstance(e, MqttPublish):
                    assert broker is not None
                    if mqtt_client is None:
                        import aiomqtt

                        mqtt_client = aiomqtt.Client(broker.host, broker.port, identifier="v2g-hil-runner")
                        await mqtt_client.__aenter__()
                    await mqtt_client.publish(e.topic, e.payload.encode(), qos=e.qos, retain=e.retain)
        finally:
            if mqtt_client is not None:
                await mqtt_client.__aexit__(None, None, None)
        daemon.poll(backend.t_s)
        errors.extend(
            f"daemon exited with code {ex['code']} at t={ex['t_s']} s (see daemon.log)"
            for ex in daemon.exits
            if not ex["expected"]
        )
    except (OSError, RuntimeError) as exc:
        errors.append(f"run aborted: {exc}")
    finally:
        await daemon.stop(backend.t_s)
        await backend.stop()
        if broker is not None:
            await asyncio.to_thread(broker.stop)
        for lg in quiet:
            lg.removeHandler(plant_log)
            lg.propagate = True
        plant_log.close()
        if progress is not None:
            progress.done()
    columns = backend.columns()
    checks = [judge(c, columns, sc.duration_s) for c in sc.checks]
    result = report.RunResult(
        scenario=sc,
        checks=checks,
        columns=columns,
        daemon={
            "command": shlex.join(daemon.cmd),
            "starts_t_s": daemon.starts,
            "exits": daemon.exits,
            "log": str(daemon.log),
            "config": str(out / "daemon.toml"),
        },
        plant={**backend.stats(), "wall_s": round(time.monotonic() - t_wall, 2)},
        errors=errors,
    )
    report.write(out, result)
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="scenario files or built-in names")
    parser.add_argument("--all", action="store_true", help="run every built-in scenario")
    parser.add_argument("--list", action="store_true", help="list the built-in scenarios and exit")
    parser.add_argument("--out", metavar="DIR", help="report folder (default hil-reports/<time>)")
    parser.add_argument(
        "--daemon-cmd", metavar="CMD", help="daemon command instead of v2g-edged (gets --config FILE)"
    )
    parser.add_argument(
        "--transport", choices=("tcp", "rtu"), help="how the daemon reaches the plant (default tcp)"
    )
    parser.add_argument(
        "--lab",
        metavar="LAB.toml",
        help="run on lab equipment (SCPI AC source, real inverter and meter) instead",
    )
    suite = parser.add_argument_group("conformance suite (docs/conformance.md)")
    suite.add_argument("--suite", metavar="NAME", help="run a test suite instead of scenarios: ieee1547")
    suite.add_argument("--quick", action="store_true", help="the suite's CI subset (shortened timers)")
    suite.add_argument(
        "--owner",
        choices=("daemon", "inverter", "both"),
        default="both",
        help="who owns the functions under test",
    )
    suite.add_argument(
        "--only", metavar="GLOB", action="append", help="only tests whose id matches (repeatable)"
    )
    suite.add_argument(
        "--jobs",
        metavar="N",
        type=int,
        default=1,
        help="run up to N tests at once, each in its own process (long timers; default 1)",
    )


def _print_result(res: report.RunResult) -> None:
    name = res.scenario.name
    lines = [f"{'PASS' if c.passed else 'FAIL'} {name}: {c.name} ({c.detail})" for c in res.checks]
    lines += [f"FAIL {name}: {e}" for e in res.errors]
    lines += [f"WARN {name}: {w}" for w in res.warnings]
    if lines:
        say("\n".join(lines))  # a reader that left: the verdicts are in the report folder


async def run_all(
    paths: Sequence[Path],
    out_root: Path,
    daemon_cmd: list[str],
    transport: str | None,
    lab: LabConfig | None = None,
) -> int:
    n_pass = n_fail = 0
    scenarios = [scenario.load(p) for p in paths]  # parse all first: a typo fails before anything runs
    progress = Progress()
    for k, sc in enumerate(scenarios, 1):
        out = out_root / report.slug(sc.name)
        backend: Backend | None = None
        if lab is not None:
            backend = LabBackend(lab)
            try:
                backend.schedule(sc.plant_events())
            except UnsupportedEventError as exc:
                say(f"SKIP {sc.name}: {exc}")
                continue
        progress.line(
            f"RUN {sc.name} ({k} of {len(scenarios)}): {sc.duration_s:g} s, {len(sc.checks)} checks,"
            f" {len(sc.events)} events"
        )
        res = await run_one(sc, out, daemon_cmd, transport, backend=backend, progress=progress)
        _print_result(res)
        say(f"  report: {out / 'summary.md'}")
        p, f = res.counts()
        n_pass += p
        n_fail += f
    say(f"{n_pass} passed, {n_fail} failed")
    return 0 if n_fail == 0 else 1


def list_scenarios(width: int) -> list[str]:
    """Each built-in scenario's name, then its whole description wrapped to ``width`` and indented."""
    lines = []
    for p in sorted(scenario.builtin_dir().glob("*.toml")):
        try:
            sc = scenario.load(p)
            text = " ".join(sc.description.split()) or sc.name
            needs = f", needs {', '.join(sc.needs)}" if sc.needs else ""
            lines.append(f"{p.stem}: {sc.duration_s:g} s{needs}")
        except ScenarioError as exc:
            lines.append(f"{p.stem}: INVALID")
            text = str(exc)
        lines += textwrap.wrap(text, width=max(width, 40), initial_indent="    ", subsequent_indent="    ")
    return lines


def main(args: argparse.Namespace) -> int:
    if args.suite:
        from hil.conformance import suite

        return suite.main(args)
    if args.jobs != 1:
        print(
            "v2g-hil run: --jobs runs a --suite's tests at once; scenarios run one at a time", file=sys.stderr
        )
        return 2
    if args.list:
        say("\n".join(list_scenarios(shutil.get_terminal_size().columns - 1)))
        return 0
    names = list(args.scenarios)
    if args.all:
        names += [str(p) for p in sorted(scenario.builtin_dir().glob("*.toml"))]
    if not names:
        print("v2g-hil run: give SCENARIO files or names, or --all (--list shows them)", file=sys.stderr)
        return 2
    try:
        paths = [scenario.resolve(n) for n in names]
        for p in paths:
            scenario.load(p)
        cmd = daemon_command(args.daemon_cmd)
        lab = load_lab(args.lab) if args.lab else None
    except (ScenarioError, FileNotFoundError, ValueError) as exc:
        print(f"v2g-hil run: {exc}", file=sys.stderr)
        return 2
    out_root = Path(args.out) if args.out else Path("hil-reports") / time.strftime("%Y%m%d-%H%M%S")
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run_all(paths, out_root, cmd, args.transport, lab))
    return 130
