# cython: language_level=3
"""Compiled protection kernel; the reference is edge/control/_protect_ref.py (same maths, same order).

The array indices, states, band modes and reason bits are edge/control/protect_types.py's, included as
compile-time constants from protect_layout.pxi (generated: ``python -m ext.gen_layouts --write``);
``layout()`` returns the indices this module was built with.
"""

from libc.math cimport INFINITY, NAN, copysign, fabs, isnan, sqrt

include "protect_layout.pxi"


cdef inline int _band(double[::1] p, int i_n, int base, double x, bint over) noexcept nogil:
    cdef int n = <int>p[i_n]
    cdef int k
    cdef double edge
    for k in range(n):
        edge = p[base + 4 * k]
        if over:
            if x <= edge:
                return k
        elif x >= edge:
            return k
    return -1


cdef inline int _band_mode(double[::1] p, int base, int k) noexcept nogil:
    if k < 0:
        return MODE_NONE
    return <int>p[base + 4 * k + 1]


cdef inline double _rt_remaining(double[::1] p, int base, int k, double x, double elapsed) noexcept nogil:
    cdef int mode = _band_mode(p, base, k)
    cdef double need, rem
    if mode == MODE_NONE or mode == MODE_CONTINUOUS:
        return 0.0
    need = p[base + 4 * k + 2] + p[base + 4 * k + 3] * fabs(x - p[base + 4 * k])
    rem = need - elapsed
    if rem > 0.0:
        return rem
    return 0.0


cdef inline double _disturbance_start(double[::1] s, int idx, bint disturbed, double t) noexcept nogil:
    if disturbed:
        if isnan(s[idx]):
            s[idx] = t
        return t - s[idx]
    s[idx] = NAN
    return 0.0


cdef inline double _hist_at(double[::1] s, double tm, double fallback) noexcept nogil:
    cdef double best_t = NAN
    cdef double best_p = fallback
    cdef double after_t = NAN
    cdef double after_p = fallback
    cdef double tk, w
    cdef int k
    for k in range(N_HIST):
        tk = s[S_HIST_T + k]
        if isnan(tk):
            continue
        if tk <= tm:
            if isnan(best_t) or tk > best_t:
                best_t = tk
                best_p = s[S_HIST_P + k]
        elif isnan(after_t) or tk < after_t:
            after_t = tk
            after_p = s[S_HIST_P + k]
    if isnan(best_t):
        return after_p
    if isnan(after_t) or after_t <= best_t:
        return best_p
    w = (tm - best_t) / (after_t - best_t)
    return best_p + (after_p - best_p) * w


cdef inline void _hist_range(
    double[::1] s, double t0, double t1, double fallback, double* lo, double* hi
) noexcept nogil:
    cdef double a = _hist_at(s, t0, fallback)
    cdef double b = _hist_at(s, t1, fallback)
    cdef double tk, pk
    cdef int k
    lo[0] = a if a < b else b
    hi[0] = b if a < b else a
    for k in range(N_HIST):
        tk = s[S_HIST_T + k]
        if tk > t0 and tk < t1:
            pk = s[S_HIST_P + k]
            if pk < lo[0]:
                lo[0] = pk
            if pk > hi[0]:
                hi[0] = pk
    if t1 > s[S_STAGE_T_LAST]:
        for k in range(N_CMD):
            pk = s[S_CMD + k]
            if pk < lo[0]:
                lo[0] = pk
            if pk > hi[0]:
                hi[0] = pk


cpdef void step(double[::1] p, double[::1] s, double[::1] i, double[::1] o) noexcept nogil:
    cdef double t, dt, vmax, vmin, f, lat, el_vlo, el_vhi, el_flo, el_fhi
    cdef double rt_vlo, rt_vhi, rt_flo, rt_fhi, trip_rem, pickup, x, rt_rem, need, rem
    cdef double pinv, seq, imp, tm, dts, err, trim, age, sample_age, imp_last
    cdef double t_inv, w0, lo, hi, est, rocof, sign, cnt, inc, res
    cdef double bound, rise, u, es_rem, p_out, q_out, ramp, lim, droop, base, limit
    cdef double dither, resp, prev, q_dither, s_va
    cdef bint meas_ok, in_service, mc_now, mc, picked, holds, pinv_ok, cap_applies, meter_ok, discharging
    cdef bint exporting, in_window, mi_low, steady, value_alive
    cdef int service, k_vlo, k_vhi, k_flo, k_fhi, k, pos, state, check
    cdef long long active = 0
    cdef long long fired = 0
    cdef long long hold = 0

    t = i[I_T_S]
    dt = t - s[S_T_PREV]
    if not dt > 0.0:
        dt = 0.0
    if not t < s[S_T_PREV]:
        s[S_T_PREV] = t
    vmax = i[I_V_MAX_PU]
    vmin = i[I_V_MIN_PU]
    f = i[I_F_HZ]
    meas_ok = vmin <= vmax and vmin >= 0.0 and f > 0.0
    service = <int>s[S_SERVICE]
    in_service = service == NORMAL or service == RAMPING
    lat = p[P_LATENCY_S]

    # 1. ride-through bookkeeping
    el_vlo = _disturbance_start(s, S_VLO_T0, meas_ok and vmin < p[P_V_CONT_LO_PU], t)
    el_vhi = _disturbance_start(s, S_VHI_T0, meas_ok and vmax > p[P_V_CONT_HI_PU], t)
    el_flo = _disturbance_start(s, S_FLO_T0, meas_ok and f < p[P_F_CONT_LO_HZ], t)
    el_fhi = _disturbance_start(s, S_FHI_T0, meas_ok and f > p[P_F_CONT_HI_HZ], t)
    k_vlo = _band(p, P_VLO_N, P_VLO_BANDS, vmin, False) if not isnan(s[S_VLO_T0]) else -2
    k_vhi = _band(p, P_VHI_N, P_VHI_BANDS, vmax, True) if not isnan(s[S_VHI_T0]) else -2
    k_flo = _band(p, P_FLO_N, P_FLO_BANDS, f, False) if not isnan(s[S_FLO_T0]) else -2
    k_fhi = _band(p, P_FHI_N, P_FHI_BANDS, f, True) if not isnan(s[S_FHI_T0]) else -2
    rt_vlo = _rt_remaining(p, P_VLO_BANDS, k_vlo, vmin, el_vlo) if k_vlo > -2 else 0.0
    rt_vhi = _rt_remaining(p, P_VHI_BANDS, k_vhi, vmax, el_vhi) if k_vhi > -2 else 0.0
    rt_flo = _rt_remaining(p, P_FLO_BANDS, k_flo, f, el_flo) if k_flo > -2 else 0.0
    rt_fhi = _rt_remaining(p, P_FHI_BANDS, k_fhi, f, el_fhi) if k_fhi > -2 else 0.0

    mc_now = meas_ok and (vmin < p[P_MC_LO_PU] or vmax > p[P_MC_HI_PU])
    if mc_now:
        s[S_MC_ACTIVE] = 1.0
        s[S_MC_CLEAR_T] = NAN
    elif s[S_MC_ACTIVE] != 0.0:
        if isnan(s[S_MC_CLEAR_T]):
            s[S_MC_CLEAR_T] = t
        if t - s[S_MC_CLEAR_T] >= p[P_MC_RESTORE_S]:
            s[S_MC_ACTIVE] = 0.0
            s[S_MC_CLEAR_T] = NAN
    mc = s[S_MC_ACTIVE] != 0.0

    # 2. trip elements; the owner's trip settings take precedence over ride-through, a backup waits
    trip_rem = INFINITY
    for k in range(8):
        pickup = p[P_TRIP + 2 * k]
        # the backup's voltage (k < 4) or frequency elements wait the regions out
        holds = p[P_RT_HOLDS_V_TRIPS if k < 4 else P_RT_HOLDS_F_TRIPS] != 0.0
        if k < 2:
            x = vmax
            picked = x > pickup
            rt_rem = rt_vhi
        elif k < 4:
            x = vmin
            picked = x < pickup
            rt_rem = rt_vlo
        elif k < 6:
            x = f
            picked = x > pickup
            rt_rem = rt_fhi
        else:
            x = f
            picked = x < pickup
            rt_rem = rt_flo
        if picked:
            if isnan(s[S_TRIP_T0 + k]):
                s[S_TRIP_T0 + k] = t
            need = p[P_TRIP + 2 * k + 1] - lat
            if need < 0.0:
                need = 0.0
            rem = need - (t - s[S_TRIP_T0 + k])
            if holds and rem < rt_rem:
                rem = rt_rem
            if rem <= 0.0:
                fired |= (<long long>1) << k
                rem = 0.0
            elif holds and rt_rem > 0.0:
                active |= R_RIDE_THROUGH
            if rem < trip_rem:
                trip_rem = rem
        else:
            s[S_TRIP_T0 + k] = NAN
    if not meas_ok and in_service:
        fired |= R_GRID_MEAS_INVALID

    # 3a. ROCOF (the pickup timer restarts when the ROCOF changes sign: a pulse is no drift; a later
    # window confirms: one step fills one window)
    if f > 0.0:
        if isnan(s[S_F_REF]):
            s[S_F_REF] = f
            s[S_T_REF] = t
        elif t - s[S_T_REF] >= p[P_ROCOF_WINDOW_S]:
            s[S_ROCOF] = (f - s[S_F_REF]) / (t - s[S_T_REF])
            s[S_F_REF] = f
            s[S_T_REF] = t
    rocof = s[S_ROCOF]
    if fabs(rocof) > p[P_ROCOF_LIMIT_HZ_S]:
        sign = 1.0 if rocof > 0.0 else -1.0
        if isnan(s[S_ROCOF_T0]) or sign != s[S_ROCOF_SIGN]:
            s[S_ROCOF_T0] = t
            s[S_ROCOF_SIGN] = sign
        if t - s[S_ROCOF_T0] >= p[P_ROCOF_PICKUP_S] and s[S_T_REF] > s[S_ROCOF_T0]:
            fired |= R_ISLAND_ROCOF
    else:
        s[S_ROCOF_T0] = NAN

    # 3b. phase jump
    if fabs(i[I_PHASE_JUMP_DEG]) > p[P_PHASE_JUMP_LIMIT_DEG]:
        fired |= R_ISLAND_PHASE_JUMP

    # 4. site meter (history keyed by the stage's read time; a repeated value is no new sample)
    pinv = i[I_P_INV_MEAS_W]
    pinv_ok = not isnan(pinv)
    t_inv = i[I_P_INV_T_S]
    if isnan(t_inv):
        t_inv = t
    if pinv_ok and t_inv != s[S_STAGE_T_LAST]:
        s[S_STAGE_T_LAST] = t_inv
        pos = <int>s[S_HIST_POS]
        s[S_HIST_T + pos] = t_inv
        s[S_HIST_P + pos] = pinv
        s[S_HIST_POS] = <double>((pos + 1) % N_HIST)
    seq = i[I_METER_SEQ]
    imp = i[I_P_SITE_IMPORT_W]
    tm = i[I_METER_T_S]
    cnt = i[I_METER_COUNTER]
    cap_applies = p[P_NON_EXPORT] != 0.0 or i[I_CAP_MODE] != 0.0
    if (
        not isnan(seq)
        and seq != s[S_LAST_SEQ]
        and not isnan(imp)
        and not isnan(tm)
        and pinv_ok
    ):
        s[S_LAST_SEQ] = seq
        s[S_T_LAST_NEW] = t
        s[S_TM_LAST] = tm
        value_alive = False
        if not isnan(cnt) and (
            cnt != s[S_CNT_LAST] or not fabs(imp - s[S_STALL_P_W]) <= p[P_FROZEN_NOISE_W]
        ):
            s[S_STALL_T0] = t
            s[S_STALL_P_W] = imp
        if not isnan(cnt) and cnt != s[S_CNT_LAST]:
            if not isnan(s[S_CNT_LAST]):
                inc = cnt - s[S_CNT_LAST]
                if inc > 0.0 and not inc >= s[S_CNT_STEP]:
                    s[S_CNT_STEP] = inc
                s[S_CNT_E_WH] = 0.0
                s[S_T_CHG] = t
                if s[S_FROZEN_LATCH] != FROZEN_TRACKING:
                    s[S_FROZEN_LATCH] = 0.0
            s[S_CNT_LAST] = cnt
        if imp != s[S_IMP_LAST]:
            res = fabs(imp - s[S_IMP_LAST])
            if not res >= s[S_RES_W]:
                s[S_RES_W] = res
            s[S_IMP_PREV] = s[S_IMP_LAST]
            s[S_IMP_LAST] = imp
            w0 = i[I_METER_T_LO_S]
            if not w0 <= tm:
                w0 = tm
            elif tm - w0 > p[P_STALE_METER_S]:
                w0 = tm - p[P_STALE_METER_S]
            w0 -= p[P_METER_WINDOW_S]
            _hist_range(s, w0, tm, pinv, &lo, &hi)
            est = s[S_LOAD_EST]
            steady = hi - lo <= p[P_STEADY_TOL_W]
            if not est >= imp + lo:
                est = imp + lo
            elif est > imp + hi:
                est = imp + hi
            steady = steady and fabs(est - s[S_LOAD_EST]) <= p[P_STEADY_TOL_W]
            s[S_LOAD_EST] = est
            value_alive = isnan(s[S_P_CHG]) or fabs(imp - s[S_P_CHG]) > p[P_FROZEN_TOL_W]
            dts = tm - s[S_TRIM_T]
            s[S_TRIM_T] = tm
            if cap_applies and steady and dts > 0.0 and dts < p[P_STALE_METER_S]:
                err = imp - (p[P_MARGIN_W] - p[P_EXPORT_CAP_W])
                if err > p[P_TRIM_MAX_W]:
                    err = p[P_TRIM_MAX_W]
                elif err < -p[P_TRIM_MAX_W]:
                    err = -p[P_TRIM_MAX_W]
                trim = s[S_TRIM_W] + p[P_FB_GAIN_PER_S] * err * dts
                if trim > 0.0:
                    trim = 0.0
                elif trim < -p[P_TRIM_MAX_W]:
                    trim = -p[P_TRIM_MAX_W]
                s[S_TRIM_W] = trim
        if value_alive:
            s[S_P_CHG] = imp
            s[S_T_CHG] = t
            s[S_PINV_AT_CHG] = _hist_at(s, tm, pinv)
            s[S_FROZEN_T0] = NAN
            s[S_FROZEN_LATCH] = 0.0
    age = t - s[S_T_LAST_NEW]
    sample_age = t - s[S_TM_LAST]
    if sample_age > age:
        age = sample_age
    if not age < p[P_STALE_METER_S]:
        active |= R_METER_STALE
    discharging = pinv > p[P_DISCHARGE_DETECT_W]
    # frozen: tracking check, then the counter where the meter has one seen moving, else the
    # still-value heuristic gated by the noise floor
    check = 0
    if pinv_ok and not isnan(s[S_P_CHG]) and fabs(pinv - s[S_PINV_AT_CHG]) >= p[P_FROZEN_DELTA_W]:
        if isnan(s[S_FROZEN_T0]):
            s[S_FROZEN_T0] = t
        if t - s[S_FROZEN_T0] >= p[P_FROZEN_S]:
            check = FROZEN_TRACKING
    else:
        s[S_FROZEN_T0] = NAN
    if not isnan(cnt) and not isnan(s[S_CNT_STEP]):
        low = fabs(s[S_IMP_LAST])
        if fabs(s[S_IMP_PREV]) < low:  # (NaN: no earlier value)
            low = fabs(s[S_IMP_PREV])
        if not isnan(low):  # a reading the driver called frozen (NaN) adds nothing
            s[S_CNT_E_WH] += low * dt / 3600.0
        if check == 0 and s[S_CNT_E_WH] > COUNTER_STALL_STEPS * s[S_CNT_STEP]:
            check = FROZEN_COUNTER
    elif (
        check == 0
        and discharging
        and p[P_FROZEN_STILL_S] > 0.0
        and t - s[S_T_CHG] >= p[P_FROZEN_STILL_S]
        and not s[S_RES_W] >= p[P_FROZEN_NOISE_W]
    ):
        check = FROZEN_STILL
    # bounded wait: a counter still for counter_stall_max_s under a value within the noise floor
    if (
        check == 0
        and discharging
        and not isnan(cnt)
        and t - s[S_STALL_T0] >= p[P_COUNTER_STALL_MAX_S]
    ):
        check = FROZEN_COUNTER
    if check != 0 and s[S_FROZEN_LATCH] == 0.0:
        s[S_FROZEN_LATCH] = <double>check
    if s[S_FROZEN_LATCH] != 0.0:
        active |= R_METER_FROZEN
    meter_ok = pinv_ok and (active & (R_METER_STALE | R_METER_FROZEN)) == 0
    imp_last = s[S_IMP_LAST]

    # 3c. minimum import
    mi_low = p[P_MIN_IMPORT_W] > 0.0 and meter_ok and imp_last < p[P_MIN_IMPORT_W]
    if p[P_NON_EXPORT] != 0.0 and in_service and discharging and mi_low:
        if isnan(s[S_MI_T0]):
            s[S_MI_T0] = t
        if t - s[S_MI_T0] >= p[P_MIN_IMPORT_S]:
            fired |= R_ISLAND_MIN_IMPORT
    else:
        s[S_MI_T0] = NAN

    # 3d. active method: reactive dither, the frequency's response per half period
    dither = 0.0
    if p[P_DITHER_VAR] > 0.0 and in_service and discharging and meas_ok and not mc:
        if isnan(s[S_DI_T0]):
            s[S_DI_T0] = t
            s[S_DI_SIGN] = 1.0
            s[S_DI_F_PREV] = NAN
            s[S_DI_COUNT] = 0.0
        s[S_DI_F_LAST] = f
        if t - s[S_DI_T0] >= p[P_DITHER_HALF_S]:
            resp = -s[S_DI_SIGN] * (s[S_DI_F_LAST] - s[S_DI_F_PREV])
            if resp > p[P_DITHER_DF_HZ]:
                prev = s[S_DI_RESP2]
                if s[S_DI_COUNT] < 2.0 or (prev * DITHER_CONSISTENCY >= resp and resp * DITHER_CONSISTENCY >= prev):
                    s[S_DI_COUNT] += 1.0
                else:
                    s[S_DI_COUNT] = 1.0
            else:
                s[S_DI_COUNT] = 0.0
            s[S_DI_RESP2] = s[S_DI_RESP]
            s[S_DI_RESP] = resp
            if s[S_DI_COUNT] >= p[P_DITHER_N]:
                fired |= R_ISLAND_ACTIVE
            s[S_DI_F_PREV] = s[S_DI_F_LAST]
            s[S_DI_SIGN] = -s[S_DI_SIGN]
            s[S_DI_T0] = t
        dither = s[S_DI_SIGN] * p[P_DITHER_VAR]
    else:
        s[S_DI_T0] = NAN
        s[S_DI_COUNT] = 0.0
        s[S_DI_RESP] = NAN
        s[S_DI_RESP2] = NAN

    # export backstop
    exporting = cap_applies and meter_ok and discharging and imp_last < -p[P_EXPORT_CAP_W]
    if exporting:
        if isnan(s[S_EXP_T0]):
            s[S_EXP_T0] = t
        if t - s[S_EXP_T0] >= p[P_BACKSTOP_S]:
            s[S_BACKSTOP_T] = t
    else:
        s[S_EXP_T0] = NAN
    if not isnan(s[S_BACKSTOP_T]):
        if not cap_applies or (not exporting and t - s[S_BACKSTOP_T] >= p[P_BACKSTOP_HOLD_S]):
            s[S_BACKSTOP_T] = NAN
        else:
            active |= R_EXPORT_BACKSTOP

    # export-cap bound
    if meter_ok:
        bound = s[S_LOAD_EST] + p[P_EXPORT_CAP_W] - p[P_MARGIN_W] + s[S_TRIM_W]
        rise = s[S_BOUND_PREV] + p[P_RISE_W_PER_S] * dt
        if bound > rise:
            bound = rise
    else:
        bound = 0.0
    s[S_BOUND_PREV] = bound

    # 5. service state machine
    if i[I_LOCK] != 0.0:
        hold |= R_COMMISSIONING_LOCK
    if not i[I_PERMIT] != 0.0:
        hold |= R_PERMIT_OFF
    active |= hold
    if fired != 0 or (hold != 0 and in_service):
        service = TRIPPED
        s[S_TRIP_REASON] = <double>(fired | hold)
        s[S_ES_T0] = NAN
    in_window = (
        meas_ok
        and vmin >= p[P_ES_V_LO_PU]
        and vmax <= p[P_ES_V_HI_PU]
        and f >= p[P_ES_F_LO_HZ]
        and f <= p[P_ES_F_HI_HZ]
    )
    if service == TRIPPED and hold == 0 and fired == 0 and in_window:
        service = WAITING
    es_rem = 0.0
    if service == WAITING:
        if hold != 0 or not in_window:
            s[S_ES_T0] = NAN
            es_rem = p[P_ES_DELAY_S]
        else:
            if isnan(s[S_ES_T0]):
                s[S_ES_T0] = t
                u = i[I_U_RAND]
                if not u > 0.0:
                    u = 0.0
                elif u > 1.0:
                    u = 1.0
                s[S_ES_RAND_DELAY_S] = u * p[P_ES_RAND_S]
            es_rem = p[P_ES_DELAY_S] + s[S_ES_RAND_DELAY_S] - (t - s[S_ES_T0])
            if es_rem <= 0.0:
                es_rem = 0.0
                s[S_ES_T0] = NAN
                if p[P_ES_RAND_S] > 0.0 or not p[P_ES_RAMP_S] > 0.0:
                    service = NORMAL
                else:
                    service = RAMPING
                    s[S_RAMP_T0] = t
    elif service == TRIPPED:
        es_rem = p[P_ES_DELAY_S]
    s[S_SERVICE] = <double>service

    # 6. output
    p_out = 0.0
    q_out = 0.0
    q_dither = 0.0
    ramp = 0.0
    if service == NORMAL or service == RAMPING:
        ramp = 1.0
        p_out = i[I_P_REQ_W]
        q_out = i[I_Q_REQ_VAR]
        if isnan(p_out):
            p_out = 0.0
        if isnan(q_out):
            q_out = 0.0
        if service == RAMPING:
            ramp = (t - s[S_RAMP_T0]) / p[P_ES_RAMP_S]
            if ramp >= 1.0:
                ramp = 1.0
                s[S_SERVICE] = <double>NORMAL
            lim = ramp * p[P_RATED_W]
            if p_out > lim:
                p_out = lim
            elif p_out < -lim:
                p_out = -lim
        if cap_applies:
            droop = 0.0
            if p[P_CAP_WINS] == 0.0 and i[I_P_DROOP_W] > 0.0:
                droop = i[I_P_DROOP_W]
            base = p_out - droop
            limit = bound
            if not meter_ok or (active & R_EXPORT_BACKSTOP) != 0 or limit < 0.0:
                limit = 0.0
            if base > limit:
                base = limit
                active |= R_CAP_LIMITING
            p_out = base + droop
        if mc:
            p_out = 0.0
            q_out = 0.0
        elif dither != 0.0 and p_out > 0.0:
            q_dither = dither
            q_out += dither
            if q_out > p[P_Q_MAX_INJ_VAR]:
                q_out = p[P_Q_MAX_INJ_VAR]
            elif q_out < -p[P_Q_MAX_ABS_VAR]:
                q_out = -p[P_Q_MAX_ABS_VAR]
            s_va = p[P_S_RATED_VA]
            if p_out * p_out + q_out * q_out > s_va * s_va:
                p_out = copysign(sqrt(s_va * s_va - q_out * q_out), p_out)
    if mc:
        active |= R_MOMENTARY_CESSATION
    active |= fired

    state = <int>s[S_SERVICE]
    for k in range(N_CMD - 1, 0, -1):
        s[S_CMD + k] = s[S_CMD + k - 1]
    s[S_CMD] = p_out
    o[O_P_W] = p_out
    o[O_Q_VAR] = q_out
    o[O_PERMIT_SERVICE] = 1.0 if state == NORMAL or state == RAMPING else 0.0
    if mc and (state == NORMAL or state == RAMPING):
        state = MOMENTARY_CESSATION
    o[O_STATE] = <double>state
    o[O_REASON] = <double>active
    o[O_TRIP_REASON] = s[S_TRIP_REASON]
    o[O_ES_REMAINING_S] = es_rem
    o[O_RAMP_FRACTION] = ramp
    o[O_TRIP_REMAINING_S] = trip_rem
    o[O_LOAD_EST_W] = s[S_LOAD_EST]
    o[O_CAP_BOUND_W] = bound if cap_applies else INFINITY
    o[O_ROCOF_HZ_S] = s[S_ROCOF]
    o[O_METER_AGE_S] = age
    o[O_TRIM_W] = s[S_TRIM_W]
    o[O_FROZEN_CHECK] = s[S_FROZEN_LATCH]
    o[O_DITHER_VAR] = q_dither
    o[O_DITHER_RESP_HZ] = s[S_DI_RESP]
