"""Home Assistant MQTT discovery payloads against what Home Assistant's MQTT integration documents for
each component (required keys present, every key used a documented one, full names only), and the
entities wired to the charger's topics: sensors on the telemetry, commands on ``ha/<name>/set``,
availability from the retained state."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest

from edge.link.homeassistant import DEPARTURE_PATTERN, discovery_messages, node_id
from edge.link.topics import Topics
from edge.settings import Settings, load_default

# Keys documented by Home Assistant's MQTT integration, from the configuration tables of
#   https://www.home-assistant.io/integrations/sensor.mqtt/
#   https://www.home-assistant.io/integrations/select.mqtt/
#   https://www.home-assistant.io/integrations/text.mqtt/
#   https://www.home-assistant.io/integrations/number.mqtt/
# and the discovery topic format and abbreviation tables of
#   https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery
# ``platform`` is left out on purpose: the docs allow it only in device-based discovery messages, and
# these are single-component ones.
COMMON = {
    "availability", "availability_mode", "availability_template", "availability_topic", "device",
    "enabled_by_default", "encoding", "entity_category", "entity_picture", "icon",
    "json_attributes_template", "json_attributes_topic", "name", "object_id", "default_entity_id", "qos",
    "unique_id", "value_template", "state_topic",
}  # fmt: skip
DOCUMENTED: dict[str, set[str]] = {
    "sensor": COMMON | {
        "device_class", "expire_after", "force_update", "last_reset_value_template", "options",
        "payload_available", "payload_not_available", "suggested_display_precision", "state_class",
        "unit_of_measurement",
    },
    "select": COMMON | {"command_template", "command_topic", "optimistic", "options", "retain"},
    "text": COMMON | {"command_template", "command_topic", "max", "min", "mode", "pattern", "retain"},
    "number": COMMON | {
        "command_template", "command_topic", "device_class", "max", "min", "mode", "optimistic",
        "payload_reset", "retain", "step", "unit_of_measurement",
    },
}  # fmt: skip
REQUIRED = {
    "sensor": {"state_topic"},
    "select": {"command_topic", "options"},
    "text": {"command_topic"},
    "number": {"command_topic"},
}
AVAILABILITY_KEYS = {"topic", "payload_available", "payload_not_available", "value_template"}
DEVICE_KEYS = {
    "configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model", "model_id",
    "name", "serial_number", "suggested_area", "sw_version", "via_device",
}  # fmt: skip
# Abbreviations the discovery docs accept (a payload must not mix them with full names).
ABBREVIATIONS = {
    "avty", "avty_mode", "avty_t", "avty_tpl", "cmd_t", "cmd_tpl", "dev", "dev_cla", "ent_cat", "ic",
    "json_attr_t", "json_attr_tpl", "obj_id", "opt", "pl_avail", "pl_not_avail", "ret", "stat_cla",
    "stat_t", "uniq_id", "unit_of_meas", "val_tpl", "ids", "mf", "mdl", "sw", "hw", "cu", "cns", "sa", "~",
}  # fmt: skip
ID_CHARS = re.compile(r"^[A-Za-z0-9_-]+$")


def _settings(prefix: str = "homeassistant") -> Settings:
    s = load_default()
    return msgspec.structs.replace(s, mqtt=msgspec.structs.replace(s.mqtt, home_assistant=True,
                                                                    home_assistant_prefix=prefix))  # fmt: skip


def _entities(
    topics: Topics | None = None, prefix: str = "homeassistant"
) -> dict[str, tuple[str, dict[str, Any]]]:
    topics = topics or Topics("v2g", "site-1", "evse.2")
    out = {}
    for topic, payload in discovery_messages(topics, _settings(prefix)):
        parts = topic.split("/")
        assert len(parts) == 5 and parts[-1] == "config", topic
        discovery_prefix, component, node, object_id, _ = parts
        assert discovery_prefix == prefix
        assert ID_CHARS.match(node) and ID_CHARS.match(object_id), topic
        assert node == node_id(topics)
        out[object_id] = (component, msgspec.json.decode(payload))
    return out


def test_the_entities_a_home_user_needs() -> None:
    entities = _entities()
    assert {k: c for k, (c, _) in entities.items()} == {
        "soc": "sensor",
        "power": "sensor",
        "site_import": "sensor",
        "binding": "sensor",
        "departure": "sensor",
        "mode": "select",
        "departure_time": "text",
        "departure_soc": "number",
        "min_soc": "number",
    }


@pytest.mark.parametrize("object_id", ["soc", "power", "site_import", "binding", "departure", "mode",
                                       "departure_time", "departure_soc", "min_soc"])  # fmt: skip
def test_each_config_uses_documented_keys_only(object_id: str) -> None:
    component, config = _entities()[object_id]
    keys = set(config)
    assert REQUIRED[component] <= keys, f"missing required keys: {REQUIRED[component] - keys}"
    assert keys <= DOCUMENTED[component], f"undocumented keys for {component}: {keys - DOCUMENTED[component]}"
    assert not keys & ABBREVIATIONS
    assert not set(config["device"]) & ABBREVIATIONS and set(config["device"]) <= DEVICE_KEYS
    for item in config["availability"]:
        assert set(item) <= AVAILABILITY_KEYS and "topic" in item
    assert "availability_topic" not in keys  # the docs: not together with availability


def test_unique_ids_and_one_device() -> None:
    entities = _entities()
    ids = [config["unique_id"] for _, config in entities.values()]
    assert len(set(ids)) == len(ids)
    devices = {msgspec.json.encode(config["device"]) for _, config in entities.values()}
    assert len(devices) == 1
    device = msgspec.json.decode(devices.pop())
    assert set(device) == {"identifiers", "name", "manufacturer", "model", "sw_version"}
    assert device["identifiers"] == [node_id(Topics("v2g", "site-1", "evse.2"))]


def test_wired_to_the_chargers_topics() -> None:
    t = Topics("v2g", "site-1", "evse.2")
    entities = _entities(t)
    for object_id in ("soc", "power", "site_import", "binding", "departure", "mode"):
        assert entities[object_id][1]["state_topic"] == t.telemetry
    for object_id in ("departure_time", "departure_soc", "min_soc"):
        assert entities[object_id][1]["state_topic"] == t.state
    for object_id in ("mode", "departure_time", "departure_soc", "min_soc"):
        assert entities[object_id][1]["command_topic"] == t.ha_set(object_id)
        assert t.parse_cmd(entities[object_id][1]["command_topic"]) == ("ha", object_id)
    for _, config in entities.values():
        (avail,) = config["availability"]
        assert avail["topic"] == t.state
        assert "value_json.online" in avail["value_template"]
        assert (avail["payload_available"], avail["payload_not_available"]) == ("online", "offline")


def test_units_classes_and_choices() -> None:
    e = _entities()
    assert (e["soc"][1]["unit_of_measurement"], e["soc"][1]["device_class"]) == ("%", "battery")
    assert (e["power"][1]["unit_of_measurement"], e["power"][1]["device_class"]) == ("W", "power")
    assert (e["site_import"][1]["unit_of_measurement"], e["site_import"][1]["device_class"]) == ("W", "power")
    assert "value_json.inverter.p_w" in e["power"][1]["value_template"]
    assert "value_json.meter.p_w" in e["site_import"][1]["value_template"]
    assert e["mode"][1]["options"] == ["idle", "v1g", "v2g", "v2h", "schedule"]
    for object_id in ("departure_soc", "min_soc"):
        cfg = e[object_id][1]
        assert (cfg["min"], cfg["max"], cfg["unit_of_measurement"]) == (0, 100, "%")
        assert cfg["mode"] in ("box", "slider")
    text = e["departure_time"][1]
    assert text["pattern"] == DEPARTURE_PATTERN and text["mode"] in ("text", "password")
    assert 0 <= text["min"] <= text["max"] <= 255


def test_departure_pattern_takes_what_the_handler_takes() -> None:
    pattern = re.compile(DEPARTURE_PATTERN)
    for ok in ("00:00", "07:30", "23:59", ""):
        assert pattern.match(ok)
    for bad in ("24:00", "7:30", "07:60", "07:30:00", "noon"):
        assert not pattern.match(bad)


def test_discovery_prefix_is_the_settings() -> None:
    assert all(c for c in _entities(prefix="ha-test"))
