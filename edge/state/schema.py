"""The state database's schema, as versioned migrations recorded in ``PRAGMA user_version``.

``MIGRATIONS[n]`` takes a database from version n to n + 1 (version 0 is an empty file). A release
that changes the schema appends a step and never edits a published one: a charger may skip releases,
so every step must run on the schema the previous one left. A database of a version newer than the
last step is not opened for writing (``edge.state.opening``): it belongs to a newer release.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[tuple[str, ...]] = [
    # v1: the initial schema.
    (
        "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        # The estimator's VehicleRecord as JSON, its capacity observations apart (edge.state.vehicles);
        # key: the salted hash of the vehicle's identifier.
        "CREATE TABLE vehicles (key TEXT PRIMARY KEY, record TEXT NOT NULL, updated_unix_s REAL NOT NULL)",
        "CREATE TABLE vehicle_capacity (key TEXT PRIMARY KEY, points TEXT NOT NULL)",
        "CREATE TABLE energy (name TEXT PRIMARY KEY, wh REAL NOT NULL)",
        "CREATE TABLE events (id INTEGER PRIMARY KEY, t_unix_s REAL NOT NULL, kind TEXT NOT NULL,"
        " detail TEXT NOT NULL)",
        "CREATE TABLE sessions (id INTEGER PRIMARY KEY, vehicle_key TEXT, start_unix_s REAL NOT NULL,"
        " end_unix_s REAL NOT NULL, e_charge_ac_wh REAL NOT NULL, e_discharge_ac_wh REAL NOT NULL,"
        " e_charge_dc_wh REAL NOT NULL, e_discharge_dc_wh REAL NOT NULL, soc_start REAL, soc_end REAL,"
        " reasons TEXT NOT NULL)",
    ),
    # v2: plug-in sessions still going on (edge.state.records.OpenSession as JSON), one per port.
    (
        "CREATE TABLE open_sessions (port TEXT PRIMARY KEY, session TEXT NOT NULL, updated_unix_s REAL NOT NULL)",
    ),
]


def latest() -> int:
    """The version this code writes."""
    return len(MIGRATIONS)


def version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, migrations: list[tuple[str, ...]] | None = None) -> tuple[int, int]:
    """Bring ``conn`` (autocommit mode, version <= ``len(migrations)``) to ``len(migrations)`` in one
    transaction. ``migrations``: ``MIGRATIONS`` when None (another database's, e.g. the MQTT
    outbox's in ``edge.link.spool``, follows the same rules).

    Returns (version found, version now); on an error nothing changes.
    """
    if migrations is None:
        migrations = MIGRATIONS
    found = version(conn)
    target = len(migrations)
    if found == target:
        return found, found
    conn.execute("BEGIN IMMEDIATE")
    try:
        for steps in migrations[found:]:
            for sql in steps:
                conn.execute(sql)
        # A pragma takes no parameters; the value is our own integer.
        conn.execute(f"PRAGMA user_version = {target:d}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # some errors (I/O, full disk) have rolled back already
            conn.execute("ROLLBACK")
        raise
    return found, target
