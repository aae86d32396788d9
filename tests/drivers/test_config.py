"""The driver config sections: typed, strict, cross-checked, with errors naming section and key."""

from __future__ import annotations

import pytest

from drivers import build
from drivers.config import BusConfig, DeviceConfig, parse
from drivers.errors import DriverError

BUS = {"transport": "tcp", "host": "127.0.0.1", "port": 1502, "timeout_s": 0.5, "retries": 1}
INV = {"bus": "inverter_link", "unit_id": 1, "role": "power_stage", "protocol": "sunspec", "map": ""}


def test_the_documented_keys_parse() -> None:
    buses, devices = parse({"inverter_link": BUS}, {"inverter": INV})
    assert buses["inverter_link"] == BusConfig(
        transport="tcp", host="127.0.0.1", port=1502, timeout_s=0.5, retries=1
    )
    assert isinstance(devices["inverter"], DeviceConfig)
    assert devices["inverter"].role == "power_stage"


def test_rtu_bus_bits_per_char() -> None:
    b = BusConfig(transport="rtu", serial_port="/dev/ttyUSB0", baud=9600, parity="E")
    assert b.bits_per_char == 11
    assert BusConfig(transport="rtu", serial_port="x").bits_per_char == 10


@pytest.mark.parametrize(
    ("buses", "devices", "match"),
    [
        ({"l": {**BUS, "tiemout_s": 1}}, {}, r"\[buses\.l\].*tiemout_s"),
        ({"l": {**BUS, "timeout_s": -1}}, {}, r"\[buses\.l\].*timeout_s"),
        ({"l": {**BUS, "transport": "udp"}}, {}, r"\[buses\.l\].*transport"),
        ({"l": {"transport": "rtu"}}, {}, r"\[buses\.l\].*serial_port"),
        ({"l": BUS}, {"inv": {**INV, "bus": "nope"}}, r"\[devices\.inv\].*bus 'nope'"),
        (
            {"inverter_link": BUS},
            {"a": INV, "b": {**INV, "unit_id": 2}},
            r"\[devices\.b\].*role 'power_stage'",
        ),
        (
            {"inverter_link": BUS},
            {"a": INV, "b": {**INV, "role": "site_meter"}},
            r"\[devices\.b\].*unit_id 1",
        ),
        ({"inverter_link": BUS}, {"a": {**INV, "protocol": "map"}}, r"\[devices\.a\].*map = '<name>'"),
        (
            {"inverter_link": BUS},
            {"a": {**INV, "meter_sign": "import_positive"}},
            r"\[devices\.a\].*meter_sign",
        ),
        ({"inverter_link": BUS}, {"a": {**INV, "unit_id": 300}}, r"\[devices\.a\].*unit_id"),
    ],
)
def test_bad_config_names_section_and_key(buses: dict, devices: dict, match: str) -> None:
    with pytest.raises(DriverError, match=match) as e:
        parse(buses, devices)
    assert e.value.kind == "config"
    assert not e.value.retryable


def test_build_refuses_a_missing_vendor_map() -> None:
    with pytest.raises(DriverError, match=r"no-such-meter.*no such file") as e:
        build(
            {"l": BUS}, {"m": {"bus": "l", "role": "site_meter", "protocol": "map", "map": "no-such-meter"}}
        )
    assert e.value.kind == "config"


def test_build_refuses_a_map_of_the_wrong_role() -> None:
    with pytest.raises(DriverError, match=r"describes a site_meter, not a power_stage"):
        build(
            {"l": BUS}, {"m": {"bus": "l", "role": "power_stage", "protocol": "map", "map": "eastron-sdm630"}}
        )
