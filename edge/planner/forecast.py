"""The default forecast of the house's import without the EV (load minus PV), learnt from the site
meter's own history: one value per slot of the local day (the plan's step), each an exponentially
weighted mean over the days seen (``weight`` for the newest day), so a sunny week drifts into the
forecast within a few days. Replaceable: the planner takes any ``Forecaster``, and load and PV series
from a file or MQTT take precedence where they reach (``edge.planner.inputs``).

It learns only while the daemon runs (nothing is kept across restarts); a slot never seen forecasts
the mean of the slots seen, and with nothing seen at all, 0 W. Pure: times are arguments.
"""

from __future__ import annotations

import math
from datetime import datetime, tzinfo
from typing import Protocol

import numpy as np

from edge.planner.problem import FloatArray


class Forecaster(Protocol):
    def observe(self, t_unix_s: float, p_base_import_w: float) -> None: ...

    def forecast(self, t0_unix_s: float, step_s: float, n: int) -> FloatArray: ...


class SlotForecaster:
    """See the module docstring. ``slot_s``: the length of a slot of the day (the plan's step)."""

    def __init__(self, zone: tzinfo, slot_s: float = 900.0, weight: float = 0.3) -> None:
        if not (60.0 <= slot_s <= 3600.0 and 86_400.0 % slot_s == 0.0):
            raise ValueError(f"forecast slot {slot_s!r} s: give 60 … 3600 s dividing a day")
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"forecast weight {weight!r}: give 0 < weight ≤ 1")
        self.zone = zone
        self.slot_s = slot_s
        self.weight = weight
        self.profile = np.full(round(86_400.0 / slot_s), np.nan)
        self._slot: tuple[int, int] | None = None  # (day ordinal, slot) being averaged
        self._sum = 0.0
        self._count = 0

    def _slot_of(self, t_unix_s: float) -> tuple[int, int]:
        local = datetime.fromtimestamp(t_unix_s, self.zone)
        seconds = local.hour * 3600 + local.minute * 60 + local.second
        return local.toordinal(), int(seconds // self.slot_s)

    def observe(self, t_unix_s: float, p_base_import_w: float) -> None:
        """One reading of the house's import without the EV (NaN: skipped)."""
        if not math.isfinite(p_base_import_w):
            return
        slot = self._slot_of(t_unix_s)
        if slot != self._slot:
            self._fold()
            self._slot = slot
        self._sum += p_base_import_w
        self._count += 1

    def _fold(self) -> None:
        if self._slot is None or self._count == 0:
            return
        mean = self._sum / self._count
        k = self._slot[1]
        old = self.profile[k]
        self.profile[k] = mean if math.isnan(old) else (1.0 - self.weight) * old + self.weight * mean
        self._sum, self._count = 0.0, 0

    def forecast(self, t0_unix_s: float, step_s: float, n: int) -> FloatArray:
        """The forecast on the plan's grid, at each step's midpoint."""
        seen = self.profile[~np.isnan(self.profile)]
        fill = float(seen.mean()) if seen.size else 0.0
        out = np.empty(n)
        for k in range(n):
            value = self.profile[self._slot_of(t0_unix_s + (k + 0.5) * step_s)[1]]
            out[k] = fill if math.isnan(value) else value
        return out
