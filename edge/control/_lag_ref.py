"""Pure-Python reference of the first-order lag kernel (see ext/lag.pyx).

A first-order response reaches 90 % of a step after the open-loop response time (OLRT) when its
time constant is OLRT / ln(10); IEEE 1547.1 judges responses that way. The step is the exact
discretisation, so the result does not depend on how the elapsed time is split into cycles.
"""

from __future__ import annotations

import math

LN10 = math.log(10.0)


def tau_from_olrt(olrt_s: float) -> float:
    """Time constant of a first-order response that reaches 90 % of a step at ``olrt_s``."""
    return olrt_s / LN10


def lag_step(y_prev: float, target: float, dt_s: float, tau_s: float) -> float:
    """Advance a first-order lag by ``dt_s`` towards ``target``.

    ``tau_s <= 0`` means no lag (the output is the target); ``dt_s <= 0`` leaves the output as it was
    (time never runs backwards in the kernel: a clock jump is the caller's to handle).
    """
    if tau_s <= 0.0:
        return target
    if dt_s <= 0.0:
        return y_prev
    alpha = 1.0 - math.exp(-dt_s / tau_s)
    return y_prev + (target - y_prev) * alpha


def lag_run(y0: float, targets: list[float], dt_s: float, tau_s: float, out: list[float]) -> float:
    """Run the lag over ``targets`` (one per step of ``dt_s``), writing each output into ``out``."""
    y = y0
    for i, target in enumerate(targets):
        y = lag_step(y, target, dt_s, tau_s)
        out[i] = y
    return y
