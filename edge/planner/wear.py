"""Battery wear as a cost the planner weighs against what a kWh earns (docs/planner.md, "Wear").

Three parts, each linear in the planner's variables so that the program stays an LP:

* **Cycle depth** (Xu, Oudalov, Ulbig, Andersson, Kirschen, "Modeling of lithium-ion battery
  degradation for cell life assessment", IEEE Trans. Smart Grid 9(2), 2018, and Xu et al., "Factoring
  the cycle aging cost of batteries participating in electricity markets", IEEE Trans. Power Syst.
  33(2), 2018): one cycle of depth δ uses the fraction Φ(δ) = δ^k / N₁₀₀ of the pack's life (N₁₀₀
  full cycles to end of life; k > 1 makes shallow cycles cheap). The pack is cut into ``SEGMENTS``
  equal SoC segments; a kWh discharged from the segment at depths [δ₁, δ₂] costs
  C · (Φ(δ₂) − Φ(δ₁)) / (δ₂ − δ₁), with C the value of one kWh of capacity. Deep segments cost more,
  so the program takes energy from the top first; a whole cycle of depth δ costs C · E · Φ(δ).
  Defaults: k = 2.03 and N₁₀₀ = 1 / 5.24e-4 ≈ 1900, the LMO fit quoted by Xu et al.; set them from the
  pack's cycle-life curve where it is known.
* **C-rate** (Wang, Liu, Hicks-Garner et al., "Cycle-life model for graphite-LiFePO4 cells", J. Power
  Sources 196(8), 2011): the capacity loss per Ah grows as exp(370.3 · C / (R · T)). Throughput at
  C-rate C costs C_full · (exp(370.3 · C / (R · T)) − 1) per kWh on top, with C_full the full cycle's
  cost per kWh; the power range is cut into ``TRANCHES`` priced at their upper C-rate (convex, so
  the program fills them in order). A wallbox runs an EV pack at 0.1-0.3 C: a few per cent.
* **Calendar** (Schmalstieg, Käbitz, Ecker, Sauer, "A holistic aging model for Li(NiMnCo)O2 based
  18650 lithium-ion batteries", J. Power Sources 257, 2014): capacity fade α · t^0.75 (t in days) with
  α = (7.543 · V − 23.75) · 1e6 · exp(−6976 / T). At the pack's age the fade rate is
  0.75 · α · t^−0.25 per day; the cell voltage is taken linear in SoC between ``V_SOC0`` and
  ``V_SOC1`` (an NMC open-circuit voltage), so the cost of an hour is linear in SoC: time at high SoC
  and high temperature costs more. The lost fraction is priced as the pack's value over the fade at
  end of life.

Pure arithmetic: no clock, no I/O.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.settings.model import Planner

SEGMENTS = 4  # SoC segments of the depth cost: enough to make shallow cycles cheap, few columns
TRANCHES = 3  # power tranches of the C-rate cost
R_J_PER_MOL_K = 8.314
C_RATE_J_PER_MOL = 370.3  # Wang et al. 2011, per unit C-rate
V_SOC0 = 3.45  # NMC cell open-circuit voltage at SoC 0 and 1 (linear in between)
V_SOC1 = 4.15
SCHMALSTIEG_A = 7.543  # per volt
SCHMALSTIEG_B = 23.75
SCHMALSTIEG_EA_K = 6976.0

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class WearModel:
    """The wear costs of one pack; see the module docstring. ``cost_per_kwh``: the value of one kWh of
    the pack's capacity (currency); the rest as in ``edge.settings.model.Planner``."""

    cost_per_kwh: float
    cycle_life: float
    depth_exponent: float
    temperature_c: float
    age_days: float
    end_of_life_fade: float

    @classmethod
    def of(cls, p: Planner) -> WearModel:
        return cls(
            cost_per_kwh=p.battery_cost_per_kwh,
            cycle_life=p.cycle_life,
            depth_exponent=p.cycle_depth_exponent,
            temperature_c=p.temperature_c,
            age_days=p.pack_age_days,
            end_of_life_fade=p.end_of_life_fade,
        )

    def phi(self, depth: float) -> float:
        """The fraction of the pack's life one cycle of ``depth`` (0..1) uses."""
        return float(min(max(depth, 0.0), 1.0) ** self.depth_exponent / self.cycle_life)

    def segment_costs(self) -> FloatArray:
        """Cost per DC kWh discharged from each SoC segment, lowest SoC (deepest) first."""
        out = np.empty(SEGMENTS)
        for i in range(SEGMENTS):
            shallow, deep = 1.0 - (i + 1) / SEGMENTS, 1.0 - i / SEGMENTS
            out[i] = self.cost_per_kwh * (self.phi(deep) - self.phi(shallow)) * SEGMENTS
        return out

    def per_kwh_cycled(self, depth: float) -> float:
        """What one kWh cycled (discharged and charged back) costs in cycles of ``depth``."""
        return self.cost_per_kwh * self.phi(depth) / depth if depth > 0.0 else 0.0

    def tranche_costs(self, p_dc_max_kw: float, e_kwh: float) -> FloatArray:
        """Cost per DC kWh of throughput in each power tranche of [0, ``p_dc_max_kw``] (C-rate adder)."""
        t_k = self.temperature_c + 273.15
        full = self.per_kwh_cycled(1.0)
        upper_c = p_dc_max_kw / e_kwh * np.arange(1, TRANCHES + 1) / TRANCHES
        return np.asarray(
            full * np.expm1(C_RATE_J_PER_MOL * upper_c / (R_J_PER_MOL_K * t_k)), dtype=np.float64
        )

    def calendar_rate(self, e_kwh: float) -> tuple[float, float]:
        """(a, b): an hour at SoC s costs a + b · s (currency)."""
        t_k = self.temperature_c + 273.15
        arr = 1e6 * math.exp(-SCHMALSTIEG_EA_K / t_k)
        per_day = 0.75 * max(self.age_days, 1.0) ** -0.25
        scale = self.cost_per_kwh * e_kwh / self.end_of_life_fade * per_day / 24.0 * arr
        a = scale * (SCHMALSTIEG_A * V_SOC0 - SCHMALSTIEG_B)
        b = scale * SCHMALSTIEG_A * (V_SOC1 - V_SOC0)
        return a, b

    def cycle_cost(self, soc: FloatArray, e_kwh: float) -> float:
        """The depth cost of a SoC trajectory: every fall in SoC priced segment by segment."""
        costs = self.segment_costs()
        edges = np.arange(SEGMENTS + 1) / SEGMENTS
        total = 0.0
        for hi, lo in itertools.pairwise(soc):
            if lo >= hi:
                continue
            overlap = np.clip(np.minimum(hi, edges[1:]) - np.maximum(lo, edges[:-1]), 0.0, None)
            total += float(overlap @ costs) * e_kwh
        return total

    def c_rate_cost(self, p_dc_kw: FloatArray, dt_h: float, p_dc_max_kw: float, e_kwh: float) -> float:
        """The C-rate cost of DC powers (magnitudes, kW) held for ``dt_h`` each."""
        if p_dc_max_kw <= 0.0:
            return 0.0
        costs = self.tranche_costs(p_dc_max_kw, e_kwh)
        width = p_dc_max_kw / TRANCHES
        total = 0.0
        for p in np.abs(p_dc_kw):
            fill = np.clip(p - width * np.arange(TRANCHES), 0.0, width)
            total += float(fill @ costs) * dt_h
        return total
