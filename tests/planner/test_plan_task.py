"""The daemon's planner task: it feeds the dispatcher a schedule as the lowest-priority source, plans
again on new inputs, on a SoC that strays from the plan and every period, withdraws its schedule
without an EV or outside schedule mode (saying why), lets its schedule expire when it stops
re-planning, writes the plan where ``v2gctl plan`` reads it, and reads its inputs file without
stalling the event loop. Clocks are injected."""

from __future__ import annotations

import asyncio
import math
import os
import threading
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import msgspec
import numpy as np
import pytest

from drivers.capabilities import MeterReading, PowerStageRatings, PowerStageReading
from edge.daemon.battery import BatteryView
from edge.daemon.dispatch import Dispatch, Dispatcher
from edge.daemon.plan_task import PlanTask
from edge.daemon.planning import PERIOD_S, DepartureTask
from edge.daemon.snapshot import Snapshot
from edge.link.payloads import PlanPayload
from edge.planner.inputs import PlanInputs, Series
from edge.settings import Settings, load_default
from edge.settings.model import EvOwner, Planner, TouRate

T0 = datetime(2026, 6, 1, 18, 0, tzinfo=UTC).timestamp()
NIGHT = [
    TouRate(start=time(0, 0), price_per_kwh=0.10),
    TouRate(start=time(6, 0), price_per_kwh=0.30),
    TouRate(start=time(17, 0), price_per_kwh=0.45),
    TouRate(start=time(21, 0), price_per_kwh=0.30),
]


def _settings(mode: str = "schedule", enabled: bool = True) -> Settings:
    s = load_default()
    return msgspec.structs.replace(
        s,
        operation=msgspec.structs.replace(s.operation, mode=mode),
        owner=EvOwner(min_soc=0.3, departure_soc=0.8, departure_time=time(7, 0), time_zone="UTC"),
        planner=Planner(enabled=enabled, import_tariff=NIGHT, departure_margin_s=1800.0),
    )


class Rig:
    def __init__(self, tmp_path: Path, settings: Settings | None = None) -> None:
        self.settings = settings or _settings()
        self.wall = T0 + 120.0
        self.mono = 1000.0
        self.soc = 0.5
        self.ev_state: str | None = "charging"
        self.dispatcher = Dispatcher(self.settings.operation, self.settings.inverter)
        self.departure = DepartureTask(
            self.settings, self.snapshot, clock=lambda: self.mono, wall_clock=lambda: self.wall
        )
        self.published: list[PlanPayload] = []
        self.task = PlanTask(
            self.settings,
            self.snapshot,
            self.dispatcher,
            self.departure,
            clock=lambda: self.mono,
            wall_clock=lambda: self.wall,
            runtime_dir=tmp_path,
        )
        self.task.on_plan = self._on_plan

    async def _on_plan(self, body: bytes) -> None:
        self.published.append(msgspec.json.decode(body, type=PlanPayload))

    def snapshot(self) -> Snapshot:
        return Snapshot(
            t_s=self.mono,
            t_unix_s=self.wall,
            meter=MeterReading(t_s=self.mono, p_site_import_w=600.0),
            stage=PowerStageReading(t_s=self.mono, p_w=0.0, ev_state=self.ev_state, ev_soc=self.soc),
            ratings=PowerStageRatings(t_s=self.mono, p_max_export_w=7400.0, p_max_charge_w=7400.0),
            dispatch=self.dispatcher.basis(self.wall, self.mono),
            battery=BatteryView(e_per_soc_wh=60_000.0),
        )

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


async def test_the_plan_becomes_the_planner_sources_schedule(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    await rig.task.tick()
    d = rig.dispatcher.current("planner")
    assert d is not None and d.mode == "schedule" and d.schedule is not None
    basis = rig.dispatcher.basis(rig.wall, rig.mono)
    assert basis.source.startswith("planner dispatch plan-")
    plan = rig.task.plan
    assert plan is not None
    # Charges in the night tariff for the 07:00 departure, holding 80 % from 06:30.
    night = [k for k in range(plan.problem.n) if plan.p_w[k] < -1.0]
    assert night and all(24 <= k < 50 for k in night)  # 00:00 … 06:30 UTC from 18:00
    assert plan.outcome.soc[50] == pytest.approx(0.8, abs=1e-6)
    # The dispatch expires after two periods: a stalled planner stops steering.
    assert d.expiry == datetime.fromtimestamp(rig.wall + 1800.0, UTC)
    # Published and written for v2gctl plan.
    assert rig.published[-1].status == "planned"
    assert rig.published[-1].envelope is not None
    on_disk = msgspec.json.decode((tmp_path / "plan.json").read_bytes(), type=PlanPayload)
    assert on_disk.p_w == rig.published[-1].p_w


async def test_a_local_or_aggregator_dispatch_wins_over_the_plan(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    await rig.task.tick()
    now = datetime.fromtimestamp(rig.wall, UTC)
    agg = Dispatch(id="a-1", start=now, expiry=now + timedelta(hours=1), p_w=-2000.0, mode="v1g")
    rig.dispatcher.offer(agg, "aggregator", rig.wall, rig.mono)
    assert rig.dispatcher.basis(rig.wall, rig.mono).source == "aggregator dispatch a-1"
    local = Dispatch(id="l-1", start=now, expiry=now + timedelta(hours=1), p_w=0.0, mode="v2g")
    rig.dispatcher.offer(local, "local", rig.wall, rig.mono)
    assert rig.dispatcher.basis(rig.wall, rig.mono).source == "local dispatch l-1"
    rig.dispatcher.withdraw("local")
    rig.dispatcher.withdraw("aggregator")
    assert rig.dispatcher.basis(rig.wall, rig.mono).source.startswith("planner")


async def test_new_inputs_are_planned_on_at_once(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    await rig.task.tick()
    # A price series makes 20:00-21:00 UTC free: the plan moves its charge there.
    series = Series(start=datetime(2026, 6, 1, 20, 0, tzinfo=UTC), step_s=3600, values=[0.0])
    assert rig.task.take_inputs(PlanInputs(import_price=series)) is None
    rig.advance(1.0)
    await rig.task.tick()
    plan = rig.task.plan
    assert plan is not None
    assert plan.problem.import_price[8] == 0.0
    assert list(plan.p_w[8:12]) == pytest.approx([-7400.0] * 4)


async def test_it_plans_again_when_the_soc_strays_and_every_period(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    await rig.task.tick()
    first = rig.dispatcher.current("planner")
    rig.advance(60.0)
    await rig.task.tick()
    assert rig.dispatcher.current("planner") is first  # nothing new: no plan
    rig.soc = 0.45  # 5 % below what the plan expects now
    rig.advance(60.0)
    await rig.task.tick()
    second = rig.dispatcher.current("planner")
    assert second is not first
    assert rig.task.plan is not None and rig.task.plan.problem.soc0 == 0.45
    rig.advance(900.0)
    await rig.task.tick()
    assert rig.dispatcher.current("planner") is not second


async def test_without_an_ev_or_outside_schedule_mode_there_is_no_plan(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    await rig.task.tick()
    rig.ev_state = "unplugged"
    rig.task.request()
    await rig.task.tick()
    assert rig.dispatcher.current("planner") is None
    assert rig.published[-1].status == "none"
    assert rig.published[-1].reasons == ["no EV plugged in"]
    rig.ev_state = "charging"
    rig.task.configure(_settings(mode="v2h"))
    await rig.task.tick()
    assert rig.dispatcher.current("planner") is None
    assert "operation.mode = schedule" in rig.published[-1].reasons[0]


async def test_an_unknown_soc_is_no_plan(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.soc = math.nan
    await rig.task.tick()
    assert rig.task.plan is None
    assert rig.published[-1].reasons == ["the EV's SoC is not known"]


async def test_inputs_are_refused_with_the_planner_off(tmp_path: Path) -> None:
    rig = Rig(tmp_path, _settings(enabled=False))
    assert rig.task.take_inputs(PlanInputs()) == "planner.enabled = false"


async def test_a_stalled_planner_stops_steering_when_its_schedule_expires(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    await rig.task.tick()
    rig.advance(1801.0)  # no tick: the task is stuck
    basis = rig.dispatcher.basis(rig.wall, rig.mono)
    assert basis.source.startswith("fallback charge")


async def test_the_running_task_plans_and_stops(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.task.start()
    try:
        for _ in range(200):
            if rig.task.plan is not None:
                break
            await asyncio.sleep(0.01)
        assert rig.task.plan is not None
    finally:
        await rig.task.stop()


async def test_a_soc_on_plan_mid_step_is_no_reason_to_plan_again(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.soc = 0.1  # below the reserve: the plan charges at full power from the first step
    await rig.task.tick()
    plan = rig.task.plan
    assert plan is not None and plan.p_w[0] == pytest.approx(-7400.0)
    first = rig.dispatcher.current("planner")
    rig.advance(plan.problem.t0_unix_s + 450.0 - rig.wall)  # halfway through the step
    on_plan = float(0.5 * (plan.outcome.soc[0] + plan.outcome.soc[1]))
    assert on_plan - plan.outcome.soc[0] > 0.01  # the step moves the SoC enough to matter
    rig.soc = on_plan
    await rig.task.tick()
    assert rig.dispatcher.current("planner") is first
    rig.soc = on_plan - 0.035
    await rig.task.tick()
    assert rig.dispatcher.current("planner") is not first


async def test_the_inputs_file_is_read_off_the_event_loop(tmp_path: Path) -> None:
    # A FIFO as the inputs file: reading it blocks until a writer comes, here a thread 1 s later, as a
    # stalled SD card or NFS mount would. The loop must keep running meanwhile.
    fifo = tmp_path / "plan-inputs.fifo"
    os.mkfifo(fifo)
    s = _settings()
    rig = Rig(
        tmp_path,
        msgspec.structs.replace(s, planner=msgspec.structs.replace(s.planner, inputs_file=str(fifo))),
    )
    series = {"start": "2026-06-01T20:00:00Z", "step_s": 3600, "values": [0.0]}
    body = msgspec.json.encode({"import_price": series})

    def feed() -> None:
        with fifo.open("wb") as f:
            f.write(body)

    writer = threading.Timer(1.0, feed)
    writer.start()
    loop = asyncio.get_running_loop()
    tick = asyncio.create_task(rig.task.tick())
    beats = [loop.time()]
    try:
        while not tick.done():
            await asyncio.sleep(0.01)
            beats.append(loop.time())
        await tick
    finally:
        writer.join()
    assert max(np.diff(beats)) < 0.5, "the loop stalled while the inputs file was read"
    assert beats[-1] - beats[0] >= 0.9  # the read did wait for the writer
    plan = rig.task.plan
    assert plan is not None and plan.problem.import_price[8] == 0.0  # planned on what was read


async def test_the_departure_plan_waits_for_the_first_soc_not_for_a_period(tmp_path: Path) -> None:
    """Right after a start the snapshot (or its SoC) is not there yet and the plan holds discharge;
    the task plans again as soon as it is, then settles to its period (real time, with margins)."""
    rig = Rig(tmp_path)
    calls: list[float] = []
    ready = False

    def latest() -> Snapshot | None:
        calls.append(asyncio.get_running_loop().time())
        return rig.snapshot() if ready else None

    task = DepartureTask(rig.settings, latest, clock=lambda: rig.mono, wall_clock=lambda: rig.wall)
    task.start()
    try:
        await asyncio.sleep(0.6)
        assert task.limit is None and task.p_max_w(rig.mono) == 0.0 and task.waiting
        ready = True
        t_ready = asyncio.get_running_loop().time()
        while task.limit is None and asyncio.get_running_loop().time() - t_ready < PERIOD_S / 2:
            await asyncio.sleep(0.02)
        assert task.limit is not None and not task.waiting, "no plan within half a period of the first SoC"
        assert task.limit.state in {"free", "no_discharge", "charging_for_departure"}
        settled = len(calls)
        await asyncio.sleep(1.0)
        assert len(calls) - settled <= 1  # back to one plan a period
    finally:
        await task.stop()
