"""The link's clean stop against a real Mosquitto: what was submitted just before it goes out live,
ahead of the offline state, instead of waiting in the spool for the next daemon."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec

from edge.link.client import AggregatorLink
from edge.link.spool import Spool
from edge.link.topics import Topics
from edge.settings.model import Mqtt
from hil.broker import Mosquitto
from tests.daemon.bench_support import until
from tests.link.test_link_daemon import BASE, EVSE, SITE, Aggregator, aggregator, link_sections


def _link(broker: Any, spool: Spool, **mqtt: object) -> AggregatorLink:
    mq = msgspec.convert(link_sections(broker, **mqtt)["mqtt"], Mqtt)
    return AggregatorLink(
        mq,
        spool=spool,
        topics=Topics("v2g", SITE, EVSE),
        handler=None,  # type: ignore[arg-type]  # no command is sent in these tests
        state=lambda online: json.dumps({"online": online}).encode(),
        rand=random.random,
        replay_start_jitter_s=60.0,  # no replay within the test: what arrives came live
    )


async def test_records_submitted_just_before_a_clean_stop_go_out_live_before_the_offline_state(
    tmp_path: Path,
) -> None:
    n = 200  # ten times the in-flight window: the stop has to wait for several round trips
    with Mosquitto() as broker:
        async with aggregator(broker) as agg:
            spool = Spool.open(tmp_path, max_bytes=10_000_000)
            try:
                await _submit_and_stop(broker, agg, spool, n)
            finally:
                await spool.aclose()


async def _submit_and_stop(broker: Mosquitto, agg: Aggregator, spool: Spool, n: int) -> None:
    link = _link(broker, spool, inflight_max=20)
    link.start()
    await until(lambda: link.connected and agg.retained_state() != [], 10, "the link is up")
    first = spool.next_seq
    for i in range(n):
        link.submit("event", json.dumps({"seq": spool.next_seq, "kind": "x", "i": i}).encode(), 0.0)
    assert await spool.flush()  # durable, as a running daemon's records are by then
    await link.stop()
    await until(lambda: agg.retained_state()[-1]["online"] is False, 5, "the offline state")
    await asyncio.sleep(0.5)  # anything still on its way from the broker
    live = [json.loads(b)["i"] for t, b, _ in agg.messages if t == f"{BASE}/events"]
    assert live == list(range(n)), f"{len(live)} of {n} went out live"
    last_event = max(i for i, (t, _, _) in enumerate(agg.messages) if t == f"{BASE}/events")
    offline = [
        i
        for i, (t, b, _) in enumerate(agg.messages)
        if t == f"{BASE}/state" and json.loads(b)["online"] is False
    ]
    assert offline and offline[-1] > last_event, "the offline state came before the last record"
    left = await spool.fetch(after_seq=first - 1, before_seq=spool.next_seq, limit=n)
    assert left == [], f"{len(left)} still in the spool"


class _SlowBroker:
    """Acknowledges each publish a few loop turns after it was sent."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def publish_checked(self, topic: str, body: bytes, **_: object) -> None:
        for _turn in range(3):
            await asyncio.sleep(0)
        self.bodies.append(body)


async def test_a_live_record_is_always_queued_or_being_published() -> None:
    # What the stop's wait looks at: a record taken from the queue before a publish slot was free sat
    # in neither for a few loop turns, and the wait could end with it unsent. Checked at every turn.
    spool = Spool.open(None, max_bytes=1_000_000)
    link = _link(SimpleNamespace(host="127.0.0.1", port=1), spool, inflight_max=1)
    broker = _SlowBroker()
    link.connected = True
    link._live_from = spool.next_seq  # as a session sets it on connecting
    n = 20
    for i in range(n):
        link.submit("event", json.dumps({"i": i}).encode(), 0.0)
    task = asyncio.create_task(link._publish_live(broker))  # type: ignore[arg-type]
    try:
        turns = 0
        while len(broker.bodies) < n:
            assert link._live_outstanding(), f"{len(broker.bodies)} of {n} sent, none queued or pending"
            await asyncio.sleep(0)
            turns += 1
            assert turns < 10_000
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [json.loads(b)["i"] for b in broker.bodies] == list(range(n))
