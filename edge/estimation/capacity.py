"""Capacity (SoH) estimation by weighted total least squares over throughput between SoC anchors.

Each observation is a pair of well-estimated SoC points (anchors, taken at rest where the OCV pins
the SoC) with the charge counted between them: ``y = Q * x`` with ``x`` the SoC change (error in x
from both anchors) and ``y`` the counted charge in Ah (error from the current sensor's gain and
offset). Both have errors, so the fit is total least squares weighted per point (Plett's WTLS):
minimise ``sum (y - Q x)^2 / (var_y + Q^2 var_x)`` over Q. The nameplate is a prior observation
(x = 1, y = nameplate) with a wide error so that a new vehicle starts there and moves away only as
evidence accumulates. Older observations fade by a factor per session, so the estimate follows aging
over many sessions instead of being reset at each plug-in.

The anchors read SoC from the new cell's OCV table, so they measure the capacity of the window they
span on that table's scale. Lithium loss (and loss of negative-electrode material) takes capacity from
the bottom of the window: counted from full, an aged cell's OCV follows the new cell's until near its
own empty point (the aged record: within 1-4 % of a new cell down to 30 % SoC, docs/estimation.md).
Anchors that never go below SoC ``s`` therefore cannot see a fade of up to about ``s``: the reported
standard deviation keeps that part of the nameplate prior (``hidden_sigma_ah``), so that a capacity
measured in the upper window is not published as known, and the learned flag needs a deep swing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class CapacityPoint:
    """One observation: SoC change ``dsoc`` (first anchor minus second), ``ah`` counted (discharge > 0),
    ``soc_low`` the lower anchor's SoC (1.0 when not known: a record from before it was kept)."""

    dsoc: float
    ah: float
    var_dsoc: float
    var_ah: float
    weight: float = 1.0
    soc_low: float = 1.0


# An anchor: SoC, its variance, counted Ah and |Ah|, and time since the session start.
_Anchor = tuple[float, float, float, float, float]


@dataclass(frozen=True)
class CapacityEstimate:
    capacity_ah: float
    sigma_ah: float  # the fit's and the hidden fade's
    points: int
    hidden_sigma_ah: float  # of a fade the observations cannot see (in sigma_ah)


class CapacityEstimator:
    """Per-vehicle capacity from anchored throughput; see the module docstring."""

    MAX_POINTS = 200
    MIN_WEIGHT = 0.05

    def __init__(
        self,
        nameplate_ah: float,
        prior_rel_sigma: float = 0.15,
        fade_per_session: float = 0.97,
        points: list[CapacityPoint] | None = None,
    ) -> None:
        if nameplate_ah <= 0.0:
            raise ValueError(f"nameplate capacity {nameplate_ah} Ah must be > 0")
        self.nameplate_ah = nameplate_ah
        self.prior_rel_sigma = prior_rel_sigma
        self.fade_per_session = fade_per_session
        self.points: list[CapacityPoint] = list(points or [])
        self._estimate = self._solve()

    @property
    def estimate(self) -> CapacityEstimate:
        return self._estimate

    def add(self, point: CapacityPoint) -> CapacityEstimate:
        """Add an observation (ignored if degenerate) and return the new estimate."""
        points = self.points_with(point)
        if points != self.points:
            self.points = points
            self._estimate = self._solve()
        return self._estimate

    def points_with(self, point: CapacityPoint) -> list[CapacityPoint]:
        """The observations as ``add(point)`` would leave them; this estimator is not changed."""
        if not (abs(point.dsoc) > 0.0 and point.var_dsoc >= 0.0 and point.var_ah > 0.0):
            return list(self.points)
        return [*self.points, point][-self.MAX_POINTS :]

    def new_session(self) -> None:
        """Fade older observations (aging moves the capacity between sessions)."""
        faded = [replace(p, weight=p.weight * self.fade_per_session) for p in self.points]
        self.points = [p for p in faded if p.weight >= self.MIN_WEIGHT]
        self._estimate = self._solve()

    def _cost(self, q: float) -> float:
        prior_var = (self.prior_rel_sigma * self.nameplate_ah) ** 2
        cost = (self.nameplate_ah - q) ** 2 / prior_var
        for p in self.points:
            cost += p.weight * (p.ah - q * p.dsoc) ** 2 / (p.var_ah + q * q * p.var_dsoc)
        return cost

    def _solve(self) -> CapacityEstimate:
        lo = 0.3 * self.nameplate_ah
        hi = 1.7 * self.nameplate_ah
        # The cost is smooth and unimodal over this bracket for any realistic data; golden-section
        # search needs no derivative and no optimiser dependency.
        ratio = (math.sqrt(5.0) - 1.0) / 2.0
        a, b = lo, hi
        c = b - ratio * (b - a)
        d = a + ratio * (b - a)
        fc, fd = self._cost(c), self._cost(d)
        while b - a > 1e-7 * self.nameplate_ah:
            if fc < fd:
                b, d, fd = d, c, fc
                c = b - ratio * (b - a)
                fc = self._cost(c)
            else:
                a, c, fc = c, d, fd
                d = a + ratio * (b - a)
                fd = self._cost(d)
        q = 0.5 * (a + b)
        h = 1e-3 * self.nameplate_ah
        curvature = (self._cost(q + h) - 2.0 * self._cost(q) + self._cost(q - h)) / (h * h)
        # cost = chi^2, so its second derivative is 2 / variance.
        prior_sigma = self.prior_rel_sigma * self.nameplate_ah
        sigma = math.sqrt(2.0 / curvature) if curvature > 0.0 else prior_sigma
        hidden = self._hidden_fade_sigma(q)
        if self.points:
            # The fade the anchors cannot see is what the prior said of it, no more: the total never
            # exceeds the prior's width.
            sigma = min(math.hypot(sigma, hidden), max(sigma, prior_sigma))
        return CapacityEstimate(q, sigma, len(self.points), hidden)

    def _hidden_fade_sigma(self, q: float) -> float:
        """Standard deviation (Ah) of a fade hidden below the anchors (see the module doc).

        Below an observation's lower anchor a fade up to that SoC can hide entirely; the prior spans
        two of its standard deviations, so from that SoC up the prior's whole width stays, below it
        the share shrinks in proportion, to nothing for a swing down to empty. The estimate is as
        blind as the observations that make it: the shares are averaged with each observation's
        weight in the fit at ``q`` (a deep swing among shallow ones clears only its part, and a deep
        one fading over the sessions clears less and less).
        """
        total = hidden = 0.0
        for p in self.points:
            info = p.weight * p.dsoc * p.dsoc / (p.var_ah + q * q * p.var_dsoc)
            total += info
            hidden += info * min(1.0, max(p.soc_low, 0.0) / (2.0 * self.prior_rel_sigma))
        share = hidden / total if total > 0.0 else 1.0
        return share * self.prior_rel_sigma * self.nameplate_ah


class AnchorTracker:
    """Turns rest periods into SoC anchors and anchor pairs into capacity observations.

    ``update`` is fed every sample with the filter's SoC and its variance; a rest (|i| below the rest
    current) longer than ``rest_min_s`` makes the latest SoC a candidate anchor; when the rest ends
    (or the session closes) the candidate is committed and paired with the previous anchor.
    """

    def __init__(
        self,
        *,
        rest_current_a: float,
        rest_min_s: float,
        min_dsoc: float,
        gain_sigma: float,
        offset_sigma_a: float,
        soc_sigma_floor: float,
    ) -> None:
        self.rest_current_a = rest_current_a
        self.rest_min_s = rest_min_s
        self.min_dsoc = min_dsoc
        self.gain_sigma = gain_sigma
        self.offset_sigma_a = offset_sigma_a
        self.soc_sigma_floor = soc_sigma_floor
        self.ah = 0.0  # counted charge since the session start, discharge > 0
        self.ah_abs = 0.0  # counted |charge|, for the gain error
        self.t_s = 0.0  # time since session start
        self._rest_s = 0.0
        self._candidate: _Anchor | None = None
        self._anchor: _Anchor | None = None

    def update(
        self, dt_s: float, i_a: float, soc: float, soc_var: float, offset_a: float = 0.0
    ) -> CapacityPoint | None:
        """Account ``i_a`` held over ``dt_s`` then the state at the sample; maybe return an observation.

        The charge is counted as measured (its error model covers the sensor's offset). Rest is a small
        measured current, or a small current once the filter's offset estimate is taken off, so that a
        drifting sensor still sees rests (the offset state also absorbs other steady counting errors,
        which is why the raw current is tried first).
        """
        self.ah += i_a * dt_s / 3600.0
        self.ah_abs += abs(i_a) * dt_s / 3600.0
        self.t_s += dt_s
        if abs(i_a) <= self.rest_current_a or abs(i_a - offset_a) <= self.rest_current_a:
            self._rest_s += dt_s
            if self._rest_s >= self.rest_min_s:
                var = max(soc_var, self.soc_sigma_floor**2)
                self._candidate = (soc, var, self.ah, self.ah_abs, self.t_s)
            return None
        self._rest_s = 0.0
        return self.commit()

    def commit(self) -> CapacityPoint | None:
        """Commit the pending rest anchor (call at session end too); returns an observation if any."""
        point, self._anchor = self._pair()
        self._candidate = None
        return point

    def pending(self) -> CapacityPoint | None:
        """The observation ``commit`` would return now; nothing is committed."""
        return self._pair()[0]

    def _pair(self) -> tuple[CapacityPoint | None, _Anchor | None]:
        """The observation the pending anchor makes, and the anchor to keep after committing it."""
        new, old = self._candidate, self._anchor
        if new is None:
            return None, old
        if old is None:
            return None, new
        dsoc = old[0] - new[0]
        if abs(dsoc) < self.min_dsoc:
            # Too close to pair: keep the better-pinned anchor and wait for the SoC to move.
            return None, old if old[1] < new[1] else new
        ah = new[2] - old[2]
        var_ah = (self.gain_sigma * (new[3] - old[3])) ** 2 + (
            self.offset_sigma_a * (new[4] - old[4]) / 3600.0
        ) ** 2
        return CapacityPoint(dsoc, ah, old[1] + new[1], max(var_ah, 1e-12), 1.0, min(old[0], new[0])), new
