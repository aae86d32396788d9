"""The first-order lag kernel (the pattern every kernel follows): the compiled module and its
pure-Python reference agree, the maths meets IEEE 1547.1's reading of a response time, and the
selector honours V2G_EDGE_PURE_PYTHON."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge import accel
from edge.control import _lag_c, _lag_ref

finite = st.floats(-1e6, 1e6, allow_nan=False)


@pytest.mark.parametrize("impl", [_lag_ref, _lag_c], ids=["ref", "cython"])
def test_ninety_percent_of_a_step_at_the_response_time(impl) -> None:  # type: ignore[no-untyped-def]
    olrt_s, dt_s = 5.0, 0.02
    tau = impl.tau_from_olrt(olrt_s)
    y = 0.0
    for _ in range(round(olrt_s / dt_s)):
        y = impl.lag_step(y, 1.0, dt_s, tau)
    assert y == pytest.approx(0.9, abs=1e-12)


@pytest.mark.parametrize("impl", [_lag_ref, _lag_c], ids=["ref", "cython"])
def test_result_does_not_depend_on_how_time_is_split(impl) -> None:  # type: ignore[no-untyped-def]
    one = impl.lag_step(0.0, 10.0, 0.3, 1.0)
    three = impl.lag_step(impl.lag_step(impl.lag_step(0.0, 10.0, 0.1, 1.0), 10.0, 0.1, 1.0), 10.0, 0.1, 1.0)
    assert one == pytest.approx(three, rel=1e-12)


@pytest.mark.parametrize("impl", [_lag_ref, _lag_c], ids=["ref", "cython"])
def test_no_lag_and_time_not_moving(impl) -> None:  # type: ignore[no-untyped-def]
    assert impl.lag_step(3.0, 7.0, 0.1, 0.0) == 7.0
    assert impl.lag_step(3.0, 7.0, 0.0, 1.0) == 3.0
    assert impl.lag_step(3.0, 7.0, -1.0, 1.0) == 3.0  # a clock jump backwards moves nothing


@given(y=finite, target=finite, dt=st.floats(0, 10), tau=st.floats(0, 100))
def test_reference_and_compiled_agree(y: float, target: float, dt: float, tau: float) -> None:
    ref = _lag_ref.lag_step(y, target, dt, tau)
    com = _lag_c.lag_step(y, target, dt, tau)
    assert com == pytest.approx(ref, rel=1e-12, abs=1e-9)
    lo, hi = min(y, target), max(y, target)
    assert lo - 1e-9 <= com <= hi + 1e-9  # never overshoots


def test_block_run_agrees_with_steps() -> None:
    targets = np.sin(np.linspace(0, 20, 500))
    out_c = np.empty_like(targets)
    out_r = [0.0] * len(targets)
    _lag_c.lag_run(0.5, targets, 0.02, 0.7, out_c)
    _lag_ref.lag_run(0.5, list(targets), 0.02, 0.7, out_r)
    assert np.allclose(out_c, out_r, rtol=0, atol=1e-12)


def test_selector_uses_compiled_unless_forced() -> None:
    probe = "import edge.control.lag as k, edge.accel as a; print(a.is_compiled(k.impl))"
    normal = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    forced = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True,
        env={"V2G_EDGE_PURE_PYTHON": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert normal.stdout.strip() == "True"
    assert forced.stdout.strip() == "False"
    assert accel.is_compiled(_lag_c) and not accel.is_compiled(_lag_ref)
    assert math.isclose(_lag_c.LN10, _lag_ref.LN10)
