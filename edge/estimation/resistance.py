"""Resistance growth tracking from current steps.

Between two samples the terminal voltage changes by the model's own dynamics (OCV moving, RC branches
relaxing under the held current) plus the instant response to the current step, which for a cell is
``-R_step * dI`` with ``R_step`` the series resistance plus the kinetic term's chord between the two
currents (its small-signal resistance for small currents; stepping 0 to 0.5C, nmc-lgm50's whole step
resistance is 0.90 of that at 25 degC and mid SoC, 0.70 at 0 degC). The filter gives the first part;
what is left is regressed on ``-R_step,new(T) * dI``: the slope is the growth ``g`` (1.0 for a new
cell), temperature-compensated by construction, and current-compensated exactly for a new cell. At
tenths of C an aged cell reads off by its kind: series growth, which does not flatten, reads high
(1.6 as 1.66 at 0.45C and 25 degC: conservative); kinetic growth (exchange currents divided) flattens
earlier than the new cell's chord and reads low (1.6 as 1.49), which the SoP's pricing of the growth's
upper excess as series covers (docs/estimation.md, "A growth of unknown kind").

The regression is Bayesian with a Gaussian prior (a vehicle never seen: 1.0 +/- ``prior_sigma``; a
known vehicle: its persisted value) and a forgetting factor, so it has a standard deviation: the
filter uses the mean, the SoP an upper bound (mean + ``sop_sigmas`` sigma), so that the power
limits of a vehicle whose resistance is not yet known are conservative and relax as steps arrive.

The bounds only stop a regression that has gone wild; the upper one must lie above any cell a
profile may meet. A profile of another cell type, or one built from a datasheet alone (series
resistance only, no kinetic term), lies 6.4 x below the aged LG M50 cell's instant step resistance
(its charge transfer at V2H currents), and a cold pack multiplies that again. A growth held at a bound
below the cell's is no upper bound, and the SoP built on it over-predicts (docs/estimation.md,
"Profiles of another cell").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Within this share of a bound the growth is the clamp's value, not the data's.
BOUND_MARGIN = 0.05
# The steps taken, in C-rates of the cell's nameplate (0.02 A and 2.5 A on a 5 Ah cell): a cell's
# resistance scales about inversely with its capacity, so a step of a given C-rate moves the voltage
# about as far on any cell size, and the chord is computed where the kinetics are near-linear. In
# amperes, a 160 Ah prismatic cell at 1p took the sensor's noise for steps and few of a V2G load's (a
# 7 kW load is 20 A per cell there), and a 0.43 Ah cell in a 400-parallel pack 6 of a three-hour house
# load.
MIN_STEP_C = 0.004
MAX_CURRENT_C = 0.5
# The growth's standard deviation for a vehicle never seen: it may be new or well aged.
UNKNOWN_GROWTH_SIGMA = 0.5


def at_bound(value: float, bounds: tuple[float, float]) -> bool:
    """Whether an identified ``value`` sits at one of its ``bounds``: the clamp's, not the data's."""
    lo, hi = bounds
    return value < lo * (1.0 + BOUND_MARGIN) or value > hi * (1.0 - BOUND_MARGIN)


@dataclass(frozen=True)
class GrowthEstimate:
    growth: float
    sigma: float
    upper: float  # what the SoP uses
    steps: int


class ResistanceTracker:
    """Growth factor of the instant step resistance vs the profile's new cell."""

    def __init__(
        self,
        *,
        prior_growth: float = 1.0,
        prior_sigma: float = UNKNOWN_GROWTH_SIGMA,
        noise_v: float = 0.003,
        forgetting: float = 0.9995,
        sop_sigmas: float = 2.0,
        capacity_ah: float,
        max_dt_s: float = 2.0,
        bounds: tuple[float, float] = (0.5, 20.0),
    ) -> None:
        if prior_sigma <= 0.0 or noise_v <= 0.0 or not 0.0 < capacity_ah < math.inf:
            raise ValueError(
                f"prior_sigma {prior_sigma}, noise_v {noise_v} and capacity_ah {capacity_ah} must be > 0"
                " (and the capacity finite)"
            )
        self.prior_growth = prior_growth
        self.prior_precision = 1.0 / prior_sigma**2
        self.noise_var = noise_v**2
        self.forgetting = forgetting
        self.sop_sigmas = sop_sigmas
        self.min_step_a = MIN_STEP_C * capacity_ah
        self.max_current_a = MAX_CURRENT_C * capacity_ah
        self.max_dt_s = max_dt_s
        self.bounds = bounds
        self._sxx = 0.0
        self._sxy = 0.0
        self.steps = 0

    def held(self, growth: float) -> bool:
        """Whether ``growth`` sits at one of the bounds (the profile does not fit the cell there)."""
        return at_bound(growth, self.bounds)

    @property
    def estimate(self) -> GrowthEstimate:
        precision = self.prior_precision + self._sxx / self.noise_var
        g = (self.prior_growth * self.prior_precision + self._sxy / self.noise_var) / precision
        g = min(max(g, self.bounds[0]), self.bounds[1])
        sigma = 1.0 / math.sqrt(precision)
        upper = min(g + self.sop_sigmas * sigma, self.bounds[1])
        return GrowthEstimate(g, sigma, upper, self.steps)

    def accepts(self, dt_s: float, i_prev_a: float, i_a: float) -> bool:
        """Whether the step from ``i_prev_a`` to ``i_a`` over ``dt_s`` is one the regression takes."""
        return (
            0.0 < dt_s <= self.max_dt_s
            and abs(i_a - i_prev_a) >= self.min_step_a
            and abs(i_a) <= self.max_current_a
            and abs(i_prev_a) <= self.max_current_a
        )

    def update(  # noqa: PLR0917 - called per sample; positional is the cheap call
        self,
        dt_s: float,
        i_prev_a: float,
        i_a: float,
        v_prev_v: float,
        v_v: float,
        model_dv_v: float,
        r_step_new_ohm: float,
    ) -> None:
        """One sample pair: ``model_dv_v`` is the model's voltage change without the current step,
        ``r_step_new_ohm`` the new cell's response to this step per ampere (its chord between the two
        currents: at a few tenths of C the kinetic slope is below its small-signal value)."""
        if not self.accepts(dt_s, i_prev_a, i_a):
            return
        x = -r_step_new_ohm * (i_a - i_prev_a)
        y = (v_v - v_prev_v) - model_dv_v
        self._sxx = self.forgetting * self._sxx + x * x
        self._sxy = self.forgetting * self._sxy + x * y
        self.steps += 1
