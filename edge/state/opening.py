"""Opening ``<state_dir>/state.db`` (on the store's writer thread): check it, set a bad file aside,
migrate, import the old per-vehicle JSON files once, and load what the daemon reads while it runs.

An existing file is first read through a read-only connection (which changes neither the file nor
its write-ahead log): a file SQLite calls corrupt or not a database, or that fails ``PRAGMA
quick_check``, is renamed aside with its ``-wal``/``-shm`` and a fresh database takes its place,
with a ``state_set_aside`` event. Anything else that stops us (a schema newer than this code, a
file another process holds locked, a directory we may not write) raises ``UnusableError``: the
store then keeps its state in memory only and says why. A file that failed its check is never used.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from edge.estimation.record import SALT_BYTES, VehicleRecord
from edge.state import schema
from edge.state.records import OpenSession
from edge.state.vehicles import StoredVehicle, decode_vehicle, encode_vehicle

log = logging.getLogger(__name__)

DB_FILE = "state.db"
OLD_VEHICLES_DIR = "vehicles"  # per-vehicle JSON files of releases before issue 13, imported once
OLD_SALT_FILE = "vehicle-salt"
EVENTS_KEPT = 100_000  # a few events an hour: years of them, and a bound on the file
PAGE_SIZE = 1024
BUSY_TIMEOUT_S = 5.0  # how long to wait for another process's lock (a technician's query) before failing


class UnusableError(Exception):
    """The state database cannot be used; the message says why, for the operator."""


@dataclass
class Opened:
    """A database ready for writing and what the store keeps in memory from it."""

    conn: sqlite3.Connection
    identity: tuple[int, int]  # (st_dev, st_ino) of state.db: writes stop if the file is replaced
    salt: bytes
    vehicles: dict[str, StoredVehicle] = field(default_factory=dict)
    energy: dict[str, float] = field(default_factory=dict)
    open_sessions: dict[str, str] = field(default_factory=dict)  # port -> OpenSession JSON


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) for this thread only."""
    if read_only:
        return sqlite3.connect(
            path.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S
        )
    return sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_S)


def open_database(state_dir: Path) -> Opened:
    """Open (creating, checking, migrating) the database in ``state_dir``; raises ``UnusableError``."""
    path = state_dir / DB_FILE
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise UnusableError(f"cannot create the state directory {state_dir}: {exc}") from exc
    set_aside = check_existing(path, schema.latest())
    try:
        conn = connect(path)
    except sqlite3.Error as exc:
        raise UnusableError(f"cannot open {path}: {exc}") from exc
    try:
        return _prepare(conn, path, set_aside)
    except (sqlite3.Error, OSError) as exc:
        conn.close()
        raise UnusableError(f"cannot write {path}: {exc}") from exc
    except BaseException:
        conn.close()
        raise


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def check_existing(path: Path, newest: int) -> dict[str, Any] | None:
    """Check an existing ``path`` (this release writes schema version ``newest``); set it aside if it
    is bad (then return the event's detail); raise ``UnusableError`` when it is not ours to use.
    Also used for the MQTT outbox (``edge.link.spool``)."""
    if not path.exists():
        if _companion(path, "-wal").exists():
            # SQLite would build a database out of the log alone: not a file we wrote as such.
            return _set_aside(path, "a write-ahead log without its database")
        return None
    try:
        conn = connect(path, read_only=True)
    except sqlite3.Error as exc:
        raise UnusableError(f"cannot open {path}: {exc}") from exc
    try:
        found = schema.version(conn)
        if found > newest:
            raise UnusableError(
                f"{path} has schema version {found}, newer than this release's {newest}"
                " (written by a newer release): left untouched"
            )
        rows = conn.execute("PRAGMA quick_check").fetchall()
        problem = None if rows == [("ok",)] else "; ".join(" ".join(str(r[0]).split()) for r in rows[:5])
    except sqlite3.DatabaseError as exc:
        if not _is_corruption(exc):
            raise UnusableError(f"cannot read {path}: {exc}") from exc
        problem = str(exc)
    finally:
        conn.close()
    if problem is None:
        return None
    return _set_aside(path, problem)


def _companion(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _set_aside(path: Path, reason: str) -> dict[str, Any]:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while aside.exists() or _companion(aside, "-wal").exists():
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    try:
        for suffix in ("", "-wal", "-shm"):
            if _companion(path, suffix).exists():
                _companion(path, suffix).rename(_companion(aside, suffix))
    except OSError as exc:
        raise UnusableError(f"{path} is unusable ({reason}) and cannot be set aside: {exc}") from exc
    log.error("state file %s is unusable (%s): kept as %s, starting a new one", path, reason, aside.name)
    return {"file": aside.name, "reason": reason}


def _prepare(conn: sqlite3.Connection, path: Path, set_aside: dict[str, Any] | None) -> Opened:
    # A commit appends every page it changed to the log, and a checkpoint touches a row or two per
    # table: 1 KiB pages write a quarter of the default 4 KiB ones per commit (measured in
    # docs/state.md). Only a new, empty file takes it, so it comes before anything is written.
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE:d}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode != "wal":
        raise UnusableError(f"{path}: the file system refuses the write-ahead log (journal mode {mode})")
    # NORMAL: a commit is in the log before the call returns, so a killed process (kill -9, a crash,
    # the OOM killer) loses nothing committed; only a power cut or kernel crash may roll back the
    # commits of the last seconds (the log is synced at each checkpoint), never corrupting the file.
    # FULL would sync the log at every commit: each sync writes a partial flash page again, several
    # times the wear on an SD card, for the last minute of learning that a power cut costs anyway.
    conn.execute("PRAGMA synchronous = NORMAL")
    found, now = schema.migrate(conn)
    if found != now:
        log.info("state database %s: schema version %d -> %d", path, found, now)
    st = os.stat(path)
    opened = Opened(conn, (st.st_dev, st.st_ino), salt=b"")
    conn.execute("BEGIN IMMEDIATE")
    try:
        if set_aside is not None:
            _event(conn, "state_set_aside", set_aside)
        if 0 < found < now:
            _event(conn, "schema_migrated", {"from": found, "to": now})
        imported, unreadable = _salt_and_import(conn, opened, path.parent / OLD_VEHICLES_DIR)
        conn.execute("DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?", (EVENTS_KEPT,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    _rename_imported(imported, ".imported")
    _rename_imported(unreadable, ".corrupt")
    _load(conn, opened)
    return opened


def _event(conn: sqlite3.Connection, kind: str, detail: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO events (t_unix_s, kind, detail) VALUES (?, ?, ?)",
        (time.time(), kind, json.dumps(detail)),
    )


def _salt_and_import(
    conn: sqlite3.Connection, opened: Opened, old_dir: Path
) -> tuple[list[Path], list[Path]]:
    """Set ``opened.salt``; import the old JSON records if their salt can be ours.

    Returns the files imported and the unreadable ones (renamed after the commit).
    """
    row = conn.execute("SELECT value FROM meta WHERE name = 'vehicle_salt'").fetchone()
    salt = bytes.fromhex(row[0]) if row is not None else None
    imported: list[Path] = []
    unreadable: list[Path] = []
    salt_file = old_dir / OLD_SALT_FILE
    if salt_file.is_file():
        try:
            old_salt = bytes.fromhex(salt_file.read_text(encoding="ascii").strip())
        except (OSError, ValueError) as exc:
            log.warning("old vehicle records in %s not imported: %s unreadable (%s)", old_dir, salt_file, exc)
            old_salt = None
        if old_salt is not None and salt not in (None, old_salt):
            # Their keys hash another salt: under ours they would never be found again.
            log.warning("old vehicle records in %s not imported: their salt is not this database's", old_dir)
        elif old_salt is not None:
            salt = old_salt
            for f in sorted(old_dir.glob("vehicle-*.json")):
                try:
                    record = VehicleRecord.from_json(json.loads(f.read_text(encoding="utf-8")))
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    log.warning("old vehicle record %s unreadable (%s): kept as %s.corrupt", f, exc, f.name)
                    unreadable.append(f)
                    continue
                key = f.name.removeprefix("vehicle-").removesuffix(".json")
                if conn.execute("SELECT 1 FROM vehicles WHERE key = ?", (key,)).fetchone() is None:
                    stored = encode_vehicle(record)
                    conn.execute(
                        "INSERT INTO vehicles (key, record, updated_unix_s) VALUES (?, ?, ?)",
                        (key, stored.record_json, f.stat().st_mtime),
                    )
                    conn.execute(
                        "INSERT INTO vehicle_capacity (key, points) VALUES (?, ?)", (key, stored.points_json)
                    )
                imported.append(f)
            imported.append(salt_file)
            _event(
                conn,
                "vehicles_imported",
                {"from": str(old_dir), "records": len(imported) - 1, "unreadable": len(unreadable)},
            )
            log.info("imported %d vehicle record(s) from %s", len(imported) - 1, old_dir)
    if salt is None:
        salt = secrets.token_bytes(SALT_BYTES)
    if row is None:
        conn.execute("INSERT INTO meta (name, value) VALUES ('vehicle_salt', ?)", (salt.hex(),))
    opened.salt = salt
    return imported, unreadable


def _rename_imported(files: list[Path], suffix: str) -> None:
    for f in files:
        try:
            f.rename(f.with_name(f.name + suffix))
        except OSError as exc:
            # Harmless: an import again finds the same salt and keeps the records it has.
            log.warning("could not rename %s after its import: %s", f, exc)


def _load(conn: sqlite3.Connection, opened: Opened) -> None:
    query = "SELECT key, record, points FROM vehicles LEFT JOIN vehicle_capacity USING (key)"
    for key, text, points in conn.execute(query):
        stored = StoredVehicle(str(text), str(points))
        try:
            decode_vehicle(stored)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("vehicle %s: stored record unreadable (%s); it starts from the profile", key, exc)
            continue
        opened.vehicles[str(key)] = stored
    opened.energy = {str(name): float(wh) for name, wh in conn.execute("SELECT name, wh FROM energy")}
    for port, text in conn.execute("SELECT port, session FROM open_sessions"):
        try:
            msgspec.json.decode(str(text), type=OpenSession)
        except msgspec.DecodeError as exc:
            log.warning("open session at %s: stored record unreadable (%s); a new one starts", port, exc)
            continue
        opened.open_sessions[str(port)] = str(text)
