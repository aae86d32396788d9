"""The link's MQTT client waits for the broker with a timeout that keeps a cancellation.

aiomqtt waits for every broker answer (CONNACK, SUBACK, PUBACK) through ``Client._wait_for``, which
uses ``asyncio.wait_for``. On Python 3.11 that returns an answer arriving in the same loop turn as a
cancellation and drops the cancellation: the link's task would run on, and ``AggregatorLink.stop()``,
which cancels it and waits, would never return. The link's client replaces that wait.
"""

from __future__ import annotations

import asyncio
import inspect
import math

import aiomqtt
import pytest

from edge.link.client import _CheckedClient


def _client(timeout_s: float = 10.0) -> _CheckedClient:
    # Never connected: the waits under test do not touch the network.
    return _CheckedClient(
        "127.0.0.1", 1, identifier="wait-test", protocol=aiomqtt.ProtocolVersion.V5, timeout=timeout_s
    )


async def test_a_wait_cancelled_as_its_answer_arrives_is_cancelled() -> None:
    client = _client()
    answer = asyncio.Event()
    task = asyncio.create_task(client._wait_for(answer.wait(), timeout=5.0))
    for _ in range(3):  # let it wait
        await asyncio.sleep(0)
    assert not task.done()
    answer.set()  # the PUBACK's callback, in the same turn as the stop's cancel
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_wait_without_an_answer_times_out_as_aiomqtt_says() -> None:
    client = _client()
    with pytest.raises(aiomqtt.MqttError, match="timed out"):
        await client._wait_for(asyncio.Event().wait(), timeout=0.05)


async def test_a_wait_without_its_own_timeout_takes_the_clients() -> None:
    client = _client(timeout_s=0.05)
    with pytest.raises(aiomqtt.MqttError, match="timed out"):
        await client._wait_for(asyncio.Event().wait(), timeout=None)


async def test_an_unbounded_wait_returns_the_answer_when_it_comes() -> None:
    client = _client(timeout_s=0.01)
    answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(0.1, answer.set_result, 7)  # after the client's timeout
    assert await client._wait_for(answer, timeout=math.inf) == 7


def test_aiomqtt_still_waits_for_every_broker_answer_through_the_override() -> None:
    # The override only helps while aiomqtt routes its waits through Client._wait_for (2.5.1 does:
    # publish, subscribe, unsubscribe, connect, disconnect); an upgrade that stops doing so fails here.
    for method in (
        aiomqtt.Client.publish,
        aiomqtt.Client.subscribe,
        aiomqtt.Client.unsubscribe,
        aiomqtt.Client.__aenter__,
    ):
        assert "self._wait_for(" in inspect.getsource(method), method.__qualname__
    assert list(inspect.signature(aiomqtt.Client._wait_for).parameters) == ["self", "fut", "timeout"]
    assert "self._wait_for(" in inspect.getsource(_CheckedClient.publish_checked)
