"""Benchmark of the P/Q kernel: one full step with every function enabled, called from Python with the
packing of its inputs, compiled vs pure-Python reference; plus the allocations a step makes (target: none).
"""

from __future__ import annotations

import gc
import math
import sys
import time
import tracemalloc
from collections.abc import Callable
from types import ModuleType
from typing import Any

from edge import accel
from edge.control import _pq_ref
from edge.control.pq import impl
from edge.control.pq_types import Priority, QMode
from hil.bench import Figure

_N_SAMPLES = 4096


def _records(mod: ModuleType) -> tuple[Any, Any, Any, Any]:
    """Records with every function the kernel has switched on (an 11 kW charger, Cat B / Cat II)."""
    p = mod.PqParams()
    p.p_rated_w = 11_000.0
    p.p_rated_charge_w = 11_000.0
    p.s_rated_va = 12_000.0
    p.q_max_inj_var = 5_280.0
    p.q_max_abs_var = 5_280.0
    p.q_reduced_low_p = 1
    p.s_priority = Priority.REACTIVE
    p.ramp_w_per_s = 1_100.0
    p.stop_ramp_w_per_s = 550.0
    p.actuation_tau_s = 0.3
    p.fw_enabled = 1
    p.vw_enabled = 1
    p.vw_absorb = 1
    p.vw_p2_charge_pu = -0.5
    p.q_mode = QMode.VOLT_VAR
    p.vv_vref_auto = 1
    return p, mod.PqInputs(), mod.PqState(), mod.PqOutputs()


def _stream(n: int) -> list[tuple[float, ...]]:
    """Inputs crossing every curve and the droop deadband both ways (prepared: the loop allocates none)."""
    return [
        (
            k * 0.1,
            1.0 + 0.1 * math.sin(k / 37.0),
            60.0 + 0.5 * math.sin(k / 53.0),
            8_000.0 * math.sin(k / 101.0),
            0.0,
            9_000.0,
            9_000.0,
            0.5 + 0.3 * math.sin(k / 211.0),
            0.5 + 0.3 * math.sin(k / 211.0 + 0.1),
            7_000.0 * math.sin(k / 101.0),
        )
        for k in range(n)
    ]


def _calls(mod: ModuleType) -> list[tuple[Any, ...]]:
    # The arguments are prepared tuples so the loop itself creates no objects; a call with a tuple
    # star-argument reaches the function as a vectorcall, as the daemon's call with named locals does.
    recs = _records(mod)
    return [(*recs, *row, 0) for row in _stream(_N_SAMPLES)]


def _loop(fn: Callable[..., None], calls: list[tuple[Any, ...]], n: int) -> None:
    mask = len(calls) - 1  # _N_SAMPLES is a power of two
    for k in range(n):
        fn(*calls[k & mask])


def _ns_per_step(mod: ModuleType, n: int, repeats: int) -> float:
    calls = _calls(mod)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        _loop(mod.pack_and_step, calls, n)
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def _allocated(mod: ModuleType, calls: list[tuple[Any, ...]], n: int) -> tuple[int, int]:
    """(net memory blocks, bytes above the starting level at the peak) over ``n`` steps."""
    gc.collect()
    gc.disable()
    try:
        before = sys.getallocatedblocks()
        _loop(mod.pack_and_step, calls, n)
        blocks = sys.getallocatedblocks() - before
        tracemalloc.start()
        try:
            _loop(mod.pack_and_step, calls, 16)
            tracemalloc.reset_peak()
            base, _ = tracemalloc.get_traced_memory()
            _loop(mod.pack_and_step, calls, n)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        gc.enable()
    return blocks, peak - base


def allocations(mod: ModuleType, n: int) -> tuple[float, float]:
    """(memory blocks, bytes) allocated per step, from runs of ``n`` and ``2 n`` steps.

    The difference cancels the loop's own set-up. Bytes come from tracemalloc's peak, which rises by
    at least the size of any allocation, even a temporary freed within the step.
    """
    calls = _calls(mod)
    _loop(mod.pack_and_step, calls, 512)  # warm: first-use caches, float free lists
    blocks_1, bytes_1 = _allocated(mod, calls, n)
    blocks_2, bytes_2 = _allocated(mod, calls, 2 * n)
    return (blocks_2 - blocks_1) / n, (bytes_2 - bytes_1) / n


def run(quick: bool = False) -> list[Figure]:
    n_c = 20_000 if quick else 1_000_000
    n_ref = 2_000 if quick else 100_000
    repeats = 3 if quick else 7
    ref_ns = _ns_per_step(_pq_ref, n_ref, repeats)
    figures = [Figure("kernel.step.reference", ref_ns, "ns/step")]
    ref_blocks, ref_bytes = allocations(_pq_ref, 2_000)
    figures.append(Figure("kernel.allocs.reference", ref_blocks, "blocks/step"))
    figures.append(Figure("kernel.alloc_bytes.reference", ref_bytes, "bytes/step"))
    if not accel.is_compiled(impl):
        return figures
    c_ns = _ns_per_step(impl, n_c, repeats)
    figures.append(Figure("kernel.step.compiled", c_ns, "ns/step", ref_ns / c_ns, "kernel.step.reference"))
    blocks, peak_bytes = allocations(impl, 20_000 if quick else 200_000)
    figures.append(Figure("kernel.allocs.compiled", blocks, "blocks/step"))
    figures.append(Figure("kernel.alloc_bytes.compiled", peak_bytes, "bytes/step"))
    return figures
