"""The setpoint writer reconciles the stage's operation with each command: against the plant's power
stage over real Modbus TCP, with the writer's clock injected so that its re-send timing is replayed,
not waited for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import drivers
from drivers.capabilities import PowerStage
from edge.daemon.snapshot import Command
from edge.daemon.writer import RESYNC_MAX_S, RESYNC_MIN_S, SetpointWriter
from hil.plant import Plant
from tests.daemon.bench_support import running_plant, settings_for

RUN = Command(1000.0, 0.0, True, "normal")
STOP = Command(0.0, 0.0, False, "tripped", reasons=["hf"])
HOLD = Command(0.0, 0.0, None, "no_power_stage", reasons=["power stage data stale"])


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def plant() -> AsyncIterator[Plant]:
    async with running_plant() as p:
        yield p


@pytest.fixture
async def stage(plant: Plant) -> AsyncIterator[PowerStage]:
    settings = settings_for(plant)
    layer = drivers.build(settings.buses, {"inverter": settings.devices["inverter"]})
    await layer.start(poll=False)
    assert layer.power_stage is not None
    try:
        yield layer.power_stage
    finally:
        await layer.stop()


async def _send(writer: SetpointWriter, cmd: Command, stage: PowerStage) -> None:
    """Submit ``cmd`` with a fresh reading of the stage and wait until the writer has applied it."""
    reading = await stage.read()
    done = writer.acknowledged + writer.errors
    writer.submit(cmd, reading)
    async with asyncio.timeout(5):
        while writer.acknowledged + writer.errors == done:
            await asyncio.sleep(0.01)


async def _settled(plant: Plant) -> None:
    await asyncio.sleep(0.15)  # a few plant steps: the stage's state follows its registers


async def test_a_stage_left_stopped_is_started_by_the_first_command(plant: Plant, stage: PowerStage) -> None:
    # What a previous daemon's clean stop leaves behind: the stage stopped by command.
    await stage.stop()
    await _settled(plant)
    assert plant.stage.state == "off"
    writer = SetpointWriter(stage, Clock())
    writer.start()
    try:
        assert writer.operation is None  # a new writer does not know what the stage was told
        await _send(writer, RUN, stage)
        await _settled(plant)
        assert writer.operation is True
        assert plant.stage.op_start and plant.stage.state != "off"
        assert plant.stage.wset_w == pytest.approx(1000.0, abs=5.0)
    finally:
        await writer.close()


async def test_a_stage_that_stops_behind_our_back_is_started_again_with_back_off(
    plant: Plant, stage: PowerStage
) -> None:
    clock = Clock()
    writer = SetpointWriter(stage, clock)
    writer.start()
    try:
        await _send(writer, RUN, stage)
        await _settled(plant)
        starts = 0

        async def stopped_behind_our_back() -> None:
            plant.stage.op_start = False  # e.g. a local HMI or the EVSE stopped it
            await _settled(plant)
            assert (await stage.read()).stopped is True

        await stopped_behind_our_back()
        await _send(writer, RUN, stage)
        assert not plant.stage.op_start, "not re-sent before the first back-off"
        for wait_s in (RESYNC_MIN_S, 2 * RESYNC_MIN_S, 4 * RESYNC_MIN_S):
            clock.t += wait_s - 0.5
            await _send(writer, RUN, stage)
            assert not plant.stage.op_start, f"re-sent before {wait_s} s"
            clock.t += 0.5
            await _send(writer, RUN, stage)
            assert plant.stage.op_start, f"start re-sent after {wait_s} s"
            starts += 1
            await stopped_behind_our_back()
        assert starts == 3
        assert writer._resync_s <= RESYNC_MAX_S
        # Once the stage agrees again the back-off starts over.
        plant.stage.op_start = True
        await _settled(plant)
        await _send(writer, RUN, stage)
        assert writer._resync_s == RESYNC_MIN_S
    finally:
        await writer.close()


async def test_a_new_command_starts_its_own_back_off_short(plant: Plant, stage: PowerStage) -> None:
    """After a long disagreement the start is re-sent only every 60 s; a trip's stop must not inherit
    that: its own re-send comes after the shortest back-off."""
    clock = Clock()
    writer = SetpointWriter(stage, clock)
    writer.start()
    try:
        await _send(writer, RUN, stage)
        for _ in range(6):  # the stage keeps stopping: the back-off grows to its longest
            plant.stage.op_start = False
            await _settled(plant)
            clock.t += RESYNC_MAX_S
            await _send(writer, RUN, stage)
        assert writer._resync_s == RESYNC_MAX_S
        await _send(writer, STOP, stage)  # a trip
        await _settled(plant)
        assert plant.stage.state == "off"
        plant.stage.op_start = True  # started behind our back while it must stay stopped
        await _settled(plant)
        clock.t += RESYNC_MIN_S
        await _send(writer, STOP, stage)
        await _settled(plant)
        assert plant.stage.state == "off", "the stop was not re-sent after the shortest back-off"
    finally:
        await writer.close()


async def test_stop_and_hold_commands(plant: Plant, stage: PowerStage) -> None:
    writer = SetpointWriter(stage, Clock())
    writer.start()
    try:
        await _send(writer, RUN, stage)
        await _send(writer, STOP, stage)
        await _settled(plant)
        assert writer.operation is False and plant.stage.state == "off"
        # A hold (no data to decide on) leaves the operation alone and writes zero.
        await _send(writer, HOLD, stage)
        await _settled(plant)
        assert writer.operation is False and plant.stage.state == "off"
        assert plant.stage.wset_w == 0.0
    finally:
        await writer.close()


async def test_a_failed_write_forgets_what_the_stage_was_told(plant: Plant, stage: PowerStage) -> None:
    writer = SetpointWriter(stage, Clock())
    writer.start()
    try:
        await _send(writer, RUN, stage)
        assert writer.operation is True
        reading = stage.latest()
        plant.set_link("power_stage", False)
        errors = writer.errors
        writer.submit(RUN, reading)
        async with asyncio.timeout(5):
            while writer.errors == errors:
                await asyncio.sleep(0.01)
        assert writer.operation is None
        # The stage restarted stopped meanwhile; once it answers, the next command starts it.
        plant.stage.op_start = False
        plant.set_link("power_stage", True)
        await asyncio.sleep(2.5)  # the driver's back-off after the failure
        for _ in range(20):
            await _send(writer, RUN, stage)
            if writer.operation is True:
                break
            await asyncio.sleep(0.5)
        await _settled(plant)
        assert writer.operation is True and plant.stage.op_start
    finally:
        await writer.close()
