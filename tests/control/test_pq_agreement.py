"""Reference and compiled P/Q kernels agree (discrete outputs exactly, continuous ones to 1e-9), share one
vocabulary, and the selector picks the reference when V2G_EDGE_PURE_PYTHON=1."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.control import _pq_c, _pq_ref, pq_types
from edge.control.pq_types import INPUT_FIELDS, OUTPUT_FIELDS, PARAM_FIELDS, STATE_FIELDS, copy_fields

RECORDS = [
    ("PqParams", PARAM_FIELDS),
    ("PqInputs", INPUT_FIELDS),
    ("PqState", STATE_FIELDS),
    ("PqOutputs", OUTPUT_FIELDS),
]


@pytest.mark.parametrize(("name", "fields"), RECORDS)
def test_compiled_records_have_the_shared_fields_and_defaults(name: str, fields: tuple[str, ...]) -> None:
    ref = getattr(pq_types, name)()
    comp = getattr(_pq_c, name)()
    public = {a for a in dir(comp) if not a.startswith("_")}
    assert public == set(fields)
    for field in fields:
        a, b = getattr(ref, field), getattr(comp, field)
        assert type(a) is type(b) or (isinstance(a, int) and isinstance(b, int)), field
        assert a == b or (a != a and b != b), field


def test_reference_is_the_shared_records() -> None:
    assert _pq_ref.PqParams is pq_types.PqParams


# --- random parameters and input streams --------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)
maybe_nan = st.one_of(st.floats(0.0, 1.0), st.just(math.nan))


@st.composite
def param_sets(draw: st.DrawFn) -> dict[str, Any]:
    p_rated = draw(st.floats(1_000.0, 20_000.0))
    s_rated = p_rated * draw(st.floats(0.9, 1.3))
    vv_v1 = draw(st.floats(0.82, 0.96))
    vv_v2 = draw(st.floats(vv_v1 + 0.001, 1.0))
    vv_v3 = draw(st.floats(1.0, 1.03))
    vv_v4 = draw(st.floats(vv_v3 + 0.001, 1.18))
    return {
        "f_nominal_hz": draw(st.sampled_from([50.0, 60.0])),
        "p_rated_w": p_rated,
        "p_rated_charge_w": p_rated * draw(st.floats(0.5, 1.0)),
        "s_rated_va": s_rated,
        "q_max_inj_var": s_rated * draw(st.floats(0.0, 1.1)),
        "q_max_abs_var": s_rated * draw(st.floats(0.0, 1.1)),
        "q_reduced_low_p": draw(st.integers(0, 1)),
        "s_priority": draw(st.integers(0, 1)),
        "soc_min": draw(st.floats(0.0, 0.5)),
        "soc_max": draw(st.floats(0.6, 1.0)),
        "ramp_w_per_s": draw(st.sampled_from([0.0, 100.0, 5_000.0])),
        "stop_ramp_w_per_s": draw(st.sampled_from([0.0, 200.0])),
        "actuation_tau_s": draw(st.sampled_from([0.0, 0.2, 3.0])),
        "fw_enabled": draw(st.integers(0, 1)),
        "fw_db_of_hz": draw(st.floats(0.017, 1.0)),
        "fw_db_uf_hz": draw(st.floats(0.017, 1.0)),
        "fw_k_of": draw(st.floats(0.02, 0.05)),
        "fw_k_uf": draw(st.floats(0.02, 0.05)),
        "fw_olrt_s": draw(st.sampled_from([0.0, 0.2, 5.0])),
        "fw_p_min_pu": draw(st.floats(-1.0, 0.0)),
        "vw_enabled": draw(st.integers(0, 1)),
        "vw_v1_pu": draw(st.floats(1.05, 1.09)),
        "vw_v2_pu": 1.10,
        "vw_p2_pu": draw(st.floats(0.0, 0.2)),
        "vw_absorb": draw(st.integers(0, 1)),
        "vw_p2_charge_pu": draw(st.floats(-1.0, 0.0)),
        "vw_olrt_s": draw(st.sampled_from([0.0, 0.5, 10.0])),
        "q_mode": draw(st.integers(0, 4)),
        "q_olrt_s": draw(st.sampled_from([0.0, 10.0])),
        "pf_inj": draw(st.floats(0.8, 1.0)),
        "pf_inj_ext": draw(st.integers(0, 1)),
        "pf_charge": draw(st.floats(0.8, 1.0)),
        "pf_charge_ext": draw(st.integers(0, 1)),
        "q_const_pu": draw(st.floats(-0.5, 0.5)),
        "q_const_charge_pu": draw(st.floats(-0.5, 0.5)),
        "vv_vref_auto": draw(st.integers(0, 1)),
        "vv_vref_tau_s": draw(st.sampled_from([0.0, 300.0])),
        "vv_v1_pu": vv_v1,
        "vv_v2_pu": vv_v2,
        "vv_v3_pu": vv_v3,
        "vv_v4_pu": vv_v4,
        "vv_olrt_s": draw(st.sampled_from([0.0, 1.0, 90.0])),
    }


@st.composite
def input_rows(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "dt_s": draw(st.sampled_from([0.0, 0.05, 0.1, 1.0, -0.5])),
        "v_pu": draw(st.one_of(st.floats(0.8, 1.2), st.just(math.nan))),
        "f_hz": draw(st.one_of(st.floats(48.0, 62.0), st.just(math.nan))),
        "p_dispatch_w": draw(st.one_of(st.floats(-25_000.0, 25_000.0), st.just(math.nan))),
        "q_dispatch_var": draw(st.floats(-10_000.0, 10_000.0)),
        "p_max_discharge_w": draw(st.one_of(st.floats(-100.0, 25_000.0), st.just(math.nan))),
        "p_max_charge_w": draw(st.floats(0.0, 25_000.0)),
        "soc_ev": draw(maybe_nan),
        "soc_est": draw(maybe_nan),
        "p_meas_w": draw(st.one_of(st.floats(-25_000.0, 25_000.0), st.just(math.nan))),
        "stop": draw(st.integers(0, 1)),
    }


def build(mod: Any, overrides: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    p = mod.PqParams()
    for name, value in overrides.items():
        setattr(p, name, value)
    return p, mod.PqInputs(), mod.PqState(), mod.PqOutputs()


def feed(recs: tuple[Any, Any, Any, Any], t_s: float, row: dict[str, Any]) -> None:
    i = recs[1]
    i.t_s = t_s
    for name, value in row.items():
        if name != "dt_s":
            setattr(i, name, value)


def close(a: float, b: float) -> bool:
    if a != a or b != b:
        return a != a and b != b
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def assert_same(ref: Any, comp: Any, fields: tuple[str, ...], where: str) -> None:
    for field in fields:
        a, b = getattr(ref, field), getattr(comp, field)
        if isinstance(a, int) and isinstance(b, int):
            assert a == b, f"{where}: {field} {a} != {b}"
        else:
            assert close(a, b), f"{where}: {field} {a!r} != {b!r}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(param_sets(), st.lists(input_rows(), min_size=1, max_size=60))
def test_reference_and_compiled_agree(overrides: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    ref = build(_pq_ref, overrides)
    comp = build(_pq_c, overrides)
    t = 0.0
    for k, row in enumerate(rows):
        t += row["dt_s"]
        feed(ref, t, row)
        feed(comp, t, row)
        _pq_ref.step(*ref)
        _pq_c.step(*comp)
        assert_same(ref[3], comp[3], OUTPUT_FIELDS, f"step {k} output")
        assert_same(ref[2], comp[2], STATE_FIELDS, f"step {k} state")


@settings(max_examples=50, deadline=None)
@given(param_sets(), st.lists(input_rows(), min_size=1, max_size=20))
def test_reference_steps_compiled_records(overrides: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    # The daemon can switch to the reference without rebuilding its records.
    comp = build(_pq_c, overrides)
    mixed = build(_pq_c, overrides)
    t = 0.0
    for row in rows:
        t += row["dt_s"]
        feed(comp, t, row)
        feed(mixed, t, row)
        _pq_c.step(*comp)
        _pq_ref.step(*mixed)
        assert_same(comp[3], mixed[3], OUTPUT_FIELDS, "output")


@pytest.mark.parametrize("mod", [_pq_ref, _pq_c])
def test_pack_and_step_is_step(mod: Any) -> None:
    a = build(
        mod, {"p_rated_w": 5_000.0, "p_rated_charge_w": 5_000.0, "s_rated_va": 5_000.0, "fw_enabled": 1}
    )
    b = build(
        mod, {"p_rated_w": 5_000.0, "p_rated_charge_w": 5_000.0, "s_rated_va": 5_000.0, "fw_enabled": 1}
    )
    values = (1.0, 1.02, 60.2, 3_000.0, 0.0, 5_000.0, 5_000.0, 0.5, 0.6, 2_000.0, 0)
    mod.pack_and_step(*a, *values)
    copy_fields(a[1], b[1], INPUT_FIELDS)
    mod.step(*b)
    assert_same(a[3], b[3], OUTPUT_FIELDS, "pack_and_step")
    assert a[1].f_hz == 60.2


def test_copy_fields_moves_reference_params_into_compiled() -> None:
    src = _pq_ref.PqParams()
    src.p_rated_w = 1234.0
    dst = _pq_c.PqParams()
    copy_fields(src, dst, PARAM_FIELDS)
    assert dst.p_rated_w == 1234.0


@pytest.mark.parametrize(("env", "expected"), [("1", "edge.control._pq_ref"), ("", "edge.control._pq_c")])
def test_selector(env: str, expected: str) -> None:
    code = "from edge.control import pq; print(pq.impl.__name__, pq.PqParams.__module__)"
    environ = {**os.environ, "V2G_EDGE_PURE_PYTHON": env}
    out = subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True
    )
    name, records_module = out.stdout.split()
    assert name == expected
    assert records_module in {expected, "edge.control.pq_types"}
