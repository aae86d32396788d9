"""The daemon's battery tracker keeps its learning in the state store: a checkpoint every minute of
reading time, the session counted once, and a restart without a clean stop resumes from the last
checkpoint. Readings carry their own times (no clock, no sleeps)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest

from drivers.capabilities import PowerStageReading
from edge.daemon.battery import CHECKPOINT_PERIOD_S, STAMP_MARGIN_S, BatteryTracker
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
    # The session's first reading: a charge from it is the electrolyte's memory rising from nothing
    # (test_a_charge_that_starts_after_a_checkpoint_is_written_at_once).
    assert saved_at.pop(0) == 5000.0
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


class Clocks:
    """The wall clock and the boot's monotonic clock, moved by hand; one boot unless told."""

    def __init__(self) -> None:
        self.unix_s = 1.8e9
        self.mono_s = 0.0
        self.boot_id = "boot-a"

    def tracker(self, store: StateStore) -> BatteryTracker:
        return BatteryTracker(
            Battery(),
            store,
            port=PORT,
            revert_s=10.0,
            wall_clock=lambda: self.unix_s,
            mono_clock=lambda: self.mono_s,
            boot_id=self.boot_id,
        )

    def at(self, reading_s: float) -> None:
        self.unix_s, self.mono_s = 1.8e9 + reading_s, reading_s

    def feed(self, tracker: BatteryTracker, stages: Iterable[PowerStageReading]) -> None:
        for stage in stages:
            self.at(stage.t_s)
            tracker.update(stage, at_rest=stage.dc_i_a == 0.0)

    def restarted_held(self, store: StateStore) -> float:
        """A daemon started now: the charge current its electrolyte's memory holds at its first reading."""
        tracker = self.tracker(store)
        tracker.update(pause(self.mono_s), at_rest=True)
        assert tracker.estimator is not None
        return float(tracker.estimator._state[k.S_ELEC_CHG])


def pause(t_s: float) -> PowerStageReading:
    return PowerStageReading(t_s=t_s, p_w=0.0, dc_v_v=PACK_V, dc_i_a=0.0)


async def test_a_killed_daemon_restarted_keeps_the_electrolytes_memory_for_the_time_that_passed(
    tmp_path: Path, open_state: OpenState
) -> None:
    # A checkpoint stamps the memory ahead: the charge may go on until the next one and the power
    # stage's own reversion after it.
    clocks = Clocks()
    store = open_state(tmp_path)
    clocks.feed(clocks.tracker(store), readings(0.0, 150.0))
    assert await store.flush()
    await store.aclose()
    reopened = open_state(tmp_path)
    record = reopened.vehicle(reopened.key(PORT))
    assert record is not None and record.electrolyte is not None
    held = record.electrolyte.held_chg_a
    assert held == pytest.approx(20.0 / PROFILE.parallel, rel=0.02)
    ahead = CHECKPOINT_PERIOD_S + STAMP_MARGIN_S + 10.0
    assert record.electrolyte.until.mono_s == pytest.approx(120.4 + ahead)
    for after_s, kept in ((30.0, 1.0), (600.0, math.exp(-(600.0 - ahead) / record.electrolyte.t_eq_s))):
        clocks.at(120.4 + after_s)  # after the last checkpoint, at 120.4 s of the readings
        assert clocks.restarted_held(open_state(tmp_path)) == pytest.approx(held * kept, rel=1e-6)
    # The wall clock stepped a year forward within the boot: the boot's clock tells the time.
    clocks.at(120.4 + 30.0)
    clocks.unix_s += 3.2e7
    assert clocks.restarted_held(open_state(tmp_path)) == pytest.approx(held)


async def test_a_charge_that_starts_after_a_checkpoint_is_written_at_once(
    tmp_path: Path, open_state: OpenState
) -> None:
    # Review: the kill came 30 s into a charge that began after the minute's checkpoint, and the record
    # said nothing of it.
    clocks = Clocks()
    store = open_state(tmp_path)
    tracker = clocks.tracker(store)
    clocks.feed(tracker, (pause(float(t)) for t in np.arange(0.0, 65.0, 0.7)))
    clocks.feed(tracker, readings(65.1, 30.0))
    assert await store.flush()
    await store.aclose()
    clocks.at(97.0)
    assert clocks.restarted_held(open_state(tmp_path)) == pytest.approx(20.0 / PROFILE.parallel, rel=0.02)


async def test_a_ramp_is_written_as_it_doubles(tmp_path: Path, open_state: OpenState) -> None:
    # Review: readings every 0.2 s and a charger ramping 40 A/s; the first rise was written at the
    # first small reading and the 10 s floor held back the rest: a kill 5 s in kept 6 % of the charge.
    clocks = Clocks()
    store = open_state(tmp_path)
    tracker = clocks.tracker(store)
    ramp = [
        PowerStageReading(t_s=t, p_w=0.0, dc_v_v=PACK_V, dc_i_a=-min(40.0 * t, 130.0))
        for t in np.arange(0.2, 5.0, 0.2)
    ]
    clocks.feed(tracker, ramp)
    assert await store.flush()
    await store.aclose()
    clocks.at(7.0)
    assert clocks.restarted_held(open_state(tmp_path)) >= 0.5 * 130.0 / PROFILE.parallel


async def test_a_charge_before_the_sessions_first_accepted_sample_is_held(
    tmp_path: Path, open_state: OpenState
) -> None:
    # Review: a daemon restarted while the DC readings were missing forgot what the charger drove
    # until the first accepted one.
    clocks = Clocks()
    tracker = clocks.tracker(open_state(tmp_path))
    clocks.feed(tracker, (PowerStageReading(t_s=float(t), p_w=-20000.0) for t in range(10)))
    assert tracker.estimator is None
    clocks.feed(tracker, [pause(10.0)])
    assert tracker.estimator is not None
    told = 20000.0 / min(Battery().charge_efficiency, Battery().discharge_efficiency)
    assert tracker.estimator.held_now()[1] >= 0.9 * told / PACK_V / PROFILE.parallel


async def test_a_clean_end_and_a_blind_spell_stamp_what_they_know(
    tmp_path: Path, open_state: OpenState
) -> None:
    clocks = Clocks()
    store = open_state(tmp_path)
    key = store.key(PORT)
    tracker = clocks.tracker(store)
    clocks.feed(tracker, readings(0.0, 30.0))
    # DC readings missing while the charger runs harder: the current its AC power tells (over the
    # last pack voltage, the charger's losses counted on the large side), written at once.
    clocks.at(40.0)
    tracker.update(PowerStageReading(t_s=40.0, p_w=-20000.0), at_rest=False)
    record = store.vehicle(key)
    assert record is not None and record.electrolyte is not None
    told = (
        20000.0 / min(Battery().charge_efficiency, Battery().discharge_efficiency) / PACK_V / PROFILE.parallel
    )
    assert record.electrolyte.held_chg_a == pytest.approx(told, rel=0.01)
    # A clean end (the EV gone, or the daemon stopping the stage) stamps its own time and the
    # stage's reversion, should the stop fail.
    clocks.at(50.0)
    tracker.update(unplugged(50.0), at_rest=True)
    record = store.vehicle(key)
    assert record is not None and record.electrolyte is not None
    assert record.electrolyte.until.mono_s == pytest.approx(60.0)
    assert record.electrolyte.held_chg_a == pytest.approx(told, rel=0.01)
