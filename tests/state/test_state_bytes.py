"""What the state store writes: energy without a flush, bytes counted honestly, the hourly budget."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.estimation.aging import AgingIndicators
from edge.estimation.capacity import CapacityPoint
from edge.estimation.record import VehicleRecord
from edge.state import OpenSession, StateStore, writer

OpenState = Callable[..., StateStore]


def energy_on_disk(state_dir: Path) -> dict[str, float]:
    conn = sqlite3.connect((state_dir / "state.db").resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return {str(n): float(wh) for n, wh in conn.execute("SELECT name, wh FROM energy")}
    finally:
        conn.close()


def mid_life_record(points: int) -> VehicleRecord:
    """A vehicle seen for a while: ``points`` capacity observations, every aging counter running."""
    return VehicleRecord(
        profile="nmc-lgm50",
        sessions=points // 2,
        capacity_points=[
            CapacityPoint(0.31234567 + k * 1e-3, 66.7654321 - k * 1e-2, 2.1e-4, 3.3e-3, 0.97 ** (k // 2))
            for k in range(points)
        ],
        growth=1.2345678,
        growth_sigma=0.0612345,
        aging={name: 1234.5678 + k for k, name in enumerate(AgingIndicators().to_dict())},
    )


async def test_energy_reaches_the_disk_without_a_flush(
    tmp_path: Path, open_state: OpenState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "ENERGY_PERIOD_S", 0.05)
    store = open_state(tmp_path)
    store.add_energy(e_charge_ac_wh=10.0)
    store.add_energy(e_charge_ac_wh=2.5, e_charge_dc_wh=11.0)
    for _ in range(500):  # until the writer's timer commits it (it does within 0.05 s)
        if energy_on_disk(tmp_path):
            break
        await asyncio.sleep(0.02)
    assert energy_on_disk(tmp_path) == {"e_charge_ac_wh": 12.5, "e_charge_dc_wh": 11.0}


async def test_bytes_are_counted_and_rated_over_the_last_hour(tmp_path: Path, open_state: OpenState) -> None:
    now = [1000.0]
    store = open_state(tmp_path, clock=lambda: now[0])
    opened = store.stats
    assert opened.bytes_measured
    assert opened.bytes_written > 0  # creating the schema
    assert opened.bytes_per_hour == 0.0  # the open is not part of the rate
    record = mid_life_record(200)
    store.put_vehicle(store.key("car"), record)
    assert await store.flush()
    now[0] += 60.0
    first = store.stats
    written = first.bytes_written - opened.bytes_written
    # At least the record's text went to the file (plus the log's page framing).
    assert written >= len(json.dumps(record.to_json()))
    assert first.bytes_per_hour == pytest.approx(written * 60.0)
    assert first.bytes_dirtied > opened.bytes_dirtied
    assert first.transactions == 1

    now[0] += 7200.0  # two quiet hours
    assert store.stats.bytes_per_hour == 0.0
    record.aging["hours_plugged"] += 1.0
    store.put_vehicle(store.key("car"), record)
    assert await store.flush()
    now[0] += 1800.0
    later = store.stats
    assert later.bytes_per_hour == pytest.approx(later.bytes_written - first.bytes_written)
    # The capacity observations did not change: only the rest of the record was written again.
    assert later.bytes_written - first.bytes_written < written / 4


async def test_an_hour_of_a_plugged_in_vehicle_keeps_to_the_sd_card_budget(
    tmp_path: Path, open_state: OpenState
) -> None:
    """Each minute a checkpoint of a mid-life vehicle, of its session and the energy counters (the
    battery and session trackers checkpoint in the same cycle); an event every 15 min."""
    now = [0.0]
    store = open_state(tmp_path, clock=lambda: now[0])
    key = store.key("car")
    record = mid_life_record(60)
    session = OpenSession(port="inverter", vehicle_key=key, start_unix_s=1.75e9, last_unix_s=1.75e9)
    for minute in range(120):
        record.aging["hours_plugged"] += 1 / 60
        store.put_vehicle(key, record)
        store.add_energy(e_charge_ac_wh=120.0 + minute % 7, e_charge_dc_wh=112.8 + minute % 5)
        session.last_unix_s += 60.0
        session.e_charge_ac_wh += 120.0 + minute % 7
        session.e_charge_dc_wh += 112.8 + minute % 5
        session.limits_s["export_cap"] = 12.25 * minute
        session.soc_end = 0.4 + minute / 1000
        store.put_open_session(session)
        if minute % 15 == 0:
            store.event("mode", {"from": "charge", "to": "discharge", "reason": "aggregator setpoint"})
        assert await store.flush()
        now[0] += 60.0
    stats = store.stats
    assert stats.transactions == 120
    # Measured 189 kB/h (docs/state.md): three 1 KiB log pages a minute, plus an event page at times.
    assert 60 * 3 * 1024 <= stats.bytes_per_hour < 200_000


async def test_an_idle_charger_writes_nothing(tmp_path: Path, open_state: OpenState) -> None:
    store = open_state(tmp_path)
    assert await store.flush()
    before = store.stats
    store.add_energy(e_charge_ac_wh=0.0, e_discharge_ac_wh=0.0)  # every cycle of an idle charger
    assert await store.flush()
    after = store.stats
    assert after.transactions == before.transactions
    assert after.bytes_written == before.bytes_written
