"""The shipped systemd unit passes ``systemd-analyze verify`` with nothing printed.

``systemd-analyze verify`` exits 0 on misspelt keys and bad values and only warns, so any output at
all fails the test. ExecStart must name an executable that exists: it is pointed at this
environment's ``v2g-edged``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).parents[2] / "deploy" / "systemd" / "v2g-edged.service"


def _installed_daemon() -> str:
    exe = Path(sys.executable).parent / "v2g-edged"
    assert exe.exists(), f"{exe} missing: is the project installed in this environment?"
    return str(exe)


def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is not installed (Debian package systemd)")
    text = UNIT.read_text().replace("/opt/v2g-edge/bin/v2g-edged", _installed_daemon())
    unit = tmp_path / UNIT.name
    unit.write_text(text)
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == "", result.stdout + result.stderr


def test_unit_is_notify_with_watchdog_and_never_runs_as_root() -> None:
    text = UNIT.read_text()
    assert "Type=notify" in text
    assert "WatchdogSec=" in text
    assert "User=v2g-edge" in text
    assert "NoNewPrivileges=yes" in text
