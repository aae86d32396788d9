"""The cycle's controllers on hand-made snapshots: voltage bases, unused meter phases, stale stage."""

from __future__ import annotations

import dataclasses
import logging
import math

import pytest

from drivers.capabilities import MeterReading, PowerStageRatings, PowerStageReading
from edge.daemon.battery import BatteryView
from edge.daemon.controllers import Controllers, phase_base_v
from edge.daemon.dispatch import Basis
from edge.daemon.snapshot import Command, Snapshot
from tests.settings.conftest import settings_with

RATINGS = PowerStageRatings(t_s=0.0, p_max_export_w=7400.0, p_max_charge_w=7400.0)
V2H = Basis("v2h", math.nan, 0.0, "test")


def _run(  # type: ignore[no-untyped-def]
    c: Controllers,
    seconds: float,
    meter_v: tuple[float | None, ...],
    load_w: float = 2000.0,
    ratings: PowerStageRatings = RATINGS,
):
    p = 0.0
    cmd = None
    for k in range(round(seconds / 0.1)):
        t = k * 0.1
        stage = PowerStageReading(t_s=t, p_w=p, v_ac_v=240.0, f_hz=60.0, ev_soc=0.6)
        v1, v2, v3 = meter_v
        meter = MeterReading(t_s=t, p_site_import_w=load_w - p, v_l1_v=v1, v_l2_v=v2, v_l3_v=v3, f_hz=60.0)
        cmd = c.step(Snapshot(t, t, meter, stage, ratings, V2H))
        p = cmd.p_w
    return cmd


def test_voltage_bases_follow_topology_and_basis() -> None:
    assert phase_base_v(settings_with()) == 240.0  # single phase, 240 V measured L1-L2
    split = settings_with(commissioning__phase_topology="split")
    assert phase_base_v(split) == 120.0
    three = settings_with(commissioning__phase_topology="three", commissioning__v_nominal_v=400.0)
    assert abs(phase_base_v(three) - 400.0 / 3**0.5) < 1e-9


def test_unused_phases_of_a_three_phase_meter_do_not_trip_a_single_phase_site() -> None:
    cmd = _run(Controllers(settings_with()), 3.0, (240.0, 0.0, 0.0))
    assert cmd.state == "normal"
    assert cmd.v_pu == 1.0
    assert cmd.p_w > 1500.0  # serving the house, not tripped on "0 V"


def test_an_under_voltage_on_a_wired_phase_is_seen() -> None:
    c = Controllers(settings_with(commissioning__phase_topology="split"))
    cmd = _run(c, 30.0, (120.0, 40.0, None))  # L2 at 0.33 p.u.: beyond every ride-through region
    assert cmd.state == "tripped"
    assert cmd.p_w == 0.0


def test_stale_power_stage_commands_nothing() -> None:
    c = Controllers(settings_with())
    stage = PowerStageReading(t_s=0.0, p_w=3000.0, v_ac_v=240.0, f_hz=60.0, ev_soc=0.6)
    cmd = c.step(Snapshot(10.0, 10.0, None, stage, RATINGS, V2H))
    assert (cmd.p_w, cmd.q_var, cmd.state) == (0.0, 0.0, "no_power_stage")


def _in_service_after(u_rand: float) -> float:
    """Seconds until a daemon-owned enter service with a 10 s randomized delay lets the stage run."""
    c = Controllers(
        settings_with(
            functions__enter_service="daemon",
            grid__enter_service__delay_s=2.0,
            grid__enter_service__randomized_delay_s=10.0,
        )
    )
    for k in range(200):
        t = k * 0.1
        stage = PowerStageReading(t_s=t, p_w=0.0, v_ac_v=240.0, f_hz=60.0, ev_soc=0.6)
        meter = MeterReading(t_s=t, p_site_import_w=2000.0, v_l1_v=240.0, f_hz=60.0)
        cmd = c.step(Snapshot(t, t, meter, stage, RATINGS, V2H, u_rand=u_rand))
        if cmd.service:
            return t
    raise AssertionError("never entered service")


def test_the_randomized_enter_service_delay_uses_the_draw() -> None:
    early, late = _in_service_after(0.1), _in_service_after(0.9)
    assert early == pytest.approx(2.0 + 1.0, abs=0.15)
    assert late == pytest.approx(2.0 + 9.0, abs=0.15)


def test_daemons_draw_their_own_random_numbers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from edge.daemon.app import Daemon

    settings = settings_with(mqtt__enabled=False, battery__estimate=False)
    a = Daemon(settings, runtime_dir=tmp_path / "a")
    b = Daemon(settings, runtime_dir=tmp_path / "b")
    draws = [(a.snapshot(0.0, False).u_rand, b.snapshot(0.0, False).u_rand) for _ in range(5)]
    assert all(0.0 <= x < 1.0 and 0.0 <= y < 1.0 for x, y in draws)
    assert len({x for x, _ in draws} | {y for _, y in draws}) == 10, "two units, or two cycles, drew alike"


def _site(
    c: Controllers,
    seconds: float,
    *,
    t0: float = 0.0,
    frozen: tuple[float, float] = (math.inf, math.inf),
    problem: tuple[float, float, str] = (math.inf, math.inf, ""),
    jitter_w: float = 0.0,
) -> list[Command]:
    """A V2H site with a 3 kW house load and a SunSpec-like meter: power in whole watts, refreshed
    every 0.2 s, 1 Wh energy registers (their sum is ``e_counter_wh``). ``frozen`` = (from, to): the
    meter repeats its whole reading; ``problem`` = (from, to, text): the stage's ``config_problem``;
    ``jitter_w``: the reading alternates by that much (a live site's noise on a fine meter)."""
    p, e_imp, value, counter = 0.0, 10_000.6, math.nan, math.nan
    cmds = []
    for k in range(round(seconds / 0.1)):
        t = t0 + k * 0.1
        if k % 2 == 0 and not frozen[0] <= t < frozen[1]:
            value = float(round(3000.0 - p + jitter_w * (k % 4 == 0)))
            counter = float(math.floor(e_imp))
        bad = problem[2] if problem[0] <= t < problem[1] else None
        stage = PowerStageReading(t_s=t, p_w=p, v_ac_v=240.0, f_hz=60.0, ev_soc=0.6, config_problem=bad)
        meter = MeterReading(t_s=t, p_site_import_w=value, v_l1_v=240.0, f_hz=60.0, e_counter_wh=counter)
        cmds.append(c.step(Snapshot(t, t, meter, stage, RATINGS, V2H)))
        p = cmds[-1].p_w
        e_imp += max(3000.0 - p, 0.0) * 0.1 / 3600.0
    return cmds


def test_a_power_stage_configuration_problem_holds_p_and_q_at_zero() -> None:
    """The stage's own functions do not read back as commissioned: P = Q = 0 with the reason while
    it lasts, then service again (the inverter owns enter service: no delay of ours)."""
    c = Controllers(settings_with())
    problem = "705 VV: Ena reads 1, expected 0 (volt_var is owned by the daemon)"
    cmds = _site(c, 12.0, problem=(4.0, 8.0, problem))
    before, during, after = cmds[39], cmds[41:80], cmds[-1]
    assert before.p_w > 2000.0 and before.service
    assert all(cmd.p_w == 0.0 and cmd.q_var == 0.0 and cmd.service is False for cmd in during)
    assert all(cmd.reasons[0] == f"power stage configuration: {problem}" for cmd in during)
    assert after.p_w > 2000.0 and after.service and after.state == "normal"
    assert c.hold_reason is None


def test_a_configuration_problem_is_reported_as_the_hold_reason() -> None:
    c = Controllers(settings_with())
    stage = PowerStageReading(
        t_s=0.0, p_w=0.0, v_ac_v=240.0, f_hz=60.0, config_problem="703 ES: adopt failed"
    )
    meter = MeterReading(t_s=0.0, p_site_import_w=3000.0, v_l1_v=240.0, f_hz=60.0)
    cmd = c.step(Snapshot(0.0, 0.0, meter, stage, RATINGS, V2H))
    assert (cmd.p_w, cmd.q_var, cmd.service) == (0.0, 0.0, False)
    assert c.hold_reason == "power stage configuration: 703 ES: adopt failed"
    assert cmd.summary().startswith(cmd.state) and "703 ES: adopt failed" in cmd.summary()


def test_a_steady_meter_with_a_moving_counter_is_alive(caplog: pytest.LogCaptureFixture) -> None:
    """A minute of a fixed load: the meter reads the same watts for tens of seconds while its energy
    registers move. Before issue 16 this stopped discharge every 11-28 s without a word in the log."""
    caplog.set_level(logging.INFO, logger="edge.daemon.controllers")
    cmds = _site(Controllers(settings_with()), 60.0)
    assert min(cmd.p_w for cmd in cmds[50:]) > 2800.0  # 3 kW load, 100 W margin
    assert not any("meter_frozen" in cmd.reasons for cmd in cmds)
    assert "frozen" not in caplog.text


def test_a_frozen_meter_is_logged_once_per_episode_with_its_check(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edge.daemon.controllers")
    cmds = _site(Controllers(settings_with()), 120.0, frozen=(20.0, 90.0))
    stopped = [k for k, cmd in enumerate(cmds) if "meter_frozen" in cmd.reasons]
    assert stopped and 20.0 < stopped[0] * 0.1 < 90.0
    assert all(cmds[k].p_w <= 0.0 for k in stopped)
    frozen = [r for r in caplog.records if "site meter frozen" in r.getMessage()]
    alive = [r for r in caplog.records if "site meter alive again" in r.getMessage()]
    assert len(frozen) == 1 and len(alive) == 1
    assert frozen[0].levelno == logging.WARNING and alive[0].levelno == logging.INFO
    assert "(energy counter)" in frozen[0].getMessage() and "Wh" in frozen[0].getMessage()
    assert cmds[-1].p_w > 2800.0


def test_without_the_counter_the_still_heuristic_acts_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    """site.meter_alive_counter = false: a 1 W meter that has shown its site's jitter and then reads
    the same for 5 s while discharging is called frozen by the still-value heuristic, and the log names
    it with its values."""
    caplog.set_level(logging.INFO, logger="edge.daemon.controllers")
    c = Controllers(settings_with(site__meter_alive_counter=False))
    cmds = _site(c, 30.0, jitter_w=3.0, frozen=(10.0, math.inf))
    stopped = [k for k, cmd in enumerate(cmds) if "meter_frozen" in cmd.reasons]
    assert stopped and stopped[0] * 0.1 == pytest.approx(10.0 + 5.0, abs=0.25)
    message = next(r.getMessage() for r in caplog.records if "site meter frozen" in r.getMessage())
    assert "still-value heuristic" in message and "meter_frozen_still_s 5.0 s" in message
    assert "noise floor 50 W" in message


def test_the_daemons_active_anti_islanding_holds_a_stage_that_takes_no_reactive_set_points() -> None:
    """A legacy, vendor-map or VarSet-less stage would refuse (or drop) every dithered set point: a
    balanced island would go unseen, so the daemon holds P = Q = 0 and says why."""
    settings = settings_with(
        functions__anti_islanding="daemon",
        grid__voltage_trip__uv1__clearing_s=None,
        daemon__cycle_s=0.05,  # a path fast enough for the dither
        daemon__actuation_latency_s=0.1,
    )
    refused = _run(Controllers(settings), 3.0, (240.0, None, None))
    assert (refused.p_w, refused.q_var) == (0.0, 0.0)
    assert any("site.island_dither_pu" in r and "reactive set points" in r for r in refused.reasons)
    # a stage that takes them but whose ratings do not reach the dither's amplitude refuses them too
    small_q = dataclasses.replace(RATINGS, q_setpoints=True, q_max_inject_var=20.0, q_max_absorb_var=20.0)
    refused = _run(Controllers(settings), 3.0, (240.0, None, None), ratings=small_q)
    assert (refused.p_w, refused.q_var) == (0.0, 0.0)
    assert any("allow 20 var injected" in r for r in refused.reasons)
    takes_q = dataclasses.replace(RATINGS, q_setpoints=True, q_max_inject_var=3256.0, q_max_absorb_var=3256.0)
    c = Controllers(settings)
    ok = _run(c, 3.0, (240.0, None, None), ratings=takes_q)
    assert ok.state == "normal" and ok.p_w > 1500.0
    amplitude = settings.site.island_dither_pu * settings.inverter.s_rated_va
    assert abs(ok.q_var) == pytest.approx(amplitude)
    # what the status shows: the dither in this Q and the (stiff) grid's response to it
    assert ok.dither is not None and ok.dither.amplitude_var == pytest.approx(amplitude)
    assert ok.dither.q_var == ok.q_var
    assert (
        ok.dither.response_hz is not None and abs(ok.dither.response_hz) < settings.site.island_dither_df_hz
    )
    assert ok.dither.response_age_s is not None and 0.0 <= ok.dither.response_age_s < 0.6
    assert (ok.dither.threshold_hz, ok.dither.halves) == (
        settings.site.island_dither_df_hz,
        settings.site.island_dither_halves,
    )
    # The house needs nothing any more: no export, no dither, and the kernel forgets its response;
    # the status keeps the last one with its age (so the response that tripped stays readable).
    for k in range(10):
        t = 3.0 + 0.1 * k
        stage = PowerStageReading(t_s=t, p_w=0.0, v_ac_v=240.0, f_hz=60.0, ev_soc=0.6)
        meter = MeterReading(t_s=t, p_site_import_w=0.0, v_l1_v=240.0, f_hz=60.0)
        idle = c.step(Snapshot(t, t, meter, stage, takes_q, V2H))
    assert idle.dither is not None and idle.dither.q_var == 0.0
    assert idle.dither.response_hz == ok.dither.response_hz
    assert idle.dither.response_age_s is not None and idle.dither.response_age_s > 0.9
    # the inverter's method: nothing of ours to show
    assert _run(Controllers(settings_with()), 1.0, (240.0, None, None)).dither is None


def test_a_stage_rated_below_the_settings_apparent_power_holds_the_dither() -> None:
    """P gives way to the dither at inverter.s_rated_va; a stage reporting a lower VA rating would
    refuse every full-power set point (the bench's first run lost its writes that way)."""
    settings = settings_with(
        functions__anti_islanding="daemon",
        grid__voltage_trip__uv1__clearing_s=None,
        daemon__cycle_s=0.05,
        daemon__actuation_latency_s=0.1,
    )
    lower = dataclasses.replace(
        RATINGS, q_setpoints=True, q_max_inject_var=3256.0, q_max_absorb_var=3256.0, s_max_va=7000.0
    )
    held = _run(Controllers(settings), 3.0, (240.0, None, None), ratings=lower)
    assert (held.p_w, held.q_var) == (0.0, 0.0)
    assert any("reports 7000 VA" in r and "inverter.s_rated_va = 7400 VA" in r for r in held.reasons)


@pytest.mark.parametrize(("soc_est", "discharges"), [(0.33, False), (0.45, True)])
def test_without_the_evs_soc_the_reserve_is_judged_on_the_estimates_band(
    soc_est: float, discharges: bool
) -> None:
    # The owner's reserve (owner.min_soc 0.3) on an estimate of +/- 0.04: at 0.33 its 2-sigma bound is
    # 0.25, below the reserve. The kernel judged it on the point estimate and discharged 2 kW there.
    c = Controllers(settings_with())
    battery = BatteryView(soc_est=soc_est, soc_sigma=0.04)
    p, cmd = 0.0, None
    for k in range(200):
        t = k * 0.1
        stage = PowerStageReading(t_s=t, p_w=p, v_ac_v=240.0, f_hz=60.0)
        meter = MeterReading(t_s=t, p_site_import_w=2000.0 - p, v_l1_v=240.0, f_hz=60.0)
        cmd = c.step(Snapshot(t, t, meter, stage, RATINGS, V2H, battery))
        p = cmd.p_w
    assert cmd is not None
    assert (cmd.p_w > 1000.0) if discharges else (cmd.p_w == 0.0)
