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
scales identified with it, made no less cautious at any horizon than the profile's time constant with
its scales or what a vehicle never seen would be given (``RcBank.choose``). A slower one is not
credited, nor a branch below the profile's.

A pack also brings the polarisation of what it did before the session; each tracker regresses it out
as two terms decaying from its start (``RcTracker``), which costs what a steady current from the first
sample could tell (the two have the same shape there).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from edge.estimation.resistance import at_bound

# A scale for a vehicle never seen: the profile's split between instant and RC response, give or take
# half of it (read on the records: 2.6 on a pack at 0 degC, 1.5 at 8 degC, 0.5 on an aged cell).
UNKNOWN_RC_SIGMA = 0.5
# The tightest sigma a carried scale is taken at (a record's figure, not the tracker's to trust further).
CARRIED_SIGMA_MIN = 1e-3
# A vehicle's record is taken no tighter than this (RcBank): its scales were identified over other SoCs
# and temperatures, so the next session can move them (they are also forgotten as its own data are).
CARRIED_SIGMA_FLOOR = 0.1
# The regression forgets with this time constant: the RC branches change with the SoC, which the model
# does not hold (a session's two hours weigh most), and with temperature beyond the profile's law.
FORGET_TAU_S = 7200.0
# The polarisation a pack brings to the session, per branch (V per cell): mean 0, this wide (a drive's
# or a fast charge's is tens of mV; the prior only keeps the regression defined). Under one steady
# current from the session's first sample it cannot be told from the branches' response (the same
# shape): the scales then stay unknown until a step or a rest, which is the truth of it. A prior of
# 3-10 mV instead put a branch twice the profile's at the lower bound, sigma 0.12-0.27, after a
# charge that went on from before the session (docs/estimation.md, "RC identification").
W_PRIOR_PRECISION = 1.0 / 0.5**2
# Its decay below this share of where it began is taken as gone: a segment begun after that leaves
# its terms out (35 minutes with nmc-lgm50's 227 s slow branch).
Z_NEGLIGIBLE = 1e-4
# The SoP takes a branch's scale once its standard deviation is within this (the prior's half).
RC_SIGMA_CONVERGED = 0.25
# The first time constants the bank compares, over the profile's: the profile's first, then faster by
# a factor sqrt(2) each (nmc-lgm50's 26.4 s down to 4.7 s; with one sample a second a faster branch
# is mostly in the instant step, which the growth tracker prices).
TAU1_SCALES = (1.0, 0.707, 0.5, 0.354, 0.25, 0.177)
# The prior on the first time constant: log-normal about the profile's, this standard deviation (a
# factor 1.65). The profile's is its cell type's; on the records the data rarely tell the time
# constants apart (within 1-4 in log evidence over the whole grid), and the most cautious of those not
# ruled out (a flat prior) was nearly always the fastest: the charge limits' medians 13-17 points lower
# at no gain (docs/estimation.md).
TAU1_LOG_SIGMA = 0.5


@dataclass(frozen=True)
class RcEstimate:
    scale: tuple[float, float]  # R1, R2 over the filter's (the profile's at T, times the growth)
    sigma: tuple[float, float]
    upper: tuple[float, float]  # what the SoP uses
    samples: int  # held samples regressed


# The variables a segment's sums hold, in this order: -u1, -u2 (X1, X2), the polarisation a pack brought
# to the session decaying with each branch's time constant (Z1, Z2) and the voltage (Y); the pairs whose
# residual products the regression takes (``_segment_sums``), in the order of the segment's sums.
_PAIRS = (
    (0, 0),
    (0, 1),
    (1, 1),
    (0, 4),
    (1, 4),
    (2, 2),
    (2, 3),
    (3, 3),
    (0, 2),
    (0, 3),
    (1, 2),
    (1, 3),
    (2, 4),
    (3, 4),
)
_SEG_N = 13 + len(_PAIRS)


def _segment_sums(m: list[float], moved: bool) -> list[float]:
    """A segment's normal equations once its level and, where the charge ``moved``, its term in the
    charge are regressed out: ``m`` holds n, the sums of Q and QQ, of X1, X2, Z1, Z2 and Y, of Q times
    each of them, then of the products in ``_PAIRS``, over its samples. Returns those products of the
    residuals: X1X1, X1X2, X2X2, X1Y, X2Y, Z1Z1, Z1Z2, Z2Z2, X1Z1, X1Z2, X2Z1, X2Z2, Z1Y, Z2Y."""
    n, q, qq = m[0], m[1], m[2]
    sv, qv = m[3:8], m[8:13]
    det = n * qq - q * q
    # A rest (the sensor's offset is all that "flows") leaves no drift to take out, and a slow branch's
    # relaxation is nearly linear in time: taking a trend out would take most of it (a review measured
    # a 900 s rest's information on the 227 s branch cut from 58.6 to 11.2).
    if not moved or det <= 1e-12 * n * qq:
        return [m[13 + j] - sv[a] * sv[b] / n for j, (a, b) in enumerate(_PAIRS)]
    # With A = [1, Q]: S_ab - (A'a)' (A'A)^-1 (A'b) for each pair.
    return [
        m[13 + j] - (sv[a] * (qq * sv[b] - q * qv[b]) + qv[a] * (n * qv[b] - q * sv[b])) / det
        for j, (a, b) in enumerate(_PAIRS)
    ]


class RcTracker:
    """Scales of the two RC branches' resistances against the profile's (growth-scaled) values."""

    def __init__(
        self,
        *,
        tau_s: tuple[float, float],
        noise_v: float,
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
        # A pack brings the polarisation of what it did before the session (a drive, another charger):
        # the open-loop branches start at zero, so the cell holds theirs plus w_k z_k, z_k = exp(-t /
        # tau_k) from the tracker's start, with w_k unknown (regressed with the scales, each w_k's prior
        # wide: W_PRIOR_PRECISION). Read as the branches', a charge's polarisation put a fast branch
        # twice the profile's at 0.87 +/- 0.16 after 5 minutes and 1.51 +/- 0.12 after 15.
        self._z1 = self._z2 = 1.0
        # The open segment: its time, cumulative charge Q (Ah), -u (X1, X2), -z (Z1, Z2) and voltage (Y)
        # since its first sample, and the sums of their products (``_segment_sums``); the z terms only
        # while they are not negligible (``_seg_z``: all zero once they are).
        self._seg_t_s = 0.0
        self._q = self._x1 = self._x2 = self._zc1 = self._zc2 = self._y = 0.0
        self._m = [1.0] + [0.0] * (_SEG_N - 1)  # the origin sample: all zero
        self._seg_z = True
        self._moved = False  # a current above the rest current flowed in the open segment
        # Closed segments' normal equations (the residual products of ``_segment_sums``) over the noise
        # variance, as of ``_s_t_s`` on the tracker's clock ``_t_s`` (forgotten lazily: ``_closed_now``).
        self._s = [0.0] * len(_PAIRS)
        self._t_s = self._s_t_s = 0.0
        self._dt_cached = -1.0
        self._a = (0.0, 0.0)
        self.samples = 0
        self._sums_cache: tuple[tuple[float, int, list[float]], list[float]] | None = None

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
        z1, z2 = self._z1, self._z2
        self._z1 = a1 * z1
        self._z2 = a2 * z2
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
        m[2] += q * q
        m[3] += x1
        m[4] += x2
        m[7] += y
        m[8] += q * x1
        m[9] += q * x2
        m[12] += q * y
        m[13] += x1 * x1
        m[14] += x1 * x2
        m[15] += x2 * x2
        m[16] += x1 * y
        m[17] += x2 * y
        if self._seg_z:
            c1 = self._zc1 = self._zc1 - (self._z1 - z1)
            c2 = self._zc2 = self._zc2 - (self._z2 - z2)
            m[5] += c1
            m[6] += c2
            m[10] += q * c1
            m[11] += q * c2
            m[18] += c1 * c1
            m[19] += c1 * c2
            m[20] += c2 * c2
            m[21] += x1 * c1
            m[22] += x1 * c2
            m[23] += x2 * c1
            m[24] += x2 * c2
            m[25] += c1 * y
            m[26] += c2 * y
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
        self._q = self._x1 = self._x2 = self._zc1 = self._zc2 = self._y = 0.0
        self._m = [1.0] + [0.0] * (_SEG_N - 1)  # the origin sample: all zero
        self._seg_z = max(self._z1, self._z2) > Z_NEGLIGIBLE
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
        same samples (the voltages' own sum of squares, the priors'): with ``A`` the posterior's
        precision and ``r`` its right-hand side over the scales and the brought polarisation,
        ``r' A^-1 r / 2 - log det A / 2``."""
        (a, b, d, r1, r2), (w_quad, w_logdet) = self._marginal(0.0)
        det = a * d - b * b
        quad = (d * r1 * r1 - 2.0 * b * r1 * r2 + a * r2 * r2) / det
        return 0.5 * (quad + w_quad) - 0.5 * (math.log(det) + w_logdet)

    def used(self, carried: bool = True) -> tuple[float, float]:
        """What the SoP may take of each branch: of this estimate and the one without the carried
        scales (only the latter where not ``carried``), the larger upper bound among those converged
        (within RC_SIGMA_CONVERGED); never below the profile's split, 1 (a branch identified below it
        is not credited). A record thus only adds (a stored 0.98 held a cell at 3 to 1.69 for its
        first minutes, review)."""
        used = [1.0, 1.0]
        for est in (self.estimate, self.unseen) if carried else (self.unseen,):
            for j in (0, 1):
                if est.sigma[j] <= RC_SIGMA_CONVERGED:
                    used[j] = max(used[j], est.upper[j] if math.isfinite(est.upper[j]) else self.bounds[1])
        return used[0], used[1]

    def converged(self, carried: bool = True) -> bool:
        """Whether the fast branch's scale is known within RC_SIGMA_CONVERGED (with or without the
        carried scales); a non-finite sigma is not."""
        sigma = min(self.estimate.sigma[0], self.unseen.sigma[0]) if carried else self.unseen.sigma[0]
        return sigma <= RC_SIGMA_CONVERGED

    def _sums(self) -> list[float]:
        """The normal equations of the closed segments, forgotten up to now, and of the open one
        (kept until the next sample: the bank's choice reads them a dozen times)."""
        key = (self._t_s, self.samples, self._s)
        cached = self._sums_cache
        if cached is not None and cached[0][:2] == key[:2] and cached[0][2] is self._s:
            return cached[1]
        s = self._closed_now()
        if self._m[0] >= 2.0:
            w = 1.0 / self.noise_var
            for j, v in enumerate(_segment_sums(self._m, self._moved)):
                s[j] += w * v
        self._sums_cache = (key, s)
        return s

    def _marginal(
        self, carried_weight: float
    ) -> tuple[tuple[float, float, float, float, float], tuple[float, float]]:
        """The posterior's precision (a, b, d) and right-hand side (r1, r2) for the two scales, the
        brought polarisation's w1, w2 marginalised out (their Schur complement), and that block's own
        terms of the log evidence: r_w' A_ww^-1 r_w and log det A_ww."""
        s = self._sums()
        p = self.prior_precision
        (c1, m1), (c2, m2) = self._carried
        c1 *= carried_weight
        c2 *= carried_weight
        # The profile's split, 1, is the scales' prior mean; the polarisation's is 0.
        w11, w12, w22 = W_PRIOR_PRECISION + s[5], s[6], W_PRIOR_PRECISION + s[7]
        det_w = w11 * w22 - w12 * w12
        x1z1, x1z2, x2z1, x2z2 = s[8], s[9], s[10], s[11]
        rw1, rw2 = s[12], s[13]
        # M = A_hw A_ww^-1
        m11 = (x1z1 * w22 - x1z2 * w12) / det_w
        m12 = (x1z2 * w11 - x1z1 * w12) / det_w
        m21 = (x2z1 * w22 - x2z2 * w12) / det_w
        m22 = (x2z2 * w11 - x2z1 * w12) / det_w
        a = p + c1 + s[0] - (m11 * x1z1 + m12 * x1z2)
        b = s[1] - (m11 * x2z1 + m12 * x2z2)
        d = p + c2 + s[2] - (m21 * x2z1 + m22 * x2z2)
        r1 = p + c1 * m1 + s[3] - (m11 * rw1 + m12 * rw2)
        r2 = p + c2 * m2 + s[4] - (m21 * rw1 + m22 * rw2)
        w_quad = (w22 * rw1 * rw1 - 2.0 * w12 * rw1 * rw2 + w11 * rw2 * rw2) / det_w
        return (a, b, d, r1, r2), (w_quad, math.log(det_w))

    def _solve(self, carried_weight: float) -> RcEstimate:
        (a, b, d, r1, r2), _ = self._marginal(carried_weight)
        det = a * d - b * b  # > 0: the priors make the precision positive definite
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
    the two branches' scales (``RcBank.choose``)."""

    tau1_scale: float
    used: tuple[float, float]


@dataclass(frozen=True)
class FastBranch:
    """A faster first time constant than the profile's (``tau1_scale`` times it) that a vehicle's
    sessions favoured, its tracker's scales and their sigmas, and the log odds of the sessions' data
    for it over the profile's (the evidence's, not the prior's)."""

    tau1_scale: float
    scale: tuple[float, float]
    sigma: tuple[float, float]
    log_odds: float

    def __post_init__(self) -> None:
        if not (
            0.0 < self.tau1_scale < 1.0
            and all(math.isfinite(x) and x > 0.0 for x in (*self.scale, *self.sigma))
            and math.isfinite(self.log_odds)
            and self.log_odds >= 0.0
        ):
            raise ValueError(
                f"fast branch at time constant x{self.tau1_scale}, scales {self.scale} +/- {self.sigma},"
                f" log odds {self.log_odds}: a time constant in (0, 1), positive finite scales and"
                " finite odds >= 0 expected"
            )


class RcBank:
    """``RcTracker``s to be fed the same samples (``trackers``), one per first time constant in
    ``TAU1_SCALES`` (times the profile's ``tau_s[0]``), for a profile whose branches are ``r_ohm``
    (the growth and the temperature scale both alike, so the profile's values are what ``choose``
    weighs)."""

    def __init__(
        self,
        *,
        tau_s: tuple[float, float],
        r_ohm: tuple[float, float],
        noise_v: float,
        carried: tuple[tuple[float, float], tuple[float, float]] | None = None,
        carried_fast: FastBranch | None = None,
    ) -> None:
        # A record's scales at the profile's time constant go to that tracker (so a known vehicle's
        # branches are priced from its first sample, whatever the time constants do); those at a
        # faster one to its tracker alone (one of another grid, from another release, to none), with
        # the odds its sessions gave it, added to its prior and forgotten as the scales are.
        self._fast_j = -1
        if carried_fast is not None:
            for j, m in enumerate(TAU1_SCALES[1:], start=1):
                if abs(math.log(m / carried_fast.tau1_scale)) < 0.01:
                    self._fast_j = j

        def floored(
            scales: tuple[tuple[float, float], tuple[float, float]],
        ) -> tuple[tuple[float, float], tuple[float, float]]:
            sigma = scales[1]
            return scales[0], (max(sigma[0], CARRIED_SIGMA_FLOOR), max(sigma[1], CARRIED_SIGMA_FLOOR))

        per_tracker: list[tuple[tuple[float, float], tuple[float, float]] | None] = [None] * len(TAU1_SCALES)
        if carried is not None:
            per_tracker[0] = floored(carried)
        if carried_fast is not None and self._fast_j > 0:
            per_tracker[self._fast_j] = floored((carried_fast.scale, carried_fast.sigma))
        self.trackers = tuple(
            RcTracker(tau_s=(tau_s[0] * m, tau_s[1]), noise_v=noise_v, carried=c)
            for m, c in zip(TAU1_SCALES, per_tracker, strict=True)
        )
        self._fast_odds = 0.0
        if carried_fast is not None and math.isfinite(carried_fast.log_odds):
            self._fast_odds = carried_fast.log_odds
        self.tau_s = tau_s
        self.r_ohm = r_ohm

    @property
    def profile(self) -> RcTracker:
        """The tracker at the profile's time constants."""
        return self.trackers[0]

    def _log_odds(self, carried: bool = True) -> list[float]:
        """Per time constant of TAU1_SCALES the log odds of the data for it over the profile's: the
        session's evidence and, where ``carried``, what is left of a record's odds; a non-finite
        evidence reads as impossible."""
        evidence = [t.log_evidence() for t in self.trackers]
        out = []
        for j, (t, ev) in enumerate(zip(self.trackers, evidence, strict=True)):
            odds = ev - evidence[0] if math.isfinite(ev) and math.isfinite(evidence[0]) else -math.inf
            if j == 0:
                odds = 0.0
            elif j == self._fast_j and carried:
                odds += self._fast_odds * t.carried_weight()
            out.append(odds)
        return out

    def _log_posterior(self, carried: bool) -> list[float]:
        """Per time constant of TAU1_SCALES its log posterior over the profile's: the data's odds and
        the prior ``tau1_log_prior``."""
        odds = self._log_odds(carried)
        return [o + tau1_log_prior(m) for m, o in zip(TAU1_SCALES, odds, strict=True)]

    def _most_probable(self, carried: bool) -> int:
        """The index of the most probable time constant among the profile's and the faster ones whose
        fast branch has converged."""
        j_best, p_best = 0, -math.inf
        for j, (t, post) in enumerate(zip(self.trackers, self._log_posterior(carried), strict=True)):
            if j and not t.converged(carried):
                continue
            if post > p_best:
                j_best, p_best = j, post
        return j_best

    def _candidates(self) -> tuple[int, int]:
        """The indices of the most probable time constant, and of what the same data give a vehicle
        never seen (without the record's odds and scales). The SoP takes the faster of the two (the
        larger index: TAU1_SCALES falls)."""
        return self._most_probable(carried=True), self._most_probable(carried=False)

    def fast(self) -> FastBranch | None:
        """What to keep of a faster time constant: the one the SoP takes (``_candidates``), where that is
        a faster one with finite scales (None otherwise); a scale held at a bound with the unknown
        vehicle's sigma (the clamp's value, not the data's)."""
        j = max(self._candidates())
        t = self.trackers[j]
        e = t.estimate
        odds = self._log_odds()[j]
        if j == 0 or not all(math.isfinite(x) for x in (*e.scale, *e.sigma, odds)):
            return None
        sigma = tuple(
            max(e.sigma[b], UNKNOWN_RC_SIGMA) if at_bound(e.scale[b], t.bounds) else e.sigma[b]
            for b in (0, 1)
        )
        return FastBranch(TAU1_SCALES[j], e.scale, (sigma[0], sigma[1]), max(odds, 0.0))

    def choose(self, horizons_s: Sequence[float]) -> RcChoice:
        """What the SoP takes: the most probable time constant (``_most_probable``: the evidence, the
        prior ``tau1_log_prior`` and a record's odds) with its tracker's scales (``RcTracker.used``),
        none below the profile's split (1: a branch identified below it is not credited; on the NCA
        pack with a built profile, nca20, the credit raised the model's 10 s discharge limit from +6.4
        to +7.7 % over the truth: docs/estimation.md, "RC identification"); and no less cautious than
        the profile's time constant with its tracker's scales, nor than what the same data give a
        vehicle never seen (its most probable without the record): the faster of the two time
        constants, the scales raised so that at no horizon of ``horizons_s`` the branches give less
        resistance than any of the three. The most probable is not the most cautious: where the
        evidence is split, a faster time constant with a lower scale put a 30 s charge limit 6-11 %
        over the cell's own for minutes, and a record's odds for a faster one 13 % over (review).
        The kernel relaxes what the fast branch holds at whichever time constant, the SoP's or the
        profile's, is the more cautious."""
        j, never_seen = self._candidates()
        references = [
            (TAU1_SCALES[j], self.trackers[j].used()),
            (1.0, self.profile.used()),
            (TAU1_SCALES[never_seen], self.trackers[never_seen].used(carried=False)),
        ]
        # The fastest of the time constants (TAU1_SCALES falls with the index): with scales that cover
        # each at every horizon, what the branch already holds also relaxes at the most cautious of
        # them (the kernel takes the more cautious of this and the profile's, and the relaxation is
        # monotonic in the time constant).
        m = TAU1_SCALES[max(j, never_seen)]
        h1, h2 = references[0][1]
        h2 = max(h2, *(ref[1][1] for ref in references))  # the slow branch's time constant is every tracker's
        r1, r2 = self.r_ohm
        tau1, tau2 = self.tau_s
        for h in horizons_s:
            if h <= 0.0 or r1 <= 0.0:
                continue
            rise = r1 * (1.0 - math.exp(-h / (tau1 * m)))
            for m_ref, (g1, g2) in references:
                want = g1 * r1 * (1.0 - math.exp(-h / (tau1 * m_ref))) + (g2 - h2) * r2 * (
                    1.0 - math.exp(-h / tau2)
                )
                h1 = max(h1, want / rise)
        return RcChoice(m, (h1, h2))
