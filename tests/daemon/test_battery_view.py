"""The battery view's pack energy per unit SoC (the departure planner's ``e_per_soc_wh``): from the
estimator's SoH capacity during a session, from the configured profile and pack layout before one and
with ``battery.estimate = false``."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from drivers.capabilities import PowerStageReading
from edge.daemon.battery import BatteryTracker
from edge.daemon.departure import DeparturePlanner
from edge.estimation.capacity import CapacityPoint
from edge.estimation.profile import load_profile, pack_energy_per_soc_wh, with_pack
from edge.estimation.record import VehicleRecord
from edge.settings.model import Battery, EvOwner
from edge.state import StateStore

PORT = "inverter"
NMC = load_profile("nmc-lgm50")
PACK_V = float(np.interp(0.6, NMC.ocv_soc, NMC.ocv_v)) * NMC.series


def reading(t_s: float, ev_state: str = "CONNECTED") -> PowerStageReading:
    return PowerStageReading(t_s=t_s, p_w=-7000.0, dc_v_v=PACK_V, dc_i_a=-20.0, ev_state=ev_state)


def mean_upper_half_cell_v(name: str) -> float:
    p = load_profile(name)
    return float(np.interp(np.linspace(0.5, 1.0, 200_001), p.ocv_soc, p.ocv_v).mean())


@pytest.mark.parametrize("name", ["nmc-lgm50", "lfp-prismatic"])
def test_pack_energy_is_capacity_times_the_upper_half_ocv(name: str) -> None:
    p = load_profile(name)
    v_cell = mean_upper_half_cell_v(name)
    nominal = p.nameplate_capacity_ah * p.parallel * p.series * v_cell
    assert pack_energy_per_soc_wh(p) == pytest.approx(nominal, rel=1e-6)
    assert pack_energy_per_soc_wh(p, 100.0) == pytest.approx(100.0 * p.series * v_cell, rel=1e-6)
    assert pack_energy_per_soc_wh(with_pack(p, p.series * 2, p.parallel)) == pytest.approx(2.0 * nominal)
    # The upper half errs high: more than the pack's energy over its whole range, per unit SoC.
    v_full = float(np.interp(np.linspace(0.0, 1.0, 200_001), p.ocv_soc, p.ocv_v).mean())
    assert pack_energy_per_soc_wh(p) > p.nameplate_capacity_ah * p.parallel * p.series * v_full


def test_the_shipped_nmc_pack_holds_82_kwh_per_unit_soc() -> None:
    # 96s43p of 5 Ah cells (215 Ah) at 3.979 V mean cell OCV over 50..100 %.
    assert pack_energy_per_soc_wh(NMC) == pytest.approx(82_127.0, abs=1.0)


def test_without_estimation_the_view_carries_the_configured_pack(
    open_state: Callable[..., StateStore], tmp_path: Path
) -> None:
    store = open_state(tmp_path)
    tracker = BatteryTracker(Battery(estimate=False, series=100, parallel=40), store, port=PORT)
    view = tracker.update(reading(0.0), at_rest=False)
    expected = pack_energy_per_soc_wh(with_pack(NMC, 100, 40))
    assert view.e_per_soc_wh == pytest.approx(expected)
    assert expected != pytest.approx(pack_energy_per_soc_wh(NMC))  # the layout was applied
    assert math.isnan(view.soc_est)
    assert view.p_max_charge_w is None
    assert tracker.estimator is None
    assert tracker.telemetry() == {}
    assert store.vehicle(store.key(PORT)) is None  # nothing estimated, nothing kept


def test_a_session_uses_the_vehicles_soh_capacity_and_unplug_returns_to_nominal(
    open_state: Callable[..., StateStore], tmp_path: Path
) -> None:
    store = open_state(tmp_path)
    # An aged vehicle: 20 anchored observations of 4.0 Ah per cell (nameplate 5.0).
    points = [CapacityPoint(0.5, 2.0, 1e-4, 1e-4) for _ in range(20)]
    store.put_vehicle(store.key(PORT), VehicleRecord(profile=NMC.name, sessions=5, capacity_points=points))
    tracker = BatteryTracker(Battery(), store, port=PORT)
    nominal = pack_energy_per_soc_wh(NMC)
    assert tracker.view.e_per_soc_wh == pytest.approx(nominal)  # before any session
    view = tracker.update(reading(0.0), at_rest=False)
    est = tracker.estimator
    assert est is not None
    assert est.soh.capacity_ah == pytest.approx(4.0 * NMC.parallel, rel=0.01)
    assert view.e_per_soc_wh == pytest.approx(pack_energy_per_soc_wh(NMC, est.soh.capacity_ah))
    assert view.e_per_soc_wh == pytest.approx(0.8 * nominal, rel=0.01)
    # A reading without DC values: SoC and limits unknown, the vehicle's pack energy still known.
    unknown = tracker.update(PowerStageReading(t_s=1.0, p_w=0.0, ev_state="CONNECTED"), at_rest=True)
    assert math.isnan(unknown.soc_est)
    assert unknown.e_per_soc_wh == view.e_per_soc_wh
    left = tracker.update(reading(2.0, ev_state="DISCONNECTED"), at_rest=True)
    assert left.e_per_soc_wh == pytest.approx(nominal)
    assert math.isnan(left.soc_est)


def test_the_departure_planner_plans_on_the_nominal_pack() -> None:
    view = BatteryTracker(Battery(estimate=False), None, port=PORT).view
    planner = DeparturePlanner(
        EvOwner(min_soc=0.3, departure_soc=0.8, departure_time=time(7, 30)),
        p_rated_w=7400.0,
        p_rated_charge_w=7400.0,
        charge_efficiency=0.94,
        discharge_efficiency=0.95,
        trip_s=450.0,
    )
    now = datetime(2025, 1, 15, 20, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    lim = planner.plan(now, 0.0, 0.5, view.e_per_soc_wh, 7400.0)
    assert lim.state != "unknown_capacity"
    # 30 % of 82.1 kWh through a 94 % efficient charger.
    assert lim.e_needed_wh == pytest.approx(0.3 * 82_127.0 / 0.94, rel=1e-4)
