"""A ring of the most recent (Snapshot, Command) pairs, dumped on demand and replayable.

A field problem ("why did it stop at 18:02?") is answered by dumping the ring (SIGUSR1, or at a
crash-free stop when asked) and replaying it on a desk through the same controllers: the dump holds
the settings in force and every input of every cycle. Replay starts the kernels afresh at the dump's
first snapshot, so filters and timers that were running before it take a few seconds to agree with
the recorded commands; a dump that starts at the daemon's start replays exactly.

The dump is msgpack (NaN survives, unlike in JSON), written by the caller off the loop's thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from pathlib import Path

import msgspec

from edge.daemon.controllers import Controllers
from edge.daemon.snapshot import Command, Snapshot
from edge.fileio import write_atomic
from edge.settings import Settings

FORMAT = "v2g-edge cycle dump 1"


class Pair(msgspec.Struct, array_like=True):
    snapshot: Snapshot
    command: Command


class Dump(msgspec.Struct, kw_only=True):
    format: str = FORMAT
    settings: Settings
    pairs: list[Pair]


class Recorder:
    """The last ``capacity`` cycles; appending is O(1) and allocation-light (references only)."""

    def __init__(self, capacity: int) -> None:
        self._ring: deque[tuple[Snapshot, Command]] = deque(maxlen=capacity)

    def append(self, snap: Snapshot, cmd: Command) -> None:
        self._ring.append((snap, cmd))

    def __len__(self) -> int:
        return len(self._ring)

    def freeze(self, settings: Settings) -> Dump:
        """A copy of the ring as it is now (cheap; encode and write it elsewhere)."""
        return Dump(settings=settings, pairs=[Pair(s, c) for s, c in self._ring])


def write_dump(path: Path, dump: Dump) -> None:
    """Write ``dump`` atomically (blocking: call it off the loop's thread)."""
    write_atomic(path, msgspec.msgpack.encode(dump), durable=False)


def read_dump(path: Path) -> Dump:
    dump = msgspec.msgpack.decode(path.read_bytes(), type=Dump)
    if dump.format != FORMAT:
        raise ValueError(f"{path}: format {dump.format!r}, expected {FORMAT!r}")
    return dump


def replay(settings: Settings, snapshots: Iterable[Snapshot]) -> list[Command]:
    """The commands fresh controllers make of ``snapshots`` with ``settings``."""
    controllers = Controllers(settings)
    return [controllers.step(s) for s in snapshots]
