"""Background tasks of the daemon: cancel one and wait until it has really finished; wait for an
event with a timeout that keeps a cancellation; run a shutdown to its end even when its caller is
being cancelled."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def wait_set(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until ``event`` is set or ``timeout_s`` has passed; whether it is set.

    ``asyncio.timeout``, not ``asyncio.wait_for``: on Python 3.11 ``wait_for`` returns when the event is
    set in the same loop turn as the caller is cancelled and drops the cancellation, so a task stopped
    that way runs on and whoever cancelled it waits forever (a planner's stop, a CI hang in the bench).
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()
    return event.is_set()


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (if any) and wait for it to end.

    The task's own CancelledError stays inside; a cancellation of the caller while it waits is
    passed on (the caller is being stopped too, and swallowing that would keep it running).
    """
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


async def finish(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end in a task of its own, then pass on a cancellation of the caller.

    A shutdown in the ``finally`` of a cancelled task would otherwise stop at its first wait: the
    task's pending cancellation makes ``cancel`` above re-raise, and ``asyncio.timeout`` of Python
    3.11.2 (Debian bookworm's, which the package runs on) turns its own expiry into that
    cancellation instead of ``TimeoutError``. In a task of its own neither happens. The shutdown's
    steps are bounded by their own timeouts, so a second cancellation waits for them too.
    """
    task = asyncio.ensure_future(coro)
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return task.result()
