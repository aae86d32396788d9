"""Scenario files: the built-in ones parse, and broken ones get errors that name file, entry and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil import scenario
from hil.plant import events as ev
from hil.scenario import ScenarioError

GOOD = """
name = "t"
duration_s = 10.0
[plant.site]
house_load_w = 2000.0
[daemon.operation]
mode = "v2h"
[[events]]
at_s = 2.0
kind = "house_load"
w = 500.0
[[events]]
at_s = 3.0
kind = "daemon_kill"
[[checks]]
kind = "bound"
signal = "p_site_export_w"
max = 50.0
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sc.toml"
    p.write_text(text)
    return p


def test_builtin_scenarios_all_parse() -> None:
    files = sorted(scenario.builtin_dir().glob("*.toml"))
    assert len(files) >= 8
    for f in files:
        sc = scenario.load(f)
        assert sc.checks, f


def test_a_good_scenario_splits_plant_and_runner_events(tmp_path: Path) -> None:
    sc = scenario.load(write(tmp_path, GOOD))
    assert sc.plant_events() == [ev.HouseLoad(at_s=2.0, w=500.0)]
    assert [type(e).__name__ for e in sc.runner_events()] == ["DaemonKill"]
    assert sc.checks[0].title() == "bound p_site_export_w"


def test_resolve_finds_builtin_names() -> None:
    assert scenario.resolve("stale-meter").name == "stale-meter.toml"
    with pytest.raises(ScenarioError, match=r"built-in: .*stale-meter"):
        scenario.resolve("no-such-scenario")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ('kind = "house_load"', 'kind = "house_lod"'),
            r"Invalid value 'house_lod' - at `\$.events\[0\].kind` \(event kinds: .*house_load",
        ),
        (("w = 500.0", "w = -5.0"), r"Expected `float` >= 0.0 - at `\$.events\[0\].w`"),
        (
            ('signal = "p_site_export_w"', 'signal = "p_export"'),
            r"checks\[0\] \(bound p_export\): unknown signal 'p_export'",
        ),
        (("max = 50.0", "mx = 50.0"), r"unknown field `mx` - at `\$.checks\[0\]`"),
        (("at_s = 2.0", "at_s = 20.0"), r"events\[0\] \(house_load\) at_s=20.0 is after duration_s=10.0"),
        (("house_load_w = 2000.0", "house_lod_w = 2000.0"), r"\[plant\].*house_lod_w"),
        (('kind = "bound"', 'kind = "bounds"'), r"check kinds: bound, settle, energy, mean"),
        (("max = 50.0", "min = 60.0\nmax = 50.0"), r"min=60.0 is above max=50.0"),
        (("duration_s = 10.0", 'duration_s = "ten"'), r"Expected `float`, got `str` - at `\$.duration_s`"),
    ],
)
def test_errors_name_the_file_entry_and_field(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    p = write(tmp_path, GOOD.replace(*edit))
    with pytest.raises(ScenarioError, match=message) as info:
        scenario.load(p)
    assert str(info.value).startswith(str(p))


def test_toml_syntax_errors_give_the_line(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD.replace("w = 500.0", "w = 500.0 ]"))
    with pytest.raises(ScenarioError, match=r"not valid TOML: .*line 11"):
        scenario.load(p)


def test_a_scenario_without_checks_is_refused(tmp_path: Path) -> None:
    text = GOOD.split("[[checks]]", maxsplit=1)[0]
    with pytest.raises(ScenarioError, match="no \\[\\[checks\\]\\]"):
        scenario.load(write(tmp_path, text))


def test_mqtt_events_need_the_broker(tmp_path: Path) -> None:
    text = GOOD + '\n[[events]]\nat_s = 1.0\nkind = "mqtt_publish"\ntopic = "a/b"\n'
    with pytest.raises(ScenarioError, match='needs `needs = \\["mqtt"\\]`'):
        scenario.load(write(tmp_path, text))
    sc = scenario.load(write(tmp_path, 'needs = ["mqtt"]\n' + text))
    assert sc.needs == ["mqtt"]
