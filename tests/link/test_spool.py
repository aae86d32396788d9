"""The MQTT outbox (``edge.link.spool``) on a real SQLite file: seqs never reused (the reservation
committed at open, durable() while commits fail, kill -9), the fetch window, lazy acks, the size
bound on the stored size, unreadable rows quarantined, the key/value store, memory-only mode."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from edge.link import spool as spool_mod
from edge.link.spool import OUTBOX_FILE, SEQ_RESERVE, Spool, SpoolRow

OpenSpool = Callable[..., Spool]
MB = 1_000_000


@pytest.fixture
async def open_spool() -> AsyncIterator[OpenSpool]:
    """``spool = open_spool(state_dir, max_bytes=...)``; each one still open is closed at teardown."""
    spools: list[Spool] = []

    def open_(state_dir: Path | None, *, max_bytes: int = MB, **kwargs: Callable[[], float]) -> Spool:
        s = Spool.open(state_dir, max_bytes=max_bytes, **kwargs)
        spools.append(s)
        return s

    yield open_
    for s in spools:
        await s.aclose()


def on_disk(state_dir: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect((state_dir / OUTBOX_FILE).resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def set_aside_files(state_dir: Path) -> list[str]:
    return [p.name for p in state_dir.glob(f"{OUTBOX_FILE}.corrupt-*")]


def seqs_on_disk(state_dir: Path) -> list[int]:
    return [int(str(r[0])) for r in on_disk(state_dir, "SELECT seq FROM outbox ORDER BY seq")]


def reserved_on_disk(state_dir: Path) -> int:
    ((value,),) = on_disk(state_dir, "SELECT value FROM counters WHERE name = 'seq_reserved'")
    return int(str(value))


def stored(body: bytes) -> int:
    """What a body counts against the bound: its compressed size."""
    return len(zlib.compress(body, spool_mod.COMPRESS_LEVEL))


async def test_seqs_keep_increasing_across_reopen_and_after_every_row_is_deleted(
    tmp_path: Path, open_spool: OpenSpool
) -> None:
    s = open_spool(tmp_path)
    assert s.problem is None
    # Committed before open returned: the first seqs are safe to publish before any append commits.
    assert reserved_on_disk(tmp_path) == SEQ_RESERVE == s.committed_through
    assert s.durable(1) and s.durable(SEQ_RESERVE) and not s.durable(SEQ_RESERVE + 1)
    first = [s.append("telemetry", b"t%d" % i, 1000.0 + i) for i in range(5)]
    assert first == [1, 2, 3, 4, 5]
    assert s.next_seq == 6
    await s.aclose()
    assert reserved_on_disk(tmp_path) == 5

    s = open_spool(tmp_path)
    assert s.next_seq == 6  # a clean close leaves no gap
    assert reserved_on_disk(tmp_path) == 5 + SEQ_RESERVE
    second = [s.append("event", b"e", 2000.0) for _ in range(3)]
    assert second == [6, 7, 8]
    s.ack(first + second)
    assert await s.flush()
    assert seqs_on_disk(tmp_path) == []  # every row gone, the seqs still not handed out again
    await s.aclose()

    # A run that appends nothing and closes cleanly leaves the reservation where it found it.
    s = open_spool(tmp_path)
    assert s.next_seq == 9
    await s.aclose()
    assert reserved_on_disk(tmp_path) == 8

    s = open_spool(tmp_path)
    assert s.stats.backlog == 0
    assert s.append("telemetry", b"x", 3000.0) == 9


async def test_fetch_returns_the_window_in_order_and_leaves_acked_rows_out_at_once(
    tmp_path: Path, open_spool: OpenSpool
) -> None:
    s = open_spool(tmp_path)
    for i in range(1, 21):
        s.append("event" if i % 5 == 0 else "telemetry", b"body-%d" % i, 1000.0 + i)
    rows = await s.fetch(after_seq=3, before_seq=15, limit=100)
    assert [r.seq for r in rows] == list(range(4, 15))
    assert rows[0] == SpoolRow(4, "telemetry", 1004.0, b"body-4")
    assert rows[1] == SpoolRow(5, "event", 1005.0, b"body-5")
    assert [r.seq for r in await s.fetch(after_seq=0, before_seq=100, limit=3)] == [1, 2, 3]
    assert await s.fetch(after_seq=5, before_seq=6, limit=10) == []
    assert await s.fetch(after_seq=0, before_seq=100, limit=0) == []

    s.ack([2, 4, 6])  # not deleted from the file yet (lazy), already out of every fetch
    assert [r.seq for r in await s.fetch(after_seq=0, before_seq=8, limit=10)] == [1, 3, 5, 7]
    assert s.stats.backlog == 17
    assert s.stats.backlog_bytes == sum(stored(b"body-%d" % i) for i in range(1, 21) if i not in (2, 4, 6))
    s.ack([2, 999])  # twice, or never appended: nothing happens
    assert s.stats.backlog == 17


async def test_acks_reach_the_file_without_a_flush(
    tmp_path: Path, open_spool: OpenSpool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_mod, "ACK_PERIOD_S", 0.05)
    s = open_spool(tmp_path)
    for i in range(4):
        s.append("telemetry", b"%d" % i, 1000.0 + i)
    assert await s.flush()
    s.ack([1, 3])
    deadline = time.monotonic() + 10.0
    while seqs_on_disk(tmp_path) != [2, 4] and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert seqs_on_disk(tmp_path) == [2, 4]


async def test_the_bound_drops_oldest_telemetry_before_any_event_and_counts_across_reopen(
    tmp_path: Path, open_spool: OpenSpool, caplog: pytest.LogCaptureFixture
) -> None:
    body = random.Random(3).randbytes(1000)  # incompressible: each record takes `size` of the bound
    size = stored(body)
    s = open_spool(tmp_path, max_bytes=10 * size)
    with caplog.at_level(logging.INFO, logger="edge.link.spool"):
        # seqs 1..6 telemetry, 7..9 events, 10..11 telemetry: 11 records, one over.
        kinds = ["telemetry"] * 6 + ["event"] * 3 + ["telemetry"] * 2
        for i, kind in enumerate(kinds):
            s.append(kind, body, 1000.0 + i)  # type: ignore[arg-type]
        assert [r.seq for r in await s.fetch(after_seq=0, before_seq=100, limit=100)] == list(range(2, 12))
        # Eight more events: the seven telemetry records left go (oldest first) before the first event.
        for i in range(8):
            s.append("event", body, 2000.0 + i)
        rows = await s.fetch(after_seq=0, before_seq=100, limit=100)
        assert [(r.seq, r.kind) for r in rows] == [(seq, "event") for seq in (8, 9, *range(12, 20))]
        stats = s.stats
        assert (stats.dropped_telemetry, stats.dropped_events) == (8, 1)
        assert stats.backlog == 10 and stats.backlog_bytes == 10 * size
        # A telemetry record arriving when only events are kept is dropped itself, not an event.
        assert s.append("telemetry", body, 3000.0) == 20
        assert s.stats.dropped_telemetry == 9
        assert [r.seq for r in await s.fetch(after_seq=0, before_seq=100, limit=100)] == [
            8,
            9,
            *range(12, 20),
        ]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "full" in warnings[0].getMessage()  # once for the episode
    assert await s.flush()
    assert seqs_on_disk(tmp_path) == [8, 9, *range(12, 20)]

    with caplog.at_level(logging.INFO, logger="edge.link.spool"):
        s.ack([8, 9])  # 8 records kept: under 90 % of the bound, the episode is over
    assert any("no longer full: 9 telemetry and 1 event" in r.getMessage() for r in caplog.records)
    await s.aclose()

    s = open_spool(tmp_path, max_bytes=10 * size)
    assert (s.stats.dropped_telemetry, s.stats.dropped_events) == (9, 1)
    assert s.stats.backlog == 8
    assert s.next_seq == 21


async def test_the_bound_and_the_backlog_bytes_count_the_stored_size(
    tmp_path: Path, open_spool: OpenSpool
) -> None:
    # 1 kB JSON-like records, as the daemon's: a tenth of the bound each before compression.
    bodies = [b'{"seq": %d, "state": "running", "pad": "%s"}' % (i, b"ab" * 480) for i in range(100)]
    assert all(len(b) > 900 for b in bodies)
    s = open_spool(tmp_path, max_bytes=10_000)
    for i, body in enumerate(bodies):
        s.append("telemetry", body, 1000.0 + i)
    stats = s.stats
    assert (stats.backlog, stats.dropped_telemetry) == (100, 0)
    assert stats.backlog_bytes == sum(stored(b) for b in bodies) <= 10_000
    assert await s.flush()
    assert on_disk(tmp_path, "SELECT sum(length(body)) FROM outbox") == [(stats.backlog_bytes,)]
    assert [r.body for r in await s.fetch(after_seq=0, before_seq=1000, limit=1000)] == bodies
    await s.aclose()
    s = open_spool(tmp_path, max_bytes=10_000)
    assert (s.stats.backlog, s.stats.backlog_bytes) == (100, stats.backlog_bytes)


async def test_a_file_of_the_first_schema_is_migrated_and_its_records_counted_by_stored_size(
    tmp_path: Path, open_spool: OpenSpool
) -> None:
    conn = sqlite3.connect(tmp_path / OUTBOX_FILE)
    for sql in spool_mod.MIGRATIONS[0]:
        conn.execute(sql)
    body = b"abc" * 300
    conn.execute(
        "INSERT INTO outbox (seq, kind, t_unix_s, body, size) VALUES (7, 'event', 1.5, ?, ?)",
        (zlib.compress(body, 1), len(body)),
    )
    conn.execute("INSERT INTO counters (name, value) VALUES ('seq_reserved', 12)")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    s = open_spool(tmp_path)
    assert s.problem is None
    assert (s.stats.backlog, s.stats.backlog_bytes) == (1, stored(body))
    assert await s.fetch(after_seq=0, before_seq=100, limit=10) == [SpoolRow(7, "event", 1.5, body)]
    assert s.append("telemetry", b"new", 2.0) == 13
    assert await s.flush()
    assert seqs_on_disk(tmp_path) == [7, 13]


async def test_bad_records_are_refused_by_name(tmp_path: Path, open_spool: OpenSpool) -> None:
    s = open_spool(tmp_path, max_bytes=100)
    with pytest.raises(ValueError, match="kind 'log' unknown"):
        s.append("log", b"x", 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"100 bytes \(111 compressed\): larger than the bound of 100"):
        s.append("event", random.randbytes(100), 1.0)
    with pytest.raises(ValueError, match="not finite"):
        s.append("event", b"x", float("nan"))
    with pytest.raises(TypeError, match="must be bytes"):
        s.append("event", "text", 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_bytes = 0"):
        Spool.open(tmp_path / "other", max_bytes=0)
    assert s.next_seq == 1  # nothing refused took a seq
    assert s.append("event", b"x" * 1000, 1.0) == 1  # 1000 bytes, 17 stored
    closing = asyncio.create_task(s.aclose())
    await asyncio.sleep(0)  # the close has begun: a seq taken now would be above what it records
    with pytest.raises(RuntimeError, match="closed"):
        s.append("event", b"x", 1.0)
    await closing
    assert reserved_on_disk(tmp_path) == 1


# The body of the record <seq> of the appender run <run>: runs that reused a seq differ in the body.
APPENDER_BODY = b'{"run": "%s", "seq": %d, "pad": "%s"}'

# Appends at a steady rate, never waiting for a commit; writes "<seq> <monotonic time> <durable>" as
# soon as append has returned, then keeps a key/value pair it names. Argument: directory, run name.
APPENDER_CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from edge.link.spool import Spool

    APPENDER_BODY = BODY_FORMAT

    async def main() -> None:
        s = Spool.open(Path(sys.argv[1]), max_bytes=64_000_000)
        assert s.problem is None, s.problem
        run = sys.argv[2].encode()
        while True:
            seq = s.append("telemetry", APPENDER_BODY % (run, s.next_seq, b"y" * 900), time.time())
            # One write per line: print() writes its arguments apart, and a kill between them
            # tears the line the parent reads (260 of 300 kills of a printing loop did).
            sys.stdout.write(f"{seq} {time.monotonic()} {int(s.durable(seq))}\\n")
            sys.stdout.flush()
            if seq % 50 == 0:
                s.put_meta("last_fifty", str(seq))
            await asyncio.sleep(0.002)

    asyncio.run(main())
    """
).replace("BODY_FORMAT", repr(APPENDER_BODY))


def run_child(script: str, *args: str, run_s: float | None = None) -> tuple[list[str], float]:
    """Run ``script`` with ``args``; SIGKILL it ``run_s`` after its first line (None: after a line
    "done"); returns the lines it printed and the monotonic time of the kill."""
    child = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        lines = [child.stdout.readline()]  # the spool is open: the clock starts now
        assert lines[0], f"child ended early with {child.wait()}"
        if run_s is None:
            while lines[-1] not in ("done\n", ""):
                lines.append(child.stdout.readline())
        else:
            time.sleep(run_s)
        t_kill = time.monotonic()
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        lines += child.stdout.read().splitlines()
    finally:
        child.kill()
        child.wait()
        assert child.stdout is not None
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return [line.strip() for line in lines if line.strip() not in ("", "done")], t_kill


async def test_kill_9_keeps_every_record_appended_50_ms_before_and_never_reuses_a_seq(
    tmp_path: Path, open_spool: OpenSpool
) -> None:
    rng = random.Random(15)
    highest = 0
    bodies: dict[int, bytes] = {}  # seq -> the one body it was handed out with, over every run

    def body(run: str, seq: int) -> bytes:
        return APPENDER_BODY % (run.encode(), seq, b"y" * 900)

    for n in range(4):
        run = f"run{n}"
        lines, t_kill = run_child(APPENDER_CHILD, str(tmp_path), run, run_s=rng.uniform(0.3, 1.2))
        reported = [(int(seq), float(t), durable == "1") for seq, t, durable in (ln.split() for ln in lines)]
        seqs = [seq for seq, _, _ in reported]
        assert seqs == sorted(seqs) and seqs[0] > highest  # strictly increasing, across runs too
        assert len(reported) > 50
        assert all(durable for _, _, durable in reported)  # the disk keeps up: published live at once
        for seq in seqs:
            assert bodies.setdefault(seq, body(run, seq)) == body(run, seq), f"seq {seq} handed out twice"
        highest = seqs[-1]
        settled = {seq for seq, t, _ in reported if t <= t_kill - 0.05}
        assert len(settled) > 20
        s = open_spool(tmp_path, max_bytes=64 * MB)
        rows = await s.fetch(after_seq=0, before_seq=s.next_seq, limit=1_000_000)
        assert settled <= {r.seq for r in rows}, sorted(settled - {r.seq for r in rows})[:10]
        for r in rows:  # the one appended between its print and the kill was never reported
            assert r.body == bodies.setdefault(r.seq, body(run, r.seq)), f"seq {r.seq}: another body"
        assert s.next_seq > max(bodies)  # a seq handed out and not committed is not handed out again
        assert s.next_seq <= highest + SEQ_RESERVE + 2
        # A replay guard kept shortly before the kill survives it.
        fifties = [seq for seq, t, _ in reported if seq % 50 == 0 and t <= t_kill - 0.05]
        assert int(s.get_meta("last_fifty") or 0) >= fifties[-1]
        # As the link would: the backlog replayed and acked, then a clean stop with nothing appended.
        s.ack(r.seq for r in rows)
        await s.aclose()
        assert seqs_on_disk(tmp_path) == []
    assert on_disk(tmp_path, "PRAGMA integrity_check") == [("ok",)]


# Appends five records, makes every commit fail (the file moved away, as the writer checks before
# each), appends 30 more: prints "<seq> <durable>" for each, then "done", and waits for the kill.
FAILING_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from edge.link import spool

    async def main() -> None:
        spool.SEQ_RESERVE = 20
        state_dir = Path(sys.argv[1])
        s = spool.Spool.open(state_dir, max_bytes=1_000_000)
        assert s.problem is None, s.problem
        for i in range(5):
            print(s.append("event", b"before %d" % i, 1.0), int(s.durable(s.next_seq - 1)), flush=True)
        assert await s.flush()
        (state_dir / spool.OUTBOX_FILE).rename(state_dir / "away.db")
        for i in range(30):
            seq = s.append("event", b"during %d" % i, 2.0)
            print(seq, int(s.durable(seq)), flush=True)
        assert not await s.flush()
        print("done", flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


async def test_while_commits_fail_seqs_past_the_reservation_are_not_durable_and_a_kill_reuses_them(
    tmp_path: Path, open_spool: OpenSpool
) -> None:
    lines, _ = run_child(FAILING_CHILD, str(tmp_path))
    reported = [(int(seq), durable == "1") for seq, durable in (ln.split() for ln in lines)]
    assert [seq for seq, _ in reported] == list(range(1, 36))
    # The reservation committed at open covers 1..20; 21..35 were handed out while no commit worked.
    durable = [seq for seq, ok in reported if ok]
    assert durable == list(range(1, 21))
    (tmp_path / "away.db").rename(tmp_path / OUTBOX_FILE)
    s = open_spool(tmp_path)
    # Every durable seq stays unique; the others are handed out again, with other records: the
    # reason the link keeps them from being published live.
    assert s.next_seq == 21
    assert [r.body for r in await s.fetch(after_seq=0, before_seq=100, limit=100)] == [
        b"before %d" % i for i in range(5)
    ]


async def test_a_failing_disk_holds_durable_back_and_the_first_commit_that_works_catches_up(
    tmp_path: Path, open_spool: OpenSpool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_mod, "SEQ_RESERVE", 20)
    s = open_spool(tmp_path)
    assert s.committed_through == 20
    assert [s.append("telemetry", b"%d" % i, 1000.0 + i) for i in range(5)] == [1, 2, 3, 4, 5]
    assert await s.flush()
    (tmp_path / OUTBOX_FILE).rename(tmp_path / "away.db")
    seqs = [s.append("telemetry", b"%d" % i, 2000.0 + i) for i in range(5, 35)]
    assert seqs == list(range(6, 36))  # append never waits for the disk
    assert not await s.flush()
    assert s.committed_through == 20
    assert [seq for seq in range(1, 36) if s.durable(seq)] == list(range(1, 21))
    # What was not written is still there to replay.
    assert [r.body for r in await s.fetch(after_seq=0, before_seq=100, limit=100)] == [
        b"%d" % i for i in range(35)
    ]
    (tmp_path / "away.db").rename(tmp_path / OUTBOX_FILE)
    assert await s.flush()
    assert s.committed_through == 35 + 20
    assert all(s.durable(seq) for seq in seqs)
    assert seqs_on_disk(tmp_path) == list(range(1, 36))


async def test_unreadable_rows_are_dropped_counted_and_logged_once_and_the_good_ones_still_come(
    tmp_path: Path, open_spool: OpenSpool, caplog: pytest.LogCaptureFixture
) -> None:
    s = open_spool(tmp_path)
    for seq in range(1, 11):
        s.append("event" if seq in (5, 10) else "telemetry", b"record %d" % seq, 1000.0 + seq)
    await s.aclose()
    conn = sqlite3.connect(tmp_path / OUTBOX_FILE)
    conn.execute("UPDATE outbox SET body = x'deadbeef' WHERE seq IN (2, 5)")  # zlib refuses it
    conn.execute("UPDATE outbox SET t_unix_s = 'soon' WHERE seq = 4")
    conn.execute("UPDATE outbox SET body = 'text' WHERE seq = 7")
    conn.commit()
    conn.close()

    s = open_spool(tmp_path)
    assert s.stats.backlog == 10
    with caplog.at_level(logging.WARNING, logger="edge.link.spool"):
        # A window whose first row is bad is not answered empty: the next good one comes.
        assert await s.fetch(after_seq=1, before_seq=100, limit=1) == [
            SpoolRow(3, "telemetry", 1003.0, b"record 3")
        ]
        assert [r.seq for r in await s.fetch(after_seq=0, before_seq=100, limit=3)] == [1, 3, 6]
        assert [r.seq for r in await s.fetch(after_seq=6, before_seq=100, limit=100)] == [8, 9, 10]
        assert [r.seq for r in await s.fetch(after_seq=0, before_seq=100, limit=100)] == [1, 3, 6, 8, 9, 10]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert "1 unreadable record(s) dropped: 2 (body: Error -3" in warnings[0]
    assert "2 unreadable record(s) dropped: 4 (t_unix_s 'soon' is not a time), 5 (body" in warnings[1]
    assert "7 (body is str, not compressed bytes)" in warnings[2]
    stats = s.stats
    assert (stats.backlog, stats.dropped_telemetry, stats.dropped_events) == (6, 3, 1)
    assert await s.flush()
    assert seqs_on_disk(tmp_path) == [1, 3, 6, 8, 9, 10]
    await s.aclose()
    s = open_spool(tmp_path)
    assert (s.stats.backlog, s.stats.dropped_telemetry, s.stats.dropped_events) == (6, 3, 1)


async def test_meta_is_kept_across_reopen(tmp_path: Path, open_spool: OpenSpool) -> None:
    s = open_spool(tmp_path)
    assert s.get_meta("cmd.dispatch") is None
    s.put_meta("cmd.dispatch", '{"id": "a", "issued_at": 1}')
    s.put_meta("cmd.dispatch", '{"id": "b", "issued_at": 2}')
    s.put_meta("override.mode", "v2g")
    assert s.get_meta("cmd.dispatch") == '{"id": "b", "issued_at": 2}'
    await s.aclose()
    s = open_spool(tmp_path)
    assert s.get_meta("cmd.dispatch") == '{"id": "b", "issued_at": 2}'
    assert s.get_meta("override.mode") == "v2g"


async def test_an_unusable_directory_leaves_the_spool_in_memory_with_the_same_api(
    tmp_path: Path, open_spool: OpenSpool
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    body = random.Random(4).randbytes(1000)
    wall = 1_700_000_000.25
    # Bound: three stored records. Impossible directory, even for root.
    s = open_spool(tmp_path / "a-file" / "state", max_bytes=3 * stored(body), wall_clock=lambda: wall)
    assert s.problem is not None and "cannot create the state directory" in s.problem
    assert s.stats.problem == s.problem
    # The seqs start at the wall clock in ms: above any a file-backed run hands out, so the
    # aggregator (highest seq seen) does not take them for duplicates.
    t0 = 1_700_000_000_250
    seqs = [s.append("telemetry" if i % 2 else "event", body, 1000.0 + i) for i in range(7)]
    assert seqs == list(range(t0, t0 + 7))
    assert s.committed_through is None and s.durable(t0 + 6)  # nothing better in memory
    # Telemetry t0+1, t0+3 and t0+5 (on arrival) went first, then event t0.
    rows = await s.fetch(after_seq=0, before_seq=t0 + 10, limit=10)
    assert [r.seq for r in rows] == [t0 + 2, t0 + 4, t0 + 6]
    assert rows[0] == SpoolRow(t0 + 2, "event", 1002.0, body)
    assert (s.stats.dropped_telemetry, s.stats.dropped_events) == (3, 1)
    assert s.stats.backlog_bytes == 3 * stored(body)
    s.ack([t0 + 2])
    assert [r.seq for r in await s.fetch(after_seq=0, before_seq=t0 + 10, limit=1)] == [t0 + 4]
    s.put_meta("k", "v")
    assert s.get_meta("k") == "v"
    assert not await s.flush()
    wall = 1_700_000_100.0  # a restart: still memory only, still above the last run's seqs
    none = open_spool(None, wall_clock=lambda: wall)
    assert none.problem == "no state directory"
    assert none.next_seq == 1_700_000_100_000 > seqs[-1]
    assert open_spool(None, wall_clock=lambda: float("nan")).next_seq == 1  # a clock saying nothing


async def test_a_file_of_a_newer_release_is_left_untouched(tmp_path: Path, open_spool: OpenSpool) -> None:
    s = open_spool(tmp_path)
    s.append("event", b"kept", 1.0)
    await s.aclose()
    conn = sqlite3.connect(tmp_path / OUTBOX_FILE)
    conn.execute(f"PRAGMA user_version = {len(spool_mod.MIGRATIONS) + 1}")
    conn.close()
    newer = open_spool(tmp_path, wall_clock=lambda: 1_800_000_000.0)
    assert newer.problem is not None and "newer than this release" in newer.problem
    assert newer.append("event", b"memory", 2.0) == 1_800_000_000_000
    assert seqs_on_disk(tmp_path) == [1]
    ((body,),) = on_disk(tmp_path, "SELECT body FROM outbox")
    assert isinstance(body, bytes) and zlib.decompress(body) == b"kept"


async def test_a_corrupt_file_is_set_aside_and_a_new_one_started(
    tmp_path: Path, open_spool: OpenSpool
) -> None:
    (tmp_path / OUTBOX_FILE).write_bytes(b"\x13\x37" * 4096)
    s = open_spool(tmp_path)
    assert s.problem is None
    assert s.append("event", b"fresh", 1.0) == 1
    assert await s.flush()
    assert len(set_aside_files(tmp_path)) == 1
    assert seqs_on_disk(tmp_path) == [1]


async def test_bytes_written_are_measured_per_hour(tmp_path: Path, open_spool: OpenSpool) -> None:
    now = [100.0]
    s = open_spool(tmp_path, clock=lambda: now[0])
    opened = s.stats
    assert opened.bytes_written > 0 and opened.bytes_per_hour == 0.0
    for i in range(10):
        s.append("telemetry", random.randbytes(1000), 1000.0 + i)  # incompressible
        assert await s.flush()
    now[0] += 36.0
    stats = s.stats
    written = stats.bytes_written - opened.bytes_written
    assert written >= 10_000  # at least the bodies, plus the log's page framing
    assert stats.bytes_per_hour == pytest.approx(written * 100.0)
