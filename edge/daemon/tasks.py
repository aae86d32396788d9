"""Background tasks of the daemon: cancel one and wait until it has really finished."""

from __future__ import annotations

import asyncio
from typing import Any


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
