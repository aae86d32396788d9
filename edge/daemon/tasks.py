"""Background tasks of the daemon: cancel one and wait until it has really finished; wait for an
event with a timeout that keeps a cancellation; run a shutdown to its end even when its caller is
being cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)
# How long a shutdown run by finish() may go on after its caller is cancelled once more.
FINISH_GRACE_S = 10.0


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


async def cancel(task: asyncio.Task[Any] | None, *, again_after_s: float | None = None) -> None:
    """Cancel ``task`` (if any) and wait for it to end.

    The task's own CancelledError stays inside; a cancellation of the caller while it waits is
    passed on (the caller is being stopped too, and swallowing that would keep it running).
    ``again_after_s``: cancel again at that interval until it has ended, for a task whose awaits may
    lose a cancellation (a library's ``asyncio.wait_for`` on Python 3.11) and whose clean-up is
    quicker than that; the daemon waits for it before stopping the power stage.
    """
    if task is None:
        return
    while again_after_s is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=again_after_s)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


async def finish(coro: Coroutine[Any, Any, T], name: str, grace_s: float = FINISH_GRACE_S) -> T:
    """Run ``coro`` to its end in a task of its own, then pass on a cancellation of the caller.

    A shutdown in the ``finally`` of a cancelled task would otherwise stop at its first wait: the
    task's pending cancellation makes ``cancel`` above re-raise, and ``asyncio.timeout`` of Python
    3.11.2 (Debian bookworm's, which the package runs on) turns its own expiry into that
    cancellation instead of ``TimeoutError``. In a task of its own neither happens. A further
    cancellation of the caller waits ``grace_s`` more for it (its steps wait on a disk or a broker
    that may hang), then cancels it: whoever cancels twice is not kept waiting for ever. It protects
    against cancelling the caller only: a cancellation sent to every task reaches this one too.
    """
    loop = asyncio.get_running_loop()
    task = loop.create_task(coro, name=name)
    deadline: float | None = None
    while not task.done():
        timeout = None if deadline is None else max(deadline - loop.time(), 0.0)
        try:
            await asyncio.wait({task}, timeout=timeout)
        except asyncio.CancelledError:
            if deadline is None:
                deadline = loop.time() + grace_s
            continue
        if deadline is not None and not task.done():
            log.error("%s still running %.0f s after a second cancellation: cancelled", name, grace_s)
            task.cancel()
            await asyncio.wait({task})
    if deadline is None:
        return task.result()
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("%s failed while its caller was being cancelled", name, exc_info=exc)
    raise asyncio.CancelledError
