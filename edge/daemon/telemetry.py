"""Publish the daemon's telemetry to the aggregator's MQTT 5 broker, without ever holding up the cycle.

The cycle hands each record to :meth:`TelemetryPublisher.submit`, which only appends to a bounded
queue. A background task connects (with back-off), announces ``online`` (retained, with an
``offline`` last will), and drains the queue at QoS 1. While the broker is unreachable records wait
in the queue; when it overflows the oldest are dropped and counted (``dropped``), so the loss is
visible. Spooling to disk so that nothing is lost across long outages comes with the MQTT issue.

With no broker configured the publisher is not started and the daemon runs on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.daemon.tasks import cancel

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class MqttTarget:
    """Where and as whom to publish."""

    host: str
    port: int
    client_id: str
    topic_prefix: str
    keepalive_s: int = 30
    queue_max: int = 10_000
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0

    @property
    def telemetry_topic(self) -> str:
        return f"{self.topic_prefix}/{self.client_id}/telemetry"

    @property
    def status_topic(self) -> str:
        return f"{self.topic_prefix}/{self.client_id}/status"


def _properties(packet: int) -> Properties:
    props = Properties(packet)  # type: ignore[no-untyped-call]  # paho ships no annotations here
    props.ContentType = CONTENT_TYPE
    return props


class TelemetryPublisher:
    """Bounded queue plus a background task that publishes it; ``submit`` never blocks."""

    def __init__(self, target: MqttTarget) -> None:
        self.target = target
        self._queue: deque[bytes] = deque(maxlen=target.queue_max)
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        self.published = 0
        self.dropped = 0

    def submit(self, payload: bytes) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(payload)
        self._wakeup.set()

    @property
    def backlog(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mqtt-telemetry")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        delay = self.target.reconnect_min_s
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                if self.connected:
                    log.warning("MQTT broker %s:%d lost: %s", self.target.host, self.target.port, exc)
                else:
                    log.debug("MQTT connect to %s:%d failed: %s", self.target.host, self.target.port, exc)
                self.connected = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.target.reconnect_max_s)

    async def _session(self) -> None:
        t = self.target
        will = aiomqtt.Will(
            t.status_topic,
            b'{"online":false}',
            qos=1,
            retain=True,
            properties=_properties(PacketTypes.WILLMESSAGE),
        )
        async with aiomqtt.Client(
            t.host,
            t.port,
            identifier=t.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            will=will,
            keepalive=t.keepalive_s,
            timeout=5,
        ) as client:
            self.connected = True
            log.info("MQTT connected to %s:%d as %s", t.host, t.port, t.client_id)
            props = _properties(PacketTypes.PUBLISH)
            await client.publish(t.status_topic, b'{"online":true}', qos=1, retain=True, properties=props)
            while True:
                while self._queue:
                    payload = self._queue.popleft()
                    try:
                        await client.publish(t.telemetry_topic, payload, qos=1, properties=props)
                    except BaseException:
                        # Not acknowledged: it goes back to the front, to be sent after reconnecting.
                        if len(self._queue) == self._queue.maxlen:
                            self.dropped += 1
                        self._queue.appendleft(payload)
                        raise
                    self.published += 1
                self._wakeup.clear()
                await self._wakeup.wait()
