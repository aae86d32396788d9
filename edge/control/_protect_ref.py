"""Pure-Python reference of the protection kernel (see ext/protect.pyx; same maths, same order).

One call of ``step(p, s, i, o)`` advances the supervisory protection by one daemon cycle. It acts after
kernel I (edge/control/pq.py) on that kernel's P/Q request and produces the final command:

1. ride-through bookkeeping: how long voltage and frequency have been outside their continuous
   operation region, which band they are in; momentary cessation beyond its voltage thresholds;
2. the eight trip elements (OV2, OV1, UV1, UV2, OF2, OF1, UF1, UF2): a trip fires once the quantity
   has stayed beyond pickup for the clearing time minus the actuation latency; the owner's settings
   take precedence over ride-through, a supervisory backup never fires while a region still requires
   operation;
3. passive islanding detectors: ROCOF beyond the category's ride-through over successive windows,
   phase jump, and for non-export sites minimum import at the site meter; the active method (a
   reactive dither whose frequency response only an island shows);
4. site-meter freshness (stale, frozen) and the V2H export cap: the discharge command is bounded by the
   estimated house load plus the cap minus the margin, trimmed by a slow feedback term, with a backstop;
5. the service state machine (tripped, waiting to enter service, ramping in, normal) and the output.

Arrays are float64 with the layouts of edge/control/protect_types.py; times are the caller's monotonic
seconds. ``math.nan`` marks "not running" for every timer start. Comparisons are written so that a NaN
input always lands on the safe side (a NaN is never "fresh", never "inside the window").
"""

from __future__ import annotations

import math

from edge.control.protect_types import (
    COUNTER_STALL_STEPS,
    DITHER_CONSISTENCY,
    I_CAP_MODE,
    I_F_HZ,
    I_LOCK,
    I_METER_COUNTER,
    I_METER_SEQ,
    I_METER_T_LO_S,
    I_METER_T_S,
    I_P_DROOP_W,
    I_P_INV_MEAS_W,
    I_P_INV_T_S,
    I_P_REQ_W,
    I_P_SITE_IMPORT_W,
    I_PERMIT,
    I_PHASE_JUMP_DEG,
    I_Q_REQ_VAR,
    I_T_S,
    I_U_RAND,
    I_V_MAX_PU,
    I_V_MIN_PU,
    N_CMD,
    N_HIST,
    O_CAP_BOUND_W,
    O_DITHER_RESP_HZ,
    O_DITHER_VAR,
    O_ES_REMAINING_S,
    O_FROZEN_CHECK,
    O_LOAD_EST_W,
    O_METER_AGE_S,
    O_P_W,
    O_PERMIT_SERVICE,
    O_Q_VAR,
    O_RAMP_FRACTION,
    O_REASON,
    O_ROCOF_HZ_S,
    O_STATE,
    O_TRIM_W,
    O_TRIP_REASON,
    O_TRIP_REMAINING_S,
    P_BACKSTOP_HOLD_S,
    P_BACKSTOP_S,
    P_CAP_WINS,
    P_COUNTER_STALL_MAX_S,
    P_DISCHARGE_DETECT_W,
    P_DITHER_DF_HZ,
    P_DITHER_HALF_S,
    P_DITHER_N,
    P_DITHER_VAR,
    P_ES_DELAY_S,
    P_ES_F_HI_HZ,
    P_ES_F_LO_HZ,
    P_ES_RAMP_S,
    P_ES_RAND_S,
    P_ES_V_HI_PU,
    P_ES_V_LO_PU,
    P_EXPORT_CAP_W,
    P_F_CONT_HI_HZ,
    P_F_CONT_LO_HZ,
    P_FB_GAIN_PER_S,
    P_FHI_BANDS,
    P_FHI_N,
    P_FLO_BANDS,
    P_FLO_N,
    P_FROZEN_DELTA_W,
    P_FROZEN_NOISE_W,
    P_FROZEN_S,
    P_FROZEN_STILL_S,
    P_FROZEN_TOL_W,
    P_LATENCY_S,
    P_MARGIN_W,
    P_MC_HI_PU,
    P_MC_LO_PU,
    P_MC_RESTORE_S,
    P_METER_WINDOW_S,
    P_MIN_IMPORT_S,
    P_MIN_IMPORT_W,
    P_NON_EXPORT,
    P_PHASE_JUMP_LIMIT_DEG,
    P_Q_MAX_ABS_VAR,
    P_Q_MAX_INJ_VAR,
    P_RATED_W,
    P_RISE_W_PER_S,
    P_ROCOF_LIMIT_HZ_S,
    P_ROCOF_PICKUP_S,
    P_ROCOF_WINDOW_S,
    P_RT_HOLDS_F_TRIPS,
    P_RT_HOLDS_V_TRIPS,
    P_S_RATED_VA,
    P_STALE_METER_S,
    P_STEADY_TOL_W,
    P_TRIM_MAX_W,
    P_TRIP,
    P_V_CONT_HI_PU,
    P_V_CONT_LO_PU,
    P_VHI_BANDS,
    P_VHI_N,
    P_VLO_BANDS,
    P_VLO_N,
    S_BACKSTOP_T,
    S_BOUND_PREV,
    S_CMD,
    S_CNT_E_WH,
    S_CNT_LAST,
    S_CNT_STEP,
    S_DI_COUNT,
    S_DI_F_LAST,
    S_DI_F_PREV,
    S_DI_RESP,
    S_DI_RESP2,
    S_DI_SIGN,
    S_DI_T0,
    S_ES_RAND_DELAY_S,
    S_ES_T0,
    S_EXP_T0,
    S_F_REF,
    S_FHI_T0,
    S_FLO_T0,
    S_FROZEN_LATCH,
    S_FROZEN_T0,
    S_HIST_P,
    S_HIST_POS,
    S_HIST_T,
    S_IMP_LAST,
    S_IMP_PREV,
    S_LAST_SEQ,
    S_LOAD_EST,
    S_MC_ACTIVE,
    S_MC_CLEAR_T,
    S_MI_T0,
    S_P_CHG,
    S_PINV_AT_CHG,
    S_RAMP_T0,
    S_RES_W,
    S_ROCOF,
    S_ROCOF_SIGN,
    S_ROCOF_T0,
    S_SERVICE,
    S_STAGE_T_LAST,
    S_STALL_P_W,
    S_STALL_T0,
    S_T_CHG,
    S_T_LAST_NEW,
    S_T_PREV,
    S_T_REF,
    S_TM_LAST,
    S_TRIM_T,
    S_TRIM_W,
    S_TRIP_REASON,
    S_TRIP_T0,
    S_VHI_T0,
    S_VLO_T0,
    FloatArray,
)

# Integer codes as plain constants (the compiled kernel uses the same numbers; see protect_types).
NORMAL = 0
MOMENTARY_CESSATION = 1
TRIPPED = 2
WAITING = 3
RAMPING = 4
MODE_CONTINUOUS = 0
MODE_NONE = 4
R_ISLAND_ROCOF = 1 << 8
R_ISLAND_PHASE_JUMP = 1 << 9
R_ISLAND_MIN_IMPORT = 1 << 10
R_GRID_MEAS_INVALID = 1 << 11
R_COMMISSIONING_LOCK = 1 << 12
R_PERMIT_OFF = 1 << 13
R_MOMENTARY_CESSATION = 1 << 14
R_EXPORT_BACKSTOP = 1 << 15
R_METER_STALE = 1 << 16
R_METER_FROZEN = 1 << 17
R_CAP_LIMITING = 1 << 18
R_RIDE_THROUGH = 1 << 19
R_ISLAND_ACTIVE = 1 << 20
FROZEN_TRACKING = 1
FROZEN_STILL = 2
FROZEN_COUNTER = 3

INF = math.inf
NAN = math.nan


def _band(p: FloatArray, i_n: int, base: int, x: float, over: bool) -> int:
    """Index of the ride-through band holding ``x`` beyond the continuous region; -1 past the last band.

    Bands are stored from the continuous region outwards as (far edge, mode, t0_s, slope_s_per_unit).
    Over-value bands are (near, far]; under-value bands are [far, near).
    """
    n = int(p[i_n])
    for k in range(n):
        edge = p[base + 4 * k]
        if over:
            if x <= edge:
                return k
        elif x >= edge:
            return k
    return -1


def _band_mode(p: FloatArray, base: int, k: int) -> int:
    if k < 0:
        return MODE_NONE
    return int(p[base + 4 * k + 1])


def _rt_remaining(p: FloatArray, base: int, k: int, x: float, elapsed: float) -> float:
    """Ride-through time still required in band ``k`` after ``elapsed`` seconds of disturbance."""
    mode = _band_mode(p, base, k)
    if mode in (MODE_NONE, MODE_CONTINUOUS):
        return 0.0
    need = p[base + 4 * k + 2] + p[base + 4 * k + 3] * math.fabs(x - p[base + 4 * k])
    rem = need - elapsed
    if rem > 0.0:
        return float(rem)
    return 0.0


def _disturbance_start(s: FloatArray, idx: int, disturbed: bool, t: float) -> float:
    """Keep the start time of a disturbance in ``s[idx]``; return seconds since it began (0 if none)."""
    if disturbed:
        if math.isnan(s[idx]):
            s[idx] = t
        return float(t - s[idx])
    s[idx] = NAN
    return 0.0


def _hist_at(s: FloatArray, tm: float, fallback: float) -> float:
    """Inverter power at time ``tm`` from the history ring (linear between samples).

    Before the oldest entry the oldest value is used (a sample that old is stale anyway); after the
    newest, the newest. ``fallback`` when the ring is empty.
    """
    best_t = NAN
    best_p = fallback
    after_t = NAN
    after_p = fallback
    for k in range(N_HIST):
        tk = s[S_HIST_T + k]
        if math.isnan(tk):
            continue
        if tk <= tm:
            if math.isnan(best_t) or tk > best_t:
                best_t = tk
                best_p = s[S_HIST_P + k]
        elif math.isnan(after_t) or tk < after_t:
            after_t = tk
            after_p = s[S_HIST_P + k]
    if math.isnan(best_t):
        return float(after_p)
    if math.isnan(after_t) or after_t <= best_t:
        return float(best_p)
    w = (tm - best_t) / (after_t - best_t)
    return float(best_p + (after_p - best_p) * w)


def _hist_range(s: FloatArray, t0: float, t1: float, fallback: float) -> tuple[float, float]:
    """Lowest and highest inverter power over ``[t0, t1]``: the interpolated ends and every entry between.

    Past the newest reading the power is unknown but on its way from that reading to the commands
    given since, so the recent commands widen the range there.
    """
    a = _hist_at(s, t0, fallback)
    b = _hist_at(s, t1, fallback)
    lo = min(a, b)
    hi = max(a, b)
    for k in range(N_HIST):
        tk = s[S_HIST_T + k]
        if tk > t0 and tk < t1:  # False for NaN
            pk = s[S_HIST_P + k]
            lo = min(lo, pk)
            hi = max(hi, pk)
    if t1 > s[S_STAGE_T_LAST]:
        for k in range(N_CMD):
            pk = s[S_CMD + k]
            lo = min(lo, pk)  # a NaN pk (no command yet) leaves lo: min keeps its first argument
            hi = max(hi, pk)
    return lo, hi


def step(p: FloatArray, s: FloatArray, i: FloatArray, o: FloatArray) -> None:
    """Advance the protection kernel by one cycle; writes the command and telemetry into ``o``."""
    t = i[I_T_S]
    dt = t - s[S_T_PREV]
    if not dt > 0.0:
        dt = 0.0
    if not t < s[S_T_PREV]:
        s[S_T_PREV] = t
    vmax = i[I_V_MAX_PU]
    vmin = i[I_V_MIN_PU]
    f = i[I_F_HZ]
    meas_ok = vmin <= vmax and vmin >= 0.0 and f > 0.0  # False for any NaN
    service = int(s[S_SERVICE])
    in_service = service in (NORMAL, RAMPING)
    lat = p[P_LATENCY_S]
    active = 0  # reason bits active now
    fired = 0  # reason bits that trip in this cycle

    # 1. ride-through bookkeeping
    el_vlo = _disturbance_start(s, S_VLO_T0, meas_ok and vmin < p[P_V_CONT_LO_PU], t)
    el_vhi = _disturbance_start(s, S_VHI_T0, meas_ok and vmax > p[P_V_CONT_HI_PU], t)
    el_flo = _disturbance_start(s, S_FLO_T0, meas_ok and f < p[P_F_CONT_LO_HZ], t)
    el_fhi = _disturbance_start(s, S_FHI_T0, meas_ok and f > p[P_F_CONT_HI_HZ], t)
    k_vlo = _band(p, P_VLO_N, P_VLO_BANDS, vmin, False) if not math.isnan(s[S_VLO_T0]) else -2
    k_vhi = _band(p, P_VHI_N, P_VHI_BANDS, vmax, True) if not math.isnan(s[S_VHI_T0]) else -2
    k_flo = _band(p, P_FLO_N, P_FLO_BANDS, f, False) if not math.isnan(s[S_FLO_T0]) else -2
    k_fhi = _band(p, P_FHI_N, P_FHI_BANDS, f, True) if not math.isnan(s[S_FHI_T0]) else -2
    rt_vlo = _rt_remaining(p, P_VLO_BANDS, k_vlo, vmin, el_vlo) if k_vlo > -2 else 0.0
    rt_vhi = _rt_remaining(p, P_VHI_BANDS, k_vhi, vmax, el_vhi) if k_vhi > -2 else 0.0
    rt_flo = _rt_remaining(p, P_FLO_BANDS, k_flo, f, el_flo) if k_flo > -2 else 0.0
    rt_fhi = _rt_remaining(p, P_FHI_BANDS, k_fhi, f, el_fhi) if k_fhi > -2 else 0.0

    # momentary cessation: beyond a threshold now, or within the restore delay after coming back inside
    mc_now = meas_ok and (vmin < p[P_MC_LO_PU] or vmax > p[P_MC_HI_PU])
    if mc_now:
        s[S_MC_ACTIVE] = 1.0
        s[S_MC_CLEAR_T] = NAN
    elif s[S_MC_ACTIVE] != 0.0:
        if math.isnan(s[S_MC_CLEAR_T]):
            s[S_MC_CLEAR_T] = t
        if t - s[S_MC_CLEAR_T] >= p[P_MC_RESTORE_S]:
            s[S_MC_ACTIVE] = 0.0
            s[S_MC_CLEAR_T] = NAN
    mc = s[S_MC_ACTIVE] != 0.0

    # 2. trip elements; the owner's trip settings take precedence over ride-through (OpenDER, and
    # 1547.1 tests trips at settings inside ride-through regions); a backup waits every region out
    trip_rem = INF
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
            if math.isnan(s[S_TRIP_T0 + k]):
                s[S_TRIP_T0 + k] = t
            need = p[P_TRIP + 2 * k + 1] - lat
            need = max(need, 0.0)
            rem = need - (t - s[S_TRIP_T0 + k])
            if holds:
                rem = max(rem, rt_rem)
            if rem <= 0.0:
                fired |= 1 << k
                rem = 0.0
            elif holds and rt_rem > 0.0:
                active |= R_RIDE_THROUGH
            trip_rem = min(trip_rem, rem)
        else:
            s[S_TRIP_T0 + k] = NAN
    if not meas_ok and in_service:
        fired |= R_GRID_MEAS_INVALID

    # 3a. ROCOF: frequency difference over at least the averaging window, then a pickup delay over
    # which the ROCOF keeps one sign, confirmed by a later window. An island drifts one way; a
    # frequency that jumps and comes back (a 1547.1 step pulse, a phase jump read as frequency) shows
    # +x then -x and is no drift, and a single step fills one window only, however long the pickup
    # holds its value (a pickup shorter than the window, a late cycle).
    if f > 0.0:
        if math.isnan(s[S_F_REF]):
            s[S_F_REF] = f
            s[S_T_REF] = t
        elif t - s[S_T_REF] >= p[P_ROCOF_WINDOW_S]:
            s[S_ROCOF] = (f - s[S_F_REF]) / (t - s[S_T_REF])
            s[S_F_REF] = f
            s[S_T_REF] = t
    rocof = s[S_ROCOF]
    if math.fabs(rocof) > p[P_ROCOF_LIMIT_HZ_S]:
        sign = 1.0 if rocof > 0.0 else -1.0
        if math.isnan(s[S_ROCOF_T0]) or sign != s[S_ROCOF_SIGN]:
            s[S_ROCOF_T0] = t
            s[S_ROCOF_SIGN] = sign
        if t - s[S_ROCOF_T0] >= p[P_ROCOF_PICKUP_S] and s[S_T_REF] > s[S_ROCOF_T0]:
            fired |= R_ISLAND_ROCOF
    else:
        s[S_ROCOF_T0] = NAN

    # 3b. phase jump reported by the meter (vector shift since its previous sample); NaN = no angle
    if math.fabs(i[I_PHASE_JUMP_DEG]) > p[P_PHASE_JUMP_LIMIT_DEG]:
        fired |= R_ISLAND_PHASE_JUMP

    # 4. site meter: history of inverter power (keyed by the stage's own read time), new meter values,
    # staleness, frozen values
    pinv = i[I_P_INV_MEAS_W]
    pinv_ok = not math.isnan(pinv)
    t_inv = i[I_P_INV_T_S]
    if math.isnan(t_inv):
        t_inv = t
    if pinv_ok and t_inv != s[S_STAGE_T_LAST]:
        s[S_STAGE_T_LAST] = t_inv
        pos = int(s[S_HIST_POS])
        s[S_HIST_T + pos] = t_inv
        s[S_HIST_P + pos] = pinv
        s[S_HIST_POS] = float((pos + 1) % N_HIST)
    seq = i[I_METER_SEQ]
    imp = i[I_P_SITE_IMPORT_W]
    tm = i[I_METER_T_S]
    cnt = i[I_METER_COUNTER]
    cap_applies = p[P_NON_EXPORT] != 0.0 or i[I_CAP_MODE] != 0.0
    if (
        not math.isnan(seq)
        and seq != s[S_LAST_SEQ]
        and not math.isnan(imp)
        and not math.isnan(tm)
        and pinv_ok
    ):
        s[S_LAST_SEQ] = seq
        s[S_T_LAST_NEW] = t
        s[S_TM_LAST] = tm
        value_alive = False
        # The stall timer bounds the wait for a counter that moves rarely (a coarse one, a low load):
        # it restarts when the counter moves (or first shows) or the value leaves the noise-floor band
        # around the value it started on.
        if not math.isnan(cnt) and (
            cnt != s[S_CNT_LAST] or not math.fabs(imp - s[S_STALL_P_W]) <= p[P_FROZEN_NOISE_W]
        ):
            s[S_STALL_T0] = t
            s[S_STALL_P_W] = imp
        # The meter's own counter (its energy throughput, or an update counter) moving is a sign of
        # life that a steady value cannot give: a fixed load on a coarse meter reads the same for minutes.
        if not math.isnan(cnt) and cnt != s[S_CNT_LAST]:
            if not math.isnan(s[S_CNT_LAST]):
                inc = cnt - s[S_CNT_LAST]
                if inc > 0.0 and not inc >= s[S_CNT_STEP]:  # also the first move (NaN)
                    s[S_CNT_STEP] = inc
                s[S_CNT_E_WH] = 0.0
                s[S_T_CHG] = t
                if s[S_FROZEN_LATCH] != FROZEN_TRACKING:
                    s[S_FROZEN_LATCH] = 0.0
            s[S_CNT_LAST] = cnt
        # A read that returns the previous value bit for bit is the meter not having refreshed yet: it
        # keeps the meter fresh but says nothing new about the load. A changed value was measured
        # between I_METER_T_LO_S (for a polled meter: the previous read) less the meter's averaging
        # window and its timestamp.
        if imp != s[S_IMP_LAST]:
            # the smallest step between two values is what the meter resolves (NaN before two values)
            res = math.fabs(imp - s[S_IMP_LAST])
            if not res >= s[S_RES_W]:
                s[S_RES_W] = res
            s[S_IMP_PREV] = s[S_IMP_LAST]
            s[S_IMP_LAST] = imp
            w0 = i[I_METER_T_LO_S]
            if not w0 <= tm:  # also NaN: the timestamp is the measurement instant
                w0 = tm
            elif tm - w0 > p[P_STALE_METER_S]:
                w0 = tm - p[P_STALE_METER_S]
            w0 -= p[P_METER_WINDOW_S]
            lo, hi = _hist_range(s, w0, tm, pinv)
            # The load lies in [imp + lo, imp + hi]; the estimate moves only as far as the evidence
            # forces it, so inverter motion the meter saw at an unknown instant causes no wiggle.
            est = s[S_LOAD_EST]
            steady = hi - lo <= p[P_STEADY_TOL_W]
            if not est >= imp + lo:  # also the first sample (NaN)
                est = imp + lo
            elif est > imp + hi:
                est = imp + hi
            steady = steady and math.fabs(est - s[S_LOAD_EST]) <= p[P_STEADY_TOL_W]
            s[S_LOAD_EST] = est
            value_alive = math.isnan(s[S_P_CHG]) or math.fabs(imp - s[S_P_CHG]) > p[P_FROZEN_TOL_W]
            # slow trim from the meter's net power, only in steady state: inverter power steady over
            # the sample's window (else it would integrate the timing mismatch) and no load step (a
            # transient the bound already answers); error clamped
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
    age = max(age, sample_age)
    if not age < p[P_STALE_METER_S]:  # NaN (never a sample) is stale
        active |= R_METER_STALE
    discharging = pinv > p[P_DISCHARGE_DETECT_W]
    # frozen: the meter value stopped changing while the inverter's power moved (tracking); a meter
    # with a counter that has been seen moving is judged by it: stalled once its own power reading
    # says COUNTER_STALL_STEPS of its steps went through. Only a meter without one falls back on the
    # still-value heuristic (no sign of life for frozen_still_s while discharging), and only while it
    # resolves changes finer than the noise floor: a coarser one reads a steady load as one value.
    check = 0
    if pinv_ok and not math.isnan(s[S_P_CHG]) and math.fabs(pinv - s[S_PINV_AT_CHG]) >= p[P_FROZEN_DELTA_W]:
        if math.isnan(s[S_FROZEN_T0]):
            s[S_FROZEN_T0] = t
        if t - s[S_FROZEN_T0] >= p[P_FROZEN_S]:
            check = FROZEN_TRACKING
    else:
        s[S_FROZEN_T0] = NAN
    if not math.isnan(cnt) and not math.isnan(s[S_CNT_STEP]):
        # The lower of the last two readings: a short spike the meter happened to sample, held until the
        # next reading, would count energy that never went through (a false "frozen" on a pulsing hob).
        low = math.fabs(s[S_IMP_LAST])
        if math.fabs(s[S_IMP_PREV]) < low:  # noqa: PLR1730  # as in the Cython: NaN (no earlier value) is skipped
            low = math.fabs(s[S_IMP_PREV])
        if not math.isnan(low):  # a reading the driver called frozen (NaN) adds nothing
            s[S_CNT_E_WH] += low * dt / 3600.0
        if check == 0 and s[S_CNT_E_WH] > COUNTER_STALL_STEPS * s[S_CNT_STEP]:
            check = FROZEN_COUNTER
    elif (
        check == 0
        and discharging
        and p[P_FROZEN_STILL_S] > 0.0
        and t - s[S_T_CHG] >= p[P_FROZEN_STILL_S]
        and not s[S_RES_W] >= p[P_FROZEN_NOISE_W]  # also NaN: resolution not seen yet
    ):
        check = FROZEN_STILL
    # The counter's wait is bounded: while discharging, a counter still for counter_stall_max_s under a
    # value within the noise floor is frozen even if its power reading says less than 1.5 steps went
    # through (100 Wh steps at 265 W take 34 min). A live meter pays when its counter moves more rarely
    # than that (1 Wh at 50 W: every 72 s): a brief stop of discharge, after which its value moves.
    if check == 0 and discharging and not math.isnan(cnt) and t - s[S_STALL_T0] >= p[P_COUNTER_STALL_MAX_S]:
        check = FROZEN_COUNTER
    # Once frozen, frozen until a sign of life: stopping discharge must not make it look live again.
    if check != 0 and s[S_FROZEN_LATCH] == 0.0:
        s[S_FROZEN_LATCH] = float(check)
    if s[S_FROZEN_LATCH] != 0.0:
        active |= R_METER_FROZEN
    meter_ok = pinv_ok and (active & (R_METER_STALE | R_METER_FROZEN)) == 0
    imp_last = s[S_IMP_LAST]

    # 3c. minimum import (non-export sites, min_import_w > 0): no island can form while the site
    # keeps importing
    mi_low = p[P_MIN_IMPORT_W] > 0.0 and meter_ok and imp_last < p[P_MIN_IMPORT_W]
    if p[P_NON_EXPORT] != 0.0 and in_service and discharging and mi_low:
        if math.isnan(s[S_MI_T0]):
            s[S_MI_T0] = t
        if t - s[S_MI_T0] >= p[P_MIN_IMPORT_S]:
            fired |= R_ISLAND_MIN_IMPORT
    else:
        s[S_MI_T0] = NAN

    # 3d. active method: a reactive square wave while discharging in service. On the grid the frequency
    # does not follow it; in an island the RLC load's frequency moves against the injected Q at once
    # (more Q, lower f). Each half period's response is the frequency's move between the ends of two
    # half periods, signed so that an island's is positive; P_DITHER_N successive responses beyond
    # P_DITHER_DF_HZ, from the third on each within DITHER_CONSISTENCY of the one two before, trip. A
    # frequency pulse moves at most two successive ends (up, then back), a rebound after it is far
    # smaller than the pulse two half periods before, and a ramp alternates the response's sign: none
    # reaches three.
    dither = 0.0
    if p[P_DITHER_VAR] > 0.0 and in_service and discharging and meas_ok and not mc:
        if math.isnan(s[S_DI_T0]):
            s[S_DI_T0] = t
            s[S_DI_SIGN] = 1.0
            s[S_DI_F_PREV] = NAN
            s[S_DI_COUNT] = 0.0
        s[S_DI_F_LAST] = f
        if t - s[S_DI_T0] >= p[P_DITHER_HALF_S]:
            resp = -s[S_DI_SIGN] * (s[S_DI_F_LAST] - s[S_DI_F_PREV])
            if resp > p[P_DITHER_DF_HZ]:  # False for NaN (the first half period)
                prev = s[S_DI_RESP2]  # counted, once the run has two
                if s[S_DI_COUNT] < 2.0 or (
                    prev * DITHER_CONSISTENCY >= resp and resp * DITHER_CONSISTENCY >= prev
                ):
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
            # from this cycle's write: every half period lasts at least P_DITHER_HALF_S at the output
            s[S_DI_T0] = t
        dither = s[S_DI_SIGN] * p[P_DITHER_VAR]
    else:
        s[S_DI_T0] = NAN
        s[S_DI_COUNT] = 0.0
        s[S_DI_RESP] = NAN
        s[S_DI_RESP2] = NAN

    # export backstop: export above the cap for too long stops discharge for the hold time
    exporting = cap_applies and meter_ok and discharging and imp_last < -p[P_EXPORT_CAP_W]
    if exporting:
        if math.isnan(s[S_EXP_T0]):
            s[S_EXP_T0] = t
        if t - s[S_EXP_T0] >= p[P_BACKSTOP_S]:
            s[S_BACKSTOP_T] = t
    else:
        s[S_EXP_T0] = NAN
    if not math.isnan(s[S_BACKSTOP_T]):
        if not cap_applies or (not exporting and t - s[S_BACKSTOP_T] >= p[P_BACKSTOP_HOLD_S]):
            s[S_BACKSTOP_T] = NAN
        else:
            active |= R_EXPORT_BACKSTOP

    # export-cap bound: estimated load + cap - margin + trim, falling at once, rising at a limited rate
    if meter_ok:
        bound = s[S_LOAD_EST] + p[P_EXPORT_CAP_W] - p[P_MARGIN_W] + s[S_TRIM_W]
        rise = s[S_BOUND_PREV] + p[P_RISE_W_PER_S] * dt
        bound = min(bound, rise)
    else:
        bound = 0.0
    s[S_BOUND_PREV] = bound

    # 5. service state machine
    hold = 0
    if i[I_LOCK] != 0.0:
        hold |= R_COMMISSIONING_LOCK
    if i[I_PERMIT] == 0.0:
        hold |= R_PERMIT_OFF
    active |= hold
    if fired != 0 or (hold != 0 and in_service):
        service = TRIPPED
        s[S_TRIP_REASON] = float(fired | hold)
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
            if math.isnan(s[S_ES_T0]):
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
    s[S_SERVICE] = float(service)

    # 6. output
    p_out = 0.0
    q_out = 0.0
    q_dither = 0.0
    ramp = 0.0
    if service in (NORMAL, RAMPING):
        ramp = 1.0
        p_out = i[I_P_REQ_W]
        q_out = i[I_Q_REQ_VAR]
        if math.isnan(p_out):
            p_out = 0.0
        if math.isnan(q_out):
            q_out = 0.0
        if service == RAMPING:
            ramp = (t - s[S_RAMP_T0]) / p[P_ES_RAMP_S]
            if ramp >= 1.0:
                ramp = 1.0
                s[S_SERVICE] = float(NORMAL)
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
            # only with export commanded (not on a command that turned to charging or to 0 W before the
            # stage's reading did); within the stage's reactive limits: at a limit half the wave
            # remains, which still shows
            q_dither = dither
            q_out += dither
            if q_out > p[P_Q_MAX_INJ_VAR]:
                q_out = p[P_Q_MAX_INJ_VAR]
            elif q_out < -p[P_Q_MAX_ABS_VAR]:
                q_out = -p[P_Q_MAX_ABS_VAR]
            # at full apparent power P gives way (0.1 W at 7.4 kVA): a set point beyond the rating is
            # refused by the stage, and the dither must go on at full power
            s_va = p[P_S_RATED_VA]
            if p_out * p_out + q_out * q_out > s_va * s_va:
                p_out = math.copysign(math.sqrt(s_va * s_va - q_out * q_out), p_out)
    if mc:
        active |= R_MOMENTARY_CESSATION
    active |= fired

    state = int(s[S_SERVICE])
    for k in range(N_CMD - 1, 0, -1):
        s[S_CMD + k] = s[S_CMD + k - 1]
    s[S_CMD] = p_out
    o[O_P_W] = p_out
    o[O_Q_VAR] = q_out
    o[O_PERMIT_SERVICE] = 1.0 if state in (NORMAL, RAMPING) else 0.0
    if mc and (state in (NORMAL, RAMPING)):
        state = MOMENTARY_CESSATION
    o[O_STATE] = float(state)
    o[O_REASON] = float(active)
    o[O_TRIP_REASON] = s[S_TRIP_REASON]
    o[O_ES_REMAINING_S] = es_rem
    o[O_RAMP_FRACTION] = ramp
    o[O_TRIP_REMAINING_S] = trip_rem
    o[O_LOAD_EST_W] = s[S_LOAD_EST]
    o[O_CAP_BOUND_W] = bound if cap_applies else INF
    o[O_ROCOF_HZ_S] = s[S_ROCOF]
    o[O_METER_AGE_S] = age
    o[O_TRIM_W] = s[S_TRIM_W]
    o[O_FROZEN_CHECK] = s[S_FROZEN_LATCH]
    o[O_DITHER_VAR] = q_dither
    o[O_DITHER_RESP_HZ] = s[S_DI_RESP]
