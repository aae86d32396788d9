"""Benchmark of the whole control loop: the daemon process against the plant, frequency steps to setpoints.

The plant (:mod:`hil.plant`) runs in this process and serves the power stage and the site meter over
Modbus; the daemon runs unmodified as a separate process (``v2g-edged --config FILE``, found and
configured as ``v2g-hil run`` does: :func:`hil.runner.daemon_config`). The bench steps the grid
frequency between nominal and nominal ± 0.3 Hz (60 → 60.3 → 60 → 59.7 → 60 ...; 0.3 Hz inside one
0.2 s ROCOF window is 1.5 Hz/s, below the Category II ride-through's 2 Hz/s, and far from any trip)
and watches the setpoint writes arrive at the plant.

Both time stamps are ``time.monotonic()`` in this process. The step instant is the plant step at
which the bus frequency takes the new value (the loop time of that step, found in the plant's
record, which here holds every step); the arrival of a setpoint is the moment the plant's Modbus
server hands an accepted write of 704 ``WSet`` to the stage (a write hook on the stage's registers,
after the stage's own). In between: the meter registers carrying the new frequency (the meter
refreshes at every plant step here), the wait for the daemon's next meter poll, the read, the wait
for the daemon's next cycle, kernels I and II, the writer task and the write request. The stage's
reaction is not in it (``cmd_to_output`` adds it).

Daemon settings, over the embedded bench configuration: ``operation.mode = "idle"``, so nothing is
dispatched and the setpoint is the droop's response alone, in both directions (in V2H the
under-frequency response is held by the export cap, ``cap_vs_droop = "cap_wins"``, and the setpoint
carries the meter's noise); frequency droop owned by the daemon (as embedded) with
``grid.freq_droop.olrt_s = 1.0``, the shortest the Category II profile allows, so that a step has
settled (to 0.2 %) before the next one; each device polled every cycle over TCP; MQTT off; state and
status in a temporary folder. The house load (3 kW) keeps the non-export site's cap far from the
droop's +651 W. The plant's meter takes a new reading at every plant step instead of every 0.2 s:
the figure is the loop's, a real meter's refresh period adds up to one period to it.

"Showing the droop response" is the first ``WSet`` after the step that differs from the last one
before it by more than ``THRESHOLD_W`` (20 W) in the droop's direction (down for a rise in
frequency). At steady state the setpoint changes from write to write by no more than the tail of
the previous response (``setpoint_noise``: the largest change between consecutive writes in the
0.5 s before each step, 1-3 W); the first response write moves by about 150 W (kernel I's response
filter for the 651 W droop change, with the stage's 0.1 s time constant compensated, starts with
a quarter of it), so 20 W can neither be noise nor miss the response.

Figures, per run (``tcp.c20ms``: TCP, ``cycle_s`` 0.02; ``rtu.c50ms``: both devices on the
byte-timed RS-485 relay at 115200 baud; ``tcp.c100ms``: TCP at the default ``cycle_s`` 0.1):

- ``step_to_write.p50``/``.p99``: as above; ratio against ``cycle``, the mean interval between
  setpoint writes at the plant (the cycle as measured, the same run).
- ``cycle_jitter.p99``: |interval between successive ``WSet`` writes at the plant - ``cycle_s``|:
  the daemon's cycle timing plus its writer task and the Modbus write, as seen from outside.
- ``cmd_to_output.p50``/``.p99``: from the step to the stage's AC output (``p_ev_w``) having moved
  by 10 % of the first response write's change: cycle + Modbus + the stage's reaction.
- ``tcp.c20ms.daemon_cpu``: the daemon's CPU time (utime + stime, ``/proc/PID/stat``) over wall time
  from the first step to the end of the run, % of one core; ``daemon_rss``: its VmRSS
  (``/proc/PID/status``) at the end, ``daemon_rss_growth`` its change over the second half of the run
  (the daemon keeps the last 300 s of cycles for a dump: it grows until then).
- ``stage.tau``/``stage.t63``: the plant stage's first-order response seen from setpoint writes
  (bench writes, no daemon): the fitted time constant, and the time from the write's arrival to
  63.2 % of the step.

On RS-485 the wire time rules: at 115200 baud the meter's 201 block takes 21.8 ms, the stage's
three fast blocks 53 ms, a setpoint (WSet block and VarSet) 8.2 ms. There the daemon cycles every
0.05 s, polls the meter every cycle and the stage every 0.5 s: 71 % of the line (meter 44 %, stage
11 %, setpoints 16 %). A 0.02 s cycle would need the line more than once over.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import os
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import tomlkit
from pymodbus.constants import ExcCodes

import drivers
from drivers.stats import percentile
from hil.backends.software import SoftwareBackend
from hil.bench import Figure
from hil.plant import Plant
from hil.plant import config as plant_config
from hil.plant import events as ev
from hil.runner import DaemonProcess, daemon_command, daemon_config
from hil.scenario import Scenario

F_NOMINAL_HZ = 60.0
F_SEQUENCE_HZ = (60.3, 60.0, 59.7, 60.0)
THRESHOLD_W = 20.0
OUTPUT_FRACTION = 0.1  # cmd_to_output: the output has moved this share of the first command's change
NOISE_WINDOW_S = 0.5
PLANT_STEP_S = 0.0049
HOUSE_LOAD_W = 3000.0  # the export cap (non-export site) stays far above the droop's +651 W
SETTLE_S = 2.0  # after the first setpoint write, before the first step
STAGE_STEPS_W = (3000.0, 0.0, -3000.0, 0.0)


@dataclass(frozen=True)
class Setup:
    """One run: how the daemon reaches the plant, its cycle, device polls, steps and their spacing."""

    name: str
    transport: str
    cycle_s: float
    steps: int
    dwell_s: float
    poll_s: dict[str, float] = field(default_factory=dict)  # role -> poll_s (default: the cycle)
    measure_process: bool = False


@dataclass
class Run:
    """What one run measured (seconds, W, % of one core, MB)."""

    setup: Setup
    step_to_write_s: list[float] = field(default_factory=list)
    cmd_to_output_s: list[float] = field(default_factory=list)
    write_intervals_s: list[float] = field(default_factory=list)
    noise_w: float = 0.0
    missed: int = 0
    cpu_pct: float = math.nan
    rss_mb: float = math.nan
    rss_growth_mb: float = math.nan


class WsetWrites:
    """Arrival times (``time.monotonic()``) and values of the accepted 704 ``WSet`` writes at the plant.

    Installed after the stage's own hook, so it sees only the writes the stage accepted (a refused
    write stops at the first hook), at the moment they take effect.
    """

    def __init__(self, plant: Plant) -> None:
        self.dev = plant.stage_dev.dev
        self.t_s: list[float] = []
        self.w: list[float] = []
        self.dev.live.hooks.append(self._on_write)

    def _on_write(self, address: int, values: list[int]) -> ExcCodes | None:
        now = time.monotonic()
        for mid, path, raw in self.dev.decode_write(address, values):
            if mid == 704 and path == "WSet" and isinstance(raw, int):
                self.t_s.append(now)
                self.w.append(raw * 10.0 ** self.dev.sf(704, "WSet"))
        return None


@dataclass
class ProcSample:
    """A process's CPU time so far and resident memory, at ``wall_s`` (monotonic)."""

    wall_s: float
    cpu_s: float
    rss_mb: float


def proc_sample(pid: int) -> ProcSample:
    """CPU time (user + system) and resident memory of a process, from /proc."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        # The command name may hold spaces and parentheses: the fields after the last ')' are fixed.
        fields = f.read().rsplit(b")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    rss_kb = 0
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
    return ProcSample(time.monotonic(), ticks / os.sysconf("SC_CLK_TCK"), rss_kb / 1024.0)


def _scenario(s: Setup) -> Scenario:
    devices = {role: {"poll_s": p} for role, p in s.poll_s.items()}
    return Scenario(
        name=f"bench-loop-{s.name}",
        duration_s=3600.0,
        # The meter takes a new reading, and the recorder a sample, at every plant step. The grid
        # changes only at a plant step, and the plant and the daemon both keep exact periods: at the
        # default 5 ms step the steps would fall on four phases of a 20 ms cycle only, 4.9 ms steps
        # sweep every phase (0.1 ms apart).
        plant={
            "step_s": PLANT_STEP_S,
            "record_s": 0.001,
            "meter": {"refresh_s": 0.001},
            "site": {"house_load_w": HOUSE_LOAD_W},
        },
        daemon={
            "daemon": {"cycle_s": s.cycle_s},
            "operation": {"mode": "idle"},
            "grid": {"freq_droop": {"olrt_s": 1.0}},
            "devices": devices,
        },
    )


def _held(ts: list[float], ys: list[float], t: float) -> float:
    """The recorded value at time ``t``: the plant's state changes only at its steps, and each step is
    recorded."""
    return ys[max(bisect.bisect_right(ts, t) - 1, 0)]


def _crossing(
    ts: list[float], ys: list[float], t_from: float, t_to: float, *, level: float, sign: float
) -> float:
    """The first time in (t_from, t_to) where ``sign * (y - level)`` reaches 0, linear between
    samples; NaN if it does not."""
    k = bisect.bisect_right(ts, t_from)
    prev_t, prev_y = t_from, _held(ts, ys, t_from)
    if sign * (prev_y - level) >= 0.0:
        return t_from
    while k < len(ts) and ts[k] < t_to:
        y = ys[k]
        if sign * (y - level) >= 0.0:
            return prev_t + (ts[k] - prev_t) * (level - prev_y) / (y - prev_y)
        prev_t, prev_y = ts[k], y
        k += 1
    return math.nan


async def _wait_for_writes(writes: WsetWrites, daemon: DaemonProcess, plant: Plant, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not writes.t_s:
        _check_alive(daemon, plant)
        if time.monotonic() > deadline:
            raise RuntimeError(f"no setpoint write from the daemon within {timeout_s} s ({_tail(daemon)})")
        await asyncio.sleep(0.05)


def _check_alive(daemon: DaemonProcess, plant: Plant) -> None:
    daemon.poll(plant.t_s)
    if daemon.exits:
        raise RuntimeError(f"the daemon exited with code {daemon.exits[-1]['code']} ({_tail(daemon)})")


def _tail(daemon: DaemonProcess) -> str:
    lines = daemon.log.read_text(errors="replace").strip().splitlines()
    return "daemon log: " + " | ".join(lines[-8:])


async def _session(s: Setup, seed: int) -> Run:
    """Start the plant and the daemon, step the frequency ``s.steps`` times, measure, stop both."""
    rng = random.Random(seed)
    sc = _scenario(s)
    backend = SoftwareBackend(sc, transport=s.transport)
    with tempfile.TemporaryDirectory(prefix="v2g-bench-loop-") as tmp:
        work = Path(tmp)
        (work / "state").mkdir()
        await backend.start()
        # Plant time is loop time since start() (the loop's clock is time.monotonic()): nothing
        # awaits between the plant taking its origin and this line.
        t0 = time.monotonic() - backend.t_s
        plant = backend.plant
        writes = WsetWrites(plant)
        cfg = daemon_config(sc, backend, work, None)
        (work / "daemon.toml").write_text(tomlkit.dumps(cfg))
        cmd = [*daemon_command(None), "--config", str(work / "daemon.toml"), "--runtime-dir", str(work)]
        daemon = DaemonProcess(cmd, work / "daemon.log")
        applied: list[tuple[float, float]] = []  # (plant time of the last step before, new frequency)
        run = Run(s)
        try:
            await daemon.start(backend.t_s)
            await _wait_for_writes(writes, daemon, plant, 20.0)
            await asyncio.sleep(SETTLE_S)
            _check_alive(daemon, plant)
            assert daemon.proc is not None
            pid = daemon.proc.pid
            samples: list[ProcSample] = []
            next_at = time.monotonic()
            for k in range(s.steps):
                if s.measure_process and k in (0, s.steps // 2):
                    samples.append(proc_sample(pid))
                # A random offset within one cycle: steps must not keep one phase of the daemon's cycle.
                next_at += rng.uniform(0.0, s.cycle_s)
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                f = F_SEQUENCE_HZ[k % len(F_SEQUENCE_HZ)]
                plant.apply(ev.Grid(f_hz=f))  # the source now, the bus at the next plant step
                applied.append((plant.t_s, f))
                next_at += s.dwell_s
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                _check_alive(daemon, plant)
            if samples:
                first, mid, last = samples[0], samples[-1], proc_sample(pid)
                run.cpu_pct = 100.0 * (last.cpu_s - first.cpu_s) / (last.wall_s - first.wall_s)
                run.rss_mb = last.rss_mb
                run.rss_growth_mb = last.rss_mb - mid.rss_mb
        finally:
            await daemon.stop(backend.t_s)
            await backend.stop()
    _analyse(run, _step_times(plant, applied, t0), writes, t0, plant)
    return run


def _step_times(plant: Plant, applied: list[tuple[float, float]], t0: float) -> list[tuple[float, float]]:
    """(monotonic time, droop direction) of each frequency step: the recorded plant step at which
    the bus frequency took the new value (every plant step is recorded)."""
    rec_t = plant.recorder.series("t_s")
    rec_f = plant.recorder.series("grid_f_hz")
    steps = []
    f_prev = F_NOMINAL_HZ
    for t_before, f in applied:
        k = bisect.bisect_right(rec_t, t_before)
        while rec_f[k] != f:
            k += 1
        steps.append((t0 + rec_t[k], -1.0 if f > f_prev else 1.0))
        f_prev = f
    return steps


def _analyse(run: Run, steps: list[tuple[float, float]], writes: WsetWrites, t0: float, plant: Plant) -> None:
    wt, ww = writes.t_s, writes.w
    rec_t = plant.recorder.series("t_s")
    rec_p = plant.recorder.series("p_ev_w")
    bounds = [t for t, _ in steps[1:]] + [wt[-1] + 1.0]
    for (t_step, sign), t_next in zip(steps, bounds, strict=True):
        k0 = bisect.bisect_left(wt, t_step)
        if k0 == 0:
            run.missed += 1
            continue
        v0 = ww[k0 - 1]
        lo = bisect.bisect_left(wt, t_step - NOISE_WINDOW_S)
        for a, b in zip(ww[lo : k0 - 1], ww[lo + 1 : k0], strict=True):
            run.noise_w = max(run.noise_w, abs(b - a))
        hit = next(
            (k for k in range(k0, len(wt)) if wt[k] >= t_next or sign * (ww[k] - v0) > THRESHOLD_W), None
        )
        if hit is None or wt[hit] >= t_next:
            run.missed += 1
            continue
        run.step_to_write_s.append(wt[hit] - t_step)
        # The stage's output, in plant time: from where it was at the step, 10 % of the first move.
        y0 = _held(rec_t, rec_p, t_step - t0)
        level = y0 + OUTPUT_FRACTION * (ww[hit] - v0)
        t_out = _crossing(rec_t, rec_p, t_step - t0, t_next - t0, level=level, sign=sign)
        if not math.isnan(t_out):
            run.cmd_to_output_s.append(t_out - (t_step - t0))
    t_first, t_last = steps[0][0], steps[-1][0] + run.setup.dwell_s
    k_a, k_b = bisect.bisect_left(wt, t_first), bisect.bisect_left(wt, t_last)
    run.write_intervals_s = [b - a for a, b in zip(wt[k_a : k_b - 1], wt[k_a + 1 : k_b], strict=True)]


async def _stage_response(n_steps: int) -> tuple[list[float], list[float]]:
    """Setpoint steps written by the bench (no daemon): the stage's fitted time constants and its
    63.2 % times from the write's arrival, in seconds."""
    plant = Plant(plant_config.load(None, {"record_s": 0.001}))  # a sample at every plant step
    await plant.start()
    t0 = time.monotonic() - plant.t_s
    writes = WsetWrites(plant)
    addr = next(a for a in plant.addresses if a.name == "power_stage" and a.transport == "tcp")
    d = drivers.build(
        {"link": {"transport": "tcp", "host": addr.host, "port": addr.port, "timeout_s": 1.0}},
        {"inv": {"bus": "link", "unit_id": addr.unit_id, "role": "power_stage"}},
    )
    dwell_s = 10 * plant.cfg.power_stage.tau_s
    try:
        await d.start(poll=False)
        stage = d.power_stage
        assert stage is not None
        await stage.write_setpoint(0.0)
        await asyncio.sleep(dwell_s)
        for k in range(n_steps):
            await stage.write_setpoint(STAGE_STEPS_W[k % len(STAGE_STEPS_W)])
            await asyncio.sleep(dwell_s)
    finally:
        await d.stop()
        await plant.stop()
    rec_t = plant.recorder.series("t_s")
    rec_p = plant.recorder.series("p_ev_w")
    taus: list[float] = []
    t63s: list[float] = []
    for k in range(1, len(writes.t_s)):
        tw = writes.t_s[k] - t0
        t_end = writes.t_s[k + 1] - t0 if k + 1 < len(writes.t_s) else rec_t[-1]
        y0 = _held(rec_t, rec_p, tw)
        y_end = _held(rec_t, rec_p, t_end)  # within 0.005 % of the final value after 10 tau
        change = y_end - y0
        if abs(change) < 100.0:
            continue
        sign = 1.0 if change > 0 else -1.0
        t63 = _crossing(rec_t, rec_p, tw, t_end, level=y0 + (1.0 - math.exp(-1.0)) * change, sign=sign)
        t63s.append(t63 - tw)
        # ln of the remaining fraction is linear in time for a first-order response: its slope is -1/tau.
        pts = [
            (t, math.log((y_end - y) / change))
            for t, y in zip(rec_t, rec_p, strict=True)
            if tw < t < t_end and 0.05 < (y_end - y) / change < 0.9
        ]
        if len(pts) >= 3:
            slope = statistics.linear_regression([p[0] for p in pts], [p[1] for p in pts]).slope
            taus.append(-1.0 / slope)
    return taus, t63s


def _figures(run: Run) -> list[Figure]:
    s = run.setup
    if not run.step_to_write_s:
        raise RuntimeError(f"loop {s.name}: no droop response seen in {s.steps} steps")
    p = f"loop.{s.name}"
    lat = sorted(run.step_to_write_s)
    cycle_ms = statistics.fmean(run.write_intervals_s) * 1e3
    jitter = sorted(abs(x - s.cycle_s) for x in run.write_intervals_s)
    figs = [
        Figure(f"{p}.steps", len(lat), "steps"),
        Figure(f"{p}.missed", run.missed, "steps"),
        Figure(f"{p}.cycle", cycle_ms, "ms"),
        Figure(f"{p}.step_to_write.p50", percentile(lat, 0.5) * 1e3, "ms"),
        Figure(
            f"{p}.step_to_write.p99",
            percentile(lat, 0.99) * 1e3,
            "ms",
            percentile(lat, 0.99) * 1e3 / cycle_ms,
            f"{p}.cycle",
        ),
        Figure(f"{p}.cycle_jitter.p99", percentile(jitter, 0.99) * 1e3, "ms"),
        Figure(f"{p}.setpoint_noise", run.noise_w, "W"),
    ]
    if run.cmd_to_output_s:
        out = sorted(run.cmd_to_output_s)
        figs += [
            Figure(f"{p}.cmd_to_output.p50", percentile(out, 0.5) * 1e3, "ms"),
            Figure(f"{p}.cmd_to_output.p99", percentile(out, 0.99) * 1e3, "ms"),
        ]
    if not math.isnan(run.cpu_pct):
        figs += [
            Figure(f"{p}.daemon_cpu", run.cpu_pct, "%"),
            Figure(f"{p}.daemon_rss", run.rss_mb, "MB"),
            Figure(f"{p}.daemon_rss_growth", run.rss_growth_mb, "MB"),
        ]
    return figs


def setups(quick: bool) -> list[Setup]:
    """The runs: TCP at 0.02 s (10 minutes in full), RS-485 at 0.05 s, TCP at the default 0.1 s."""
    dwell = 2.0 if quick else 2.8
    return [
        Setup("tcp.c20ms", "tcp", 0.02, 6 if quick else 214, dwell, measure_process=True),
        Setup("rtu.c50ms", "rtu", 0.05, 4 if quick else 100, dwell, {"power_stage": 0.5, "site_meter": 0.05}),
        Setup("tcp.c100ms", "tcp", 0.1, 4 if quick else 100, dwell),
    ]


def run(quick: bool = False) -> list[Figure]:
    figures: list[Figure] = []
    for k, s in enumerate(setups(quick)):
        figures += _figures(asyncio.run(_session(s, seed=k)))
    taus, t63s = asyncio.run(_stage_response(4 if quick else 20))
    figures += [
        Figure("loop.stage.tau", statistics.median(taus) * 1e3, "ms"),
        Figure("loop.stage.t63", statistics.median(t63s) * 1e3, "ms"),
    ]
    return figures
