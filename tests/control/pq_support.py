"""Shared helpers for the P/Q kernel tests: both implementations, a rated charger, and a driver that
steps the kernel in time against a plant (ideal, or with a first-order actuation lag)."""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import pytest

from edge.control import _pq_c, _pq_ref

IMPLS = [pytest.param(_pq_ref, id="ref"), pytest.param(_pq_c, id="cython")]

P_RATED_W = 10_000.0
S_RATED_VA = 10_000.0  # = Prated, so the 1547.1 tables' p.u. of P and of S coincide


def params(mod: ModuleType, **overrides: Any) -> Any:
    """A 10 kW / 10 kVA bidirectional charger (Cat B reactive capability), every function off."""
    p = mod.PqParams()
    p.p_rated_w = P_RATED_W
    p.p_rated_charge_w = P_RATED_W
    p.s_rated_va = S_RATED_VA
    p.q_max_inj_var = 0.44 * S_RATED_VA
    p.q_max_abs_var = 0.44 * S_RATED_VA
    for name, value in overrides.items():
        assert hasattr(p, name), name
        setattr(p, name, value)
    return p


class Driver:
    """Steps one kernel at a fixed period; the plant's output is fed back as ``p_meas_w``."""

    def __init__(self, mod: ModuleType, p: Any, dt_s: float = 0.1, plant_tau_s: float = 0.0) -> None:
        self.mod = mod
        self.p = p
        self.i = mod.PqInputs()
        self.s = mod.PqState()
        self.o = mod.PqOutputs()
        self.dt_s = dt_s
        self.plant_tau_s = plant_tau_s
        self.t_s = 0.0
        self.k = 0
        self.plant_p_w = 0.0
        self.plant_q_var = 0.0
        self.i.p_max_discharge_w = p.p_rated_w
        self.i.p_max_charge_w = p.p_rated_charge_w
        self.i.soc_ev = 0.5
        self.i.soc_est = 0.5

    def step(self, **inputs: float) -> Any:
        for name, value in inputs.items():
            assert hasattr(self.i, name), name
            setattr(self.i, name, value)
        self.t_s = self.k * self.dt_s  # no accumulated rounding: sample k is at k * dt
        self.i.t_s = self.t_s
        self.i.p_meas_w = self.plant_p_w
        self.mod.step(self.p, self.i, self.s, self.o)
        # The plant holds the setpoint until the next sample (exact first-order response in between).
        a = math.exp(-self.dt_s / self.plant_tau_s) if self.plant_tau_s > 0.0 else 0.0
        self.plant_p_w = self.o.p_w + (self.plant_p_w - self.o.p_w) * a
        self.plant_q_var = self.o.q_var + (self.plant_q_var - self.o.q_var) * a
        self.k += 1
        return self.o

    def hold(self, seconds: float, **inputs: float) -> Any:
        """Step for ``seconds`` with these inputs; returns the outputs of the last step."""
        n = round(seconds / self.dt_s)
        for _ in range(n):
            self.step(**inputs)
        return self.o
