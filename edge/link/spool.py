"""The MQTT link's durable outbox (telemetry and events the broker has not acknowledged) and a small
durable key/value store (the command replay guard, runtime overrides), in ``<state_dir>/outbox.db``.

``Spool.open`` runs once before the daemon cycles. After that the event loop never touches the
file: ``append``, ``ack`` and ``put_meta`` change the in-memory view and hand the change to the
spool's writer thread, which owns the only connection (SQLite, write-ahead log, ``synchronous =
NORMAL``, as ``edge.state``; a file of its own because a row a second, deleted once the broker has
it, is not the state store's write pattern). ``await fetch`` reads on that thread too.

Durability. ``append`` and ``put_meta`` wake the thread, which commits everything queued in one
transaction: what it committed survives kill -9 (a power cut may roll back the last seconds, never
corrupting the file). So a record survives kill -9 once one writer wake has passed after its
``append`` (milliseconds); one appended just before the kill may be lost. Acks do not wake it: the
deletes ride with the next transaction, or are committed ``ACK_PERIOD_S`` later at most (a lost
ack only means a duplicate after kill -9, which the aggregator drops by seq).

Sequence numbers are never reused, even after every row is deleted and across kill -9: the
thread keeps a reservation in the file (``seq_reserved``) and a new run starts above it (and above
every row in the file). ``open`` commits it ``SEQ_RESERVE`` ahead of the next seq before it
returns, and the thread moves it ``SEQ_RESERVE`` ahead of the seqs handed out whenever they come
within half of it, in the transaction of the append that got there. ``committed_through`` is the
reservation as committed; a seq at or under it is never handed out again, whatever happens to
this process (``durable(seq)``). After kill -9 the next run's seqs jump (a gap, never a repeat); a
clean close records the last seq handed out (never less than any seq a run handed out, this one
or an earlier one), so a clean restart continues without a gap.

While commits fail (a full disk, the file removed), ``append`` still hands out seqs, in memory:
once they pass ``committed_through`` (``SEQ_RESERVE / 2`` to ``SEQ_RESERVE`` appends into the
failure) a kill -9 before the next successful commit makes the next run hand them out again, with
other records. So the link publishes live only records whose seq is ``durable``; the others stay
in the spool and become durable (and publishable) with the first commit that works.

The bound is on the stored size of the records (``max_bytes``: the zlib-compressed bodies, which
is what the file holds; the file itself is larger by SQLite's page and row overhead): over it, the
oldest telemetry records are dropped first (the one being appended included), then the oldest
events. Drops are counted in the file and logged once per episode (a WARNING when it starts, an
INFO with the counts when the backlog is back under ``LOW_WATER`` of the bound).

A row that cannot be decoded (a body zlib refuses, a kind or time that is not one we write) is
quarantined by ``fetch``: deleted on the writer thread, counted as dropped (``dropped_telemetry``
or ``dropped_events``, by the kind the backlog had it as), logged once at WARNING, and left out of
the answer, which goes on with the good rows. ``fetch`` raises OSError only when the file cannot
be read as a whole.

A directory that cannot be used, a file another process holds locked or a file of a newer
release leave the spool in memory only, with the same API and bound, and ``problem`` saying why.
The reservation cannot be read then, so the seqs start at the wall clock in milliseconds
(``memory_first_seq``: about 1.8e12 in 2027), far above any seq a file-backed run hands out in
practice (a thousand years of ten records a second is 3e11), so the aggregator, which keeps the
highest seq it has seen, does not take them for duplicates. (A file-backed run after a memory-only
one starts below them again: see ``docs/mqtt.md``.) A corrupt file is set aside and a new one
started (``edge.state.opening.check_existing``). A failing write is logged once and retried at the
next wake with what was queued since; the rows stay readable by ``fetch`` meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from edge.state import opening, schema
from edge.state.meter import WriteMeter

log = logging.getLogger(__name__)

OUTBOX_FILE = "outbox.db"
KINDS = ("telemetry", "event")
ACK_PERIOD_S = 5.0
SEQ_RESERVE = 1000
COMPRESS_LEVEL = 1  # of zlib: most of the size for little CPU
LOW_WATER = 0.9  # of max_bytes: an overflow episode ends when the backlog is back under it
QUARANTINE_LOGGED = 5  # seqs named in the warning about unreadable rows

Kind = Literal["telemetry", "event"]
T = TypeVar("T")

MIGRATIONS: list[tuple[str, ...]] = [
    # v1: the initial schema.
    (
        # body: zlib-compressed (level 1): a 1 kB JSON record takes half a page, not a page and a bit.
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, t_unix_s REAL NOT NULL,"
        " body BLOB NOT NULL, size INTEGER NOT NULL)",
        # seq_reserved, dropped_telemetry, dropped_events
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        # get_meta / put_meta
        "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
    # v2: the bound counts the stored size, length(body); v1's size was the uncompressed one.
    ("ALTER TABLE outbox DROP COLUMN size",),
]


def memory_first_seq(wall_clock: Callable[[], float]) -> int:
    """The first seq of a memory-only spool: the wall clock in milliseconds (see the module
    docstring); 1 when the clock says nothing usable."""
    ms = wall_clock() * 1000.0
    return int(ms) if math.isfinite(ms) and ms >= 1.0 else 1


@dataclass(frozen=True, slots=True)
class SpoolRow:
    seq: int
    kind: str
    t_unix_s: float
    body: bytes


@dataclass(frozen=True)
class SpoolStats:
    backlog: int  # records not acknowledged
    backlog_bytes: int  # their stored (compressed) size: what max_bytes bounds
    dropped_telemetry: int  # over the bound or unreadable, since the file was made (across restarts)
    dropped_events: int
    bytes_written: int  # by the writer thread since open (edge.state.meter)
    bytes_per_hour: float  # over the last hour
    problem: str | None  # why the spool is in memory only; None when it is on disk


@dataclass(frozen=True, slots=True)
class _Record:
    """A record as kept: ``blob`` is the compressed body."""

    seq: int
    kind: str
    t_unix_s: float
    blob: bytes


def _decode(seq: int, kind: object, t_unix_s: object, blob: object) -> SpoolRow | str:
    """A stored row as handed out, or what is wrong with it."""
    if not isinstance(kind, str) or kind not in KINDS:
        return f"kind {kind!r} unknown"
    if not isinstance(t_unix_s, int | float) or not math.isfinite(t_unix_s):
        return f"t_unix_s {t_unix_s!r} is not a time"
    if not isinstance(blob, bytes):
        return f"body is {type(blob).__name__}, not compressed bytes"
    try:
        body = zlib.decompress(blob)
    except zlib.error as exc:
        return f"body: {exc}"
    return SpoolRow(seq, kind, float(t_unix_s), body)


# -- what the loop hands the thread ---------------------------------------------------------------


@dataclass
class _Fetched:
    rows: list[SpoolRow]  # fewer than the limit: there are no more in the window
    quarantined: list[int]  # seqs of rows that could not be decoded: deleted, to be counted


@dataclass
class _Fetch:
    after_seq: int
    before_seq: int
    limit: int
    done: Callable[[_Fetched | BaseException], None]


@dataclass
class _Changes:
    """Changes not committed yet: queued by the loop, or kept by the thread after a failed write."""

    inserts: dict[int, _Record] = field(default_factory=dict)
    deletes: set[int] = field(default_factory=set)
    meta: dict[str, str] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.inserts or self.deletes or self.meta or self.counters)

    def delete(self, seq: int) -> None:
        # A row not yet written is simply not written.
        if self.inserts.pop(seq, None) is None:
            self.deletes.add(seq)

    def merge(self, later: _Changes) -> None:
        self.inserts.update(later.inserts)
        for seq in later.deletes:
            self.delete(seq)
        self.meta.update(later.meta)
        self.counters.update(later.counters)

    def payload_bytes(self) -> int:
        rows = sum(len(r.blob) + len(r.kind) + 16 for r in self.inserts.values())
        return rows + 8 * len(self.deletes) + sum(len(k) + len(v) for k, v in self.meta.items())


@dataclass
class _Queued:
    changes: _Changes = field(default_factory=_Changes)
    assigned: int = 0  # the highest seq handed out
    fetches: list[_Fetch] = field(default_factory=list)
    flushes: list[Callable[[bool], None]] = field(default_factory=list)
    stop: bool = False


@dataclass
class _Loaded:
    """What the thread read at open."""

    conn: sqlite3.Connection
    identity: tuple[int, int]  # (st_dev, st_ino): writes stop if the file is replaced
    rows: list[tuple[int, str, int]]  # (seq, kind, stored size), ascending seq
    counters: dict[str, int]
    meta: dict[str, str]
    last_seq: int  # the highest seq an earlier run may have handed out: this run starts above it


# -- the live records (both modes) ----------------------------------------------------------------


class _Backlog:
    """Seq -> stored size of the records not acknowledged, per kind in seq order (loop side)."""

    def __init__(self) -> None:
        self.by_kind: dict[str, dict[int, int]] = {kind: {} for kind in KINDS}
        self.nbytes = 0

    def __len__(self) -> int:
        return sum(len(d) for d in self.by_kind.values())

    def __contains__(self, seq: int) -> bool:
        return any(seq in d for d in self.by_kind.values())

    def add(self, seq: int, kind: str, size: int) -> None:
        self.by_kind[kind][seq] = size
        self.nbytes += size

    def remove(self, seq: int) -> str | None:
        """Take ``seq`` out; returns its kind, None when it was not in."""
        for kind, d in self.by_kind.items():
            size = d.pop(seq, None)
            if size is not None:
                self.nbytes -= size
                return kind
        return None

    def over(self, max_bytes: int) -> list[tuple[int, str]]:
        """Remove records, oldest telemetry first, then oldest events, until they fit in
        ``max_bytes``; returns the (seq, kind) removed."""
        dropped: list[tuple[int, str]] = []
        for kind in KINDS:
            d = self.by_kind[kind]
            while self.nbytes > max_bytes and d:
                seq = next(iter(d))
                self.nbytes -= d.pop(seq)
                dropped.append((seq, kind))
        return dropped


# -- the writer thread ----------------------------------------------------------------------------


def _open_outbox(state_dir: Path) -> _Loaded:
    """Open (creating, checking, migrating) the outbox; raises ``opening.UnusableError``."""
    path = state_dir / OUTBOX_FILE
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise opening.UnusableError(f"cannot create the state directory {state_dir}: {exc}") from exc
    opening.check_existing(path, len(MIGRATIONS))
    try:
        conn = opening.connect(path)
    except sqlite3.Error as exc:
        raise opening.UnusableError(f"cannot open {path}: {exc}") from exc
    try:
        return _prepare(conn, path)
    except (sqlite3.Error, OSError) as exc:
        conn.close()
        raise opening.UnusableError(f"cannot write {path}: {exc}") from exc
    except BaseException:
        conn.close()
        raise


def _prepare(conn: sqlite3.Connection, path: Path) -> _Loaded:
    # Same reasons as the state store (edge.state.opening): small pages write less per commit,
    # NORMAL keeps every commit across kill -9 without a sync per commit.
    conn.execute(f"PRAGMA page_size = {opening.PAGE_SIZE:d}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode != "wal":
        raise opening.UnusableError(
            f"{path}: the file system refuses the write-ahead log (journal mode {mode})"
        )
    conn.execute("PRAGMA synchronous = NORMAL")
    found, now = schema.migrate(conn, MIGRATIONS)
    if found != now:
        log.info("outbox %s: schema version %d -> %d", path, found, now)
    # Takes the write lock once: a file another process holds is refused now, not at the first append.
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("COMMIT")
    st = os.stat(path)
    # length(body): a row whose body is not a blob still has a length; fetch quarantines it.
    rows = [
        (int(seq), str(kind), int(size))
        for seq, kind, size in conn.execute("SELECT seq, kind, length(body) FROM outbox ORDER BY seq")
    ]
    counters: dict[str, int] = {}
    for name, value in conn.execute("SELECT name, value FROM counters"):
        if isinstance(value, int):  # anything else reads as never counted: seqs still start above the rows
            counters[str(name)] = value
    meta = {str(n): str(v) for n, v in conn.execute("SELECT name, value FROM meta")}
    last_seq = max(counters.get("seq_reserved", 0), rows[-1][0] if rows else 0)
    return _Loaded(conn, (st.st_dev, st.st_ino), rows, counters, meta, last_seq)


class _Writer:
    """The thread: see the module docstring."""

    def __init__(self, state_dir: Path, clock: Callable[[], float]) -> None:
        self.path = state_dir / OUTBOX_FILE
        self.meter = WriteMeter(clock)
        self._lock = threading.Lock()
        self._queued = _Queued()
        self._wake = threading.Event()
        self._opened = threading.Event()
        self._result: _Loaded | str = "not opened"
        self._unsaved = _Changes()
        self._identity = (0, 0)
        # No later run hands out a seq at or under it (committed). Read on the loop: an int swap.
        self.committed_through = 0
        self._assigned = 0  # the highest seq handed out, by this run or an earlier one
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="spool-writer", daemon=True)

    def start(self) -> _Loaded | str:
        """Start the thread and wait for the open: what it loaded, or why it could not."""
        self._thread.start()
        self._opened.wait()
        if isinstance(self._result, str):
            self._thread.join()
        return self._result

    def join(self) -> None:
        self._thread.join()

    # -- called on the loop (under the lock: the thread swaps the queue out) -------------------------

    def append(self, row: _Record, dropped: Iterable[int], counters: dict[str, int]) -> None:
        with self._lock:
            q = self._queued
            q.changes.inserts[row.seq] = row
            for seq in dropped:
                q.changes.delete(seq)
            q.changes.counters.update(counters)
            q.assigned = row.seq
        self._wake.set()

    def drop(self, dropped: Iterable[int], counters: dict[str, int], *, assigned: int = 0) -> None:
        """Records dropped (the bound; ``assigned``: a record dropped on arrival) or counted
        (quarantined rows, which the thread deleted already)."""
        with self._lock:
            for seq in dropped:
                self._queued.changes.delete(seq)
            self._queued.changes.counters.update(counters)
            self._queued.assigned = max(self._queued.assigned, assigned)
        self._wake.set()

    def ack(self, seqs: Iterable[int]) -> None:
        with self._lock:
            for seq in seqs:
                self._queued.changes.delete(seq)

    def put_meta(self, name: str, value: str) -> None:
        with self._lock:
            self._queued.changes.meta[name] = value
        self._wake.set()

    def fetch(self, f: _Fetch) -> None:
        with self._lock:
            self._queued.fetches.append(f)
        self._wake.set()

    def flush(self, done: Callable[[bool], None], *, stop: bool) -> None:
        with self._lock:
            self._queued.flushes.append(done)
            self._queued.stop = self._queued.stop or stop
        self._wake.set()

    # -- on the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        self.meter.begin()
        try:
            loaded = _open_outbox(self.path.parent)
        except opening.UnusableError as exc:
            self._result = str(exc)
        except Exception as exc:  # a bug here must not leave open() waiting forever
            log.exception("spool: opening %s failed", self.path)
            self._result = f"opening {self.path} failed: {exc!r}"
        else:
            self._identity = loaded.identity
            self.committed_through = self._assigned = loaded.last_seq
            self._result = loaded
            # The reservation ahead, before open returns: the first appends are durable at once.
            # If it fails (full disk), they are not (durable()) until a commit works.
            self._write(loaded.conn, closing=False)
            self.meter.measure(0, sample=True)  # the rate's start: opening the file is not part of it
        self._opened.set()
        if isinstance(self._result, _Loaded):
            self._serve(self._result.conn)

    def _serve(self, conn: sqlite3.Connection) -> None:
        while True:
            self._wake.wait(ACK_PERIOD_S)
            self._wake.clear()
            with self._lock:
                q, self._queued = self._queued, _Queued()
            self._unsaved.merge(q.changes)
            self._assigned = max(self._assigned, q.assigned)
            ok = self._write(conn, closing=q.stop)
            for f in q.fetches:
                if self._answer(conn, f):
                    ok = self._write(conn, closing=q.stop)  # the quarantined rows' deletes
            if q.stop:
                if self._unsaved:
                    log.error(
                        "outbox closed with %d record(s) and %d ack(s) not written",
                        len(self._unsaved.inserts),
                        len(self._unsaved.deletes),
                    )
                try:
                    conn.close()
                except sqlite3.Error as exc:  # the last checkpoint of the log; what is committed stays
                    log.error("outbox not closed cleanly: %s", exc)
            for done in q.flushes:
                try:
                    done(ok)
                except Exception:  # the waiter's loop may be gone; the thread must go on
                    log.debug("spool: a flush waiter could not be told", exc_info=True)
            if q.stop:
                return

    def _write(self, conn: sqlite3.Connection, *, closing: bool) -> bool:
        """Commit what is unsaved (and move the seq reservation); True when nothing is left unsaved."""
        if closing:
            # Every seq handed out (by any run: _assigned starts at the loaded last_seq) is committed
            # or given up, and no append follows: no gap for the next run, no seq under it again.
            reserved = self._assigned
        elif self._assigned > self.committed_through - SEQ_RESERVE // 2:
            reserved = self._assigned + SEQ_RESERVE
        else:
            reserved = self.committed_through
        if reserved != self.committed_through:
            self._unsaved.counters["seq_reserved"] = reserved
        if not self._unsaved:
            return True
        batch = self._unsaved
        try:
            self._check_file()
            self._commit(conn, batch)
        except Exception as exc:  # a write must never end the thread
            if not self._failing:
                self._failing = True
                log.error("outbox not written (%s): kept in memory and tried again", exc)
            self.meter.measure(0, sample=False)
            return False
        self._unsaved = _Changes()
        self.committed_through = reserved
        if self._failing:
            self._failing = False
            log.info("outbox written again")
        self.meter.measure(batch.payload_bytes(), sample=True)
        return True

    def _check_file(self) -> None:
        st = os.stat(self.path)
        if (st.st_dev, st.st_ino) != self._identity:
            raise OSError(f"{self.path} was replaced while in use: not writing into a file nobody reads")

    @staticmethod
    def _commit(conn: sqlite3.Connection, batch: _Changes) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT OR REPLACE INTO outbox (seq, kind, t_unix_s, body) VALUES (?, ?, ?, ?)",
                [(r.seq, r.kind, r.t_unix_s, r.blob) for r in batch.inserts.values()],
            )
            conn.executemany("DELETE FROM outbox WHERE seq = ?", [(seq,) for seq in batch.deletes])
            conn.executemany(
                "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                list(batch.meta.items()),
            )
            conn.executemany(
                "INSERT INTO counters (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                list(batch.counters.items()),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # the error that got us here is the one to report
                    conn.execute("ROLLBACK")
            raise

    def _answer(self, conn: sqlite3.Connection, f: _Fetch) -> bool:
        """Answer ``f``; True when it quarantined rows (their deletes are unsaved)."""
        result: _Fetched | BaseException
        try:
            result = self._read(conn, f)
        except sqlite3.Error as exc:  # the file as a whole; a bad row is quarantined instead
            result = OSError(f"reading {self.path} failed: {exc}")
        try:
            f.done(result)
        except Exception:  # the waiter's loop may be gone; the thread must go on
            log.debug("spool: a fetch waiter could not be told", exc_info=True)
        return isinstance(result, _Fetched) and bool(result.quarantined)

    def _read(self, conn: sqlite3.Connection, f: _Fetch) -> _Fetched:
        bad: dict[int, str] = {}

        def good(seq: int, kind: object, t: object, blob: object) -> SpoolRow | None:
            row = _decode(seq, kind, t, blob)
            if isinstance(row, str):
                bad[seq] = row
                self._unsaved.delete(seq)
                return None
            return row

        # Rows whose write failed are still ours to hand out: merged with the file's, in order (only
        # the first `limit` decompressed: a disk failing for hours leaves many).
        pending = [r for r in self._unsaved.inserts.values() if f.after_seq < r.seq < f.before_seq]
        pending = sorted(pending, key=lambda r: r.seq)[: f.limit]
        merged = [row for r in pending if (row := good(r.seq, r.kind, r.t_unix_s, r.blob)) is not None]
        # Page on until the limit is filled with good rows: rows acked or quarantined do not count.
        after, found = f.after_seq, 0
        while found < f.limit:
            page = conn.execute(
                "SELECT seq, kind, t_unix_s, body FROM outbox WHERE seq > ? AND seq < ? ORDER BY seq LIMIT ?",
                (after, f.before_seq, f.limit),
            ).fetchall()
            for seq, kind, t, blob in page:
                if int(seq) in self._unsaved.deletes:
                    continue
                if (row := good(int(seq), kind, t, blob)) is not None:
                    merged.append(row)
                    found += 1
                    if found == f.limit:
                        break  # the rest of the page is not handed out: not decompressed either
            if len(page) < f.limit:
                break
            after = int(page[-1][0])
        if bad:
            named = ", ".join(f"{seq} ({why})" for seq, why in list(bad.items())[:QUARANTINE_LOGGED])
            log.warning(
                "outbox %s: %d unreadable record(s) dropped: %s%s",
                self.path,
                len(bad),
                named,
                ", ..." if len(bad) > QUARANTINE_LOGGED else "",
            )
        return _Fetched(sorted(merged, key=lambda r: r.seq)[: f.limit], list(bad))


# -- the API --------------------------------------------------------------------------------------


class Spool:
    """See the module docstring. Build with ``open``; the calls are meant for one thread (the event
    loop's)."""

    def __init__(
        self,
        *,
        path: Path | None,
        max_bytes: int,
        writer: _Writer | None,
        loaded: _Loaded | None,
        problem: str | None,
        first_seq: int,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.problem = problem
        self._writer = writer
        self._backlog = _Backlog()
        self._memory: dict[int, _Record] = {}  # memory-only mode: the records
        self._meta: dict[str, str] = {}
        self._dropped = dict.fromkeys(KINDS, 0)
        self._episode: dict[str, int] | None = None  # drops of the overflow episode going on
        self._closed = False
        self._next_seq = first_seq
        if loaded is not None:
            for seq, kind, size in loaded.rows:
                # A row of an unknown kind is quarantined by fetch; until then it counts as an event.
                self._backlog.add(seq, kind if kind in KINDS else "event", size)
            self._meta = loaded.meta
            self._dropped = {kind: loaded.counters.get(f"dropped_{kind}", 0) for kind in KINDS}
            self._next_seq = loaded.last_seq + 1

    @classmethod
    def open(
        cls,
        state_dir: Path | None,
        *,
        max_bytes: int,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> Spool:
        """Open ``<state_dir>/outbox.db`` (blocking; before the daemon cycles) and commit the seq
        reservation. Never raises for a bad file or directory: the spool then runs in memory only
        (see ``problem``); ``state_dir`` None means memory only by choice. Raises ValueError for a
        ``max_bytes`` below 1. ``clock`` (monotonic seconds) times the bytes-per-hour window;
        ``wall_clock`` (Unix seconds) gives a memory-only spool its first seq."""
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"spool max_bytes = {max_bytes!r}: must be a whole number of bytes >= 1")
        if state_dir is None:
            return cls(
                path=None,
                max_bytes=max_bytes,
                writer=None,
                loaded=None,
                problem="no state directory",
                first_seq=memory_first_seq(wall_clock),
            )
        writer = _Writer(Path(state_dir), clock)
        loaded = writer.start()
        if isinstance(loaded, str):
            log.error("MQTT outbox not kept across restarts: %s; keeping it in memory only", loaded)
            return cls(
                path=writer.path,
                max_bytes=max_bytes,
                writer=None,
                loaded=None,
                problem=loaded,
                first_seq=memory_first_seq(wall_clock),
            )
        return cls(
            path=writer.path, max_bytes=max_bytes, writer=writer, loaded=loaded, problem=None, first_seq=1
        )

    @property
    def next_seq(self) -> int:
        """The seq the next ``append`` gets."""
        return self._next_seq

    @property
    def committed_through(self) -> int | None:
        """The seq reservation as committed in the file: no later run hands out a seq at or under
        it, whatever happens to this process. None in memory-only mode (nothing is committed)."""
        return None if self._writer is None else self._writer.committed_through

    def durable(self, seq: int) -> bool:
        """May ``seq`` be published live? True when no later run can hand it out again: it is at or
        under ``committed_through``, or the spool is memory only (its seqs come from the wall
        clock; nothing better is possible there). False only while commits fail (or lag by over
        ``SEQ_RESERVE / 2`` appends): keep the record in the spool; it is durable after the next
        commit that works (``await flush()`` returns True then)."""
        return self._writer is None or seq <= self._writer.committed_through

    def append(self, kind: Kind, body: bytes, t_unix_s: float) -> int:
        """Keep a record until it is acked (never blocks; compresses ``body``, some tens of µs for
        1 kB); returns its seq. Raises ValueError for an unknown kind, a body whose compressed size
        is larger than the bound or a time that is not finite; TypeError for a body that is not
        bytes."""
        self._check_open()
        if kind not in KINDS:
            raise ValueError(f"spool record kind {kind!r} unknown (known: {', '.join(KINDS)})")
        if not isinstance(body, bytes):
            raise TypeError(f"spool record body must be bytes, not {type(body).__name__}")
        if not math.isfinite(t_unix_s):
            raise ValueError(f"spool record t_unix_s = {t_unix_s!r} is not finite")
        blob = zlib.compress(body, COMPRESS_LEVEL)
        if len(blob) > self.max_bytes:
            raise ValueError(
                f"spool record of {len(body)} bytes ({len(blob)} compressed):"
                f" larger than the bound of {self.max_bytes}"
            )
        seq = self._next_seq
        self._next_seq += 1
        self._backlog.add(seq, kind, len(blob))
        dropped = self._backlog.over(self.max_bytes) if self._backlog.nbytes > self.max_bytes else []
        counters = self._count_drops(dropped)
        kept = not any(d == seq for d, _ in dropped)
        row = _Record(seq, kind, float(t_unix_s), blob)
        if self._writer is None:
            for d, _ in dropped:
                self._memory.pop(d, None)
            if kept:
                self._memory[seq] = row
        elif kept:
            self._writer.append(row, (d for d, _ in dropped), counters)
        else:
            self._writer.drop((d for d, _ in dropped if d != seq), counters, assigned=seq)
        return seq

    def ack(self, seqs: Iterable[int]) -> None:
        """The broker has these records: they leave the backlog now and the file lazily."""
        self._check_open()
        gone = [seq for seq in seqs if self._backlog.remove(seq) is not None]
        if self._writer is None:
            for seq in gone:
                self._memory.pop(seq, None)
        elif gone:
            self._writer.ack(gone)
        self._end_episode_if_drained()

    async def fetch(self, *, after_seq: int, before_seq: int, limit: int) -> list[SpoolRow]:
        """Up to ``limit`` records not acked with ``after_seq < seq < before_seq``, ascending seq;
        fewer only when there are no more. Read on the writer thread (the loop does not wait on the
        disk); a row that cannot be decoded is quarantined (module docstring). Raises OSError when
        the file cannot be read."""
        self._check_open()
        if limit < 1 or before_seq <= after_seq + 1:
            return []
        if self._writer is None:
            window = (r for seq, r in self._memory.items() if after_seq < seq < before_seq)
            return [
                SpoolRow(r.seq, r.kind, r.t_unix_s, zlib.decompress(r.blob))
                for _, r in zip(range(limit), window, strict=False)
            ]
        while True:
            got = await _ask(self._writer, after_seq, before_seq, limit)
            self._count_quarantined(got.quarantined)
            # Acked while the thread read them: the broker has them already.
            rows = [r for r in got.rows if r.seq in self._backlog]
            if rows or len(got.rows) < limit:
                return rows
            after_seq = got.rows[-1].seq

    def get_meta(self, name: str) -> str | None:
        """The value kept under ``name`` (from memory: loaded at open), or None."""
        return self._meta.get(name)

    def put_meta(self, name: str, value: str) -> None:
        """Keep ``value`` under ``name``: committed promptly (the thread wakes for it)."""
        self._check_open()
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"spool meta {name!r} = {value!r}: name and value must be strings")
        self._meta[name] = value
        if self._writer is not None:
            self._writer.put_meta(name, value)

    @property
    def stats(self) -> SpoolStats:
        if self._writer is None:
            written, per_hour = 0, 0.0
        else:
            rates = self._writer.meter.rates()
            written, per_hour = rates.bytes_written, rates.bytes_per_hour
        return SpoolStats(
            backlog=len(self._backlog),
            backlog_bytes=self._backlog.nbytes,
            dropped_telemetry=self._dropped["telemetry"],
            dropped_events=self._dropped["event"],
            bytes_written=written,
            bytes_per_hour=per_hour,
            problem=self.problem,
        )

    async def flush(self) -> bool:
        """Wait (without blocking the loop) until everything queued so far is committed, acks
        and the seq reservation included. True when it is on disk; False in memory-only mode or
        when the write failed (it is kept and tried again)."""
        self._check_open()
        if self._writer is None:
            return False
        return await _sync(self._writer, stop=False)

    async def aclose(self) -> None:
        """Flush, close the file and end the writer thread. Further calls raise RuntimeError."""
        if self._closed:
            return
        # At once: an append while the close is under way would take a seq the closing
        # reservation does not cover.
        self._closed = True
        if self._writer is not None:
            await _sync(self._writer, stop=True)
            self._writer.join()  # it has closed the file and is returning: no wait to speak of

    # -- inside ---------------------------------------------------------------------------------

    def _count_drops(self, dropped: list[tuple[int, str]]) -> dict[str, int]:
        """Count ``dropped`` (and log an episode's start); returns the counters to persist."""
        if not dropped:
            self._end_episode_if_drained()
            return {}
        if self._episode is None:
            self._episode = dict.fromkeys(KINDS, 0)
            log.warning(
                "MQTT outbox full (%d bytes of compressed records): dropping the oldest telemetry,"
                " then the oldest events",
                self.max_bytes,
            )
        for _, kind in dropped:
            self._dropped[kind] += 1
            self._episode[kind] += 1
        return {f"dropped_{kind}": self._dropped[kind] for kind in {k for _, k in dropped}}

    def _count_quarantined(self, seqs: list[int]) -> None:
        """Rows the thread found unreadable (and deleted, and logged): count them as dropped."""
        kinds = [kind for seq in seqs if (kind := self._backlog.remove(seq)) is not None]
        if not kinds or self._writer is None:
            return
        for kind in kinds:
            self._dropped[kind] += 1
        self._writer.drop((), {f"dropped_{kind}": self._dropped[kind] for kind in set(kinds)})

    def _end_episode_if_drained(self) -> None:
        if self._episode is not None and self._backlog.nbytes <= LOW_WATER * self.max_bytes:
            log.info(
                "MQTT outbox no longer full: %d telemetry and %d event record(s) were dropped",
                self._episode["telemetry"],
                self._episode["event"],
            )
            self._episode = None

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"spool {self.path or '(memory)'} is closed")


async def _ask(writer: _Writer, after_seq: int, before_seq: int, limit: int) -> _Fetched:
    """A fetch, answered on the writer thread."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[_Fetched] = loop.create_future()

    def tell(result: _Fetched | BaseException) -> None:
        loop.call_soon_threadsafe(_resolve, done, result)

    writer.fetch(_Fetch(after_seq, before_seq, limit, tell))
    return await done


async def _sync(writer: _Writer, *, stop: bool) -> bool:
    """Everything queued so far committed (True), or not (False: kept and tried again)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bool] = loop.create_future()

    def tell(ok: bool) -> None:
        loop.call_soon_threadsafe(_resolve, done, ok)

    writer.flush(tell, stop=stop)
    return await done


def _resolve(fut: asyncio.Future[T], result: T | BaseException) -> None:
    if fut.done():
        return
    if isinstance(result, BaseException):
        fut.set_exception(result)
    else:
        fut.set_result(result)
