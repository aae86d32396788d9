"""The MQTT 5 session with the aggregator: connect securely, publish what the spool holds, take commands.

Everything the daemon reports goes through the spool first (``edge.link.spool``): a record is on disk
before it is offered to the broker and leaves the disk only once the broker acknowledged it (QoS 1),
so a broker outage, a lost connection or a kill -9 of the daemon loses nothing within the spool's
bound; the aggregator drops duplicates by sequence number.

One session at a time (``_session``):
- connect with the commissioned TLS context and credentials (``edge.link.config``), a last will that
  marks the charger offline, and publish the retained ``state`` (online);
- live records (made since this session began) go out at once, one per message, with at most
  ``inflight_max`` unacknowledged;
- the backlog (records from before this session: an outage, a previous daemon) is replayed in order
  beside them, batched (``replay_batch`` records per message on ``.../replay``), one batch in
  flight, at ``replay_rate_msgs_s`` with jitter and a random start delay, so that a fleet coming back
  at once does not flood the broker and live telemetry keeps its period;
- commands arrive on ``cmd/+`` (and ``ha/+/set``); each gets its result on the MQTT 5 response topic
  (default ``result``) with the request's correlation data.
Between sessions: back-off with jitter, reset after a session that lasted ``GOOD_SESSION_S``. A
broker's refusal (credentials, certificate) is logged at WARNING with its reason once per episode;
the cause goes in ``problem`` for status. A clean stop publishes ``state`` offline before leaving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal, TypeVar

import aiomqtt
import msgspec
import paho.mqtt.client as mqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge.daemon.tasks import cancel
from edge.link.commands import CommandHandler
from edge.link.config import LinkConfigError, check_files, read_password, tls_context
from edge.link.payloads import Result
from edge.link.spool import Spool, SpoolRow
from edge.link.topics import Topics
from edge.settings.model import Mqtt

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/json"
CERT_CHECK_PERIOD_S = 86_400.0
DURABLE_RETRY_S = 1.0
LIVE_MAX = 10_000
HELD_BACK = "the spool cannot write: live records held back"
GOOD_SESSION_S = 60.0  # a session this long resets the back-off
STOP_S = 2.0  # a clean stop's time with the broker (within the unit's TimeoutStopSec, with the ramp)
# At a clean stop, records made just before it (the daemon_stop event) go out live within this, ahead
# of the offline state, instead of waiting in the spool for the next daemon. Part of STOP_S.
STOP_DRAIN_S = 1.0
STOP_DRAIN_POLL_S = 0.02
REPLAY_START_JITTER_S = 10.0  # replay begins at a random moment within this after connecting
REPLAY_BATCH_MAX_BYTES = 64 * 1024  # a batch stays small enough for a thin cellular uplink
REPLAY_PUBLISH_TIMEOUT_S = 60.0
MAX_PACKET_BYTES = 16 * 1024 * 1024  # larger is never delivered; up to it a command too big is answered
Kind = Literal["telemetry", "event"]
T = TypeVar("T")


class _LastError(logging.Filter):
    """Keeps paho's last ERROR line and keeps it out of the log: with TLS 1.3 a broker's refusal of
    our certificate reaches the client only as such a line (``TLSV13_ALERT_CERTIFICATE_REQUIRED``)
    and a connect timeout, and it would repeat on every retry; the link logs the cause itself, once
    per episode. Warnings (a full incoming queue: a command dropped) pass on to the log."""

    def __init__(self) -> None:
        super().__init__()
        self.message: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            self.message = record.getMessage()
            return False
        return True


def _paho_logger() -> tuple[logging.Logger, _LastError]:
    logger = logging.getLogger("edge.link.paho")
    logger.setLevel(logging.WARNING)
    for old in list(logger.filters):
        logger.removeFilter(old)
    last = _LastError()
    logger.addFilter(last)
    return logger, last


class PublishRefusedError(aiomqtt.MqttError):
    """The broker answered a publish with a failure reason (an ACL refusing the topic, quota)."""

    def __init__(self, topic: str, reason: ReasonCode) -> None:
        super().__init__(
            f"the broker refused a publish to {topic}: {reason} (check its ACL and the topic ids)"
        )


class _CheckedClient(aiomqtt.Client):
    """aiomqtt's client whose QoS 1 publish fails when the broker's PUBACK carries a failure reason,
    and whose waits for the broker keep a cancellation (``_wait_for``).

    aiomqtt 2.5 ignores that reason code: a publish the broker refuses by ACL (Mosquitto 2.0 answers
    135 Not authorized and keeps the connection) would count as delivered and leave the spool. This
    relies on aiomqtt's internals (pinned version; tests/link prove both).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused_mids: dict[int, ReasonCode] = {}

    async def _wait_for(self, fut: Awaitable[T], timeout: float | None) -> T:  # noqa: ASYNC109
        """aiomqtt's wait for a broker's answer (publish, subscribe, connect), with ``asyncio.timeout``
        instead of ``asyncio.wait_for``: on Python 3.11 ``wait_for`` returns an answer arriving as the
        caller is cancelled and drops the cancellation, so the link's task would run on and ``stop()``,
        which cancels it and waits, would wait forever (the same defect hung the bench's SCPI client)."""
        if timeout is None:
            timeout = self.timeout
        try:
            async with asyncio.timeout(None if timeout == math.inf else timeout):
                return await fut
        except TimeoutError:
            raise aiomqtt.MqttError("Operation timed out") from None

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_code: ReasonCode, properties: Properties
    ) -> None:
        if reason_code.is_failure:
            self._refused_mids[mid] = reason_code
        super()._on_publish(client, userdata, mid, reason_code, properties)

    async def publish_checked(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        properties: Properties | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  # aiomqtt's own per-call timeout, kept
    ) -> None:
        """Publish at QoS 1 and return once the broker acknowledged it without a failure reason."""
        info = self._client.publish(topic, payload, 1, retain, properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        if not info.is_published():
            confirmation = asyncio.Event()
            with self._pending_call(info.mid, confirmation, self._pending_publishes):
                await self._wait_for(confirmation.wait(), timeout=timeout)
        reason = self._refused_mids.pop(info.mid, None)
        if reason is not None:
            raise PublishRefusedError(topic, reason)


def _properties(packet: int, **values: object) -> Properties:
    props = Properties(packet)  # type: ignore[no-untyped-call]  # paho ships no annotations here
    props.ContentType = CONTENT_TYPE
    for name, value in values.items():
        setattr(props, name, value)
    return props


class AggregatorLink:
    """See the module docstring. ``submit`` and ``event`` never block; ``start``/``stop`` own the task."""

    def __init__(
        self,
        mq: Mqtt,
        *,
        spool: Spool,
        topics: Topics,
        handler: CommandHandler,
        state: Callable[[bool], bytes],
        discovery: Callable[[], list[tuple[str, bytes]]] | None = None,
        on_result: Callable[[str, Result], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rand: Callable[[], float],
        replay_start_jitter_s: float = REPLAY_START_JITTER_S,
    ) -> None:
        self.mq = mq
        self.spool = spool
        self.topics = topics
        self.handler = handler
        self._state = state
        self._discovery = discovery
        self._on_result = on_result
        self.clock = clock
        self.wall_clock = wall_clock
        self._rand = rand
        self._replay_start_jitter_s = replay_start_jitter_s
        self._tls = tls_context(mq)
        self._password = read_password(mq)
        self._live: deque[tuple[int, Kind, bytes]] = deque()
        self._live_ready = asyncio.Event()
        self._live_from: int | None = None  # first seq of this session's live records
        self._live_pending: set[asyncio.Task[None]] = set()  # live publishes not yet acknowledged
        self._task: asyncio.Task[None] | None = None
        self._client: _CheckedClient | None = None
        self._reconnect = asyncio.Event()
        self.connected = False
        self.problem: str | None = "not connected yet"
        self.published = 0
        self.replayed = 0
        self.results = 0
        self._last_refusal: str | None = None
        self._paho_log, self._paho_error = _paho_logger()
        self._stopping = False
        self._retained_warned = False
        self._certs_checked_s: float | None = None
        self._retained: dict[str, bytes] = {}
        self.cert_warnings: list[str] = []

    # --- from the daemon's cycle ---------------------------------------------------------------

    def submit(self, kind: Kind, body: bytes, t_unix_s: float) -> None:
        """Keep a record (already holding ``spool.next_seq`` as its seq) and offer it when connected."""
        seq = self.spool.append(kind, body, t_unix_s)
        if self._live_from is not None:
            if len(self._live) >= LIVE_MAX:
                # Held back for long (the spool cannot write): the oldest wait in the spool for the
                # next session's replay instead of in memory twice.
                self._live.popleft()
            self._live.append((seq, kind, body))
            self._live_ready.set()

    def state_changed(self) -> None:
        """The retained state is out of date (mode, settings): publish it again."""
        client = self._client
        if client is not None and self.connected and not self._stopping:
            task = asyncio.get_running_loop().create_task(self._publish_state(client, online=True))
            task.add_done_callback(_log_state_failure)

    def set_retained(self, topic: str, body: bytes) -> None:
        """Keep ``body`` retained on ``topic`` (within the charger's tree): published now when
        connected, and again at every connect (a plan made while offline is not lost)."""
        self._retained[topic] = body
        client = self._client
        if client is not None and self.connected and not self._stopping:
            task = asyncio.get_running_loop().create_task(client.publish_checked(topic, body, retain=True))
            task.add_done_callback(_log_state_failure)

    def reload_credentials(self, tls: ssl.SSLContext | None, password: str | None) -> None:
        """SIGHUP: take renewed certificates / password (built and checked by the caller) and reconnect."""
        self._tls, self._password = tls, password
        self._certs_checked_s = None
        self._reconnect.set()

    # --- task ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mqtt-link")

    async def stop(self) -> None:
        """Publish ``state`` offline (a clean stop clears the retained online), then leave; if that
        cannot be done, leave so that the broker sends the last will (offline) instead."""
        self._stopping = True  # no state republished from now on: it would say online
        client = self._client
        if client is not None and self.connected:
            deadline = asyncio.get_running_loop().time() + STOP_S
            await self._drain_live(STOP_DRAIN_S)
            try:
                async with asyncio.timeout_at(deadline):
                    await self._publish_state(client, online=False)
            except (aiomqtt.MqttError, TimeoutError):
                with contextlib.suppress(Exception):  # the connection may be gone already
                    client._client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4))
        await cancel(self._task)
        self._task = None

    async def _drain_live(self, within_s: float) -> None:
        """Wait (at most ``within_s``) until the live records submitted so far are acknowledged; a
        record left over stays in the spool, replayed by the next session. Not while they are held
        back (the spool cannot commit): they would not go out within the wait."""
        loop = asyncio.get_running_loop()
        end = loop.time() + within_s
        # A poll, not an event: four conditions end the wait, once per daemon's life, bounded.
        while self._live_outstanding() and loop.time() < end:  # noqa: ASYNC110
            await asyncio.sleep(STOP_DRAIN_POLL_S)

    def _live_outstanding(self) -> bool:
        """Live records queued or being published that this session can still deliver."""
        return bool(self._live or self._live_pending) and self.connected and self.problem != HELD_BACK

    async def _run(self) -> None:
        mq = self.mq
        delay = mq.reconnect_min_s
        while True:
            began = self.clock()
            self._check_certificates()
            try:
                await self._session()
            except MqttConnectError as exc:
                self._refused(f"the broker refused the connection: {exc}")
            except PublishRefusedError as exc:
                self._refused(str(exc))
            except aiomqtt.MqttError as exc:
                if self.connected:
                    log.warning("MQTT broker %s:%d lost: %s", mq.host, self._port, exc)
                    self._last_refusal = None
                    self.problem = f"connection lost: {exc}"
                else:
                    self._refused(_connect_failure(exc, self._paho_error.message))
            except _ReconnectRequestedError:
                log.info("MQTT: reconnecting with renewed credentials")
            except Exception as exc:  # a bug or a failing spool must not end the link for good
                why = f"link failed: {type(exc).__name__}: {exc}"
                if why != self._last_refusal:
                    log.exception("MQTT %s; trying again", why)
                self._last_refusal = self.problem = why
            finally:
                self.connected = False
                self._client = None
                self._live_from = None
                self._live.clear()  # they are in the spool: the next session replays them
            if self.clock() - began >= GOOD_SESSION_S:
                delay = mq.reconnect_min_s
            # Jitter: a fleet that lost its broker together must not come back in step.
            await asyncio.sleep(delay * (0.5 + self._rand()))
            delay = min(delay * 2.0, mq.reconnect_max_s)

    def _check_certificates(self) -> None:
        """Certificates running out (or a clock not set) are warned about at start and then daily,
        not only when they already fail (a charger runs for months without a restart)."""
        now = self.clock()
        if self._certs_checked_s is not None and now - self._certs_checked_s < CERT_CHECK_PERIOD_S:
            return
        self._certs_checked_s = now
        try:
            self.cert_warnings = check_files(self.mq, now_unix_s=self.wall_clock())
        except LinkConfigError as exc:  # changed on disk since the start: named, tried again tomorrow
            self.cert_warnings = [str(exc)]
        for warning in self.cert_warnings:
            log.warning("MQTT: %s", warning)

    @property
    def _port(self) -> int:
        return self.mq.resolved_port

    def _refused(self, why: str) -> None:
        self.problem = why
        if why != self._last_refusal:
            log.warning("MQTT broker %s:%d: %s", self.mq.host, self._port, why)
            self._last_refusal = why
        else:
            log.debug("MQTT broker %s:%d: %s", self.mq.host, self._port, why)

    async def _session(self) -> None:
        mq, t = self.mq, self.topics
        will = aiomqtt.Will(
            t.state, self._state(False), qos=1, retain=True, properties=_properties(PacketTypes.WILLMESSAGE)
        )
        self._reconnect.clear()  # a SIGHUP from here on reconnects again
        self._paho_error.message = None
        connect_props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        connect_props.MaximumPacketSize = MAX_PACKET_BYTES
        client = _CheckedClient(
            mq.host,
            self._port,
            identifier=mq.resolved_client_id,
            username=mq.username,
            password=self._password,
            protocol=aiomqtt.ProtocolVersion.V5,
            will=will,
            keepalive=int(mq.keepalive_s),
            timeout=10,
            tls_context=self._tls,
            max_inflight_messages=mq.inflight_max + 1,
            max_queued_incoming_messages=100,
            logger=self._paho_log,
            properties=connect_props,
        )
        # Up to inflight_max live publishes plus a replay batch, state and results are expected.
        client.pending_calls_threshold = mq.inflight_max + 10
        async with client:
            self._client = client
            self.connected = True
            self._live_from = self.spool.next_seq
            self._live_ready.set()
            await self._publish_state(client, online=True)
            # Only now is the link known to work: a broker that takes the connection but refuses
            # our publishes is one problem, logged once, not a new one at every reconnect.
            self.problem = None
            if self._last_refusal is not None:
                log.info("MQTT broker %s:%d takes the link again", mq.host, self._port)
            else:
                log.info("MQTT connected to %s:%d as %s", mq.host, self._port, mq.resolved_client_id)
            self._last_refusal = None
            for topic, body in self._discovery() if self._discovery is not None else []:
                await client.publish_checked(topic, body, retain=True)
            for topic, body in list(self._retained.items()):
                await client.publish_checked(topic, body, retain=True)
            # Retained commands are not taken (retainHandling 2: none sent on subscribing): a value
            # left on the broker must not be applied again at every reconnect.
            options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
            await client.subscribe(t.cmd_filter, options=options)
            if mq.home_assistant:
                await client.subscribe(t.ha_filter, options=options)
            await _until_one_fails(
                self._commands(client),
                self._publish_live(client),
                self._replay(client, self._live_from),
                self._await_reconnect(),
            )

    async def _await_reconnect(self) -> None:
        await self._reconnect.wait()
        raise _ReconnectRequestedError

    async def _publish_state(self, client: _CheckedClient, *, online: bool) -> None:
        await client.publish_checked(
            self.topics.state, self._state(online), retain=True, properties=_properties(PacketTypes.PUBLISH)
        )

    # --- publishing ----------------------------------------------------------------------------

    def _topic(self, kind: Kind, *, replay: bool) -> str:
        t = self.topics
        if kind == "telemetry":
            return t.telemetry_replay if replay else t.telemetry
        return t.events_replay if replay else t.events

    async def _publish_live(self, client: _CheckedClient) -> None:
        """Each new record at once, QoS 1, at most ``inflight_max`` unacknowledged."""
        slots = asyncio.Semaphore(self.mq.inflight_max)
        props = _properties(PacketTypes.PUBLISH)
        failure: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending = self._live_pending

        async def one(seq: int, kind: Kind, body: bytes) -> None:
            try:
                await client.publish_checked(self._topic(kind, replay=False), body, properties=props)
            except aiomqtt.MqttError as exc:
                if not failure.done():
                    failure.set_exception(exc)
                return
            finally:
                slots.release()
            self.spool.ack((seq,))
            self.published += 1

        async def take() -> tuple[int, Kind, bytes]:
            while True:
                while not self._live:
                    self._live_ready.clear()
                    await _first(self._live_ready.wait(), failure)
                seq = self._live[0][0]
                if self.spool.durable(seq):
                    if self.problem == HELD_BACK:
                        self.problem = None
                    return self._live.popleft()
                # The spool cannot commit (full or failing card): a number published now could be
                # handed out again after a crash, and the aggregator would drop that record as a
                # duplicate. Hold live records back until a commit works.
                self.problem = HELD_BACK
                await _first(asyncio.sleep(DURABLE_RETRY_S), failure)

        try:
            while True:
                # The slot is taken before the record, so that a record is always either queued or
                # in a pending task (a clean stop's drain waits for both).
                await _first(slots.acquire(), failure)
                seq, kind, body = await take()
                task = asyncio.get_running_loop().create_task(one(seq, kind, body))
                pending.add(task)
                task.add_done_callback(pending.discard)
        finally:
            await _cancel_all(set(pending))
            if failure.done() and not failure.cancelled():
                failure.exception()  # retrieved: it was raised above, or the session ended anyway

    async def _replay(self, client: _CheckedClient, before_seq: int) -> None:
        """The backlog, oldest first, batched per kind, rate-capped with jitter; live goes first."""
        mq = self.mq
        if self._replay_start_jitter_s > 0.0:
            await asyncio.sleep(self._rand() * self._replay_start_jitter_s)
        props = _properties(PacketTypes.PUBLISH)
        after = 0
        period_s = 1.0 / mq.replay_rate_msgs_s
        while True:
            rows = await self.spool.fetch(after_seq=after, before_seq=before_seq, limit=mq.replay_batch)
            if not rows:
                log.info("MQTT backlog sent (%d records replayed in this session)", self.replayed)
                return
            # One kind per message, in seq order: a batch ends where the kind changes.
            kind = rows[0].kind
            batch: list[SpoolRow] = []
            size = 0
            for row in rows:
                if row.kind != kind or (batch and size + len(row.body) > REPLAY_BATCH_MAX_BYTES):
                    break
                batch.append(row)
                size += len(row.body)
            body = b'{"replay":true,"records":[' + b",".join(r.body for r in batch) + b"]}"
            await client.publish_checked(
                self._topic("telemetry" if kind == "telemetry" else "event", replay=True),
                body,
                properties=props,
                timeout=REPLAY_PUBLISH_TIMEOUT_S,
            )
            self.spool.ack(r.seq for r in batch)
            self.replayed += len(batch)
            after = batch[-1].seq
            await asyncio.sleep(period_s * (0.5 + self._rand()))

    # --- commands ------------------------------------------------------------------------------

    async def _commands(self, client: _CheckedClient) -> None:
        t = self.topics
        async for message in client.messages:
            parsed = t.parse_cmd(str(message.topic))
            if parsed is None:
                continue
            if message.retain:
                if not self._retained_warned:
                    log.warning(
                        "MQTT: retained message on %s ignored: commands are never retained", message.topic
                    )
                    self._retained_warned = True
                continue
            where, name = parsed
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            now_unix, now = self.wall_clock(), self.clock()
            if where == "ha":
                result = self.handler.handle_ha(name, payload, t_unix_s=now_unix, t_s=now)
            else:
                result = self.handler.handle(name, payload, t_unix_s=now_unix, t_s=now)
            self.results += 1
            if self._on_result is not None:
                self._on_result(name, result)
            props = message.properties
            # Answers go only under our own result topic: the broker's ACL confines the charger to
            # its tree and refuses a publish outside it.
            asked = getattr(props, "ResponseTopic", None)
            response_topic = asked if asked and _within(asked, t.result) else t.result
            values: dict[str, object] = {}
            correlation = getattr(props, "CorrelationData", None)
            if correlation is not None:
                values["CorrelationData"] = correlation
            body = msgspec.json.encode(result)
            try:
                await client.publish_checked(
                    response_topic, body, properties=_properties(PacketTypes.PUBLISH, **values)
                )
            except ValueError as exc:  # a response topic paho refuses (wildcards): answer on ours
                log.warning("MQTT command result: response topic %r refused (%s)", response_topic, exc)
                await client.publish_checked(
                    t.result, body, properties=_properties(PacketTypes.PUBLISH, **values)
                )


def _within(topic: str, root: str) -> bool:
    return topic == root or topic.startswith(root + "/")


class _ReconnectRequestedError(Exception):
    """Leave the session to connect again (renewed credentials)."""


async def _first(coro: Coroutine[object, object, object], failure: asyncio.Future[None]) -> None:
    """Await ``coro`` unless ``failure`` completes first (then raise its exception)."""
    task = asyncio.get_running_loop().create_task(coro)
    try:
        done, _ = await asyncio.wait((task, failure), return_when=asyncio.FIRST_COMPLETED)
    finally:
        await _cancel_all({task})
    if failure in done:
        failure.result()
    await task


async def _until_one_fails(*coros: Coroutine[object, object, None]) -> None:
    """Run ``coros`` together until one raises (a coroutine that returns just ends); then cancel the
    others and raise that exception itself (not wrapped in a group, unlike a TaskGroup)."""
    loop = asyncio.get_running_loop()
    tasks = {loop.create_task(c) for c in coros}
    try:
        while tasks:
            done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
    finally:
        await _cancel_all(tasks)


async def _cancel_all(tasks: set[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until every one has ended, even while this task is being cancelled
    (a task left pending would be destroyed with its broker call half done). Their own failures are
    retrieved and dropped: the caller has the failure that matters."""
    for task in tasks:
        task.cancel()
    pending = {t for t in tasks if not t.done()}
    interrupted = False
    while pending:
        try:
            _, pending = await asyncio.wait(pending)
        except asyncio.CancelledError:
            interrupted = True  # finish the clean-up first, then pass the cancellation on
    for task in tasks:
        if not task.cancelled():
            task.exception()
    if interrupted:
        raise asyncio.CancelledError


def _log_state_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("MQTT retained message not published: %s", task.exception())  # the next session sends it


def _connect_failure(exc: aiomqtt.MqttError, paho_error: str | None) -> str:
    """A connection failure in words: TLS problems say so (a certificate refused or not trusted)."""
    text = str(exc)
    if paho_error and "SSL" in paho_error:
        return f"TLS: the broker refused the connection ({paho_error})"
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ssl.SSLError) or "SSL" in text or "certificate" in text.lower():
        return f"TLS handshake failed: {text}"
    return f"cannot connect: {text}" + (f" ({paho_error})" if paho_error else "")
