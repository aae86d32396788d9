# cython: language_level=3
"""Compiled P/Q kernel; the reference is edge/control/_pq_ref.py (same maths, same order).

The step works on four preallocated typed records (attributes named as in edge.control.pq_types), takes
no Python objects apart from them and allocates nothing. The records are generated from pq_types into
pq_layout.pxi (``python -m ext.gen_layouts --write``).
"""

cimport cython
from libc.math cimport copysign, exp, fabs, sqrt, INFINITY

from edge.control import pq_types as _types
from edge.control.pq_types import copy_fields

cdef double LN10_C = _types.LN10
cdef double Q_LOW_P_NONE = _types.Q_LOW_P_NONE_PU
cdef double Q_LOW_P_FULL = _types.Q_LOW_P_FULL_PU
cdef double Q_LOW_P_FACTOR = _types.Q_LOW_P_FACTOR_AT_NONE
cdef double VREF_MIN = _types.VREF_MIN_PU
cdef double VREF_MAX = _types.VREF_MAX_PU

cdef int C_RAMP = _types.Constraint.RAMP
cdef int C_Q_LIMIT = _types.Constraint.Q_LIMIT
cdef int C_S_LIMIT = _types.Constraint.S_LIMIT
cdef int C_P_RATING_CHARGE = _types.Constraint.P_RATING_CHARGE
cdef int C_P_RATING_DISCHARGE = _types.Constraint.P_RATING_DISCHARGE
cdef int C_SOP_CHARGE = _types.Constraint.SOP_CHARGE
cdef int C_SOP_DISCHARGE = _types.Constraint.SOP_DISCHARGE
cdef int C_SOC_FULL = _types.Constraint.SOC_FULL
cdef int C_SOC_RESERVE = _types.Constraint.SOC_RESERVE
cdef int C_VOLT_WATT = _types.Constraint.VOLT_WATT
cdef int C_DROOP_UF = _types.Constraint.DROOP_UF
cdef int C_DROOP_OF = _types.Constraint.DROOP_OF
cdef int C_STOP_RAMP = _types.Constraint.STOP_RAMP
cdef int C_INPUT_INVALID = _types.Constraint.INPUT_INVALID

cdef int Q_CONST_PF = _types.QMode.CONST_PF
cdef int Q_CONST_Q = _types.QMode.CONST_Q
cdef int Q_VOLT_VAR = _types.QMode.VOLT_VAR
cdef int Q_WATT_VAR = _types.QMode.WATT_VAR
cdef int PRI_REACTIVE = _types.Priority.REACTIVE
cdef int EXT_UNDER = _types.Excitation.UNDER_EXCITED
cdef int FM_UNDER = _types.FreqMode.UNDER
cdef int FM_DEADBAND = _types.FreqMode.DEADBAND
cdef int FM_OVER = _types.FreqMode.OVER


include "pq_layout.pxi"


cdef inline double lag_c(double* ref, double prev_target, double target, double dt_s, double olrt_s,
                         double actuation_tau_s) noexcept nogil:
    cdef double tau_s, c, r
    if olrt_s <= 0.0:
        ref[0] = target
        return target
    tau_s = olrt_s / LN10_C
    r = prev_target + (ref[0] - prev_target) * exp(-dt_s / tau_s)
    ref[0] = r
    c = actuation_tau_s / tau_s
    if c > 1.0:
        c = 1.0
    elif c < 0.0:
        c = 0.0
    return r + c * (target - r)


def lag(double ref, double prev_target, double target, double dt_s, double olrt_s, double actuation_tau_s):
    """Same as edge.control._pq_ref.lag: returns ``(ref, cmd)``."""
    cdef double cmd = lag_c(&ref, prev_target, target, dt_s, olrt_s, actuation_tau_s)
    return ref, cmd


cdef inline double seg(double x, double x1, double y1, double x2, double y2) noexcept nogil:
    return y1 + (y2 - y1) * (x - x1) / (x2 - x1)


cdef inline double curve2(double x, double x1, double y1, double x2, double y2) noexcept nogil:
    if x <= x1:
        return y1
    if x < x2:
        return seg(x, x1, y1, x2, y2)
    return y2


cdef inline double curve3(double x, double x1, double y1, double x2, double y2,
                          double x3, double y3) noexcept nogil:
    if x <= x1:
        return y1
    if x < x2:
        return seg(x, x1, y1, x2, y2)
    if x < x3:
        return seg(x, x2, y2, x3, y3)
    return y3


cdef inline double curve4(double x, double x1, double y1, double x2, double y2,
                          double x3, double y3, double x4, double y4) noexcept nogil:
    if x <= x1:
        return y1
    if x < x2:
        return seg(x, x1, y1, x2, y2)
    if x < x3:
        return seg(x, x2, y2, x3, y3)
    if x < x4:
        return seg(x, x3, y3, x4, y4)
    return y4


# binding=False: a plain builtin is called ~25 % faster than a cyfunction (no introspection needed).
@cython.binding(False)
def step(PqParams p not None, PqInputs i not None, PqState s not None, PqOutputs o not None):
    """Advance the kernel to ``i.t_s`` and write the setpoints and their reasons into ``o``."""
    step_c(p, i, s, o)


cdef void step_c(PqParams p, PqInputs i, PqState s, PqOutputs o) noexcept:
    cdef int mask = 0
    cdef bint init = s.initialized != 0
    cdef double dt = 0.0
    cdef double v, f, p_meas, soc_lo, soc_hi, hi_soc, lo_soc, sop_dis, sop_cha, hi, cha, lo
    cdef double target, rate, basis, dp, p_fw, p_floor, dev_target, dev_cmd, p_out
    cdef double p2_w, cap_target, cap, q_olrt, v_tgt, x, q_target, pf, q_pu, q_out
    cdef double q_inj, q_abs, rated, factor, ratio, s_va
    cdef int hi_bits, lo_bits, fw_mode, mode, ext, ident

    # --- time: never backwards, never NaN
    if init:
        dt = i.t_s - s.t_prev_s
        if not dt > 0.0:
            dt = 0.0
    if i.t_s == i.t_s:
        s.t_prev_s = i.t_s

    # --- measurements: a NaN holds the last good value and is reported
    v = i.v_pu
    if v == v:
        s.v_last_pu = v
    else:
        v = s.v_last_pu
        mask |= C_INPUT_INVALID
    f = i.f_hz
    if f == f:
        s.f_last_hz = f
    else:
        f = s.f_last_hz
        mask |= C_INPUT_INVALID
    p_meas = i.p_meas_w
    if p_meas != p_meas:
        p_meas = s.p_last_w

    # --- owner and battery limits: discharge limit hi >= 0, charge limit lo <= 0
    soc_lo = i.soc_ev
    soc_hi = i.soc_ev
    if i.soc_est == i.soc_est:
        if soc_lo != soc_lo or i.soc_est < soc_lo:
            soc_lo = i.soc_est
        if soc_hi != soc_hi or i.soc_est > soc_hi:
            soc_hi = i.soc_est
    hi_soc = INFINITY
    if soc_lo != soc_lo or soc_lo <= p.soc_min:
        hi_soc = 0.0
    lo_soc = INFINITY
    if soc_hi == soc_hi and soc_hi >= p.soc_max:
        lo_soc = 0.0
    sop_dis = i.p_max_discharge_w
    if not sop_dis > 0.0:
        sop_dis = 0.0
    sop_cha = i.p_max_charge_w
    if not sop_cha > 0.0:
        sop_cha = 0.0
    hi = p.p_rated_w
    if sop_dis < hi:
        hi = sop_dis
    if hi_soc < hi:
        hi = hi_soc
    hi_bits = 0
    if p.p_rated_w == hi:
        hi_bits |= C_P_RATING_DISCHARGE
    if sop_dis == hi:
        hi_bits |= C_SOP_DISCHARGE
    if hi_soc == hi:
        hi_bits |= C_SOC_RESERVE
    cha = p.p_rated_charge_w
    if sop_cha < cha:
        cha = sop_cha
    if lo_soc < cha:
        cha = lo_soc
    lo = -cha
    lo_bits = 0
    if p.p_rated_charge_w == cha:
        lo_bits |= C_P_RATING_CHARGE
    if sop_cha == cha:
        lo_bits |= C_SOP_CHARGE
    if lo_soc == cha:
        lo_bits |= C_SOC_FULL

    # --- dispatch basis: the normal ramp (or the stop ramp) slows only this; limits cut it at once
    if i.stop != 0:
        target = 0.0
        rate = p.stop_ramp_w_per_s
        mask |= C_STOP_RAMP
    else:
        target = i.p_dispatch_w
        if target != target:
            target = 0.0
            mask |= C_INPUT_INVALID
        rate = p.ramp_w_per_s
        if target > hi:
            target = hi
            mask |= hi_bits
        elif target < lo:
            target = lo
            mask |= lo_bits
    basis = s.p_basis_w if init else p_meas
    if i.stop != 0 and init and ((0.0 <= p_meas < basis) or (basis < p_meas <= 0.0)):
        # A stop ramps down from where the charger is: a limit downstream of this kernel (the export
        # cap) may hold the output well below the dispatch basis.
        basis = p_meas
    if rate > 0.0:
        dp = rate * dt
        if basis < target - dp:
            basis = basis + dp
        elif basis > target + dp:
            basis = basis - dp
        else:
            basis = target
    else:
        basis = target
    if basis > hi:
        basis = hi
        mask |= hi_bits
    elif basis < lo:
        basis = lo
        mask |= lo_bits
    if basis != target and i.stop == 0:
        mask |= C_RAMP
    s.p_basis_w = basis

    # --- frequency droop on the pre-disturbance power, bounded by the power available
    fw_mode = FM_DEADBAND
    if p.fw_enabled != 0:
        if f > p.f_nominal_hz + p.fw_db_of_hz:
            fw_mode = FM_OVER
        elif f < p.f_nominal_hz - p.fw_db_uf_hz:
            fw_mode = FM_UNDER
    if fw_mode != FM_DEADBAND and (s.fw_mode == FM_DEADBAND or not init):
        s.p_pre_w = p_meas
    s.fw_mode = fw_mode
    p_fw = basis
    if fw_mode == FM_OVER:
        mask |= C_DROOP_OF
        if p.f_nominal_hz * p.fw_k_of > 0.0:
            p_fw = s.p_pre_w - (f - (p.f_nominal_hz + p.fw_db_of_hz)) / (p.f_nominal_hz * p.fw_k_of) * p.p_rated_w
            p_floor = p.fw_p_min_pu * p.p_rated_w
            if p_floor <= lo:
                p_floor = lo
                if p_fw < p_floor:
                    mask |= lo_bits
            if p_fw < p_floor:
                p_fw = p_floor
    elif fw_mode == FM_UNDER:
        mask |= C_DROOP_UF
        if p.f_nominal_hz * p.fw_k_uf > 0.0:
            p_fw = s.p_pre_w + ((p.f_nominal_hz - p.fw_db_uf_hz) - f) / (p.f_nominal_hz * p.fw_k_uf) * p.p_rated_w
            if p_fw > hi:
                p_fw = hi
                mask |= hi_bits
    dev_target = p_fw - basis
    if not init:
        s.dev_ref_w = dev_target
        s.dev_tgt_w = dev_target
    dev_cmd = lag_c(&s.dev_ref_w, s.dev_tgt_w, dev_target, dt, p.fw_olrt_s, p.actuation_tau_s)
    s.dev_tgt_w = dev_target
    p_out = basis + dev_cmd

    # --- volt-watt: a cap P <= f(V); it never reduces charging unless P'2 asks for absorption
    if p.vw_enabled != 0:
        if p.vw_absorb != 0:
            p2_w = p.vw_p2_charge_pu * p.p_rated_charge_w
        else:
            p2_w = p.vw_p2_pu * p.p_rated_w
        cap_target = curve2(v, p.vw_v1_pu, p.vw_p1_pu * p.p_rated_w, p.vw_v2_pu, p2_w)
        if not init:
            s.cap_ref_w = cap_target
            s.cap_tgt_w = cap_target
        cap = lag_c(&s.cap_ref_w, s.cap_tgt_w, cap_target, dt, p.vw_olrt_s, p.actuation_tau_s)
        s.cap_tgt_w = cap_target
        if cap < p_out:
            p_out = cap
            mask |= C_VOLT_WATT
    else:
        cap = hi
        s.cap_ref_w = hi
        s.cap_tgt_w = hi

    # --- SoC window, SoP and P ratings
    if p_out > hi:
        p_out = hi
        mask |= hi_bits
    elif p_out < lo:
        p_out = lo
        mask |= lo_bits

    # --- reactive power: one mode
    mode = p.q_mode
    q_olrt = p.q_olrt_s
    if not init:
        s.vref_pu = p.vv_vref_pu
    if mode == Q_VOLT_VAR:
        q_olrt = p.vv_olrt_s
        if p.vv_vref_auto != 0:
            v_tgt = v
            if v_tgt < VREF_MIN:
                v_tgt = VREF_MIN
            elif v_tgt > VREF_MAX:
                v_tgt = VREF_MAX
            if p.vv_vref_tau_s > 0.0:
                s.vref_pu = v_tgt + (s.vref_pu - v_tgt) * exp(-dt / p.vv_vref_tau_s)
            else:
                s.vref_pu = v_tgt
        else:
            s.vref_pu = p.vv_vref_pu
        x = v - (s.vref_pu - p.vv_vref_pu)
        q_target = p.s_rated_va * curve4(x, p.vv_v1_pu, p.vv_q1_pu, p.vv_v2_pu, p.vv_q2_pu,
                                         p.vv_v3_pu, p.vv_q3_pu, p.vv_v4_pu, p.vv_q4_pu)
    elif mode == Q_CONST_PF:
        if p_out >= 0.0:
            pf = p.pf_inj
            ext = p.pf_inj_ext
        else:
            pf = p.pf_charge
            ext = p.pf_charge_ext
        q_target = 0.0
        if 0.0 < pf < 1.0:
            q_target = fabs(p_out) * sqrt(1.0 / (pf * pf) - 1.0)
            if ext == EXT_UNDER:
                q_target = -q_target
    elif mode == Q_CONST_Q:
        if p_out >= 0.0:
            q_target = p.q_const_pu * p.s_rated_va
        else:
            q_target = p.q_const_charge_pu * p.s_rated_va
    elif mode == Q_WATT_VAR:
        q_pu = 0.0
        if p_out >= 0.0:
            if p.p_rated_w > 0.0:
                q_pu = curve3(p_out / p.p_rated_w, p.wv_p1_pu, p.wv_q1_pu, p.wv_p2_pu, p.wv_q2_pu,
                              p.wv_p3_pu, p.wv_q3_pu)
        elif p.p_rated_charge_w > 0.0:
            q_pu = curve3(-p_out / p.p_rated_charge_w, -p.wv_pc1_pu, p.wv_qc1_pu, -p.wv_pc2_pu, p.wv_qc2_pu,
                          -p.wv_pc3_pu, p.wv_qc3_pu)
        q_target = q_pu * p.s_rated_va
    else:
        q_target = i.q_dispatch_var
        if q_target != q_target:
            q_target = 0.0
            mask |= C_INPUT_INVALID
    if not init:
        s.q_ref_var = q_target
        s.q_tgt_var = q_target
    q_out = lag_c(&s.q_ref_var, s.q_tgt_var, q_target, dt, q_olrt, p.actuation_tau_s)
    s.q_tgt_var = q_target

    # --- reactive capability, reduced at low P where the profile says so
    q_inj = p.q_max_inj_var
    q_abs = p.q_max_abs_var
    if p.q_reduced_low_p != 0:
        rated = p.p_rated_w if p_out >= 0.0 else p.p_rated_charge_w
        factor = 0.0
        if rated > 0.0:
            ratio = fabs(p_out) / rated
            if ratio >= Q_LOW_P_FULL:
                factor = 1.0
            elif ratio >= Q_LOW_P_NONE:
                factor = Q_LOW_P_FACTOR + (1.0 - Q_LOW_P_FACTOR) * (ratio - Q_LOW_P_NONE) / (
                    Q_LOW_P_FULL - Q_LOW_P_NONE)
        q_inj = q_inj * factor
        q_abs = q_abs * factor
    if q_inj > p.s_rated_va:
        q_inj = p.s_rated_va
    if q_abs > p.s_rated_va:
        q_abs = p.s_rated_va
    if q_out > q_inj:
        q_out = q_inj
        mask |= C_Q_LIMIT
    elif q_out < -q_abs:
        q_out = -q_abs
        mask |= C_Q_LIMIT

    # --- apparent power, with the documented P/Q priority
    s_va = p.s_rated_va
    if p_out * p_out + q_out * q_out > s_va * s_va:
        mask |= C_S_LIMIT
        if p.s_priority == PRI_REACTIVE:
            p_out = copysign(sqrt(s_va * s_va - q_out * q_out), p_out)
        else:
            if p_out > s_va:
                p_out = s_va
            elif p_out < -s_va:
                p_out = -s_va
            q_out = copysign(sqrt(s_va * s_va - p_out * p_out), q_out)

    s.p_last_w = p_out
    s.initialized = 1

    ident = 0
    while mask >> ident:
        ident += 1
    o.p_w = p_out
    o.q_var = q_out
    o.binding = mask
    o.binding_id = ident
    o.p_basis_w = basis
    o.p_fw_w = p_fw
    o.p_pre_w = s.p_pre_w
    o.p_vw_cap_w = cap
    o.p_hi_w = hi
    o.p_lo_w = lo
    o.q_fn_var = q_target
    o.q_cap_inj_var = q_inj
    o.q_cap_abs_var = q_abs
    o.vref_pu = s.vref_pu


@cython.binding(False)
def pack_and_step(PqParams p not None, PqInputs i not None, PqState s not None, PqOutputs o not None,
                  double t_s, double v_pu, double f_hz, double p_dispatch_w, double q_dispatch_var,
                  double p_max_discharge_w, double p_max_charge_w, double soc_ev, double soc_est,
                  double p_meas_w, int stop):
    """Fill ``i`` from the arguments (the cheap way to pack from Python), then ``step``."""
    i.t_s = t_s
    i.v_pu = v_pu
    i.f_hz = f_hz
    i.p_dispatch_w = p_dispatch_w
    i.q_dispatch_var = q_dispatch_var
    i.p_max_discharge_w = p_max_discharge_w
    i.p_max_charge_w = p_max_charge_w
    i.soc_ev = soc_ev
    i.soc_est = soc_est
    i.p_meas_w = p_meas_w
    i.stop = stop
    step_c(p, i, s, o)
