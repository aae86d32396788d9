"""The bus's priority lock under cancellation: a waiter cancelled while the holder releases."""

from __future__ import annotations

import asyncio

import pytest

from drivers.transport import _PriorityLock


async def test_a_waiter_cancelled_as_the_bus_is_released_ends_cancelled() -> None:
    # The daemon's shutdown cancels the setpoint writer while it waits for the bus; the poll holding
    # the bus released it before the writer ran. The release dropped the writer's (cancelled) entry,
    # and the writer then raised ValueError (list.remove) in place of its cancellation: the shutdown
    # ended there, before stopping the stage (tests/planner/test_hil_day.py under load).
    lock = _PriorityLock()
    await lock.acquire(1)
    waiter = asyncio.create_task(lock.acquire(0))
    await asyncio.sleep(0)  # queued
    waiter.cancel()
    lock.release()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    # The bus is free and takes the next comer at once.
    await asyncio.wait_for(lock.acquire(1), 1.0)
    lock.release()


async def test_a_waiter_cancelled_while_queued_leaves_the_queue() -> None:
    lock = _PriorityLock()
    await lock.acquire(1)
    first = asyncio.create_task(lock.acquire(0))
    second = asyncio.create_task(lock.acquire(1))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    lock.release()  # handed to the second, not to the cancelled first
    await asyncio.wait_for(second, 1.0)
    lock.release()
    await asyncio.wait_for(lock.acquire(0), 1.0)


async def test_a_waiter_granted_then_cancelled_passes_the_bus_on() -> None:
    lock = _PriorityLock()
    await lock.acquire(1)
    waiter = asyncio.create_task(lock.acquire(0))
    await asyncio.sleep(0)
    lock.release()  # granted: its future holds the result
    waiter.cancel()  # before it ran
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.wait_for(lock.acquire(1), 1.0)  # passed on, not held by the cancelled one
