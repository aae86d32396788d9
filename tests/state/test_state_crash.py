"""The state store under a killed process and failing writes (real processes, real file limits)."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.estimation.record import VehicleRecord
from edge.state import StateStore

OpenState = Callable[..., StateStore]

# Writes as fast as it can (events, a vehicle checkpoint, energy) and prints "<run> <i>" only once
# flush() has confirmed that round committed.
WRITER_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from edge.estimation.record import VehicleRecord
    from edge.state import StateStore

    async def main() -> None:
        store = StateStore.open(Path(sys.argv[1]))
        assert store.problem is None, store.problem
        run = int(sys.argv[2])
        key = store.key("VIN-CRASH")
        i = 0
        while True:
            for j in range(20):
                store.event("tick", {"run": run, "i": i, "j": j, "pad": "x" * 100})
            store.put_vehicle(key, VehicleRecord(profile="nmc-lgm50", sessions=run * 100_000 + i))
            store.add_energy(e_charge_ac_wh=1.0)
            if await store.flush():
                print(run, i, flush=True)
            i += 1

    asyncio.run(main())
    """
)


def read_rows(state_dir: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect((state_dir / "state.db").resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def run_and_kill(state_dir: Path, run: int, rounds: int) -> list[tuple[int, int]]:
    """Start a writer child, SIGKILL it once it has confirmed ``rounds`` rounds; returns them."""
    confirmed = []
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER_CHILD, str(state_dir), str(run)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        for _ in range(rounds):
            line = child.stdout.readline()
            assert line, f"writer child ended early with {child.wait()}"
            r, i = map(int, line.split())
            confirmed.append((r, i))
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        assert child.stdout is not None
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return confirmed


def set_aside_files(state_dir: Path) -> list[str]:
    return [p.name for p in state_dir.glob("*corrupt*")]


async def test_kill_9_loses_nothing_committed(tmp_path: Path, open_state: OpenState) -> None:
    confirmed: list[tuple[int, int]] = []
    energy_confirmed = 0
    # Killed after 1, 3, 10, 40 and 150 confirmed rounds: mid-transaction, mid-checkpoint of the log,
    # at the first commits of a fresh file and of a reopened one.
    for run, rounds in enumerate((1, 3, 10, 40, 150)):
        confirmed += run_and_kill(tmp_path, run, rounds)
        energy_confirmed += rounds

        store = open_state(tmp_path)
        assert store.problem is None
        record = store.vehicle(store.key("VIN-CRASH"))
        assert record is not None
        assert record.sessions >= run * 100_000 + confirmed[-1][1]
        assert store.energy()["e_charge_ac_wh"] >= energy_confirmed
        energy_confirmed = int(store.energy()["e_charge_ac_wh"])  # what the killed rounds added too
        await store.aclose()
        ticks = read_rows(tmp_path, "SELECT detail FROM events WHERE kind = 'tick'")
        present = {(d["run"], d["i"]) for d in (json.loads(str(t[0])) for t in ticks)}
        assert set(confirmed) <= present
        assert read_rows(tmp_path, "PRAGMA integrity_check") == [("ok",)]
        assert set_aside_files(tmp_path) == []


# Fills the file-size limit (as a full disk would) and lifts it again; prints what the store said.
FULL_DISK_CHILD = textwrap.dedent(
    """
    import asyncio, json, resource, signal, sys
    from pathlib import Path
    from edge.state import StateStore

    async def main() -> None:
        state_dir = Path(sys.argv[1])
        store = StateStore.open(state_dir)
        store.event("before")
        out = {"before": await store.flush()}
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then a write past the limit fails with EFBIG
        largest = max(p.stat().st_size for p in state_dir.iterdir())
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (largest + 8192, hard))
        store.event("big", {"blob": "x" * 300_000})
        out["full"] = await store.flush()
        store.event("while full")
        store.add_energy(e_discharge_ac_wh=3.0)
        out["still full"] = await store.flush()
        s = store.stats
        out["errors"], out["last_error"] = s.write_errors, s.last_error
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        out["recovered"] = await store.flush()
        s = store.stats
        out["errors after"], out["last_error after"] = s.write_errors, s.last_error
        await store.aclose()
        print(json.dumps(out))

    asyncio.run(main())
    """
)


def test_a_full_disk_is_reported_once_and_the_data_written_when_it_clears(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK_CHILD, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["before"] is True
    assert out["full"] is False
    assert out["still full"] is False
    assert out["errors"] == 2
    assert "disk I/O error" in out["last_error"]  # EFBIG, as ENOSPC would be
    assert out["recovered"] is True
    assert out["errors after"] == 2
    assert out["last_error after"] is None
    assert done.stderr.count("state not written") == 1  # logged once, not per attempt
    kinds = [r[0] for r in read_rows(tmp_path, "SELECT kind FROM events ORDER BY id")]
    assert kinds == ["before", "big", "while full"]
    assert read_rows(tmp_path, "SELECT wh FROM energy WHERE name = 'e_discharge_ac_wh'") == [(3.0,)]


async def test_a_file_replaced_under_the_store_is_not_written_into(
    tmp_path: Path, open_state: OpenState, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_state(tmp_path)
    key = store.key("car")
    store.put_vehicle(key, VehicleRecord(profile="nmc-lgm50", sessions=1))
    assert await store.flush()
    other = tmp_path / "restored.db"
    sqlite3.connect(other).close()
    os.replace(other, tmp_path / "state.db")  # e.g. a backup restored while the daemon runs
    with caplog.at_level(logging.ERROR, logger="edge.state"):
        store.put_vehicle(key, VehicleRecord(profile="nmc-lgm50", sessions=2))
        assert not await store.flush()
        store.event("still running")
        assert not await store.flush()
    assert store.stats.write_errors == 2
    assert store.stats.last_error is not None
    assert "was replaced while in use" in store.stats.last_error
    assert len([r for r in caplog.records if "state not written" in r.getMessage()]) == 1
    assert store.vehicle(key) == VehicleRecord(profile="nmc-lgm50", sessions=2)  # the run goes on
    with caplog.at_level(logging.ERROR, logger="edge.state"):
        await store.aclose()
    assert (
        "closed with 1 event(s), 0 session(s), 0 open session(s) and 1 vehicle record(s) not written"
        in caplog.text
    )
    assert read_rows(tmp_path, "SELECT count(*) FROM sqlite_master") == [(0,)]  # the restored file as it was
