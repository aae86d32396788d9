"""Map the typed settings (edge.settings.model) onto the P/Q kernel's parameter record.

Run when settings change, never in the cycle. A function is computed by the kernel only when its owner is
``daemon``; ``inverter`` and ``off`` leave it disabled here. Settings the model does not carry keep the
kernel's defaults and are named in docs/kernel.md (SoC maximum, P/Q priority, the response time of
constant PF / constant var, the measured actuation lag). ``check_params`` refuses combinations that make no
sense, naming the field, the value and the rule.
"""

from __future__ import annotations

from itertools import pairwise

from edge.control import pq
from edge.control._pq_ref import PqParams
from edge.control.pq_types import Excitation, QMode
from edge.settings.model import REACTIVE_MODES, Settings

# The response time 1547.1 gives constant PF and constant var: 90 % within 10 s (notes A.4).
CONST_Q_OLRT_S = 10.0

_QMODE = {
    "volt_var": QMode.VOLT_VAR,
    "constant_pf": QMode.CONST_PF,
    "constant_var": QMode.CONST_Q,
    "watt_var": QMode.WATT_VAR,
}


class PqSettingsError(ValueError):
    """The settings cannot drive the P/Q kernel (not commissioned, or two reactive modes at once)."""


def params_from_settings(
    settings: Settings, *, actuation_tau_s: float = 0.0, into: PqParams | None = None
) -> PqParams:
    """Fill ``into`` (or a new record of the selected implementation) from ``settings``.

    ``actuation_tau_s`` is the measured first-order lag of inverter and meter (commissioning measures it;
    it is not a setting).
    """
    grid = settings.grid
    inverter = settings.inverter
    f_nominal_hz = settings.commissioning.f_nominal_hz
    if grid is None or inverter is None or f_nominal_hz is None:
        missing = [
            name
            for name, value in (
                ("grid (commissioned profile)", grid),
                ("inverter", inverter),
                ("commissioning.f_nominal_hz", f_nominal_hz),
            )
            if value is None
        ]
        raise PqSettingsError(f"P/Q kernel needs {', '.join(missing)}; got None")
    if actuation_tau_s < 0.0:
        raise PqSettingsError(f"actuation_tau_s = {actuation_tau_s}: allowed range is >= 0 s")
    functions = settings.functions
    reactive = [name for name in REACTIVE_MODES if getattr(functions, name) == "daemon"]
    if len(reactive) > 1:
        raise PqSettingsError(
            f"functions: {', '.join(reactive)} are all owned by the daemon; one reactive mode at a time"
        )

    p = into if into is not None else pq.PqParams()
    p.f_nominal_hz = float(f_nominal_hz)
    p.p_rated_w = inverter.p_rated_w
    p.p_rated_charge_w = inverter.p_rated_charge_w
    p.s_rated_va = inverter.s_rated_va
    p.q_max_inj_var = inverter.q_max_inj_var
    p.q_max_abs_var = inverter.q_max_abs_var
    p.q_reduced_low_p = int(inverter.reduced_q_at_low_p)
    p.soc_min = settings.owner.min_soc
    p.ramp_w_per_s = grid.ramp.normal_pu_per_s * inverter.p_rated_w
    p.stop_ramp_w_per_s = grid.ramp.stop_pu_per_s * inverter.p_rated_w
    p.actuation_tau_s = actuation_tau_s

    fw = grid.freq_droop
    p.fw_enabled = int(functions.frequency_droop == "daemon")
    p.fw_db_of_hz = fw.db_of_hz
    p.fw_db_uf_hz = fw.db_uf_hz
    p.fw_k_of = fw.k_of
    p.fw_k_uf = fw.k_uf
    p.fw_olrt_s = fw.olrt_s
    p.fw_p_min_pu = fw.p_min_pu

    vw = grid.volt_watt
    p.vw_enabled = int(functions.volt_watt == "daemon")
    p.vw_v1_pu = vw.v1_pu
    p.vw_v2_pu = vw.v2_pu
    p.vw_p1_pu = vw.p1_pu
    p.vw_p2_pu = vw.p2_pu
    # A bidirectional charger can absorb, so 1547 Table 10's P'2 applies (0 = no export, < 0 = charge).
    p.vw_absorb = 1
    p.vw_p2_charge_pu = vw.p2_charging_pu
    p.vw_olrt_s = vw.olrt_s

    p.q_mode = _QMODE[reactive[0]] if reactive else QMode.OFF
    vv = grid.volt_var
    p.vv_vref_pu = vv.v_ref_pu
    p.vv_vref_auto = int(vv.v_ref_auto)
    p.vv_vref_tau_s = vv.v_ref_tau_s
    p.vv_v1_pu, p.vv_v2_pu, p.vv_v3_pu, p.vv_v4_pu = vv.v1_pu, vv.v2_pu, vv.v3_pu, vv.v4_pu
    p.vv_q1_pu, p.vv_q2_pu, p.vv_q3_pu, p.vv_q4_pu = vv.q1_pu, vv.q2_pu, vv.q3_pu, vv.q4_pu
    p.vv_olrt_s = vv.olrt_s
    # The settings hold one PF and one var setpoint: the same applies while charging.
    ext = Excitation.OVER_EXCITED if grid.constant_pf.excitation == "inject" else Excitation.UNDER_EXCITED
    p.pf_inj = p.pf_charge = grid.constant_pf.pf
    p.pf_inj_ext = p.pf_charge_ext = ext
    p.q_const_pu = p.q_const_charge_pu = grid.constant_var.q_pu
    wv = grid.watt_var
    p.wv_p1_pu, p.wv_p2_pu, p.wv_p3_pu = wv.p1_pu, wv.p2_pu, wv.p3_pu
    p.wv_q1_pu, p.wv_q2_pu, p.wv_q3_pu = wv.q1_pu, wv.q2_pu, wv.q3_pu
    p.wv_pc1_pu, p.wv_pc2_pu, p.wv_pc3_pu = wv.p1_charging_pu, wv.p2_charging_pu, wv.p3_charging_pu
    p.wv_qc1_pu, p.wv_qc2_pu, p.wv_qc3_pu = wv.q1_charging_pu, wv.q2_charging_pu, wv.q3_charging_pu
    p.q_olrt_s = wv.olrt_s if p.q_mode == QMode.WATT_VAR else CONST_Q_OLRT_S
    check_params(p)
    return p


def _ascending(p: PqParams, names: tuple[str, ...], strict: tuple[bool, ...]) -> None:
    for (na, nb), must_rise in zip(pairwise(names), strict, strict=True):
        a, b = getattr(p, na), getattr(p, nb)
        if a > b or (must_rise and a == b):
            relation = "<" if must_rise else "<="
            raise PqSettingsError(f"{na} = {a} and {nb} = {b}: the curve needs {na} {relation} {nb}")


def check_params(p: PqParams) -> None:
    """Refuse parameters the kernel would run with but which make no sense (the settings' ranges are the
    first line; this catches combinations and hand-built records). Raises ``PqSettingsError``."""
    for name in ("p_rated_w", "p_rated_charge_w", "s_rated_va"):
        if not getattr(p, name) > 0.0:
            raise PqSettingsError(f"{name} = {getattr(p, name)}: allowed range is > 0")
    for name in ("q_max_inj_var", "q_max_abs_var", "ramp_w_per_s", "stop_ramp_w_per_s", "actuation_tau_s"):
        if not getattr(p, name) >= 0.0:
            raise PqSettingsError(f"{name} = {getattr(p, name)}: allowed range is >= 0")
    for name in ("fw_olrt_s", "vw_olrt_s", "vv_olrt_s", "q_olrt_s", "vv_vref_tau_s"):
        if not getattr(p, name) >= 0.0:
            raise PqSettingsError(f"{name} = {getattr(p, name)} s: allowed range is >= 0 s")
    if p.f_nominal_hz not in (50.0, 60.0):
        raise PqSettingsError(f"f_nominal_hz = {p.f_nominal_hz}: allowed values are 50 and 60 Hz")
    if not 0.0 <= p.soc_min < p.soc_max <= 1.0:
        raise PqSettingsError(
            f"soc_min = {p.soc_min}, soc_max = {p.soc_max}: need 0 <= soc_min < soc_max <= 1"
        )
    # Curves and constants of functions that are off do not matter.
    if p.fw_enabled:
        for name in ("fw_k_of", "fw_k_uf"):
            if not getattr(p, name) > 0.0:
                raise PqSettingsError(f"{name} = {getattr(p, name)}: allowed range is > 0")
        for name in ("fw_db_of_hz", "fw_db_uf_hz"):
            if not getattr(p, name) >= 0.0:
                raise PqSettingsError(f"{name} = {getattr(p, name)} Hz: allowed range is >= 0 Hz")
    if p.vw_enabled:
        _ascending(p, ("vw_v1_pu", "vw_v2_pu"), (True,))
    if p.q_mode == QMode.CONST_PF:
        for name in ("pf_inj", "pf_charge"):
            if not 0.0 < getattr(p, name) <= 1.0:
                raise PqSettingsError(f"{name} = {getattr(p, name)}: allowed range is 0 < PF <= 1")
    elif p.q_mode == QMode.VOLT_VAR:
        _ascending(p, ("vv_v1_pu", "vv_v2_pu", "vv_v3_pu", "vv_v4_pu"), (True, False, True))
    elif p.q_mode == QMode.WATT_VAR:
        _ascending(p, ("wv_p1_pu", "wv_p2_pu", "wv_p3_pu"), (True, True))
        _ascending(p, ("wv_pc3_pu", "wv_pc2_pu", "wv_pc1_pu"), (True, True))
