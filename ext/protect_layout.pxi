# Generated from edge.control.protect_types by `python -m ext.gen_layouts --write`; do not edit.

cdef enum:
    P_RATED_W = 0
    P_LATENCY_S = 1
    P_TRIP = 2
    P_V_CONT_LO_PU = 18
    P_V_CONT_HI_PU = 19
    P_F_CONT_LO_HZ = 20
    P_F_CONT_HI_HZ = 21
    P_VLO_N = 22
    P_VLO_BANDS = 23
    P_VHI_N = 39
    P_VHI_BANDS = 40
    P_FLO_N = 56
    P_FLO_BANDS = 57
    P_FHI_N = 73
    P_FHI_BANDS = 74
    P_MC_RESTORE_S = 90
    P_ROCOF_LIMIT_HZ_S = 91
    P_ROCOF_WINDOW_S = 92
    P_ROCOF_PICKUP_S = 93
    P_PHASE_JUMP_LIMIT_DEG = 94
    P_ES_V_LO_PU = 95
    P_ES_V_HI_PU = 96
    P_ES_F_LO_HZ = 97
    P_ES_F_HI_HZ = 98
    P_ES_DELAY_S = 99
    P_ES_RAMP_S = 100
    P_ES_RAND_S = 101
    P_NON_EXPORT = 102
    P_CAP_WINS = 103
    P_EXPORT_CAP_W = 104
    P_MARGIN_W = 105
    P_FB_GAIN_PER_S = 106
    P_TRIM_MAX_W = 107
    P_RISE_W_PER_S = 108
    P_BACKSTOP_S = 109
    P_BACKSTOP_HOLD_S = 110
    P_STALE_METER_S = 111
    P_FROZEN_TOL_W = 112
    P_FROZEN_DELTA_W = 113
    P_FROZEN_S = 114
    P_FROZEN_STILL_S = 115
    P_MIN_IMPORT_W = 116
    P_MIN_IMPORT_S = 117
    P_DISCHARGE_DETECT_W = 118
    P_METER_WINDOW_S = 119
    P_STEADY_TOL_W = 120
    P_FROZEN_NOISE_W = 121
    P_COUNTER_STALL_MAX_S = 122
    P_MC_LO_PU = 123
    P_MC_HI_PU = 124
    P_RT_HOLDS_V_TRIPS = 125
    P_RT_HOLDS_F_TRIPS = 126
    P_DITHER_VAR = 127
    P_DITHER_HALF_S = 128
    P_DITHER_DF_HZ = 129
    P_DITHER_N = 130
    P_Q_MAX_INJ_VAR = 131
    P_Q_MAX_ABS_VAR = 132
    P_S_RATED_VA = 133
    N_PARAMS = 134
    S_T_PREV = 0
    S_SERVICE = 1
    S_TRIP_REASON = 2
    S_TRIP_T0 = 3
    S_VLO_T0 = 11
    S_VHI_T0 = 12
    S_FLO_T0 = 13
    S_FHI_T0 = 14
    S_MC_ACTIVE = 15
    S_MC_CLEAR_T = 16
    S_F_REF = 17
    S_T_REF = 18
    S_ROCOF = 19
    S_ROCOF_T0 = 20
    S_ES_T0 = 21
    S_ES_RAND_DELAY_S = 22
    S_RAMP_T0 = 23
    S_LAST_SEQ = 24
    S_T_LAST_NEW = 25
    S_IMP_LAST = 26
    S_TM_LAST = 27
    S_LOAD_EST = 28
    S_P_CHG = 29
    S_T_CHG = 30
    S_PINV_AT_CHG = 31
    S_FROZEN_T0 = 32
    S_MI_T0 = 33
    S_EXP_T0 = 34
    S_BACKSTOP_T = 35
    S_TRIM_W = 36
    S_BOUND_PREV = 37
    S_HIST_POS = 38
    S_HIST_T = 39
    S_HIST_P = 71
    S_STAGE_T_LAST = 103
    S_TRIM_T = 104
    S_FROZEN_LATCH = 105
    S_CMD = 106
    S_CNT_LAST = 109
    S_CNT_STEP = 110
    S_CNT_E_WH = 111
    S_RES_W = 112
    S_ROCOF_SIGN = 113
    S_STALL_T0 = 114
    S_STALL_P_W = 115
    S_IMP_PREV = 116
    S_DI_T0 = 117
    S_DI_SIGN = 118
    S_DI_F_LAST = 119
    S_DI_F_PREV = 120
    S_DI_COUNT = 121
    S_DI_RESP = 122
    S_DI_RESP2 = 123
    N_STATE = 124
    I_T_S = 0
    I_V_MAX_PU = 1
    I_V_MIN_PU = 2
    I_F_HZ = 3
    I_PHASE_JUMP_DEG = 4
    I_P_REQ_W = 5
    I_Q_REQ_VAR = 6
    I_P_DROOP_W = 7
    I_CAP_MODE = 8
    I_METER_T_S = 9
    I_METER_SEQ = 10
    I_P_SITE_IMPORT_W = 11
    I_P_INV_MEAS_W = 12
    I_U_RAND = 13
    I_LOCK = 14
    I_PERMIT = 15
    I_P_INV_T_S = 16
    I_METER_T_LO_S = 17
    I_METER_COUNTER = 18
    N_INPUTS = 19
    O_P_W = 0
    O_Q_VAR = 1
    O_STATE = 2
    O_PERMIT_SERVICE = 3
    O_REASON = 4
    O_TRIP_REASON = 5
    O_ES_REMAINING_S = 6
    O_RAMP_FRACTION = 7
    O_TRIP_REMAINING_S = 8
    O_LOAD_EST_W = 9
    O_CAP_BOUND_W = 10
    O_ROCOF_HZ_S = 11
    O_METER_AGE_S = 12
    O_TRIM_W = 13
    O_FROZEN_CHECK = 14
    O_DITHER_VAR = 15
    O_DITHER_RESP_HZ = 16
    N_OUTPUTS = 17
    N_BANDS = 4
    N_HIST = 32
    N_CMD = 3

cdef enum:
    NORMAL = 0
    MOMENTARY_CESSATION = 1
    TRIPPED = 2
    WAITING = 3
    RAMPING = 4
    MODE_CONTINUOUS = 0
    MODE_MANDATORY = 1
    MODE_PERMISSIVE = 2
    MODE_MOMENTARY_CESSATION = 3
    MODE_NONE = 4
    FROZEN_NONE = 0
    FROZEN_TRACKING = 1
    FROZEN_STILL = 2
    FROZEN_COUNTER = 3

cdef double COUNTER_STALL_STEPS = 1.5
cdef double DITHER_CONSISTENCY = 3.0

cdef long long R_OV2 = 1 << 0
cdef long long R_OV1 = 1 << 1
cdef long long R_UV1 = 1 << 2
cdef long long R_UV2 = 1 << 3
cdef long long R_OF2 = 1 << 4
cdef long long R_OF1 = 1 << 5
cdef long long R_UF1 = 1 << 6
cdef long long R_UF2 = 1 << 7
cdef long long R_ISLAND_ROCOF = 1 << 8
cdef long long R_ISLAND_PHASE_JUMP = 1 << 9
cdef long long R_ISLAND_MIN_IMPORT = 1 << 10
cdef long long R_GRID_MEAS_INVALID = 1 << 11
cdef long long R_COMMISSIONING_LOCK = 1 << 12
cdef long long R_PERMIT_OFF = 1 << 13
cdef long long R_MOMENTARY_CESSATION = 1 << 14
cdef long long R_EXPORT_BACKSTOP = 1 << 15
cdef long long R_METER_STALE = 1 << 16
cdef long long R_METER_FROZEN = 1 << 17
cdef long long R_CAP_LIMITING = 1 << 18
cdef long long R_RIDE_THROUGH = 1 << 19
cdef long long R_ISLAND_ACTIVE = 1 << 20


def layout():
    """The index constants this module was compiled with; edge.control.protect_types.LAYOUT is the source."""
    return {
        "P_RATED_W": P_RATED_W,
        "P_LATENCY_S": P_LATENCY_S,
        "P_TRIP": P_TRIP,
        "P_V_CONT_LO_PU": P_V_CONT_LO_PU,
        "P_V_CONT_HI_PU": P_V_CONT_HI_PU,
        "P_F_CONT_LO_HZ": P_F_CONT_LO_HZ,
        "P_F_CONT_HI_HZ": P_F_CONT_HI_HZ,
        "P_VLO_N": P_VLO_N,
        "P_VLO_BANDS": P_VLO_BANDS,
        "P_VHI_N": P_VHI_N,
        "P_VHI_BANDS": P_VHI_BANDS,
        "P_FLO_N": P_FLO_N,
        "P_FLO_BANDS": P_FLO_BANDS,
        "P_FHI_N": P_FHI_N,
        "P_FHI_BANDS": P_FHI_BANDS,
        "P_MC_RESTORE_S": P_MC_RESTORE_S,
        "P_ROCOF_LIMIT_HZ_S": P_ROCOF_LIMIT_HZ_S,
        "P_ROCOF_WINDOW_S": P_ROCOF_WINDOW_S,
        "P_ROCOF_PICKUP_S": P_ROCOF_PICKUP_S,
        "P_PHASE_JUMP_LIMIT_DEG": P_PHASE_JUMP_LIMIT_DEG,
        "P_ES_V_LO_PU": P_ES_V_LO_PU,
        "P_ES_V_HI_PU": P_ES_V_HI_PU,
        "P_ES_F_LO_HZ": P_ES_F_LO_HZ,
        "P_ES_F_HI_HZ": P_ES_F_HI_HZ,
        "P_ES_DELAY_S": P_ES_DELAY_S,
        "P_ES_RAMP_S": P_ES_RAMP_S,
        "P_ES_RAND_S": P_ES_RAND_S,
        "P_NON_EXPORT": P_NON_EXPORT,
        "P_CAP_WINS": P_CAP_WINS,
        "P_EXPORT_CAP_W": P_EXPORT_CAP_W,
        "P_MARGIN_W": P_MARGIN_W,
        "P_FB_GAIN_PER_S": P_FB_GAIN_PER_S,
        "P_TRIM_MAX_W": P_TRIM_MAX_W,
        "P_RISE_W_PER_S": P_RISE_W_PER_S,
        "P_BACKSTOP_S": P_BACKSTOP_S,
        "P_BACKSTOP_HOLD_S": P_BACKSTOP_HOLD_S,
        "P_STALE_METER_S": P_STALE_METER_S,
        "P_FROZEN_TOL_W": P_FROZEN_TOL_W,
        "P_FROZEN_DELTA_W": P_FROZEN_DELTA_W,
        "P_FROZEN_S": P_FROZEN_S,
        "P_FROZEN_STILL_S": P_FROZEN_STILL_S,
        "P_MIN_IMPORT_W": P_MIN_IMPORT_W,
        "P_MIN_IMPORT_S": P_MIN_IMPORT_S,
        "P_DISCHARGE_DETECT_W": P_DISCHARGE_DETECT_W,
        "P_METER_WINDOW_S": P_METER_WINDOW_S,
        "P_STEADY_TOL_W": P_STEADY_TOL_W,
        "P_FROZEN_NOISE_W": P_FROZEN_NOISE_W,
        "P_COUNTER_STALL_MAX_S": P_COUNTER_STALL_MAX_S,
        "P_MC_LO_PU": P_MC_LO_PU,
        "P_MC_HI_PU": P_MC_HI_PU,
        "P_RT_HOLDS_V_TRIPS": P_RT_HOLDS_V_TRIPS,
        "P_RT_HOLDS_F_TRIPS": P_RT_HOLDS_F_TRIPS,
        "P_DITHER_VAR": P_DITHER_VAR,
        "P_DITHER_HALF_S": P_DITHER_HALF_S,
        "P_DITHER_DF_HZ": P_DITHER_DF_HZ,
        "P_DITHER_N": P_DITHER_N,
        "P_Q_MAX_INJ_VAR": P_Q_MAX_INJ_VAR,
        "P_Q_MAX_ABS_VAR": P_Q_MAX_ABS_VAR,
        "P_S_RATED_VA": P_S_RATED_VA,
        "N_PARAMS": N_PARAMS,
        "S_T_PREV": S_T_PREV,
        "S_SERVICE": S_SERVICE,
        "S_TRIP_REASON": S_TRIP_REASON,
        "S_TRIP_T0": S_TRIP_T0,
        "S_VLO_T0": S_VLO_T0,
        "S_VHI_T0": S_VHI_T0,
        "S_FLO_T0": S_FLO_T0,
        "S_FHI_T0": S_FHI_T0,
        "S_MC_ACTIVE": S_MC_ACTIVE,
        "S_MC_CLEAR_T": S_MC_CLEAR_T,
        "S_F_REF": S_F_REF,
        "S_T_REF": S_T_REF,
        "S_ROCOF": S_ROCOF,
        "S_ROCOF_T0": S_ROCOF_T0,
        "S_ES_T0": S_ES_T0,
        "S_ES_RAND_DELAY_S": S_ES_RAND_DELAY_S,
        "S_RAMP_T0": S_RAMP_T0,
        "S_LAST_SEQ": S_LAST_SEQ,
        "S_T_LAST_NEW": S_T_LAST_NEW,
        "S_IMP_LAST": S_IMP_LAST,
        "S_TM_LAST": S_TM_LAST,
        "S_LOAD_EST": S_LOAD_EST,
        "S_P_CHG": S_P_CHG,
        "S_T_CHG": S_T_CHG,
        "S_PINV_AT_CHG": S_PINV_AT_CHG,
        "S_FROZEN_T0": S_FROZEN_T0,
        "S_MI_T0": S_MI_T0,
        "S_EXP_T0": S_EXP_T0,
        "S_BACKSTOP_T": S_BACKSTOP_T,
        "S_TRIM_W": S_TRIM_W,
        "S_BOUND_PREV": S_BOUND_PREV,
        "S_HIST_POS": S_HIST_POS,
        "S_HIST_T": S_HIST_T,
        "S_HIST_P": S_HIST_P,
        "S_STAGE_T_LAST": S_STAGE_T_LAST,
        "S_TRIM_T": S_TRIM_T,
        "S_FROZEN_LATCH": S_FROZEN_LATCH,
        "S_CMD": S_CMD,
        "S_CNT_LAST": S_CNT_LAST,
        "S_CNT_STEP": S_CNT_STEP,
        "S_CNT_E_WH": S_CNT_E_WH,
        "S_RES_W": S_RES_W,
        "S_ROCOF_SIGN": S_ROCOF_SIGN,
        "S_STALL_T0": S_STALL_T0,
        "S_STALL_P_W": S_STALL_P_W,
        "S_IMP_PREV": S_IMP_PREV,
        "S_DI_T0": S_DI_T0,
        "S_DI_SIGN": S_DI_SIGN,
        "S_DI_F_LAST": S_DI_F_LAST,
        "S_DI_F_PREV": S_DI_F_PREV,
        "S_DI_COUNT": S_DI_COUNT,
        "S_DI_RESP": S_DI_RESP,
        "S_DI_RESP2": S_DI_RESP2,
        "N_STATE": N_STATE,
        "I_T_S": I_T_S,
        "I_V_MAX_PU": I_V_MAX_PU,
        "I_V_MIN_PU": I_V_MIN_PU,
        "I_F_HZ": I_F_HZ,
        "I_PHASE_JUMP_DEG": I_PHASE_JUMP_DEG,
        "I_P_REQ_W": I_P_REQ_W,
        "I_Q_REQ_VAR": I_Q_REQ_VAR,
        "I_P_DROOP_W": I_P_DROOP_W,
        "I_CAP_MODE": I_CAP_MODE,
        "I_METER_T_S": I_METER_T_S,
        "I_METER_SEQ": I_METER_SEQ,
        "I_P_SITE_IMPORT_W": I_P_SITE_IMPORT_W,
        "I_P_INV_MEAS_W": I_P_INV_MEAS_W,
        "I_U_RAND": I_U_RAND,
        "I_LOCK": I_LOCK,
        "I_PERMIT": I_PERMIT,
        "I_P_INV_T_S": I_P_INV_T_S,
        "I_METER_T_LO_S": I_METER_T_LO_S,
        "I_METER_COUNTER": I_METER_COUNTER,
        "N_INPUTS": N_INPUTS,
        "O_P_W": O_P_W,
        "O_Q_VAR": O_Q_VAR,
        "O_STATE": O_STATE,
        "O_PERMIT_SERVICE": O_PERMIT_SERVICE,
        "O_REASON": O_REASON,
        "O_TRIP_REASON": O_TRIP_REASON,
        "O_ES_REMAINING_S": O_ES_REMAINING_S,
        "O_RAMP_FRACTION": O_RAMP_FRACTION,
        "O_TRIP_REMAINING_S": O_TRIP_REMAINING_S,
        "O_LOAD_EST_W": O_LOAD_EST_W,
        "O_CAP_BOUND_W": O_CAP_BOUND_W,
        "O_ROCOF_HZ_S": O_ROCOF_HZ_S,
        "O_METER_AGE_S": O_METER_AGE_S,
        "O_TRIM_W": O_TRIM_W,
        "O_FROZEN_CHECK": O_FROZEN_CHECK,
        "O_DITHER_VAR": O_DITHER_VAR,
        "O_DITHER_RESP_HZ": O_DITHER_RESP_HZ,
        "N_OUTPUTS": N_OUTPUTS,
        "N_BANDS": N_BANDS,
        "N_HIST": N_HIST,
        "N_CMD": N_CMD,
    }
