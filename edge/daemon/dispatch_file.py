"""The local dispatch source: a JSON file (``operation.dispatch_file``, default ``dispatch.json`` in the
state directory) that a site without an aggregator, a technician (``v2gctl dispatch``) or the bench
writes; the daemon follows it as the ``local`` dispatch.

The file is checked once a second by a background task that reads it in a thread only when its
modification time or size changed, so the cycle never touches it. A file that does not decode or
validate is refused with the reason in the log (once per distinct reason) and as an event; the local
dispatch in force before stays until its own expiry. A removed file withdraws the local dispatch.
Living in the state directory, a dispatch survives a daemon restart, as a schedule given in advance
must.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import msgspec

from edge.daemon.dispatch import Dispatch, Dispatcher, DispatchError
from edge.daemon.tasks import cancel
from edge.fileio import write_atomic
from edge.state import StateStore

log = logging.getLogger(__name__)

POLL_S = 1.0
MAX_BYTES = 1 << 20


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


def _read(path: Path) -> bytes:
    with open(path, "rb") as f:
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise DispatchError("payload", f"{path} is larger than {MAX_BYTES} bytes")
    return data


class DispatchFile:
    """Watches one file and offers its dispatch to the dispatcher as the local source."""

    def __init__(
        self,
        path: Path,
        dispatcher: Dispatcher,
        *,
        wall_clock: Callable[[], float],
        clock: Callable[[], float],
        store: StateStore | None = None,
    ) -> None:
        self.path = path
        self.dispatcher = dispatcher
        self.wall_clock = wall_clock
        self.clock = clock
        self.store = store
        self._seen: tuple[int, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="dispatch-file")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception as exc:  # a bug here must not end the watching: a clear must still be seen
                self._refused(f"unexpected {exc!r}")
            await asyncio.sleep(POLL_S)

    async def check(self) -> Dispatch | None:
        """Read the file if it changed and offer it; returns the dispatch taken (None otherwise)."""
        seen = await asyncio.to_thread(_stat, self.path)
        if seen == self._seen:
            return None
        self._seen = seen
        if seen is None:
            if self.dispatcher.current("local") is not None:
                log.info("local dispatch withdrawn: %s was removed", self.path)
                self.dispatcher.withdraw("local")
            return None
        try:
            payload = await asyncio.to_thread(_read, self.path)
            d = self.dispatcher.take(payload, "local", self.wall_clock(), self.clock())
        except (DispatchError, OSError) as exc:
            self._refused(str(exc))
            return None
        self.last_error = None
        log.info("local dispatch %s taken from %s (until %s)", d.id, self.path, d.expiry.isoformat())
        if self.store is not None:
            self.store.event("dispatch", {"source": "local", "id": d.id}, t_unix_s=self.wall_clock())
        return d

    def _refused(self, why: str) -> None:
        message = f"local dispatch in {self.path} refused: {why}"
        if message != self.last_error:
            log.error("%s", message)
            if self.store is not None:
                self.store.event(
                    "dispatch_refused", {"source": "local", "why": why}, t_unix_s=self.wall_clock()
                )
        self.last_error = message


def write(path: Path, d: Dispatch) -> None:
    """Write ``d`` where a daemon watches: atomically and to the disk (it must survive a power cut)."""
    write_atomic(path, msgspec.json.format(msgspec.json.encode(d)))
