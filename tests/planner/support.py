"""Problems for the planner tests: one day at 15-min steps, a 60 kWh pack on an 11 kW charger."""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.planner.problem import Problem
from edge.planner.wear import WearModel
from edge.settings.model import Planner

T0 = 1_780_000_200.0  # a 15-min boundary (2026-05-28 20:30 UTC)
N = 96


def wear(**over: Any) -> WearModel:
    return WearModel.of(Planner(**over))


NO_WEAR = WearModel(
    cost_per_kwh=0.0,
    cycle_life=1908.0,
    depth_exponent=2.03,
    temperature_c=20.0,
    age_days=730.0,
    end_of_life_fade=0.2,
)


def problem(**over: Any) -> Problem:
    n = over.pop("n", N)
    args: dict[str, Any] = {
        "t0_unix_s": T0,
        "step_s": 900.0,
        "import_price": np.full(n, 0.30),
        "export_price": np.full(n, 0.08),
        "base_import_w": np.full(n, 500.0),
        "soc0": 0.5,
        "e_per_soc_wh": 60_000.0,
        "p_charge_max_w": 11_000.0,
        "p_discharge_max_w": 11_000.0,
        "charge_efficiency": 0.94,
        "discharge_efficiency": 0.95,
        "min_soc": 0.3,
        "export_cap_w": np.inf,
        "wear": wear(),
    }
    args.update(over)
    return Problem(**args)
