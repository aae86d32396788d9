"""Shared vocabulary of the protection kernel: states, band modes, reason bits and array layouts.

The kernel (ext/protect.pyx and its reference edge/control/_protect_ref.py) works on four flat float64
arrays so that both implementations share one layout: parameters (``P_*``), state (``S_*``), inputs
(``I_*``) and outputs (``O_*``). Discrete values (states, flags, reason bit masks) are stored as exact
integers in those arrays. This module is the one declaration of the layout and of the enum values the
kernel uses: the compiled kernel gets them as compile-time constants from ext/protect_layout.pxi, which
``python -m ext.gen_layouts --write`` generates from here; ``layout()`` of the compiled module returns
the indices it was built with and a test checks that it equals ``LAYOUT``.
"""

from __future__ import annotations

import math
from enum import IntEnum, IntFlag
from typing import Final

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class State(IntEnum):
    """Output state of the protection kernel (``O_STATE``); the internal service state uses 0 and 2..4."""

    NORMAL = 0
    MOMENTARY_CESSATION = 1
    TRIPPED = 2
    WAITING = 3  # waiting to enter service: window not met yet or enter-service delay running
    RAMPING = 4  # in service, enter-service ramp running


class Mode(IntEnum):
    """Operating mode required in a ride-through band (IEEE 1547-2018 clause 6.4.2 / 6.5.2)."""

    CONTINUOUS = 0
    MANDATORY = 1
    PERMISSIVE = 2
    # rides through like PERMISSIVE; the output ceases where P_MC_LO_PU / P_MC_HI_PU say (the band lies
    # beyond them, checked when the parameters are packed)
    MOMENTARY_CESSATION = 3
    NONE = 4  # no ride-through requirement: trip elements act on their own timing


class Element(IntEnum):
    """Trip elements, in their slot order in ``P_TRIP`` (pickup, clearing time) and ``S_TRIP_T0``."""

    OV2 = 0
    OV1 = 1
    UV1 = 2
    UV2 = 3
    OF2 = 4
    OF1 = 5
    UF1 = 6
    UF2 = 7


class Reason(IntFlag):
    """Reason bits (``O_REASON`` = active now, ``O_TRIP_REASON`` = what caused the last trip)."""

    OV2 = 1 << 0
    OV1 = 1 << 1
    UV1 = 1 << 2
    UV2 = 1 << 3
    OF2 = 1 << 4
    OF1 = 1 << 5
    UF1 = 1 << 6
    UF2 = 1 << 7
    ISLAND_ROCOF = 1 << 8
    ISLAND_PHASE_JUMP = 1 << 9
    ISLAND_MIN_IMPORT = 1 << 10
    GRID_MEAS_INVALID = 1 << 11
    COMMISSIONING_LOCK = 1 << 12
    PERMIT_OFF = 1 << 13
    MOMENTARY_CESSATION = 1 << 14
    EXPORT_BACKSTOP = 1 << 15
    METER_STALE = 1 << 16
    METER_FROZEN = 1 << 17
    CAP_LIMITING = 1 << 18
    RIDE_THROUGH = 1 << 19  # a trip element has picked up but a ride-through region holds it off
    # the active method: the frequency followed the reactive dither for P_DITHER_N half periods
    ISLAND_ACTIVE = 1 << 20


class FrozenCheck(IntEnum):
    """Which check called the site meter frozen (``O_FROZEN_CHECK``; 0 while it is not frozen)."""

    NONE = 0
    TRACKING = 1  # its value stayed put while the inverter's power moved by frozen_delta_w
    STILL = 2  # no sign of life for frozen_still_s while discharging (a meter without a counter)
    # its counter stood still while its own power reading says it should have moved, or (while
    # discharging) for counter_stall_max_s with the value within the noise floor
    COUNTER = 3


# A counter is called stalled once its own power reading says this many of its steps went through
# without it moving: one step is the most a live counter can lag (its remainder), the rest is margin for
# the difference between a polled power value and the meter's internal integration.
COUNTER_STALL_STEPS: Final = 1.5

# An island answers the same reactive dither the same way: from the third response of a run on, a
# response counts towards the active method's trip only within this factor of the one two half periods
# before it (the same phase of the wave: a steady drift of the island's frequency adds the same to
# both); else it starts a new run. A frequency pulse's two large moves followed by a small rebound is
# no island.
DITHER_CONSISTENCY: Final = 3.0


P_RATED_W: Final = 0
P_LATENCY_S: Final = 1
P_TRIP: Final = 2
P_V_CONT_LO_PU: Final = 18
P_V_CONT_HI_PU: Final = 19
P_F_CONT_LO_HZ: Final = 20
P_F_CONT_HI_HZ: Final = 21
P_VLO_N: Final = 22
P_VLO_BANDS: Final = 23
P_VHI_N: Final = 39
P_VHI_BANDS: Final = 40
P_FLO_N: Final = 56
P_FLO_BANDS: Final = 57
P_FHI_N: Final = 73
P_FHI_BANDS: Final = 74
P_MC_RESTORE_S: Final = 90
P_ROCOF_LIMIT_HZ_S: Final = 91
P_ROCOF_WINDOW_S: Final = 92
P_ROCOF_PICKUP_S: Final = 93
P_PHASE_JUMP_LIMIT_DEG: Final = 94
P_ES_V_LO_PU: Final = 95
P_ES_V_HI_PU: Final = 96
P_ES_F_LO_HZ: Final = 97
P_ES_F_HI_HZ: Final = 98
P_ES_DELAY_S: Final = 99
P_ES_RAMP_S: Final = 100
P_ES_RAND_S: Final = 101
P_NON_EXPORT: Final = 102
P_CAP_WINS: Final = 103
P_EXPORT_CAP_W: Final = 104
P_MARGIN_W: Final = 105
P_FB_GAIN_PER_S: Final = 106
P_TRIM_MAX_W: Final = 107
P_RISE_W_PER_S: Final = 108
P_BACKSTOP_S: Final = 109
P_BACKSTOP_HOLD_S: Final = 110
P_STALE_METER_S: Final = 111
P_FROZEN_TOL_W: Final = 112
P_FROZEN_DELTA_W: Final = 113
P_FROZEN_S: Final = 114
P_FROZEN_STILL_S: Final = 115
P_MIN_IMPORT_W: Final = 116
P_MIN_IMPORT_S: Final = 117
P_DISCHARGE_DETECT_W: Final = 118
P_METER_WINDOW_S: Final = 119
P_STEADY_TOL_W: Final = 120
P_FROZEN_NOISE_W: Final = 121
P_COUNTER_STALL_MAX_S: Final = 122
# momentary cessation below / above these (p.u.; -inf / inf where the daemon does not own it)
P_MC_LO_PU: Final = 123
P_MC_HI_PU: Final = 124
# 1.0: a ride-through region holds that side's trip elements until its time has passed (the supervisory
# backup, which acts only outside every ride-through); 0.0: the trip settings take precedence (the owner)
P_RT_HOLDS_V_TRIPS: Final = 125
P_RT_HOLDS_F_TRIPS: Final = 126
# Active anti-islanding (reactive dither): amplitude (var, 0 = off), the shortest half period, the
# frequency response per half period that counts, how many successive half periods must show it, and
# the stage's reactive and apparent-power limits the dithered command stays within
P_DITHER_VAR: Final = 127
P_DITHER_HALF_S: Final = 128
P_DITHER_DF_HZ: Final = 129
P_DITHER_N: Final = 130
P_Q_MAX_INJ_VAR: Final = 131
P_Q_MAX_ABS_VAR: Final = 132
P_S_RATED_VA: Final = 133  # with the dither, P yields what Q needs beyond the rating (as kernel I)
N_PARAMS: Final = 134
S_T_PREV: Final = 0
S_SERVICE: Final = 1
S_TRIP_REASON: Final = 2
S_TRIP_T0: Final = 3
S_VLO_T0: Final = 11
S_VHI_T0: Final = 12
S_FLO_T0: Final = 13
S_FHI_T0: Final = 14
S_MC_ACTIVE: Final = 15
S_MC_CLEAR_T: Final = 16
S_F_REF: Final = 17
S_T_REF: Final = 18
S_ROCOF: Final = 19
S_ROCOF_T0: Final = 20
S_ES_T0: Final = 21
S_ES_RAND_DELAY_S: Final = 22
S_RAMP_T0: Final = 23
S_LAST_SEQ: Final = 24
S_T_LAST_NEW: Final = 25
S_IMP_LAST: Final = 26
S_TM_LAST: Final = 27
S_LOAD_EST: Final = 28
S_P_CHG: Final = 29
S_T_CHG: Final = 30
S_PINV_AT_CHG: Final = 31
S_FROZEN_T0: Final = 32
S_MI_T0: Final = 33
S_EXP_T0: Final = 34
S_BACKSTOP_T: Final = 35
S_TRIM_W: Final = 36
S_BOUND_PREV: Final = 37
S_HIST_POS: Final = 38
S_HIST_T: Final = 39
S_HIST_P: Final = 71
S_STAGE_T_LAST: Final = 103
S_TRIM_T: Final = 104
S_FROZEN_LATCH: Final = 105
S_CMD: Final = 106  # the last N_CMD commands (O_P_W), newest first
S_CNT_LAST: Final = 109  # the meter's counter at its last sample
S_CNT_STEP: Final = 110  # smallest increment of the counter seen (NaN until it has moved)
S_CNT_E_WH: Final = 111  # energy the meter's power reading says passed since the counter last moved
S_RES_W: Final = 112  # smallest change between two successive distinct meter values (its resolution)
S_ROCOF_SIGN: Final = 113  # sign of the ROCOF whose pickup timer runs
S_STALL_T0: Final = 114  # since when the counter has not moved and the value stayed within the noise floor
S_STALL_P_W: Final = 115  # the value the noise-floor band is centred on
S_IMP_PREV: Final = 116  # the site import before S_IMP_LAST (the counter check integrates the lower)
S_DI_T0: Final = 117  # when the dither's current half period began (NaN: the dither is not running)
S_DI_SIGN: Final = 118  # the current half period's sign (+1: Q raised by the amplitude)
S_DI_F_LAST: Final = 119  # the latest frequency seen in the current half period
S_DI_F_PREV: Final = 120  # the frequency at the end of the previous half period
S_DI_COUNT: Final = 121  # successive half periods whose response exceeded P_DITHER_DF_HZ
S_DI_RESP: Final = 122  # the last half period's response (Hz, > 0: the way an island responds; NaN: none)
S_DI_RESP2: Final = 123  # the response before it (the same phase of the wave as the next one)
N_STATE: Final = 124
I_T_S: Final = 0
I_V_MAX_PU: Final = 1
I_V_MIN_PU: Final = 2
I_F_HZ: Final = 3
I_PHASE_JUMP_DEG: Final = 4
I_P_REQ_W: Final = 5
I_Q_REQ_VAR: Final = 6
I_P_DROOP_W: Final = 7
I_CAP_MODE: Final = 8
I_METER_T_S: Final = 9
I_METER_SEQ: Final = 10
I_P_SITE_IMPORT_W: Final = 11
I_P_INV_MEAS_W: Final = 12
I_U_RAND: Final = 13
I_LOCK: Final = 14
I_PERMIT: Final = 15
I_P_INV_T_S: Final = 16  # the power stage reading's own time (NaN: I_T_S)
I_METER_T_LO_S: Final = 17  # earliest instant the meter value can have been measured (NaN: I_METER_T_S)
I_METER_COUNTER: Final = 18  # a counter the meter advances as it measures, e.g. its energy (NaN: none)
N_INPUTS: Final = 19
O_P_W: Final = 0
O_Q_VAR: Final = 1
O_STATE: Final = 2
O_PERMIT_SERVICE: Final = 3
O_REASON: Final = 4
O_TRIP_REASON: Final = 5
O_ES_REMAINING_S: Final = 6
O_RAMP_FRACTION: Final = 7
O_TRIP_REMAINING_S: Final = 8
O_LOAD_EST_W: Final = 9
O_CAP_BOUND_W: Final = 10
O_ROCOF_HZ_S: Final = 11
O_METER_AGE_S: Final = 12
O_TRIM_W: Final = 13
O_FROZEN_CHECK: Final = 14  # FrozenCheck
O_DITHER_VAR: Final = 15  # the dither in this cycle's O_Q_VAR
O_DITHER_RESP_HZ: Final = 16  # S_DI_RESP (NaN before two half periods)
N_OUTPUTS: Final = 17
N_BANDS: Final = 4
N_HIST: Final = 32
N_CMD: Final = 3


# Every index constant above (P_, S_, I_, O_ and the N_ sizes) in declaration order: what
# ext/gen_layouts.py writes into the compiled kernel, and what its layout() must return.
LAYOUT: Final[dict[str, int]] = {
    name: value
    for name, value in globals().items()
    if name.startswith(("P_", "S_", "I_", "O_", "N_")) and type(value) is int
}


def new_params() -> FloatArray:
    """A zeroed parameter array; build real ones with ``edge.control.protect_params``."""
    return np.zeros(N_PARAMS, dtype=np.float64)


def new_state() -> FloatArray:
    """Kernel state at daemon start: waiting to enter service, no timers running, no meter sample yet.

    A daemon start counts as entering service (docs/protection.md), hence ``WAITING``.
    """
    s = np.full(N_STATE, math.nan, dtype=np.float64)
    s[S_SERVICE] = float(State.WAITING)
    s[S_TRIP_REASON] = 0.0
    s[S_MC_ACTIVE] = 0.0
    s[S_ROCOF] = 0.0
    s[S_ES_RAND_DELAY_S] = 0.0
    s[S_TRIM_W] = 0.0
    s[S_BOUND_PREV] = 0.0
    s[S_HIST_POS] = 0.0
    s[S_FROZEN_LATCH] = 0.0
    s[S_CNT_E_WH] = 0.0
    s[S_DI_COUNT] = 0.0
    return s


def new_inputs() -> FloatArray:
    """An input array with no optional measurement (NaN) and permit service on."""
    x = np.full(N_INPUTS, math.nan, dtype=np.float64)
    for idx in (I_P_REQ_W, I_Q_REQ_VAR, I_P_DROOP_W, I_CAP_MODE, I_U_RAND, I_LOCK):
        x[idx] = 0.0
    x[I_PERMIT] = 1.0
    return x


def new_outputs() -> FloatArray:
    """An output array for ``step`` to fill."""
    return np.zeros(N_OUTPUTS, dtype=np.float64)
