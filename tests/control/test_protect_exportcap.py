"""V2H export cap at the site meter, in closed loop with a first-order inverter (tau 100 ms).

The plant (hil/bench/protect.py ``closed_loop``) samples the meter once per 0.1 s cycle and can deliver
samples late; export energy is integrated at the plant. Invariants are checked on the command, and the
plant's export per excursion is bounded.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.control import _protect_c as _c
from edge.control import _protect_ref
from edge.control import protect_types as pt
from edge.control.protect_types import Reason, State
from hil.bench.protect import closed_loop, closed_loop_params, hob, load_drop, total_variation_ratio

IMPLS = [pytest.param(_protect_ref.step, id="ref"), pytest.param(_c.step, id="compiled")]
DT = 0.1
TAU = 0.1
BAD_METER = Reason.METER_STALE | Reason.METER_FROZEN


@pytest.mark.parametrize("step", IMPLS)
@pytest.mark.parametrize("delay", [0, 1, 3])
def test_five_kw_load_drop_exports_at_most_2_wh_and_is_cut_in_the_same_cycle(
    step: object, delay: int
) -> None:
    params = closed_loop_params()
    tr = closed_loop(step, params, load_drop(5000.0), meter_delay_cycles=delay)  # type: ignore[arg-type]
    assert tr.excursions_wh, "a 5 kW drop with a 100 ms inverter must export briefly"
    assert max(tr.excursions_wh) <= 2.0
    assert set(tr.state) == {State.NORMAL}  # neither min-import nor the backstop acted
    # the first delivered sample that shows export: the command drops in that very cycle
    k = next(
        k for k in range(len(tr.t_s)) if tr.sample_new[k] and tr.sample_import_w[k] < -params.export_cap_w
    )
    assert tr.p_cmd_w[k] < tr.p_cmd_w[k - 1]
    assert tr.p_cmd_w[k] <= tr.load_est_w[k] + params.export_cap_w - params.margin_w + 1e-9
    assert tr.p_cmd_w[k] <= 1000.0 - params.margin_w + 2.0  # the new load less the margin (+- meter noise)


@pytest.mark.parametrize("step", IMPLS)
@pytest.mark.parametrize("period_s", [1.0, 2.0, 8.0])
@pytest.mark.parametrize(
    ("delay", "refresh", "stage_every"), [(0, 0, 1), (2, 0, 1), (0, 1, 1), (0, 2, 1), (0, 3, 1), (0, 2, 2)]
)
def test_pulsing_induction_hob_does_not_make_the_command_oscillate(
    step: object, period_s: float, delay: int, refresh: int, stage_every: int
) -> None:
    """Timestamped samples (refresh 0, delivered ``delay`` cycles late) or a polled meter that
    refreshes every ``refresh`` cycles in mid-cycle and is stamped with the read time; the inverter's
    power read every cycle or, as on a busy RS-485 line, every other cycle."""
    params = closed_loop_params()
    load = hob(period_s, end_s=40.0) + [500.0] * 100  # then the hob is switched off
    tr = closed_loop(
        step,  # type: ignore[arg-type]
        params,
        load,
        meter_delay_cycles=delay,
        polled_refresh_cycles=refresh,
        stage_every_cycles=stage_every,
    )
    # oscillation measure: the command's total variation against the load's (1 = pure tracking)
    assert total_variation_ratio(tr) <= 1.25
    assert max(tr.excursions_wh, default=0.0) <= 0.2
    assert set(tr.state) == {State.NORMAL}
    tail = np.asarray(tr.p_cmd_w[-50:])  # last 5 s at constant load: settled, no limit cycle
    assert tail.std() <= 5.0  # what is left is the meter's +-2 W noise passed through
    assert abs(tail.mean() - (500.0 - params.margin_w)) <= 50.0


@pytest.mark.parametrize("step", IMPLS)
def test_polled_meter_paired_with_the_read_time_alone_would_oscillate(step: object) -> None:
    """Why the kernel takes the earliest measurement instant: without it (NaN, the read time taken
    as exact) the same polled meter makes the command wiggle past the bound the test above holds."""

    def read_time_only(p: pt.FloatArray, s: pt.FloatArray, x: pt.FloatArray, o: pt.FloatArray) -> None:
        x[pt.I_METER_T_LO_S] = math.nan
        step(p, s, x, o)  # type: ignore[operator]

    load = hob(8.0, end_s=40.0) + [500.0] * 100
    tr = closed_loop(read_time_only, closed_loop_params(), load, polled_refresh_cycles=1)
    assert total_variation_ratio(tr) > 1.25


@pytest.mark.parametrize("step", IMPLS)
def test_a_repeated_meter_value_keeps_the_meter_fresh_but_moves_nothing(step: object) -> None:
    params = closed_loop_params(rise_w_per_s=1e7)
    p = params.pack()
    s, x, o = pt.new_state(), pt.new_inputs(), pt.new_outputs()
    x[pt.I_V_MAX_PU] = x[pt.I_V_MIN_PU] = 1.0
    x[pt.I_F_HZ] = 60.0
    x[pt.I_P_REQ_W] = 7000.0
    x[pt.I_CAP_MODE] = 1.0
    est = []
    for k in range(15):
        t = k * DT
        x[pt.I_T_S] = t
        x[pt.I_METER_T_S] = t  # read every cycle, stamped with the read time
        x[pt.I_METER_T_LO_S] = t - DT
        x[pt.I_METER_SEQ] = k
        x[pt.I_P_INV_MEAS_W] = 1000.0 + 100.0 * k  # the inverter ramps
        x[pt.I_P_INV_T_S] = t
        x[pt.I_P_SITE_IMPORT_W] = 500.0 if k < 10 else 480.0
        step(p, s, x, o)  # type: ignore[operator]
        est.append(float(o[pt.O_LOAD_EST_W]))
        assert not Reason(int(o[pt.O_REASON])) & BAD_METER
    assert est[0] == pytest.approx(1500.0)
    assert est[1:10] == [est[0]] * 9  # the meter has not refreshed: nothing new about the load
    # the changed value was measured between the previous read and this one: inverter 1900..2000 W
    assert est[10] == pytest.approx(480.0 + 1900.0)


@pytest.mark.parametrize("step", IMPLS)
def test_stale_meter_stops_discharge_but_not_charging(step: object) -> None:
    params = closed_loop_params(non_export=False, cap_wins=True)
    n = 100
    delays = [0] * 50 + [10_000] * 50  # no sample delivered after cycle 50
    tr = closed_loop(step, params, [3000.0] * n, meter_delay_cycles=delays)  # type: ignore[arg-type]
    for k in range(n):
        age = k * DT - 4.9
        if age >= params.stale_meter_s + DT - 1e-9:
            assert Reason.METER_STALE in Reason(tr.reason[k])
            assert tr.p_cmd_w[k] <= 0.0
    charging = closed_loop(step, params, [3000.0] * n, p_req_w=-5000.0, meter_delay_cycles=delays)  # type: ignore[arg-type]
    assert charging.p_cmd_w[-1] == -5000.0


@pytest.mark.parametrize("step", IMPLS)
def test_frozen_meter_stops_discharge(step: object) -> None:
    params = closed_loop_params(non_export=False, cap_wins=True)
    # the meter freezes at cycle 30; at cycle 40 the request drops and the inverter follows
    p_req = [3000.0] * 40 + [1000.0] * 60
    tr = closed_loop(step, params, [6000.0] * 100, p_req_w=p_req, frozen_from_cycle=30)  # type: ignore[arg-type]
    flagged = [k for k in range(100) if Reason.METER_FROZEN in Reason(tr.reason[k])]
    assert flagged
    assert all(tr.p_cmd_w[k] <= 0.0 for k in flagged)
    assert 4.0 + params.frozen_s - 1e-9 <= flagged[0] * DT <= 4.0 + params.frozen_s + 3 * DT
    # a meter that repeats itself exactly while discharging is frozen after frozen_still_s
    still = closed_loop(step, params, [2000.0] * 150, frozen_from_cycle=20)  # type: ignore[arg-type]
    k_still = next(k for k in range(150) if Reason.METER_FROZEN in Reason(still.reason[k]))
    assert k_still * DT == pytest.approx(1.9 + params.frozen_still_s, abs=2 * DT)
    # and it stays frozen once discharge has stopped (no restart blips while the value is unchanged)
    assert all(Reason.METER_FROZEN in Reason(r) for r in still.reason[k_still:])
    assert max(still.p_cmd_w[k_still:]) <= 0.0
    assert all(Reason.METER_FROZEN in Reason(r) for r in tr.reason[flagged[0] :])
    live = closed_loop(step, params, [2000.0] * 150)  # type: ignore[arg-type]
    assert not any(Reason.METER_FROZEN in Reason(r) for r in live.reason)


@pytest.mark.parametrize("step", IMPLS)
def test_backstop_stops_discharge_when_export_persists(step: object) -> None:
    """An inverter that ignores reductions (here: a load the estimate cannot see) keeps exporting."""
    params = closed_loop_params(non_export=False, cap_wins=True, export_cap_w=500.0)
    p = params.pack()
    s, x, o = pt.new_state(), pt.new_inputs(), pt.new_outputs()
    stopped_at = math.nan
    for k in range(60):
        t = k * DT
        x[pt.I_T_S] = t
        x[pt.I_V_MAX_PU] = x[pt.I_V_MIN_PU] = 1.0
        x[pt.I_F_HZ] = 60.0
        x[pt.I_P_REQ_W] = 7000.0
        x[pt.I_CAP_MODE] = 1.0
        x[pt.I_METER_T_S] = t
        x[pt.I_METER_SEQ] = k
        x[pt.I_P_INV_MEAS_W] = 4000.0  # stuck inverter
        x[pt.I_P_SITE_IMPORT_W] = -1500.0  # exporting 1.5 kW, over the 500 W cap
        step(p, s, x, o)  # type: ignore[operator]
        if Reason.EXPORT_BACKSTOP in Reason(int(o[pt.O_REASON])):
            stopped_at = t
            assert o[pt.O_P_W] <= 0.0
            break
    assert stopped_at == pytest.approx(params.backstop_s, abs=DT + 1e-9)


@pytest.mark.parametrize("step", IMPLS)
@pytest.mark.parametrize(
    ("non_export", "cap_wins", "p_req", "droop", "expected"),
    [
        (True, True, -5000.0, 3000.0, -5000.0),  # droop only reduces charging (the request includes it)
        (True, True, 6000.0, 3000.0, 750.0),  # non-export: the cap wins over droop
        (False, False, 6000.0, 3000.0, 3750.0),  # economic cap: droop's part passes the cap
        (False, False, 2000.0, 3000.0, 2000.0),
    ],
)
def test_cap_versus_under_frequency_droop(
    step: object, non_export: bool, cap_wins: bool, p_req: float, droop: float, expected: float
) -> None:
    params = closed_loop_params(non_export=non_export, cap_wins=cap_wins, rise_w_per_s=1e7)
    p = params.pack()
    s, x, o = pt.new_state(), pt.new_inputs(), pt.new_outputs()
    for k in range(5):
        t = k * DT
        x[pt.I_T_S] = t
        x[pt.I_V_MAX_PU] = x[pt.I_V_MIN_PU] = 1.0
        x[pt.I_F_HZ] = 60.0
        x[pt.I_P_REQ_W] = p_req
        x[pt.I_P_DROOP_W] = droop
        x[pt.I_CAP_MODE] = 1.0
        x[pt.I_METER_T_S] = t
        x[pt.I_METER_SEQ] = k
        x[pt.I_P_INV_MEAS_W] = 0.0
        x[pt.I_P_SITE_IMPORT_W] = 1000.0  # house load 1 kW, bound = 1000 - 250
        step(p, s, x, o)  # type: ignore[operator]
    assert o[pt.O_P_W] == pytest.approx(expected)


@pytest.mark.parametrize("step", IMPLS)
def test_front_of_the_meter_v2g_is_not_capped(step: object) -> None:
    params = closed_loop_params(non_export=False, cap_wins=True)
    tr = closed_loop(step, params, [1000.0] * 30, cap_mode=False)  # type: ignore[arg-type]
    assert tr.p_cmd_w[-1] == 7000.0


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[float], list[int], float]:
    loads: list[float] = []
    while len(loads) < 300:
        level = draw(st.floats(0.0, 8000.0))
        loads += [level] * draw(st.integers(3, 40))
    base = draw(st.integers(0, 3))
    delays = [base + draw(st.integers(0, 1)) for _ in loads]  # jitter of one cycle, out-of-order dropped
    p_req = draw(st.sampled_from([7000.0, 3000.0, 0.0, -2000.0]))
    return loads, delays, p_req


@pytest.mark.parametrize("step", IMPLS)
@settings(max_examples=30, deadline=None)
@given(case=scenarios(), refresh=st.integers(1, 4))
def test_polled_meter_estimate_moves_only_as_far_as_the_evidence_forces(
    step: object, case: tuple[list[float], list[int], float], refresh: int
) -> None:
    """A polled meter stamped with read times: each changed value brackets the load between the
    value plus the lowest and plus the highest inverter power since the previous read; the estimate
    lands in that bracket by the smallest move, and the command invariant holds."""
    loads, _, p_req = case
    params = closed_loop_params()
    tr = closed_loop(step, params, loads, p_req_w=p_req, polled_refresh_cycles=refresh)  # type: ignore[arg-type]
    cap, margin = params.export_cap_w, params.margin_w
    prev_est = tr.load_est_w[0]
    for k in range(1, len(loads)):
        value = tr.sample_import_w[k]
        if value != tr.sample_import_w[k - 1]:
            lo = value + min(tr.p_act_w[k - 1], tr.p_act_w[k])
            hi = value + max(tr.p_act_w[k - 1], tr.p_act_w[k])
            assert tr.load_est_w[k] == pytest.approx(min(max(prev_est, lo), hi), abs=1e-6)
            # the load when the meter measured (mid-cycle k - 1) is in the bracket, up to the noise
            assert lo - 2.0 - 1e-6 <= tr.load_w[k - 1] <= hi + 2.0 + 1e-6
        else:
            assert tr.load_est_w[k] == tr.load_est_w[k - 1]
        prev_est = tr.load_est_w[k]
        fresh = not (Reason(tr.reason[k]) & BAD_METER)
        if tr.state[k] == State.NORMAL and fresh:
            assert tr.p_cmd_w[k] <= max(0.0, tr.load_est_w[k] + cap - margin) + 1e-6


@pytest.mark.parametrize("step", IMPLS)
@settings(max_examples=40, deadline=None)
@given(case=scenarios())
def test_export_cap_invariants_under_random_load_and_meter_delay(
    step: object, case: tuple[list[float], list[int], float]
) -> None:
    loads, delays, p_req = case
    params = closed_loop_params()
    tr = closed_loop(step, params, loads, p_req_w=p_req, meter_delay_cycles=delays)  # type: ignore[arg-type]
    cap, margin = params.export_cap_w, params.margin_w
    for k in range(len(loads)):
        fresh = not (Reason(tr.reason[k]) & BAD_METER)
        if math.isnan(tr.sample_t_s[k]):
            assert tr.p_cmd_w[k] <= 0.0
            continue
        # independent load estimate: sample value + inverter power at the sample's own timestamp
        j = round(tr.sample_t_s[k] / DT)
        est = tr.sample_import_w[k] + tr.p_act_w[j]
        assert tr.load_est_w[k] == pytest.approx(est, abs=1e-6)
        if tr.state[k] == State.NORMAL and fresh:
            # the invariant on the command: P_cmd <= estimated load + cap - margin (or no discharge)
            assert tr.p_cmd_w[k] <= max(0.0, est + cap - margin) + 1e-6
        elif not fresh:
            assert tr.p_cmd_w[k] <= 0.0
        assert tr.p_cmd_w[k] <= max(p_req, 0.0)
    # the plant's export per excursion is bounded by the largest drop times the reaction time
    drops = [max(0.0, loads[k - 1] - loads[k]) for k in range(1, len(loads))]
    worst_drop = max(drops, default=0.0)
    reaction_s = (max(delays) + 1) * DT + TAU
    bound_wh = worst_drop * reaction_s / 3600.0 + 0.05
    assert max(tr.excursions_wh, default=0.0) <= bound_wh
