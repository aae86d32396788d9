"""The MQTT topic tree of one charger: ``<prefix>/<site_id>/<evse_id>/...`` (docs/mqtt.md).

One place names every topic the link publishes to or subscribes to, so that the client, the Home
Assistant discovery and the broker's ACL example (``deploy/mosquitto``) cannot drift apart.
"""

from __future__ import annotations

import re
from typing import Literal

COMMANDS = ("dispatch", "mode", "owner", "grid", "plan_inputs")
# Plain-value commands from Home Assistant entities (a select, a text and two numbers).
HA_COMMANDS = ("mode", "departure_time", "departure_soc", "min_soc")

_LEVEL = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _check_level(what: str, level: str) -> None:
    # The settings model refuses bad ids with a field-named error; this guards direct construction
    # (tests, tools): a wildcard or an empty level would subscribe to, or publish on, other topics.
    if not _LEVEL.match(level):
        raise ValueError(f"topic {what} {level!r}: one topic level of 1 to 64 letters, digits, _ . -")


class Topics:
    """The topics of one charger; see the module docstring."""

    def __init__(self, prefix: str, site_id: str, evse_id: str) -> None:
        for level in prefix.split("/"):
            _check_level("prefix level", level)
        _check_level("site_id", site_id)
        _check_level("evse_id", evse_id)
        self.prefix = prefix
        self.site_id = site_id
        self.evse_id = evse_id
        self.base = f"{prefix}/{site_id}/{evse_id}"

    @property
    def state(self) -> str:
        """Retained: online/offline, identity, ratings, functions (the last will marks it offline)."""
        return f"{self.base}/state"

    @property
    def telemetry(self) -> str:
        """Live telemetry, one record per message."""
        return f"{self.base}/telemetry"

    @property
    def telemetry_replay(self) -> str:
        """Telemetry kept while offline, in batches."""
        return f"{self.base}/telemetry/replay"

    @property
    def events(self) -> str:
        return f"{self.base}/events"

    @property
    def events_replay(self) -> str:
        return f"{self.base}/events/replay"

    @property
    def plan(self) -> str:
        """Retained: the local planner's schedule and flexibility envelope (or why there is none)."""
        return f"{self.base}/plan"

    @property
    def result(self) -> str:
        """Where results go when a command names no MQTT 5 response topic."""
        return f"{self.base}/result"

    def cmd(self, name: str) -> str:
        if name not in COMMANDS:
            raise ValueError(f"command {name!r}: not one of {', '.join(COMMANDS)}")
        return f"{self.base}/cmd/{name}"

    @property
    def cmd_filter(self) -> str:
        return f"{self.base}/cmd/+"

    def ha_set(self, name: str) -> str:
        if name not in HA_COMMANDS:
            raise ValueError(f"Home Assistant command {name!r}: not one of {', '.join(HA_COMMANDS)}")
        return f"{self.base}/ha/{name}/set"

    @property
    def ha_filter(self) -> str:
        return f"{self.base}/ha/+/set"

    def parse_cmd(self, topic: str) -> tuple[Literal["cmd", "ha"], str] | None:
        """Which command a message on ``topic`` is, or None for a topic that is not one of ours.

        The name is returned even when it is not a known command, so that the handler can answer
        it with a rejection naming the known ones."""
        if not topic.startswith(self.base + "/"):
            return None
        levels = topic[len(self.base) + 1 :].split("/")
        if len(levels) == 2 and levels[0] == "cmd" and levels[1]:
            return "cmd", levels[1]
        if len(levels) == 3 and levels[0] == "ha" and levels[2] == "set" and levels[1]:
            return "ha", levels[1]
        return None
