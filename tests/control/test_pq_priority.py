"""IEEE 1547.1-2020 5.16 voltage and frequency regulation priority test (Table 39, Category B) as a unit test.

Procedure (1547.1 5.16, steps d, e, h): available power Prated, volt-watt and frequency droop at their
defaults with P2 = 0.2 Prated, active power limited to 0.5 Prated; then the steps below, each to steady
state. The expected P is derived here from the standard's formulas (droop acts on the pre-disturbance
power, the power when frequency left the deadband; volt-watt caps the result); the table's own "active
power" column is checked against those derivations within the 1547.1 4.2 test-result tolerance.
"""

from __future__ import annotations

import math
from types import ModuleType

import pytest
from pq_support import IMPLS, P_RATED_W, S_RATED_VA, Driver, params

from edge.control.pq_types import Constraint, Excitation, QMode

FN, DB, K = 60.0, 0.036, 0.05  # droop defaults (Table 34 char. 1)
VW_V1, VW_V2, VW_P1, VW_P2 = 1.06, 1.10, 1.0, 0.2  # volt-watt defaults, P2 = 0.2 Prated (step e)
P_LIMIT = 0.5  # step h
P_AVAIL = 1.0  # step d
TOL_P = 1.5 * 0.05  # 1547.1 4.2: 1.5 x MRA of P (5 % of rated)

# (V p.u., f Hz, table's active power p.u.); Table 39
STEPS = [
    (1.00, 60.00, 0.5),
    (1.09, 60.00, 0.4),
    (1.09, 60.33, 0.3),
    (1.09, 60.00, 0.4),
    (1.09, 59.36, 0.4),
    (1.00, 59.36, 0.6),
    (1.00, 60.00, 0.5),
    (1.00, 59.36, 0.7),
]


def vw_cap(v: float) -> float:
    if v <= VW_V1:
        return VW_P1
    if v >= VW_V2:
        return VW_P2
    return VW_P1 - (v - VW_V1) / (VW_V2 - VW_V1) * (VW_P1 - VW_P2)


def expected_p() -> list[float]:
    """Steady-state P per step, from the formulas, carrying the pre-disturbance power as history."""
    out: list[float] = []
    p_prev = P_LIMIT
    p_pre = math.nan
    f_prev = FN
    for v, f, _ in STEPS:
        in_band = FN - DB <= f <= FN + DB
        if not in_band and FN - DB <= f_prev <= FN + DB:
            p_pre = p_prev  # the power when frequency left the deadband
        if f > FN + DB:
            p = max(p_pre - (f - (FN + DB)) / (FN * K), -1.0)
        elif f < FN - DB:
            p = min(p_pre + ((FN - DB) - f) / (FN * K), P_AVAIL)
        else:
            p = P_LIMIT
        p = min(p, vw_cap(v))
        out.append(p)
        p_prev, f_prev = p, f
    return out


EXPECTED_P = expected_p()


def test_derivation_matches_table_39() -> None:
    # 0.5, 0.4, 0.302, 0.4, 0.4, 0.6013, 0.5, 0.7013
    assert EXPECTED_P[2] == pytest.approx(0.4 - (60.33 - 60.036) / 3.0)
    assert EXPECTED_P[5] == pytest.approx(0.4 + (59.964 - 59.36) / 3.0)
    assert EXPECTED_P[7] == pytest.approx(0.5 + (59.964 - 59.36) / 3.0)
    for (_, _, table_p), p in zip(STEPS, EXPECTED_P, strict=True):
        assert abs(p - table_p) <= TOL_P


def vv_q(v: float) -> float:  # Table 8 Cat B
    if v <= 0.92:
        return 0.44
    if v < 0.98:
        return 0.44 * (0.98 - v) / (0.98 - 0.92)
    if v <= 1.02:
        return 0.0
    if v < 1.08:
        return -0.44 * (v - 1.02) / (1.08 - 1.02)
    return -0.44


def wv_q(p: float) -> float:  # watt-var Cat B (P1 0.2, P2 0.5, P3 1.0; Q 0, 0, -0.44)
    if p <= 0.5:
        return 0.0
    return -0.44 * (min(p, 1.0) - 0.5) / (1.0 - 0.5)


# Reactive modes of 1547.1 5.16 steps f, o, p, q, with the table's Q column (p.u., + injection).
MODES = {
    "volt_var": (
        {"q_mode": QMode.VOLT_VAR},
        lambda v, p: vv_q(v),
        [0, -0.44, -0.44, -0.44, -0.44, 0, 0, 0],
    ),
    "const_q": (
        {"q_mode": QMode.CONST_Q, "q_const_pu": 0.44},
        lambda v, p: 0.44,
        [0.44] * 8,
    ),
    "const_pf": (
        {"q_mode": QMode.CONST_PF, "pf_inj": 0.9, "pf_inj_ext": Excitation.OVER_EXCITED},
        lambda v, p: p * math.sqrt(1 / 0.9**2 - 1),
        [tp * math.sqrt(1 / 0.9**2 - 1) for _, _, tp in STEPS],
    ),
    "watt_var": (
        {"q_mode": QMode.WATT_VAR},
        lambda v, p: wv_q(p),
        [0, 0, 0, 0, 0, -0.09, 0, -0.18],
    ),
}


@pytest.mark.parametrize("mod", IMPLS)
@pytest.mark.parametrize("mode", list(MODES))
def test_priority_table_39(mod: ModuleType, mode: str) -> None:
    overrides, q_of, table_q = MODES[mode]
    p = params(mod, fw_enabled=1, vw_enabled=1, vw_p2_pu=VW_P2, **overrides)
    d = Driver(mod, p, dt_s=0.1)
    d.hold(100.0, v_pu=1.0, f_hz=FN, p_dispatch_w=P_LIMIT * P_RATED_W, p_max_discharge_w=P_AVAIL * P_RATED_W)
    for n, ((v, f, _), p_exp, q_tab) in enumerate(zip(STEPS, EXPECTED_P, table_q, strict=True), start=1):
        o = d.hold(100.0, v_pu=v, f_hz=f)  # >> 4 x the longest response time (volt-watt 10 s)
        assert o.p_w == pytest.approx(p_exp * P_RATED_W, abs=1e-3), f"step {n}"
        q_exp = q_of(v, p_exp)
        assert o.q_var == pytest.approx(q_exp * S_RATED_VA, abs=1e-3), f"step {n}"
        assert abs(q_exp - q_tab) <= 1.5 * 0.05, f"step {n}: derivation vs table"
        # The telemetry says why P is not the 0.5 p.u. asked for.
        if p_exp < P_LIMIT and vw_cap(v) < P_LIMIT and p_exp == vw_cap(v):
            assert o.binding & Constraint.VOLT_WATT, f"step {n}"
        if f > FN + DB:
            assert o.binding & Constraint.DROOP_OF, f"step {n}"
        if f < FN - DB:
            assert o.binding & Constraint.DROOP_UF, f"step {n}"
        if p_exp == P_LIMIT:
            assert not o.binding, f"step {n}"
