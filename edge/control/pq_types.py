"""Shared vocabulary of the P/Q kernel (ext/pq.pyx, edge/control/_pq_ref.py): modes, binding constraints and
the four plain records the daemon fills and reads (parameters, inputs, state, outputs).

Both implementations read the numbers here, so a bit value or a mode number exists once. The compiled module
has its own typed records with exactly these attribute names (a test checks it); the reference accepts either.

Units: W, var, VA for powers; per-unit values name their base (``_pu`` of a curve is of ``p_rated_w`` for
active power on the export side, ``p_rated_charge_w`` on the charging side, ``s_rated_va`` for reactive power,
VN for voltage). Signs follow CONTRIBUTING.md: P > 0 export (discharge), P < 0 charging; Q > 0 injection.
"""

from __future__ import annotations

import math
from enum import IntEnum, IntFlag


class QMode(IntEnum):
    """The one reactive-power mode in force (IEEE 1547-2018 allows one at a time)."""

    OFF = 0  # no reactive function: Q follows the dispatched q_dispatch_var
    CONST_PF = 1
    CONST_Q = 2
    VOLT_VAR = 3
    WATT_VAR = 4


class Priority(IntEnum):
    """What gives way when P and Q together exceed the apparent-power rating (SunSpec VarSetPri numbering)."""

    ACTIVE = 0  # P kept, Q reduced
    REACTIVE = 1  # Q kept, P reduced


class Excitation(IntEnum):
    """Constant-power-factor excitation, SunSpec 704 ``PFWInj.Ext`` numbering."""

    OVER_EXCITED = 0  # Q > 0, injection
    UNDER_EXCITED = 1  # Q < 0, absorption


class FreqMode(IntEnum):
    """Where the frequency is relative to the droop deadband (state, reported for telemetry)."""

    UNDER = -1
    DEADBAND = 0
    OVER = 1


class Constraint(IntFlag):
    """What bound the result of a step. A higher bit is more significant for ``binding_id`` (what
    ``v2gctl status`` says first): grid functions, then the owner's and the battery's limits, then ratings,
    then the slow things (ramps)."""

    RAMP = 1 << 0  # the normal ramp has not yet reached the dispatched power
    Q_LIMIT = 1 << 1  # reactive capability (Q ratings, reduced Q at low P) cut the requested Q
    S_LIMIT = 1 << 2  # apparent-power rating cut P or Q (per the P/Q priority)
    P_RATING_CHARGE = 1 << 3
    P_RATING_DISCHARGE = 1 << 4
    SOP_CHARGE = 1 << 5
    SOP_DISCHARGE = 1 << 6
    SOC_FULL = 1 << 7  # charging stopped at the maximum SoC
    SOC_RESERVE = 1 << 8  # discharge stopped at the owner's minimum SoC (or SoC unknown)
    VOLT_WATT = 1 << 9
    DROOP_UF = 1 << 10
    DROOP_OF = 1 << 11
    STOP_RAMP = 1 << 12  # a non-protective stop is ramping the dispatch down
    INPUT_INVALID = 1 << 13  # a measurement was NaN: last good value held (see docs/kernel.md)


def binding_id(mask: int) -> int:
    """Id of the most significant constraint in ``mask``: bit index + 1, 0 for none."""
    return mask.bit_length()


def binding_name(ident: int) -> str:
    """Name of the constraint with id ``ident`` (``"none"`` for 0), for telemetry and ``v2gctl status``."""
    if ident <= 0:
        return "none"
    name = Constraint(1 << (ident - 1)).name
    return (name or "unknown").lower()


def binding_names(mask: int) -> list[str]:
    """Names of every constraint in ``mask``, most significant first."""
    return [binding_name(i + 1) for i in reversed(range(mask.bit_length())) if mask >> i & 1]


LN10 = math.log(10.0)

# Low-power reactive capability (IEEE 1547-2018 clause 5.2, as transcribed; exact wording UNCONFIRMED): no
# requirement below 5 % of rated P, 25 % of the full value at 5 %, rising linearly to the full value at 20 %.
Q_LOW_P_NONE_PU = 0.05
Q_LOW_P_FULL_PU = 0.2
Q_LOW_P_FACTOR_AT_NONE = 0.25

# Autonomous VRef stays inside the volt-var VRef range (IEEE 1547-2018 Table 8, 0.95 ... 1.05 VN).
VREF_MIN_PU = 0.95
VREF_MAX_PU = 1.05


class PqParams:
    """Kernel parameters, set when settings change (never in the cycle). Defaults are IEEE 1547-2018
    Category B / abnormal Category II defaults with every function off and zero ratings, so an unset
    object makes the charger do nothing."""

    __slots__ = (
        "actuation_tau_s",
        "f_nominal_hz",
        "fw_db_of_hz",
        "fw_db_uf_hz",
        "fw_enabled",
        "fw_k_of",
        "fw_k_uf",
        "fw_olrt_s",
        "fw_p_min_pu",
        "p_rated_charge_w",
        "p_rated_w",
        "pf_charge",
        "pf_charge_ext",
        "pf_inj",
        "pf_inj_ext",
        "q_const_charge_pu",
        "q_const_pu",
        "q_max_abs_var",
        "q_max_inj_var",
        "q_mode",
        "q_olrt_s",
        "q_reduced_low_p",
        "ramp_w_per_s",
        "s_priority",
        "s_rated_va",
        "soc_max",
        "soc_min",
        "stop_ramp_w_per_s",
        "vv_olrt_s",
        "vv_q1_pu",
        "vv_q2_pu",
        "vv_q3_pu",
        "vv_q4_pu",
        "vv_v1_pu",
        "vv_v2_pu",
        "vv_v3_pu",
        "vv_v4_pu",
        "vv_vref_auto",
        "vv_vref_pu",
        "vv_vref_tau_s",
        "vw_absorb",
        "vw_enabled",
        "vw_olrt_s",
        "vw_p1_pu",
        "vw_p2_charge_pu",
        "vw_p2_pu",
        "vw_v1_pu",
        "vw_v2_pu",
        "wv_p1_pu",
        "wv_p2_pu",
        "wv_p3_pu",
        "wv_pc1_pu",
        "wv_pc2_pu",
        "wv_pc3_pu",
        "wv_q1_pu",
        "wv_q2_pu",
        "wv_q3_pu",
        "wv_qc1_pu",
        "wv_qc2_pu",
        "wv_qc3_pu",
    )

    def __init__(self) -> None:
        self.f_nominal_hz: float = 60.0
        # Ratings (nameplate; the charging rating is a positive magnitude).
        self.p_rated_w: float = 0.0
        self.p_rated_charge_w: float = 0.0
        self.s_rated_va: float = 0.0
        self.q_max_inj_var: float = 0.0
        self.q_max_abs_var: float = 0.0
        self.q_reduced_low_p: int = 0
        self.s_priority: int = Priority.REACTIVE
        # Owner and battery limits.
        self.soc_min: float = 0.2
        self.soc_max: float = 1.0
        # Ramps (W/s; <= 0 means no ramp limit).
        self.ramp_w_per_s: float = 0.0
        self.stop_ramp_w_per_s: float = 0.0
        # Measured first-order lag of inverter + meter, compensated so the plant meets the OLRT.
        self.actuation_tau_s: float = 0.0
        # Frequency droop (clause 6.5.2.7.2).
        self.fw_enabled: int = 0
        self.fw_db_of_hz: float = 0.036
        self.fw_db_uf_hz: float = 0.036
        self.fw_k_of: float = 0.05
        self.fw_k_uf: float = 0.05
        self.fw_olrt_s: float = 5.0
        self.fw_p_min_pu: float = -1.0
        # Volt-watt (clause 5.4.2).
        self.vw_enabled: int = 0
        self.vw_v1_pu: float = 1.06
        self.vw_v2_pu: float = 1.10
        self.vw_p1_pu: float = 1.0
        self.vw_p2_pu: float = 0.2
        self.vw_absorb: int = 0
        self.vw_p2_charge_pu: float = 0.0
        self.vw_olrt_s: float = 10.0
        # Reactive power: one mode (QMode).
        self.q_mode: int = QMode.OFF
        self.q_olrt_s: float = 10.0
        self.pf_inj: float = 1.0
        self.pf_inj_ext: int = Excitation.OVER_EXCITED
        self.pf_charge: float = 1.0
        self.pf_charge_ext: int = Excitation.OVER_EXCITED
        self.q_const_pu: float = 0.0
        self.q_const_charge_pu: float = 0.0
        # Volt-var (clause 5.3.3, Table 8, Cat B); points are absolute at vv_vref_pu.
        self.vv_vref_pu: float = 1.0
        self.vv_vref_auto: int = 0
        self.vv_vref_tau_s: float = 300.0
        self.vv_v1_pu: float = 0.92
        self.vv_v2_pu: float = 0.98
        self.vv_v3_pu: float = 1.02
        self.vv_v4_pu: float = 1.08
        self.vv_q1_pu: float = 0.44
        self.vv_q2_pu: float = 0.0
        self.vv_q3_pu: float = 0.0
        self.vv_q4_pu: float = -0.44
        self.vv_olrt_s: float = 5.0
        # Watt-var (clause 5.3.4, Cat B); pc/qc are the charging-side points P'1..P'3 (negative), Q'1..Q'3.
        self.wv_p1_pu: float = 0.2
        self.wv_p2_pu: float = 0.5
        self.wv_p3_pu: float = 1.0
        self.wv_q1_pu: float = 0.0
        self.wv_q2_pu: float = 0.0
        self.wv_q3_pu: float = -0.44
        self.wv_pc1_pu: float = -0.2
        self.wv_pc2_pu: float = -0.5
        self.wv_pc3_pu: float = -1.0
        self.wv_qc1_pu: float = 0.0
        self.wv_qc2_pu: float = 0.0
        self.wv_qc3_pu: float = 0.44


class PqInputs:
    """What the daemon packs every cycle. NaN marks an unknown measurement (see docs/kernel.md)."""

    __slots__ = (
        "f_hz",
        "p_dispatch_w",
        "p_max_charge_w",
        "p_max_discharge_w",
        "p_meas_w",
        "q_dispatch_var",
        "soc_est",
        "soc_ev",
        "stop",
        "t_s",
        "v_pu",
    )

    def __init__(self) -> None:
        self.t_s: float = 0.0
        self.v_pu: float = 1.0
        self.f_hz: float = 60.0
        self.p_dispatch_w: float = 0.0
        self.q_dispatch_var: float = 0.0
        # State-of-power limits, magnitudes >= 0, already the lower of ours and the EV's.
        self.p_max_discharge_w: float = 0.0
        self.p_max_charge_w: float = 0.0
        self.soc_ev: float = math.nan
        self.soc_est: float = math.nan
        self.p_meas_w: float = math.nan
        self.stop: int = 0


class PqState:
    """What the kernel carries from one step to the next; ``initialized = 0`` starts it afresh."""

    __slots__ = (
        "cap_ref_w",
        "cap_tgt_w",
        "dev_ref_w",
        "dev_tgt_w",
        "f_last_hz",
        "fw_mode",
        "initialized",
        "p_basis_w",
        "p_last_w",
        "p_pre_w",
        "q_ref_var",
        "q_tgt_var",
        "t_prev_s",
        "v_last_pu",
        "vref_pu",
    )

    def __init__(self) -> None:
        self.initialized: int = 0
        self.t_prev_s: float = 0.0
        self.v_last_pu: float = 1.0
        self.f_last_hz: float = 60.0
        self.p_basis_w: float = 0.0
        self.p_last_w: float = 0.0
        self.fw_mode: int = FreqMode.DEADBAND
        self.p_pre_w: float = 0.0
        # Each response: where the plant's output should be (ref) and the target it is heading for.
        self.dev_ref_w: float = 0.0
        self.dev_tgt_w: float = 0.0
        self.cap_ref_w: float = 0.0
        self.cap_tgt_w: float = 0.0
        self.q_ref_var: float = 0.0
        self.q_tgt_var: float = 0.0
        self.vref_pu: float = 1.0


class PqOutputs:
    """Result of a step: the setpoints, why they differ from the request, and what each function asked."""

    __slots__ = (
        "binding",
        "binding_id",
        "p_basis_w",
        "p_fw_w",
        "p_hi_w",
        "p_lo_w",
        "p_pre_w",
        "p_vw_cap_w",
        "p_w",
        "q_cap_abs_var",
        "q_cap_inj_var",
        "q_fn_var",
        "q_var",
        "vref_pu",
    )

    def __init__(self) -> None:
        self.p_w: float = 0.0
        self.q_var: float = 0.0
        self.binding: int = 0
        self.binding_id: int = 0
        self.p_basis_w: float = 0.0  # dispatch after ramp and limits
        self.p_fw_w: float = 0.0  # what droop asked (the basis when droop is idle)
        self.p_pre_w: float = 0.0  # pre-disturbance power held by droop
        self.p_vw_cap_w: float = 0.0  # volt-watt cap (p_hi_w when volt-watt is off)
        self.p_hi_w: float = 0.0  # discharge limit from ratings, SoP and SoC
        self.p_lo_w: float = 0.0  # charge limit (<= 0)
        self.q_fn_var: float = 0.0  # what the reactive mode asked, before capability and S limits
        self.q_cap_inj_var: float = 0.0
        self.q_cap_abs_var: float = 0.0
        self.vref_pu: float = 1.0


PARAM_FIELDS: tuple[str, ...] = PqParams.__slots__
INPUT_FIELDS: tuple[str, ...] = PqInputs.__slots__
STATE_FIELDS: tuple[str, ...] = PqState.__slots__
OUTPUT_FIELDS: tuple[str, ...] = PqOutputs.__slots__


def copy_fields(src: object, dst: object, fields: tuple[str, ...]) -> None:
    """Copy the named attributes (e.g. a reference record into a compiled one)."""
    for name in fields:
        setattr(dst, name, getattr(src, name))
