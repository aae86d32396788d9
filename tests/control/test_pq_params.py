"""Settings -> P/Q kernel parameters: the commissioned bench config drives the kernel as documented."""

from __future__ import annotations

import msgspec
import pytest

from edge.control import _pq_c, pq
from edge.control.pq_params import PqSettingsError, check_params, params_from_settings
from edge.control.pq_types import PARAM_FIELDS, Excitation, QMode
from edge.settings.load import load_default
from edge.settings.model import Functions


def test_bench_settings_map_to_params() -> None:
    s = load_default()
    assert s.inverter is not None
    assert s.grid is not None
    p = params_from_settings(s, actuation_tau_s=0.3)
    assert type(p) is pq.PqParams
    assert p.p_rated_w == s.inverter.p_rated_w
    assert p.s_rated_va == s.inverter.s_rated_va
    assert p.q_reduced_low_p == int(s.inverter.reduced_q_at_low_p)
    assert p.f_nominal_hz == 60.0
    assert p.soc_min == s.owner.min_soc
    assert p.ramp_w_per_s == pytest.approx(s.grid.ramp.normal_pu_per_s * s.inverter.p_rated_w)
    assert p.actuation_tau_s == 0.3
    # Owners: the bench config gives droop, volt-var and volt-watt to the daemon.
    assert (p.fw_enabled, p.vw_enabled, p.q_mode) == (1, 1, QMode.VOLT_VAR)
    assert (p.vv_v1_pu, p.vv_q1_pu, p.vv_olrt_s) == (0.92, 0.44, 5.0)
    assert (p.fw_db_of_hz, p.fw_k_of) == (0.036, 0.05)
    assert (p.vw_absorb, p.vw_p2_charge_pu) == (1, s.grid.volt_watt.p2_charging_pu)


def test_inverter_owned_functions_stay_off_and_one_reactive_mode() -> None:
    s = load_default()
    s = msgspec.structs.replace(
        s,
        functions=Functions(
            frequency_droop="inverter", volt_var="off", constant_pf="daemon", volt_watt="off"
        ),
    )
    p = params_from_settings(s, into=_pq_c.PqParams())
    assert (p.fw_enabled, p.vw_enabled, p.q_mode) == (0, 0, QMode.CONST_PF)
    assert p.pf_inj_ext == Excitation.OVER_EXCITED
    assert p.q_olrt_s == 10.0
    two = msgspec.structs.replace(s, functions=Functions(constant_pf="daemon", watt_var="daemon"))
    with pytest.raises(PqSettingsError, match="constant_pf, watt_var"):
        params_from_settings(two)


def test_uncommissioned_settings_are_refused() -> None:
    s = msgspec.structs.replace(load_default(), grid=None)
    with pytest.raises(PqSettingsError, match="grid"):
        params_from_settings(s)
    with pytest.raises(PqSettingsError, match="actuation_tau_s = -1"):
        params_from_settings(load_default(), actuation_tau_s=-1.0)


def test_every_param_is_set_from_settings_or_documented_default() -> None:
    # Fields the settings model does not carry (docs/kernel.md "Mapping from settings").
    defaults = {"soc_max", "s_priority"}
    p = params_from_settings(load_default(), into=_pq_c.PqParams())
    fresh = _pq_c.PqParams()
    for name in defaults:
        assert getattr(p, name) == getattr(fresh, name)
    assert defaults <= set(PARAM_FIELDS)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("p_rated_w", 0.0, "p_rated_w = 0.0: allowed range is > 0"),
        ("vv_v3_pu", 0.97, "vv_v2_pu = 0.98 and vv_v3_pu = 0.97"),
        ("vw_v2_pu", 1.06, "vw_v1_pu = 1.06 and vw_v2_pu = 1.06: the curve needs vw_v1_pu < vw_v2_pu"),
        ("fw_k_of", 0.0, "fw_k_of = 0.0: allowed range is > 0"),
        ("soc_min", 1.0, "soc_min = 1.0"),
        ("f_nominal_hz", 0.0, "f_nominal_hz = 0.0"),
        ("vv_olrt_s", -1.0, "vv_olrt_s = -1.0 s"),
    ],
)
def test_check_params_names_field_value_and_range(field: str, value: float, message: str) -> None:
    p = params_from_settings(load_default(), into=_pq_c.PqParams())  # droop, volt-watt, volt-var on
    setattr(p, field, value)
    with pytest.raises(PqSettingsError) as err:
        check_params(p)
    assert message in str(err.value)


def test_cat_a_volt_var_without_deadband_is_accepted() -> None:
    p = params_from_settings(load_default(), into=_pq_c.PqParams())
    p.vv_v2_pu = p.vv_v3_pu = 1.0  # Cat A: V2 = V3 = VRef
    check_params(p)


def test_curves_of_functions_that_are_off_are_not_checked() -> None:
    p = params_from_settings(load_default(), into=_pq_c.PqParams())
    p.q_mode = QMode.WATT_VAR
    p.wv_pc2_pu = -0.1
    with pytest.raises(PqSettingsError, match=r"wv_pc2_pu = -0\.1 and wv_pc1_pu = -0\.2"):
        check_params(p)
    p.q_mode = QMode.CONST_PF
    check_params(p)
    p.pf_charge = 0.0
    with pytest.raises(PqSettingsError, match=r"pf_charge = 0\.0"):
        check_params(p)
