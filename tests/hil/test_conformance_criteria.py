"""The 1547.1 evaluation rules of the conformance suite (hil/conformance/criteria.py) on synthetic
records: a first-order response with the set response time passes, a too slow and a too fast one fail;
the 4.2 steady-state band; the one-sided "within" rule; t90; clearing time."""

from __future__ import annotations

import math

import pytest

from hil.conformance import criteria as cr
from hil.conformance import functions as fn

DT = 0.01


def first_order(
    tr_s: float, y0: float, y1: float, t_step_s: float = 1.0, dead_s: float = 0.0, end_s: float = 12.0
):
    """A record: y0 until the step (plus a dead time), then a first-order approach to y1 with t90 = tr_s."""
    tau = tr_s / math.log(10.0)
    t = [k * DT for k in range(int(end_s / DT) + 1)]
    y = [
        y0 if x < t_step_s + dead_s else y1 + (y0 - y1) * math.exp(-(x - t_step_s - dead_s) / tau) for x in t
    ]
    return t, y


def judge(t, y, tr_s, y0=0.0, y1=-0.44):
    return cr.response_at_tr(t, y, t_step_s=1.0, tr_s=tr_s, y_initial=y0, y_final=y1, mra_y=cr.MRA_PQ_PU)


@pytest.mark.parametrize("tr_s", [1.0, 5.0])
def test_first_order_response_with_the_set_time_passes(tr_s: float) -> None:
    t, y = first_order(tr_s, 0.0, -0.44)
    r = judge(t, y, tr_s)
    assert r.passed
    assert r.y_at_tr == pytest.approx(-0.396, abs=2e-3)  # 90 % of the step at Tr


def test_too_slow_fails() -> None:
    t, y = first_order(3.0, 0.0, -0.44)  # Tr 1 s asked, 3 s delivered: 54 % at Tr
    r = judge(t, y, 1.0)
    assert not r.passed
    assert r.y_at_tr > r.hi


def test_too_fast_with_overshoot_fails() -> None:
    # Reaches the target at once and overshoots by 30 % of the step: outside the band on the far side.
    t = [k * DT for k in range(1201)]
    y = [0.0 if x < 1.0 else -0.44 * 1.3 for x in t]
    r = judge(t, y, 5.0)
    assert not r.passed
    assert r.y_at_tr < r.lo


def test_too_fast_on_a_large_step_fails() -> None:
    # A step of 2 pu (a droop from +1 to -1 P rated, in pu of S): reaching 99.9 % at Tr is too fast.
    t, y = first_order(1.0, 1.0, -1.0)
    fast = cr.response_at_tr(
        t,
        [v if x < 1.0 else -1.0 for x, v in zip(t, y, strict=True)],
        t_step_s=1.0,
        tr_s=5.0,
        y_initial=1.0,
        y_final=-1.0,
        mra_y=cr.MRA_PQ_PU,
    )
    assert not fast.passed and fast.y_at_tr < fast.lo
    ok = cr.response_at_tr(
        *first_order(5.0, 1.0, -1.0), t_step_s=1.0, tr_s=5.0, y_initial=1.0, y_final=-1.0, mra_y=cr.MRA_PQ_PU
    )
    assert ok.passed


def test_response_band_width_follows_the_time_and_value_accuracy() -> None:
    t, y = first_order(1.0, 0.0, 1.0)
    r = cr.response_at_tr(t, y, t_step_s=1.0, tr_s=1.0, y_initial=0.0, y_final=1.0, mra_y=0.05)
    dt = 1.5 * 2.0 / 60.0  # 1.5 x 2 cycles below 5 s
    tau = 1.0 / math.log(10.0)
    assert r.lo == pytest.approx(1.0 - math.exp(-(1.0 - dt) / tau) - 0.075)
    assert r.hi == pytest.approx(1.0 - math.exp(-(1.0 + dt) / tau) + 0.075)


def test_mra_time() -> None:
    assert cr.mra_time_s(1.0) == pytest.approx(2.0 / 60.0)
    assert cr.mra_time_s(1.0, 50.0) == pytest.approx(0.04)
    assert cr.mra_time_s(90.0) == pytest.approx(0.9)
    assert cr.mra_time_s(1000.0) == pytest.approx(6.0)


vv = fn._curve([(0.92, 0.44), (0.98, 0.0), (1.02, 0.0), (1.08, -0.44)])


def test_steady_band_on_a_slope_and_flat() -> None:
    # On the slope: the input's uncertainty (1.5 x 0.01 pu) moves Q by 0.11 either side, then 1.5 MRA_Q.
    lo, hi = cr.steady_band(vv, 1.05, cr.MRA_V_PU, cr.MRA_PQ_PU)
    assert lo == pytest.approx(vv(1.065) - 0.075)
    assert hi == pytest.approx(vv(1.035) + 0.075)
    assert lo < -0.22 < hi
    assert not lo <= -0.44 <= hi  # the saturated value at 1.05 pu is outside
    # In the deadband the band is only the output's accuracy.
    assert cr.steady_band(vv, 1.0, cr.MRA_V_PU, cr.MRA_PQ_PU) == pytest.approx((-0.075, 0.075))


def test_response_within_is_one_sided() -> None:
    t, y = first_order(10.0, 0.0, 0.44)
    r = cr.response_within(t, y, t_step_s=1.0, within_s=10.0, y_initial=0.0, y_final=0.44, mra_y=cr.MRA_PQ_PU)
    assert r.passed and r.hi == math.inf
    fast = [0.0 if x < 1.0 else 0.44 for x in t]
    assert cr.response_within(
        t, fast, t_step_s=1.0, within_s=10.0, y_initial=0.0, y_final=0.44, mra_y=cr.MRA_PQ_PU
    ).passed
    slow_t, slow = first_order(30.0, 0.0, 0.44, end_s=40.0)
    r_slow = cr.response_within(
        slow_t, slow, t_step_s=1.0, within_s=10.0, y_initial=0.0, y_final=0.44, mra_y=cr.MRA_PQ_PU
    )
    assert not r_slow.passed
    # Falling steps bound from above.
    t2, y2 = first_order(10.0, 0.44, 0.0)
    r2 = cr.response_within(
        t2, y2, t_step_s=1.0, within_s=10.0, y_initial=0.44, y_final=0.0, mra_y=cr.MRA_PQ_PU
    )
    assert r2.passed and r2.lo == -math.inf


def test_t90_reads_the_response_time_off_the_record() -> None:
    t, y = first_order(2.0, 0.0, -0.44, dead_s=0.15)
    assert cr.t90_s(t, y, t_step_s=1.0, y_initial=0.0, y_final=-0.44, to_s=12.0) == pytest.approx(
        2.15, abs=0.011
    )
    assert math.isinf(cr.t90_s(t, y, t_step_s=1.0, y_initial=0.0, y_final=-0.44, to_s=2.0))
    assert math.isnan(cr.t90_s(t, y, t_step_s=1.0, y_initial=0.1, y_final=0.1, to_s=12.0))


def test_clearing_time() -> None:
    t = [k * DT for k in range(501)]
    p = [0.9 if x < 1.23 else 0.0 for x in t]
    q = [0.0] * len(t)
    assert cr.clearing_time_s(t, p, q, 1.0) == pytest.approx(0.23, abs=DT)
    # Reactive power above 10 % + 1.5 MRA of S is still energized.
    q2 = [0.3 if x < 2.0 else 0.0 for x in t]
    assert cr.clearing_time_s(t, p, q2, 1.0) == pytest.approx(1.0, abs=DT)
    # Energized again before the end: the clearing is the last crossing; never ceasing is inf.
    p3 = [0.9 if x < 1.2 or 3.0 <= x < 3.5 else 0.0 for x in t]
    assert cr.clearing_time_s(t, p3, q, 1.0) == pytest.approx(2.5, abs=DT)
    assert math.isinf(cr.clearing_time_s(t, [0.9] * len(t), q, 1.0))
    assert cr.clearing_time_s(t, [0.0] * len(t), q, 1.0) == 0.0


def test_value_at_and_mean_over() -> None:
    t = [0.0, 1.0, 2.0]
    y = [0.0, 10.0, 20.0]
    assert cr.value_at(t, y, 1.5) == pytest.approx(15.0)
    for outside in (-1.0, 5.0):  # a judge reading outside the record is an error, not a clamp
        with pytest.raises(ValueError, match="outside the record"):
            cr.value_at(t, y, outside)
    assert cr.mean_over(t, y, 0.5, 2.0) == pytest.approx(15.0)
    assert math.isnan(cr.mean_over(t, y, 0.2, 0.8))
