"""The topic tree: every topic under one charger's base, command topics parsed back, bad levels refused."""

from __future__ import annotations

import pytest

from edge.link.topics import COMMANDS, HA_COMMANDS, Topics
from edge.settings.model import Mqtt


def test_topics_of_one_charger() -> None:
    t = Topics("v2g/eu", "site-7", "evse.1")
    assert t.base == "v2g/eu/site-7/evse.1"
    assert t.state == "v2g/eu/site-7/evse.1/state"
    assert t.telemetry == "v2g/eu/site-7/evse.1/telemetry"
    assert t.telemetry_replay == "v2g/eu/site-7/evse.1/telemetry/replay"
    assert t.events == "v2g/eu/site-7/evse.1/events"
    assert t.events_replay == "v2g/eu/site-7/evse.1/events/replay"
    assert t.result == "v2g/eu/site-7/evse.1/result"
    assert t.cmd("dispatch") == "v2g/eu/site-7/evse.1/cmd/dispatch"
    assert t.cmd_filter == "v2g/eu/site-7/evse.1/cmd/+"
    assert t.ha_set("departure_time") == "v2g/eu/site-7/evse.1/ha/departure_time/set"
    assert t.ha_filter == "v2g/eu/site-7/evse.1/ha/+/set"


def test_from_the_mqtt_settings_defaults() -> None:
    mq = Mqtt()
    t = Topics(mq.topic_prefix, mq.site_id, mq.evse_id)
    assert t.state == "v2g/site/evse/state"


def test_parse_cmd_round_trips_every_command() -> None:
    t = Topics("v2g", "s", "e")
    for name in COMMANDS:
        assert t.parse_cmd(t.cmd(name)) == ("cmd", name)
    for name in HA_COMMANDS:
        assert t.parse_cmd(t.ha_set(name)) == ("ha", name)
    # An unknown name is returned, so that the handler answers it with the known ones.
    assert t.parse_cmd("v2g/s/e/cmd/reboot") == ("cmd", "reboot")


@pytest.mark.parametrize(
    "topic",
    [
        "v2g/s/e/state",
        "v2g/s/e/cmd",
        "v2g/s/e/cmd/",
        "v2g/s/e/cmd/mode/extra",
        "v2g/s/e/ha/mode",
        "v2g/s/e/ha/mode/get",
        "v2g/s/other/cmd/mode",
        "v2g/s/e2/cmd/mode",
        "x/v2g/s/e/cmd/mode",
        "v2g/s/e",
    ],
)
def test_parse_cmd_ignores_other_topics(topic: str) -> None:
    assert Topics("v2g", "s", "e").parse_cmd(topic) is None


@pytest.mark.parametrize(
    ("prefix", "site", "evse"),
    [("v2g/#", "s", "e"), ("v2g", "+", "e"), ("v2g", "s", "a/b"), ("v2g//x", "s", "e"), ("v2g", "", "e")],
)
def test_wildcards_and_empty_levels_are_refused(prefix: str, site: str, evse: str) -> None:
    with pytest.raises(ValueError, match="topic"):
        Topics(prefix, site, evse)


def test_unknown_command_topics_are_not_built() -> None:
    t = Topics("v2g", "s", "e")
    with pytest.raises(ValueError, match="reboot"):
        t.cmd("reboot")
    with pytest.raises(ValueError, match="volume"):
        t.ha_set("volume")
