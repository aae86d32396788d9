"""Calendar and cycle aging indicators for telemetry.

Under V2G duty the pack spends long hours plugged in, so calendar aging (time at high SoC and high
temperature) often outweighs cycle aging (throughput). These are indicators, not a life model: hours
at SoC >= ``high_soc`` and at T >= ``high_temp_c``, both at once, charge throughput and equivalent
full cycles, and a calendar stress figure: hours weighted by an Arrhenius factor (equal to 1 at 25
degC) and by SoC (1 at SoC 0.5, 2 at SoC 1.0), which sums to "equivalent hours at 25 degC and
mid SoC".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

_KELVIN = 273.15
_GAS_CONSTANT = 8.314462618


@dataclass
class AgingIndicators:
    """Running totals for one vehicle; ``update`` adds one interval."""

    high_soc: float = 0.8
    high_temp_c: float = 35.0
    calendar_ea_j_per_mol: float = 50_000.0
    hours_plugged: float = 0.0
    hours_high_soc: float = 0.0
    hours_high_temp: float = 0.0
    hours_high_soc_and_temp: float = 0.0
    charge_ah: float = 0.0
    discharge_ah: float = 0.0
    calendar_stress_h: float = 0.0

    def update(self, dt_s: float, pack_i_a: float, soc: float, temp_c: float) -> None:
        """Add ``dt_s`` spent at ``soc`` / ``temp_c`` with ``pack_i_a`` flowing (discharge > 0)."""
        if dt_s <= 0.0:
            return
        h = dt_s / 3600.0
        self.hours_plugged += h
        hot = temp_c >= self.high_temp_c
        high = soc >= self.high_soc
        if high:
            self.hours_high_soc += h
        if hot:
            self.hours_high_temp += h
        if high and hot:
            self.hours_high_soc_and_temp += h
        if pack_i_a >= 0.0:
            self.discharge_ah += pack_i_a * h
        else:
            self.charge_ah -= pack_i_a * h
        arrhenius = math.exp(
            self.calendar_ea_j_per_mol / _GAS_CONSTANT * (1.0 / (25.0 + _KELVIN) - 1.0 / (temp_c + _KELVIN))
        )
        self.calendar_stress_h += h * arrhenius * (0.5 + max(0.0, min(1.0, soc)))

    def equivalent_full_cycles(self, pack_capacity_ah: float) -> float:
        return 0.5 * (self.charge_ah + self.discharge_ah) / pack_capacity_ah

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> AgingIndicators:
        known = {k: float(v) for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
