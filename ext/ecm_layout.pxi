# Generated from edge.estimation._ecm_ref by `python -m ext.gen_layouts --write`; do not edit.

cdef enum:
    S_SOC = 0
    S_V1 = 1
    S_V2 = 2
    S_B = 3
    S_P00 = 4
    S_P01 = 5
    S_P02 = 6
    S_P03 = 7
    S_P11 = 8
    S_P12 = 9
    S_P13 = 10
    S_P22 = 11
    S_P23 = 12
    S_P33 = 13
    S_I_PREV = 14
    S_INNOV = 15
    S_NIS = 16
    S_V_PRED = 17
    S_OCV = 18
    S_VFREE_PRIOR = 19
    S_VFREE_POST = 20
    S_OCV_OFS = 21
    S_ELEC_DIS = 22
    S_ELEC_CHG = 23
    S_N = 24
    P_Q_AH = 0
    P_R0 = 1
    P_R1 = 2
    P_TAU1 = 3
    P_R2 = 4
    P_TAU2 = 5
    P_EA_R = 6
    P_TREF_K = 7
    P_R_GROWTH = 8
    P_GROWTH_OHMIC = 9
    P_I0_A = 10
    P_I0_B = 11
    P_EA_I0_R = 12
    P_Q_SOC = 13
    P_Q_V1 = 14
    P_Q_V2 = 15
    P_R_V = 16
    P_GATE = 17
    P_V_MIN = 18
    P_V_MAX = 19
    P_I_DIS_MAX = 20
    P_I_CHG_MAX = 21
    P_SOC_MIN = 22
    P_SOC_MAX = 23
    P_DIS_T0 = 24
    P_DIS_T1 = 25
    P_DIS_T2 = 26
    P_DIS_T3 = 27
    P_CHG_T0 = 28
    P_CHG_T1 = 29
    P_CHG_T2 = 30
    P_CHG_T3 = 31
    P_SOP_GROWTH = 32
    P_Q_B = 33
    P_OCV_VAR = 34
    P_OVERPOT_REL = 35
    P_OFS_TAU_S = 36
    P_OCV_SOC_VAR = 37
    P_DIFF_TAU_S = 38
    P_OCV_SLOPE_REF = 39
    P_HYST_V = 40
    P_HYST_M = 41
    P_HYST_RATE = 42
    P_ELEC_K = 43
    P_ELEC_T_EQ_S = 44
    P_SOP_RC1 = 45
    P_SOP_RC2 = 46
    P_SOP_TAU1 = 47
    P_N = 48
    O_I_DIS_V = 0
    O_I_CHG_V = 1
    O_I_DIS = 2
    O_I_CHG = 3
    O_P_DIS = 4
    O_P_CHG = 5
    O_N = 6
    C_R0 = 0
    C_R1 = 1
    C_R2 = 2
    C_I0A = 3
    C_I0B = 4
    C_RT = 5
    C_RSS_NEW = 6
    C_POW = 7
    C_N = 14
    NEWTON_ITERATIONS = 8

cdef double NEWTON_TOL_V = 0.0001
cdef double SLOPE_SPAN_MIN = 0.001
cdef double KELVIN_C = 273.15
cdef double TWO_R_OVER_F_C = 0.00017234666524563961

def layout():
    """The index constants this module was compiled with; edge.estimation._ecm_ref.LAYOUT is the source."""
    return {
        "S_SOC": S_SOC,
        "S_V1": S_V1,
        "S_V2": S_V2,
        "S_B": S_B,
        "S_P00": S_P00,
        "S_P01": S_P01,
        "S_P02": S_P02,
        "S_P03": S_P03,
        "S_P11": S_P11,
        "S_P12": S_P12,
        "S_P13": S_P13,
        "S_P22": S_P22,
        "S_P23": S_P23,
        "S_P33": S_P33,
        "S_I_PREV": S_I_PREV,
        "S_INNOV": S_INNOV,
        "S_NIS": S_NIS,
        "S_V_PRED": S_V_PRED,
        "S_OCV": S_OCV,
        "S_VFREE_PRIOR": S_VFREE_PRIOR,
        "S_VFREE_POST": S_VFREE_POST,
        "S_OCV_OFS": S_OCV_OFS,
        "S_ELEC_DIS": S_ELEC_DIS,
        "S_ELEC_CHG": S_ELEC_CHG,
        "S_N": S_N,
        "P_Q_AH": P_Q_AH,
        "P_R0": P_R0,
        "P_R1": P_R1,
        "P_TAU1": P_TAU1,
        "P_R2": P_R2,
        "P_TAU2": P_TAU2,
        "P_EA_R": P_EA_R,
        "P_TREF_K": P_TREF_K,
        "P_R_GROWTH": P_R_GROWTH,
        "P_GROWTH_OHMIC": P_GROWTH_OHMIC,
        "P_I0_A": P_I0_A,
        "P_I0_B": P_I0_B,
        "P_EA_I0_R": P_EA_I0_R,
        "P_Q_SOC": P_Q_SOC,
        "P_Q_V1": P_Q_V1,
        "P_Q_V2": P_Q_V2,
        "P_R_V": P_R_V,
        "P_GATE": P_GATE,
        "P_V_MIN": P_V_MIN,
        "P_V_MAX": P_V_MAX,
        "P_I_DIS_MAX": P_I_DIS_MAX,
        "P_I_CHG_MAX": P_I_CHG_MAX,
        "P_SOC_MIN": P_SOC_MIN,
        "P_SOC_MAX": P_SOC_MAX,
        "P_DIS_T0": P_DIS_T0,
        "P_DIS_T1": P_DIS_T1,
        "P_DIS_T2": P_DIS_T2,
        "P_DIS_T3": P_DIS_T3,
        "P_CHG_T0": P_CHG_T0,
        "P_CHG_T1": P_CHG_T1,
        "P_CHG_T2": P_CHG_T2,
        "P_CHG_T3": P_CHG_T3,
        "P_SOP_GROWTH": P_SOP_GROWTH,
        "P_Q_B": P_Q_B,
        "P_OCV_VAR": P_OCV_VAR,
        "P_OVERPOT_REL": P_OVERPOT_REL,
        "P_OFS_TAU_S": P_OFS_TAU_S,
        "P_OCV_SOC_VAR": P_OCV_SOC_VAR,
        "P_DIFF_TAU_S": P_DIFF_TAU_S,
        "P_OCV_SLOPE_REF": P_OCV_SLOPE_REF,
        "P_HYST_V": P_HYST_V,
        "P_HYST_M": P_HYST_M,
        "P_HYST_RATE": P_HYST_RATE,
        "P_ELEC_K": P_ELEC_K,
        "P_ELEC_T_EQ_S": P_ELEC_T_EQ_S,
        "P_SOP_RC1": P_SOP_RC1,
        "P_SOP_RC2": P_SOP_RC2,
        "P_SOP_TAU1": P_SOP_TAU1,
        "P_N": P_N,
        "O_I_DIS_V": O_I_DIS_V,
        "O_I_CHG_V": O_I_CHG_V,
        "O_I_DIS": O_I_DIS,
        "O_I_CHG": O_I_CHG,
        "O_P_DIS": O_P_DIS,
        "O_P_CHG": O_P_CHG,
        "O_N": O_N,
        "C_R0": C_R0,
        "C_R1": C_R1,
        "C_R2": C_R2,
        "C_I0A": C_I0A,
        "C_I0B": C_I0B,
        "C_RT": C_RT,
        "C_RSS_NEW": C_RSS_NEW,
        "C_POW": C_POW,
        "C_N": C_N,
    }
