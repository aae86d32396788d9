"""The link's clean stop against a real Mosquitto: what was submitted just before it goes out live,
ahead of the offline state, instead of waiting in the spool for the next daemon."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import msgspec

from edge.link.client import AggregatorLink
from edge.link.spool import Spool
from edge.link.topics import Topics
from edge.settings.model import Mqtt
from hil.broker import Mosquitto
from tests.daemon.bench_support import until
from tests.link.test_link_daemon import BASE, EVSE, SITE, Aggregator, aggregator, link_sections


def _link(broker: Mosquitto, spool: Spool, **mqtt: object) -> AggregatorLink:
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
