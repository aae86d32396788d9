"""A quick run of every benchmark through ``v2g-hil bench --quick``: each prints well-formed BENCH
lines with finite figures (the figures themselves are judged in docs/benchmarks.md, not here), and
the loop benchmark's figures are all there and physically plausible (no speed targets: those are
for the full run on a quiet machine)."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hil import bench
from hil.bench import loop

LINE = re.compile(
    r"^BENCH (?P<name>\S+) (?P<value>\S+) (?P<unit>\S+)(?: ratio=(?P<ratio>\S+) vs (?P<base>\S+))?$"
)


@pytest.fixture(scope="module")
def quick_run() -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "v2g-hil"
    return subprocess.run(
        [str(exe), "bench", "--quick"], capture_output=True, text=True, check=False, timeout=600
    )


def test_every_benchmark_prints_well_formed_lines(quick_run: subprocess.CompletedProcess[str]) -> None:
    assert quick_run.returncode == 0, quick_run.stderr
    lines = [ln for ln in quick_run.stdout.splitlines() if ln.startswith("BENCH ")]
    seen = set()
    for ln in lines:
        m = LINE.match(ln)
        assert m, f"malformed: {ln!r}"
        assert math.isfinite(float(m["value"])), ln
        if m["ratio"] is not None:
            assert float(m["ratio"]) > 0, ln
        seen.add(m["name"].split(".")[0])
    # Every benchmark module contributed at least one figure.
    assert set(bench.available()) <= seen, seen


def test_loop_figures_are_present_and_plausible(quick_run: subprocess.CompletedProcess[str]) -> None:
    assert quick_run.returncode == 0, quick_run.stderr
    fig = {}
    for ln in quick_run.stdout.splitlines():
        m = LINE.match(ln)
        if m and m["name"].startswith("loop."):
            fig[m["name"]] = float(m["value"])
    for s in loop.setups(quick=True):
        p = f"loop.{s.name}"
        # Every step was answered by a droop response, and the steady state is far quieter than the
        # threshold that recognises one.
        assert fig[f"{p}.steps"] == s.steps and fig[f"{p}.missed"] == 0, fig
        assert fig[f"{p}.setpoint_noise"] < loop.THRESHOLD_W / 2, fig
        # One setpoint per cycle (a loaded machine may stretch cycles, never halve them).
        assert 0.8 * s.cycle_s * 1e3 < fig[f"{p}.cycle"] < 2 * s.cycle_s * 1e3, fig
        assert 0 < fig[f"{p}.step_to_write.p50"] <= fig[f"{p}.step_to_write.p99"] < s.dwell_s * 1e3, fig
        # The output moves after the setpoint that moves it.
        assert fig[f"{p}.step_to_write.p50"] < fig[f"{p}.cmd_to_output.p50"] < s.dwell_s * 1e3, fig
    assert 0 < fig["loop.tcp.c20ms.daemon_cpu"] < 200, fig
    assert 10 < fig["loop.tcp.c20ms.daemon_rss"] < 1000, fig
    # The stage's lag is an exact discretisation: its time constant comes out as configured.
    assert fig["loop.stage.tau"] == pytest.approx(100.0, rel=0.05), fig


def test_unknown_benchmark_is_refused() -> None:
    exe = Path(sys.executable).parent / "v2g-hil"
    result = subprocess.run([str(exe), "bench", "nosuch"], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "unknown benchmark" in result.stdout
