"""Invariants of the P/Q kernel on random input streams (hypothesis), both implementations."""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pq_support import IMPLS, P_RATED_W, S_RATED_VA, params
from test_pq_agreement import build, feed, input_rows, param_sets

from edge.control.pq_types import QMode, binding_id

pytestmark = pytest.mark.parametrize("mod", IMPLS)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(overrides=param_sets(), rows=st.lists(input_rows(), min_size=1, max_size=60))
def test_never_above_ratings(mod: ModuleType, overrides: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    recs = build(mod, overrides)
    p, _, _, o = recs
    t = 0.0
    for row in rows:
        t += row["dt_s"]
        feed(recs, t, row)
        mod.step(*recs)
        assert math.isfinite(o.p_w)
        assert math.isfinite(o.q_var)
        assert math.hypot(o.p_w, o.q_var) <= p.s_rated_va * (1 + 1e-12)
        assert o.p_lo_w - 1e-9 <= o.p_w <= o.p_hi_w + 1e-9
        assert o.p_hi_w <= p.p_rated_w
        assert -o.p_lo_w <= p.p_rated_charge_w
        assert -o.q_cap_abs_var - 1e-9 <= o.q_var <= o.q_cap_inj_var + 1e-9
        assert o.binding_id == binding_id(o.binding)
        if row["stop"] == 0 and row["p_dispatch_w"] == row["p_dispatch_w"]:
            # Discharge only where the SoC is known and above the reserve (both estimates).
            soc_lo = min((s for s in (row["soc_ev"], row["soc_est"]) if s == s), default=math.nan)
            if not soc_lo > p.soc_min:
                assert o.p_w <= 0.0


def static_params(mod: ModuleType, mode: int) -> Any:
    """Every function on, no dynamics, so the output is a function of the inputs alone."""
    return params(
        mod,
        fw_enabled=1,
        vw_enabled=1,
        vw_absorb=1,
        vw_p2_charge_pu=-0.5,
        q_mode=mode,
        fw_olrt_s=0.0,
        vw_olrt_s=0.0,
        vv_olrt_s=0.0,
        q_olrt_s=0.0,
        q_const_pu=0.3,
        q_const_charge_pu=0.3,  # same both sides: continuous through P = 0
        pf_inj=0.9,
        pf_charge=0.9,
        s_rated_va=1.05 * S_RATED_VA,
    )


def static_output(mod: ModuleType, p: Any, v: float, f: float, p_disp: float) -> tuple[float, float]:
    recs = (p, mod.PqInputs(), mod.PqState(), mod.PqOutputs())
    i = recs[1]
    i.v_pu, i.f_hz, i.p_dispatch_w, i.p_meas_w = v, f, p_disp, p_disp
    i.p_max_discharge_w = i.p_max_charge_w = P_RATED_W
    i.soc_ev = i.soc_est = 0.5
    mod.step(*recs)
    return recs[3].p_w, recs[3].q_var


@SETTINGS
@given(
    mode=st.sampled_from(list(QMode)),
    v=st.floats(0.85, 1.15),
    f=st.floats(59.0, 61.0),
    p_disp=st.floats(-P_RATED_W, P_RATED_W),
    axis=st.sampled_from(["v", "f", "p"]),
)
def test_output_continuous_where_the_curves_are(
    mod: ModuleType, mode: QMode, v: float, f: float, p_disp: float, axis: str
) -> None:
    # A tiny step of any input moves P and Q by a tiny amount: the steepest slopes (volt-var 7.7e4 var/p.u.,
    # droop 8.3e3 W/Hz at k = 0.02) move them by < 1e-4 for h = 1e-9; a jump moves them by far more.
    p = static_params(mod, mode)
    h = 1e-9
    a = static_output(mod, p, v, f, p_disp)
    b = static_output(
        mod, p, v + h * (axis == "v"), f + h * (axis == "f"), p_disp + h * P_RATED_W * (axis == "p")
    )
    assert abs(a[0] - b[0]) <= 1e-3
    assert abs(a[1] - b[1]) <= 1e-3


@SETTINGS
@given(
    p_pre=st.floats(-0.8 * P_RATED_W, 0.8 * P_RATED_W),
    f1=st.floats(58.0, 62.0),
    f2=st.floats(58.0, 62.0),
)
def test_droop_sign_and_monotony(mod: ModuleType, p_pre: float, f1: float, f2: float) -> None:
    p = params(mod, fw_enabled=1, fw_olrt_s=0.0)
    p1, _ = static_output(mod, p, 1.0, f1, p_pre)
    p2, _ = static_output(mod, p, 1.0, f2, p_pre)
    for f, out in ((f1, p1), (f2, p2)):
        if f > 60.0 + p.fw_db_of_hz:
            assert out <= p_pre  # over-frequency: less export / more charging
        elif f < 60.0 - p.fw_db_uf_hz:
            assert out >= p_pre  # under-frequency: more export / less charging
        else:
            assert out == p_pre
    if f1 < f2:
        assert p1 >= p2
