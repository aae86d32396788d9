"""Benchmarks run by ``v2g-hil bench [NAME ...]``.

Each benchmark is a module ``hil.bench.<name>`` with ``run(quick: bool) -> list[Figure]``. ``quick``
shrinks iteration counts for the smoke test in the test run; the figures are still measured, only
less precisely. Speed targets are judged by ratios against a baseline measured in the same run.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

BenchFn = Callable[[bool], "list[Figure]"]


@dataclass(frozen=True)
class Figure:
    """One measured figure: ``BENCH <name> <value> <unit> [ratio=<x> vs <baseline>]``."""

    name: str
    value: float
    unit: str
    ratio: float | None = None
    baseline: str | None = None

    def line(self) -> str:
        text = f"BENCH {self.name} {self.value:.6g} {self.unit}"
        if self.ratio is not None:
            text += f" ratio={self.ratio:.3g} vs {self.baseline or 'baseline'}"
        return text


def available() -> list[str]:
    """Names of the benchmark modules in this package."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load(name: str) -> BenchFn:
    """The ``run`` function of benchmark ``name``."""
    if name not in available():
        raise KeyError(f"unknown benchmark {name!r}; available: {', '.join(available())}")
    module = importlib.import_module(f"{__name__}.{name}")
    fn: BenchFn = module.run
    return fn
