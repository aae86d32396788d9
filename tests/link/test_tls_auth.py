"""The link's transport security against a real Mosquitto with its own test CA (made fresh every test).

Credential checks (edge.link.config.check_files) on real certificate files; a bare MQTT 5 client built
from tls_context()/read_password() against TLS, client-certificate and password brokers; the example
ACL confining each charger to its own topics; the shipped make-test-ca.sh and example broker config.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from aiomqtt.exceptions import MqttConnectError
from cryptography.hazmat.primitives import serialization

from edge.link.config import (
    LinkConfigError,
    cert_expiry_unix_s,
    check_files,
    fingerprint,
    read_password,
    tls_context,
)
from edge.settings.model import Mqtt
from hil.broker import BrokerTls, Mosquitto
from hil.pki import Issued, TestCA
from hil.procs import free_port, stop_process, wait_for_port

REPO = Path(__file__).resolve().parents[2]
ACL_EXAMPLE = REPO / "deploy" / "mosquitto" / "acl.example"
V5 = aiomqtt.ProtocolVersion.V5
# paho's log: with TLS 1.3 the broker's refusal of a client certificate arrives after the handshake
# and shows only here, as a lost connection (aiomqtt itself then times out). Whether the broker's TLS
# alert (certificate required, unknown CA) or a bare EOF is read first is a race.
PAHO_LOG = "test.link.paho"


@dataclass
class Pki:
    ca: TestCA
    broker: Issued
    charger: Issued  # CN bench/evse-1


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = TestCA(tmp_path / "ca")
    return Pki(ca, ca.broker(), ca.client("bench/evse-1"))


def _now() -> float:
    return datetime.now(UTC).timestamp()


def _link(pki: Pki, port: int = 8883, **changes: Any) -> Mqtt:
    """The [mqtt] settings of charger bench/evse-1 with mutual TLS to a broker on localhost."""
    fields: dict[str, Any] = {
        "enabled": True,
        "host": "localhost",
        "port": port,
        "tls": True,
        "ca_file": str(pki.ca.cert),
        "cert_file": str(pki.charger.cert),
        "key_file": str(pki.charger.key),
        "site_id": "bench",
        "evse_id": "evse-1",
    }
    fields.update(changes)
    return Mqtt(**fields)


def _client(mq: Mqtt, *, timeout_s: float = 10.0, identifier: str | None = None) -> aiomqtt.Client:
    """A bare aiomqtt client configured the way the link configures its own."""
    return aiomqtt.Client(
        mq.host,
        mq.resolved_port,
        identifier=identifier or mq.resolved_client_id,
        protocol=V5,
        tls_context=tls_context(mq),
        username=mq.username,
        password=read_password(mq),
        timeout=timeout_s,
        logger=logging.getLogger(PAHO_LOG),
    )


@pytest.fixture
def tls_broker(pki: Pki) -> Iterator[Mosquitto]:
    """TLS, a client certificate from the test CA required, its CN the user name."""
    with Mosquitto(tls=BrokerTls(pki.ca.cert, pki.broker.cert, pki.broker.key)) as broker:
        yield broker


# --- check_files ----------------------------------------------------------------------------------------


def test_good_files_pass_and_expiry_is_read(pki: Pki) -> None:
    mq = _link(pki)
    assert check_files(mq, now_unix_s=_now()) == []
    expiry = cert_expiry_unix_s(str(pki.charger.cert))
    assert 89 * 86400 < expiry - _now() <= 90 * 86400


def test_certificate_expiring_soon_is_warned(pki: Pki, tmp_path: Path) -> None:
    mq = _link(pki)
    expiry = cert_expiry_unix_s(str(pki.charger.cert))
    assert check_files(mq, now_unix_s=expiry - 10 * 86400) == [
        f"mqtt.cert_file = {str(pki.charger.cert)!r}: certificate CN=bench/evse-1 expires in 10 days "
        f"({datetime.fromtimestamp(expiry, UTC):%Y-%m-%dT%H:%M:%SZ}); renew it"
    ]
    assert check_files(_link(pki, cert_warn_days=5), now_unix_s=expiry - 10 * 86400) == []
    short = TestCA(tmp_path / "short", days=20)
    (warning,) = check_files(_link(pki, ca_file=str(short.cert)), now_unix_s=_now())
    assert warning.startswith(
        f"mqtt.ca_file = {str(short.cert)!r}: certificate CN=v2g-edge test CA expires in 20 days"
    )


def _refused_file(mq: Mqtt) -> LinkConfigError:
    with pytest.raises(LinkConfigError) as err:
        check_files(mq, now_unix_s=_now())
    return err.value


@pytest.mark.parametrize("field", ["ca_file", "cert_file", "key_file"])
def test_missing_file_refused(pki: Pki, tmp_path: Path, field: str) -> None:
    missing = str(tmp_path / "nowhere.pem")
    err = _refused_file(_link(pki, **{field: missing}))
    assert (err.path, err.value, err.reason) == (
        f"mqtt.{field}",
        missing,
        "cannot read: No such file or directory",
    )


def test_unreadable_file_refused(pki: Pki, tmp_path: Path) -> None:
    # A directory where the key should be (the tests run as root, for whom modes do not block a read).
    err = _refused_file(_link(pki, key_file=str(tmp_path)))
    assert (err.path, err.reason) == ("mqtt.key_file", "cannot read: Is a directory")


def test_ca_file_without_certificate_refused(pki: Pki) -> None:
    err = _refused_file(_link(pki, ca_file=str(pki.ca.key)))
    assert (err.path, err.reason) == ("mqtt.ca_file", "holds no PEM certificate")


def test_key_of_another_certificate_refused(pki: Pki) -> None:
    other = pki.ca.client("bench/evse-2")
    err = _refused_file(_link(pki, key_file=str(other.key)))
    assert err.path == "mqtt.key_file"
    assert err.reason == f"does not match the certificate in mqtt.cert_file ({pki.charger.cert})"


def test_encrypted_key_refused(pki: Pki, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(pki.charger.key.read_bytes(), password=None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    err = _refused_file(_link(pki, key_file=str(locked)))
    assert (err.path, err.reason) == ("mqtt.key_file", "the key is encrypted with a passphrase")
    # The context never prompts for it either.
    with pytest.raises(LinkConfigError, match=r"^mqtt\.cert_file"):
        tls_context(_link(pki, key_file=str(locked)))


def test_expired_certificate_is_a_warning_not_a_refusal(pki: Pki) -> None:
    """The charger still starts (local control goes on); the warning says the link fails until renewed."""
    now = datetime.now(UTC)
    old = pki.ca.client("bench/old", not_before=now - timedelta(days=400), not_after=now - timedelta(days=1))
    warnings = check_files(
        _link(pki, cert_file=str(old.cert), key_file=str(old.key)), now_unix_s=now.timestamp()
    )
    expired_at = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert any(
        w.startswith(f"mqtt.cert_file = {str(old.cert)!r}: certificate CN=bench/old expired at {expired_at}")
        and "until it is renewed" in w
        for w in warnings
    ), warnings


def test_certificate_not_yet_valid_is_a_warning_naming_the_clock(pki: Pki) -> None:
    now = datetime.now(UTC)
    new = pki.ca.client("bench/new", not_before=now + timedelta(days=2), not_after=now + timedelta(days=30))
    warnings = check_files(
        _link(pki, cert_file=str(new.cert), key_file=str(new.key)), now_unix_s=now.timestamp()
    )
    assert any("is not valid before" in w and "(check the clock)" in w for w in warnings), warnings


def _password_file(tmp_path: Path, text: str, mode: int = 0o600) -> str:
    path = tmp_path / "password"
    path.write_text(text)
    path.chmod(mode)
    return str(path)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_password_file_open_to_others_refused(pki: Pki, tmp_path: Path, mode: int) -> None:
    mq = _link(pki, username="bench/evse-1", password_file=_password_file(tmp_path, "s3cret\n", mode))
    err = _refused_file(mq)
    assert err.path == "mqtt.password_file"
    assert err.reason == f"mode {mode:04o} lets group or others read or change the password"
    assert err.allowed == "0600 or 0400, owned by the service user"
    with pytest.raises(LinkConfigError):
        read_password(mq)


@pytest.mark.parametrize(
    ("text", "reason"), [("", "empty"), ("\n", "empty"), ("one\ntwo\n", "more than one line")]
)
def test_bad_password_file_refused(pki: Pki, tmp_path: Path, text: str, reason: str) -> None:
    mq = _link(pki, username="bench/evse-1", password_file=_password_file(tmp_path, text))
    assert (_refused_file(mq).path, _refused_file(mq).reason) == ("mqtt.password_file", reason)


@pytest.mark.parametrize("text", ["s3cret", "s3cret\n", "s3cret\r\n"])
def test_password_is_the_one_line(pki: Pki, tmp_path: Path, text: str) -> None:
    mq = _link(pki, username="bench/evse-1", password_file=_password_file(tmp_path, text, 0o400))
    assert check_files(mq, now_unix_s=_now()) == []
    assert read_password(mq) == "s3cret"
    assert read_password(_link(pki)) is None


def test_plaintext_link_has_no_context(pki: Pki) -> None:
    assert tls_context(Mqtt(enabled=True, tls=False)) is None
    ctx = tls_context(_link(pki))
    assert ctx is not None and ctx.check_hostname and ctx.minimum_version.name == "TLSv1_2"


def test_fingerprint_follows_the_files(pki: Pki, tmp_path: Path) -> None:
    mq = _link(pki, username="bench/evse-1", password_file=_password_file(tmp_path, "one\n"))
    first = fingerprint(mq)
    assert fingerprint(mq) == first
    renewed = pki.ca.client("bench/evse-1")  # same files, new certificate and key
    assert renewed.cert == pki.charger.cert
    assert fingerprint(mq) != first
    second = fingerprint(mq)
    Path(str(mq.password_file)).write_text("two\n")
    assert fingerprint(mq) != second
    # A vanished file changes it too, without raising (check_files says what is wrong).
    os.remove(str(mq.password_file))
    assert fingerprint(mq) not in (first, second)


# --- against the broker --------------------------------------------------------------------------------


async def test_valid_client_certificate_connects(pki: Pki, tls_broker: Mosquitto) -> None:
    mq = _link(pki, port=tls_broker.port)
    async with _client(mq) as client:
        await client.subscribe("v2g/bench/evse-1/cmd/+", qos=1)
        await client.publish("v2g/bench/evse-1/cmd/mode", b"v2g", qos=1)
        async with asyncio.timeout(10):
            message = await anext(aiter(client.messages))
        assert message.payload == b"v2g"
    assert f"as {mq.resolved_client_id} (p5, c1, k60, u'bench/evse-1')" in tls_broker.log_path.read_text()


async def _refused_by_broker(mq: Mqtt, caplog: pytest.LogCaptureFixture) -> str:
    """Connect, expect failure; return paho's record of why (the broker's TLS alert)."""
    caplog.set_level(logging.DEBUG, logger=PAHO_LOG)
    with pytest.raises(aiomqtt.MqttError):
        async with _client(mq, timeout_s=3.0):
            pass
    return "\n".join(r.getMessage() for r in caplog.records if r.name == PAHO_LOG)


async def test_client_without_certificate_refused(
    pki: Pki, tls_broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    log = await _refused_by_broker(_link(pki, port=tls_broker.port, cert_file=None, key_file=None), caplog)
    assert "failed to receive on socket" in log
    assert "peer did not return a certificate" in tls_broker.log_path.read_text()


async def test_certificate_of_a_foreign_ca_refused(
    pki: Pki, tls_broker: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    foreign = TestCA(tmp_path / "foreign").client("bench/evse-1")  # same name, another CA
    mq = _link(pki, port=tls_broker.port, cert_file=str(foreign.cert), key_file=str(foreign.key))
    assert check_files(mq, now_unix_s=_now()) == []  # nothing wrong locally: only the broker can tell
    assert "failed to receive on socket" in await _refused_by_broker(mq, caplog)
    assert "certificate verify failed" in tls_broker.log_path.read_text()


async def test_broker_outside_the_ca_refused(pki: Pki, tls_broker: Mosquitto, tmp_path: Path) -> None:
    other = TestCA(tmp_path / "other")
    mq = _link(pki, port=tls_broker.port, ca_file=str(other.cert))
    with pytest.raises(aiomqtt.MqttError, match="CERTIFICATE_VERIFY_FAILED"):
        async with _client(mq):
            pass


async def test_broker_of_another_name_refused(pki: Pki, tmp_path: Path) -> None:
    elsewhere = pki.ca.issue("elsewhere", "mqtt.example.net", server=True, hosts=("mqtt.example.net",))
    with (
        Mosquitto(tls=BrokerTls(pki.ca.cert, elsewhere.cert, elsewhere.key)) as broker,
        pytest.raises(aiomqtt.MqttError, match="Hostname mismatch"),
    ):
        async with _client(_link(pki, port=broker.port)):
            pass


@pytest.fixture
def password_broker(pki: Pki) -> Iterator[Mosquitto]:
    """TLS without client certificates; user names and passwords instead."""
    tls = BrokerTls(
        pki.ca.cert,
        pki.broker.cert,
        pki.broker.key,
        require_certificate=False,
        use_identity_as_username=False,
    )
    with Mosquitto(tls=tls, passwords={"bench/evse-1": "right horse battery"}) as broker:
        yield broker


async def test_password_login(pki: Pki, password_broker: Mosquitto, tmp_path: Path) -> None:
    mq = _link(
        pki,
        port=password_broker.port,
        cert_file=None,
        key_file=None,
        username="bench/evse-1",
        password_file=_password_file(tmp_path, "right horse battery\n"),
    )
    assert check_files(mq, now_unix_s=_now()) == []
    async with _client(mq) as client:
        await client.publish("v2g/bench/evse-1/state", b"{}", qos=1)


async def test_wrong_password_refused_with_the_brokers_reason(
    pki: Pki, password_broker: Mosquitto, tmp_path: Path
) -> None:
    mq = _link(
        pki,
        port=password_broker.port,
        cert_file=None,
        key_file=None,
        username="bench/evse-1",
        password_file=_password_file(tmp_path, "wrong\n"),
    )
    with pytest.raises(MqttConnectError) as err:
        async with _client(mq):
            pass
    # The CONNACK reason code (MQTT 5: 0x87 Not authorized; Mosquitto gives it for a bad password too).
    rc = err.value.rc
    assert not isinstance(rc, int) and rc is not None
    assert (rc.value, str(rc)) == (135, "Not authorized")
    assert str(err.value) == "[code:135] Not authorized"
    assert "disconnected, not authorised" in password_broker.log_path.read_text()


# --- the example ACL -----------------------------------------------------------------------------------


Fleet = tuple[aiomqtt.Client, aiomqtt.Client, Mosquitto]


def _acl_with_home_assistant(tmp_path: Path) -> Path:
    """acl.example with its commented Home Assistant block (a home broker's) switched on."""
    lines = ACL_EXAMPLE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "Home Assistant discovery" in line)
    for i in range(start, len(lines)):
        if lines[i].startswith(("# user ", "# topic ")):
            lines[i] = lines[i].removeprefix("# ")
    path = tmp_path / "acl"
    path.write_text("\n".join([*lines, ""]))
    return path


@pytest.fixture
async def fleet(pki: Pki, tmp_path: Path) -> AsyncIterator[Fleet]:
    """Charger bench/evse-1 and the aggregator on a broker with the example ACL (Home Assistant on)."""
    aggregator = pki.ca.client("aggregator")
    tls = BrokerTls(pki.ca.cert, pki.broker.cert, pki.broker.key)
    with Mosquitto(tls=tls, acl=_acl_with_home_assistant(tmp_path)) as broker:
        charger_mq = _link(pki, port=broker.port)
        agg_mq = _link(pki, port=broker.port, cert_file=str(aggregator.cert), key_file=str(aggregator.key))
        async with _client(charger_mq) as charger, _client(agg_mq, identifier="aggregator") as agg:
            yield charger, agg, broker


async def _next(client: aiomqtt.Client) -> aiomqtt.Message:
    async with asyncio.timeout(10):
        return await anext(aiter(client.messages))


async def test_acl_charger_reads_only_its_own_commands(pki: Pki, fleet: Fleet) -> None:
    charger, agg, broker = fleet
    await charger.subscribe("v2g/bench/evse-2/cmd/+", qos=1)  # another charger's commands
    await charger.subscribe("v2g/bench/evse-1/cmd/+", qos=1)
    await charger.subscribe("v2g/bench/evse-1/ha/+/set", qos=1)
    # One publisher, one subscriber: delivered in order, so the first message shows whether the
    # other charger's command got through.
    await agg.publish("v2g/bench/evse-2/cmd/dispatch", b"for evse-2", qos=1)
    await agg.publish("v2g/bench/evse-1/cmd/dispatch", b"for evse-1", qos=1)
    first = await _next(charger)
    assert (first.topic.value, first.payload) == ("v2g/bench/evse-1/cmd/dispatch", b"for evse-1")
    # Home Assistant (its own user) sets the mode; the charger publishes its discovery config.
    ha_cert = pki.ca.client("homeassistant")
    ha_mq = _link(pki, port=broker.port, cert_file=str(ha_cert.cert), key_file=str(ha_cert.key))
    async with _client(ha_mq, identifier="homeassistant") as ha:
        await ha.subscribe("homeassistant/#", qos=1)
        await ha.publish("v2g/bench/evse-1/ha/mode/set", b"v2h", qos=1)
        assert (await _next(charger)).topic.value == "v2g/bench/evse-1/ha/mode/set"
        await charger.publish("homeassistant/sensor/bench_evse-1/soc/config", b"{}", qos=1)
        assert (await _next(ha)).topic.value == "homeassistant/sensor/bench_evse-1/soc/config"


async def test_acl_charger_writes_only_its_own_tree(fleet: Fleet) -> None:
    charger, agg, _ = fleet
    await agg.subscribe("v2g/#", qos=1)
    own = [
        "v2g/bench/evse-1/state",
        "v2g/bench/evse-1/telemetry",
        "v2g/bench/evse-1/telemetry/replay",
        "v2g/bench/evse-1/events",
        "v2g/bench/evse-1/events/replay",
        "v2g/bench/evse-1/result",
        "v2g/bench/evse-1/result/cmd-42",
    ]
    for topic in own:
        await charger.publish(topic, b"own", qos=1)
    got = [(await _next(agg)).topic.value for _ in own]
    assert got == own
    # Another charger's or site's tree, and its own command topics (the aggregator's to write).
    # Mosquitto 2.0.11 answers a forbidden publish with PUBACK 135 and keeps the connection (some
    # versions drop it): tolerate either way; the link's own check is in test_link_daemon.
    for topic in ("v2g/bench/evse-2/state", "v2g/other-site/evse-1/telemetry", "v2g/bench/evse-1/cmd/mode"):
        with contextlib.suppress(aiomqtt.MqttError):
            await charger.publish(topic, b"forged", qos=1)
    # The broker has handled those publishes (QoS 1 answered or connection dropped) before it sees
    # this one from the aggregator: anything it forwarded would arrive first.
    await agg.publish("v2g/bench/evse-9/cmd/mode", b"marker", qos=1)
    message = await _next(agg)
    assert (message.topic.value, message.payload) == ("v2g/bench/evse-9/cmd/mode", b"marker")


# --- the shipped script and example config -------------------------------------------------------------


def _example_broker(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    """make-test-ca.sh's files served by mosquitto.conf.example with acl.example (paths and port rewritten)."""
    out = tmp_path / "pki"
    subprocess.run(
        [str(REPO / "deploy" / "mosquitto" / "make-test-ca.sh"), str(out), "bench/evse-1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    shutil.copy(ACL_EXAMPLE, out / "acl")
    conf = (REPO / "deploy" / "mosquitto" / "mosquitto.conf.example").read_text()
    conf = conf.replace("/etc/mosquitto/v2g/", f"{out}/").replace(
        "listener 8883", f"listener {port} 127.0.0.1"
    )
    conf = conf.replace("persistence true", "persistence false")
    # As root, Mosquitto would drop to the user "mosquitto", who cannot read this test's files.
    conf += f"user {pwd.getpwuid(os.geteuid()).pw_name}\nlog_dest stderr\nlog_type all\n"
    (tmp_path / "mosquitto.conf").write_text(conf)
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with (tmp_path / "mosquitto.log").open("wb") as log:
        proc = subprocess.Popen(
            [exe, "-c", str(tmp_path / "mosquitto.conf")], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_for_port("127.0.0.1", port, 10.0)
    except TimeoutError:
        stop_process(proc)
        raise
    return proc


async def test_make_test_ca_script_and_example_broker_config(tmp_path: Path) -> None:
    port = free_port()
    proc = await asyncio.to_thread(_example_broker, tmp_path, port)
    out = tmp_path / "pki"
    try:
        mq = Mqtt(
            enabled=True,
            host="localhost",
            port=port,
            ca_file=str(out / "ca.pem"),
            cert_file=str(out / "client-bench_evse-1.pem"),
            key_file=str(out / "client-bench_evse-1.key"),
            site_id="bench",
            evse_id="evse-1",
        )
        assert check_files(mq, now_unix_s=_now()) == []
        async with _client(mq) as client:
            await client.subscribe("v2g/bench/evse-1/cmd/+", qos=1)
            await client.publish("v2g/bench/evse-1/state", b"{}", qos=1, retain=True)
    finally:
        await asyncio.to_thread(stop_process, proc)
    assert "u'bench/evse-1'" in (tmp_path / "mosquitto.log").read_text()
