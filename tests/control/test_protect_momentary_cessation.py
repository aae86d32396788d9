"""Momentary cessation where the daemon owns the voltage trips: the profile's ``mc_low_pu`` / ``mc_high_pu``
decide where the output ceases (P = Q = 0 set points, the stage kept in service: no stop command, no
enter-service delay), and it comes back within 0.4 s of the voltage's return (1547 clause 6.4.2.7, notes
A.8). Where the inverter owns them it ceases by itself and the daemon's backup leaves its set points alone.

Replays of the daemon's own cycle (``Controllers``: kernel I then kernel II, from settings) on an injected
clock, with the compiled kernel and the reference; plus the parameter checks that keep the profile's
momentary-cessation bands and thresholds one definition.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from drivers.capabilities import MeterReading, PowerStageRatings, PowerStageReading
from edge.control import _protect_c as _c
from edge.control import _protect_ref, protect
from edge.control.protect_params import ProtectParamError, ProtectParams
from edge.daemon.battery import BatteryView
from edge.daemon.controllers import Controllers, phase_base_v
from edge.daemon.dispatch import Basis
from edge.daemon.snapshot import Command, Snapshot
from edge.settings import Settings, load_text
from edge.settings.load import default_config_text
from tests.settings.conftest import EN_SITE as EN_BASE
from tests.settings.conftest import with_values

IMPLS = [pytest.param(_protect_ref.step, id="ref"), pytest.param(_c.step, id="compiled")]
DT = 0.1  # the daemon's cycle
RESTORE_S = 0.4  # 1547 clause 6.4.2.7: output restored within 0.4 s (notes A.8)
P_REQ_W = 5000.0
RATINGS = PowerStageRatings(t_s=0.0, p_max_export_w=7400.0, p_max_charge_w=7400.0)

# An EN 50549-1 site whose national settings use momentary cessation at adjustable thresholds (the
# IEEE profile fixes them at 0.50 / 1.10 p.u.); the 10-minute mean is the inverter's (not in the kernel).
EN_SITE = with_values(
    EN_BASE,
    functions__frequency_droop=None,
    functions__volt_var=None,
    functions__voltage_trip="daemon",
    functions__enter_service="daemon",
    grid__voltage_trip__ov_mean_10min__enabled=False,
    grid__enter_service__delay_s=10.0,
    grid__enter_service__ramp_s=1.0,
    grid__ride_through__momentary_cessation=True,
    # EN 50549-1's OV1 and OV2 clear in 0.1 s by default: the daemon owns them only on a faster path
    daemon__cycle_s=0.02,
    daemon__actuation_latency_s=0.05,
)


def _edit(text: str, **changes: object) -> Settings:
    return load_text(with_values(text, **changes))


def ieee_cat_iii(voltage_owner: str) -> Settings:
    """The bench (single phase, 240 V) in Category III, front-of-the-meter V2G, with enter service the
    daemon's (a 5 s delay and a 1 s ramp: a cessation that went through it would show)."""
    return _edit(
        default_config_text(),
        grid__voltage_trip__uv1__clearing_s=None,  # the bench's Category II example
        commissioning__abnormal_category="III",
        functions__voltage_trip=voltage_owner,
        functions__enter_service="daemon",
        functions__volt_var="off",  # Q from the dispatch, so a ceased Q is visible
        functions__volt_watt="off",  # its own response to a high voltage is not the cessation's
        grid__enter_service__delay_s=5.0,
        grid__enter_service__ramp_s=1.0,
        operation__mode="v2g",
        site__non_export=False,
        site__export_cap_w=7400.0,
        # The daemon owns momentary cessation only with a path that ceases within 0.083 s.
        daemon__cycle_s=0.02,
        daemon__actuation_latency_s=0.05,
        inverter__response_tau_s=0.01,
    )


def replay(
    settings: Settings, v_pu: Callable[[float], float], seconds: float
) -> list[tuple[float, float, Command]]:
    """The daemon's cycle every 0.1 s on an ideal plant (the stage delivers the last command): every
    phase at ``v_pu(t)``, 60 Hz (50 Hz for a 50 Hz profile), a V2G dispatch of 5 kW and 1 kvar.
    Returns (t, v, command) per cycle."""
    c = Controllers(settings)
    base = phase_base_v(settings)
    assert base is not None and c.hold_reason is None
    f = float(settings.commissioning.f_nominal_hz or 60)
    basis = Basis("v2g", P_REQ_W, 1000.0, "test")
    p = 0.0
    out = []
    for k in range(round(seconds / DT)):
        t = k * DT
        v = v_pu(t)
        stage = PowerStageReading(t_s=t, p_w=p, v_ac_v=v * base, f_hz=f, ev_soc=0.6)
        meter = MeterReading(
            t_s=t,
            p_site_import_w=2000.0 - p + (k % 3),
            v_l1_v=v * base,
            v_l2_v=v * base,
            v_l3_v=v * base,
            f_hz=f,
        )
        cmd = c.step(Snapshot(t, t, meter, stage, RATINGS, basis, BatteryView(soc_est=0.6)))
        p = cmd.p_w
        out.append((t, v, cmd))
    return out


def sag(level_pu: float, start_s: float, duration_s: float) -> Callable[[float], float]:
    return lambda t: level_pu if start_s - 1e-9 <= t < start_s + duration_s - 1e-9 else 1.0


def in_full_service_by(trace: list[tuple[float, float, Command]], t_s: float) -> None:
    _, _, cmd = next(row for row in trace if row[0] >= t_s - 1e-9)
    assert (cmd.state, cmd.p_w, cmd.q_var) == ("normal", P_REQ_W, 1000.0)


def assert_ceased_and_restored(
    trace: list[tuple[float, float, Command]], start_s: float, end_s: float
) -> None:
    """P = Q = 0 with the stage kept in service from the first cycle beyond the threshold until the
    voltage is back; the full request again within 0.4 s of its return; never a trip or a wait (from
    1 s before the disturbance: in service by then)."""
    for t, _, cmd in (row for row in trace if row[0] >= start_s - 1.0 - 1e-9):
        assert cmd.state in ("normal", "momentary_cessation"), (t, cmd)
        assert cmd.service is True, (t, cmd)  # a cessation, not a trip: no stop command
        if start_s - 1e-9 <= t < end_s - 1e-9:
            assert (cmd.state, cmd.p_w, cmd.q_var) == ("momentary_cessation", 0.0, 0.0), (t, cmd)
            assert "momentary_cessation" in cmd.reasons
        elif t >= end_s + RESTORE_S - 1e-9 or t < start_s:
            assert (cmd.state, cmd.p_w, cmd.q_var) == ("normal", P_REQ_W, 1000.0), (t, cmd)
    restored = next(t for t, _, cmd in trace if t >= end_s and cmd.p_w >= 0.8 * P_REQ_W)
    assert restored - end_s <= RESTORE_S + 1e-9


@pytest.mark.parametrize("step", IMPLS)
@pytest.mark.parametrize(
    ("level_pu", "duration_s"),
    [(0.45, 0.8), (0.05, 0.9), (1.15, 2.0), (1.19, 10.0)],
    ids=["lv-0.45", "lv-0.05", "hv-1.15", "hv-1.19"],
)
def test_cat_iii_ceases_beyond_the_thresholds_and_restores_within_0_4_s(
    step: object, level_pu: float, duration_s: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1547.1 Cat III LVRT B (<= 0.05 p.u., 1 s, MC) and HVRT B (1.18-1.20 p.u., 12 s, MC) within their
    ride-through times: output ceases, nothing trips, and it is back at once, not after the 5 s
    enter-service delay and ramp a trip would need."""
    monkeypatch.setattr(protect, "step", step)
    trace = replay(ieee_cat_iii("daemon"), sag(level_pu, 8.0, duration_s), 8.0 + duration_s + 3.0)
    in_full_service_by(trace, 7.0)  # entered service: 5 s delay, 1 s ramp
    assert_ceased_and_restored(trace, 8.0, 8.0 + duration_s)


@pytest.mark.parametrize("step", IMPLS)
@pytest.mark.parametrize("level_pu", [0.52, 0.88, 1.09])
def test_cat_iii_inside_the_thresholds_keeps_energizing(
    step: object, level_pu: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Just inside 0.50 / 1.10 p.u. (mandatory operation below, continuous above): no cessation."""
    monkeypatch.setattr(protect, "step", step)
    trace = replay(ieee_cat_iii("daemon"), sag(level_pu, 8.0, 1.0), 10.0)
    for t, _, cmd in trace[round(7.0 / DT) :]:
        assert (cmd.state, cmd.p_w) == ("normal", P_REQ_W), (t, cmd)


@pytest.mark.parametrize("step", IMPLS)
def test_where_the_inverter_owns_the_trips_the_daemon_does_not_cease(
    step: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inverter ceases by itself (drivers/sunspec/functions.py writes it the thresholds); the backup
    only ever stops, so the set point stays where the inverter returns to."""
    monkeypatch.setattr(protect, "step", step)
    trace = replay(ieee_cat_iii("inverter"), sag(0.45, 8.0, 0.8), 10.0)
    for t, _, cmd in trace[round(7.0 / DT) :]:
        assert (cmd.state, cmd.p_w, cmd.q_var) == ("normal", P_REQ_W, 1000.0), (t, cmd)


@pytest.mark.parametrize("step", IMPLS)
@pytest.mark.parametrize(
    ("mc_low_pu", "mc_high_pu", "level_pu", "ceases"),
    [
        (0.70, 1.12, 0.68, True),
        (0.70, 1.12, 0.72, False),
        (0.60, 1.12, 0.68, False),
        (0.70, 1.12, 1.13, True),
        (0.70, 1.12, 1.11, False),
        (0.70, 1.14, 1.13, False),
    ],
)
def test_the_site_s_thresholds_decide_where_output_ceases(
    step: object,
    mc_low_pu: float,
    mc_high_pu: float,
    level_pu: float,
    ceases: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """EN 50549-1 with momentary cessation on: the thresholds as set, inside the mandatory
    ride-through bands (0.45-0.85 and 1.10-1.15 p.u.) that keep the trips off meanwhile."""
    monkeypatch.setattr(protect, "step", step)
    settings = _edit(
        EN_SITE, grid__ride_through__mc_low_pu=mc_low_pu, grid__ride_through__mc_high_pu=mc_high_pu
    )
    trace = replay(settings, sag(level_pu, 13.0, 0.6), 15.0)
    in_full_service_by(trace, 12.0)  # entered service: 10 s delay, 1 s ramp
    if ceases:
        assert_ceased_and_restored(trace, 13.0, 13.6)
    else:
        for t, _, cmd in trace[round(12.0 / DT) :]:
            assert (cmd.state, cmd.p_w) == ("normal", P_REQ_W), (t, cmd)


def test_momentary_cessation_off_leaves_the_thresholds_unused() -> None:
    settings = _edit(EN_SITE, grid__ride_through__momentary_cessation=False)
    trace = replay(settings, sag(0.60, 13.0, 0.6), 15.0)
    assert all(cmd.state == "normal" for t, _, cmd in trace if t >= 12.0)


def test_a_cessation_band_outside_the_thresholds_is_refused() -> None:
    """The profile's bands say where cessation is required, the thresholds where the output ceases:
    a momentary-cessation band the thresholds do not cover would be a cessation that never happens."""
    with pytest.raises(
        ProtectParamError, match=r"v_hi_bands\[0\] = \(1\.1, 1\.2\): must be at or above mc_high_pu \(1\.15,"
    ):
        ProtectParams.for_category(3, 7000.0, mc_high_pu=1.15).pack()
    with pytest.raises(
        ProtectParamError, match=r"v_lo_bands\[2\] = \(0\.5, 0\.0\): must be at or below mc_low_pu \(0\.4,"
    ):
        ProtectParams.for_category(3, 7000.0, mc_low_pu=0.4).pack()
    with pytest.raises(
        ProtectParamError,
        match=r"v_lo_bands\[2\]\.mode = 'MOMENTARY_CESSATION': .* momentary_cessation is off",
    ):
        ProtectParams.for_category(3, 7000.0, momentary_cessation=False).pack()
    with pytest.raises(ProtectParamError, match=r"mc_low_pu = 0\.9: must be within \[0\.0, 0\.88\]"):
        ProtectParams.for_category(3, 7000.0, mc_low_pu=0.9).pack()
    # thresholds further in than the bands are fine: the cessation covers them
    ProtectParams.for_category(3, 7000.0, mc_low_pu=0.6, mc_high_pu=1.1).pack()
