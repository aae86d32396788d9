"""One planning problem, typed and checked: every series on the plan's grid of steps, the EV session,
the charger, the site and the wear model. ``Problem`` refuses a bad value with ``PlanInputError``
naming the field, the value and what is allowed; nothing is clamped silently.

Conventions: EV power ``p_w`` > 0 is discharge (export from the EV), < 0 charging, on the AC side;
``base_import_w`` is the site's import without the EV (house load minus PV; < 0: PV surplus);
energies of the pack are DC. Step ``k`` runs from ``t0 + k·step_s`` to ``t0 + (k+1)·step_s``; time
index ``i`` (0..n) is the instant ``t0 + i·step_s``. The EV leaves at time index ``departure_index``
(None: not within the horizon) and must hold ``departure_soc`` at every time index from
``departure_index - margin_steps`` to ``departure_index`` (it may leave that much earlier). An owner
who leaves within the first step (``leaves_now``, with ``departure_index`` 1) gets the target now:
the first step charges at full power while the SoC is below it and never discharges. A
departure beyond the horizon sets ``end_soc`` instead: the least SoC the plan may end with, from which
full-power charging still reaches the target in time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge.planner.wear import WearModel

FloatArray = npt.NDArray[np.float64]
MAX_STEPS = 48 * 12  # 48 h at 5 min
PRICE_LIMIT = 10.0  # per kWh: beyond this a series is in the wrong unit (e.g. per MWh)


class PlanInputError(ValueError):
    """A planning input refused: ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"planner input {field}: {message}")
        self.field = field


def _scalar(name: str, value: float, lo: float, hi: float, unit: str = "") -> None:
    if not (math.isfinite(value) and lo <= value <= hi):
        raise PlanInputError(name, f"{value!r} {unit} is outside {lo:g} … {hi:g} {unit}".replace("  ", " "))


def _series(name: str, values: FloatArray, n: int, lo: float, hi: float) -> None:
    if values.shape != (n,):
        raise PlanInputError(name, f"has {values.shape} values, the plan has {n} steps")
    bad = np.flatnonzero(~np.isfinite(values) | (values < lo) | (values > hi))
    if bad.size:
        k = int(bad[0])
        raise PlanInputError(f"{name}[{k}]", f"{values[k]!r} is outside {lo:g} … {hi:g}")


@dataclass(frozen=True)
class Problem:
    """Everything one plan needs; see the module docstring. Checked on construction."""

    t0_unix_s: float
    step_s: float
    import_price: FloatArray  # per kWh, one per step
    export_price: FloatArray
    base_import_w: FloatArray
    soc0: float
    e_per_soc_wh: float  # the pack's DC energy per unit SoC
    p_charge_max_w: float  # AC, magnitude
    p_discharge_max_w: float
    charge_efficiency: float  # DC into the pack per AC drawn
    discharge_efficiency: float  # AC out per DC taken
    min_soc: float
    export_cap_w: float  # the site's largest export (inf: none)
    wear: WearModel
    departure_index: int | None = None
    departure_soc: float | None = None
    margin_steps: int = 0
    emissions_g_per_kwh: FloatArray | None = None
    emissions_weight_per_kg: float = 0.0
    demand_charge_per_kw: float = 0.0
    demand_peak_so_far_w: float = 0.0
    max_soc: float = 1.0
    end_soc: float = 0.0  # a departure beyond the horizon: the least SoC to end with (else 0)
    leaves_now: bool = False  # the departure falls within the first step: hold the target now
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        n = self.n
        if not 1 <= n <= MAX_STEPS:
            raise PlanInputError("steps", f"{n} steps; give 1 … {MAX_STEPS}")
        _scalar("step_s", self.step_s, 60.0, 3600.0, "s")
        _scalar("t0_unix_s", self.t0_unix_s, 0.0, 1e11, "s")
        _series("import_price", self.import_price, n, -PRICE_LIMIT, PRICE_LIMIT)
        _series("export_price", self.export_price, n, -PRICE_LIMIT, PRICE_LIMIT)
        _series("base_import_w", self.base_import_w, n, -1e6, 1e6)
        if self.emissions_g_per_kwh is not None:
            _series("emissions_g_per_kwh", self.emissions_g_per_kwh, n, 0.0, 5000.0)
        _scalar("soc0", self.soc0, 0.0, 1.0)
        _scalar("e_per_soc_wh", self.e_per_soc_wh, 100.0, 1e7, "Wh")
        _scalar("p_charge_max_w", self.p_charge_max_w, 0.0, 1e7, "W")
        _scalar("p_discharge_max_w", self.p_discharge_max_w, 0.0, 1e7, "W")
        _scalar("charge_efficiency", self.charge_efficiency, 0.5, 1.0)
        _scalar("discharge_efficiency", self.discharge_efficiency, 0.5, 1.0)
        _scalar("min_soc", self.min_soc, 0.0, 1.0)
        _scalar("max_soc", self.max_soc, self.min_soc, 1.0)
        if not (self.export_cap_w >= 0.0):
            raise PlanInputError("export_cap_w", f"{self.export_cap_w!r} W: give ≥ 0 (inf: no cap)")
        _scalar("emissions_weight_per_kg", self.emissions_weight_per_kg, 0.0, 100.0)
        _scalar("demand_charge_per_kw", self.demand_charge_per_kw, 0.0, 1000.0)
        _scalar("demand_peak_so_far_w", self.demand_peak_so_far_w, 0.0, 1e7, "W")
        if (self.departure_index is None) != (self.departure_soc is None):
            raise PlanInputError("departure_index", "give both the departure and its SoC, or neither")
        if self.departure_index is not None:
            _scalar("departure_index", self.departure_index, 1, n)
            _scalar("departure_soc", self.departure_soc or 0.0, 0.0, self.max_soc)
        _scalar("margin_steps", self.margin_steps, 0, n)
        _scalar("end_soc", self.end_soc, 0.0, self.max_soc)
        if self.departure_index is not None and self.end_soc > 0.0:
            raise PlanInputError("end_soc", "is for a departure beyond the horizon; this one is within it")
        if self.leaves_now and (self.departure_index != 1 or self.margin_steps != 0):
            raise PlanInputError("leaves_now", "needs departure_index 1 and margin_steps 0")

    @property
    def n(self) -> int:
        return int(self.import_price.shape[0])

    @property
    def dt_h(self) -> float:
        return self.step_s / 3600.0

    @property
    def e_kwh(self) -> float:
        return self.e_per_soc_wh / 1000.0

    @property
    def present(self) -> int:
        """How many steps the EV is plugged in for (all, without a departure in the horizon)."""
        return self.n if self.departure_index is None else self.departure_index

    def site_export_max_w(self) -> FloatArray:
        """The site's largest export at each step: the cap, or where the PV surplus alone exceeds it,
        that surplus (the EV may not worsen it); never more than the surplus plus the EV's discharge."""
        surplus = np.maximum(-self.base_import_w, 0.0)
        allowed = np.maximum(self.export_cap_w, surplus)
        return np.asarray(np.maximum(np.minimum(allowed, surplus + self.p_discharge_max_w), 0.0))

    def discharge_room_w(self) -> FloatArray:
        """The most AC power the EV may discharge at each step as the site stands on the forecast:
        the house's import plus the export allowed, within the charger's limit (none in a first step
        the owner leaves in). The program's site balance bounds it the same way."""
        room = np.clip(self.base_import_w + self.site_export_max_w(), 0.0, self.p_discharge_max_w)
        if self.leaves_now:
            room[0] = 0.0
        return np.asarray(room, dtype=np.float64)

    def min_soc_path(self) -> FloatArray:
        """The reserve at each time index 0..n: ``min_soc``, or from a SoC below it, the most that
        charging at full power can have restored by then (the plan cannot do better)."""
        i = np.arange(self.n + 1)
        gain = self.charge_efficiency * self.p_charge_max_w / self.e_per_soc_wh * self.dt_h
        return np.asarray(np.minimum(self.min_soc, self.soc0 + gain * i), dtype=np.float64)

    def target(self) -> tuple[int, float, bool] | None:
        """(first time index of the departure window, the SoC to hold, whether the owner's target is
        reachable): None without a departure. An unreachable target is lowered to the most that
        charging at full power reaches by the window's start, and said so."""
        if self.departure_index is None or self.departure_soc is None:
            return None
        first = max(1, self.departure_index - self.margin_steps)
        gain = self.charge_efficiency * self.p_charge_max_w / self.e_per_soc_wh * self.dt_h
        reach = min(self.max_soc, self.soc0 + gain * first)
        goal = self.departure_soc
        return (first, goal, True) if reach >= goal - 1e-9 else (first, reach, False)
