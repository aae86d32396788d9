"""Fixtures of the battery-estimation tests: the PyBaMM traces copied into tests/data/battery.

A missing file fails the test that needs it with the path and how to restore it (never a skip): the
traces are part of the repository so that a clone alone passes its tests.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from ecm_support import trace_path

from edge.estimation.profile import BatteryProfile, load_profile
from hil.estimate import Replay, Trace, default_initial_soc, load_trace, replay


@pytest.fixture(scope="session")
def nmc() -> BatteryProfile:
    return load_profile("nmc-lgm50")


@pytest.fixture(scope="session")
def load() -> Callable[[str], Trace]:
    cache: dict[str, Trace] = {}

    def _load(name: str) -> Trace:
        if name not in cache:
            cache[name] = load_trace(trace_path(name))
        return cache[name]

    return _load


@pytest.fixture(scope="session")
def replayed(nmc: BatteryProfile, load: Callable[[str], Trace]) -> Callable[[str], Replay]:
    """Replay of a public trace from a start 20 points off, computed once per session."""
    cache: dict[str, Replay] = {}

    def _replayed(name: str) -> Replay:
        if name not in cache:
            trace = load(name)
            cache[name], _ = replay(nmc, trace, default_initial_soc(trace))
        return cache[name]

    return _replayed
