"""The [mqtt] settings: defaults, and every cross-field or syntax rule refused with field, value and range."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from edge.settings.errors import SettingsError
from edge.settings.load import load_default, load_text
from edge.settings.model import Mqtt

Edit = Callable[..., str]


def test_bench_link_is_plaintext_loopback() -> None:
    mq = load_default().mqtt
    assert (mq.enabled, mq.tls, mq.host, mq.resolved_port) == (True, False, "127.0.0.1", 1883)
    assert (mq.topic_prefix, mq.site_id, mq.evse_id) == ("v2g", "bench", "evse-1")
    assert mq.resolved_client_id == "v2g-edge-bench-evse-1"


def test_defaults_are_secure() -> None:
    mq = Mqtt()
    assert mq.tls and mq.resolved_port == 8883
    assert Mqtt(tls=False).resolved_port == 1883
    assert Mqtt(port=8884).resolved_port == 8884
    assert Mqtt(client_id="fleet-7").resolved_client_id == "fleet-7"
    # A config without [mqtt] loads: the disabled link needs no CA.
    assert not load_text("").mqtt.enabled


def _refused(text: str) -> SettingsError:
    with pytest.raises(SettingsError) as err:
        load_text(text)
    return err.value


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("topic_prefix", "v2g/#", "contains an MQTT wildcard (# or +)"),
        ("topic_prefix", "v2g/+/x", "contains an MQTT wildcard (# or +)"),
        ("topic_prefix", "$SYS", "starts with $ (topics reserved for the broker)"),
        ("topic_prefix", "v2g//fleet", "has an empty topic level (a leading, trailing or double /)"),
        ("topic_prefix", "/v2g", "has an empty topic level (a leading, trailing or double /)"),
        ("topic_prefix", "v2g/", "has an empty topic level (a leading, trailing or double /)"),
        ("topic_prefix", "", "has an empty topic level (a leading, trailing or double /)"),
        ("topic_prefix", "a/b/c/d/e/f", "has 6 topic levels"),
        ("topic_prefix", "v2g\0x", "contains a NUL character"),
        ("topic_prefix", "v2g edge", "contains ' '"),
        ("site_id", "north/1", "has 2 topic levels"),
        ("site_id", "#", "contains an MQTT wildcard (# or +)"),
        ("site_id", "", "has an empty topic level (a leading, trailing or double /)"),
        ("site_id", "x" * 65, "has a topic level longer than 64 characters"),
        ("evse_id", "+", "contains an MQTT wildcard (# or +)"),
        ("evse_id", "$evse", "starts with $ (topics reserved for the broker)"),
        ("evse_id", "évse", "contains 'é'"),
        ("home_assistant_prefix", "homeassistant/#", "contains an MQTT wildcard (# or +)"),
    ],
)
def test_topic_syntax_refused(bench_text: str, edit: Edit, field: str, value: str, reason: str) -> None:
    err = _refused(edit(bench_text, **{f"mqtt__{field}": value}))
    assert (err.path, err.value, err.reason) == (f"mqtt.{field}", value, reason)
    assert err.allowed is not None and "letters, digits, _ . -" in err.allowed
    assert ("one topic level" in err.allowed) == (field in ("site_id", "evse_id"))


@pytest.mark.parametrize("value", ["", "x" * 65, "edge#1", "edge+1", "edge/1", "edge 1", "edge\0"])
def test_client_id_syntax_refused(bench_text: str, edit: Edit, value: str) -> None:
    err = _refused(edit(bench_text, mqtt__client_id=value))
    assert (err.path, err.value) == ("mqtt.client_id", value)
    assert err.allowed == "1 to 64 letters, digits, _ . : -"


def test_good_ids_accepted(bench_text: str, edit: Edit) -> None:
    mq = load_text(
        edit(
            bench_text,
            mqtt__topic_prefix="fleet.eu/v2g_1/a/b/c",
            mqtt__site_id="S-1.2_x",
            mqtt__evse_id="e" * 64,
            mqtt__client_id="edge:1.2_3-" + "x" * 53,
        )
    ).mqtt
    assert mq.topic_prefix == "fleet.eu/v2g_1/a/b/c" and len(mq.resolved_client_id) == 64


def test_tls_needs_a_ca(bench_text: str, edit: Edit) -> None:
    err = _refused(edit(bench_text, mqtt__tls=True))
    assert (err.path, err.value) == ("mqtt.ca_file", None)
    assert "mqtt.tls = true needs the CA" in str(err)
    load_text(edit(bench_text, mqtt__tls=True, mqtt__ca_file="/etc/ca.pem"))
    # A disabled link is not held to it.
    load_text(edit(bench_text, mqtt__tls=True, mqtt__enabled=False))


def test_tls_files_only_with_tls(bench_text: str, edit: Edit) -> None:
    for field in ("ca_file", "cert_file", "key_file"):
        err = _refused(edit(bench_text, **{f"mqtt__{field}": "/etc/x.pem"}))
        assert err.path == f"mqtt.{field}"
        assert err.reason == "set only with mqtt.tls = true"


@pytest.mark.parametrize(("given", "missing"), [("cert_file", "key_file"), ("key_file", "cert_file")])
def test_certificate_and_key_go_together(bench_text: str, edit: Edit, given: str, missing: str) -> None:
    text = edit(bench_text, mqtt__tls=True, mqtt__ca_file="/etc/ca.pem", **{f"mqtt__{given}": "/etc/c"})
    err = _refused(text)
    assert (err.path, err.value, err.allowed) == (f"mqtt.{missing}", None, "both or neither")
    assert "mqtt.cert_file and mqtt.key_file go together" in str(err)


def test_password_file_needs_username(bench_text: str, edit: Edit) -> None:
    err = _refused(edit(bench_text, mqtt__password_file="/etc/pw"))
    assert (err.path, err.value) == ("mqtt.username", None)
    assert "the password needs its user name" in err.reason


def test_empty_username_refused(bench_text: str, edit: Edit) -> None:
    err = _refused(edit(bench_text, mqtt__username=""))
    assert (err.path, err.value, err.reason) == ("mqtt.username", "", "empty")


@pytest.mark.parametrize("host", ["10.0.0.5", "mqtt.example.net", "192.168.1.2", "::2"])
def test_password_in_plaintext_to_another_host_refused(bench_text: str, edit: Edit, host: str) -> None:
    text = edit(bench_text, mqtt__host=host, mqtt__username="u", mqtt__password_file="/etc/pw")
    err = _refused(text)
    assert (err.path, err.value) == ("mqtt.password_file", "/etc/pw")
    assert re.search(rf"in plaintext to {re.escape(host)} \(mqtt.tls = false\)", err.reason)
    assert err.allowed is not None and "mqtt.tls = true" in err.allowed


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "::1"])
def test_password_in_plaintext_to_loopback_accepted(bench_text: str, edit: Edit, host: str) -> None:
    mq = load_text(edit(bench_text, mqtt__host=host, mqtt__username="u", mqtt__password_file="/pw")).mqtt
    assert mq.password_file == "/pw"


def test_password_over_tls_to_another_host_accepted(bench_text: str, edit: Edit) -> None:
    text = edit(
        bench_text,
        mqtt__host="mqtt.example.net",
        mqtt__tls=True,
        mqtt__port=None,
        mqtt__ca_file="/etc/ca.pem",
        mqtt__username="bench/evse-1",
        mqtt__password_file="/etc/pw",
    )
    assert load_text(text).mqtt.resolved_port == 8883


def test_reconnect_bounds_in_order(bench_text: str, edit: Edit) -> None:
    err = _refused(edit(bench_text, mqtt__reconnect_min_s=30.0, mqtt__reconnect_max_s=10.0))
    assert (err.path, err.value, err.allowed) == ("mqtt.reconnect_max_s", 10.0, ">= 30")
    load_text(edit(bench_text, mqtt__reconnect_min_s=10.0, mqtt__reconnect_max_s=10.0))


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("telemetry_period_s", 0.05, "0.1 … 60"),
        ("spool_max_mb", 5000.0, "1 … 4096"),
        ("replay_batch", 0, "1 … 1000"),
        ("replay_rate_msgs_s", 2000.0, "0.1 … 1000"),
        ("inflight_max", 0, "1 … 1000"),
        ("command_max_age_s", 5.0, "10 … 86400"),
        ("port", 0, "1 … 65535"),
    ],
)
def test_numeric_ranges(bench_text: str, edit: Edit, field: str, value: float, allowed: str) -> None:
    err = _refused(edit(bench_text, **{f"mqtt__{field}": value}))
    assert (err.path, err.value, err.allowed) == (f"mqtt.{field}", value, allowed)
