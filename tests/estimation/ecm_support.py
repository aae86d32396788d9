"""Helpers of the estimation tests: the trace files, the shipped datasheets, and a synthetic pack from
the kernel's own model."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from edge.estimation import _ecm_ref as k
from edge.estimation.datasheet import build_profile, load_datasheet
from edge.estimation.profile import BatteryProfile

FloatArray = npt.NDArray[np.float64]
BATTERY_DATA = Path(__file__).resolve().parents[1] / "data" / "battery"
DATASHEETS = Path(__file__).resolve().parents[2] / "config" / "batteries" / "datasheets"


def datasheet_only(name: str) -> BatteryProfile:
    """The shipped datasheet ``name`` built without a replay (generic resistances), as a charger
    holding only the datasheet would have it."""
    sheet = DATASHEETS / f"{name}.toml"
    return build_profile(load_datasheet(sheet), str(sheet)).profile()


def trace_path(name: str) -> Path:
    """Path of a trace in tests/data/battery; a missing file (or its JSON) fails the test, never skips."""
    path = BATTERY_DATA / f"{name}.csv.gz"
    for p in (path, BATTERY_DATA / f"{name}.json"):
        if not p.is_file():
            pytest.fail(
                f"battery trace file {p} is missing: restore tests/data/battery from git "
                "(copied from the public PyBaMM ground-truth set, see its README.md)"
            )
    return path


@dataclass
class Synthetic:
    t_s: FloatArray
    pack_i_a: FloatArray
    pack_v_v: FloatArray
    temp_c: FloatArray
    soc: FloatArray


def simulate(
    profile: BatteryProfile,
    pack_i_a: FloatArray,
    soc0: float,
    capacity_ah: float | None = None,
    growth: float = 1.0,
    temp_c: float = 25.0,
    dt_s: float = 1.0,
) -> Synthetic:
    """Exact model response (zero-order-hold current, no noise) of a cell of ``capacity_ah``."""
    params = profile.kernel_params()
    params[k.P_Q_AH] = capacity_ah or profile.nameplate_capacity_ah
    table = profile.ocv_table()
    state = [0.0] * k.S_N
    state[k.S_SOC] = soc0
    c = [0.0] * k.C_N
    i = pack_i_a / profile.parallel
    v = np.empty(len(i))
    soc = np.empty(len(i))
    for j in range(len(i)):
        if j:
            state[k.S_I_PREV] = float(i[j - 1])
            k.coefficients(params, table, state[k.S_SOC], temp_c, growth, c)
            k.predict(state, params, c, dt_s)
        k.coefficients(params, table, state[k.S_SOC], temp_c, growth, c)
        v[j] = (
            k.ocv_lookup(table, state[k.S_SOC], temp_c)
            - state[k.S_V1]
            - state[k.S_V2]
            - c[k.C_R0] * i[j]
            - k.kinetic_overpotential(c, float(i[j]))
        )
        soc[j] = state[k.S_SOC]
    t = np.arange(len(i)) * dt_s
    return Synthetic(t, pack_i_a, v * profile.series, np.full(len(i), temp_c), soc)


def duty(n: int, seed: int = 3, amplitude_a: float = 200.0, hold_s: int = 20) -> FloatArray:
    """A V2G-like pack current: random levels held ``hold_s`` samples, with rests between."""
    rng = np.random.default_rng(seed)
    levels = rng.uniform(-amplitude_a, amplitude_a, n // hold_s + 1)
    levels[rng.random(len(levels)) < 0.2] = 0.0
    return np.repeat(levels, hold_s)[:n].astype(np.float64)


def linear_profile(
    profile: BatteryProfile,
    ocv_soc: tuple[float, ...] | None = None,
    ocv_v: tuple[float, ...] | None = None,
    v_limits: tuple[float, float] = (2.9, 4.1),
) -> BatteryProfile:
    """The profile with a piecewise-linear OCV through (``ocv_soc``, ``ocv_v``) (by default straight,
    3.0 + 1.0 * soc), no kinetic term, no temperature terms and no electrolyte limit, within
    ``v_limits``."""
    soc = ocv_soc or tuple(float(x) for x in np.linspace(0.0, 1.0, 11))
    return replace(
        profile,
        ocv_soc=soc,
        ocv_v=ocv_v or tuple(3.0 + s for s in soc),
        docv_dt_v_per_k=(0.0,) * len(soc),
        i0_rel=(1.0,) * len(soc),
        i0_a=0.0,
        i0_b=0.0,
        resistance_ea_j_per_mol=0.0,
        electrolyte_k_a_sqrt_s=0.0,
        cell_v_min=v_limits[0],
        cell_v_max=v_limits[1],
    )
