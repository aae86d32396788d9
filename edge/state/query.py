"""Reading the daemon's events and finished sessions from ``state.db``, apart from the daemon.

For the status file (the last few events) and for ``v2gctl events`` / ``v2gctl sessions`` while the
daemon runs or not. The connection is read-only (``opening.connect``): it changes neither the file
nor its write-ahead log, and it waits for the daemon's writer rather than failing on its lock.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.state.opening import DB_FILE, connect


class QueryError(Exception):
    """The state database cannot be read: names the file and why."""


@dataclass(frozen=True)
class EventRow:
    id: int
    t_unix_s: float
    kind: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class SessionRow:
    id: int
    vehicle_key: str | None
    start_unix_s: float
    end_unix_s: float
    e_charge_ac_wh: float
    e_discharge_ac_wh: float
    e_charge_dc_wh: float
    e_discharge_dc_wh: float
    soc_start: float | None
    soc_end: float | None
    reasons: list[str]


def database(state_dir: Path) -> Path:
    return state_dir / DB_FILE


def _rows(db: Path, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    try:
        present = db.exists()
    except OSError as exc:
        raise QueryError(f"{db}: {exc.strerror or exc}") from exc
    if not present:
        raise QueryError(f"{db}: no state database (the daemon has not run with this state directory)")
    try:
        conn = connect(db, read_only=True)
    except sqlite3.Error as exc:
        raise QueryError(f"{db}: cannot open: {exc}") from exc
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.Error as exc:
        raise QueryError(f"{db}: cannot read: {exc}") from exc
    finally:
        conn.close()


def _detail(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {"text": text}
    return value if isinstance(value, dict) else {"value": value}


def events(
    db: Path, *, limit: int = 20, since_unix_s: float | None = None, kinds: tuple[str, ...] = ()
) -> list[EventRow]:
    """The newest ``limit`` events (oldest first), optionally since a time and of some kinds only."""
    rows = _rows(
        db,
        "SELECT id, t_unix_s, kind, detail FROM events"
        " WHERE (?1 IS NULL OR t_unix_s >= ?1) AND (?2 = '[]' OR kind IN (SELECT value FROM json_each(?2)))"
        " ORDER BY id DESC LIMIT ?3",
        (since_unix_s, json.dumps(list(kinds)), limit),
    )
    return [EventRow(r[0], r[1], r[2], _detail(r[3])) for r in reversed(rows)]


def sessions(db: Path, *, limit: int = 20) -> list[SessionRow]:
    """The newest ``limit`` finished plug-in sessions, oldest first."""
    rows = _rows(
        db,
        "SELECT id, vehicle_key, start_unix_s, end_unix_s, e_charge_ac_wh, e_discharge_ac_wh,"
        " e_charge_dc_wh, e_discharge_dc_wh, soc_start, soc_end, reasons"
        " FROM sessions ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    return [
        SessionRow(
            id=r[0],
            vehicle_key=r[1],
            start_unix_s=r[2],
            end_unix_s=r[3],
            e_charge_ac_wh=r[4],
            e_discharge_ac_wh=r[5],
            e_charge_dc_wh=r[6],
            e_discharge_dc_wh=r[7],
            soc_start=r[8],
            soc_end=r[9],
            reasons=[str(x) for x in json.loads(r[10] or "[]")],
        )
        for r in reversed(rows)
    ]
