"""Pure-Python reference of the P/Q kernel (see ext/pq.pyx: same maths, same order).

One deterministic step of the IEEE 1547-2018 functions the daemon owns: frequency droop, volt-watt, one
reactive mode (constant PF, constant var, volt-var, watt-var), then the owner's and the battery's limits and
the ratings, with the binding constraints reported. Time is an input; nothing here reads a clock. The
arbitration order and its reasons are in docs/kernel.md.

``step`` accepts the records of edge.control.pq_types or the compiled module's typed records (same
attribute names), so the daemon can swap implementations without rebuilding its objects.
"""

from __future__ import annotations

import math

from edge.control.pq_types import (
    LN10,
    Q_LOW_P_FACTOR_AT_NONE,
    Q_LOW_P_FULL_PU,
    Q_LOW_P_NONE_PU,
    VREF_MAX_PU,
    VREF_MIN_PU,
    Constraint,
    Excitation,
    FreqMode,
    PqInputs,
    PqOutputs,
    PqParams,
    PqState,
    Priority,
    QMode,
)

__all__ = ["PqInputs", "PqOutputs", "PqParams", "PqState", "lag", "pack_and_step", "step"]

INF = math.inf

_RAMP = int(Constraint.RAMP)
_Q_LIMIT = int(Constraint.Q_LIMIT)
_S_LIMIT = int(Constraint.S_LIMIT)
_P_RATING_CHARGE = int(Constraint.P_RATING_CHARGE)
_P_RATING_DISCHARGE = int(Constraint.P_RATING_DISCHARGE)
_SOP_CHARGE = int(Constraint.SOP_CHARGE)
_SOP_DISCHARGE = int(Constraint.SOP_DISCHARGE)
_SOC_FULL = int(Constraint.SOC_FULL)
_SOC_RESERVE = int(Constraint.SOC_RESERVE)
_VOLT_WATT = int(Constraint.VOLT_WATT)
_DROOP_UF = int(Constraint.DROOP_UF)
_DROOP_OF = int(Constraint.DROOP_OF)
_STOP_RAMP = int(Constraint.STOP_RAMP)
_INPUT_INVALID = int(Constraint.INPUT_INVALID)


def lag(  # noqa: PLR0917 - the kernel's numeric signature, mirrored in ext/pq.pyx
    ref: float, prev_target: float, target: float, dt_s: float, olrt_s: float, actuation_tau_s: float
) -> tuple[float, float]:
    """Advance a first-order response that reaches 90 % of a step at ``olrt_s`` (tau = OLRT / ln 10).

    ``ref`` moves towards ``prev_target`` over the elapsed ``dt_s`` (a step seen now starts now, so the
    response to a step at a sample is exactly 90 % one OLRT later). Returns ``(ref, cmd)``: ``ref`` is the
    response the plant's output must follow, ``cmd`` the setpoint that makes a plant with a first-order
    actuation lag ``actuation_tau_s`` follow it (cmd = ref + tau_a * d(ref)/dt). When the plant is slower
    than the wanted response the setpoint is the target itself.
    """
    if olrt_s <= 0.0:
        return target, target
    tau_s = olrt_s / LN10
    ref = prev_target + (ref - prev_target) * math.exp(-dt_s / tau_s)
    c = actuation_tau_s / tau_s
    if c > 1.0:
        c = 1.0
    elif c < 0.0:
        c = 0.0
    return ref, ref + c * (target - ref)


def _seg(x: float, x1: float, y1: float, x2: float, y2: float) -> float:
    # Called only with x1 < x < x2, so the width is positive.
    return y1 + (y2 - y1) * (x - x1) / (x2 - x1)


def _curve2(x: float, x1: float, y1: float, x2: float, y2: float) -> float:
    if x <= x1:
        return y1
    if x < x2:
        return _seg(x, x1, y1, x2, y2)
    return y2


def _curve3(  # noqa: PLR0917
    x: float, x1: float, y1: float, x2: float, y2: float, x3: float, y3: float
) -> float:
    if x <= x1:
        return y1
    if x < x2:
        return _seg(x, x1, y1, x2, y2)
    if x < x3:
        return _seg(x, x2, y2, x3, y3)
    return y3


def _curve4(  # noqa: PLR0917
    x: float, x1: float, y1: float, x2: float, y2: float, x3: float, y3: float, x4: float, y4: float
) -> float:
    if x <= x1:
        return y1
    if x < x2:
        return _seg(x, x1, y1, x2, y2)
    if x < x3:
        return _seg(x, x2, y2, x3, y3)
    if x < x4:
        return _seg(x, x3, y3, x4, y4)
    return y4


def step(p: PqParams, i: PqInputs, s: PqState, o: PqOutputs) -> None:
    """Advance the kernel to ``i.t_s`` and write the setpoints and their reasons into ``o``."""
    mask = 0
    init = s.initialized != 0

    # --- time: never backwards, never NaN
    dt = 0.0
    if init:
        dt = i.t_s - s.t_prev_s
        if not dt > 0.0:
            dt = 0.0
    if not math.isnan(i.t_s):
        s.t_prev_s = i.t_s

    # --- measurements: a NaN holds the last good value and is reported
    v = i.v_pu
    if not math.isnan(v):
        s.v_last_pu = v
    else:
        v = s.v_last_pu
        mask |= _INPUT_INVALID
    f = i.f_hz
    if not math.isnan(f):
        s.f_last_hz = f
    else:
        f = s.f_last_hz
        mask |= _INPUT_INVALID
    p_meas = i.p_meas_w
    if math.isnan(p_meas):
        p_meas = s.p_last_w

    # --- owner and battery limits: discharge limit hi >= 0, charge limit lo <= 0
    soc_lo = i.soc_ev
    soc_hi = i.soc_ev
    if not math.isnan(i.soc_est):
        if math.isnan(soc_lo) or i.soc_est < soc_lo:
            soc_lo = i.soc_est
        if math.isnan(soc_hi) or i.soc_est > soc_hi:
            soc_hi = i.soc_est
    # Unknown SoC is treated as at the reserve (no discharge); charging stays with the EV's own limits.
    hi_soc = INF
    if math.isnan(soc_lo) or soc_lo <= p.soc_min:
        hi_soc = 0.0
    lo_soc = INF
    if not math.isnan(soc_hi) and soc_hi >= p.soc_max:
        lo_soc = 0.0
    sop_dis = i.p_max_discharge_w
    if not sop_dis > 0.0:
        sop_dis = 0.0
    sop_cha = i.p_max_charge_w
    if not sop_cha > 0.0:
        sop_cha = 0.0
    hi = p.p_rated_w
    hi = min(hi, sop_dis)
    hi = min(hi, hi_soc)
    hi_bits = 0
    if p.p_rated_w == hi:
        hi_bits |= _P_RATING_DISCHARGE
    if sop_dis == hi:
        hi_bits |= _SOP_DISCHARGE
    if hi_soc == hi:
        hi_bits |= _SOC_RESERVE
    cha = p.p_rated_charge_w
    cha = min(cha, sop_cha)
    cha = min(cha, lo_soc)
    lo = -cha
    lo_bits = 0
    if p.p_rated_charge_w == cha:
        lo_bits |= _P_RATING_CHARGE
    if sop_cha == cha:
        lo_bits |= _SOP_CHARGE
    if lo_soc == cha:
        lo_bits |= _SOC_FULL

    # --- dispatch basis: the normal ramp (or the stop ramp) slows only this; limits cut it at once
    if i.stop != 0:
        target = 0.0
        rate = p.stop_ramp_w_per_s
        mask |= _STOP_RAMP
    else:
        target = i.p_dispatch_w
        if math.isnan(target):
            target = 0.0
            mask |= _INPUT_INVALID
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
        mask |= _RAMP
    s.p_basis_w = basis

    # --- frequency droop on the pre-disturbance power, bounded by the power available
    fw_mode = FreqMode.DEADBAND
    if p.fw_enabled != 0:
        if f > p.f_nominal_hz + p.fw_db_of_hz:
            fw_mode = FreqMode.OVER
        elif f < p.f_nominal_hz - p.fw_db_uf_hz:
            fw_mode = FreqMode.UNDER
    if fw_mode != FreqMode.DEADBAND and (s.fw_mode == FreqMode.DEADBAND or not init):
        s.p_pre_w = p_meas
    s.fw_mode = fw_mode
    p_fw = basis
    if fw_mode == FreqMode.OVER:
        mask |= _DROOP_OF
        if p.f_nominal_hz * p.fw_k_of > 0.0:
            p_fw = (
                s.p_pre_w
                - (f - (p.f_nominal_hz + p.fw_db_of_hz)) / (p.f_nominal_hz * p.fw_k_of) * p.p_rated_w
            )
            p_floor = p.fw_p_min_pu * p.p_rated_w
            if p_floor <= lo:
                p_floor = lo
                if p_fw < p_floor:
                    mask |= lo_bits
            p_fw = max(p_fw, p_floor)
    elif fw_mode == FreqMode.UNDER:
        mask |= _DROOP_UF
        if p.f_nominal_hz * p.fw_k_uf > 0.0:
            p_fw = (
                s.p_pre_w
                + ((p.f_nominal_hz - p.fw_db_uf_hz) - f) / (p.f_nominal_hz * p.fw_k_uf) * p.p_rated_w
            )
            if p_fw > hi:
                p_fw = hi
                mask |= hi_bits
    dev_target = p_fw - basis
    if not init:
        s.dev_ref_w = dev_target
        s.dev_tgt_w = dev_target
    s.dev_ref_w, dev_cmd = lag(s.dev_ref_w, s.dev_tgt_w, dev_target, dt, p.fw_olrt_s, p.actuation_tau_s)
    s.dev_tgt_w = dev_target
    p_out = basis + dev_cmd

    # --- volt-watt: a cap P <= f(V); it never reduces charging unless P'2 asks for absorption
    if p.vw_enabled != 0:
        p2_w = p.vw_p2_charge_pu * p.p_rated_charge_w if p.vw_absorb != 0 else p.vw_p2_pu * p.p_rated_w
        cap_target = _curve2(v, p.vw_v1_pu, p.vw_p1_pu * p.p_rated_w, p.vw_v2_pu, p2_w)
        if not init:
            s.cap_ref_w = cap_target
            s.cap_tgt_w = cap_target
        s.cap_ref_w, cap = lag(s.cap_ref_w, s.cap_tgt_w, cap_target, dt, p.vw_olrt_s, p.actuation_tau_s)
        s.cap_tgt_w = cap_target
        if cap < p_out:
            p_out = cap
            mask |= _VOLT_WATT
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
    if mode == QMode.VOLT_VAR:
        q_olrt = p.vv_olrt_s
        if p.vv_vref_auto != 0:
            v_tgt = v
            if v_tgt < VREF_MIN_PU:
                v_tgt = VREF_MIN_PU
            elif v_tgt > VREF_MAX_PU:
                v_tgt = VREF_MAX_PU
            if p.vv_vref_tau_s > 0.0:
                s.vref_pu = v_tgt + (s.vref_pu - v_tgt) * math.exp(-dt / p.vv_vref_tau_s)
            else:
                s.vref_pu = v_tgt
        else:
            s.vref_pu = p.vv_vref_pu
        x = v - (s.vref_pu - p.vv_vref_pu)
        q_target = p.s_rated_va * _curve4(
            x,
            p.vv_v1_pu,
            p.vv_q1_pu,
            p.vv_v2_pu,
            p.vv_q2_pu,
            p.vv_v3_pu,
            p.vv_q3_pu,
            p.vv_v4_pu,
            p.vv_q4_pu,
        )
    elif mode == QMode.CONST_PF:
        if p_out >= 0.0:
            pf = p.pf_inj
            ext = p.pf_inj_ext
        else:
            pf = p.pf_charge
            ext = p.pf_charge_ext
        q_target = 0.0
        if 0.0 < pf < 1.0:
            q_target = abs(p_out) * math.sqrt(1.0 / (pf * pf) - 1.0)
            if ext == Excitation.UNDER_EXCITED:
                q_target = -q_target
    elif mode == QMode.CONST_Q:
        q_target = p.q_const_pu * p.s_rated_va if p_out >= 0.0 else p.q_const_charge_pu * p.s_rated_va
    elif mode == QMode.WATT_VAR:
        q_pu = 0.0
        if p_out >= 0.0:
            if p.p_rated_w > 0.0:
                q_pu = _curve3(
                    p_out / p.p_rated_w,
                    p.wv_p1_pu,
                    p.wv_q1_pu,
                    p.wv_p2_pu,
                    p.wv_q2_pu,
                    p.wv_p3_pu,
                    p.wv_q3_pu,
                )
        elif p.p_rated_charge_w > 0.0:
            # Charging-side points run P'1 > P'2 > P'3 (negative): mirror them onto an ascending axis.
            q_pu = _curve3(
                -p_out / p.p_rated_charge_w,
                -p.wv_pc1_pu,
                p.wv_qc1_pu,
                -p.wv_pc2_pu,
                p.wv_qc2_pu,
                -p.wv_pc3_pu,
                p.wv_qc3_pu,
            )
        q_target = q_pu * p.s_rated_va
    else:
        q_target = i.q_dispatch_var
        if math.isnan(q_target):
            q_target = 0.0
            mask |= _INPUT_INVALID
    if not init:
        s.q_ref_var = q_target
        s.q_tgt_var = q_target
    s.q_ref_var, q_out = lag(s.q_ref_var, s.q_tgt_var, q_target, dt, q_olrt, p.actuation_tau_s)
    s.q_tgt_var = q_target

    # --- reactive capability, reduced at low P where the profile says so
    q_inj = p.q_max_inj_var
    q_abs = p.q_max_abs_var
    if p.q_reduced_low_p != 0:
        rated = p.p_rated_w if p_out >= 0.0 else p.p_rated_charge_w
        factor = 0.0
        if rated > 0.0:
            ratio = abs(p_out) / rated
            if ratio >= Q_LOW_P_FULL_PU:
                factor = 1.0
            elif ratio >= Q_LOW_P_NONE_PU:
                factor = Q_LOW_P_FACTOR_AT_NONE + (1.0 - Q_LOW_P_FACTOR_AT_NONE) * (
                    ratio - Q_LOW_P_NONE_PU
                ) / (Q_LOW_P_FULL_PU - Q_LOW_P_NONE_PU)
        q_inj = q_inj * factor
        q_abs = q_abs * factor
    q_inj = min(q_inj, p.s_rated_va)
    q_abs = min(q_abs, p.s_rated_va)
    if q_out > q_inj:
        q_out = q_inj
        mask |= _Q_LIMIT
    elif q_out < -q_abs:
        q_out = -q_abs
        mask |= _Q_LIMIT

    # --- apparent power, with the documented P/Q priority
    s_va = p.s_rated_va
    if p_out * p_out + q_out * q_out > s_va * s_va:
        mask |= _S_LIMIT
        if p.s_priority == Priority.REACTIVE:
            p_out = math.copysign(math.sqrt(s_va * s_va - q_out * q_out), p_out)
        else:
            if p_out > s_va:
                p_out = s_va
            elif p_out < -s_va:
                p_out = -s_va
            q_out = math.copysign(math.sqrt(s_va * s_va - p_out * p_out), q_out)

    s.p_last_w = p_out
    s.initialized = 1

    o.p_w = p_out
    o.q_var = q_out
    o.binding = mask
    o.binding_id = mask.bit_length()
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


def pack_and_step(  # noqa: PLR0917 - positional on purpose: the cheapest packing from Python
    p: PqParams,
    i: PqInputs,
    s: PqState,
    o: PqOutputs,
    t_s: float,
    v_pu: float,
    f_hz: float,
    p_dispatch_w: float,
    q_dispatch_var: float,
    p_max_discharge_w: float,
    p_max_charge_w: float,
    soc_ev: float,
    soc_est: float,
    p_meas_w: float,
    stop: int,
) -> None:
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
    step(p, i, s, o)
