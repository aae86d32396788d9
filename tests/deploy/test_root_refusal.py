"""``v2g-edged`` refuses to run as root unless told: the service runs as ``v2g-edge``, a bench says
``--allow-root`` (or ``V2G_EDGE_ALLOW_ROOT=1`` through a runner); ``--check`` only reads and may run as root.

The effective user is injected (``os.geteuid``) so the refusal is tested whoever runs the suite.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge.daemon.main import ENV_ALLOW_ROOT, EX_CONFIG, EX_NOPERM, main, root_refusal
from edge.settings.load import default_config_text


@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.delenv(ENV_ALLOW_ROOT, raising=False)


def test_refusal_names_the_service_user_and_the_bench_flag() -> None:
    message = root_refusal(0, allow_root=False)
    assert message is not None
    assert "v2g-edge" in message and "--allow-root" in message and ENV_ALLOW_ROOT in message
    assert root_refusal(0, allow_root=True) is None
    assert root_refusal(999, allow_root=False) is None


@pytest.mark.usefixtures("as_root")
def test_root_start_exits_ex_noperm_before_touching_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    run = tmp_path / "run"
    assert main(["--state-dir", str(state), "--runtime-dir", str(run)]) == EX_NOPERM
    assert "refusing to run as root" in capsys.readouterr().err
    assert not state.exists() and not run.exists()


@pytest.mark.usefixtures("as_root")
def test_allow_root_flag_and_variable_pass_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A configuration that cannot run stops the start right after the user check: EX_CONFIG, not EX_NOPERM.
    bad = tmp_path / "bad.toml"
    bad.write_text(default_config_text() + "\n[site\n")
    assert main(["--allow-root", "--config", str(bad)]) == EX_CONFIG
    monkeypatch.setenv(ENV_ALLOW_ROOT, "1")
    assert main(["--config", str(bad)]) == EX_CONFIG
    assert "refusing to run as root" not in capsys.readouterr().err


@pytest.mark.usefixtures("as_root")
def test_check_runs_as_root(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check"]) == 0
    assert "energize: allowed" in capsys.readouterr().out
