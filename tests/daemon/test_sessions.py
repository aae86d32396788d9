"""EV sessions and the lifetime energy counters, by replaying snapshots on an injected clock into a
real state store: energy figures against hand-computed values (trapezoids between readings, split at
a zero crossing), unplug while discharging, one record per session, restarts (clean and kill -9),
an EV that left while no daemon ran, stale readings, and a charger that reports no EV state.

The cycle runs every 0.25 s and the stage is read once a second, so every reading is seen by four
cycles: figures that hold show that a reading is counted once.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from drivers.capabilities import PowerStageReading
from edge.daemon.battery import BatteryView
from edge.daemon.dispatch import Basis
from edge.daemon.sessions import LEFT_WHILE_DOWN, SessionTracker
from edge.daemon.snapshot import Command, Snapshot
from edge.state import StateStore

OpenState = Callable[..., StateStore]
PORT = "inverter"
CYCLE_S = 0.25
READ_EVERY = 4  # cycles
UNIX_OFFSET_S = 1.75e9  # wall clock minus the daemon's monotonic clock
H = 3600.0


@dataclass(frozen=True)
class Plant:
    """What the stage reports from some time on."""

    p_w: float | None = 0.0
    dc_p_w: float | None = None
    ev_state: str | None = "CONNECTED"
    ev_soc: float | None = None
    soc_est: float = math.nan  # the battery view's estimate
    binding: tuple[str, ...] = ()
    reading: bool = True  # False: the link is lost, the snapshot keeps the last reading


UNPLUGGED = Plant(ev_state="DISCONNECTED", dc_p_w=0.0)


@dataclass
class Replay:
    """Cycles on an injected clock: ``run(seconds, plant)`` reads the stage every READ_EVERY cycles."""

    tracker: SessionTracker
    t0_s: float = 1000.0  # the monotonic clock's value at tick 0 (a restarted daemon's starts over)
    unix_offset_s: float = UNIX_OFFSET_S
    tick: int = 0
    stage: PowerStageReading | None = None
    plant: Plant = field(default_factory=Plant)

    @property
    def t_s(self) -> float:
        return self.t0_s + self.tick * CYCLE_S

    def run(self, seconds: float, plant: Plant) -> None:
        for _ in range(round(seconds / CYCLE_S)):
            self.tick += 1
            self.step(plant)

    def step(self, plant: Plant) -> None:
        if self.tick % READ_EVERY == 0 and plant.reading:
            self.stage = PowerStageReading(
                t_s=self.t_s, p_w=plant.p_w, dc_p_w=plant.dc_p_w, ev_state=plant.ev_state, ev_soc=plant.ev_soc
            )
        snap = Snapshot(
            t_s=self.t_s,
            t_unix_s=self.t_s + self.unix_offset_s,
            meter=None,
            stage=self.stage,
            ratings=None,
            dispatch=Basis("v2g", math.nan, 0.0, "test"),
            battery=BatteryView(soc_est=plant.soc_est),
        )
        cmd = Command(
            p_w=plant.p_w or 0.0, q_var=0.0, service=True, state="normal", binding=list(plant.binding)
        )
        self.tracker.update(snap, cmd)

    def unix(self, t_s: float) -> float:
        return t_s + self.unix_offset_s


def sessions(state_dir: Path) -> list[dict[str, object]]:
    conn = sqlite3.connect((state_dir / "state.db").resolve().as_uri() + "?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        found = [dict(r) for r in conn.execute("SELECT * FROM sessions ORDER BY id")]
    finally:
        conn.close()
    for s in found:
        s["reasons"] = json.loads(str(s["reasons"]))
    return found


def open_sessions(state_dir: Path) -> list[str]:
    conn = sqlite3.connect((state_dir / "state.db").resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return [str(r[0]) for r in conn.execute("SELECT port FROM open_sessions")]
    finally:
        conn.close()


CHARGING = Plant(p_w=-7000.0, dc_p_w=-6600.0, ev_soc=0.49, binding=("ramp",))
DISCHARGING = Plant(p_w=3000.0, dc_p_w=3300.0, ev_soc=0.45, binding=("export_cap",))


async def test_plug_in_charge_discharge_unplug(tmp_path: Path, open_state: OpenState) -> None:
    store = open_state(tmp_path)
    r = Replay(SessionTracker(store, port=PORT))
    r.run(10.0, UNPLUGGED)  # readings at 1001..1010 s
    r.run(10.0, Plant(dc_p_w=0.0, ev_soc=0.40))  # plugged in at 1011 s, the handshake: no power
    r.run(10.0, CHARGING)  # 1021..1030 s: the ramp binds
    r.run(3590.0, Plant(p_w=-7000.0, dc_p_w=-6600.0, ev_soc=0.49))  # ..4620 s
    r.run(1800.0, DISCHARGING)  # 4621..6420 s: the export cap binds
    assert store.open_session(PORT) is not None
    r.run(1.0, UNPLUGGED)  # 6421 s
    r.run(120.0, UNPLUGGED)
    assert await store.flush()

    # AC, J: [1020, 1021] 0 -> -7000 W; 3599 s at 7000 W; [4620, 4621] -7000 -> +3000 W crosses zero
    # at 0.7 s: 0.5 * 7000 * 0.7 in, 0.5 * 3000 * 0.3 out; 1799 s at 3000 W; [6420, 6421] 3000 -> 0 W.
    e_charge_ac = (3500.0 + 3599.0 * 7000.0 + 2450.0) / H
    e_discharge_ac = (450.0 + 1799.0 * 3000.0 + 1500.0) / H
    # DC: -6600 -> +3300 W crosses at 2/3 s.
    e_charge_dc = (3300.0 + 3599.0 * 6600.0 + 0.5 * 6600.0 * 2.0 / 3.0) / H
    e_discharge_dc = (0.5 * 3300.0 / 3.0 + 1799.0 * 3300.0 + 1650.0) / H
    (rec,) = sessions(tmp_path)
    assert rec["vehicle_key"] == store.key(PORT)
    assert rec["start_unix_s"] == r.unix(1011.0)
    assert rec["end_unix_s"] == r.unix(6421.0)
    assert rec["e_charge_ac_wh"] == pytest.approx(e_charge_ac, rel=1e-12)
    assert rec["e_discharge_ac_wh"] == pytest.approx(e_discharge_ac, rel=1e-12)
    assert rec["e_charge_dc_wh"] == pytest.approx(e_charge_dc, rel=1e-12)
    assert rec["e_discharge_dc_wh"] == pytest.approx(e_discharge_dc, rel=1e-12)
    assert (rec["soc_start"], rec["soc_end"]) == (0.40, 0.45)
    assert rec["reasons"] == ["unplugged", "export_cap 30 min", "ramp 10 s"]
    # No power flowed outside the session: the lifetime counters hold the same.
    assert store.energy() == pytest.approx(
        {
            "e_charge_ac_wh": e_charge_ac,
            "e_discharge_ac_wh": e_discharge_ac,
            "e_charge_dc_wh": e_charge_dc,
            "e_discharge_dc_wh": e_discharge_dc,
        },
        rel=1e-12,
    )
    assert store.open_session(PORT) is None
    assert open_sessions(tmp_path) == []


async def test_unplug_while_discharging_ends_the_session_at_once(
    tmp_path: Path, open_state: OpenState
) -> None:
    store = open_state(tmp_path)
    r = Replay(SessionTracker(store, port=PORT))
    r.run(1.0, Plant())  # plugged in at 1001 s
    r.run(600.0, DISCHARGING)  # 1002..1601 s
    # The stage still reports 3000 W out at the reading that says the EV is gone.
    r.run(1.0, Plant(p_w=3000.0, dc_p_w=3300.0, ev_state="DISCONNECTED"))
    assert r.tracker.session is None
    assert r.tracker.status() is None
    assert await store.flush()
    (rec,) = sessions(tmp_path)  # written by the cycle that saw the unplug
    assert rec["end_unix_s"] == r.unix(1602.0)
    # [1001, 1002] 0 -> 3000 W, then 600 s at 3000 W up to the unplug reading.
    assert rec["e_discharge_ac_wh"] == pytest.approx((1500.0 + 600.0 * 3000.0) / H, rel=1e-12)
    assert rec["e_charge_ac_wh"] == 0.0
    # DC: none at the plug-in reading, so from 1002 s on.
    assert rec["e_discharge_dc_wh"] == pytest.approx((599.0 * 3300.0 + 3300.0) / H, rel=1e-12)
    assert rec["reasons"] == ["unplugged", "export_cap 10 min"]
    r.run(10.0, Plant(p_w=0.0, dc_p_w=0.0, ev_state="DISCONNECTED"))
    r.tracker.stop()
    assert await store.flush()
    assert len(sessions(tmp_path)) == 1
    # The lifetime counters go on counting the stage: [1602, 1603] 3000 -> 0 W after the session.
    assert store.energy()["e_discharge_ac_wh"] == pytest.approx((1500.0 + 600.0 * 3000.0 + 1500.0) / H)


async def test_one_record_per_session_however_long(tmp_path: Path, open_state: OpenState) -> None:
    store = open_state(tmp_path)
    r = Replay(SessionTracker(store, port=PORT))
    for _ in range(2):
        r.run(5.0, UNPLUGGED)
        r.run(3 * H, CHARGING)  # 180 minutes of checkpoints
        r.run(5.0, UNPLUGGED)
        assert await store.flush()
    r.tracker.stop()
    assert await store.flush()
    records = sessions(tmp_path)
    assert len(records) == 2
    assert [x["start_unix_s"] for x in records] == [r.unix(1006.0), r.unix(1006.0 + 3 * H + 10.0)]
    for x in records:
        assert x["e_charge_ac_wh"] == pytest.approx(7000.0 * (3 * H - 1.0 + 0.5) / H)
        assert x["reasons"] == ["unplugged", "ramp 180 min"]
    assert open_sessions(tmp_path) == []


async def test_energy_reaches_the_store_once_a_minute_not_every_cycle(
    tmp_path: Path, open_state: OpenState
) -> None:
    store = open_state(tmp_path)
    r = Replay(SessionTracker(store, port=PORT), t0_s=960.0)  # minute 16 of the readings' clock begins
    r.run(1.0, Plant())
    r.run(58.0, CHARGING)  # readings up to 1019 s
    assert store.energy()["e_charge_ac_wh"] == 0.0
    assert r.tracker.status() is not None
    r.run(1.0, CHARGING)  # 1020 s: a new minute
    assert store.energy()["e_charge_ac_wh"] == pytest.approx((3500.0 + 58.0 * 7000.0) / H)
    status = r.tracker.status()
    assert status is not None
    assert status.e_charge_ac_wh == store.energy()["e_charge_ac_wh"]
    assert status.start_unix_s == r.unix(961.0)
    assert status.limits == ["ramp 59 s"]


async def test_a_restart_continues_the_session(tmp_path: Path, open_state: OpenState) -> None:
    store = open_state(tmp_path)
    r = Replay(SessionTracker(store, port=PORT))
    r.run(1.0, Plant(ev_soc=0.3))  # plugged in at 1001 s
    r.run(600.0, CHARGING)
    r.tracker.stop()  # a clean stop: the session going on is kept
    await store.aclose()

    again = open_state(tmp_path)
    # The new daemon's monotonic clock starts over; 40 s of wall time passed (the last reading at
    # 1601 s, the next at 1641 s of wall time).
    r2 = Replay(SessionTracker(again, port=PORT), t0_s=10.0, unix_offset_s=UNIX_OFFSET_S + 1640.0 - 10.0)
    r2.run(300.0, Plant(p_w=-7000.0, dc_p_w=-6600.0, ev_soc=0.6))
    r2.run(1.0, UNPLUGGED)
    assert await again.flush()
    (rec,) = sessions(tmp_path)
    assert rec["start_unix_s"] == r.unix(1001.0)
    assert rec["end_unix_s"] == r2.unix(311.0)
    # Before: [1001, 1002] 0 -> -7000 W, 599 s at 7000 W. After: 299 s at 7000 W, [310, 311] -> 0 W.
    assert rec["e_charge_ac_wh"] == pytest.approx((3500.0 + 599.0 * 7000.0 + 299.0 * 7000.0 + 3500.0) / H)
    assert (rec["soc_start"], rec["soc_end"]) == (0.3, 0.6)
    assert rec["reasons"] == [
        "unplugged",
        "ramp 10 min",
        "no readings 40 s: energy not counted",
        "continued across 1 daemon restart(s)",
    ]
    assert open_sessions(tmp_path) == []


async def test_a_killed_daemon_continues_the_session_from_its_last_checkpoint(
    tmp_path: Path, open_state: OpenState
) -> None:
    store = open_state(tmp_path)
    r = Replay(SessionTracker(store, port=PORT), t0_s=1020.0)
    r.run(1.0, Plant())  # plugged in at 1021 s
    r.run(150.0, CHARGING)  # 1022..1171 s; checkpoints at 1080 and 1140 s
    # kill -9: no stop(). What flush() confirms is what the file holds when the process dies
    # (tests/state/test_state_crash.py kills a writer for real); nothing more is queued.
    assert await store.flush()
    await store.aclose()

    again = open_state(tmp_path)
    kept = again.open_session(PORT)
    assert kept is not None
    assert kept.last_unix_s == r.unix(1140.0)
    assert kept.e_charge_ac_wh == pytest.approx((3500.0 + 118.0 * 7000.0) / H)
    # systemd restarts it 5 s later: the next reading comes at 1176 s of the old clock's wall time.
    r2 = Replay(SessionTracker(again, port=PORT), t0_s=3.0, unix_offset_s=UNIX_OFFSET_S + 1175.0 - 3.0)
    r2.run(100.0, CHARGING)
    r2.run(1.0, UNPLUGGED)
    assert await again.flush()
    (rec,) = sessions(tmp_path)
    assert rec["start_unix_s"] == r.unix(1021.0)
    # Kept up to 1140 s; 1140..1176 s lost with the process (counted as unmeasured); then 99 s at
    # 7000 W and the ramp down at the unplug.
    assert rec["e_charge_ac_wh"] == pytest.approx((3500.0 + 118.0 * 7000.0 + 99.0 * 7000.0 + 3500.0) / H)
    assert "no readings 36 s: energy not counted" in rec["reasons"]
    assert "continued across 1 daemon restart(s)" in rec["reasons"]


async def test_an_ev_that_left_while_no_daemon_ran_ends_at_its_last_reading(
    tmp_path: Path, open_state: OpenState
) -> None:
    store = open_state(tmp_path)
    r = Replay(SessionTracker(store, port=PORT))
    r.run(1.0, Plant(ev_soc=0.5))
    r.run(300.0, Plant(p_w=-7000.0, dc_p_w=-6600.0, ev_soc=0.55))
    r.tracker.stop()
    await store.aclose()

    again = open_state(tmp_path)
    r2 = Replay(SessionTracker(again, port=PORT), t0_s=5.0, unix_offset_s=UNIX_OFFSET_S + 4 * H)
    r2.run(2.0, Plant(ev_state=None))  # readings that do not say: nothing decided yet
    assert r2.tracker.session is not None
    r2.run(60.0, UNPLUGGED)
    assert await again.flush()
    (rec,) = sessions(tmp_path)
    assert rec["end_unix_s"] == r.unix(1301.0)  # the last reading the stopped daemon saw
    assert rec["e_charge_ac_wh"] == pytest.approx((3500.0 + 299.0 * 7000.0) / H)
    assert rec["soc_end"] == 0.55
    assert rec["reasons"][0] == LEFT_WHILE_DOWN
    assert open_sessions(tmp_path) == []


async def test_stale_readings_are_not_integrated(tmp_path: Path, open_state: OpenState) -> None:
    store = open_state(tmp_path)
    r = Replay(SessionTracker(store, port=PORT))
    r.run(1.0, Plant())
    r.run(100.0, CHARGING)  # readings up to 1101 s
    r.run(150.0, Plant(reading=False))  # the link is lost: every cycle sees the reading of 1101 s
    r.run(60.0, CHARGING)  # 1252..1311 s
    r.run(1.0, UNPLUGGED)
    assert await store.flush()
    (rec,) = sessions(tmp_path)
    # [1001, 1002] ramp, 99 s at 7000 W; the 151 s gap [1101, 1252] not counted (not held, not
    # interpolated); 59 s at 7000 W; [1311, 1312] ramp down.
    assert rec["e_charge_ac_wh"] == pytest.approx((3500.0 + 99.0 * 7000.0 + 59.0 * 7000.0 + 3500.0) / H)
    assert rec["end_unix_s"] == r.unix(1312.0)
    assert rec["reasons"] == ["unplugged", "ramp 3 min", "no readings 3 min: energy not counted"]


async def test_an_unplug_seen_after_stale_readings_ends_at_the_last_reading_of_the_ev(
    tmp_path: Path, open_state: OpenState
) -> None:
    store = open_state(tmp_path)
    r = Replay(SessionTracker(store, port=PORT))
    r.run(1.0, Plant())
    r.run(100.0, CHARGING)  # readings up to 1101 s
    r.run(30.0, Plant(reading=False))
    r.run(1.0, UNPLUGGED)  # 1132 s: the EV left some time in the gap
    assert await store.flush()
    (rec,) = sessions(tmp_path)
    assert rec["end_unix_s"] == r.unix(1101.0)
    assert rec["e_charge_ac_wh"] == pytest.approx((3500.0 + 99.0 * 7000.0) / H)


async def test_a_charger_without_ev_state_records_no_session(
    tmp_path: Path, open_state: OpenState, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_state(tmp_path)
    r = Replay(SessionTracker(store, port=PORT))
    with caplog.at_level(logging.INFO, logger="edge.daemon.sessions"):
        r.run(600.0, Plant(p_w=-7000.0, ev_state=None, ev_soc=0.5))
        r.run(600.0, Plant(p_w=0.0, ev_state=None))
    r.tracker.stop()
    assert await store.flush()
    assert sessions(tmp_path) == []
    assert open_sessions(tmp_path) == []
    assert r.tracker.status() is None
    told = [x.getMessage() for x in caplog.records if x.name == "edge.daemon.sessions"]
    assert told == [
        f"power stage {PORT} reports no EV state: plug-in sessions cannot be delimited and none is recorded"
        " (the lifetime energy counters still count)"
    ]
    assert store.energy()["e_charge_ac_wh"] == pytest.approx((599.0 * 7000.0 + 3500.0) / H)


async def test_soc_is_the_evs_else_the_estimate(tmp_path: Path, open_state: OpenState) -> None:
    store = open_state(tmp_path)
    r = Replay(SessionTracker(store, port=PORT))
    r.run(5.0, Plant(soc_est=0.31))  # the EV reports no SoC
    r.run(5.0, Plant(ev_soc=0.35, soc_est=0.31))
    r.run(5.0, Plant(ev_soc=1.7, soc_est=0.36))  # not a SoC: the estimate
    r.run(1.0, Plant(ev_state="DISCONNECTED", ev_soc=0.0, soc_est=math.nan))  # gone: its SoC is not the EV's
    assert await store.flush()
    (rec,) = sessions(tmp_path)
    assert (rec["soc_start"], rec["soc_end"]) == (0.31, 0.36)
