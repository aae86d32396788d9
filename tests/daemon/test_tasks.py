"""Cancelling a background task: its own cancellation stays inside, the caller's passes on; waiting for an
event keeps a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from edge.daemon.tasks import cancel, wait_set


async def _forever() -> None:
    await asyncio.Event().wait()


async def _slow_to_end() -> None:
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        await asyncio.sleep(0.2)  # cleans up before it ends
        raise


async def test_cancel_waits_for_the_task_and_swallows_its_cancellation() -> None:
    task = asyncio.create_task(_slow_to_end())
    await asyncio.sleep(0)
    await cancel(task)
    assert task.cancelled()
    await cancel(None)


async def test_the_callers_own_cancellation_is_not_swallowed() -> None:
    inner = asyncio.create_task(_slow_to_end())
    await asyncio.sleep(0)
    reached_after = False

    async def stopper() -> None:
        nonlocal reached_after
        await cancel(inner)
        reached_after = True

    outer = asyncio.create_task(stopper())
    await asyncio.sleep(0.05)  # the stopper is waiting for the inner task to clean up
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert not reached_after, "the cancelled caller went on as if nothing happened"
    await cancel(inner)


async def test_wait_set_says_whether_the_event_came() -> None:
    event = asyncio.Event()
    assert await wait_set(event, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_set(event, 5.0) is True


async def test_a_wait_cancelled_as_its_event_is_set_is_cancelled() -> None:
    # asyncio.wait_for (3.11) returned here and dropped the cancellation: a planner stopped this way
    # ran on, and its stop() waited for it forever.
    event = asyncio.Event()
    task = asyncio.create_task(wait_set(event, 5.0))
    for _ in range(3):
        await asyncio.sleep(0)
    event.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
