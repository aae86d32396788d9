"""``v2g-edged --check`` runs the settings through the kernels' parameter mapping and the inverter
driver's functions plan: a configuration either cannot run is refused there (exit 78, naming the
setting), not discovered at start as a hold. EN 50549's 10-minute mean over-voltage stage has no
SunSpec 708 point: with the voltage trips the inverter's it cannot be configured and verified (refused
until it is set off here, and on the inverter by its own means); the supervisory backup needs none."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.daemon.controllers import Controllers, functions_unsupported, kernel_settings_problem
from edge.daemon.main import EX_CONFIG
from edge.daemon.main import main as v2g_edged
from edge.settings.load import load_text
from tests.settings.conftest import EN_SITE


def _en(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "v2g-edge.toml"
    path.write_text(EN_SITE.replace('volt_var = "inverter"\n', 'volt_var = "inverter"\n' + extra))
    return path


def test_an_en_site_with_the_10_minute_stage_off_here_may_energize(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _en(tmp_path)
    assert v2g_edged(["--config", str(path), "--check"]) == EX_CONFIG
    assert "10-minute mean over-voltage stage has no SunSpec 708 point" in capsys.readouterr().err
    text = path.read_text(encoding="utf-8") + "\n[grid.voltage_trip.ov_mean_10min]\nenabled = false\n"
    path.write_text(text)
    assert v2g_edged(["--config", str(path), "--check"]) == 0
    assert "energize: allowed" in capsys.readouterr().out
    settings = load_text(text)
    assert kernel_settings_problem(settings) is None and not functions_unsupported(settings)
    assert Controllers(settings).hold_reason is None


def test_the_backup_needs_no_10_minute_stage() -> None:
    # Kernel side alone: the inverter owns the voltage trips, the backup supervises the instantaneous
    # stages; before, the kernel mapping refused the stage whoever owned it.
    assert kernel_settings_problem(load_text(EN_SITE)) is None


def test_a_setting_the_kernels_cannot_run_is_refused_by_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _en(tmp_path, 'voltage_trip = "daemon"\n')
    assert v2g_edged(["--config", str(path), "--check"]) == EX_CONFIG
    err = capsys.readouterr().err
    assert "grid.voltage_trip.ov_mean_10min.enabled" in err and "10-minute mean" in err
    # Started anyway, the daemon holds P = Q = 0 with the same reason.
    hold = Controllers(load_text(path.read_text(encoding="utf-8"))).hold_reason
    assert hold is not None and "ov_mean_10min" in hold
