"""Home Assistant MQTT discovery (optional, ``mqtt.home_assistant``): a home user sees the EV's SoC,
the charger's power, the site's import, the mode, the binding constraint and the departure plan, and
sets the mode, the departure time and SoC, and the reserve.

Single-component discovery, one retained config message per entity on
``<home_assistant_prefix>/<component>/<node_id>/<object_id>/config``; full key names only (no
abbreviations), each documented by Home Assistant's MQTT integration (tests/link/test_homeassistant.py
holds the documented keys). Sensors read the telemetry JSON; the select, text and number entities read
the retained state (``owner``, ``mode``) and publish plain values on ``ha/<name>/set``, which
``CommandHandler.handle_ha`` turns into mode and owner commands. Availability follows the state's
``online``. SoC values are shown and set in percent.
"""

from __future__ import annotations

import re
from typing import Any, get_args

import msgspec

from edge import __version__
from edge.link.topics import Topics
from edge.settings.model import OperationMode, Settings

MANUFACTURER = "v2g-edge"
MODEL = "bidirectional EV charger controller"
# The text entity's pattern: a local time HH:MM, or empty (no departure).
DEPARTURE_PATTERN = r"^(([01]\d|2[0-3]):[0-5]\d)?$"
_NODE = re.compile(r"[^A-Za-z0-9_-]")


def node_id(topics: Topics) -> str:
    """The discovery topic's node level: site and charger, in the characters Home Assistant allows."""
    return _NODE.sub("_", f"v2g_edge_{topics.site_id}_{topics.evse_id}")


def _percent(path: str) -> str:
    # "None" is what Home Assistant reads as unknown (sensor and number ``payload_reset``).
    return f"{{{{ (({path}) * 100) | round(1) if {path} is not none else 'None' }}}}"


def discovery_messages(topics: Topics, settings: Settings) -> list[tuple[str, bytes]]:
    """The retained discovery config messages (topic, JSON payload) of this charger's entities."""
    prefix = settings.mqtt.home_assistant_prefix
    node = node_id(topics)
    device = {
        "identifiers": [node],
        "name": f"V2G charger {topics.site_id}/{topics.evse_id}",
        "manufacturer": MANUFACTURER,
        "model": MODEL,
        "sw_version": __version__,
    }
    availability = [
        {
            "topic": topics.state,
            "value_template": "{{ 'online' if value_json.online else 'offline' }}",
            "payload_available": "online",
            "payload_not_available": "offline",
        }
    ]
    entities: list[tuple[str, str, dict[str, Any]]] = [
        (
            "sensor",
            "soc",
            {
                "name": "EV state of charge",
                "state_topic": topics.telemetry,
                "value_template": _percent("value_json.soc"),
                "unit_of_measurement": "%",
                "device_class": "battery",
                "state_class": "measurement",
            },
        ),
        (
            "sensor",
            "power",
            {
                "name": "EV power (discharge positive)",
                "state_topic": topics.telemetry,
                "value_template": "{{ value_json.inverter.p_w if value_json.inverter and"
                " value_json.inverter.p_w is not none else 'None' }}",
                "unit_of_measurement": "W",
                "device_class": "power",
                "state_class": "measurement",
            },
        ),
        (
            "sensor",
            "site_import",
            {
                "name": "Site import from the grid",
                "state_topic": topics.telemetry,
                "value_template": "{{ value_json.meter.p_w if value_json.meter and"
                " value_json.meter.p_w is not none else 'None' }}",
                "unit_of_measurement": "W",
                "device_class": "power",
                "state_class": "measurement",
            },
        ),
        (
            "sensor",
            "binding",
            {
                "name": "Binding constraint",
                "state_topic": topics.telemetry,
                "value_template": "{{ value_json.binding | join(', ') if value_json.binding else 'none' }}",
                "icon": "mdi:car-brake-alert",
            },
        ),
        (
            "sensor",
            "departure",
            {
                "name": "Departure plan",
                "state_topic": topics.telemetry,
                "value_template": "{{ value_json.departure if value_json.departure else 'none' }}",
                "icon": "mdi:car-clock",
            },
        ),
        (
            "select",
            "mode",
            {
                "name": "Mode",
                "state_topic": topics.telemetry,
                "value_template": "{{ value_json.mode }}",
                "command_topic": topics.ha_set("mode"),
                "options": list(get_args(OperationMode)),
                "icon": "mdi:ev-station",
            },
        ),
        (
            "text",
            "departure_time",
            {
                "name": "Departure time",
                "state_topic": topics.state,
                "value_template": "{{ value_json.owner.departure_time or '' if value_json.owner else '' }}",
                "command_topic": topics.ha_set("departure_time"),
                "pattern": DEPARTURE_PATTERN,
                "min": 0,
                "max": 5,
                "mode": "text",
                "icon": "mdi:clock-end",
            },
        ),
        (
            "number",
            "departure_soc",
            {
                "name": "Departure SoC",
                "state_topic": topics.state,
                "value_template": "{{ ((value_json.owner.departure_soc or 0) * 100) | round(0)"
                " if value_json.owner and value_json.owner.departure_soc is not none else 'None' }}",
                "command_topic": topics.ha_set("departure_soc"),
                "min": 0,
                "max": 100,
                "step": 1,
                "mode": "slider",
                "unit_of_measurement": "%",
                "icon": "mdi:battery-arrow-up",
            },
        ),
        (
            "number",
            "min_soc",
            {
                "name": "Reserve (minimum SoC)",
                "state_topic": topics.state,
                "value_template": "{{ (value_json.owner.min_soc * 100) | round(0)"
                " if value_json.owner else 'None' }}",
                "command_topic": topics.ha_set("min_soc"),
                "min": 0,
                "max": 100,
                "step": 1,
                "mode": "slider",
                "unit_of_measurement": "%",
                "icon": "mdi:battery-lock",
            },
        ),
    ]
    messages = []
    for component, object_id, config in entities:
        payload = {
            **config,
            "unique_id": f"{node}_{object_id}",
            "availability": availability,
            "device": device,
        }
        topic = f"{prefix}/{component}/{node}/{object_id}/config"
        messages.append((topic, msgspec.json.encode(payload)))
    return messages
