"""Each P/Q kernel function against IEEE 1547-2018 / 1547.1 numbers (docs/kernel.md, notes A.2-A.5, D).

Expected values are written out from the standard's formulas, never taken from the kernel.
"""

from __future__ import annotations

import math
from types import ModuleType

import pytest
from pq_support import IMPLS, P_RATED_W, S_RATED_VA, Driver, params

from edge.control.pq_types import Constraint, Excitation, Priority, QMode, binding_name, binding_names

pytestmark = pytest.mark.parametrize("mod", IMPLS)

LN10 = math.log(10.0)


def settle(mod: ModuleType, p: object, seconds: float = 1.0, **inputs: float) -> Driver:
    d = Driver(mod, p)
    d.hold(seconds, **inputs)
    return d


# --- volt-var (Table 8 defaults; notes D) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("v_pu", "q_pu"),
    [
        (0.85, 0.44),
        (0.92, 0.44),
        (0.95, 0.44 * (0.98 - 0.95) / (0.98 - 0.92)),  # +0.22
        (0.98, 0.0),
        (1.00, 0.0),
        (1.02, 0.0),
        (1.05, -0.44 * (1.05 - 1.02) / (1.08 - 1.02)),  # -0.22
        (1.08, -0.44),
        (1.15, -0.44),
    ],
)
def test_volt_var_cat_b_curve(mod: ModuleType, v_pu: float, q_pu: float) -> None:
    p = params(mod, q_mode=QMode.VOLT_VAR, vv_olrt_s=0.0)
    o = settle(mod, p, v_pu=v_pu).o
    assert o.q_var == pytest.approx(q_pu * S_RATED_VA, abs=1e-6)
    assert o.q_fn_var == pytest.approx(q_pu * S_RATED_VA, abs=1e-6)


def test_volt_var_cat_a_curve(mod: ModuleType) -> None:
    p = params(
        mod,
        q_mode=QMode.VOLT_VAR,
        vv_olrt_s=0.0,
        vv_v1_pu=0.90,
        vv_v2_pu=1.00,
        vv_v3_pu=1.00,
        vv_v4_pu=1.10,
        vv_q1_pu=0.25,
        vv_q4_pu=-0.25,
    )
    assert settle(mod, p, v_pu=1.05).o.q_var == pytest.approx(-0.25 * 0.05 / 0.10 * S_RATED_VA, abs=1e-6)
    assert settle(mod, p, v_pu=1.00).o.q_var == pytest.approx(0.0, abs=1e-9)
    assert settle(mod, p, v_pu=0.95).o.q_var == pytest.approx(0.25 * 0.05 / 0.10 * S_RATED_VA, abs=1e-6)


def test_volt_var_autonomous_vref_brings_q_back(mod: ModuleType) -> None:
    # 1547.1 5.14.5: after a step to (V3 + V4) / 2, |Q| falls below 10 % of |Q4| (UL 1741 SB: within 4 Tref).
    tref = 300.0
    p = params(mod, q_mode=QMode.VOLT_VAR, vv_olrt_s=5.0, vv_vref_auto=1, vv_vref_tau_s=tref)
    d = Driver(mod, p, dt_s=1.0)
    d.hold(10.0, v_pu=1.0)
    v_step = (1.02 + 1.08) / 2
    o = d.hold(30.0, v_pu=v_step)
    assert o.q_var < -0.5 * 0.22 * S_RATED_VA  # volt-var acts first
    o = d.hold(4 * tref, v_pu=v_step)
    assert abs(o.q_var) < 0.1 * 0.44 * S_RATED_VA
    # VRef followed V with the time constant and stays inside 0.95 ... 1.05.
    expected_vref = v_step + (1.0 - v_step) * math.exp(-(4 * tref + 30.0) / tref)
    assert o.vref_pu == pytest.approx(expected_vref, abs=2e-3)
    o = d.hold(20 * tref, v_pu=1.10)
    assert o.vref_pu == pytest.approx(1.05, abs=1e-6)


# --- volt-watt (Table 10; notes D) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("absorb", "v_pu", "cap_pu"),
    [
        (0, 1.00, 1.0),
        (0, 1.06, 1.0),
        (0, 1.08, 1.0 - (1.08 - 1.06) / (1.10 - 1.06) * (1.0 - 0.2)),  # 0.60
        (0, 1.10, 0.2),
        (0, 1.15, 0.2),
        (1, 1.08, 1.0 - (1.08 - 1.06) / (1.10 - 1.06) * (1.0 - 0.0)),  # 0.50, storage P'2 = 0
        (1, 1.10, 0.0),
    ],
)
def test_volt_watt_cap(mod: ModuleType, absorb: int, v_pu: float, cap_pu: float) -> None:
    p = params(mod, vw_enabled=1, vw_olrt_s=0.0, vw_absorb=absorb, vw_p2_charge_pu=0.0)
    o = settle(mod, p, v_pu=v_pu, p_dispatch_w=P_RATED_W).o
    assert o.p_vw_cap_w == pytest.approx(cap_pu * P_RATED_W, abs=1e-6)
    assert o.p_w == pytest.approx(cap_pu * P_RATED_W, abs=1e-6)
    assert bool(o.binding & Constraint.VOLT_WATT) == (cap_pu < 1.0)


def test_volt_watt_never_reduces_charging(mod: ModuleType) -> None:
    p = params(mod, vw_enabled=1, vw_olrt_s=0.0)
    o = settle(mod, p, v_pu=1.12, p_dispatch_w=-5_000.0).o
    assert o.p_w == -5_000.0
    assert not o.binding & Constraint.VOLT_WATT


@pytest.mark.parametrize(
    ("inputs", "expected_w", "bound"),
    [
        ({}, -P_RATED_W, Constraint(0)),  # exactly the rating: nothing cut
        ({"p_max_charge_w": 3_000.0}, -3_000.0, Constraint.SOP_CHARGE),
        ({"soc_ev": 1.0}, 0.0, Constraint.SOC_FULL),
    ],
)
def test_volt_watt_absorption_reports_the_binding_limit(
    mod: ModuleType, inputs: dict[str, float], expected_w: float, bound: Constraint
) -> None:
    # P'2 = P'rated: at V >= V2 volt-watt asks for full charging; the charge-side limit then binds.
    p = params(mod, vw_enabled=1, vw_olrt_s=0.0, vw_absorb=1, vw_p2_charge_pu=-1.0, soc_max=0.95)
    o = settle(mod, p, v_pu=1.10, p_dispatch_w=0.0, **inputs).o
    assert o.p_vw_cap_w == pytest.approx(-P_RATED_W)
    assert o.p_w == pytest.approx(expected_w)
    assert o.binding & (Constraint.VOLT_WATT | bound) == Constraint.VOLT_WATT | bound


# --- frequency droop (clause 6.5.2.7.2; notes A.5, D) --------------------------------------------------

FN = 60.0
DB = 0.036
K = 0.05


def droop_driver(mod: ModuleType, p_pre_w: float, **overrides: float) -> Driver:
    p = params(mod, fw_enabled=1, fw_olrt_s=0.0, **overrides)
    d = Driver(mod, p)
    d.hold(1.0, f_hz=FN, p_dispatch_w=p_pre_w)
    return d


@pytest.mark.parametrize(
    ("p_pre_pu", "f_hz", "expected_pu"),
    [
        (1.0, 60.5, 1.0 - (60.5 - (FN + DB)) / (FN * K)),  # 0.8453 (notes D)
        (0.5, 59.5, 0.5 + ((FN - DB) - 59.5) / (FN * K)),  # 0.6547 (notes D)
        (0.5, 60.03, 0.5),  # inside the deadband
        (0.5, 59.97, 0.5),
        # Charging: over-frequency charges harder, under-frequency charges less.
        (-0.5, 60.5, -0.5 - (60.5 - (FN + DB)) / (FN * K)),
        (-0.5, 59.5, -0.5 + ((FN - DB) - 59.5) / (FN * K)),
        # Through zero: over-frequency turns export into charging.
        (0.1, 60.9, 0.1 - (60.9 - (FN + DB)) / (FN * K)),
    ],
)
def test_droop_both_directions(mod: ModuleType, p_pre_pu: float, f_hz: float, expected_pu: float) -> None:
    d = droop_driver(mod, p_pre_pu * P_RATED_W)
    o = d.hold(1.0, f_hz=f_hz)
    assert o.p_w == pytest.approx(expected_pu * P_RATED_W, abs=1e-6)
    if f_hz > FN + DB:
        assert o.binding & Constraint.DROOP_OF
    elif f_hz < FN - DB:
        assert o.binding & Constraint.DROOP_UF
    else:
        assert not o.binding & (Constraint.DROOP_OF | Constraint.DROOP_UF)


def test_droop_bounded_by_available_power(mod: ModuleType) -> None:
    d = droop_driver(mod, 0.0)
    o = d.hold(1.0, f_hz=59.0, p_max_discharge_w=2_000.0)  # asks 0.32 p.u., the EV gives 0.2
    assert o.p_w == pytest.approx(2_000.0)
    assert o.binding & Constraint.DROOP_UF
    assert o.binding & Constraint.SOP_DISCHARGE
    d = droop_driver(mod, 0.0)
    o = d.hold(1.0, f_hz=61.0, p_max_charge_w=1_500.0)
    assert o.p_w == pytest.approx(-1_500.0)
    assert o.binding & Constraint.SOP_CHARGE
    d = droop_driver(mod, 0.0, fw_p_min_pu=-0.1)  # PMin (SunSpec 711) bounds over-frequency response
    assert d.hold(1.0, f_hz=61.0).p_w == pytest.approx(-0.1 * P_RATED_W)


def test_droop_holds_pre_disturbance_power(mod: ModuleType) -> None:
    d = droop_driver(mod, 5_000.0)
    f = FN + DB + 0.1 * FN * K  # 0.1 p.u. below the pre-disturbance power
    assert d.hold(1.0, f_hz=f).p_w == pytest.approx(4_000.0, abs=1e-6)
    # A new dispatch during the excursion does not move the droop's reference ...
    o = d.hold(1.0, f_hz=f, p_dispatch_w=8_000.0)
    assert o.p_w == pytest.approx(4_000.0, abs=1e-6)
    assert o.p_pre_w == pytest.approx(5_000.0)
    # ... back in the deadband the dispatch applies, and the next excursion starts from it.
    assert d.hold(1.0, f_hz=FN).p_w == pytest.approx(8_000.0)
    assert d.hold(1.0, f_hz=f).p_w == pytest.approx(7_000.0, abs=1e-6)


def test_droop_is_not_slowed_by_the_ramp(mod: ModuleType) -> None:
    d = droop_driver(mod, 5_000.0)
    d.p.ramp_w_per_s = 10.0
    f = FN + DB + 0.2 * FN * K
    assert d.step(f_hz=f).p_w == pytest.approx(3_000.0, abs=1e-6)


# --- open-loop response time (1547.1 B.1: first order, 90 % at Tr) -------------------------------------


def response(mod: ModuleType, which: str, olrt_s: float, **extra: float) -> tuple[Driver, float, float]:
    """Driver settled before a step, the value before and the final value of the step's response."""
    if which == "vv":
        p = params(mod, q_mode=QMode.VOLT_VAR, vv_olrt_s=olrt_s, **extra)
        d = Driver(mod, p, dt_s=0.01, plant_tau_s=extra.get("actuation_tau_s", 0.0))
        d.hold(5.0, v_pu=1.0)
        return d, 0.0, -0.44 * S_RATED_VA
    if which == "vw":
        p = params(mod, vw_enabled=1, vw_olrt_s=olrt_s, **extra)
        d = Driver(mod, p, dt_s=0.01, plant_tau_s=extra.get("actuation_tau_s", 0.0))
        d.hold(5.0, v_pu=1.0, p_dispatch_w=P_RATED_W)
        return d, P_RATED_W, 0.6 * P_RATED_W
    p = params(mod, fw_enabled=1, fw_olrt_s=olrt_s, **extra)
    d = Driver(mod, p, dt_s=0.01, plant_tau_s=extra.get("actuation_tau_s", 0.0))
    d.hold(5.0, f_hz=FN, p_dispatch_w=P_RATED_W)
    return d, P_RATED_W, 0.9 * P_RATED_W


STEP_INPUTS = {"vv": {"v_pu": 1.10}, "vw": {"v_pu": 1.08}, "fw": {"f_hz": FN + DB + 0.1 * FN * K}}


@pytest.mark.parametrize(
    ("which", "olrt_s"), [("vv", 1.0), ("vv", 5.0), ("vw", 10.0), ("vw", 0.5), ("fw", 5.0)]
)
def test_ninety_percent_at_olrt(mod: ModuleType, which: str, olrt_s: float) -> None:
    d, y0, y1 = response(mod, which, olrt_s)
    out = "q_var" if which == "vv" else "p_w"
    o = d.hold(olrt_s + d.dt_s, **STEP_INPUTS[which])  # the sample at exactly t = Tr after the step
    assert getattr(o, out) == pytest.approx(y0 + 0.9 * (y1 - y0), abs=1e-6)
    o = d.hold(olrt_s, **STEP_INPUTS[which])
    assert getattr(o, out) == pytest.approx(y0 + 0.99 * (y1 - y0), abs=1e-6)


@pytest.mark.parametrize("which", ["vv", "vw", "fw"])
def test_actuation_lag_compensated_at_the_plant(mod: ModuleType, which: str) -> None:
    olrt_s, lag_s = 2.0, 0.4
    d, y0, y1 = response(mod, which, olrt_s, actuation_tau_s=lag_s)
    attr = "plant_q_var" if which == "vv" else "plant_p_w"
    trace = []
    for _ in range(round(4 * olrt_s / d.dt_s)):
        d.step(**STEP_INPUTS[which])
        trace.append(getattr(d, attr))
    at_tr = trace[round(olrt_s / d.dt_s) - 1]
    # The plant's output, not the setpoint, reaches 90 % at Tr (1 % of the step: discretisation only) ...
    assert at_tr == pytest.approx(y0 + 0.9 * (y1 - y0), abs=0.01 * abs(y1 - y0))
    # ... and never overshoots (1547.1 fails a response that is too fast as well as one too slow).
    assert all(min(y0, y1) - 1e-6 <= y <= max(y0, y1) + 1e-6 for y in trace)
    # Without compensation the same plant is too slow.
    d, y0, y1 = response(mod, which, olrt_s)
    d.plant_tau_s = lag_s
    d.hold(olrt_s, **STEP_INPUTS[which])
    assert abs(getattr(d, attr) - y0) < 0.88 * abs(y1 - y0)


def test_olrt_time_constant(mod: ModuleType) -> None:
    ref, cmd = mod.lag(0.0, 1.0, 1.0, 5.0, 5.0, 0.0)
    assert ref == pytest.approx(0.9, abs=1e-12)
    assert cmd == ref
    ref, cmd = mod.lag(
        0.0, 0.0, 1.0, 0.0, 5.0, 5.0 / LN10
    )  # plant as slow as the response: command the target
    assert (ref, cmd) == (0.0, 1.0)


# --- constant PF, constant var, watt-var ---------------------------------------------------------------


def test_constant_pf(mod: ModuleType) -> None:
    p = params(mod, q_mode=QMode.CONST_PF, q_olrt_s=0.0, pf_inj=0.9, pf_inj_ext=Excitation.OVER_EXCITED)
    o = settle(mod, p, p_dispatch_w=P_RATED_W * 0.5).o
    assert o.q_var == pytest.approx(0.5 * P_RATED_W * math.sqrt(1 / 0.81 - 1), abs=1e-6)  # 0.4843 P
    p = params(
        mod,
        q_mode=QMode.CONST_PF,
        q_olrt_s=0.0,
        pf_inj=0.9,
        pf_charge=0.95,
        pf_charge_ext=Excitation.UNDER_EXCITED,
    )
    o = settle(mod, p, p_dispatch_w=-6_000.0).o  # charging: the absorbing-side setting applies
    assert o.q_var == pytest.approx(-6_000.0 * math.sqrt(1 / 0.95**2 - 1), abs=1e-6)


def test_constant_var(mod: ModuleType) -> None:
    p = params(mod, q_mode=QMode.CONST_Q, q_olrt_s=0.0, q_const_pu=0.44, q_const_charge_pu=-0.22)
    assert settle(mod, p, p_dispatch_w=3_000.0).o.q_var == pytest.approx(0.44 * S_RATED_VA)
    assert settle(mod, p, p_dispatch_w=-3_000.0).o.q_var == pytest.approx(-0.22 * S_RATED_VA)


@pytest.mark.parametrize(
    ("p_pu", "q_pu"),
    [
        (0.1, 0.0),
        (0.5, 0.0),
        (0.6, -0.44 * (0.6 - 0.5) / (1.0 - 0.5)),  # 1547.1 Table 39 step 6: 0.09 abs
        (0.7, -0.44 * (0.7 - 0.5) / (1.0 - 0.5)),  # step 8: 0.18 abs
        (1.0, -0.44),
        (-0.3, 0.0),
        (-0.6, 0.44 * (0.6 - 0.5) / (1.0 - 0.5)),  # P' side mirrors with Q' = +0.44
        (-1.0, 0.44),
    ],
)
def test_watt_var(mod: ModuleType, p_pu: float, q_pu: float) -> None:
    # Twice the apparent power so that full P and full Q fit together.
    s_va = 2 * S_RATED_VA
    p = params(
        mod,
        q_mode=QMode.WATT_VAR,
        q_olrt_s=0.0,
        s_rated_va=s_va,
        q_max_inj_var=0.44 * s_va,
        q_max_abs_var=0.44 * s_va,
    )
    o = settle(mod, p, p_dispatch_w=p_pu * P_RATED_W).o
    assert o.q_var == pytest.approx(q_pu * p.s_rated_va, abs=1e-6)


# --- limits, ramps, stop ------------------------------------------------------------------------------


def test_soc_reserve_uses_the_lower_soc(mod: ModuleType) -> None:
    p = params(mod, soc_min=0.2)
    assert settle(mod, p, p_dispatch_w=5_000.0, soc_ev=0.5, soc_est=0.5).o.p_w == 5_000.0
    for soc_ev, soc_est in [(0.15, 0.5), (0.5, 0.19), (math.nan, 0.1), (math.nan, math.nan)]:
        o = settle(mod, p, p_dispatch_w=5_000.0, soc_ev=soc_ev, soc_est=soc_est).o
        assert o.p_w == 0.0, (soc_ev, soc_est)
        assert binding_name(o.binding_id) == "soc_reserve"
    # One unknown SoC: the other decides.
    assert settle(mod, p, p_dispatch_w=5_000.0, soc_ev=math.nan, soc_est=0.4).o.p_w == 5_000.0
    # The reserve never stops charging.
    assert settle(mod, p, p_dispatch_w=-5_000.0, soc_ev=0.1, soc_est=0.1).o.p_w == -5_000.0


def test_soc_full_stops_charging_only(mod: ModuleType) -> None:
    p = params(mod, soc_max=0.9)
    o = settle(mod, p, p_dispatch_w=-5_000.0, soc_ev=0.85, soc_est=0.9).o
    assert o.p_w == 0.0
    assert o.binding & Constraint.SOC_FULL
    assert settle(mod, p, p_dispatch_w=5_000.0, soc_ev=0.95, soc_est=0.95).o.p_w == 5_000.0


def test_sop_and_ratings(mod: ModuleType) -> None:
    p = params(mod, p_rated_charge_w=7_000.0)
    o = settle(mod, p, p_dispatch_w=9_000.0, p_max_discharge_w=4_000.0).o
    assert (o.p_w, o.binding_id) == (4_000.0, Constraint.SOP_DISCHARGE.bit_length())
    o = settle(mod, p, p_dispatch_w=-9_000.0, p_max_charge_w=P_RATED_W).o
    assert (o.p_w, o.binding) == (-7_000.0, Constraint.P_RATING_CHARGE)
    o = settle(mod, p, p_dispatch_w=12_000.0, p_max_discharge_w=11_000.0).o
    assert (o.p_w, o.binding) == (P_RATED_W, Constraint.P_RATING_DISCHARGE)
    o = settle(mod, p, p_dispatch_w=12_000.0).o  # equal limits: both named
    assert o.binding == Constraint.P_RATING_DISCHARGE | Constraint.SOP_DISCHARGE
    o = settle(mod, p, p_dispatch_w=5_000.0, p_max_discharge_w=math.nan).o  # unknown SoP: nothing that way
    assert o.p_w == 0.0


def test_ramp_applies_to_dispatch_only_and_limits_bite_at_once(mod: ModuleType) -> None:
    p = params(mod, ramp_w_per_s=1_000.0)
    d = Driver(mod, p)
    d.hold(1.0, p_dispatch_w=0.0)
    o = d.hold(2.0, p_dispatch_w=5_000.0)  # 20 cycles of 0.1 s
    assert o.p_w == pytest.approx(2_000.0, abs=1e-6)
    assert o.binding == Constraint.RAMP
    o = d.hold(4.0)
    assert o.p_w == 5_000.0
    assert not o.binding
    o = d.step(p_max_discharge_w=1_000.0)  # a limit cuts at once ...
    assert o.p_w == 1_000.0
    o = d.hold(1.0, p_max_discharge_w=P_RATED_W)  # ... its release ramps
    assert o.p_w == pytest.approx(2_000.0, abs=1e-6)


def test_stop_ramps_down_at_the_stop_rate(mod: ModuleType) -> None:
    p = params(mod, ramp_w_per_s=5_000.0, stop_ramp_w_per_s=500.0)
    d = Driver(mod, p)
    d.hold(5.0, p_dispatch_w=6_000.0)
    o = d.hold(4.0, stop=1)
    assert o.p_w == pytest.approx(4_000.0, abs=1e-6)
    assert binding_name(o.binding_id) == "stop_ramp"
    assert d.hold(20.0, stop=1).p_w == 0.0
    o = d.hold(1.0, stop=0)  # restart ramps at the normal rate
    assert o.p_w == pytest.approx(5_000.0, abs=1e-6)


def test_stop_ramps_from_the_measured_output_when_a_downstream_limit_holds_it_lower(mod: ModuleType) -> None:
    """The export cap (kernel II) may hold the output at 2.5 kW while the dispatch basis is 6 kW: a
    stop must ramp down from 2.5 kW, not spend seconds ramping through power that was never there."""
    p = params(mod, ramp_w_per_s=5_000.0, stop_ramp_w_per_s=500.0)
    i, s, o = mod.PqInputs(), mod.PqState(), mod.PqOutputs()
    i.p_max_discharge_w, i.p_max_charge_w, i.soc_ev, i.soc_est = p.p_rated_w, p.p_rated_charge_w, 0.5, 0.5
    i.p_dispatch_w = 6_000.0
    for k in range(50):  # the kernel asks 6 kW, the plant delivers 2.5 kW (capped downstream)
        i.t_s, i.p_meas_w = k * 0.1, 2_500.0
        mod.step(p, i, s, o)
    assert o.p_w == 6_000.0
    i.stop = 1
    for k in range(50, 60):  # one second of stop ramp
        i.t_s = k * 0.1
        mod.step(p, i, s, o)
        i.p_meas_w = o.p_w
    assert o.p_w == pytest.approx(2_000.0, abs=1e-6)


# --- reactive capability and apparent power -----------------------------------------------------------


@pytest.mark.parametrize(
    ("p_pu", "factor"),
    [
        (0.0, 0.0),
        (0.03, 0.0),
        (0.05, 0.25),
        (0.125, 0.25 + 0.75 * (0.125 - 0.05) / 0.15),
        (0.2, 1.0),
        (-0.5, 1.0),
    ],
)
def test_reduced_q_at_low_p(mod: ModuleType, p_pu: float, factor: float) -> None:
    p = params(
        mod, q_mode=QMode.CONST_Q, q_olrt_s=0.0, q_const_pu=0.44, q_const_charge_pu=0.44, q_reduced_low_p=1
    )
    o = settle(mod, p, p_dispatch_w=p_pu * P_RATED_W).o
    assert o.q_cap_inj_var == pytest.approx(factor * 0.44 * S_RATED_VA)
    assert o.q_var == pytest.approx(factor * 0.44 * S_RATED_VA)
    assert bool(o.binding & Constraint.Q_LIMIT) == (factor < 1.0)


def test_apparent_power_priority(mod: ModuleType) -> None:
    s = 10_500.0
    p = params(mod, q_mode=QMode.VOLT_VAR, vv_olrt_s=0.0, s_rated_va=s, s_priority=Priority.REACTIVE)
    o = settle(mod, p, p_dispatch_w=P_RATED_W, v_pu=1.10).o
    q = -0.44 * s
    assert o.q_var == pytest.approx(max(q, -0.44 * S_RATED_VA))  # Q capability is the q_max rating
    assert o.p_w == pytest.approx(math.sqrt(s * s - o.q_var**2))
    assert binding_names(o.binding) == ["s_limit", "q_limit"]
    p.s_priority = Priority.ACTIVE
    o = settle(mod, p, p_dispatch_w=P_RATED_W, v_pu=1.10).o
    assert o.p_w == P_RATED_W
    assert o.q_var == pytest.approx(-math.sqrt(s * s - P_RATED_W**2))
    assert math.hypot(o.p_w, o.q_var) <= s * (1 + 1e-12)


# --- bad input ----------------------------------------------------------------------------------------


def test_nan_measurement_holds_last_value(mod: ModuleType) -> None:
    p = params(mod, q_mode=QMode.VOLT_VAR, vv_olrt_s=0.0)
    d = Driver(mod, p)
    q = d.hold(1.0, v_pu=1.05).q_var
    o = d.step(v_pu=math.nan)
    assert o.q_var == q
    assert o.binding & Constraint.INPUT_INVALID
    o = d.step(v_pu=1.0, p_dispatch_w=math.nan)
    assert o.p_w == 0.0
    assert o.binding_id == Constraint.INPUT_INVALID.bit_length()


def test_time_never_runs_backwards(mod: ModuleType) -> None:
    p = params(mod, ramp_w_per_s=1_000.0)
    d = Driver(mod, p)
    d.hold(1.0, p_dispatch_w=0.0)
    d.k -= 50  # clock jumps back 5 s
    o = d.step(p_dispatch_w=5_000.0)
    assert o.p_w == 0.0
    assert d.step().p_w == pytest.approx(100.0)


def test_stop_during_a_frequency_excursion_keeps_the_droop_response(mod: ModuleType) -> None:
    # A non-protective stop does not pull P out from under an under-frequency response (a fleet stepping
    # off would deepen the dip); droop stays on Ppre until the frequency returns, then P follows the stop.
    p = params(mod, fw_enabled=1, fw_olrt_s=5.0, stop_ramp_w_per_s=1_000.0)
    d = Driver(mod, p)
    d.hold(10.0, f_hz=FN, p_dispatch_w=4_000.0)
    f = FN - DB - 0.1 * FN * K
    o = d.hold(30.0, f_hz=f)
    assert o.p_w == pytest.approx(5_000.0, abs=1.0)
    o = d.hold(30.0, f_hz=f, stop=1)
    assert o.p_basis_w == 0.0
    assert o.p_w == pytest.approx(5_000.0, abs=1.0)
    assert o.binding & Constraint.STOP_RAMP
    assert o.binding & Constraint.DROOP_UF
    o = d.hold(5.0 + d.dt_s, f_hz=FN, stop=1)  # back in the deadband: P goes to 0 with the droop OLRT
    assert o.p_w == pytest.approx(0.1 * 5_000.0, abs=1.0)
