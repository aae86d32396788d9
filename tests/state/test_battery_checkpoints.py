"""The daemon's battery tracker keeps its learning in the state store: a checkpoint every minute of
reading time, the session counted once, and a restart without a clean stop resumes from the last
checkpoint. Readings carry their own times (no clock, no sleeps)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from drivers.capabilities import PowerStageReading
from edge.daemon.battery import CHECKPOINT_PERIOD_S, BatteryTracker
from edge.estimation import _ecm_ref as k
from edge.estimation.profile import load_profile
from edge.settings.model import Battery
from edge.state import StateStore

OpenState = Callable[..., StateStore]
PORT = "inverter"
PROFILE = load_profile("nmc-lgm50")
PACK_V = float(np.interp(0.6, PROFILE.ocv_soc, PROFILE.ocv_v)) * PROFILE.series


def readings(t0_s: float, seconds: float, step_s: float = 0.7) -> Iterator[PowerStageReading]:
    """A plugged-in EV charging at 20 A, read every ``step_s`` (not a divisor of the minute)."""
    for t in np.arange(t0_s, t0_s + seconds, step_s):
        yield PowerStageReading(t_s=float(t), p_w=-7000.0, dc_v_v=PACK_V, dc_i_a=-20.0)


def unplugged(t_s: float) -> PowerStageReading:
    return PowerStageReading(t_s=t_s, p_w=0.0, ev_state="DISCONNECTED")


async def test_checkpoints_every_minute_of_reading_time(tmp_path: Path, open_state: OpenState) -> None:
    store = open_state(tmp_path)
    key = store.key(PORT)  # no vehicle identity reported: one vehicle per port
    tracker = BatteryTracker(Battery(), store, port=PORT)
    saved_at: list[float] = []
    last = None
    for stage in readings(5000.0, 310.0):
        tracker.update(stage, at_rest=False)
        record = store.vehicle(key)
        if record != last:
            saved_at.append(stage.t_s)
            last = record
    # The first reading of each new minute of the readings' clock after the session's start (5000 s):
    # every tracker checkpoints in the same minutes, so that their records share a transaction.
    assert len(saved_at) == 5
    assert np.all(np.diff(saved_at) > CHECKPOINT_PERIOD_S - 0.7)
    assert np.all(np.diff(saved_at) < CHECKPOINT_PERIOD_S + 0.7)
    assert [t // CHECKPOINT_PERIOD_S for t in saved_at] == [84.0, 85.0, 86.0, 87.0, 88.0]
    assert all(t % CHECKPOINT_PERIOD_S < 0.7 for t in saved_at)
    assert last is not None
    assert last.sessions == 1
    assert last.aging["hours_plugged"] == pytest.approx((saved_at[-1] - 5000.0) / 3600.0)
    assert last.aging["charge_ah"] > 0.0
    assert await store.flush()


async def test_a_session_is_counted_once_through_checkpoints_and_its_end(
    tmp_path: Path, open_state: OpenState
) -> None:
    store = open_state(tmp_path)
    key = store.key(PORT)
    tracker = BatteryTracker(Battery(), store, port=PORT)
    for stage in readings(0.0, 130.0):
        tracker.update(stage, at_rest=False)
    tracker.update(unplugged(200.0), at_rest=True)
    first = store.vehicle(key)
    assert first is not None
    assert first.sessions == 1
    assert first.aging["hours_plugged"] == pytest.approx(129.5 / 3600.0)  # to the last reading
    for stage in readings(1000.0, 70.0):
        tracker.update(stage, at_rest=False)
    tracker.update(unplugged(1100.0), at_rest=True)
    second = store.vehicle(key)
    assert second is not None
    assert second.sessions == 2
    assert second.aging["hours_plugged"] == pytest.approx((129.5 + 69.3) / 3600.0)


async def test_a_daemon_killed_mid_session_resumes_from_the_last_checkpoint(
    tmp_path: Path, open_state: OpenState
) -> None:
    store = open_state(tmp_path)
    tracker = BatteryTracker(Battery(), store, port=PORT)
    for stage in readings(0.0, 150.0):
        tracker.update(stage, at_rest=False)
    # No end_session: the process dies here. What flush() confirmed is what a kill -9 leaves
    # (tests/state/test_state_crash.py kills a writer for real).
    assert await store.flush()
    await store.aclose()

    again = open_state(tmp_path)
    tracker = BatteryTracker(Battery(), again, port=PORT)
    tracker.update(next(readings(0.0, 1.0)), at_rest=False)  # the daemon's clock starts over
    est = tracker.estimator
    assert est is not None
    assert est.record.sessions == 2  # the killed session counted once, from its checkpoint
    hours = est.aging.to_dict()["hours_plugged"]
    assert hours == pytest.approx(120.4 / 3600.0)  # learning up to the checkpoint at 120.4 s is kept


def test_without_a_store_nothing_is_kept(tmp_path: Path) -> None:
    tracker = BatteryTracker(Battery(), None, port=PORT)
    for stage in readings(0.0, 130.0):
        view = tracker.update(stage, at_rest=False)
    assert 0.0 < view.soc_est < 1.0
    tracker.end_session()
    assert tracker.estimator is None
    assert list(tmp_path.iterdir()) == []


async def test_a_killed_daemon_restarted_keeps_the_electrolytes_memory_for_the_time_that_passed(
    tmp_path: Path, open_state: OpenState
) -> None:
    # The readings' clock starts over with the process; the wall clock does not. A checkpoint stamps
    # the memory a period ahead: the charge may have gone on until the next one.
    wall = [1.8e9]
    store = open_state(tmp_path)
    tracker = BatteryTracker(Battery(), store, port=PORT, wall_clock=lambda: wall[0])
    for stage in readings(0.0, 150.0):
        wall[0] = 1.8e9 + stage.t_s
        tracker.update(stage, at_rest=False)
    assert await store.flush()
    await store.aclose()
    reopened = open_state(tmp_path)
    record = reopened.vehicle(reopened.key(PORT))
    assert record is not None and record.electrolyte is not None
    held = record.electrolyte.held_chg_a
    assert held == pytest.approx(20.0 / PROFILE.parallel, rel=0.02)
    pause = PowerStageReading(t_s=0.0, p_w=0.0, dc_v_v=PACK_V, dc_i_a=0.0)
    assert record.electrolyte.until_unix_s == pytest.approx(1.8e9 + 120.4 + CHECKPOINT_PERIOD_S)
    for after_s, kept in (
        (30.0, 1.0),
        (600.0, math.exp(-(600.0 - CHECKPOINT_PERIOD_S) / record.electrolyte.t_eq_s)),
    ):
        wall[0] = 1.8e9 + 120.4 + after_s  # after the last checkpoint, at 120.4 s of the readings
        again = BatteryTracker(Battery(), open_state(tmp_path), port=PORT, wall_clock=lambda: wall[0])
        again.update(pause, at_rest=True)
        est = again.estimator
        assert est is not None
        assert float(est._state[k.S_ELEC_CHG]) == pytest.approx(held * kept, rel=1e-6)
