"""The session's flexibility envelope: what the charger can still offer an aggregator, step by step,
without breaking the owner's reserve, the departure target (over its whole margin window) or the
charger's and pack's limits (docs/planner.md, "Envelope").

For each time index i (0..n) the range of the pack's energy, as DC energy added since the plan's
start (``e_min_wh`` … ``e_max_wh``, cumulative), and for each step the range of AC power
(``p_min_w`` … ``p_max_w``, > 0 discharge) that can be taken from some energy inside the range at its
start to some energy inside the range at its end. The upper energy bound is charging at full power
from now (capped at the pack's top); the lower one discharging at the most each step allows, held up
by the reserve and, backwards from the departure window (or, for a departure beyond the horizon,
from the end SoC it needs), by what charging at full power can still restore in time. The most a step
allows to discharge is what the program allows (``Problem.discharge_room_w``): the house's forecast
import plus the export the site's cap allows (none on a non-export site, none that worsens a PV
surplus above the cap), within the charger's limit; so the sum of envelopes never counts export the
site may not make. An owner leaving within the first step (``Problem.leaves_now``) offers no
discharge there, and below the target no power but full charge.
The envelope is invariant: from every energy inside it there is a power inside it that keeps the next
energy inside it, so an aggregator may sum the envelopes of its chargers (a Minkowski sum of boxes)
and split any total inside the sum back among them. After the departure both ranges are zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.planner.problem import FloatArray, Problem


@dataclass(frozen=True)
class Envelope:
    """Per step (n): ``p_min_w`` … ``p_max_w``; per time index (n + 1): ``e_min_wh`` … ``e_max_wh``."""

    p_min_w: FloatArray
    p_max_w: FloatArray
    e_min_wh: FloatArray
    e_max_wh: FloatArray


def envelope(pb: Problem) -> Envelope:
    """The flexibility envelope of ``pb``'s session; see the module docstring."""
    n, on, dt = pb.n, pb.present, pb.dt_h
    e_soc = pb.e_per_soc_wh
    e0 = pb.soc0 * e_soc
    up_wh = pb.charge_efficiency * pb.p_charge_max_w * dt  # most DC energy one step can add
    down_wh = pb.discharge_room_w() / pb.discharge_efficiency * dt  # and take, per step
    lower = pb.min_soc_path() * e_soc
    tgt = pb.target()
    hi = np.empty(n + 1)
    lo = np.empty(n + 1)
    hi[0] = lo[0] = e0
    for i in range(1, on + 1):
        hi[i] = min(max(pb.max_soc * e_soc, e0), hi[i - 1] + up_wh)
        lo[i] = max(lower[i], lo[i - 1] - down_wh[i - 1])
    if tgt is not None:
        first, soc, _ = tgt
        need = soc * e_soc
        for i in range(on + 1):
            # Charging at full power from i must still reach the target by the window's start.
            lo[i] = min(hi[i], max(lo[i], need - up_wh * max(first - i, 0)))
        if pb.leaves_now and e0 < need:  # the rest as soon as possible: full power, as the program
            lo[1] = hi[1]
    elif pb.end_soc > 0.0:  # a departure beyond the horizon: what must be in hand at the end
        need = pb.end_soc * e_soc
        for i in range(n + 1):
            lo[i] = min(hi[i], max(lo[i], need - up_wh * (n - i)))
    hi[on + 1 :], lo[on + 1 :] = hi[on], lo[on]  # the EV has left: nothing moves any more
    p_min = np.zeros(n)
    p_max = np.zeros(n)
    for k in range(on):
        d_lo = max(lo[k + 1] - hi[k], -down_wh[k])  # the DC change of the step, most negative
        d_hi = min(hi[k + 1] - lo[k], up_wh)
        p_max[k] = _ac_w(d_lo, pb, dt)
        p_min[k] = _ac_w(d_hi, pb, dt)
    return Envelope(p_min_w=p_min, p_max_w=p_max, e_min_wh=lo - e0, e_max_wh=hi - e0)


def _ac_w(delta_dc_wh: float, pb: Problem, dt_h: float) -> float:
    """The AC power (> 0 discharge) that changes the pack's energy by ``delta_dc_wh`` in one step."""
    if delta_dc_wh >= 0.0:
        return -delta_dc_wh / (pb.charge_efficiency * dt_h)
    return -delta_dc_wh * pb.discharge_efficiency / dt_h
