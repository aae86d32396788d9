"""Plant physics without Modbus: stage response, efficiencies, reversion, trips, island, site, meter."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import msgspec
import pytest

from hil.plant import Plant, PlantConfig
from hil.plant import events as ev
from hil.plant.battery import EcmBattery, TraceBattery
from hil.plant.config import PowerStageConfig
from hil.plant.grid import RlcLoad
from hil.plant.meter import SiteMeter
from hil.plant.site import HouseLoad
from hil.plant.stage import PowerStage

DT = 0.005


def run_stage(st: PowerStage, t0: float, t1: float, **kw: object) -> float:
    """Step the stage from t0 to t1 at a healthy grid; returns the end time."""
    args: dict[str, object] = {
        "v_avg_pu": 1.0, "v_min_pu": 1.0, "v_max_pu": 1.0, "f_hz": 60.0, "islanded": False,
        "ev_plugged": True, "soc": 0.6, "soc_min": 0.1, "soc_max": 1.0,
        "ev_chg_w": 11000.0, "ev_dis_w": 11000.0,
    }  # fmt: skip
    args.update(kw)
    t = t0
    while t < t1 - 1e-12:
        t += DT
        st.step(t_s=t, dt_s=DT, **args)  # type: ignore[arg-type]
    return t


def running_stage(**cfg: object) -> PowerStage:
    st = PowerStage(PowerStageConfig(**cfg), 60.0)  # type: ignore[arg-type]
    run_stage(st, 0.0, 3.0)  # through the enter-service ramp
    assert st.state == "running"
    return st


def test_stage_follows_a_setpoint_as_a_first_order_lag() -> None:
    st = running_stage(tau_s=0.1)
    st.wset_ena = True
    st.set_wset(3000.0, 3.0)
    run_stage(st, 3.0, 3.1)
    assert st.p_w == pytest.approx(3000.0 * (1 - math.exp(-1.0)), rel=1e-6)
    run_stage(st, 3.1, 3.5)
    assert st.p_w == pytest.approx(3000.0 * (1 - math.exp(-5.0)), rel=1e-6)


def test_efficiency_differs_between_charging_and_discharging() -> None:
    st = running_stage(tau_s=0.0, eff_charge=0.95, eff_discharge=0.93)
    st.wset_ena = True
    st.set_wset(3000.0, 3.0)
    run_stage(st, 3.0, 3.01)
    assert st.p_dc_w == pytest.approx(3000.0 / 0.93)
    st.set_wset(-3000.0, 3.01)
    run_stage(st, 3.01, 3.02)
    assert st.p_dc_w == pytest.approx(-3000.0 * 0.95)


def test_round_trip_through_the_battery_loses_energy() -> None:
    bat = EcmBattery(soc=0.5, capacity_kwh=1.0, series=96, r0=0.06, r1=0.03, tau1_s=30.0)
    for _ in range(1000):
        bat.step(0.1, -3000.0 * 0.95)  # charge 3 kW AC for 100 s
    for _ in range(1000):
        bat.step(0.1, 3000.0 / 0.93)  # discharge 3 kW AC for 100 s
    assert bat.soc < 0.5 - 0.01


def test_reversion_fires_after_the_timer_without_writes_or_heartbeat() -> None:
    st = running_stage(tau_s=0.0, wset_rvrt_w=0.0, wset_rvrt_tms_s=2.0)
    st.wset_ena = True
    st.set_wset(3000.0, 3.0)
    run_stage(st, 3.0, 4.5)
    st.touch(4.5)  # a controller heartbeat restarts the timer
    run_stage(st, 4.5, 6.4)
    assert not st.reverted
    assert st.p_w == pytest.approx(3000.0)
    run_stage(st, 6.4, 6.6)
    assert st.reverted
    assert st.p_w == 0.0
    st.set_wset(2000.0, 6.6)  # a new write takes control back
    run_stage(st, 6.6, 6.7)
    assert not st.reverted
    assert st.p_w == pytest.approx(2000.0)


def test_no_reversion_while_the_timer_is_zero() -> None:
    st = running_stage(tau_s=0.0, wset_rvrt_tms_s=0.0)
    st.wset_ena = True
    st.set_wset(3000.0, 3.0)
    run_stage(st, 3.0, 20.0)
    assert not st.reverted
    assert st.p_w == pytest.approx(3000.0)


def test_over_voltage_trips_after_the_clearing_time_and_reenters_service() -> None:
    st = running_stage(tau_s=0.0, es_delay_s=1.0, es_ramp_s=1.0)
    st.wset_ena = True
    st.set_wset(3000.0, 3.0)
    t = run_stage(st, 3.0, 3.14, v_avg_pu=1.21, v_max_pu=1.21)
    assert st.state == "running"  # OV2 clears at 0.16 s
    t = run_stage(st, t, 3.17, v_avg_pu=1.21, v_max_pu=1.21)
    assert st.state == "tripped"
    assert st.trip_cause == "HV"
    assert st.p_ac_w == 0.0
    t = run_stage(st, t, 3.9)
    assert st.state == "tripped"  # enter-service delay
    t = run_stage(st, t, 4.3)
    assert st.state == "ramp"
    t = run_stage(st, t, 5.5)
    assert st.state == "running"
    assert st.p_w == pytest.approx(3000.0)


def test_volt_var_owned_by_the_inverter_injects_at_low_voltage() -> None:
    st = running_stage(tau_s=0.0, volt_var=True)
    run_stage(st, 3.0, 40.0, v_avg_pu=0.95, v_min_pu=0.95, v_max_pu=0.95)
    # Cat B: 0.44 at 0.92, 0 at 0.98 -> 0.22 S at 0.95
    assert st.q_var == pytest.approx(0.22 * 7400.0, rel=1e-3)


def test_frequency_droop_reduces_export_above_nominal() -> None:
    st = running_stage(tau_s=0.0, freq_droop=True)
    st.wset_ena = True
    st.set_wset(3000.0, 3.0)
    run_stage(st, 3.0, 60.0, f_hz=60.336)
    # 0.3 Hz beyond the deadband / (60 Hz * 0.05) = 0.1 pu of 7400 W
    assert st.p_w == pytest.approx(3000.0 - 740.0, rel=1e-3)


def test_unplugging_stops_the_output_at_once() -> None:
    st = running_stage(tau_s=0.1)
    st.wset_ena = True
    st.set_wset(3000.0, 3.0)
    run_stage(st, 3.0, 4.0)
    run_stage(st, 4.0, 4.005, ev_plugged=False)
    assert st.p_w == 0.0
    assert st.state == "idle"


def test_rlc_load_has_quality_factor_one_and_resonates_at_nominal() -> None:
    load = RlcLoad(240.0, 60.0, 3000.0, 0.0, 1.0)
    assert load.resonance_hz == pytest.approx(60.0)
    w = 2 * math.pi * 60.0
    assert load.r_ohm * math.sqrt(load.c_f / load.l_h) == pytest.approx(1.0)
    v, f = load.balance(3000.0, 0.0)
    assert v == pytest.approx(240.0)
    assert f == pytest.approx(60.0)
    assert 1 / (w * load.l_h) == pytest.approx(w * load.c_f)


def test_island_voltage_and_frequency_drift_with_the_mismatch() -> None:
    load = RlcLoad(240.0, 60.0, 3000.0, 0.0, 1.0)
    v_more, _ = load.balance(3300.0, 0.0)
    v_less, _ = load.balance(2700.0, 0.0)
    assert v_more > 240.0 > v_less
    assert v_less == pytest.approx(240.0 * math.sqrt(0.9))
    _, f_inject = load.balance(3000.0, 300.0)  # more Q injected than the load takes: f falls
    _, f_absorb = load.balance(3000.0, -300.0)
    assert f_inject < 60.0 < f_absorb
    assert load.balance(0.0, 0.0)[0] == 0.0


def test_plant_island_settles_at_the_rlc_balance() -> None:
    cfg = PlantConfig()
    cfg.power_stage.anti_islanding = False
    cfg.power_stage.tau_s = 0.0
    cfg.site.house_load_w = 3000.0
    plant = Plant(cfg)
    t = 0.0
    while t < 3.0:
        t += DT
        plant._step(t, DT)
    plant.stage.wset_ena = True
    plant.stage.set_wset(2715.0, t)  # 2700 W after the 15 W idle consumption
    while t < 5.0:
        t += DT
        plant._step(t, DT)
    plant.apply(ev.Breaker(closed=False))
    while t < 6.0:
        t += DT
        plant._step(t, DT)
    assert plant.grid.v_pu[0] == pytest.approx(math.sqrt(2700.0 / 3000.0), rel=1e-3)
    assert plant.grid.f_hz == pytest.approx(60.0, abs=1e-6)
    assert plant.p_site_import_w == 0.0
    assert plant.stage.state == "running"  # inside every trip band: the non-detection zone


def test_plant_anti_islanding_ceases_after_the_detection_time() -> None:
    cfg = PlantConfig()
    cfg.site.house_load_w = 3000.0
    cfg.power_stage.anti_island_detect_s = 0.5
    plant = Plant(cfg)
    t = 0.0
    while t < 3.0:
        t += DT
        plant._step(t, DT)
    plant.stage.wset_ena = True
    plant.stage.set_wset(2715.0, t)
    while t < 4.0:
        t += DT
        plant._step(t, DT)
    plant.apply(ev.Breaker(closed=False))
    t_open = t
    while plant.stage.state != "tripped" and t < t_open + 2.0:
        t += DT
        plant._step(t, DT)
    assert plant.stage.trip_cause == "island"
    assert t - t_open == pytest.approx(0.5, abs=2 * DT)
    t += DT
    plant._step(t, DT)
    assert plant.grid.v_pu[0] < 0.9


def test_hob_pulses_with_its_duty_cycle() -> None:
    house = HouseLoad(800.0, 0.0, 2000.0, 4.0, 0.5)
    on = [house.nominal_w(k * 0.01) for k in range(800)]
    assert on.count(2800.0) == 400
    assert on.count(800.0) == 400
    assert house.power(1.0, 0.9)[0] == pytest.approx(2800.0 * 0.81)


def test_meter_refreshes_at_its_rate_and_freezes() -> None:
    m = SiteMeter(refresh_s=0.2, noise_w=0.0, seed=1)
    kw: dict[str, object] = {"q_import_var": 0.0, "v_pu": [1.0, 1.0, 1.0], "f_hz": 60.0, "phases": 1}
    m.step(t_s=0.0, dt_s=0.0, p_import_w=100.0, **kw)  # type: ignore[arg-type]
    m.step(t_s=0.1, dt_s=0.1, p_import_w=500.0, **kw)  # type: ignore[arg-type]
    assert m.reading.p_import_w == 100.0
    m.step(t_s=0.2, dt_s=0.1, p_import_w=500.0, **kw)  # type: ignore[arg-type]
    assert m.reading.p_import_w == 500.0
    m.frozen = True
    m.step(t_s=0.4, dt_s=0.2, p_import_w=-900.0, **kw)  # type: ignore[arg-type]
    assert m.reading.p_import_w == 500.0
    m.frozen = False
    m.step(t_s=0.6, dt_s=0.2, p_import_w=-900.0, **kw)  # type: ignore[arg-type]
    assert m.reading.p_import_w == -900.0
    assert m.reading.e_export_wh > 0.0


def test_grid_steps_one_phase() -> None:
    cfg = PlantConfig()
    cfg.grid.phases = 3
    plant = Plant(cfg)
    plant.apply(ev.Grid(v_pu=0.8, phase=1))
    plant.apply(ev.Grid(f_hz=59.5))
    plant._step(0.005, 0.005)
    assert plant.grid.v_pu == [1.0, 0.8, 1.0]
    assert plant.grid.v_min_pu == 0.8
    assert plant.grid.f_hz == 59.5


def test_ev_trace_replay_drives_soc_and_voltage(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv.gz"
    with gzip.open(trace, "wt") as f:
        f.write("t_s,pack_current_a_meas,pack_voltage_v_meas,soc_true\n")
        for k in range(5):
            f.write(f"{k},{10.0 * k},{380.0 - k},{0.6 - 0.01 * k}\n")
    cfg = PlantConfig()
    cfg.ev.trace = str(trace)
    plant = Plant(cfg)
    t = 0.0
    while t < 2.5:
        t += DT
        plant._step(t, DT)
    assert plant.ev.soc == pytest.approx(0.58)
    assert plant.ev.v_dc_v == pytest.approx(378.0)
    plant.stage_dev.publish(t, DT, plant.grid.v_pu, plant.grid.f_hz, plant.ev)
    assert plant.stage_dev.dev.get(713, "SoC") == pytest.approx(58.0)


def test_a_trace_without_the_needed_columns_is_refused(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("t_s,voltage\n0,380\n")
    with pytest.raises(ValueError, match=r"has no column 'pack_voltage_v_meas'"):
        TraceBattery(trace)


def step_plant(plant: Plant, t: float, t_end: float) -> float:
    while t < t_end - 1e-12:
        t += DT
        plant._step(t, DT)
    return t


def test_inverter_restart_drops_the_output_and_forgets_the_controllers_settings() -> None:
    plant = Plant(PlantConfig())
    t = step_plant(plant, 0.0, 3.0)
    st, dev = plant.stage, plant.stage_dev.dev
    st.wset_ena = True
    st.set_wset(3000.0, t)
    st.wset_rvrt_tms_s = 10.0
    dev.set_raw(704, "WSetEna", 1)
    dev.set_raw(704, "WSetRvrtTms", 10)
    dev.set_raw(715, "ControllerHb", 41)
    t = step_plant(plant, t, 4.0)
    assert plant.snapshot()["p_ev_w"] > 2900.0
    plant.apply(ev.InverterRestart(offline_s=0.5, stopped=True))
    snap = plant.snapshot()
    assert snap["p_ev_w"] == 0.0  # at once, no lag
    assert snap["stage_link_up"] == 0.0
    t = step_plant(plant, t, 4.45)
    assert plant.snapshot()["stage_link_up"] == 0.0
    assert st.p_ac_w == 0.0
    t = step_plant(plant, t, 4.6)
    snap = plant.snapshot()
    assert snap["stage_link_up"] == 1.0
    assert snap["p_ev_w"] == 0.0
    assert snap["p_set_w"] == 0.0
    # Back with the power-on controls, waiting for a start command, and saying so in 701 and 715.
    assert (st.state, st.op_start, st.es_permit) == ("off", False, True)
    assert (st.wset_ena, st.wset_rvrt_tms_s) == (False, 0.0)
    assert dev.get_raw(701, "InvSt") == 0  # OFF
    assert dev.get_raw(701, "ConnSt") == 0
    assert dev.get_raw(715, "OpCtl") == 0  # STOP
    assert dev.get_raw(703, "ES") == 1
    assert dev.get_raw(704, "WSetEna") == 0
    assert dev.get_raw(704, "WSetRvrtTms") == 0
    assert dev.get_raw(715, "ControllerHb") == 0
    assert dev.get_raw(715, "DERHb") == 0
    t = step_plant(plant, t, 10.0)
    assert st.state == "off"  # stays stopped however long: only a start command ends it
    assert dev.get_raw(715, "DERHb") in (5, 6)  # counting again from 0


def test_inverter_restart_not_stopped_enters_service_through_the_ramp() -> None:
    cfg = PlantConfig()
    cfg.power_stage.es_ramp_s = 1.0
    plant = Plant(cfg)
    t = step_plant(plant, 0.0, 3.0)
    event = msgspec.convert({"kind": "inverter_restart", "offline_s": 0.0}, ev.PlantEvent)
    assert event == ev.InverterRestart(offline_s=0.0)
    plant.apply(event)
    t = step_plant(plant, t, 3.0 + 2 * DT)
    assert plant.stage.state == "ramp"
    assert plant.stage_dev.dev.get_raw(701, "InvSt") == 2  # STARTING
    t = step_plant(plant, t, 4.1)
    assert plant.stage.state == "running"
    assert plant.stage_dev.dev.get_raw(701, "InvSt") == 3


def test_inverter_restart_with_service_disabled_stays_off() -> None:
    plant = Plant(PlantConfig())
    t = step_plant(plant, 0.0, 1.0)
    plant.apply(ev.InverterRestart(offline_s=0.1, es_disabled=True))
    step_plant(plant, t, 3.0)
    assert plant.stage.state == "off"
    assert plant.stage.op_start  # OpCtl START, but no permit to enter service
    assert plant.stage_dev.dev.get_raw(703, "ES") == 0
    assert plant.stage_dev.dev.get_raw(715, "OpCtl") == 1
    assert plant.stage_dev.dev.get_raw(701, "InvSt") == 0


def test_a_trip_while_stopped_by_command_ends_off_not_in_service() -> None:
    st = running_stage(tau_s=0.0, es_delay_s=1.0, es_ramp_s=1.0)
    t = run_stage(st, 3.0, 3.2, v_avg_pu=1.21, v_max_pu=1.21)
    assert st.state == "tripped"
    st.op_start = False  # OpCtl STOP while tripped
    states = set()
    while t < 6.0:
        t = run_stage(st, t, t + DT)
        states.add(st.state)
    assert states == {"tripped", "off"}  # never through the ramp into service
    assert st.state == "off"
