"""``v2gctl plan``: it shows the daemon's plan file (or says there is none, exit 3), plans here from a
configuration and a SoC (saying which configuration), prints JSON for scripts and draws a plot, and
refuses a bad --every."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.ctl.main import main
from edge.settings.edit import set_value
from edge.settings.load import default_config_text


def _config(tmp_path: Path) -> Path:
    # Twelve hours ahead whenever the test runs: a fixed clock time made the target unreachable when
    # the run started a few hours before it (CI at 00:25 for a 07:00 departure).
    departure = (datetime.now(UTC) + timedelta(hours=12)).strftime("%H:%M:00")
    text = default_config_text()
    for key, value in {
        "planner.enabled": True,
        "operation.mode": "schedule",
        "owner.departure_soc": 0.8,
        "owner.departure_time": departure,
        "owner.time_zone": "UTC",
    }.items():
        text = set_value(text, key, value)
    path = tmp_path / "v2g-edge.toml"
    path.write_text(text)
    return path


def test_no_plan_file_is_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--runtime-dir", str(tmp_path)]) == 3
    assert "no plan at" in capsys.readouterr().err


def test_a_plan_made_here_reaches_the_departure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--soc", "0.3", "--config", str(_config(tmp_path)), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["status"] == "planned"
    assert payload["target_soc"] == 0.8
    assert max(payload["soc"]) >= 0.8 - 1e-6
    assert payload["costs"]["wear_per_kwh_cycled"] > 0.0
    assert len(payload["envelope"]["e_min_wh"]) == len(payload["p_w"]) + 1


def test_the_daemons_plan_is_shown_and_plotted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--soc", "0.3", "--config", str(_config(tmp_path)), "--json"]) == 0
    (tmp_path / "plan.json").write_text(capsys.readouterr().out)
    png = tmp_path / "plan.png"
    assert main(["plan", "--runtime-dir", str(tmp_path), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "expected  total" in out and "why" in out and "departure" in out
    assert png.stat().st_size > 10_000


def test_a_bad_soc_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--soc", "1.5", "--config", str(_config(tmp_path))]) == 1
    assert "--soc" in capsys.readouterr().err


@pytest.mark.parametrize("every", ["0", "-2", "x"])
def test_every_must_be_a_positive_whole_number(every: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plan", "--every", every])
    assert exc.value.code == 2
    assert f"--every: {every!r} is not a whole number ≥ 1" in capsys.readouterr().err


def test_a_plan_made_here_says_which_configuration_it_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path)
    assert main(["plan", "--soc", "0.3", "--config", str(config), "--every", "8"]) == 0
    out = capsys.readouterr()
    assert f"configuration: {config}" in out.err
    assert "expected  total" in out.out
    # No configuration file where the unit keeps it: planned from the bench configuration, and said so.
    missing = tmp_path / "absent" / "v2g-edge.toml"
    monkeypatch.setenv("V2G_EDGE_CONFIG", str(missing))
    assert main(["plan", "--soc", "0.3", "--json"]) == 0
    out = capsys.readouterr()
    assert f"no {missing}" in out.err and "embedded bench configuration" in out.err
    assert json.loads(out.out)["status"] == "planned"  # stdout stays pure JSON
