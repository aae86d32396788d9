"""Telemetry publishing against a real Mosquitto: delivery, the online/offline status, and no loss
of queued records across a broker that is not there yet."""

from __future__ import annotations

import asyncio
import json

import aiomqtt

from edge.daemon.telemetry import MqttTarget, TelemetryPublisher
from hil.broker import Mosquitto
from hil.procs import free_port


async def _collect(host: str, port: int, topic: str, n: int) -> list[bytes]:
    got: list[bytes] = []
    async with aiomqtt.Client(
        host, port, protocol=aiomqtt.ProtocolVersion.V5, identifier=f"sub-{topic}"
    ) as sub:
        await sub.subscribe(topic, qos=1)
        async with asyncio.timeout(10):
            async for msg in sub.messages:
                got.append(bytes(msg.payload))  # type: ignore[arg-type]
                if len(got) == n:
                    break
    return got


async def test_records_arrive_in_order_with_online_status(mqtt_broker: Mosquitto) -> None:
    target = MqttTarget(mqtt_broker.host, mqtt_broker.port, client_id="tele-1", topic_prefix="t1")
    pub = TelemetryPublisher(target)
    collector = asyncio.create_task(_collect(mqtt_broker.host, mqtt_broker.port, target.telemetry_topic, 20))
    await asyncio.sleep(0.3)  # the subscriber is in place before anything is published
    pub.start()
    for i in range(20):
        pub.submit(json.dumps({"seq": i}).encode())
    got = await collector
    assert [json.loads(p)["seq"] for p in got] == list(range(20))
    status = await _collect(mqtt_broker.host, mqtt_broker.port, target.status_topic, 1)
    assert json.loads(status[0]) == {"online": True}
    await pub.stop()
    assert pub.dropped == 0


async def test_queue_survives_until_the_broker_appears() -> None:
    port = free_port()
    target = MqttTarget("127.0.0.1", port, client_id="tele-2", topic_prefix="t2", reconnect_max_s=0.5)
    pub = TelemetryPublisher(target)
    pub.start()
    for i in range(5):
        pub.submit(json.dumps({"seq": i}).encode())
    await asyncio.sleep(0.5)
    assert not pub.connected
    assert pub.backlog == 5
    with Mosquitto(port=port):
        # published counts PUBACKs: the broker has taken every record queued while it was away.
        async with asyncio.timeout(10):
            while pub.published < 5:
                await asyncio.sleep(0.05)
        await pub.stop()
    assert pub.backlog == 0
    assert pub.dropped == 0


async def test_overflow_drops_oldest_and_counts() -> None:
    target = MqttTarget("127.0.0.1", free_port(), client_id="tele-3", topic_prefix="t3", queue_max=3)
    pub = TelemetryPublisher(target)
    for i in range(5):
        pub.submit(str(i).encode())
    assert pub.backlog == 3
    assert pub.dropped == 2
