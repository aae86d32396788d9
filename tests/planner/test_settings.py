"""The ``[planner]`` settings: time-of-use tables in local time of day, in order, refused naming the
row otherwise; the shipped schema knows the section."""

from __future__ import annotations

import json
from datetime import time
from pathlib import Path

import pytest

from edge.settings import SettingsError, load_text
from edge.settings.load import default_config_text

SCHEMA = Path(__file__).resolve().parents[2] / "config" / "schema" / "v2g-edge.schema.json"


def _with(planner: str) -> str:
    return default_config_text() + "\n[planner]\n" + planner


def test_a_time_of_use_table_is_read_in_local_time_of_day() -> None:
    s = load_text(
        _with("enabled = true\nimport_tariff = [{ start = 00:30:00, price_per_kwh = 0.085 },"
              " { start = 05:30:00, price_per_kwh = 0.30 }]\n"),
        "<test>",
    )  # fmt: skip
    assert s.planner.enabled
    assert [r.start for r in s.planner.import_tariff] == [time(0, 30), time(5, 30)]
    assert s.planner.export_tariff[0].price_per_kwh == 0.08  # the default flat feed-in


@pytest.mark.parametrize(
    ("table", "says"),
    [
        (
            "[{ start = 07:00:00, price_per_kwh = 0.3 }, { start = 06:00:00, price_per_kwh = 0.1 }]",
            "import_tariff[1]",
        ),
        ("[]", "is empty"),
        ("[{ start = 00:00:00, price_per_kwh = 300.0 }]", "price_per_kwh"),
    ],
)
def test_bad_tables_are_refused_naming_the_row(table: str, says: str) -> None:
    with pytest.raises(SettingsError, match=says.replace("[", r"\[").replace("]", r"\]")):
        load_text(_with(f"import_tariff = {table}\n"), "<test>")


def test_the_schema_ships_the_planner_section() -> None:
    schema = json.loads(SCHEMA.read_text())
    assert "Planner" in schema["$defs"]
    assert "import_tariff" in schema["$defs"]["Planner"]["properties"]
