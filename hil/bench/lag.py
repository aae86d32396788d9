"""Benchmark of the first-order lag kernel: compiled vs pure-Python reference, per call and per block."""

from __future__ import annotations

import time

import numpy as np

from edge import accel
from edge.control import _lag_ref
from edge.control.lag import impl
from hil.bench import Figure


def _per_call_ns(step: object, n: int) -> float:
    fn = step  # local name: the loop measures the call, not a global lookup
    best = float("inf")
    for _ in range(5):
        y = 0.0
        t0 = time.perf_counter_ns()
        for _ in range(n):
            y = fn(y, 1.0, 0.02, 1.0)  # type: ignore[operator]
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def run(quick: bool = False) -> list[Figure]:
    n = 20_000 if quick else 500_000
    ref_ns = _per_call_ns(_lag_ref.lag_step, n)
    figures = [Figure("lag.step.reference", ref_ns, "ns/call")]
    if not accel.is_compiled(impl):
        return figures
    c_ns = _per_call_ns(impl.lag_step, n)
    figures.append(Figure("lag.step.compiled", c_ns, "ns/call", ref_ns / c_ns, "lag.step.reference"))
    targets = np.ones(n, dtype=np.float64)
    out = np.empty_like(targets)
    t0 = time.perf_counter_ns()
    impl.lag_run(0.0, targets, 0.02, 1.0, out)
    block_ns = (time.perf_counter_ns() - t0) / n
    figures.append(Figure("lag.run.compiled", block_ns, "ns/sample", ref_ns / block_ns, "lag.step.reference"))
    return figures
