# cython: language_level=3
"""Compiled battery equivalent-circuit kernel (EKF + SoP).

The reference is edge/estimation/_ecm_ref.py: same maths, same order, same array layouts. The
per-sample entry point ``step`` works in place on caller-owned float64 arrays and allocates nothing.
The layouts and numeric constants are the reference's, included from ecm_layout.pxi (generated:
``python -m ext.gen_layouts --write``); ``layout()`` returns the indices this module was built with.
"""

from libc.math cimport INFINITY, M_PI, asinh, exp, fabs, floor, fmax, fmin, sqrt

include "ecm_layout.pxi"

KELVIN = KELVIN_C
TWO_R_OVER_F = TWO_R_OVER_F_C


cdef inline Py_ssize_t _segment(Py_ssize_t n, double soc) noexcept nogil:
    cdef Py_ssize_t k = <Py_ssize_t>floor(soc * (n - 1))
    if k < 0:
        k = 0
    if k > n - 2:
        k = n - 2
    return k


cdef inline double _ocv(const double* table, Py_ssize_t n, double soc, double temp_c) noexcept nogil:
    cdef Py_ssize_t k = _segment(n, soc)
    cdef double w = soc * (n - 1) - k
    cdef double v = table[k] + (table[k + 1] - table[k]) * w
    cdef double d = table[n + k] + (table[n + k + 1] - table[n + k]) * w
    return v + d * (temp_c - 25.0)


cdef inline double _slope(const double* table, Py_ssize_t n, double soc, double temp_c) noexcept nogil:
    cdef Py_ssize_t k = _segment(n, soc)
    cdef double s = table[k + 1] - table[k]
    cdef double d = table[n + k + 1] - table[n + k]
    return (s + d * (temp_c - 25.0)) * (n - 1)


cdef inline double _derate(double temp_c, double t0, double t1, double t2, double t3) noexcept nogil:
    if temp_c <= t0 or temp_c >= t3:
        return 0.0
    if temp_c < t1:
        return (temp_c - t0) / (t1 - t0)
    if temp_c > t2:
        return (t3 - temp_c) / (t3 - t2)
    return 1.0


cdef void _coefficients(const double* params, const double* table, Py_ssize_t n, double soc,
                        double temp_c, double g, double* c) noexcept nogil:
    cdef Py_ssize_t k = _segment(n, soc)
    cdef double w = soc * (n - 1) - k
    cdef double kin = table[2 * n + k] + (table[2 * n + k + 1] - table[2 * n + k]) * w
    cdef double t_k = temp_c + KELVIN_C
    cdef double f_t = exp(params[P_EA_R] * (1.0 / t_k - 1.0 / params[P_TREF_K]))
    cdef double f_i0 = kin * exp(-params[P_EA_I0_R] * (1.0 / t_k - 1.0 / params[P_TREF_K]))
    cdef double rt = TWO_R_OVER_F_C * t_k
    cdef double gm, added
    cdef double r0 = params[P_R0] * f_t
    cdef double r1 = params[P_R1] * f_t
    cdef double r2 = params[P_R2] * f_t
    cdef double i0a = params[P_I0_A] * f_i0
    cdef double i0b = params[P_I0_B] * f_i0
    cdef double rss = r0
    if i0a > 0.0:
        rss = rss + 0.5 * rt / i0a
    if i0b > 0.0:
        rss = rss + 0.5 * rt / i0b
    if g >= 1.0:
        gm = 1.0 + (1.0 - params[P_GROWTH_OHMIC]) * (g - 1.0)
        added = params[P_GROWTH_OHMIC] * (g - 1.0) * rss
    else:
        gm = g
        added = 0.0
    c[C_R0] = r0 * gm + added
    c[C_R1] = r1 * gm
    c[C_R2] = r2 * gm
    c[C_I0A] = i0a / gm
    c[C_I0B] = i0b / gm
    c[C_RT] = rt
    c[C_RSS_NEW] = rss


cdef void _sop_coefficients(const double* params, const double* table, Py_ssize_t n, double soc,
                            double temp_c, double* c) noexcept nogil:
    _coefficients(params, table, n, soc, temp_c, params[P_R_GROWTH], &c[C_POW])
    _coefficients(params, table, n, soc, temp_c, params[P_SOP_GROWTH], c)
    c[C_R1] = c[C_R1] * params[P_SOP_RC1]
    c[C_R2] = c[C_R2] * params[P_SOP_RC2]


cdef inline double _eta(const double* c, double i_a) noexcept nogil:
    cdef double eta = 0.0
    if c[C_I0A] > 0.0:
        eta = eta + c[C_RT] * asinh(i_a / (2.0 * c[C_I0A]))
    if c[C_I0B] > 0.0:
        eta = eta + c[C_RT] * asinh(i_a / (2.0 * c[C_I0B]))
    return eta


cdef inline double _eta_slope(const double* c, double i_a) noexcept nogil:
    cdef double d = 0.0
    if c[C_I0A] > 0.0:
        d = d + c[C_RT] / sqrt(4.0 * c[C_I0A] * c[C_I0A] + i_a * i_a)
    if c[C_I0B] > 0.0:
        d = d + c[C_RT] / sqrt(4.0 * c[C_I0B] * c[C_I0B] + i_a * i_a)
    return d


cdef void _predict(double* state, const double* params, const double* c, double dt_s) noexcept nogil:
    cdef double i, a1, a2, beta, g1, g2
    cdef double p00, p01, p02, p03, p11, p12, p13, p22, p23, p33
    cdef double m00, m01, m02, m03, m11, m12, m13, m22, m23
    if dt_s <= 0.0:
        return
    i = state[S_I_PREV] - state[S_B]
    a1 = exp(-dt_s / params[P_TAU1])
    a2 = exp(-dt_s / params[P_TAU2])
    beta = dt_s / (3600.0 * params[P_Q_AH])
    g1 = -c[C_R1] * (1.0 - a1)
    g2 = -c[C_R2] * (1.0 - a2)
    state[S_SOC] = state[S_SOC] - i * beta
    state[S_V1] = a1 * state[S_V1] - g1 * i
    state[S_V2] = a2 * state[S_V2] - g2 * i
    p00 = state[S_P00]
    p01 = state[S_P01]
    p02 = state[S_P02]
    p03 = state[S_P03]
    p11 = state[S_P11]
    p12 = state[S_P12]
    p13 = state[S_P13]
    p22 = state[S_P22]
    p23 = state[S_P23]
    p33 = state[S_P33]
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


cdef void _update(double* state, double ph0, double ph1, double ph2, double ph3, double s,
                  double innov, bint consider_soc) noexcept nogil:
    cdef double k0 = 0.0 if consider_soc else ph0 / s
    cdef double k1 = ph1 / s
    cdef double k2 = ph2 / s
    cdef double k3 = ph3 / s
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
    state[S_P00] = fmax(state[S_P00], 1e-12)
    state[S_P11] = fmax(state[S_P11], 1e-14)
    state[S_P22] = fmax(state[S_P22], 1e-14)
    state[S_P33] = fmax(state[S_P33], 0.0)


cdef void _correct(double* state, const double* params, const double* table, Py_ssize_t n,
                   const double* c, double i_a, double v_v, double temp_c) noexcept nogil:
    cdef double soc = state[S_SOC]
    cdef double i = i_a - state[S_B]
    cdef double w = sqrt(state[S_P00])
    cdef double h0
    cdef double hb = c[C_R0] + _eta_slope(c, i)
    cdef double ocv = _ocv(table, n, soc, temp_c) + params[P_HYST_V]
    cdef double v_pred = ocv - state[S_V1] - state[S_V2] - c[C_R0] * i - _eta(c, i)
    cdef double innov = v_v - v_pred
    cdef double ph0, ph1, ph2, ph3, s, nis, gate, drop, ocv_var
    cdef bint consider
    if w > SLOPE_SPAN_MIN:
        h0 = (_ocv(table, n, soc + w, temp_c) - _ocv(table, n, soc - w, temp_c)) / (2.0 * w)
    else:
        h0 = _slope(table, n, soc, temp_c)
    state[S_VFREE_PRIOR] = ocv - state[S_V1] - state[S_V2]
    ph0 = state[S_P00] * h0 - state[S_P01] - state[S_P02] + state[S_P03] * hb
    ph1 = state[S_P01] * h0 - state[S_P11] - state[S_P12] + state[S_P13] * hb
    ph2 = state[S_P02] * h0 - state[S_P12] - state[S_P22] + state[S_P23] * hb
    ph3 = state[S_P03] * h0 - state[S_P13] - state[S_P23] + state[S_P33] * hb
    drop = params[P_OVERPOT_REL] * (fabs(c[C_R0] * i + _eta(c, i)) + fabs(state[S_V1]) + fabs(state[S_V2]))
    ocv_var = params[P_OCV_VAR] + h0 * h0 * params[P_OCV_SOC_VAR]
    s = h0 * ph0 - ph1 - ph2 + hb * ph3 + params[P_R_V] + ocv_var + drop * drop
    nis = innov * innov / s
    gate = params[P_GATE]
    if nis > gate * gate:
        s = innov * innov / (gate * gate)
    consider = state[S_P00] * h0 * h0 < ocv_var
    _update(state, ph0, ph1, ph2, ph3, s, innov, consider)
    if not consider and ocv_var > 0.0:
        state[S_P00] = fmax(state[S_P00], ocv_var / (h0 * h0))
    state[S_I_PREV] = i_a
    state[S_INNOV] = innov
    state[S_NIS] = nis
    state[S_V_PRED] = v_pred
    state[S_OCV] = _ocv(table, n, state[S_SOC], temp_c) + params[P_HYST_V]
    state[S_VFREE_POST] = state[S_OCV] - state[S_V1] - state[S_V2]


cdef inline void _smooth_offset(double* state, const double* params, double dt_s) noexcept nogil:
    if dt_s > 0.0:
        state[S_OCV_OFS] = state[S_OCV_OFS] + (state[S_INNOV] - state[S_OCV_OFS]) * dt_s / (
            dt_s + params[P_OFS_TAU_S])


cdef double _ocv_inverse(const double* table, Py_ssize_t n, double soc, double v, double temp_c,
                         double sign) noexcept nogil:
    cdef double dt = temp_c - 25.0
    cdef Py_ssize_t k = _segment(n, soc)
    cdef double a, b, x
    cdef bint last, inside
    while 0 <= k <= n - 2:
        a = table[k] + table[n + k] * dt
        b = table[k + 1] + table[n + k + 1] * dt
        last = (k == n - 2) if sign < 0.0 else (k == 0)
        inside = (v <= b or last) if sign < 0.0 else (v >= a or last)
        if b > a and inside:
            x = (k + (v - a) / (b - a)) / (n - 1)
            return fmax(x, soc) if sign < 0.0 else fmin(x, soc)
        k = k + 1 if sign < 0.0 else k - 1
    return soc


cdef inline double _surface_lead_s(double horizon_s, double tau_s) noexcept nogil:
    if tau_s <= 0.0:
        return 0.0
    return fmin(2.0 / 3.0 * sqrt(tau_s * horizon_s / M_PI), tau_s / 15.0)


cdef inline double _surface_overpotential(const double* table, Py_ssize_t n, double soc, double temp_c,
                                          double k, double kd, double slope_ref, double sign,
                                          double cur) noexcept nogil:
    cdef double bulk, d
    if kd <= 0.0:
        return 0.0
    bulk = soc - sign * cur * k
    d = sign * (_ocv(table, n, bulk, temp_c) - _ocv(table, n, bulk - sign * cur * kd, temp_c))
    return fmax(d - cur * kd * slope_ref, 0.0)


cdef inline double _pulse_margin(const double* table, Py_ssize_t n, const double* c, double soc,
                                double temp_c, double v_relax, double r_lin, double k, double v_lim,
                                double sign, double cur) noexcept nogil:
    return (sign * (_ocv(table, n, soc - sign * cur * k, temp_c) - v_relax - v_lim)
            - cur * r_lin
            - _eta(c, cur))


cdef double _pulse_current(const double* table, Py_ssize_t n, const double* c, double soc,
                           double temp_c, double v_relax, double r_lin, double k, double kd,
                           double slope_ref, double v_lim, double sign) noexcept nogil:
    cdef double cur = 0.0
    cdef double inside = 0.0
    cdef double beyond = -1.0
    cdef double resid, g, g_bulk, g_lead, lead, bulk
    cdef int it
    for it in range(NEWTON_ITERATIONS):
        lead = _surface_overpotential(table, n, soc, temp_c, k, kd, slope_ref, sign, cur)
        resid = _pulse_margin(table, n, c, soc, temp_c, v_relax, r_lin, k, v_lim, sign, cur) - lead
        if resid <= 0.0 and cur == 0.0:
            return 0.0
        if -NEWTON_TOL_V < resid < NEWTON_TOL_V:
            return cur
        if resid > 0.0:
            inside = cur
        else:
            beyond = cur
        bulk = soc - sign * cur * k
        g_bulk = _slope(table, n, bulk, temp_c) * k
        g_lead = _slope(table, n, bulk - sign * cur * kd, temp_c) * (k + kd) - slope_ref * kd
        g = g_lead if lead > 0.0 or g_lead > g_bulk else g_bulk
        g = fmax(g + r_lin + _eta_slope(c, cur), 1e-9)
        cur = cur + resid / g
        if beyond >= 0.0 and not inside < cur < beyond:
            cur = 0.5 * (inside + beyond)
    return inside


cdef inline void _hysteresis_levels(const double* params, double k, double* dis, double* chg) noexcept nogil:
    cdef double m = params[P_HYST_M]
    cdef double h
    if m <= 0.0:
        dis[0] = 0.0
        chg[0] = 0.0
        return
    h = params[P_HYST_V] / m
    dis[0] = fmin(m * (-1.0 + (h + 1.0) * exp(-params[P_HYST_RATE] * k * params[P_I_DIS_MAX])), 0.0)
    chg[0] = fmax(m * (1.0 - (1.0 - h) * exp(-params[P_HYST_RATE] * k * params[P_I_CHG_MAX])), 0.0)


def hysteresis_levels(const double[::1] params, double k):
    cdef double dis = 0.0
    cdef double chg = 0.0
    _hysteresis_levels(&params[0], k, &dis, &chg)
    return dis, chg


cdef inline double _electrolyte_cap(const double* params, double i_now_a, double held_a, double sign,
                                   double horizon_s) noexcept nogil:
    cdef double kk = params[P_ELEC_K]
    if kk <= 0.0:
        return INFINITY
    cdef double i0 = fmax(sign * i_now_a, 0.0)
    cdef double root_eq = sqrt(params[P_ELEC_T_EQ_S])
    cdef double root_h = sqrt(fmin(horizon_s, params[P_ELEC_T_EQ_S]))
    cdef double spent = i0 * root_eq + fmax(held_a - i0, 0.0) * (root_eq - root_h)
    return i0 + fmax(kk - spent, 0.0) / root_h


cdef inline void _hold_depletion(double* state, const double* params, double dt_s) noexcept nogil:
    cdef double i = state[S_I_PREV] - state[S_B]
    cdef double keep = 1.0
    cdef double t_eq
    if dt_s > 0.0:
        t_eq = params[P_ELEC_T_EQ_S]
        keep = exp(-dt_s / t_eq) if t_eq > 0.0 else 0.0
    cdef double way = fmax(i, 0.0)
    state[S_ELEC_DIS] = way + fmax(state[S_ELEC_DIS] - way, 0.0) * keep
    way = fmax(-i, 0.0)
    state[S_ELEC_CHG] = way + fmax(state[S_ELEC_CHG] - way, 0.0) * keep


cdef void _sop(const double* state, const double* params, const double* table, Py_ssize_t n,
               const double* c, double horizon_s, double temp_c, double* out) noexcept nogil:
    cdef double soc = state[S_SOC]
    cdef double e1 = exp(-horizon_s / (params[P_TAU1] * params[P_SOP_TAU1]))
    cdef double e2 = exp(-horizon_s / params[P_TAU2])
    cdef double r_eff = c[C_R0] + c[C_R1] * (1.0 - e1) + c[C_R2] * (1.0 - e2)
    cdef double k = horizon_s / (3600.0 * params[P_Q_AH])
    cdef double kd = _surface_lead_s(horizon_s, params[P_DIFF_TAU_S]) / (3600.0 * params[P_Q_AH])
    cdef double s_ref = params[P_OCV_SLOPE_REF]
    cdef double ofs = state[S_OCV_OFS]
    cdef double e1_filter = exp(-horizon_s / params[P_TAU1])
    cdef double v1_end_lo = fmin(e1 * state[S_V1], e1_filter * state[S_V1])
    cdef double v1_end_hi = fmax(e1 * state[S_V1], e1_filter * state[S_V1])
    cdef double v_relax_now = state[S_V1] + state[S_V2]
    cdef double hd = 0.0
    cdef double hc = 0.0
    _hysteresis_levels(params, k, &hd, &hc)
    cdef double hyst_d_end = v1_end_hi + e2 * state[S_V2] - hd
    cdef double hyst_c_end = v1_end_lo + e2 * state[S_V2] - hc
    cdef double vd_end = hyst_d_end - fmin(ofs, 0.0)
    cdef double vd_now = v_relax_now - hd - fmin(ofs, 0.0)
    cdef double vc_end = hyst_c_end - fmax(ofs, 0.0)
    cdef double vc_now = v_relax_now - hc - fmax(ofs, 0.0)
    cdef double i_dis, i_chg, lim, v_end, v_alt, cur, sign, v_lim
    cdef double soc_v = soc
    i_dis = _pulse_current(table, n, c, soc, temp_c, vd_end, r_eff, k, kd, s_ref, params[P_V_MIN], 1.0)
    i_chg = _pulse_current(table, n, c, soc, temp_c, vc_end, r_eff, k, kd, s_ref, params[P_V_MAX], -1.0)
    if ofs != 0.0:
        sign = 1.0 if ofs < 0.0 else -1.0
        soc_v = _ocv_inverse(table, n, soc, _ocv(table, n, soc, temp_c) + ofs, temp_c, sign)
        v_lim = params[P_V_MIN] if ofs < 0.0 else params[P_V_MAX]
        cur = _pulse_current(table, n, c, soc_v, temp_c, hyst_d_end if ofs < 0.0 else hyst_c_end, r_eff, k,
                             kd, s_ref, v_lim, sign)
        if ofs < 0.0:
            i_dis = fmin(i_dis, cur)
        else:
            i_chg = fmin(i_chg, cur)
    if _pulse_margin(table, n, c, soc, temp_c, vd_now, c[C_R0], 0.0, params[P_V_MIN], 1.0, i_dis) < 0.0:
        i_dis = _pulse_current(table, n, c, soc, temp_c, vd_now, c[C_R0], 0.0, 0.0, 0.0, params[P_V_MIN], 1.0)
    if _pulse_margin(table, n, c, soc, temp_c, vc_now, c[C_R0], 0.0, params[P_V_MAX], -1.0, i_chg) < 0.0:
        i_chg = _pulse_current(table, n, c, soc, temp_c, vc_now, c[C_R0], 0.0, 0.0, 0.0, params[P_V_MAX],
                               -1.0)
    cdef double i_now = state[S_I_PREV] - state[S_B]
    i_dis = fmin(i_dis, _electrolyte_cap(params, i_now, state[S_ELEC_DIS], 1.0, horizon_s))
    i_chg = fmin(i_chg, _electrolyte_cap(params, i_now, state[S_ELEC_CHG], -1.0, horizon_s))
    out[O_I_DIS_V] = i_dis
    out[O_I_CHG_V] = i_chg
    lim = params[P_I_DIS_MAX] * _derate(temp_c, params[P_DIS_T0], params[P_DIS_T1], params[P_DIS_T2],
                                        params[P_DIS_T3])
    if i_dis > lim:
        i_dis = lim
    lim = (soc - params[P_SOC_MIN]) / k
    if i_dis > lim:
        i_dis = lim
    if i_dis < 0.0:
        i_dis = 0.0
    lim = params[P_I_CHG_MAX] * _derate(temp_c, params[P_CHG_T0], params[P_CHG_T1], params[P_CHG_T2],
                                        params[P_CHG_T3])
    if i_chg > lim:
        i_chg = lim
    lim = (params[P_SOC_MAX] - soc) / k
    if i_chg > lim:
        i_chg = lim
    if i_chg < 0.0:
        i_chg = 0.0
    out[O_I_DIS] = i_dis
    out[O_I_CHG] = i_chg
    v_end = (_ocv(table, n, soc - i_dis * k, temp_c) - vd_end - i_dis * r_eff - _eta(c, i_dis)
             - _surface_overpotential(table, n, soc, temp_c, k, kd, s_ref, 1.0, i_dis))
    if ofs < 0.0:
        v_alt = (_ocv(table, n, soc_v - i_dis * k, temp_c) - hyst_d_end - i_dis * r_eff
                 - _eta(c, i_dis) - _surface_overpotential(table, n, soc_v, temp_c, k, kd, s_ref, 1.0, i_dis))
        v_end = fmin(v_end, v_alt)
    out[O_P_DIS] = i_dis * v_end
    cdef double r_pow = c[C_POW + C_R0] + c[C_POW + C_R1] * (1.0 - e1_filter) + c[C_POW + C_R2] * (1.0 - e2)
    v_end = (_ocv(table, n, soc + i_chg * k, temp_c) - (v1_end_hi + e2 * state[S_V2])
             + fmin(params[P_HYST_V], 0.0)
             + i_chg * r_pow + _eta(&c[C_POW], i_chg))
    out[O_P_CHG] = i_chg * v_end


# Python-facing wrappers: same names and arguments as the reference.

def ocv_lookup(const double[::1] table, double soc, double temp_c):
    return _ocv(&table[0], table.shape[0] // 3, soc, temp_c)


def ocv_slope(const double[::1] table, double soc, double temp_c):
    return _slope(&table[0], table.shape[0] // 3, soc, temp_c)


def ocv_inverse(const double[::1] table, double soc, double v, double temp_c, double sign):
    return _ocv_inverse(&table[0], table.shape[0] // 3, soc, v, temp_c, sign)


def pulse_current(const double[::1] table, const double[::1] c, double soc, double temp_c, double v_relax,
                  double r_lin, double k, double kd, double slope_ref, double v_lim, double sign):
    return _pulse_current(&table[0], table.shape[0] // 3, &c[0], soc, temp_c, v_relax, r_lin, k, kd,
                          slope_ref, v_lim, sign)


def electrolyte_cap(const double[::1] params, double i_now_a, double held_a, double sign, double horizon_s):
    return _electrolyte_cap(&params[0], i_now_a, held_a, sign, horizon_s)


def hold_depletion(double[::1] state, const double[::1] params, double dt_s):
    _hold_depletion(&state[0], &params[0], dt_s)


def surface_lead_s(double horizon_s, double tau_s):
    return _surface_lead_s(horizon_s, tau_s)


def derate(double temp_c, double t0, double t1, double t2, double t3):
    return _derate(temp_c, t0, t1, t2, t3)


cdef _check_c(const double[::1] c):
    # The coefficients are written and read through pointers: a short array would be overrun.
    if c.shape[0] < C_N:
        raise ValueError("c shorter than the kernel's layout (C_N)")


def coefficients(const double[::1] params, const double[::1] table, double soc, double temp_c, double g,
                 double[::1] c):
    cdef Py_ssize_t j
    _check_c(c)
    _coefficients(&params[0], &table[0], table.shape[0] // 3, soc, temp_c, g, &c[0])
    for j in range(C_POW):
        c[C_POW + j] = c[j]


def sop_coefficients(const double[::1] params, const double[::1] table, double soc, double temp_c,
                     double[::1] c):
    _check_c(c)
    _sop_coefficients(&params[0], &table[0], table.shape[0] // 3, soc, temp_c, &c[0])


def kinetic_overpotential(const double[::1] c, double i_a):
    return _eta(&c[0], i_a)


def kinetic_slope(const double[::1] c, double i_a):
    return _eta_slope(&c[0], i_a)


def predict(double[::1] state, const double[::1] params, const double[::1] c, double dt_s):
    _predict(&state[0], &params[0], &c[0], dt_s)


def correct(double[::1] state, const double[::1] params, const double[::1] table, const double[::1] c,
            double i_a, double v_v, double temp_c):
    _correct(&state[0], &params[0], &table[0], table.shape[0] // 3, &c[0], i_a, v_v, temp_c)


def fuse_soc(double[::1] state, double soc_meas, double var, double gate):
    cdef double innov = soc_meas - state[S_SOC]
    cdef double s = state[S_P00] + var
    if innov * innov > gate * gate * s:
        return 0
    _update(&state[0], state[S_P00], state[S_P01], state[S_P02], state[S_P03], s, innov, False)
    return 1


def fuse_offset(double[::1] state, double offset_meas, double var, double gate):
    cdef double innov = offset_meas - state[S_B]
    cdef double s = state[S_P33] + var
    if innov * innov > gate * gate * s:
        return 0
    # Only b takes it (consider update for the SoC): see the reference's fuse_offset.
    _update(&state[0], state[S_P03], state[S_P13], state[S_P23], state[S_P33], s, innov, True)
    return 1


def sop(const double[::1] state, const double[::1] params, const double[::1] table, const double[::1] c,
        double horizon_s, double temp_c, double[::1] out, Py_ssize_t offset):
    _check_c(c)
    _sop(&state[0], &params[0], &table[0], table.shape[0] // 3, &c[0], horizon_s, temp_c, &out[offset])


def step(double[::1] state, const double[::1] params, const double[::1] table, double dt_s, double i_a,
         double v_v, double temp_c, const double[::1] horizons_s, double[::1] out, double[::1] c):
    _check_c(c)
    cdef Py_ssize_t n = table.shape[0] // 3
    cdef Py_ssize_t j
    cdef double* st = &state[0]
    cdef const double* pa = &params[0]
    cdef const double* tb = &table[0]
    cdef double* cc = &c[0]
    with nogil:
        _coefficients(pa, tb, n, st[S_SOC], temp_c, pa[P_R_GROWTH], cc)
        _predict(st, pa, cc, dt_s)
        _hold_depletion(st, pa, dt_s)
        _correct(st, pa, tb, n, cc, i_a, v_v, temp_c)
        _smooth_offset(st, pa, dt_s)
        _sop_coefficients(pa, tb, n, st[S_SOC], temp_c, cc)
        for j in range(horizons_s.shape[0]):
            _sop(st, pa, tb, n, cc, horizons_s[j], temp_c, &out[j * O_N])


cdef class Kernel:
    """The per-sample entry points bound to one set of arrays, acquired once (see the reference)."""

    cdef double[::1] state
    cdef const double[::1] params
    cdef const double[::1] table
    cdef const double[::1] horizons_s
    cdef double[::1] out
    cdef double[::1] c
    cdef Py_ssize_t n

    def __init__(self, double[::1] state, const double[::1] params, const double[::1] table,
                 const double[::1] horizons_s, double[::1] out, double[::1] c):
        if state.shape[0] < S_N or params.shape[0] < P_N or c.shape[0] < C_N:
            raise ValueError("state, params or c shorter than the kernel's layout")
        if horizons_s.shape[0] < 1 or out.shape[0] < O_N * horizons_s.shape[0]:
            raise ValueError("no horizon, or out shorter than O_N per horizon")
        if table.shape[0] < 6 or table.shape[0] % 3:
            raise ValueError("the table must hold three columns of at least two points")
        self.state = state
        self.params = params
        self.table = table
        self.horizons_s = horizons_s
        self.out = out
        self.c = c
        self.n = table.shape[0] // 3

    def step(self, double dt_s, double i_a, double v_v, double temp_c):
        cdef Py_ssize_t j
        cdef double* st = &self.state[0]
        cdef const double* pa = &self.params[0]
        cdef const double* tb = &self.table[0]
        cdef double* cc = &self.c[0]
        cdef double* o = &self.out[0]
        cdef const double* hz = &self.horizons_s[0]
        cdef Py_ssize_t nh = self.horizons_s.shape[0]
        cdef Py_ssize_t n = self.n
        with nogil:
            _coefficients(pa, tb, n, st[S_SOC], temp_c, pa[P_R_GROWTH], cc)
            _predict(st, pa, cc, dt_s)
            _hold_depletion(st, pa, dt_s)
            _correct(st, pa, tb, n, cc, i_a, v_v, temp_c)
            _smooth_offset(st, pa, dt_s)
            _sop_coefficients(pa, tb, n, st[S_SOC], temp_c, cc)
            for j in range(nh):
                _sop(st, pa, tb, n, cc, hz[j], temp_c, &o[j * O_N])

    def fuse_soc(self, double soc_meas, double var, double gate):
        return fuse_soc(self.state, soc_meas, var, gate)

    def fuse_offset(self, double offset_meas, double var, double gate):
        return fuse_offset(self.state, offset_meas, var, gate)
