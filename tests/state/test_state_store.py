"""The state store: what it keeps across restarts, where its writes run, bad files, old layouts."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.estimation.record import VehicleRecord, vehicle_key
from edge.state import ENERGY_COUNTERS, OpenSession, SessionRecord, StateStore, opening, schema

OpenState = Callable[..., StateStore]


def rows(state_dir: Path, sql: str) -> list[tuple[object, ...]]:
    """Read the database as another process would (the store closed or not)."""
    conn = sqlite3.connect((state_dir / "state.db").resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def names(state_dir: Path, pattern: str = "*") -> list[str]:
    return sorted(p.name for p in state_dir.glob(pattern))


def write_old_record(old_dir: Path, vehicle_id: str, record: VehicleRecord) -> str:
    """Write ``record`` in the per-vehicle JSON layout of the releases before issue 13 (a salt file
    beside one file per vehicle, named by its key); returns the key."""
    old_dir.mkdir(exist_ok=True)
    salt_file = old_dir / "vehicle-salt"
    if not salt_file.exists():
        salt_file.write_text(os.urandom(16).hex(), encoding="ascii")
    key = vehicle_key(bytes.fromhex(salt_file.read_text(encoding="ascii")), vehicle_id)
    (old_dir / f"vehicle-{key}.json").write_text(json.dumps(record.to_json()), encoding="utf-8")
    return key


async def test_everything_kept_is_there_after_a_restart(tmp_path: Path, open_state: OpenState) -> None:
    store = open_state(tmp_path)
    assert store.problem is None
    key = store.key("WVWZZZ1KZAW000001")
    record = VehicleRecord(profile="nmc-lgm50", sessions=3, growth=1.2, aging={"hours_plugged": 5.0})
    store.put_vehicle(key, record)
    record.sessions = 99  # the store keeps what it was given, not the caller's object
    store.add_energy(e_charge_ac_wh=1000.0, e_charge_dc_wh=940.0)
    store.add_energy(e_charge_ac_wh=500.0)
    store.event("fault", {"device": "inverter", "code": 7}, t_unix_s=1.7e9)
    session = SessionRecord(
        vehicle_key=key,
        start_unix_s=1.7e9,
        end_unix_s=1.7e9 + 3600,
        e_charge_ac_wh=1500.0,
        soc_start=0.4,
        soc_end=0.8,
        reasons=("unplugged",),
    )
    store.write_session(session)
    assert store.energy()["e_charge_ac_wh"] == 1500.0  # before the commit too
    assert await store.flush()
    await store.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        store.event("late")

    again = open_state(tmp_path)
    assert again.problem is None
    assert again.key("WVWZZZ1KZAW000001") == key
    kept = again.vehicle(key)
    assert kept == VehicleRecord(profile="nmc-lgm50", sessions=3, growth=1.2, aging={"hours_plugged": 5.0})
    assert kept is not None
    kept.sessions = 7  # a copy: the estimator changes its record as it learns
    assert again.vehicle(key) == VehicleRecord(
        profile="nmc-lgm50", sessions=3, growth=1.2, aging={"hours_plugged": 5.0}
    )
    assert again.vehicle("unknown") is None
    assert again.energy() == {
        "e_charge_ac_wh": 1500.0,
        "e_discharge_ac_wh": 0.0,
        "e_charge_dc_wh": 940.0,
        "e_discharge_dc_wh": 0.0,
    }
    await again.aclose()
    assert rows(tmp_path, "PRAGMA journal_mode") == [("wal",)]
    assert rows(tmp_path, "PRAGMA user_version") == [(schema.latest(),)]
    assert rows(tmp_path, "SELECT t_unix_s, kind, detail FROM events") == [
        (1.7e9, "fault", '{"device": "inverter", "code": 7}')
    ]
    assert rows(tmp_path, "SELECT * FROM sessions") == [
        (1, key, 1.7e9, 1.7e9 + 3600, 1500.0, 0.0, 0.0, 0.0, 0.4, 0.8, '["unplugged"]')
    ]
    assert b"WVWZZZ1KZAW000001" not in (tmp_path / "state.db").read_bytes()


async def test_another_installation_has_another_salt(tmp_path: Path, open_state: OpenState) -> None:
    a, b = open_state(tmp_path / "a"), open_state(tmp_path / "b")
    assert a.key("VIN") != b.key("VIN")
    assert len(a.key("VIN")) == 24
    with pytest.raises(ValueError, match="vehicle id is empty"):
        a.key("")


async def test_bad_input_is_refused_by_name(tmp_path: Path, open_state: OpenState) -> None:
    store = open_state(tmp_path)
    with pytest.raises(ValueError, match=r"energy counter 'e_ac_wh' unknown \(known: e_charge_ac_wh"):
        store.add_energy(e_ac_wh=1.0)
    with pytest.raises(ValueError, match=r"energy e_discharge_ac_wh = -5.0 outside \[0, inf\)"):
        store.add_energy(e_charge_ac_wh=1.0, e_discharge_ac_wh=-5.0)
    with pytest.raises(ValueError, match=r"e_charge_dc_wh = nan"):
        store.add_energy(e_charge_dc_wh=float("nan"))
    assert store.energy() == dict.fromkeys(ENERGY_COUNTERS, 0.0)  # nothing of a refused call
    with pytest.raises(ValueError, match=r"session soc_end = 1.5 outside \[0.0, 1.0\]"):
        SessionRecord(vehicle_key=None, start_unix_s=0.0, end_unix_s=1.0, soc_end=1.5)
    with pytest.raises(ValueError, match=r"end_unix_s = 1.0 before start_unix_s = 2.0"):
        SessionRecord(vehicle_key=None, start_unix_s=2.0, end_unix_s=1.0)
    with pytest.raises(TypeError):
        store.event("x", {"not json": object()})
    assert await store.flush()
    assert rows(tmp_path, "SELECT count(*) FROM events") == [(0,)]


async def test_the_file_is_only_touched_by_the_writer_thread(
    tmp_path: Path, open_state: OpenState, monkeypatch: pytest.MonkeyPatch
) -> None:
    await open_state(tmp_path).aclose()  # then opening checks an existing file too
    seen: list[tuple[int, str]] = []
    conns: list[sqlite3.Connection] = []
    real_connect = opening.connect

    def traced(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
        conn = real_connect(path, read_only=read_only)
        conn.set_trace_callback(lambda sql: seen.append((threading.get_ident(), sql)))
        conns.append(conn)
        return conn

    monkeypatch.setattr(opening, "connect", traced)
    store = open_state(tmp_path)  # opening: checks, migrations, loading
    key = store.key("car")
    store.put_vehicle(key, VehicleRecord(profile="nmc-lgm50"))
    store.event("plugged")
    store.add_energy(e_discharge_ac_wh=2.0)
    assert store.vehicle(key) is not None  # read from memory
    assert await store.flush()
    writers = [t for t in threading.enumerate() if t.name == "state-writer"]
    assert len(writers) == 1
    with pytest.raises(sqlite3.ProgrammingError, match="thread"):
        conns[-1].execute("SELECT 1")  # the writer's connection refuses any other thread
    await store.aclose()
    statements = " ".join(sql for _, sql in seen)
    for expected in (
        "quick_check",
        "FROM vehicles LEFT JOIN vehicle_capacity",
        "INSERT INTO energy",
        "COMMIT",
    ):
        assert expected in statements
    assert {ident for ident, _ in seen} == {writers[0].ident}
    assert threading.get_ident() not in {ident for ident, _ in seen}


async def test_queued_writes_are_committed_together(tmp_path: Path, open_state: OpenState) -> None:
    store = open_state(tmp_path)
    assert await store.flush()
    before = store.stats.transactions
    # Another process holds the write lock: the writer waits in its first transaction while the
    # loop queues the rest, which then go in one more transaction.
    other = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    for i in range(200):
        store.event("tick", {"i": i})
    other.execute("COMMIT")
    other.close()
    assert await store.flush()
    assert store.stats.transactions - before <= 2
    assert rows(tmp_path, "SELECT count(*) FROM events WHERE kind = 'tick'") == [(200,)]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "bad page"])
async def test_a_corrupt_file_is_set_aside_reported_and_replaced(
    tmp_path: Path, open_state: OpenState, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    store = open_state(tmp_path)
    for i in range(300):
        store.event("filler", {"i": i, "text": "x" * 200})
    await store.aclose()
    db = tmp_path / "state.db"
    data = db.read_bytes()
    if damage == "garbage":
        db.write_bytes(b"\x13\x37" * 4096)
    elif damage == "truncated":
        db.write_bytes(data[: len(data) // 2])
    else:  # a page of the events table overwritten (a flash cell gone bad): the header is fine
        db.write_bytes(data[:8192] + b"\xff" * 4096 + data[12288:])
    damaged = digest(db)
    (tmp_path / "state.db-wal").write_bytes(b"\x00" * 100)  # its companions go aside with it

    with caplog.at_level(logging.ERROR, logger="edge.state"):
        fresh = open_state(tmp_path)
    assert fresh.problem is None
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "is unusable" in errors[0].getMessage()
    (aside,) = names(tmp_path, "state.db.corrupt-*[0-9]Z")
    assert digest(tmp_path / aside) == damaged  # kept as it was, for a look
    assert digest(tmp_path / f"{aside}-wal") == hashlib.sha256(b"\x00" * 100).hexdigest()
    fresh.event("after")
    assert await fresh.flush()
    await fresh.aclose()
    kinds = rows(tmp_path, "SELECT kind, detail FROM events")
    assert [k for k, _ in kinds] == ["state_set_aside", "after"]
    assert json.loads(str(kinds[0][1]))["file"] == aside
    assert rows(tmp_path, "PRAGMA integrity_check") == [("ok",)]


async def test_a_log_without_its_database_is_set_aside(tmp_path: Path, open_state: OpenState) -> None:
    (tmp_path / "state.db-wal").write_bytes(b"\x01" * 4096)
    store = open_state(tmp_path)
    assert store.problem is None
    assert len(names(tmp_path, "state.db.corrupt-*-wal")) == 1
    assert await store.flush()


async def test_a_newer_schema_is_left_untouched_and_state_kept_in_memory(
    tmp_path: Path, open_state: OpenState
) -> None:
    store = open_state(tmp_path)
    key = store.key("car")
    store.put_vehicle(key, VehicleRecord(profile="nmc-lgm50", sessions=2))
    await store.aclose()
    conn = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    conn.execute(f"PRAGMA user_version = {schema.latest() + 1}")
    conn.close()
    before = digest(tmp_path / "state.db")

    newer = open_state(tmp_path)
    assert newer.problem is not None
    assert (
        f"schema version {schema.latest() + 1}, newer than this release's {schema.latest()}" in newer.problem
    )
    assert newer.vehicle(key) is None  # nothing read from a file it does not understand
    newer.put_vehicle(key, VehicleRecord(profile="nmc-lgm50", sessions=3))
    assert newer.vehicle(key) == VehicleRecord(profile="nmc-lgm50", sessions=3)  # memory serves the run
    newer.event("not kept")
    newer.add_energy(e_charge_ac_wh=5.0)
    assert not await newer.flush()
    assert newer.stats.dropped == 1
    assert newer.stats.last_error == newer.problem
    await newer.aclose()
    assert digest(tmp_path / "state.db") == before
    # Reading it made SQLite's companions (an empty log and the index): no data in either.
    assert names(tmp_path) == ["state.db", "state.db-shm", "state.db-wal"]
    assert digest(tmp_path / "state.db-wal") == hashlib.sha256(b"").hexdigest()


async def test_a_state_dir_that_cannot_be_made_keeps_state_in_memory(
    tmp_path: Path, open_state: OpenState
) -> None:
    (tmp_path / "file").write_text("not a directory")
    store = open_state(tmp_path / "file" / "state")
    assert store.problem is not None
    assert "cannot create the state directory" in store.problem
    assert not await store.flush()
    assert not [t for t in threading.enumerate() if t.name == "state-writer"]


async def test_a_database_locked_by_another_process_is_not_set_aside(
    tmp_path: Path, open_state: OpenState, monkeypatch: pytest.MonkeyPatch
) -> None:
    await open_state(tmp_path).aclose()
    monkeypatch.setattr(opening, "BUSY_TIMEOUT_S", 0.05)
    other = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    other.execute("PRAGMA locking_mode = EXCLUSIVE")
    other.execute("BEGIN EXCLUSIVE")
    try:
        store = open_state(tmp_path)
    finally:
        other.execute("COMMIT")
        other.close()
    assert store.problem is not None
    assert "locked" in store.problem
    assert names(tmp_path, "*corrupt*") == []


async def test_an_older_schema_is_migrated_keeping_its_data(
    tmp_path: Path, open_state: OpenState, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_state(tmp_path)
    key = store.key("car")
    store.put_vehicle(key, VehicleRecord(profile="nmc-lgm50", sessions=4))
    store.add_energy(e_discharge_dc_wh=12.5)
    await store.aclose()
    # The next release adds a step; this file is one version behind it.
    ours = schema.latest()
    step = ("ALTER TABLE sessions ADD COLUMN tariff TEXT", "CREATE INDEX events_kind ON events (kind)")
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, step])
    migrated = open_state(tmp_path)
    assert migrated.problem is None
    assert migrated.vehicle(key) == VehicleRecord(profile="nmc-lgm50", sessions=4)
    assert migrated.energy()["e_discharge_dc_wh"] == 12.5
    await migrated.aclose()
    assert rows(tmp_path, "PRAGMA user_version") == [(ours + 1,)]
    assert "tariff" in [r[1] for r in rows(tmp_path, "PRAGMA table_info(sessions)")]
    ((kind, detail),) = rows(tmp_path, "SELECT kind, detail FROM events")
    assert (kind, json.loads(str(detail))) == ("schema_migrated", {"from": ours, "to": ours + 1})


async def test_a_failing_migration_changes_nothing(
    tmp_path: Path, open_state: OpenState, monkeypatch: pytest.MonkeyPatch
) -> None:
    await open_state(tmp_path).aclose()
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, ("CREATE TABLE extra (x)", "NOT SQL")])
    store = open_state(tmp_path)
    assert store.problem is not None
    assert "cannot write" in store.problem
    assert rows(tmp_path, "PRAGMA user_version") == [(schema.latest() - 1,)]
    assert rows(tmp_path, "SELECT name FROM sqlite_master WHERE name = 'extra'") == []


async def test_the_old_json_records_are_imported_once(tmp_path: Path, open_state: OpenState) -> None:
    record = VehicleRecord(profile="nmc-lgm50", sessions=12, growth=1.4, growth_sigma=0.06)
    key = write_old_record(tmp_path / "vehicles", "WVWZZZ1KZAW000002", record)
    (tmp_path / "vehicles" / "vehicle-0123456789abcdef01234567.json").write_text("{broken")

    store = open_state(tmp_path)
    assert store.key("WVWZZZ1KZAW000002") == key  # the salt came along: the same vehicle is found
    record = store.vehicle(key)
    assert record is not None
    assert (record.sessions, record.growth, record.growth_sigma) == (12, 1.4, 0.06)
    await store.aclose()
    assert names(tmp_path / "vehicles") == sorted(
        [
            "vehicle-salt.imported",
            f"vehicle-{key}.json.imported",
            "vehicle-0123456789abcdef01234567.json.corrupt",
        ]
    )
    ((detail,),) = rows(tmp_path, "SELECT detail FROM events WHERE kind = 'vehicles_imported'")
    assert json.loads(str(detail))["records"] == 1
    assert json.loads(str(detail))["unreadable"] == 1

    again = open_state(tmp_path)
    assert again.vehicle(key) == record
    await again.aclose()
    assert len(rows(tmp_path, "SELECT * FROM events WHERE kind = 'vehicles_imported'")) == 1


async def test_old_records_of_another_salt_are_left_alone(tmp_path: Path, open_state: OpenState) -> None:
    await open_state(tmp_path).aclose()  # this database has its own salt already
    key = write_old_record(tmp_path / "vehicles", "car", VehicleRecord(profile="nmc-lgm50", sessions=3))
    store = open_state(tmp_path)
    assert store.vehicle(key) is None
    assert (tmp_path / "vehicles" / f"vehicle-{key}.json").exists()


def session_at(port: str, **fields: float) -> OpenSession:
    return OpenSession(port=port, vehicle_key="k", start_unix_s=1.7e9, last_unix_s=1.7e9 + 60.0, **fields)


async def test_an_open_session_is_kept_until_its_record_closes_it(
    tmp_path: Path, open_state: OpenState
) -> None:
    store = open_state(tmp_path)
    assert store.open_session("stage") is None
    going_on = session_at("stage", e_charge_ac_wh=100.0)
    going_on.limits_s["export_cap"] = 30.0
    store.put_open_session(going_on)
    store.put_open_session(session_at("other", e_discharge_ac_wh=5.0))
    going_on.e_charge_ac_wh = 999.0  # the store keeps what it was given
    kept = store.open_session("stage")
    assert kept is not None
    assert (kept.e_charge_ac_wh, kept.limits_s) == (100.0, {"export_cap": 30.0})
    kept.e_charge_ac_wh = 5.0  # a copy
    assert store.open_session("stage") == session_at(
        "stage", e_charge_ac_wh=100.0, limits_s={"export_cap": 30.0}
    )
    assert await store.flush()
    await store.aclose()

    again = open_state(tmp_path)
    assert again.open_session("stage") == session_at(
        "stage", e_charge_ac_wh=100.0, limits_s={"export_cap": 30.0}
    )
    record = session_at("stage", e_charge_ac_wh=150.0).record(1.7e9 + 120.0, ("unplugged",))
    again.write_session(record, closes="stage")
    assert again.open_session("stage") is None
    assert await again.flush()
    assert rows(tmp_path, "SELECT port FROM open_sessions") == [("other",)]
    assert rows(tmp_path, "SELECT e_charge_ac_wh, end_unix_s FROM sessions") == [(150.0, 1.7e9 + 120.0)]


async def test_a_record_and_the_end_of_its_open_session_are_one_transaction(
    tmp_path: Path, open_state: OpenState
) -> None:
    store = open_state(tmp_path)
    store.put_open_session(session_at("stage"))
    assert await store.flush()
    before = store.stats.transactions
    other = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the writer waits: whatever it commits next, it commits whole
    store.write_session(session_at("stage").record(1.7e9 + 60.0, ("unplugged",)), closes="stage")
    store.put_open_session(session_at("stage", e_charge_ac_wh=1.0))  # the next plug-in, just after
    other.execute("COMMIT")
    other.close()
    assert await store.flush()
    assert store.stats.transactions - before == 1
    assert rows(tmp_path, "SELECT count(*) FROM sessions") == [(1,)]
    ((text,),) = rows(tmp_path, "SELECT session FROM open_sessions WHERE port = 'stage'")
    assert json.loads(str(text))["e_charge_ac_wh"] == 1.0  # the later put wins over the close


async def test_a_file_of_the_first_schema_gains_the_open_sessions_table(
    tmp_path: Path, open_state: OpenState
) -> None:
    conn = sqlite3.connect(tmp_path / "state.db")  # a file as issue 13 wrote it
    with conn:
        for sql in schema.MIGRATIONS[0]:
            conn.execute(sql)
        conn.execute("INSERT INTO energy VALUES ('e_charge_ac_wh', 7.0)")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    assert rows(tmp_path, "PRAGMA user_version") == [(1,)]
    store = open_state(tmp_path)
    assert store.problem is None
    assert store.energy()["e_charge_ac_wh"] == 7.0
    store.put_open_session(session_at("stage"))
    await store.aclose()
    assert rows(tmp_path, "PRAGMA user_version") == [(2,)]
    assert [r[0] for r in rows(tmp_path, "SELECT port FROM open_sessions")] == ["stage"]


async def test_an_unreadable_open_session_is_dropped_with_a_warning(
    tmp_path: Path, open_state: OpenState, caplog: pytest.LogCaptureFixture
) -> None:
    await open_state(tmp_path).aclose()
    conn = sqlite3.connect(tmp_path / "state.db")
    with conn:
        conn.execute("INSERT INTO open_sessions VALUES ('stage', '{\"port\": \"stage\"}', 0.0)")
        conn.execute(
            "INSERT INTO open_sessions VALUES ('neg', ?, 0.0)",
            (
                json.dumps(
                    {
                        "port": "neg",
                        "vehicle_key": None,
                        "start_unix_s": 1.0,
                        "last_unix_s": 2.0,
                        "e_charge_ac_wh": -5.0,
                    }
                ),
            ),
        )
    conn.close()
    with caplog.at_level(logging.WARNING, logger="edge.state"):
        store = open_state(tmp_path)
    assert store.problem is None
    assert store.open_session("stage") is None
    assert store.open_session("neg") is None
    assert "open session at stage: stored record unreadable" in caplog.text
    assert "e_charge_ac_wh = -5.0 outside [0, inf)" in caplog.text
