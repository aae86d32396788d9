"""Pure-Python reference of the battery equivalent-circuit kernel (see ext/ecm.pyx; same maths, same order).

One cell of the pack is modelled as OCV(SoC, T) in series with R0, a Butler-Volmer kinetic term and two
RC branches (the Thevenin model with a nonlinear charge-transfer element). An extended Kalman filter
tracks ``x = [soc, v1, v2, b]`` (b: the current sensor's offset); the state of power (SoP) is the
largest constant current the same model allows over a horizon within the cell voltage limits and the
electrolyte's (where the profile gives it), the SoC window and the temperature-derated current rating.

The OCV table's own error is a bias, not white noise: many readings of a table that is off by a few mV
in a flat region must not add up to a confident, wrong SoC. So each reading counts the table's error
once in its variance, and once the filter knows the SoC better than the table's error allows at the
local slope, the voltage stops moving the SoC (a consider state): in LFP's plateau Coulomb counting
carries the SoC, at the sloped ends and steep NMC regions the voltage still corrects it.

Everything is per cell (pack voltage / series, pack current / parallel) and positive current is
discharge. The kernel never reads a clock: the caller passes the elapsed time. State, parameters and
outputs live in flat float64 arrays laid out by the index constants below so the compiled kernel can
work on them in place without allocating. They and the numeric constants below are the one declaration:
ext/ecm_layout.pxi gives them to the compiled kernel (``python -m ext.gen_layouts --write``).
"""

from __future__ import annotations

import math
from collections.abc import MutableSequence, Sequence
from typing import Final

# State array layout: x = [soc, v1, v2, b] with b the current sensor's offset (measured - true, A);
# P the symmetric 4x4 covariance, upper triangle.
S_SOC: Final = 0
S_V1: Final = 1
S_V2: Final = 2
S_B: Final = 3
S_P00: Final = 4
S_P01: Final = 5
S_P02: Final = 6
S_P03: Final = 7
S_P11: Final = 8
S_P12: Final = 9
S_P13: Final = 10
S_P22: Final = 11
S_P23: Final = 12
S_P33: Final = 13
S_I_PREV: Final = 14  # measured current held since the previous sample (zero-order hold), A
S_INNOV: Final = 15  # last voltage innovation, V
S_NIS: Final = 16  # last normalised innovation squared (before gating)
S_V_PRED: Final = 17  # last predicted terminal voltage, V
S_OCV: Final = 18  # OCV at the updated state (the table's and the hysteresis), V
S_VFREE_PRIOR: Final = 19  # OCV - v1 - v2 of the predicted state (before the update), V
S_VFREE_POST: Final = 20  # OCV - v1 - v2 of the updated state, V
# Smoothed voltage innovation, V: what the voltage shows beyond the model, mostly the table's error
# once the SoC no longer follows it. The SoP takes it where it lowers a limit (see sop).
S_OCV_OFS: Final = 21
# The electrolyte's memory, per way (discharge, charge), A per cell (>= 0): the current whose steady
# depletion the electrolyte may still hold, at least the current held over the last interval. A
# current that falls leaves its depletion behind, whose excess relaxes over the steady time
# P_ELEC_T_EQ_S; the electrolyte's limit counts it spent (hold_depletion).
S_ELEC_DIS: Final = 22
S_ELEC_CHG: Final = 23
S_N: Final = 24

# Parameter array layout.
P_Q_AH: Final = 0  # capacity used by the filter, Ah
P_R0: Final = 1  # ohmic resistance at T_ref, ohm
P_R1: Final = 2  # first RC branch: resistance (ohm) and time constant (s)
P_TAU1: Final = 3
P_R2: Final = 4  # second RC branch
P_TAU2: Final = 5
P_EA_R: Final = 6  # Arrhenius activation energy / gas constant of R0, R1, R2, K (0: independent of T)
P_TREF_K: Final = 7  # reference temperature of the resistances and exchange currents, K
P_R_GROWTH: Final = 8  # resistance growth g: the instant step resistance is g times the new cell's (1.0 new)
P_GROWTH_OHMIC: Final = 9  # share of the growth taken as added series resistance (0..1); the rest scales all
P_I0_A: Final = 10  # exchange currents of the two Butler-Volmer terms, A per cell at T_ref (0: no term)
P_I0_B: Final = 11
P_EA_I0_R: Final = 12  # Arrhenius activation energy / gas constant of the exchange currents, K
P_Q_SOC: Final = 13  # process noise of soc, 1/s
P_Q_V1: Final = 14  # process noise of v1 and v2, V^2/s
P_Q_V2: Final = 15
P_R_V: Final = 16  # voltage measurement noise, V^2
P_GATE: Final = 17  # innovations beyond GATE sigmas are de-weighted to GATE sigmas
P_V_MIN: Final = 18  # cell voltage limits, V
P_V_MAX: Final = 19
P_I_DIS_MAX: Final = 20  # cell current ratings, A (magnitudes)
P_I_CHG_MAX: Final = 21
P_SOC_MIN: Final = 22  # SoC window for the SoP
P_SOC_MAX: Final = 23
P_DIS_T0: Final = 24  # discharge derating: 0 below T0, ramps to 1 at T1, 1 up to T2, ramps to 0 at T3 (degC)
P_DIS_T1: Final = 25
P_DIS_T2: Final = 26
P_DIS_T3: Final = 27
P_CHG_T0: Final = 28  # charge derating, same shape
P_CHG_T1: Final = 29
P_CHG_T2: Final = 30
P_CHG_T3: Final = 31
P_SOP_GROWTH: Final = 32  # growth used for the SoP: an upper bound while the growth is uncertain
P_Q_B: Final = 33  # process noise of the current offset (random walk), A^2/s; 0 with P33 = 0: no offset state
# variance of the OCV table's error at the present temperature, V^2 (see the module doc)
P_OCV_VAR: Final = 34
# Relative error of the modelled overpotential (ohmic, kinetic, RC): the voltage under load tells the
# OCV only to within this share of the drop the model puts between them (diffusion, electrolyte and
# temperature effects the ECM does not hold); its square times the drop squared adds to P_R_V.
P_OVERPOT_REL: Final = 35
P_OFS_TAU_S: Final = 36  # time constant of the smoothed voltage innovation (S_OCV_OFS), s
# variance of the OCV table's error along its SoC axis (a knee another cell puts a few points away), 1
P_OCV_SOC_VAR: Final = 37
# Diffusion time of the electrodes' particles, R^2/D, s (0: none). In a pulse the particles' surface
# leads their bulk (see surface_lead_s); where the table is steep (LFP's knees, any cell near empty) the
# surface's OCV runs ahead of the bulk's and the pulse's limit comes far sooner than the bulk SoC says.
P_DIFF_TAU_S: Final = 38
# The table's slope at which the RC branches already hold that lead (fitted where most records sit:
# the table's median slope over the SoC window), V per unit SoC. Only the excess of the table's own
# change over this is added (see _surface_overpotential).
P_OCV_SLOPE_REF: Final = 39
# The OCV's hysteresis now, V: the cell's OCV is the table's plus this (LFP's branches lie about 20 mV
# apart, either side of the mean, after a charge or a discharge). The estimator carries the hysteresis
# state and sets this every sample; the SoP takes it only where it brings a limit nearer (see sop).
P_HYST_V: Final = 40
# Half the branches' gap, V (P_HYST_V is this times the state, -1..1), and how fast a current moves
# the state to its branch, per unit SoC: the SoP prices the move a pulse makes.
P_HYST_M: Final = 41
P_HYST_RATE: Final = 42
# The electrolyte's limit on a pulse (Sand's time: a current I depletes the electrolyte at an electrode
# after (K / I)^2, and the voltage runs away), A s^0.5 per cell at the SoP's temperature (0: none), and
# the time whose depletion equals that of a current held until its concentration profile is steady,
# s, at that temperature: a current already flowing has spent that much of the budget (electrolyte_cap).
P_ELEC_K: Final = 43
P_ELEC_T_EQ_S: Final = 44
# The SoP's RC branch resistances over the coefficients' (the growth's scaling of the profile): 1 until
# the estimator's RC identification has converged, then its upper bound (edge/estimation/rc.py).
P_SOP_RC1: Final = 45
P_SOP_RC2: Final = 46
# The SoP's first time constant over the profile's (P_TAU1): 1 until the RC identification finds the
# fast branch faster (edge/estimation/rc.py, RcBank). What the branch holds relaxes at the more cautious
# of the two; the charge power is priced at the lower voltage of both (``sop``).
P_SOP_TAU1: Final = 47
P_N: Final = 48

# SoP output layout, per horizon.
O_I_DIS_V: Final = 0  # discharge current the model allows (voltage limit, electrolyte), A
O_I_CHG_V: Final = 1  # charge current magnitude the model allows, A
O_I_DIS: Final = 2  # discharge current within voltage, SoC window and derated rating, A
O_I_CHG: Final = 3
O_P_DIS: Final = 4  # cell power at the end of the horizon at O_I_DIS, W (>= 0)
O_P_CHG: Final = 5  # cell power magnitude at the end of the horizon at O_I_CHG, W (>= 0)
O_N: Final = 6

# Model coefficients at one (soc, T), see coefficients().
C_R0: Final = 0
C_R1: Final = 1
C_R2: Final = 2
C_I0A: Final = 3
C_I0B: Final = 4
C_RT: Final = 5  # 2 R T / F, V
C_RSS_NEW: Final = 6  # small-signal resistance to an instant current step, new cell (R0 + kinetics), ohm
# The SoP prices its charge power with a second set (C_R0 .. C_RSS_NEW from here on): the coefficients at
# the filter's growth, without the SoP's bounds (see sop). ``coefficients`` writes both alike.
C_POW: Final = 7
C_N: Final = 14

# Every index constant above (S_, P_, O_, C_ and their _N sizes) in declaration order: what
# ext/gen_layouts.py writes into the compiled kernel, and what its layout() must return.
LAYOUT: Final[dict[str, int]] = {
    name: value
    for name, value in globals().items()
    if name.startswith(("S_", "P_", "O_", "C_")) and type(value) is int
}

KELVIN: Final = 273.15
TWO_R_OVER_F: Final = 2.0 * 8.314462618 / 96485.33212  # V/K
NEWTON_ITERATIONS: Final = 8
SLOPE_SPAN_MIN: Final = 1e-3  # SoC sigma below which the filter takes the OCV's slope at the point
NEWTON_TOL_V: Final = 1e-4  # stop once the pulse ends within 0.1 mV of the limit (~0.01 % of the current)


def _segment(n: int, soc: float) -> int:
    return min(max(math.floor(soc * (n - 1)), 0), n - 2)


def ocv_lookup(table: Sequence[float], soc: float, temp_c: float) -> float:
    """OCV at ``soc`` and ``temp_c`` from the uniform table (see :func:`coefficients` for its layout).

    Outside 0..1 the end segments are extended linearly so the filter keeps a gradient.
    """
    n = len(table) // 3
    k = _segment(n, soc)
    w = soc * (n - 1) - k
    v = table[k] + (table[k + 1] - table[k]) * w
    d = table[n + k] + (table[n + k + 1] - table[n + k]) * w
    return v + d * (temp_c - 25.0)


def ocv_slope(table: Sequence[float], soc: float, temp_c: float) -> float:
    """dOCV/dsoc of the table at ``soc`` (the slope of the segment ``soc`` falls in)."""
    n = len(table) // 3
    k = _segment(n, soc)
    s = table[k + 1] - table[k]
    d = table[n + k + 1] - table[n + k]
    return (s + d * (temp_c - 25.0)) * (n - 1)


def ocv_inverse(table: Sequence[float], soc: float, v: float, temp_c: float, sign: float) -> float:
    """The nearest SoC beyond ``soc`` (above it for ``sign`` < 0, below for > 0, the sign of a current
    that moves the SoC that way) where the table reads ``v``: segments walked from ``soc``'s, ends
    extended linearly as ocv_lookup does; ``soc`` itself if the table never reaches ``v`` that way.
    """
    n = len(table) // 3
    dt = temp_c - 25.0
    k = _segment(n, soc)
    while 0 <= k <= n - 2:
        a = table[k] + table[n + k] * dt
        b = table[k + 1] + table[n + k + 1] * dt
        last = k == n - 2 if sign < 0.0 else k == 0
        inside = (v <= b or last) if sign < 0.0 else (v >= a or last)
        if b > a and inside:
            x = (k + (v - a) / (b - a)) / (n - 1)
            return max(x, soc) if sign < 0.0 else min(x, soc)
        k = k + 1 if sign < 0.0 else k - 1
    return soc


def surface_lead_s(horizon_s: float, tau_s: float) -> float:
    """Seconds of current by which the particles' surface SoC leads their bulk at the end of a constant
    pulse of ``horizon_s`` (spherical diffusion of time ``tau_s`` = R^2/D: (2/3) sqrt(tau H / pi) while
    H is short, at most its steady lead tau / 15)."""
    if tau_s <= 0.0:
        return 0.0
    return min(2.0 / 3.0 * math.sqrt(tau_s * horizon_s / math.pi), tau_s / 15.0)


def derate(temp_c: float, t0: float, t1: float, t2: float, t3: float) -> float:
    """Trapezoid 0 -> 1 -> 0 over ``t0 <= t1 <= t2 <= t3`` (degC)."""
    if temp_c <= t0 or temp_c >= t3:
        return 0.0
    if temp_c < t1:
        return (temp_c - t0) / (t1 - t0)
    if temp_c > t2:
        return (t3 - temp_c) / (t3 - t2)
    return 1.0


def _coefficient_set(  # noqa: PLR0917 - the kernel's numeric signature, mirrored in ext/ecm.pyx
    params: Sequence[float],
    table: Sequence[float],
    soc: float,
    temp_c: float,
    g: float,
    c: MutableSequence[float],
    at: int,
) -> None:
    """Model coefficients at ``soc``, ``temp_c`` and resistance growth ``g`` into ``c[at:]`` (layout C_*).

    ``table`` holds three uniform columns over soc 0..1: OCV at 25 degC, dOCV/dT, and the relative
    exchange current (1.0 where the kinetics do not depend on SoC). Growth ``g`` with ohmic share
    ``w``: R0, R1, R2 and 1/I0 scale by ``1 + (1 - w)(g - 1)`` and ``w (g - 1)`` times the new cell's
    small-signal instant step resistance (R0 + kinetics) is added in series, so that resistance is
    exactly ``g`` times the new cell's whatever ``w`` is; ``w`` only says how the growth extrapolates
    to large currents (series resistance does not flatten with current, kinetics do). A growth below
    1 (a cell better than the profile) scales everything.
    """
    n = len(table) // 3
    k = _segment(n, soc)
    w = soc * (n - 1) - k
    kin = table[2 * n + k] + (table[2 * n + k + 1] - table[2 * n + k]) * w
    t_k = temp_c + KELVIN
    f_t = math.exp(params[P_EA_R] * (1.0 / t_k - 1.0 / params[P_TREF_K]))
    f_i0 = kin * math.exp(-params[P_EA_I0_R] * (1.0 / t_k - 1.0 / params[P_TREF_K]))
    rt = TWO_R_OVER_F * t_k
    r0 = params[P_R0] * f_t
    r1 = params[P_R1] * f_t
    r2 = params[P_R2] * f_t
    i0a = params[P_I0_A] * f_i0
    i0b = params[P_I0_B] * f_i0
    rss = r0
    if i0a > 0.0:
        rss = rss + 0.5 * rt / i0a
    if i0b > 0.0:
        rss = rss + 0.5 * rt / i0b
    if g >= 1.0:
        gm = 1.0 + (1.0 - params[P_GROWTH_OHMIC]) * (g - 1.0)
        added = params[P_GROWTH_OHMIC] * (g - 1.0) * rss
    else:
        # A cell better than the profile: everything scales (a negative series term would be absurd).
        gm = g
        added = 0.0
    c[at + C_R0] = r0 * gm + added
    c[at + C_R1] = r1 * gm
    c[at + C_R2] = r2 * gm
    c[at + C_I0A] = i0a / gm
    c[at + C_I0B] = i0b / gm
    c[at + C_RT] = rt
    c[at + C_RSS_NEW] = rss


def coefficients(  # noqa: PLR0917 - the kernel's numeric signature, mirrored in ext/ecm.pyx
    params: Sequence[float],
    table: Sequence[float],
    soc: float,
    temp_c: float,
    g: float,
    c: MutableSequence[float],
) -> None:
    """Model coefficients at ``soc``, ``temp_c`` and resistance growth ``g`` into ``c`` (layout C_*),
    the charge power's pricing set (C_POW) alike (see ``_coefficient_set``)."""
    _coefficient_set(params, table, soc, temp_c, g, c, 0)
    for j in range(C_POW):
        c[C_POW + j] = c[j]


def sop_coefficients(
    params: Sequence[float], table: Sequence[float], soc: float, temp_c: float, c: MutableSequence[float]
) -> None:
    """The SoP's coefficients: at the SoP's growth, its RC branches scaled as identified; the charge
    power's pricing set at the filter's growth, the profile's branches."""
    _coefficient_set(params, table, soc, temp_c, params[P_R_GROWTH], c, C_POW)
    _coefficient_set(params, table, soc, temp_c, params[P_SOP_GROWTH], c, 0)
    c[C_R1] = c[C_R1] * params[P_SOP_RC1]
    c[C_R2] = c[C_R2] * params[P_SOP_RC2]


def kinetic_overpotential(c: Sequence[float], i_a: float) -> float:
    """Butler-Volmer overpotential of both terms at current ``i_a`` (same sign as ``i_a``), V."""
    eta = 0.0
    if c[C_I0A] > 0.0:
        eta = eta + c[C_RT] * math.asinh(i_a / (2.0 * c[C_I0A]))
    if c[C_I0B] > 0.0:
        eta = eta + c[C_RT] * math.asinh(i_a / (2.0 * c[C_I0B]))
    return eta


def kinetic_slope(c: Sequence[float], i_a: float) -> float:
    """d(overpotential)/di at ``i_a``, ohm."""
    d = 0.0
    if c[C_I0A] > 0.0:
        d = d + c[C_RT] / math.sqrt(4.0 * c[C_I0A] * c[C_I0A] + i_a * i_a)
    if c[C_I0B] > 0.0:
        d = d + c[C_RT] / math.sqrt(4.0 * c[C_I0B] * c[C_I0B] + i_a * i_a)
    return d


def predict(
    state: MutableSequence[float],
    params: Sequence[float],
    c: Sequence[float],
    dt_s: float,
) -> None:
    """Advance the state and its covariance by ``dt_s`` under the held current ``state[S_I_PREV]``.

    ``c`` are the coefficients at the state's soc and the temperature over the interval. The true
    current is the measured one less the offset state, so F couples every state to the offset.
    """
    if dt_s <= 0.0:
        return
    i = state[S_I_PREV] - state[S_B]
    a1 = math.exp(-dt_s / params[P_TAU1])
    a2 = math.exp(-dt_s / params[P_TAU2])
    beta = dt_s / (3600.0 * params[P_Q_AH])
    g1 = -c[C_R1] * (1.0 - a1)
    g2 = -c[C_R2] * (1.0 - a2)
    state[S_SOC] = state[S_SOC] - i * beta
    state[S_V1] = a1 * state[S_V1] - g1 * i
    state[S_V2] = a2 * state[S_V2] - g2 * i
    # P' = F P F^T + Q with F = [[1, 0, 0, beta], [0, a1, 0, g1], [0, 0, a2, g2], [0, 0, 0, 1]]:
    # first M = F P (rows m0..m3, m3 = P's last row), then P' = M F^T.
    p00, p01, p02, p03 = state[S_P00], state[S_P01], state[S_P02], state[S_P03]
    p11, p12, p13 = state[S_P11], state[S_P12], state[S_P13]
    p22, p23, p33 = state[S_P22], state[S_P23], state[S_P33]
    m00 = p00 + beta * p03
    m01 = p01 + beta * p13
    m02 = p02 + beta * p23
    m03 = p03 + beta * p33
    m11 = a1 * p11 + g1 * p13
    m12 = a1 * p12 + g1 * p23
    m13 = a1 * p13 + g1 * p33
    m22 = a2 * p22 + g2 * p23
    m23 = a2 * p23 + g2 * p33
    state[S_P00] = m00 + beta * m03 + params[P_Q_SOC] * dt_s
    state[S_P01] = a1 * m01 + g1 * m03
    state[S_P02] = a2 * m02 + g2 * m03
    state[S_P03] = m03
    state[S_P11] = a1 * m11 + g1 * m13 + params[P_Q_V1] * dt_s
    state[S_P12] = a2 * m12 + g2 * m13
    state[S_P13] = m13
    state[S_P22] = a2 * m22 + g2 * m23 + params[P_Q_V2] * dt_s
    state[S_P23] = m23
    state[S_P33] = p33 + params[P_Q_B] * dt_s


def correct(  # noqa: PLR0917 - the kernel's numeric signature, mirrored in ext/ecm.pyx
    state: MutableSequence[float],
    params: Sequence[float],
    table: Sequence[float],
    c: Sequence[float],
    i_a: float,
    v_v: float,
    temp_c: float,
) -> None:
    """Kalman update with one terminal-voltage measurement ``v_v`` taken at measured current ``i_a``."""
    soc = state[S_SOC]
    i = i_a - state[S_B]
    # The OCV's slope over the SoC's own uncertainty (statistical linearisation), not at the point:
    # a wide SoC spans several segments of the table, and the point slope would read a kink the
    # estimate happens to sit on as information it is not.
    w = math.sqrt(state[S_P00])
    if w > SLOPE_SPAN_MIN:
        h0 = (ocv_lookup(table, soc + w, temp_c) - ocv_lookup(table, soc - w, temp_c)) / (2.0 * w)
    else:
        h0 = ocv_slope(table, soc, temp_c)
    hb = c[C_R0] + kinetic_slope(c, i)  # dV/db: a larger offset means less true current
    ocv = ocv_lookup(table, soc, temp_c) + params[P_HYST_V]
    v_pred = ocv - state[S_V1] - state[S_V2] - c[C_R0] * i - kinetic_overpotential(c, i)
    innov = v_v - v_pred
    state[S_VFREE_PRIOR] = ocv - state[S_V1] - state[S_V2]
    ph0 = state[S_P00] * h0 - state[S_P01] - state[S_P02] + state[S_P03] * hb
    ph1 = state[S_P01] * h0 - state[S_P11] - state[S_P12] + state[S_P13] * hb
    ph2 = state[S_P02] * h0 - state[S_P12] - state[S_P22] + state[S_P23] * hb
    ph3 = state[S_P03] * h0 - state[S_P13] - state[S_P23] + state[S_P33] * hb
    drop = params[P_OVERPOT_REL] * (
        abs(c[C_R0] * i + kinetic_overpotential(c, i)) + abs(state[S_V1]) + abs(state[S_V2])
    )
    # The table's error along its SoC axis shows in volts in proportion to the slope: at a knee it
    # dwarfs the plateau's few mV, and a reading there tells the SoC to within the knee's position.
    ocv_var = params[P_OCV_VAR] + h0 * h0 * params[P_OCV_SOC_VAR]
    s = h0 * ph0 - ph1 - ph2 + hb * ph3 + params[P_R_V] + ocv_var + drop * drop
    nis = innov * innov / s
    gate = params[P_GATE]
    if nis > gate * gate:
        # A far-off measurement (spike, model error, wrong initial SoC) moves the state by at most
        # GATE sigmas per sample instead of all the way.
        s = innov * innov / (gate * gate)
    # The table's error is the same at the next reading: once the filter knows the SoC better than
    # that error allows at this slope, the voltage no longer moves the SoC (Schmidt's consider
    # update), or repeated readings would average a bias away as if it were noise. For the same
    # reason the readings before that point cannot take the SoC's variance below what one reading
    # of the table tells (its error over the slope): on LFP's plateau the first readings took it
    # there several times over and a wrong start stayed outside its band for hours. The floor's
    # slope is over the prior's wide band, the next consider test's over the floored one: on a
    # plateau the SoC moves once or twice and is then held; where the slope steepens (a knee) the
    # readings move it again, down to one reading's variance at most.
    consider = state[S_P00] * h0 * h0 < ocv_var
    _update(state, ph0, ph1, ph2, ph3, s, innov, consider)
    if not consider and ocv_var > 0.0:  # then h0 != 0: P00 h0^2 >= ocv_var > 0
        state[S_P00] = max(state[S_P00], ocv_var / (h0 * h0))
    state[S_I_PREV] = i_a
    state[S_INNOV] = innov
    state[S_NIS] = nis
    state[S_V_PRED] = v_pred
    state[S_OCV] = ocv_lookup(table, state[S_SOC], temp_c) + params[P_HYST_V]
    state[S_VFREE_POST] = state[S_OCV] - state[S_V1] - state[S_V2]


def _update(  # noqa: PLR0917 - the kernel's numeric signature, mirrored in ext/ecm.pyx
    state: MutableSequence[float],
    ph0: float,
    ph1: float,
    ph2: float,
    ph3: float,
    s: float,
    innov: float,
    consider_soc: bool,
) -> None:
    """x += K innov, P -= K (PH)^T with K = PH / s, for a scalar measurement with P H^T = ph.

    ``consider_soc``: the SoC's gain is zero (Schmidt's consider update): the SoC and its variance
    stay, its covariances with the other states take their update (P0j -= ph0 kj).
    """
    k0 = 0.0 if consider_soc else ph0 / s
    k1 = ph1 / s
    k2 = ph2 / s
    k3 = ph3 / s
    state[S_SOC] = state[S_SOC] + k0 * innov
    state[S_V1] = state[S_V1] + k1 * innov
    state[S_V2] = state[S_V2] + k2 * innov
    state[S_B] = state[S_B] + k3 * innov
    state[S_P00] = state[S_P00] - k0 * ph0
    state[S_P01] = state[S_P01] - ph0 * k1
    state[S_P02] = state[S_P02] - ph0 * k2
    state[S_P03] = state[S_P03] - ph0 * k3
    state[S_P11] = state[S_P11] - k1 * ph1
    state[S_P12] = state[S_P12] - k1 * ph2
    state[S_P13] = state[S_P13] - k1 * ph3
    state[S_P22] = state[S_P22] - k2 * ph2
    state[S_P23] = state[S_P23] - k2 * ph3
    state[S_P33] = state[S_P33] - k3 * ph3
    state[S_P00] = max(state[S_P00], 1e-12)
    state[S_P11] = max(state[S_P11], 1e-14)
    state[S_P22] = max(state[S_P22], 1e-14)
    state[S_P33] = max(state[S_P33], 0.0)


def fuse_soc(state: MutableSequence[float], soc_meas: float, var: float, gate: float) -> int:
    """Fuse a direct SoC measurement (the EV's own figure) of variance ``var``.

    Returns 1 when fused, 0 when rejected because it lies more than ``gate`` sigmas from the estimate:
    the EV's figure is evidence, never an override.
    """
    innov = soc_meas - state[S_SOC]
    s = state[S_P00] + var
    if innov * innov > gate * gate * s:
        return 0
    _update(state, state[S_P00], state[S_P01], state[S_P02], state[S_P03], s, innov, False)
    return 1


def fuse_offset(state: MutableSequence[float], offset_meas: float, var: float, gate: float) -> int:
    """Fuse a direct observation of the current offset (the measured current while none flows).

    Only b takes it (a consider update for the SoC): between rests b also takes up counting errors
    and the model's misfit under load, which the SoC's covariance with b then carries, so the
    offset seen at rest would move the SoC by what b had absorbed, not by what the sensor did. At
    rest the voltage is the SoC's witness. Returns 1 when fused, 0 when rejected (more than
    ``gate`` sigmas away: current was flowing).
    """
    innov = offset_meas - state[S_B]
    s = state[S_P33] + var
    if innov * innov > gate * gate * s:
        return 0
    _update(state, state[S_P03], state[S_P13], state[S_P23], state[S_P33], s, innov, True)
    return 1


def hysteresis_levels(params: Sequence[float], k: float) -> tuple[float, float]:
    """The OCV's hysteresis (V) a discharge and a charge pulse are priced at: each where a pulse at the
    rating's current over the horizon (``k`` SoC per A) leaves it, and only where that brings the
    limit nearer (at most 0 for a discharge, at least 0 for a charge)."""
    m = params[P_HYST_M]
    if m <= 0.0:
        return 0.0, 0.0
    h = params[P_HYST_V] / m
    dis = -1.0 + (h + 1.0) * math.exp(-params[P_HYST_RATE] * k * params[P_I_DIS_MAX])
    chg = 1.0 - (1.0 - h) * math.exp(-params[P_HYST_RATE] * k * params[P_I_CHG_MAX])
    return min(m * dis, 0.0), max(m * chg, 0.0)


def _surface_overpotential(  # noqa: PLR0917 - the kernel's numeric signature, mirrored in ext/ecm.pyx
    table: Sequence[float],
    soc: float,
    temp_c: float,
    k: float,
    kd: float,
    slope_ref: float,
    sign: float,
    cur: float,
) -> float:
    """What the particles' surface lead (``kd`` per A, see surface_lead_s) adds to a pulse ``sign * cur``
    beyond what the RC branches hold, V >= 0: the table's change over the lead, in the pulse's
    direction, less the lead at ``slope_ref``, where that is positive."""
    if kd <= 0.0:
        return 0.0
    bulk = soc - sign * cur * k
    d = sign * (ocv_lookup(table, bulk, temp_c) - ocv_lookup(table, bulk - sign * cur * kd, temp_c))
    return max(d - cur * kd * slope_ref, 0.0)


def _pulse_margin(  # noqa: PLR0917 - the kernel's numeric signature, mirrored in ext/ecm.pyx
    table: Sequence[float],
    c: Sequence[float],
    soc: float,
    temp_c: float,
    v_relax: float,
    r_lin: float,
    k: float,
    v_lim: float,
    sign: float,
    cur: float,
) -> float:
    """How far (V) the end of a pulse ``sign * cur`` stays inside ``v_lim`` (negative: beyond it),
    before the surface lead (see pulse_current).

    V = OCV(soc - sign*cur*k) - v_relax - sign*cur*r_lin - eta(sign*cur).
    """
    return (
        sign * (ocv_lookup(table, soc - sign * cur * k, temp_c) - v_relax - v_lim)
        - cur * r_lin
        - kinetic_overpotential(c, cur)
    )


def pulse_current(  # noqa: PLR0917 - the kernel's numeric signature, mirrored in ext/ecm.pyx
    table: Sequence[float],
    c: Sequence[float],
    soc: float,
    temp_c: float,
    v_relax: float,
    r_lin: float,
    k: float,
    kd: float,
    slope_ref: float,
    v_lim: float,
    sign: float,
) -> float:
    """Largest magnitude I >= 0 of a pulse ``sign * I`` whose margin (_pulse_margin less the surface
    overpotential of a lead ``kd`` per A) is zero.

    The margin falls with I. Newton from I = 0 climbs to the root from below where the margin is
    convex (the kinetic term flattens); where the table steepens it is concave and a step may
    overshoot. So the root is kept bracketed (the largest current seen inside the limit, the least
    seen beyond it) and a step leaving the bracket bisects it instead. Should it not get within
    NEWTON_TOL_V in NEWTON_ITERATIONS, the bracket's inside end is returned, never a current beyond.
    """
    cur = 0.0
    inside = 0.0
    beyond = -1.0  # none seen yet
    for _ in range(NEWTON_ITERATIONS):
        lead = _surface_overpotential(table, soc, temp_c, k, kd, slope_ref, sign, cur)
        resid = _pulse_margin(table, c, soc, temp_c, v_relax, r_lin, k, v_lim, sign, cur) - lead
        if resid <= 0.0 and cur == 0.0:
            return 0.0
        if -NEWTON_TOL_V < resid < NEWTON_TOL_V:
            return cur
        if resid > 0.0:
            inside = cur
        else:
            beyond = cur
        bulk = soc - sign * cur * k
        g_bulk = ocv_slope(table, bulk, temp_c) * k
        g_lead = ocv_slope(table, bulk - sign * cur * kd, temp_c) * (k + kd) - slope_ref * kd
        # The lead's slope where it acts, or is about to (at I = 0 it is zero while its slope is not).
        g = g_lead if lead > 0.0 or g_lead > g_bulk else g_bulk
        g = max(g + r_lin + kinetic_slope(c, cur), 1e-9)
        cur = cur + resid / g
        if beyond >= 0.0 and not inside < cur < beyond:
            cur = 0.5 * (inside + beyond)
    return inside


def electrolyte_cap(
    params: Sequence[float], i_now_a: float, held_a: float, sign: float, horizon_s: float
) -> float:
    """Largest magnitude of a pulse ``sign * I`` over ``horizon_s`` the electrolyte carries, A (inf
    without a limit). Depletion adds up over the current's steps, each ``dI sqrt(t)`` (Sand), steady
    after T_EQ (``P_ELEC_T_EQ_S``), and must stay within ``P_ELEC_K``:

    * the present current ``i_now_a``, where it flows the pulse's way, taken as held until steady
      (the most it can have spent): ``I0 sqrt(T_EQ)``;
    * the larger current ``held_a`` (>= 0, that way) whose depletion the electrolyte may still hold
      (hold_depletion), taken as steady and as falling to I0 only as the pulse starts (the least
      relaxation it can have had): ``+ (held - I0) (sqrt(T_EQ) - sqrt(h))``;
    * the pulse's own step: ``+ (I - I0) sqrt(h)``;

    with h at most T_EQ (by then the pulse's own profile is steady: a longer one allows what the
    steady term does).

    Never below the present current: the cell carries it now, and a cap below it would make the
    charger cut the current, free the budget and climb back (a current above the steady term's
    ``K / sqrt(T_EQ)``, in the cold, would set that swing). So it never lowers a current already
    flowing: that is the rating's to do.
    """
    kk = params[P_ELEC_K]
    if kk <= 0.0:
        return math.inf
    i0 = max(sign * i_now_a, 0.0)
    root_eq = math.sqrt(params[P_ELEC_T_EQ_S])
    root_h = math.sqrt(min(horizon_s, params[P_ELEC_T_EQ_S]))
    spent = i0 * root_eq + max(held_a - i0, 0.0) * (root_eq - root_h)
    return i0 + max(kk - spent, 0.0) / root_h


def hold_depletion(state: MutableSequence[float], params: Sequence[float], dt_s: float) -> None:
    """Carry the electrolyte's memory (S_ELEC_DIS / S_ELEC_CHG) over ``dt_s`` under the true current
    held over it (``S_I_PREV - S_B`` before the correction takes the new sample): a larger one is
    taken (as steady), and the excess of the memory above it relaxes as exp(-t / T_EQ).

    By the steps' sum (electrolyte_cap), what a fall leaves spent after t is the share
    (sqrt(T_EQ) - sqrt(t + h)) / (sqrt(T_EQ) - sqrt(h)) of what it left at once; exp(-2 t / T_EQ)
    stays above that for every t and horizon h (the closest: h = T_EQ / 4, just after the fall).
    Twice that time is the margin for a real electrolyte, whose response bends below sqrt(t) before
    it is steady, so that more of a fall stays spent than the sum says. Each fall's excess relaxes
    from its own time (a partial fall, to a current still flowing, included). Without a limit (T_EQ
    0) it is the current held."""
    i = state[S_I_PREV] - state[S_B]
    keep = 1.0
    if dt_s > 0.0:
        t_eq = params[P_ELEC_T_EQ_S]
        keep = math.exp(-dt_s / t_eq) if t_eq > 0.0 else 0.0
    way = max(i, 0.0)
    state[S_ELEC_DIS] = way + max(state[S_ELEC_DIS] - way, 0.0) * keep
    way = max(-i, 0.0)
    state[S_ELEC_CHG] = way + max(state[S_ELEC_CHG] - way, 0.0) * keep


def sop(  # noqa: PLR0917 - the kernel's numeric signature, mirrored in ext/ecm.pyx
    state: Sequence[float],
    params: Sequence[float],
    table: Sequence[float],
    c: Sequence[float],
    horizon_s: float,
    temp_c: float,
    out: MutableSequence[float],
    offset: int,
) -> None:
    """State of power over ``horizon_s`` from the current state; writes O_N values at ``out[offset:]``."""
    soc = state[S_SOC]
    e1 = math.exp(-horizon_s / (params[P_TAU1] * params[P_SOP_TAU1]))
    e2 = math.exp(-horizon_s / params[P_TAU2])
    r_eff = c[C_R0] + c[C_R1] * (1.0 - e1) + c[C_R2] * (1.0 - e2)
    k = horizon_s / (3600.0 * params[P_Q_AH])
    kd = surface_lead_s(horizon_s, params[P_DIFF_TAU_S]) / (3600.0 * params[P_Q_AH])
    s_ref = params[P_OCV_SLOPE_REF]
    ofs = state[S_OCV_OFS]
    # The fast branch's present voltage relaxes over the pulse at the SoP's time constant or the
    # filter's, whichever brings the pulse nearer its limit: a faster one charges the branch sooner but
    # also lets what it holds go sooner, which alone would raise a limit where the branch holds more
    # than the pulse would put in it (a charge near full, review).
    e1_filter = math.exp(-horizon_s / params[P_TAU1])
    v1_end_lo = min(e1 * state[S_V1], e1_filter * state[S_V1])
    v1_end_hi = max(e1 * state[S_V1], e1_filter * state[S_V1])
    v_relax_now = state[S_V1] + state[S_V2]
    # The cell's voltage above the model's (the table's error where the SoC no longer follows it)
    # brings a charge pulse nearer its limit, below it a discharge pulse; the other way it is not
    # credited (under load it may be the overpotential's error, which turns with the current).
    # The hysteresis likewise, one way only, and where the pulse has moved it: towards the pulse's own
    # branch (a charge pulse after a discharge raises the OCV as it goes), at the rating's current,
    # the most the limit used asks for (a smaller current moves it less).
    hd, hc = hysteresis_levels(params, k)
    hyst_d_end = v1_end_hi + e2 * state[S_V2] - hd
    hyst_c_end = v1_end_lo + e2 * state[S_V2] - hc
    vd_end = hyst_d_end - min(ofs, 0.0)
    vd_now = v_relax_now - hd - min(ofs, 0.0)
    vc_end = hyst_c_end - max(ofs, 0.0)
    vc_now = v_relax_now - hc - max(ofs, 0.0)
    # The pulse must respect the limit at its start (step on the present RC voltages) and at its end
    # (RC branches charged, SoC moved); with both branches relaxing one way, these bound the pulse.
    i_dis = pulse_current(table, c, soc, temp_c, vd_end, r_eff, k, kd, s_ref, params[P_V_MIN], 1.0)
    i_chg = pulse_current(table, c, soc, temp_c, vc_end, r_eff, k, kd, s_ref, params[P_V_MAX], -1.0)
    # The same offset read as SoC: the pulse from where the table reads the cell's voltage (the
    # nearest such SoC that way; the estimate itself where the table never reads it, which the level
    # above then covers). At a knee the consider update holds the estimate on the plateau while the
    # cell climbs, and the pulse's rise is the knee's, not the plateau's. The lower limit is kept.
    soc_v = soc
    if ofs != 0.0:
        sign = 1.0 if ofs < 0.0 else -1.0
        soc_v = ocv_inverse(table, soc, ocv_lookup(table, soc, temp_c) + ofs, temp_c, sign)
        v_lim = params[P_V_MIN] if ofs < 0.0 else params[P_V_MAX]
        v_relax = hyst_d_end if ofs < 0.0 else hyst_c_end
        cur = pulse_current(table, c, soc_v, temp_c, v_relax, r_eff, k, kd, s_ref, v_lim, sign)
        if ofs < 0.0:
            i_dis = min(i_dis, cur)
        else:
            i_chg = min(i_chg, cur)
    if _pulse_margin(table, c, soc, temp_c, vd_now, c[C_R0], 0.0, params[P_V_MIN], 1.0, i_dis) < 0.0:
        i_dis = pulse_current(table, c, soc, temp_c, vd_now, c[C_R0], 0.0, 0.0, 0.0, params[P_V_MIN], 1.0)
    if _pulse_margin(table, c, soc, temp_c, vc_now, c[C_R0], 0.0, params[P_V_MAX], -1.0, i_chg) < 0.0:
        i_chg = pulse_current(table, c, soc, temp_c, vc_now, c[C_R0], 0.0, 0.0, 0.0, params[P_V_MAX], -1.0)
    # The model's limit is also the electrolyte's: a pulse of several C depletes it within seconds,
    # which no resistance of the ECM holds (a new LG M50 below 15 % takes 31-34 A for 10 s; the
    # ECM's curve allowed up to 40 A).
    # A current that has just fallen leaves its depletion behind (held in S_ELEC_*): 2 s after a
    # 3.7 A charge of the same cell stopped, the cell took 23 A for 10 s, 60 s after 30 A.
    i_now = state[S_I_PREV] - state[S_B]
    i_dis = min(i_dis, electrolyte_cap(params, i_now, state[S_ELEC_DIS], 1.0, horizon_s))
    i_chg = min(i_chg, electrolyte_cap(params, i_now, state[S_ELEC_CHG], -1.0, horizon_s))
    out[offset + O_I_DIS_V] = i_dis
    out[offset + O_I_CHG_V] = i_chg
    lim = params[P_I_DIS_MAX] * derate(
        temp_c, params[P_DIS_T0], params[P_DIS_T1], params[P_DIS_T2], params[P_DIS_T3]
    )
    i_dis = min(i_dis, lim)
    lim = (soc - params[P_SOC_MIN]) / k
    i_dis = min(i_dis, lim)
    i_dis = max(i_dis, 0.0)
    lim = params[P_I_CHG_MAX] * derate(
        temp_c, params[P_CHG_T0], params[P_CHG_T1], params[P_CHG_T2], params[P_CHG_T3]
    )
    i_chg = min(i_chg, lim)
    lim = (params[P_SOC_MAX] - soc) / k
    i_chg = min(i_chg, lim)
    i_chg = max(i_chg, 0.0)
    out[offset + O_I_DIS] = i_dis
    out[offset + O_I_CHG] = i_chg
    # Discharge power at the lower end voltage of both readings (a rating or the SoC window may have
    # capped the current below what either reading allows).
    v_end = (
        ocv_lookup(table, soc - i_dis * k, temp_c)
        - vd_end
        - i_dis * r_eff
        - kinetic_overpotential(c, i_dis)
        - _surface_overpotential(table, soc, temp_c, k, kd, s_ref, 1.0, i_dis)
    )
    if ofs < 0.0:
        v_end = min(
            v_end,
            ocv_lookup(table, soc_v - i_dis * k, temp_c)
            - hyst_d_end
            - i_dis * r_eff
            - kinetic_overpotential(c, i_dis)
            - _surface_overpotential(table, soc_v, temp_c, k, kd, s_ref, 1.0, i_dis),
        )
    out[offset + O_P_DIS] = i_dis * v_end
    # Charge power at the lower end voltage: without the offset, the hysteresis's charge branch, the
    # surface lead, and the SoP's bounds on the resistance (the growth's upper bound, the cold floor,
    # the identified RC branches' excess: the pricing set is at the filter's growth), whose higher
    # voltage would let a power limit draw more current than the limit's (2 % more at the rating
    # while the growth was unconverged, review).
    # The filter's first time constant for the branch's charging (an identified faster one raises the
    # resistance a pulse sees, and with it the voltage), and what the branch holds relaxed at the
    # more of the two (near full it holds more than the pulse puts in: its faster relaxation alone
    # lowers the voltage, review).
    r_pow = c[C_POW + C_R0] + c[C_POW + C_R1] * (1.0 - e1_filter) + c[C_POW + C_R2] * (1.0 - e2)
    v_end = (
        ocv_lookup(table, soc + i_chg * k, temp_c)
        - (v1_end_hi + e2 * state[S_V2])
        + min(params[P_HYST_V], 0.0)
        + i_chg * r_pow
        + kinetic_overpotential(c[C_POW:], i_chg)
    )
    out[offset + O_P_CHG] = i_chg * v_end


def step(  # noqa: PLR0917 - the kernel's numeric signature, mirrored in ext/ecm.pyx
    state: MutableSequence[float],
    params: Sequence[float],
    table: Sequence[float],
    dt_s: float,
    i_a: float,
    v_v: float,
    temp_c: float,
    horizons_s: Sequence[float],
    out: MutableSequence[float],
    c: MutableSequence[float],
) -> None:
    """One sample: predict over ``dt_s``, correct with (``i_a``, ``v_v``), then the SoP per horizon.

    ``c`` is scratch space (C_N values) that holds the SoP's coefficients at the updated state
    afterwards. The filter uses the growth estimate, the SoP its upper bound. The electrolyte's memory
    follows the current held over ``dt_s`` (hold_depletion, before the correction takes the new
    one); between the filter and the SoP the voltage innovation is smoothed into S_OCV_OFS over
    P_OFS_TAU_S.
    """
    coefficients(params, table, state[S_SOC], temp_c, params[P_R_GROWTH], c)
    predict(state, params, c, dt_s)
    hold_depletion(state, params, dt_s)
    correct(state, params, table, c, i_a, v_v, temp_c)
    if dt_s > 0.0:
        state[S_OCV_OFS] = state[S_OCV_OFS] + (state[S_INNOV] - state[S_OCV_OFS]) * dt_s / (
            dt_s + params[P_OFS_TAU_S]
        )
    sop_coefficients(params, table, state[S_SOC], temp_c, c)
    for j in range(len(horizons_s)):
        sop(state, params, table, c, horizons_s[j], temp_c, out, j * O_N)


class Kernel:
    """The per-sample entry points bound to one set of arrays (the compiled class binds them once).

    ``state``, ``params`` and ``out`` are updated in place; ``c`` is scratch (C_N values). The arrays
    stay the caller's: changing ``params`` between samples (capacity, growth) takes effect at once.
    """

    def __init__(  # noqa: PLR0917 - the kernel's numeric signature, mirrored in ext/ecm.pyx
        self,
        state: MutableSequence[float],
        params: Sequence[float],
        table: Sequence[float],
        horizons_s: Sequence[float],
        out: MutableSequence[float],
        c: MutableSequence[float],
    ) -> None:
        self.state = state
        self.params = params
        self.table = table
        self.horizons_s = horizons_s
        self.out = out
        self.c = c

    def step(self, dt_s: float, i_a: float, v_v: float, temp_c: float) -> None:
        """See :func:`step`."""
        step(self.state, self.params, self.table, dt_s, i_a, v_v, temp_c, self.horizons_s, self.out, self.c)

    def fuse_soc(self, soc_meas: float, var: float, gate: float) -> int:
        """See :func:`fuse_soc`."""
        return fuse_soc(self.state, soc_meas, var, gate)

    def fuse_offset(self, offset_meas: float, var: float, gate: float) -> int:
        """See :func:`fuse_offset`."""
        return fuse_offset(self.state, offset_meas, var, gate)
