"""A quick run of every benchmark through ``v2g-hil bench --quick``: each prints well-formed BENCH
lines with finite figures (the figures themselves are judged in docs/benchmarks.md, not here)."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

from hil import bench

LINE = re.compile(
    r"^BENCH (?P<name>\S+) (?P<value>\S+) (?P<unit>\S+)(?: ratio=(?P<ratio>\S+) vs (?P<base>\S+))?$"
)


def test_every_benchmark_prints_well_formed_lines() -> None:
    exe = Path(sys.executable).parent / "v2g-hil"
    result = subprocess.run(
        [str(exe), "bench", "--quick"], capture_output=True, text=True, check=False, timeout=600
    )
    assert result.returncode == 0, result.stderr
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("BENCH ")]
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


def test_unknown_benchmark_is_refused() -> None:
    exe = Path(sys.executable).parent / "v2g-hil"
    result = subprocess.run([str(exe), "bench", "nosuch"], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "unknown benchmark" in result.stdout
