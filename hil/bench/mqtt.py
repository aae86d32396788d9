"""The aggregator link's costs, against a real Mosquitto on loopback (``v2g-hil bench mqtt``).

- live: telemetry-size records submitted to the link (spool first, then QoS 1) against the same
  payloads published with a bare aiomqtt client: latency from submit (or publish) to the
  subscriber's receipt, and the rate at which a burst gets through; ratios against bare aiomqtt;
- backlog: a day of 1 s telemetry spooled while offline (a tenth of it with ``--quick``) drained at
  the default replay settings (``replay_batch``, ``replay_rate_msgs_s``) while live telemetry goes
  on at 1 s: the drain time (target under 5 minutes for the day) and the largest gap between live
  records meanwhile;
- card: bytes the spool writes per hour while offline (``hil.bench._spool_bytes``).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import msgspec

from edge.daemon.dispatch import Dispatcher
from edge.daemon.tasks import cancel
from edge.link.client import AggregatorLink
from edge.link.commands import CommandHandler
from edge.link.spool import Spool
from edge.link.topics import Topics
from edge.settings import Settings, load_default
from hil.bench import Figure
from hil.bench._spool_bytes import SPOOL_MAX_BYTES, measure_offline_bytes, telemetry_body
from hil.broker import Mosquitto

DAY_S = 86_400


def _settings(broker: Mosquitto) -> Settings:
    s = load_default()
    mq = msgspec.structs.replace(s.mqtt, enabled=True, host=broker.host, port=broker.port, tls=False)
    return msgspec.structs.replace(s, mqtt=mq)


def _link(settings: Settings, spool: Spool, rng: random.Random) -> AggregatorLink:
    mq = settings.mqtt
    topics = Topics(mq.topic_prefix, mq.site_id, mq.evse_id)
    handler = CommandHandler(
        dispatcher=Dispatcher(settings.operation, settings.inverter, settings.functions),
        meta=spool,
        settings=lambda: settings,
        apply=lambda _: None,
        rand=rng.random,
        allow_grid=False,
    )
    return AggregatorLink(
        mq,
        spool=spool,
        topics=topics,
        handler=handler,
        state=lambda online: b'{"online":%s}' % (b"true" if online else b"false"),
        rand=rng.random,
        replay_start_jitter_s=0.0,
    )


class _Receiver:
    """Subscribes to the charger's telemetry topics and notes when each seq arrived."""

    def __init__(self, broker: Mosquitto, topics: Topics) -> None:
        self.broker, self.topics = broker, topics
        self.live: dict[int, float] = {}
        self.replayed = 0
        self.ready = asyncio.Event()

    async def run(self) -> None:
        async with aiomqtt.Client(
            self.broker.host, self.broker.port, protocol=aiomqtt.ProtocolVersion.V5, identifier="bench-rx"
        ) as c:
            await c.subscribe(self.topics.telemetry, qos=1)
            await c.subscribe(self.topics.telemetry_replay, qos=1)
            self.ready.set()
            async for m in c.messages:
                now = time.perf_counter()
                body = bytes(m.payload)  # type: ignore[arg-type]
                if str(m.topic) == self.topics.telemetry:
                    self.live[msgspec.json.decode(body)["seq"]] = now
                else:
                    self.replayed += len(msgspec.json.decode(body)["records"])

    async def started(self) -> asyncio.Task[None]:
        """Run in a task, subscribed (within 10 s); the task is cancelled if it never gets there."""
        task = asyncio.create_task(self.run())
        try:
            async with asyncio.timeout(10):
                await self.ready.wait()
        except BaseException:
            await cancel(task)
            raise
        return task


async def _until(predicate: Callable[[], bool], timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110  # polled: the receiver sets no event per seq
            await asyncio.sleep(0.002)


async def _bare(
    broker: Mosquitto, topics: Topics, rx: _Receiver, n: int, paced: bool
) -> tuple[list[float], float]:
    """Bare aiomqtt: latencies (paced, one at a time) or the burst's duration."""
    lat: list[float] = []
    async with aiomqtt.Client(broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5) as c:
        rx.live.clear()
        t0 = time.perf_counter()
        sent: dict[int, float] = {}
        for i in range(n):
            sent[i] = time.perf_counter()
            if paced:
                await c.publish(topics.telemetry, telemetry_body(i), qos=1)
                await _until(lambda i=i: i in rx.live, 5.0)
                lat.append(rx.live[i] - sent[i])
            else:
                await c.publish(topics.telemetry, telemetry_body(i), qos=1)
        await _until(lambda: len(rx.live) >= n, 30.0)
        return lat, time.perf_counter() - t0


async def _through_link(
    settings: Settings, tmp: Path, rx: _Receiver, n: int, paced: bool
) -> tuple[list[float], float]:
    spool = Spool.open(tmp, max_bytes=SPOOL_MAX_BYTES)
    link = _link(settings, spool, random.Random(1))
    link.start()
    lat: list[float] = []
    try:
        await _until(lambda: link.connected, 10.0)
        rx.live.clear()
        t0 = time.perf_counter()
        for _ in range(n):
            seq = spool.next_seq
            sent = time.perf_counter()
            link.submit("telemetry", telemetry_body(seq), time.time())
            if paced:
                await _until(lambda seq=seq: seq in rx.live, 5.0)
                lat.append(rx.live[seq] - sent)
            else:
                await asyncio.sleep(0)
        await _until(lambda: len(rx.live) >= n, 60.0)
        return lat, time.perf_counter() - t0
    finally:
        await link.stop()
        await spool.aclose()


async def _live(quick: bool) -> list[Figure]:
    n_paced, n_burst = (100, 500) if quick else (500, 3000)
    with Mosquitto() as broker, tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp:
        settings = _settings(broker)
        mq = settings.mqtt
        topics = Topics(mq.topic_prefix, mq.site_id, mq.evse_id)
        rx = _Receiver(broker, topics)
        task = await rx.started()
        try:
            bare_lat, _ = await _bare(broker, topics, rx, n_paced, paced=True)
            _, bare_burst_s = await _bare(broker, topics, rx, n_burst, paced=False)
            link_lat, _ = await _through_link(settings, Path(tmp) / "a", rx, n_paced, paced=True)
            _, link_burst_s = await _through_link(settings, Path(tmp) / "b", rx, n_burst, paced=False)
        finally:
            await cancel(task)
    p50_bare, p50_link = statistics.median(bare_lat) * 1e3, statistics.median(link_lat) * 1e3
    p99_bare = sorted(bare_lat)[int(0.99 * len(bare_lat))] * 1e3
    p99_link = sorted(link_lat)[int(0.99 * len(link_lat))] * 1e3
    rate_bare, rate_link = n_burst / bare_burst_s, n_burst / link_burst_s
    return [
        Figure("mqtt.live_latency_p50", p50_link, "ms", p50_link / p50_bare, "bare_aiomqtt"),
        Figure("mqtt.live_latency_p99", p99_link, "ms", p99_link / p99_bare, "bare_aiomqtt"),
        Figure("mqtt.live_rate", rate_link, "msg/s", rate_link / rate_bare, "bare_aiomqtt"),
    ]


async def _backlog(quick: bool) -> list[Figure]:
    n = DAY_S // 10 if quick else DAY_S
    with Mosquitto() as broker, tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp:
        settings = _settings(broker)
        spool = Spool.open(Path(tmp), max_bytes=SPOOL_MAX_BYTES)
        t_unix = time.time() - n
        for i in range(n):
            spool.append("telemetry", telemetry_body(spool.next_seq), t_unix + i)
            if i % 5000 == 0:
                await spool.flush()
        await spool.flush()
        mq = settings.mqtt
        topics = Topics(mq.topic_prefix, mq.site_id, mq.evse_id)
        rx = _Receiver(broker, topics)
        try:
            rx_task = await rx.started()
        except BaseException:
            await spool.aclose()
            raise
        link = _link(settings, spool, random.Random(2))
        link.start()
        live_at: list[float] = []
        try:
            await _until(lambda: link.connected, 10.0)
            t0 = time.perf_counter()
            while rx.replayed < n:
                seq = spool.next_seq
                link.submit("telemetry", telemetry_body(seq), time.time())
                await asyncio.sleep(1.0)
                if seq in rx.live:
                    live_at.append(rx.live[seq])
                if time.perf_counter() - t0 > 1800:
                    raise RuntimeError(f"backlog not drained in 30 min ({rx.replayed} of {n})")
            drain_s = time.perf_counter() - t0
        finally:
            await link.stop()
            await spool.aclose()
            await cancel(rx_task)
    gaps = [b - a for a, b in itertools.pairwise(live_at)]
    return [
        Figure(f"mqtt.backlog_drain_{n}_records", drain_s, "s"),
        Figure("mqtt.backlog_drain_rate", n / drain_s, "records/s"),
        Figure("mqtt.live_max_gap_during_drain", max(gaps) if gaps else float("nan"), "s"),
    ]


def run(quick: bool = False) -> list[Figure]:
    figures = asyncio.run(_live(quick))
    figures += asyncio.run(_backlog(quick))
    figures.append(
        Figure(
            "mqtt.spool_offline_bytes_per_hour", measure_offline_bytes(1.0, 300.0 if quick else 3600.0), "B/h"
        )
    )
    return figures
