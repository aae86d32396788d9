"""The state store's writer thread: the one place that opens and writes ``state.db``.

The event loop only queues operations (``put``) and adds energy deltas under a lock (``add_energy``).
The thread folds whatever is queued when it wakes into one batch (the latest record per vehicle and
open session per port, every event and session, the summed energy) and commits it in one
transaction. A finished session and the removal of its open session are one operation, so that
they are committed together: a kill -9 between them cannot record the session twice. Energy alone wakes
nothing: it rides with the next transaction, or is committed ``ENERGY_PERIOD_S`` after the thread
last woke. A failed transaction (full disk, read-only file system, ``state.db`` replaced or removed
under us) is rolled back, logged once, counted, and its batch kept for the next attempt (events and
sessions up to ``MAX_UNSAVED_ROWS``; older ones are dropped and counted); the thread goes on.

Bytes written are the thread's own ``wchar`` from ``/proc/thread-self/io`` (``edge.state.meter``):
what its write calls handed the kernel for the database, its log and the checkpoints into the
database file (plus any log line the thread writes, which happens on errors only). Beside it,
``write_bytes`` of the same file: the page-cache pages the thread dirtied (4 KiB each, the mapped
``-shm`` index included), which is what the kernel writes back to the card when commits are further
apart than its writeback delay. Where that file cannot be read (not Linux), both fall back to the
size of the payloads committed, a lower bound that misses SQLite's page granularity, and
``bytes_measured`` says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge.state import opening
from edge.state.meter import WriteMeter
from edge.state.records import StoreStats
from edge.state.vehicles import StoredVehicle

log = logging.getLogger(__name__)

ENERGY_PERIOD_S = 60.0
MAX_UNSAVED_ROWS = 10_000


@dataclass(frozen=True)
class PutVehicle:
    key: str
    stored: StoredVehicle
    t_unix_s: float


@dataclass(frozen=True)
class AddEvent:
    t_unix_s: float
    kind: str
    detail_json: str


@dataclass(frozen=True)
class AddSession:
    # vehicle_key, start, end, e_charge_ac, e_discharge_ac, e_charge_dc, e_discharge_dc, soc_start,
    # soc_end, reasons JSON: the columns of the sessions table in order.
    row: tuple[str | float | None, ...]
    closes: str | None = None  # the port whose open session this record ends


@dataclass(frozen=True)
class PutOpenSession:
    port: str
    session_json: str
    t_unix_s: float


@dataclass(frozen=True)
class Flush:
    """Calls ``done(True)`` once everything queued before it is committed, ``done(False)`` if not."""

    done: Callable[[bool], None]
    stop: bool = False  # then close the database and end the thread


Op = PutVehicle | AddEvent | AddSession | PutOpenSession | Flush


@dataclass
class _Batch:
    vehicles: dict[str, PutVehicle] = field(default_factory=dict)
    events: list[AddEvent] = field(default_factory=list)
    sessions: list[AddSession] = field(default_factory=list)
    open_sessions: dict[str, PutOpenSession | None] = field(default_factory=dict)  # None: delete
    energy: dict[str, float] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.vehicles or self.events or self.sessions or self.open_sessions or self.energy)

    def add(self, op: PutVehicle | AddEvent | AddSession | PutOpenSession) -> None:
        if isinstance(op, PutVehicle):
            self.vehicles[op.key] = op
        elif isinstance(op, AddEvent):
            self.events.append(op)
        elif isinstance(op, PutOpenSession):
            self.open_sessions[op.port] = op
        else:
            self.sessions.append(op)
            if op.closes is not None:
                self.open_sessions[op.closes] = None

    def add_energy(self, deltas: dict[str, float]) -> None:
        for name, wh in deltas.items():
            self.energy[name] = self.energy.get(name, 0.0) + wh

    def trim(self) -> int:
        """Drop the oldest rows beyond ``MAX_UNSAVED_ROWS``; returns how many."""
        dropped = 0
        while len(self.events) + len(self.sessions) > MAX_UNSAVED_ROWS:
            (self.events if self.events else self.sessions).pop(0)
            dropped += 1
        return dropped

    def payload_bytes(self) -> int:
        size = sum(len(v.key) + len(v.stored.record_json) + 8 for v in self.vehicles.values())
        size += sum(len(e.kind) + len(e.detail_json) + 8 for e in self.events)
        size += sum(len(str(s.row)) for s in self.sessions)
        size += sum(
            len(port) + (len(o.session_json) if o else 0) + 8 for port, o in self.open_sessions.items()
        )
        return size + sum(len(name) + 8 for name in self.energy)


class Writer:
    """The thread and what the event loop hands it; see the module docstring."""

    def __init__(self, state_dir: Path, clock: Callable[[], float]) -> None:
        self.state_dir = state_dir
        self._queue: queue.SimpleQueue[Op] = queue.SimpleQueue()
        self._energy_lock = threading.Lock()
        self._energy: dict[str, float] = {}
        self._opened = threading.Event()
        self._result: opening.Opened | str = "not opened"
        self._unsaved = _Batch()
        self._conn: sqlite3.Connection | None = None
        self._identity = (0, 0)
        self._points_written: dict[str, str] = {}  # key -> capacity points JSON on disk
        self._failing = False
        self._meter = WriteMeter(clock)
        self._stats_lock = threading.Lock()
        self._transactions = 0
        self._errors = 0
        self._dropped = 0
        self._last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="state-writer", daemon=True)

    def start(self) -> opening.Opened | str:
        """Start the thread and wait for it to open the database: what it opened, or why it could not."""
        self._thread.start()
        self._opened.wait()
        if isinstance(self._result, str):
            self._thread.join()
        return self._result

    def put(self, op: Op) -> None:
        self._queue.put(op)

    def add_energy(self, deltas: dict[str, float]) -> None:
        with self._energy_lock:
            for name, wh in deltas.items():
                self._energy[name] = self._energy.get(name, 0.0) + wh

    def join(self) -> None:
        self._thread.join()

    def stats(self) -> StoreStats:
        rates = self._meter.rates()
        with self._stats_lock:
            return StoreStats(
                bytes_written=rates.bytes_written,
                bytes_per_hour=rates.bytes_per_hour,
                bytes_dirtied=rates.bytes_dirtied,
                dirtied_per_hour=rates.dirtied_per_hour,
                bytes_measured=rates.measured,
                transactions=self._transactions,
                write_errors=self._errors,
                dropped=self._dropped,
                last_error=self._last_error,
            )

    # -- on the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        self._meter.begin()
        try:
            opened = opening.open_database(self.state_dir)
        except opening.UnusableError as exc:
            self._result = str(exc)
        except Exception as exc:  # a bug here must not leave open() waiting forever
            log.exception("state store: opening %s failed", self.state_dir)
            self._result = f"opening {self.state_dir} failed: {exc!r}"
        else:
            self._conn = opened.conn
            self._identity = opened.identity
            self._points_written = {key: v.points_json for key, v in opened.vehicles.items()}
            self._result = opened
            self._meter.measure(0, sample=True)
        self._opened.set()
        if self._conn is not None:
            self._serve(self._conn)

    def _serve(self, conn: sqlite3.Connection) -> None:
        while True:
            try:
                ops = [self._queue.get(timeout=ENERGY_PERIOD_S)]
            except queue.Empty:
                ops = []
            with contextlib.suppress(queue.Empty):
                while True:
                    ops.append(self._queue.get_nowait())
            flushes = [op for op in ops if isinstance(op, Flush)]
            for op in ops:
                if not isinstance(op, Flush):
                    self._unsaved.add(op)
            with self._energy_lock:
                energy, self._energy = self._energy, {}
            self._unsaved.add_energy(energy)
            ok = self._write(conn) if self._unsaved else True
            stop = any(f.stop for f in flushes)
            if stop:
                if self._unsaved:
                    log.error(
                        "state store closed with %d event(s), %d session(s), %d open session(s) and %d"
                        " vehicle record(s) not written",
                        len(self._unsaved.events),
                        len(self._unsaved.sessions),
                        len(self._unsaved.open_sessions),
                        len(self._unsaved.vehicles),
                    )
                try:
                    conn.close()
                except sqlite3.Error as exc:  # the last checkpoint of the log; what is committed stays
                    log.error("state database not closed cleanly: %s", exc)
            for f in flushes:
                try:
                    f.done(ok)
                except Exception:  # the waiter's loop may be gone; the thread must go on
                    log.debug("state store: a flush waiter could not be told", exc_info=True)
            if stop:
                return

    def _write(self, conn: sqlite3.Connection) -> bool:
        batch = self._unsaved
        points = {
            key: v.stored.points_json
            for key, v in batch.vehicles.items()
            if self._points_written.get(key) != v.stored.points_json
        }
        try:
            self._check_file()
            self._commit(conn, batch, points)
        except Exception as exc:  # a write must never end the thread (and with it the state)
            with self._stats_lock:
                self._errors += 1
                self._dropped += batch.trim()
                self._last_error = str(exc)
            if not self._failing:
                self._failing = True
                log.error("state not written (%s): kept in memory and tried again", exc)
            self._meter.measure(0, sample=False)
            return False
        self._unsaved = _Batch()
        self._points_written.update(points)
        if self._failing:
            self._failing = False
            log.info("state written again")
        self._meter.measure(batch.payload_bytes() + sum(len(p) for p in points.values()), sample=True)
        with self._stats_lock:
            self._transactions += 1
            self._last_error = None
        return True

    def _check_file(self) -> None:
        path = self.state_dir / opening.DB_FILE
        st = os.stat(path)
        if (st.st_dev, st.st_ino) != self._identity:
            raise OSError(f"{path} was replaced while in use: not writing into a file nobody reads")

    @staticmethod
    def _commit(conn: sqlite3.Connection, batch: _Batch, points: dict[str, str]) -> None:
        """Commit ``batch``, with the capacity ``points`` that differ from what is on disk."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT INTO vehicles (key, record, updated_unix_s) VALUES (?, ?, ?) ON CONFLICT (key)"
                " DO UPDATE SET record = excluded.record, updated_unix_s = excluded.updated_unix_s",
                [(v.key, v.stored.record_json, v.t_unix_s) for v in batch.vehicles.values()],
            )
            conn.executemany(
                "INSERT INTO vehicle_capacity (key, points) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET points = excluded.points",
                list(points.items()),
            )
            conn.executemany(
                "INSERT INTO energy (name, wh) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET wh = wh + excluded.wh",
                list(batch.energy.items()),
            )
            conn.executemany(
                "INSERT INTO events (t_unix_s, kind, detail) VALUES (?, ?, ?)",
                [(e.t_unix_s, e.kind, e.detail_json) for e in batch.events],
            )
            conn.executemany(
                "INSERT INTO sessions (vehicle_key, start_unix_s, end_unix_s, e_charge_ac_wh, e_discharge_ac_wh,"
                " e_charge_dc_wh, e_discharge_dc_wh, soc_start, soc_end, reasons)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [s.row for s in batch.sessions],
            )
            puts = [o for o in batch.open_sessions.values() if o is not None]
            conn.executemany(
                "INSERT INTO open_sessions (port, session, updated_unix_s) VALUES (?, ?, ?) ON CONFLICT (port)"
                " DO UPDATE SET session = excluded.session, updated_unix_s = excluded.updated_unix_s",
                [(o.port, o.session_json, o.t_unix_s) for o in puts],
            )
            conn.executemany(
                "DELETE FROM open_sessions WHERE port = ?",
                [(port,) for port, o in batch.open_sessions.items() if o is None],
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # the error that got us here is the one to report
                    conn.execute("ROLLBACK")
            raise
