"""``v2gctl config`` on real files: every problem at once with field, value and what is allowed, a
did-you-mean for typos, a hand-broken file named by line, and nothing written when a change is refused."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from edge.ctl.main import main as v2gctl
from edge.settings import load_file, read_audit
from edge.settings.load import default_config_text
from edge.settings.problems import find_problems


def _file(tmp_path: Path, text: str) -> Path:
    cfg = tmp_path / "v2g-edge.toml"
    cfg.write_text(text)
    return cfg


def test_check_lists_every_problem_with_its_value_and_what_is_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = default_config_text()
    for old, new in [
        ("olrt_s = 5.0", "olrt_sec = 5.0"),  # unknown key (a typo)
        ('mode = "v2h"', 'mode = "v3h"'),  # a bad choice
        ("unit_id = 1", 'unit_id = "one"'),  # wrong type, inside [devices]
        ("cycle_s = 0.1", "cycle_s = 9.0"),  # out of range
    ]:
        assert old in text
        text = text.replace(old, new, 1)
    cfg = _file(tmp_path, text)
    assert v2gctl(["config", "check", str(cfg)]) == 1
    out = capsys.readouterr().out
    assert "4 problems" in out
    assert "grid.volt_var.olrt_sec = 5.0: unknown setting; did you mean olrt_s?" in out
    assert "operation.mode = 'v3h'" in out and "allowed: idle, schedule, v1g, v2g, v2h" in out
    assert "devices.inverter.unit_id = 'one'" in out and "0 … 247" in out
    assert "daemon.cycle_s = 9.0" in out and "0.01 … 1" in out

    assert v2gctl(["config", "check", str(cfg), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is False and len(doc["problems"]) == 4
    by_path = {p["path"]: p for p in doc["problems"]}
    assert by_path["operation.mode"]["value"] == "v3h"
    assert by_path["devices.inverter.unit_id"]["allowed"] == "0 … 247"


def test_a_hand_broken_file_is_named_by_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _file(tmp_path, default_config_text() + "\n[site\nmode = 'v2h'\n")
    assert v2gctl(["config", "check", "--file", str(cfg)]) == 1
    out = capsys.readouterr().out
    line = default_config_text().count("\n") + 2
    assert f"{cfg}:{line}:" in out


def test_check_defaults_to_the_system_file_and_says_when_there_is_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("V2G_EDGE_CONFIG", str(tmp_path / "absent.toml"))
    assert v2gctl(["config", "check"]) == 1
    assert "no configuration file" in capsys.readouterr().err
    assert v2gctl(["config", "check", "--embedded"]) == 0


def test_set_refuses_bad_values_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _file(tmp_path, default_config_text())
    before = cfg.read_text()
    common = ["--file", str(cfg), "--who", "t", "--audit", str(tmp_path / "a.jsonl"), "--no-reload"]
    cases = [
        (["grid.voltage_trip.uv1.clearing_s", "99"], "grid.voltage_trip.uv1.clearing_s = 99"),
        (["grid.volt_var.olrt", "7"], "did you mean olrt_s?"),
        (["site.non_export", "maybe"], "site.non_export = 'maybe'"),
        (["operation.mode", "v3h"], "allowed: idle, schedule, v1g, v2g, v2h"),
    ]
    for args, expected in cases:
        assert v2gctl(["config", "set", *args, *common]) == 1, args
        out = capsys.readouterr().out
        assert "refused, nothing written" in out and expected in out, out
    assert cfg.read_text() == before
    assert not (tmp_path / "a.jsonl").exists() and not (tmp_path / "v2g-edge.toml.bak").exists()


def test_set_keeps_comments_audits_backs_up_and_rolls_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _file(tmp_path, default_config_text())
    audit = tmp_path / "audit.jsonl"
    common = ["--file", str(cfg), "--audit", str(audit), "--no-reload"]
    assert v2gctl(["config", "set", "grid.volt_var.olrt_s", "7.5", "--who", "tech-1", *common]) == 0
    assert load_file(cfg).grid.volt_var.olrt_s == 7.5  # type: ignore[union-attr]
    assert "# The control loop." in cfg.read_text()
    assert (tmp_path / "v2g-edge.toml.bak").read_text() == default_config_text()
    capsys.readouterr()
    assert v2gctl(["config", "diff", "--file", str(cfg), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"grid.volt_var.olrt_s": {"from": 5.0, "to": 7.5}}
    assert v2gctl(["config", "rollback", "--who", "tech-2", *common]) == 0
    assert load_file(cfg).grid.volt_var.olrt_s == 5.0  # type: ignore[union-attr]
    first, second = read_audit(audit)
    assert first.who == "tech-1" and first.old == 5.0 and first.new == 7.5
    assert second.who == "tech-2" and second.new == ["grid.volt_var.olrt_s"]


def test_get_names_unknown_settings_with_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    assert v2gctl(["config", "get", "site.export_cap", "--embedded"]) == 1
    assert "did you mean site.export_cap_w" in capsys.readouterr().err
    assert v2gctl(["config", "get", "site.export_cap_w", "--embedded", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["value"] == 0.0


def test_status_without_a_daemon_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert v2gctl(["status", "--runtime-dir", str(tmp_path)]) == 3
    assert "v2g-edged is not running" in capsys.readouterr().err


def test_events_without_a_state_database_say_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert v2gctl(["events", "--state-dir", str(tmp_path), "--runtime-dir", str(tmp_path)]) == 1
    assert "no state database" in capsys.readouterr().err
    assert v2gctl(["events", "--since", "yesterday", "--state-dir", str(tmp_path)]) == 1
    assert "expected an ISO time" in capsys.readouterr().err


def test_a_migrated_file_and_an_older_one_are_judged_as_the_daemon_reads_them() -> None:
    """`schema_version` (written by --migrate-config) is no unknown key, and an older file's renamed
    setting (site.mode) is read as the daemon reads it; a newer schema is refused with the way back."""
    current = tomllib.loads(default_config_text())
    assert find_problems({**current, "schema_version": 2}) == []
    older = {**current, "schema_version": 1}
    mode = older.pop("operation")["mode"]
    older["site"] = {**older["site"], "mode": mode}
    assert find_problems(older) == []
    newer = find_problems({**current, "schema_version": 99})
    assert len(newer) == 1 and "newer v2g-edge" in str(newer[0])
