"""The compiled P/Q step allocates nothing, packing included; the benchmark reports its figures."""

from __future__ import annotations

from edge import accel
from edge.control import _pq_c, pq
from hil.bench import kernel


def test_compiled_step_allocates_nothing() -> None:
    blocks, bytes_ = kernel.allocations(_pq_c, 20_000)
    # An allocation in the step shows as >= 1 block per step; the process's own housekeeping (a block
    # or two freed elsewhere during 60,000 steps) stays far below 0.01.
    assert abs(blocks) < 0.01
    assert abs(bytes_) < 1.0  # any allocation is at least 16 bytes per step


def test_bench_kernel_quick() -> None:
    figures = {f.name: f for f in kernel.run(quick=True)}
    assert "kernel.step.reference" in figures
    if not accel.is_compiled(pq.impl):  # V2G_EDGE_PURE_PYTHON=1: nothing compiled to compare
        assert not any(".compiled" in name for name in figures)
        return
    assert set(figures) >= {
        "kernel.step.reference",
        "kernel.step.compiled",
        "kernel.allocs.compiled",
        "kernel.alloc_bytes.compiled",
    }
    compiled = figures["kernel.step.compiled"]
    assert compiled.value > 0
    assert compiled.ratio is not None
    assert compiled.baseline == "kernel.step.reference"
    assert abs(figures["kernel.allocs.compiled"].value) < 0.01
