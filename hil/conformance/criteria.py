"""IEEE 1547.1-2020 evaluation rules (clause 4.2 and the open-loop response rule) as pure functions on
recorded columns. The numbers are in ../shared/notes (A.11, B.1), copied into docs/conformance.md.

- Measurement accuracy (1547-2018 Table 3): V 1 % of nominal, f 10 mHz, P and Q 5 % of rated apparent
  power, time 1 % of the measured duration from 5 s to 600 s and 2 cycles from 0.1 s to 5 s.
- Steady state (4.2): for a characteristic y = f(x) and a measured (x, y), y must lie in
  [min(f(x - 1.5 MRA_x), f(x + 1.5 MRA_x)) - 1.5 MRA_y, max(...) + 1.5 MRA_y].
- Response: at the response time Tr after the step, the output has covered 90 % of the step,
  judged with 1.5 MRA on the value and 1.5 MRA on the time: both too slow and too fast fail.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MRA_V_PU = 0.01
MRA_F_HZ = 0.01
MRA_PQ_PU = 0.05  # of rated apparent power


def mra_time_s(duration_s: float, f_nominal_hz: float = 60.0) -> float:
    """Time accuracy for a measured duration: 2 cycles below 5 s, 1 % of the duration (5-600 s) above."""
    if duration_s < 5.0:
        return 2.0 / f_nominal_hz
    return 0.01 * min(duration_s, 600.0)


def value_at(t: Sequence[float], y: Sequence[float], at_s: float) -> float:
    """Linear interpolation of a recorded signal at ``at_s``; a time outside the record is an error
    (a judge reading past the end would take a later, more settled value)."""
    if not t:
        raise ValueError("empty record")
    if not t[0] <= at_s <= t[-1]:
        raise ValueError(f"t = {at_s:g} s is outside the record [{t[0]:g}, {t[-1]:g}] s")
    i = bisect.bisect_left(t, at_s)
    if i <= 0:
        return float(y[0])
    if i >= len(t):
        return float(y[-1])
    t0, t1 = t[i - 1], t[i]
    w = 0.0 if t1 == t0 else (at_s - t0) / (t1 - t0)
    return float(y[i - 1]) + w * (float(y[i]) - float(y[i - 1]))


def mean_over(t: Sequence[float], y: Sequence[float], from_s: float, to_s: float) -> float:
    """Mean of the samples in [from_s, to_s]; NaN when there are none."""
    a = bisect.bisect_left(t, from_s)
    b = bisect.bisect_right(t, to_s)
    if b <= a:
        return math.nan
    return float(sum(y[a:b]) / (b - a))


def steady_band(
    curve: Callable[[float], float], x_meas: float, mra_x: float, mra_y: float
) -> tuple[float, float]:
    """The 4.2 band for y at the measured input ``x_meas`` (units of the curve)."""
    a, b = curve(x_meas - 1.5 * mra_x), curve(x_meas + 1.5 * mra_x)
    return min(a, b) - 1.5 * mra_y, max(a, b) + 1.5 * mra_y


@dataclass(frozen=True)
class Response:
    """The response rule for one step: the value at Tr and the band it had to be in."""

    y_initial: float
    y_final: float
    t_step_s: float
    tr_s: float
    y_at_tr: float
    lo: float
    hi: float

    @property
    def passed(self) -> bool:
        return self.lo <= self.y_at_tr <= self.hi


def response_at_tr(
    t: Sequence[float],
    y: Sequence[float],
    *,
    t_step_s: float,
    tr_s: float,
    y_initial: float,
    y_final: float,
    mra_y: float,
    f_nominal_hz: float = 60.0,
) -> Response:
    """Judge the output at ``t_step_s + tr_s`` against 90 % of the step from ``y_initial`` to ``y_final``
    (the expected values from the characteristic, or the measured initial and final steady states).

    The band is the 90 % target with the first-order expectation's value over the time uncertainty
    (1.5 MRA_T either side of Tr) plus 1.5 MRA_y, two-sided as 1547.1 has it. A response beyond the band
    at Tr fails whichever side it is on (an overshoot, or one too slow); an unfiltered response whose
    step is smaller than the band's width above the 90 % point (10 % of the step + 1.5 MRA_y, about
    0.75 pu for 5 % MRA) is inside the band at Tr: 1547.1's tolerance cannot tell it from a right one.
    The t90 is reported beside the verdict for that reason."""
    dy = y_final - y_initial
    tau = tr_s / math.log(10.0)
    dt = 1.5 * mra_time_s(tr_s, f_nominal_hz)

    def expected(at: float) -> float:
        return y_initial + dy * (1.0 - math.exp(-max(at, 0.0) / tau))

    e_lo, e_hi = sorted((expected(tr_s - dt), expected(tr_s + dt)))
    lo, hi = e_lo - 1.5 * mra_y, e_hi + 1.5 * mra_y
    y_tr = value_at(t, y, t_step_s + tr_s)
    return Response(y_initial, y_final, t_step_s, tr_s, y_tr, lo, hi)


def clearing_time_s(
    t: Sequence[float],
    p_pu: Sequence[float],
    q_pu: Sequence[float],
    t0_s: float,
    *,
    p_max_pu: float = 1.5 * MRA_PQ_PU,
    q_max_pu: float = 0.10 + 1.5 * MRA_PQ_PU,
) -> float:
    """Seconds from ``t0_s`` until the output has ceased to energize (|P| and |Q| below the 1547.1
    thresholds) and stays so to the end of the record; inf if it never does, 0 if it was not energized
    from ``t0_s`` on (no measurement: the caller checks the output was energized at ``t0_s``)."""
    start = bisect.bisect_left(t, t0_s)
    last_energized = None
    for i in range(start, len(t)):
        if abs(p_pu[i]) > p_max_pu or abs(q_pu[i]) > q_max_pu:
            last_energized = i
    if last_energized is None:
        return 0.0
    if last_energized + 1 >= len(t):
        return math.inf
    return float(t[last_energized + 1] - t0_s)


def response_within(
    t: Sequence[float],
    y: Sequence[float],
    *,
    t_step_s: float,
    within_s: float,
    y_initial: float,
    y_final: float,
    mra_y: float,
) -> Response:
    """The one-sided rule of the constant PF, constant var and watt-var tests ("reach 90 % of the
    change within 10 s"): at ``t_step_s + within_s`` the output has covered at least 90 % of the step,
    less 1.5 MRA_y; reaching it sooner is allowed. The side that is not bounded is infinite."""
    target = y_initial + 0.9 * (y_final - y_initial)
    y_at = value_at(t, y, t_step_s + within_s)
    if y_final >= y_initial:
        lo, hi = target - 1.5 * mra_y, math.inf
    else:
        lo, hi = -math.inf, target + 1.5 * mra_y
    return Response(y_initial, y_final, t_step_s, within_s, y_at, lo, hi)


def t90_s(
    t: Sequence[float], y: Sequence[float], *, t_step_s: float, y_initial: float, y_final: float, to_s: float
) -> float:
    """Seconds from ``t_step_s`` until the output first covers 90 % of the step from ``y_initial`` to
    ``y_final`` (before ``to_s``): the response time as the lab reads it off the record. NaN for a step
    smaller than 1e-9, inf if it never gets there."""
    dy = y_final - y_initial
    if abs(dy) < 1e-9:
        return math.nan
    target = y_initial + 0.9 * dy
    start = bisect.bisect_left(t, t_step_s)
    end = bisect.bisect_right(t, to_s)
    for i in range(start, end):
        if (y[i] - target) * dy >= 0.0:
            if i > start and y[i] != y[i - 1]:
                # Interpolate between the samples either side of the crossing.
                w = (target - y[i - 1]) / (y[i] - y[i - 1])
                return float(t[i - 1] + w * (t[i] - t[i - 1]) - t_step_s)
            return float(t[i] - t_step_s)
    return math.inf
