"""SoC fixes at the knees of a flat OCV curve (LFP), from the voltage's slope against counted charge.

On LFP's plateau the OCV table tells the SoC only to its error in volts over a slope of 0.1-0.2 V per
unit SoC: 10-20 points for a generic curve 15 mV off this cell. The filter rightly holds such a table
at arm's length (its consider update), and so it also holds it at the knee a long charge runs into:
from a start 20 points low it sat at 79 % +/- 11 through an hour's rest at 98 % (lfpfull_v2h), the
knee's 25 mV of innovation being no more than the plateau's error allows.

The slope itself carries no such offset. Under a steady one-way current the terminal voltage, with the
model's RC drops taken out and a settling time left out (``settle_s``), moves as the OCV does (the
overpotential stays; what is left of a drift in the current is taken out with the series
resistance), so a least-squares slope of voltage against the counted SoC over a window of
``window_soc`` is the OCV's slope there, whatever the table's level. Where it crosses
``slope_v`` (the profile's ``ocv.knee_slope_v``, well above the plateau's graphite steps) the cell
stands at its knee's onset, and the table says where that onset is (its own slope, over the same
window, crossing the same value). The fix's error is the table's along its SoC axis
(``ocv.sigma_soc``: where this cell's knee sits against the curve's) plus the crossing's place within
the window.

Top knee: reached by a charge (the slope rises through the threshold) and left by a discharge (it
falls through it); the bottom knee the other way round. One fix per crossing, once the slope has
stayed past the threshold for a quarter of a window or the segment ends; a segment ends when the
current changes way, stops, or moves by more than ``current_tol`` of itself, at a gap in the samples,
and after a run of samples off the window's line (a single one, a spike, is only left out: it would
move a window's slope by volts per unit).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

# The least steady current, as a share of C per hour, a knee is looked for at: slower, the window
# takes over an hour to fill and temperature and offset drifts weigh more than the knee's millivolts.
MIN_C_RATE = 0.02
# The SoC span the slope is taken over: wide enough that the sensor's noise averages out (hundreds of
# samples at V2H currents), narrow against a knee's few points.
WINDOW_SOC = 0.02
# Samples across the window when the table's own slope is taken (the regression's, as on the cell).
_TABLE_SAMPLES = 41
# Grid of window centres the table's crossings are looked for on.
_GRID_STEP = 0.0005
# Samples off the window's line in a row after which the segment starts over (the cell, not a
# disturbance, has changed).
MAX_OUTLIERS = 30
# A crossing is a knee once the slope has stayed past the threshold while the counted SoC moved this
# share of a window: a disturbance under the outlier bound that enters a window at its edge moves the
# slope until it nears the window's centre.
CONFIRM_WINDOWS = 0.25


@dataclass(frozen=True)
class KneeFix:
    soc: float  # the SoC now, by the knee
    var: float  # its error's variance: the table's along its SoC axis and the window's
    knee: str  # "top" or "bottom"
    slope_v: float  # the slope measured, V per unit SoC


def table_slopes(soc: np.ndarray, ocv: np.ndarray, centres: np.ndarray, window: float) -> np.ndarray:
    """The table's least-squares slope over a window of ``window`` around each of ``centres``, taken
    on evenly spaced points as the cell's is on evenly spaced samples."""
    x = centres[:, None] + np.linspace(-window / 2.0, window / 2.0, _TABLE_SAMPLES)[None, :]
    y = np.interp(x, soc, ocv)
    dx = x - x.mean(axis=1, keepdims=True)
    return np.asarray(((dx * (y - y.mean(axis=1, keepdims=True))).sum(axis=1)) / (dx * dx).sum(axis=1))


def table_knees(
    soc: np.ndarray, ocv: np.ndarray, slope_v: float, window: float
) -> tuple[float | None, float | None]:
    """(bottom, top): the window centres where the table's slope, going from its plateau towards each
    end, first reaches ``slope_v`` (None where that end never does: no knee to fix on).

    Raises ValueError for a table steeper than ``slope_v`` between two flatter stretches: a charge
    over that step would read as reaching the top knee.
    """
    centres = np.arange(window / 2.0, 1.0 - window / 2.0 + 1e-12, _GRID_STEP)
    steep = table_slopes(soc, ocv, centres, window) >= slope_v
    flat = np.flatnonzero(~steep)
    if len(flat) == 0:  # steep everywhere: no plateau, no knee
        return None, None
    gaps = np.flatnonzero(np.diff(flat) > 1)
    if len(gaps):
        inside = float(centres[flat[gaps[0]] + 1])
        raise ValueError(
            f"the table is steeper than {slope_v:g} V per unit SoC at SoC {inside:.3f}, between flatter "
            "stretches: a step there would read as a knee"
        )
    bottom = float(centres[flat[0] - 1]) if flat[0] > 0 else None
    top = float(centres[flat[-1] + 1]) if flat[-1] < len(centres) - 1 else None
    return bottom, top


class KneeTracker:
    """Watches steady one-way segments for the slope's crossing of the profile's knee slope."""

    def __init__(
        self,
        *,
        soc: np.ndarray,
        ocv: np.ndarray,
        slope_v: float,
        sigma_soc: float,
        min_current_a: float,
        settle_s: float,
        outlier_v: float,
        window_soc: float = WINDOW_SOC,
        current_tol: float = 0.1,
        max_dt_s: float = 10.0,
    ) -> None:
        if slope_v <= 0.0 or sigma_soc <= 0.0:
            raise ValueError(f"knee slope {slope_v} V per unit SoC and sigma_soc {sigma_soc} must be > 0")
        self.slope_v = slope_v
        self.window = window_soc
        self.current_tol = current_tol
        self.settle_s = settle_s
        self.outlier_v = outlier_v
        self.max_dt_s = max_dt_s
        self.min_current_a = min_current_a
        self.bottom, self.top = table_knees(soc, ocv, slope_v, window_soc)
        # The crossing lies somewhere in the window: uniform over it around the centre.
        self.var = sigma_soc * sigma_soc + window_soc * window_soc / 12.0
        self.fixes = 0
        self._reset(0.0)

    def _reset(self, i_a: float) -> None:
        self._i_a = i_a
        self._age_s = 0.0
        self._q = 0.0  # SoC counted since the segment began (charge positive)
        self._v0: float | None = None
        self._window: deque[tuple[float, float]] = deque()
        self._sx = self._sy = self._sxx = self._sxy = 0.0
        self._slope: float | None = None
        self._outliers = 0  # in a row
        self._below: bool | None = None  # the last slope's side of the threshold
        # A crossing counts only coming from well to its side: from the plateau (half the slope) into
        # a knee, from a knee (twice it) out of it. Noise about the threshold is neither. A segment
        # leaves a knee only if it began in one: steep before anything flat (a bump of the plateau
        # rises and falls within a segment that began flat).
        self._from_flat = False
        self._from_steep = False
        self._seen_flat = False
        # A crossing waiting for the slope to stay past the threshold over a quarter window: the knee's
        # name, its table centre less the window's centroid then, and the counted SoC then.
        self._pending: tuple[str, float, float] | None = None

    def update(self, dt_s: float, i_a: float, v_v: float, r_ohm: float, capacity_ah: float) -> KneeFix | None:
        """One sample: ``i_a`` the true cell current at it (discharge positive; the charge over ``dt_s``
        is counted with it, one sample off at a step, which ends a segment anyway), ``v_v``
        the cell's terminal voltage with the model's RC drops and the OCV's hysteresis taken out,
        ``r_ohm`` its series resistance now, ``capacity_ah`` the capacity the SoC is counted in.
        Returns a fix once the slope has crossed the knee's and stayed past it."""
        if (
            not 0.0 < dt_s <= self.max_dt_s
            or abs(i_a) < self.min_current_a
            or (i_a > 0.0) != (self._i_a > 0.0)
            or abs(i_a - self._i_a) > self.current_tol * abs(self._i_a)
            or self._outliers >= MAX_OUTLIERS
        ):
            # A segment that ends past a crossing it had not gone back over confirms it: a charge
            # stops at the top knee (the EV's own limit) as often as it runs on. Not across a gap in
            # the samples: the charge that flowed in it is not counted here.
            fix = None
            if self._pending is not None and 0.0 < dt_s <= self.max_dt_s:
                self._q -= self._i_a * dt_s / (3600.0 * capacity_ah)
                fix = self._confirm()
            self._reset(i_a if abs(i_a) >= self.min_current_a else 0.0)
            return fix
        self._age_s += dt_s
        self._q -= i_a * dt_s / (3600.0 * capacity_ah)
        if self._age_s < self.settle_s:
            return None
        # The voltage the segment's first current would give (a drift of the current is not the
        # OCV's), from the first one's: the sums stay small.
        y = v_v + r_ohm * (i_a - self._i_a)
        if self._v0 is None:
            self._v0 = y
        x, y = self._q, y - self._v0
        if self._slope is not None:
            # A sample off the window's line by more than the sensor allows is a disturbance (a spike,
            # a dip of the load), not the OCV: one would move the slope by volts per unit.
            n = len(self._window)
            if abs(y - self._sy / n - self._slope * (x - self._sx / n)) > self.outlier_v:
                self._outliers += 1
                return None
        self._outliers = 0
        self._add(x, y, 1.0)
        while abs(x - self._window[0][0]) > self.window:
            self._add(*self._window.popleft(), -1.0)
        n = len(self._window)
        var_x = self._sxx - self._sx * self._sx / n
        if abs(x - self._window[0][0]) < 0.9 * self.window or var_x <= 0.0:
            return None
        # dV / dSoC with the SoC rising on charge: the same sign whichever way the segment runs.
        slope = (self._sxy - self._sx * self._sy / n) / var_x
        self._slope = slope
        return self._judge(slope, x, n, charge=i_a < 0.0)

    def _judge(self, slope: float, x: float, n: int, *, charge: bool) -> KneeFix | None:
        flat = slope <= 0.5 * self.slope_v
        self._from_flat = self._from_flat or flat
        self._seen_flat = self._seen_flat or flat
        self._from_steep = self._from_steep or (slope >= 2.0 * self.slope_v and not self._seen_flat)
        below, self._below = self._below, slope < self.slope_v
        if self._pending is not None:
            knee, _, x_cross = self._pending
            rising = (knee == "top") == charge
            if self._below == rising:  # back across: a disturbance, not the knee
                self._pending = None
                return None
            if abs(x - x_cross) < CONFIRM_WINDOWS * self.window:
                return None
            return self._confirm()
        if below is None or below == self._below:
            return None
        rising = not self._below
        if not (self._from_flat if rising else self._from_steep):
            return None
        # Rising into a knee: the top on charge, the bottom on discharge; falling: leaving one.
        knee = "top" if charge == rising else "bottom"
        centre = self.top if knee == "top" else self.bottom
        if centre is not None:
            self._pending = (knee, centre - self._sx / n, x)
        return None

    def _confirm(self) -> KneeFix:
        assert self._pending is not None
        assert self._slope is not None
        knee, offset, _ = self._pending
        self._pending = None
        self._from_flat = self._from_steep = False
        self.fixes += 1
        # The SoC counted to now, samples left out of the window included.
        return KneeFix(float(offset + self._q), self.var, knee, float(self._slope))

    def _add(self, x: float, y: float, sign: float) -> None:
        if sign > 0.0:
            self._window.append((x, y))
        self._sx += sign * x
        self._sy += sign * y
        self._sxx += sign * x * x
        self._sxy += sign * x * y
