"""Frozen or alive: kernel II judges the site meter by what the meter itself says changes.

Replays of a V2H site (a fixed 3 kW house load, the EV serving it under the export cap) with a polled
meter that measures every 0.2 s, reports its power in steps of its resolution and keeps 1 Wh energy
registers (import and export, as SunSpec 20x ``TotWhImp``/``TotWhExp``); the daemon passes their sum as
the meter's counter. A steady load on such a meter reads the same value for minutes: before issue 16
that was called frozen after ``frozen_still_s`` (5 s) and discharge stopped, over and over.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from edge.control import _protect_c as _c
from edge.control import _protect_ref
from edge.control import protect_types as pt
from edge.control.protect_params import ProtectParams
from edge.control.protect_types import COUNTER_STALL_STEPS, FrozenCheck, Reason

IMPLS = [pytest.param(_protect_ref.step, id="ref"), pytest.param(_c.step, id="compiled")]
DT = 0.1
TAU = 0.1
LOAD_W = 3000.0
MARGIN_W = 250.0

Step = Callable[[pt.FloatArray, pt.FloatArray, pt.FloatArray, pt.FloatArray], None]


@dataclass
class Run:
    t_s: list[float] = field(default_factory=list)
    p_cmd_w: list[float] = field(default_factory=list)
    frozen: list[FrozenCheck] = field(default_factory=list)
    reading_w: list[float] = field(default_factory=list)
    counter_wh: list[float] = field(default_factory=list)

    def first_frozen_s(self) -> float | None:
        return next((t for t, f in zip(self.t_s, self.frozen, strict=True) if f), None)

    def episodes(self) -> list[tuple[float, float, FrozenCheck]]:
        """Each frozen verdict: (start, end, the check that made it), as the daemon logs them."""
        out: list[tuple[float, float, FrozenCheck]] = []
        for verdict, group in itertools.groupby(zip(self.t_s, self.frozen, strict=True), key=lambda r: r[1]):
            rows = list(group)
            if verdict:
                out.append((rows[0][0], rows[-1][0] + DT, verdict))
        return out

    def longest_still_s(self, values: list[float], after_s: float) -> float:
        """The longest run of equal values after ``after_s``."""
        kept = [v for t, v in zip(self.t_s, values, strict=True) if t >= after_s]
        return max(sum(1 for _ in g) for _, g in itertools.groupby(kept)) * DT


def params(**overrides: object) -> ProtectParams:
    """A non-export V2H site already in service (the inverter owns enter service)."""
    kw: dict[str, object] = {"es_delay_s": 0.0, "es_ramp_s": 0.0, "margin_w": MARGIN_W}
    kw.update(overrides)
    return ProtectParams.for_category(2, 7000.0, **kw)  # type: ignore[arg-type]


def replay(
    step: Step,
    seconds: float,
    *,
    resolution_w: float,
    counter: bool = True,
    counter_step_wh: float = 1.0,
    e_import0_wh: float = 52_345.6,
    load_w: Callable[[float], float] = lambda t: LOAD_W,
    frozen: Callable[[float], bool] = lambda t: False,
    p_req_w: Callable[[float], float] = lambda t: 7000.0,
    prm: ProtectParams | None = None,
) -> Run:
    p = (prm or params()).pack()
    s, x, o = pt.new_state(), pt.new_inputs(), pt.new_outputs()
    x[pt.I_V_MAX_PU] = x[pt.I_V_MIN_PU] = 1.0
    x[pt.I_F_HZ] = 60.0
    x[pt.I_CAP_MODE] = 1.0
    p_act = 0.0
    e_imp, e_exp = e_import0_wh, 1_234.5  # the registers' history
    value, count = math.nan, math.nan
    run = Run()
    for k in range(round(seconds / DT)):
        t = k * DT
        if k % 2 == 0 and not frozen(t):  # the meter measures every 0.2 s; frozen: it repeats itself
            value = round((load_w(t) - p_act) / resolution_w) * resolution_w
            count = (
                math.floor(e_imp / counter_step_wh) + math.floor(e_exp / counter_step_wh)
            ) * counter_step_wh
        x[pt.I_T_S] = t
        x[pt.I_METER_T_S] = t  # polled every cycle: each read is a new reading
        x[pt.I_METER_T_LO_S] = t - DT
        x[pt.I_METER_SEQ] = float(k + 1)
        x[pt.I_P_SITE_IMPORT_W] = value
        x[pt.I_METER_COUNTER] = count if counter else math.nan
        x[pt.I_P_INV_MEAS_W] = round(p_act)
        x[pt.I_P_INV_T_S] = t
        x[pt.I_P_REQ_W] = p_req_w(t)
        step(p, s, x, o)
        p_cmd = float(o[pt.O_P_W])
        run.t_s.append(t)
        run.p_cmd_w.append(p_cmd)
        run.frozen.append(FrozenCheck(int(o[pt.O_FROZEN_CHECK])))
        run.reading_w.append(value)
        run.counter_wh.append(count)
        assert (Reason.METER_FROZEN in Reason(int(o[pt.O_REASON]))) == bool(run.frozen[-1])
        p_act = p_cmd + (p_act - p_cmd) * math.exp(-DT / TAU)
        flow = load_w(t) - p_act
        e_imp += max(flow, 0.0) * DT / 3600.0
        e_exp += max(-flow, 0.0) * DT / 3600.0
    return run


@pytest.mark.parametrize("step", IMPLS)
@pytest.mark.parametrize("resolution_w", [1.0, 10.0, 100.0])
def test_a_steady_meter_whose_counter_moves_is_not_called_frozen(step: Step, resolution_w: float) -> None:
    """Two minutes of a steady load: the reading stands still for most of it (at 250 W import the
    1 Wh counter moves every 14 s), discharge never stops and the command stays put."""
    run = replay(step, 120.0, resolution_w=resolution_w)
    settled = [k for k, t in enumerate(run.t_s) if t >= 5.0]
    readings = [run.reading_w[k] for k in settled]
    longest_still = max(sum(1 for _ in g) for _, g in itertools.groupby(readings)) * DT
    assert longest_still > 30.0  # the defect's condition: far beyond frozen_still_s (5 s)
    assert run.first_frozen_s() is None
    cmds = [run.p_cmd_w[k] for k in settled]
    assert min(cmds) >= LOAD_W - MARGIN_W - 2 * resolution_w - 50.0
    assert max(cmds) - min(cmds) <= 2 * resolution_w + 50.0


@pytest.mark.parametrize("step", IMPLS)
def test_without_a_counter_the_still_heuristic_acts_only_on_a_fine_meter(step: Step) -> None:
    """No counter: a 1 W meter that stands still is frozen after frozen_still_s (it is finer than the
    50 W noise floor: at a live site it would jitter); a 100 W meter is not (a steady load reads as
    one value on it); meter_frozen_still_s = 0 turns the heuristic off."""
    fine = replay(step, 40.0, resolution_w=1.0, counter=False)
    first = fine.first_frozen_s()
    assert first is not None and FrozenCheck.STILL in fine.frozen
    last_change = max(
        t
        for t, a, b in zip(fine.t_s[1:], fine.reading_w, fine.reading_w[1:], strict=False)
        if a != b and t < first
    )
    assert first - last_change == pytest.approx(5.0, abs=2 * DT + 1e-9)
    coarse = replay(step, 120.0, resolution_w=100.0, counter=False)
    assert coarse.first_frozen_s() is None
    off = replay(step, 40.0, resolution_w=1.0, counter=False, prm=params(frozen_still_s=0.0))
    assert off.first_frozen_s() is None


@pytest.mark.parametrize("step", IMPLS)
@pytest.mark.parametrize("resolution_w", [1.0, 100.0])
def test_a_frozen_meter_with_a_counter_is_caught_by_its_counter(step: Step, resolution_w: float) -> None:
    """The whole reading freezes (power and energy, as a caching gateway does) at 30 s, thaws at 90 s.
    Frozen once the frozen reading's power says 1.5 counter steps went through; discharge stops and
    stays stopped while frozen; alive again at the counter's first move after the thaw."""
    run = replay(step, 120.0, resolution_w=resolution_w, frozen=lambda t: 30.0 <= t < 90.0)
    first = run.first_frozen_s()
    assert first is not None and run.frozen[run.t_s.index(first)] is FrozenCheck.COUNTER
    frozen_import_w = run.reading_w[run.t_s.index(first)]
    # since the counter's last move before the freeze, at the frozen reading's power
    assert first <= 30.0 + COUNTER_STALL_STEPS * 3600.0 / frozen_import_w + 2 * DT
    assert first >= 30.0
    during = [k for k, t in enumerate(run.t_s) if first <= t < 90.0]
    assert all(run.frozen[k] for k in during)
    assert max(run.p_cmd_w[k] for k in during) <= 0.0
    assert not run.frozen[-1] and run.p_cmd_w[-1] > 2000.0


@pytest.mark.parametrize("step", IMPLS)
def test_a_value_that_does_not_follow_the_inverter_is_frozen_whatever_the_counter_does(step: Step) -> None:
    """The power register freezes but the energy registers keep moving (a firmware fault): when the
    inverter's power moves by frozen_delta_w the value must move too. A counter step does not clear
    that verdict; only a changed value does."""
    prm = params()
    run = replay(
        step,
        60.0,
        resolution_w=1.0,
        p_req_w=lambda t: 7000.0 if t < 20.0 else 1000.0,  # the inverter drops by ~1.75 kW at 20 s
        prm=prm,
        frozen=lambda t: False,
    )
    assert run.first_frozen_s() is None  # the live meter follows

    def frozen_power(step: Step) -> Run:
        # a meter whose W register stays at its value from 15 s on while its counter keeps counting
        p = prm.pack()
        s, x, o = pt.new_state(), pt.new_inputs(), pt.new_outputs()
        x[pt.I_V_MAX_PU] = x[pt.I_V_MIN_PU] = 1.0
        x[pt.I_F_HZ] = 60.0
        x[pt.I_CAP_MODE] = 1.0
        p_act, e_imp, held = 0.0, 100.9, math.nan  # the counter moves within the first cycles
        out = Run()
        for k in range(600):
            t = k * DT
            if t < 15.0:
                held = round(LOAD_W - p_act)
            x[pt.I_T_S] = x[pt.I_METER_T_S] = t
            x[pt.I_METER_SEQ] = float(k + 1)
            x[pt.I_P_SITE_IMPORT_W] = held
            x[pt.I_METER_COUNTER] = float(math.floor(e_imp))
            x[pt.I_P_INV_MEAS_W] = round(p_act)
            x[pt.I_P_REQ_W] = 7000.0 if t < 20.0 else 1000.0
            step(p, s, x, o)
            out.t_s.append(t)
            out.p_cmd_w.append(float(o[pt.O_P_W]))
            out.frozen.append(FrozenCheck(int(o[pt.O_FROZEN_CHECK])))
            p_act = out.p_cmd_w[-1] + (p_act - out.p_cmd_w[-1]) * math.exp(-DT / TAU)
            e_imp += max(LOAD_W - p_act, 0.0) * DT / 3600.0
        return out

    bad = frozen_power(step)
    first = bad.first_frozen_s()
    assert first is not None and bad.frozen[bad.t_s.index(first)] is FrozenCheck.TRACKING
    assert 20.0 + prm.frozen_s <= first <= 20.0 + prm.frozen_s + 0.5
    assert all(bad.frozen[bad.t_s.index(first) :])  # the counter keeps moving: still frozen


# A 100 Wh counter whose import register is about to roll over: it moves within the first seconds, so its
# step is known before the fault (1.5 steps at the ~250 W the site imports would be 36 min).
COARSE = {"counter_step_wh": 100.0, "e_import0_wh": 52_399.9}


def varying_load_w(t: float) -> float:
    """A house load that steps by 400 W every 10 s: a live meter's value leaves the noise floor."""
    return LOAD_W + (400.0 if int(t // 10.0) % 2 else 0.0)


@pytest.mark.parametrize("step", IMPLS)
@pytest.mark.parametrize("resolution_w", [1.0, 100.0])
def test_a_coarse_counter_frozen_whole_is_caught_within_the_stall_bound(
    step: Step, resolution_w: float
) -> None:
    """The reading freezes whole at 60 s (value and 100 Wh counter). Frozen within
    counter_stall_max_s (+ a cycle) of the freeze; discharge stops and stays stopped. Without the
    bound (its largest setting, 600 s) the frozen meter is not caught within the two minutes: the
    1.5-step rule alone waits 36 min at this reading."""
    prm = params()
    kw: dict[str, object] = {"resolution_w": resolution_w, "load_w": varying_load_w, **COARSE}
    run = replay(step, 120.0, frozen=lambda t: t >= 60.0, prm=prm, **kw)  # type: ignore[arg-type]
    assert sorted(set(run.counter_wh)) == [53_500.0, 53_600.0]  # it moved once, by 100 Wh, in the
    assert run.counter_wh[10] == 53_600.0  # first second
    first = run.first_frozen_s()
    assert first is not None and run.frozen[run.t_s.index(first)] is FrozenCheck.COUNTER
    assert 60.0 <= first <= 60.0 + prm.counter_stall_max_s + DT + 1e-9
    after = [k for k, t in enumerate(run.t_s) if t >= first + DT]
    assert all(run.frozen[k] for k in after)
    assert max(run.p_cmd_w[k] for k in after) <= 0.0
    unbounded = replay(step, 120.0, frozen=lambda t: t >= 60.0, prm=params(counter_stall_max_s=600.0), **kw)  # type: ignore[arg-type]
    assert unbounded.first_frozen_s() is None


@pytest.mark.parametrize("step", IMPLS)
def test_a_steady_meter_with_a_fine_counter_is_never_called_frozen_by_the_bound(step: Step) -> None:
    """The steady-meter case: 265 W import on a 1 W meter without noise, 1 Wh counter, for 10 minutes.
    The value stands still far longer than counter_stall_max_s, but the counter moves every 13.6 s."""
    prm = params(margin_w=265.0)
    run = replay(step, 600.0, resolution_w=1.0, prm=prm)
    assert run.reading_w[-1] == pytest.approx(265.0, abs=2.0)
    assert run.longest_still_s(run.reading_w, 5.0) > 10 * prm.counter_stall_max_s
    assert run.longest_still_s(run.counter_wh, 5.0) < prm.counter_stall_max_s
    assert run.first_frozen_s() is None
    assert min(run.p_cmd_w[k] for k, t in enumerate(run.t_s) if t >= 5.0) >= LOAD_W - 265.0 - 5.0


@pytest.mark.parametrize("step", IMPLS)
def test_a_counter_slower_than_the_bound_costs_brief_bounded_stops(step: Step) -> None:
    """The price of the bound: at 50 W import a 1 Wh counter moves every 72 s, more rarely than
    counter_stall_max_s, so a steady live meter is called frozen ~30 s after each sign of life. Each
    verdict names the counter check (the daemon logs it) and ends as soon as the stop moves the
    meter's value; the stops are brief and at most one per counter_stall_max_s."""
    prm = params(margin_w=50.0, min_import_w=0.0)
    run = replay(step, 600.0, resolution_w=1.0, prm=prm)
    episodes = run.episodes()
    assert episodes, "a counter slower than the bound must cost something: the test would prove nothing"
    assert all(check is FrozenCheck.COUNTER for _, _, check in episodes)
    assert max(end - start for start, end, _ in episodes) <= 0.5
    starts = [start for start, _, _ in episodes]
    assert min(b - a for a, b in itertools.pairwise(starts)) >= prm.counter_stall_max_s
    held_s = sum(1 for k, t in enumerate(run.t_s) if t >= 5.0 and run.p_cmd_w[k] < 1000.0) * DT
    assert held_s / 595.0 < 0.05


def test_the_kernels_agree_on_the_stall_replays() -> None:
    """Reference and compiled kernel give the same verdicts and commands on the bounded-wait cases."""
    cases: list[dict[str, object]] = [
        {"resolution_w": 1.0, "load_w": varying_load_w, "frozen": lambda t: t >= 60.0, **COARSE},
        {"resolution_w": 1.0, "prm": params(margin_w=50.0, min_import_w=0.0)},
    ]
    for kw in cases:
        ref = replay(_protect_ref.step, 150.0, **kw)  # type: ignore[arg-type]
        comp = replay(_c.step, 150.0, **kw)  # type: ignore[arg-type]
        assert ref.frozen == comp.frozen
        assert ref.p_cmd_w == pytest.approx(comp.p_cmd_w, abs=1e-9)


@pytest.mark.parametrize("step", IMPLS)
def test_a_sampled_spike_does_not_make_a_live_counter_meter_frozen(step: Step) -> None:
    """A pulsing load: the meter samples a short import spike and holds it until its next reading;
    integrating the held value counts energy that never went through, and a live 1 Wh meter was
    called frozen (CI, v2h-export-cap-hob over RS-485). The lower of two readings is what counts."""

    def pulsing(t: float) -> float:  # a 0.1 s, 3 kW pulse each second, on the meter's sampling tick
        return LOAD_W + (3000.0 if round(t * 10) % 10 == 0 else 0.0)

    run = replay(step, 120.0, resolution_w=1.0, load_w=pulsing)
    assert run.first_frozen_s() is None, run.episodes()
