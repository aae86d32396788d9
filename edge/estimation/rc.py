"""Online identification of the RC branches' resistances from the voltage's relaxation.

The growth tracker (``resistance.py``) identifies the instant step resistance; what a 10 s pulse sees
beyond it is mostly the RC branches' polarisation, which a generic or another cell's profile may hold
in a different share (a cold pack's RC part is larger than the profile's, relative to its instant
part: docs/estimation.md, "RC identification"). The filter cannot tell: it corrects its RC states
from the voltage at every sample, so their amplitude follows the data and says nothing of the
resistance behind them.

So this tracker keeps its own, open-loop copy of the two branches, driven by the current alone with
the filter's resistances (the profile's at the present temperature, times the identified growth):
``u_k``. A cell whose branch ``k`` is ``h_k`` times that holds ``h_k u_k``. Between two current steps
(a segment: the instant response, whose growth is uncertain, stays out) the voltage less the OCV's
change by the charge counted and the instant response to the current's noise is
``c - h_1 u_1 - h_2 u_2`` plus the sensor's noise, with ``c`` the segment's own level (the table's
offset, the hysteresis). Per segment that level and a term in the charge counted within it (a table's
slope that is not the cell's drifts the voltage with the charge) are regressed out, and what remains of
the voltage on what remains of ``-u_1`` and ``-u_2`` gives ``h_1`` and ``h_2``: a rest after a
charge, where the charge does not move, tells the most. Levels, not differences of samples: the
sensor's noise is white in the levels, and the relaxation's information is in its whole curve.
The regression is Bayesian (prior 1 +/- ``prior_sigma`` each, the profile's split; a known
vehicle's persisted scales as data beyond it) with forgetting in time, so each scale has a standard
deviation; the SoP takes the upper bound (mean + ``sop_sigmas`` sigma), the filter is not changed.

A cell whose fast branch is faster than the profile's is not reproduced by scales alone: a pulse's
first seconds see more of it than the profile's time constant lets through (at a third of nmc-lgm50's
26 s, the 10 s charge limit came out 14 % over the cell's with the scales identified). So ``RcBank``
runs trackers of the same samples over faster first time constants and compares the evidence each
gives the session's data; the SoP takes the most probable (a prior about the profile's) with the
scales identified with it (``RcBank.choose``). A slower one is not credited, nor a branch below the
profile's, so no horizon sees less resistance than with the profile's own branches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# A scale for a vehicle never seen: the profile's split between instant and RC response, give or take
# half of it (read on the records: 2.6 on a pack at 0 degC, 1.5 at 8 degC, 0.5 on an aged cell).
UNKNOWN_RC_SIGMA = 0.5
# The tightest sigma a carried scale is taken at (a record's figure, not the tracker's to trust further).
CARRIED_SIGMA_MIN = 1e-3
# The regression forgets with this time constant: the RC branches change with the SoC, which the model
# does not hold (a session's two hours weigh most), and with temperature beyond the profile's law.
FORGET_TAU_S = 7200.0
# The SoP takes a branch's scale once its standard deviation is within this (the prior's half).
RC_SIGMA_CONVERGED = 0.25
# The first time constants the bank compares, over the profile's: the profile's first, then faster by
# a factor sqrt(2) each (nmc-lgm50's 26.4 s down to 4.7 s; with one sample a second a faster branch
# is mostly in the instant step, which the growth tracker prices).
TAU1_SCALES = (1.0, 0.707, 0.5, 0.354, 0.25, 0.177)
# The prior on the first time constant: log-normal about the profile's, this standard deviation (a
# factor 1.65). The profile's is its cell type's; on the records the data rarely tell the time
# constants apart (within 1-4 in log evidence over the whole grid), and a flat prior then took the
# fastest, the charge limits' medians 15 points lower at no gain (docs/estimation.md).
TAU1_LOG_SIGMA = 0.5


@dataclass(frozen=True)
class RcEstimate:
    scale: tuple[float, float]  # R1, R2 over the filter's (the profile's at T, times the growth)
    sigma: tuple[float, float]
    upper: tuple[float, float]  # what the SoP uses
    samples: int  # held samples regressed


def _segment_sums(m: list[float], moved: bool) -> tuple[float, float, float, float, float]:
    """A segment's normal equations for (h1, h2) once its level and, where the charge ``moved``, its
    term in the charge are regressed out: ``m`` holds n, then the sums of Q, X1, X2, Y, QQ, QX1, QX2,
    QY, X1X1, X1X2, X2X2, X1Y, X2Y over its samples. Returns (X1X1, X1X2, X2X2, X1Y, X2Y) of the
    residuals."""
    n, q, x1, x2, y, qq, qx1, qx2, qy, x11, x12, x22, x1y, x2y = m
    det = n * qq - q * q
    # A rest (the sensor's offset is all that "flows") leaves no drift to take out, and a slow branch's
    # relaxation is nearly linear in time: taking a trend out would take most of it (a review measured
    # a 900 s rest's information on the 227 s branch cut from 58.6 to 11.2).
    if not moved or det <= 1e-12 * n * qq:
        return (x11 - x1 * x1 / n, x12 - x1 * x2 / n, x22 - x2 * x2 / n, x1y - x1 * y / n, x2y - x2 * y / n)

    # With A = [1, Q]: S_ab - (A'a)' (A'A)^-1 (A'b) for each pair a, b of X1, X2, Y.
    def proj(sa: float, qa: float, sb: float, qb: float) -> float:
        return (sa * (qq * sb - q * qb) + qa * (n * qb - q * sb)) / det

    return (
        x11 - proj(x1, qx1, x1, qx1),
        x12 - proj(x1, qx1, x2, qx2),
        x22 - proj(x2, qx2, x2, qx2),
        x1y - proj(x1, qx1, y, qy),
        x2y - proj(x2, qx2, y, qy),
    )


class RcTracker:
    """Scales of the two RC branches' resistances against the profile's (growth-scaled) values."""

    def __init__(
        self,
        *,
        tau_s: tuple[float, float],
        noise_v: float,
        min_step_a: float,
        carried: tuple[tuple[float, float], tuple[float, float]] | None = None,
        prior_sigma: float = UNKNOWN_RC_SIGMA,
        forget_tau_s: float = FORGET_TAU_S,
        sop_sigmas: float = 2.0,
        bounds: tuple[float, float] = (0.2, 10.0),
    ) -> None:
        if min(tau_s) <= 0.0 or noise_v <= 0.0 or prior_sigma <= 0.0 or forget_tau_s <= 0.0:
            raise ValueError(
                f"tau_s {tau_s}, noise_v {noise_v}, prior_sigma {prior_sigma} and forget_tau_s"
                f" {forget_tau_s} must be > 0"
            )
        self.tau_s = tau_s
        self.noise_var = noise_v * noise_v
        self.min_step_a = min_step_a
        self.prior_precision = 1.0 / (prior_sigma * prior_sigma)
        self.forget_tau_s = forget_tau_s
        self.sop_sigmas = sop_sigmas
        self.bounds = bounds
        # A known vehicle's scales (mean, sigma per branch) are what earlier sessions' data said beyond
        # the unknown vehicle's prior: they enter as those data (the precision beyond the prior's, at
        # the mean that gives back the stored scale), and are forgotten as the session's own are
        # (identified at other SoCs and temperatures; held at full weight, a stored scale kept the
        # SoP's bound below a cell three times it, review). The scale is taken within the bounds.
        self._carried = [(0.0, 1.0), (0.0, 1.0)]  # (precision beyond the prior's, the data's mean)
        if carried is not None:
            for j in (0, 1):
                scale, sigma = carried[0][j], carried[1][j]
                # One no surer than the prior adds nothing.
                if math.isfinite(scale) and 0.0 < sigma < prior_sigma:
                    precision = 1.0 / max(sigma, CARRIED_SIGMA_MIN) ** 2
                    extra = precision - self.prior_precision
                    mean = min(max(scale, bounds[0]), bounds[1])
                    self._carried[j] = (extra, (precision * mean - self.prior_precision) / extra)
        # A segment longer than this is closed and a new one begun: over a long one-way swing the
        # table's slope error is no longer linear in the charge.
        self.max_segment_s = max(4.0 * tau_s[1], 120.0)
        self._u1 = self._u2 = 0.0
        # The open segment: its time, cumulative charge Q (Ah), -u (X1, X2) and voltage (Y) since its
        # first sample, and the sums of their products (``_segment_sums``).
        self._seg_t_s = 0.0
        self._q = self._x1 = self._x2 = self._y = 0.0
        self._m = [0.0] * 14
        self._moved = False  # a current above the rest current flowed in the open segment
        # Closed segments' normal equations (X1X1, X1X2, X2X2, X1Y, X2Y) over the noise variance, as of
        # ``_s_t_s`` on the tracker's clock ``_t_s`` (forgotten lazily: see ``_closed_now``).
        self._s = [0.0] * 5
        self._t_s = self._s_t_s = 0.0
        self._dt_cached = -1.0
        self._a = (0.0, 0.0)
        self.samples = 0

    def decay(self, dt_s: float) -> tuple[float, float]:
        """The branches' decay over ``dt_s``: exp(-dt / tau) each."""
        if dt_s != self._dt_cached:
            self._a = (math.exp(-dt_s / self.tau_s[0]), math.exp(-dt_s / self.tau_s[1]))
            self._dt_cached = dt_s
        return self._a

    def update(  # noqa: PLR0917 - called per sample; positional is the cheap call
        self,
        dt_s: float,
        i_held_a: float,
        r1_ohm: float,
        r2_ohm: float,
        y_v: float,
        held: bool,
        resting: bool,
    ) -> None:
        """One interval ``dt_s`` under the current ``i_held_a`` (the filter's true current, discharge
        positive), the filter's branch resistances over it, and ``y_v``: the voltage's change less
        the OCV's by the charge counted and the instant response to the current's change. ``held``:
        the current did not step (a step closes the segment and begins the next); ``resting``: the
        measured current was below the rest current (a segment of rests alone keeps its trend)."""
        if dt_s <= 0.0:
            return
        a1, a2 = self.decay(dt_s)
        u1, u2 = self._u1, self._u2
        self._u1 = a1 * u1 + r1_ohm * (1.0 - a1) * i_held_a
        self._u2 = a2 * u2 + r2_ohm * (1.0 - a2) * i_held_a
        self._t_s += dt_s
        if not held or self._seg_t_s >= self.max_segment_s:
            self._close()
            return
        self._seg_t_s += dt_s
        if not resting:
            self._moved = True
        q = self._q = self._q + i_held_a * dt_s / 3600.0
        x1 = self._x1 = self._x1 - (self._u1 - u1)
        x2 = self._x2 = self._x2 - (self._u2 - u2)
        y = self._y = self._y + y_v
        m = self._m
        m[0] += 1.0
        m[1] += q
        m[2] += x1
        m[3] += x2
        m[4] += y
        m[5] += q * q
        m[6] += q * x1
        m[7] += q * x2
        m[8] += q * y
        m[9] += x1 * x1
        m[10] += x1 * x2
        m[11] += x2 * x2
        m[12] += x1 * y
        m[13] += x2 * y
        self.samples += 1

    def _closed_now(self) -> list[float]:
        """The closed segments' sums forgotten up to now (exp(-age / forget_tau_s))."""
        f = math.exp(-(self._t_s - self._s_t_s) / self.forget_tau_s)
        return [f * v for v in self._s]

    def _close(self) -> None:
        """Add the open segment to the closed ones and begin a new one at this sample (its origin)."""
        if self._m[0] >= 2.0:
            s = self._closed_now()
            w = 1.0 / self.noise_var
            for j, v in enumerate(_segment_sums(self._m, self._moved)):
                s[j] += w * v
            self._s = s
            self._s_t_s = self._t_s
        self._seg_t_s = 0.0
        self._q = self._x1 = self._x2 = self._y = 0.0
        self._m = [1.0] + [0.0] * 13  # the origin sample: all zero
        self._moved = False

    def carried_weight(self) -> float:
        """What is left of a record's figures: they are forgotten as the session's own data are."""
        return math.exp(-self._t_s / self.forget_tau_s)

    @property
    def estimate(self) -> RcEstimate:
        """The scales from the session's data, the prior and what is left of the carried scales."""
        return self._solve(self.carried_weight())

    @property
    def unseen(self) -> RcEstimate:
        """The scales from the session's data and the prior alone, as for a vehicle never seen."""
        return self._solve(0.0)

    def log_evidence(self) -> float:
        """The log evidence the session's data (forgotten as the scales' are, not the carried scales)
        give this tracker's time constants, up to a term that is the same for every tracker fed the
        same samples (the voltages' own sum of squares, the prior's): with ``A`` the posterior's
        precision and ``r`` its right-hand side, ``r' A^-1 r / 2 - log det A / 2``."""
        s = self._sums()
        p = self.prior_precision
        a, b, d = p + s[0], s[1], p + s[2]
        r1, r2 = p + s[3], p + s[4]
        det = a * d - b * b
        return 0.5 * (d * r1 * r1 - 2.0 * b * r1 * r2 + a * r2 * r2) / det - 0.5 * math.log(det)

    def used(self, floor: float) -> tuple[float, float]:
        """What the SoP may take of each branch: of this estimate and the one without the carried
        scales, the larger upper bound among those converged (within RC_SIGMA_CONVERGED); the prior's
        1 where neither is; never below ``floor``. A record thus only adds (a stored 0.98 held a cell
        at 3 to 1.69 for its first minutes, review)."""
        used = [-math.inf, -math.inf]
        for est in (self.estimate, self.unseen):
            for j in (0, 1):
                if est.sigma[j] <= RC_SIGMA_CONVERGED:
                    upper = est.upper[j] if math.isfinite(est.upper[j]) else self.bounds[1]
                    used[j] = max(used[j], upper)
        return tuple(max(1.0 if u == -math.inf else u, floor) for u in used)  # type: ignore[return-value]

    def _sums(self) -> list[float]:
        """The normal equations of the closed segments, forgotten up to now, and of the open one."""
        s = self._closed_now()
        if self._m[0] >= 2.0:
            w = 1.0 / self.noise_var
            for j, v in enumerate(_segment_sums(self._m, self._moved)):
                s[j] += w * v
        return s

    def _solve(self, carried_weight: float) -> RcEstimate:
        s = self._sums()
        p = self.prior_precision
        (c1, m1), (c2, m2) = self._carried
        c1 *= carried_weight
        c2 *= carried_weight
        a, b, d = p + c1 + s[0], s[1], p + c2 + s[2]
        det = a * d - b * b  # > 0: the prior makes the precision positive definite
        r1, r2 = p + c1 * m1 + s[3], p + c2 * m2 + s[4]  # the profile's split, 1, is the prior's mean
        h1 = (d * r1 - b * r2) / det
        h2 = (a * r2 - b * r1) / det
        lo, hi = self.bounds
        h1 = min(max(h1, lo), hi)
        h2 = min(max(h2, lo), hi)
        s1 = math.sqrt(d / det)
        s2 = math.sqrt(a / det)
        k = self.sop_sigmas
        return RcEstimate((h1, h2), (s1, s2), (min(h1 + k * s1, hi), min(h2 + k * s2, hi)), self.samples)


def tau1_log_prior(scale: float) -> float:
    """The log prior of a first time constant ``scale`` times the profile's (up to a constant)."""
    return -0.5 * (math.log(scale) / TAU1_LOG_SIGMA) ** 2


@dataclass(frozen=True)
class RcChoice:
    """What the SoP takes of the RC identification: the first time constant over the profile's and
    the two branches' scales (``RcTracker.used``) of the tracker that gave them."""

    tau1_scale: float
    used: tuple[float, float]


class RcBank:
    """``RcTracker``s fed the same samples, one per first time constant in ``TAU1_SCALES`` (times the
    profile's ``tau_s[0]``)."""

    def __init__(
        self,
        *,
        tau_s: tuple[float, float],
        noise_v: float,
        min_step_a: float,
        carried: tuple[tuple[float, float], tuple[float, float]] | None = None,
        carried_tau1_scale: float = 1.0,
        carried_tau1_log_odds: float = 0.0,
    ) -> None:
        # A record's scales were identified at its time constant: they go to that tracker alone (one
        # of another grid, from another release, to none), and the odds its sessions gave that time
        # constant over the profile's to its prior, forgotten as the scales are.
        self._carried_j = -1
        for j, m in enumerate(TAU1_SCALES):
            if abs(math.log(m / carried_tau1_scale)) < 0.01:
                self._carried_j = j
        self.trackers = tuple(
            RcTracker(
                tau_s=(tau_s[0] * m, tau_s[1]),
                noise_v=noise_v,
                min_step_a=min_step_a,
                carried=carried if j == self._carried_j else None,
            )
            for j, m in enumerate(TAU1_SCALES)
        )
        self._carried_odds = carried_tau1_log_odds if math.isfinite(carried_tau1_log_odds) else 0.0
        self.tau_s = tau_s
        self.min_step_a = min_step_a

    @property
    def profile(self) -> RcTracker:
        """The tracker at the profile's time constants."""
        return self.trackers[0]

    def update(  # noqa: PLR0917 - called per sample; positional is the cheap call
        self,
        dt_s: float,
        i_held_a: float,
        r1_ohm: float,
        r2_ohm: float,
        y_v: float,
        held: bool,
        resting: bool,
    ) -> None:
        """``RcTracker.update`` of every tracker."""
        for t in self.trackers:
            t.update(dt_s, i_held_a, r1_ohm, r2_ohm, y_v, held, resting)

    def log_posterior(self) -> list[float]:
        """Per time constant of TAU1_SCALES its log posterior, up to a common term: the session's
        evidence, the prior ``tau1_log_prior`` and what is left of a record's odds; a non-finite
        evidence reads as impossible."""
        out = []
        for j, (m, t) in enumerate(zip(TAU1_SCALES, self.trackers, strict=True)):
            ev = t.log_evidence()
            post = ev + tau1_log_prior(m) if math.isfinite(ev) else -math.inf
            if j == self._carried_j:
                post += self._carried_odds * t.carried_weight()
            out.append(post)
        return out

    def best(self) -> tuple[float, RcTracker, float]:
        """The most probable first time constant (over the profile's), its tracker, and the log odds it
        has over the profile's."""
        post = self.log_posterior()
        j = max(range(len(TAU1_SCALES)), key=lambda j: post[j])
        odds = post[j] - post[0] if math.isfinite(post[0]) else 0.0
        return TAU1_SCALES[j], self.trackers[j], odds

    def choose(self) -> RcChoice:
        """What the SoP takes: of the profile's time constant and the faster ones whose fast branch has
        converged, the most probable (the evidence, with the prior ``tau1_log_prior`` and a record's
        odds), with its tracker's scales (``RcTracker.used``), none below the profile's split (1: a
        branch identified below it is not credited; on the NCA pack with a built profile, nca20, the
        credit raised the model's 10 s discharge limit from +6.4 to +7.7 % over the truth:
        docs/estimation.md, "RC identification"). A faster time constant with scales of at least 1
        gives more resistance at every horizon than the profile's own branches."""
        j_best, p_best = 0, -math.inf
        for j, (t, post) in enumerate(zip(self.trackers, self.log_posterior(), strict=True)):
            if j and min(t.estimate.sigma[0], t.unseen.sigma[0]) > RC_SIGMA_CONVERGED:
                continue
            if post > p_best:
                j_best, p_best = j, post
        return RcChoice(TAU1_SCALES[j_best], self.trackers[j_best].used(1.0))
