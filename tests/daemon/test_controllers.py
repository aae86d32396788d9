"""The cycle's controllers on hand-made snapshots: voltage bases, unused meter phases, stale stage."""

from __future__ import annotations

import math

import pytest

from drivers.capabilities import MeterReading, PowerStageRatings, PowerStageReading
from edge.daemon.controllers import Controllers, phase_base_v
from edge.daemon.dispatch import Basis
from edge.daemon.snapshot import Snapshot
from edge.settings import load_text
from edge.settings.edit import set_value
from edge.settings.load import default_config_text

RATINGS = PowerStageRatings(t_s=0.0, p_max_export_w=7400.0, p_max_charge_w=7400.0)
V2H = Basis("v2h", math.nan, 0.0, "test")


def _settings(**changes: object):  # type: ignore[no-untyped-def]
    text = default_config_text()
    for key, value in changes.items():
        text = set_value(text, key.replace("__", "."), value)
    return load_text(text)


def _run(c: Controllers, seconds: float, meter_v: tuple[float | None, ...], load_w: float = 2000.0):  # type: ignore[no-untyped-def]
    p = 0.0
    cmd = None
    for k in range(round(seconds / 0.1)):
        t = k * 0.1
        stage = PowerStageReading(t_s=t, p_w=p, v_ac_v=240.0, f_hz=60.0, ev_soc=0.6)
        v1, v2, v3 = meter_v
        meter = MeterReading(t_s=t, p_site_import_w=load_w - p, v_l1_v=v1, v_l2_v=v2, v_l3_v=v3, f_hz=60.0)
        cmd = c.step(Snapshot(t, t, meter, stage, RATINGS, V2H))
        p = cmd.p_w
    return cmd


def test_voltage_bases_follow_topology_and_basis() -> None:
    assert phase_base_v(_settings()) == 240.0  # single phase, 240 V measured L1-L2
    split = _settings(commissioning__phase_topology="split")
    assert phase_base_v(split) == 120.0
    three = _settings(commissioning__phase_topology="three", commissioning__v_nominal_v=400.0)
    assert abs(phase_base_v(three) - 400.0 / 3**0.5) < 1e-9


def test_unused_phases_of_a_three_phase_meter_do_not_trip_a_single_phase_site() -> None:
    cmd = _run(Controllers(_settings()), 3.0, (240.0, 0.0, 0.0))
    assert cmd.state == "normal"
    assert cmd.v_pu == 1.0
    assert cmd.p_w > 1500.0  # serving the house, not tripped on "0 V"


def test_an_under_voltage_on_a_wired_phase_is_seen() -> None:
    c = Controllers(_settings(commissioning__phase_topology="split"))
    cmd = _run(c, 30.0, (120.0, 40.0, None))  # L2 at 0.33 p.u.: beyond every ride-through region
    assert cmd.state == "tripped"
    assert cmd.p_w == 0.0


def test_stale_power_stage_commands_nothing() -> None:
    c = Controllers(_settings())
    stage = PowerStageReading(t_s=0.0, p_w=3000.0, v_ac_v=240.0, f_hz=60.0, ev_soc=0.6)
    cmd = c.step(Snapshot(10.0, 10.0, None, stage, RATINGS, V2H))
    assert (cmd.p_w, cmd.q_var, cmd.state) == (0.0, 0.0, "no_power_stage")


def _in_service_after(u_rand: float) -> float:
    """Seconds until a daemon-owned enter service with a 10 s randomized delay lets the stage run."""
    c = Controllers(
        _settings(
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

    settings = _settings(mqtt__enabled=False, battery__estimate=False)
    a = Daemon(settings, runtime_dir=tmp_path / "a")
    b = Daemon(settings, runtime_dir=tmp_path / "b")
    draws = [(a.snapshot(0.0, False).u_rand, b.snapshot(0.0, False).u_rand) for _ in range(5)]
    assert all(0.0 <= x < 1.0 and 0.0 <= y < 1.0 for x, y in draws)
    assert len({x for x, _ in draws} | {y for _, y in draws}) == 10, "two units, or two cycles, drew alike"
