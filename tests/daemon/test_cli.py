"""The command lines: ``v2g-edged`` start checks and exit codes, ``v2gctl`` on real files."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.ctl.main import main as v2gctl
from edge.daemon import status as status_file
from edge.daemon.main import EX_CONFIG
from edge.daemon.main import main as v2g_edged
from edge.settings import load_file, read_audit
from edge.settings.load import default_config_text

BIN = Path(sys.executable).parent


def test_check_accepts_the_embedded_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert v2g_edged(["--check"]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "energize: allowed" in out


def test_broken_config_exits_ex_config_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(default_config_text() + "\n[site\nmode = 'v2h'\n")
    assert v2g_edged(["--config", str(bad)]) == EX_CONFIG
    assert "bad.toml" in capsys.readouterr().err


def test_device_on_an_unknown_bus_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(default_config_text().replace('bus = "meter_link"', 'bus = "nowhere"'))
    assert v2g_edged(["--config", str(cfg)]) == EX_CONFIG


def test_out_of_range_setting_is_refused_with_field_value_and_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(default_config_text().replace("olrt_s = 5.0", "olrt_s = 500.0"))
    assert v2g_edged(["--config", str(cfg), "--check"]) == EX_CONFIG
    err = capsys.readouterr().err
    assert "grid.volt_var.olrt_s" in err and "500" in err


@pytest.mark.parametrize(
    ("battery", "says"),
    [
        # A 160 Ah cell given a 2.3 Ah cell's parallel count: 5.5 MWh, and the SoP's rating x 95.
        (('profile = "lfp-prismatic"', "series = 108", "parallel = 95"), "battery.parallel = '108s95p'"),
        (('profile = "nmc-lgm5O"', "series = 96", "parallel = 43"), "battery.profile = 'nmc-lgm5O'"),
        # 1680 V at full charge: the series count is what no DC charger takes.
        (('profile = "nmc-lgm50"', "series = 400", "parallel = 43"), "battery.series = '400s43p'"),
    ],
)
def test_a_battery_the_start_would_refuse_fails_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], battery: tuple[str, ...], says: str
) -> None:
    lines = default_config_text().splitlines(keepends=True)
    at = lines.index("[battery]\n") + 2  # after "estimate = true"
    assert [line.split()[0] for line in lines[at : at + 3]] == ["profile", "series", "parallel"]
    lines[at : at + 3] = [f"{line}\n" for line in battery]
    cfg = tmp_path / "c.toml"
    cfg.write_text("".join(lines))
    assert v2g_edged(["--config", str(cfg), "--check"]) == EX_CONFIG
    err = capsys.readouterr().err
    assert says in err
    # The technician's check lists it too (the settings refuse it, not only the daemon's start).
    assert v2gctl(["config", "check", str(cfg)]) != 0
    assert says in capsys.readouterr().out


def test_console_scripts_answer_help() -> None:
    for exe in ("v2g-edged", "v2gctl", "v2g-hil"):
        result = subprocess.run(
            [str(BIN / exe), "--help"], capture_output=True, text=True, check=False, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert "usage:" in result.stdout


def test_v2gctl_status_reads_the_daemon_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status_file.write(
        tmp_path / "status.json",
        status_file.Status(
            written_at=time.time(),
            pid=1,
            state="normal",
            energize_allowed=True,
            p_cmd_w=1900.0,
            binding=["export_cap"],
            reasons=["cap_limiting"],
        ),
    )
    assert v2gctl(["status", "--runtime-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "export_cap" in out and "1900 W" in out


def test_v2gctl_status_shows_an_output_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status_file.write(
        tmp_path / "status.json",
        status_file.Status(
            written_at=time.time(),
            pid=1,
            state="normal",
            energize_allowed=True,
            p_cmd_w=1900.0,
            p_meas_w=0.0,
            stage_operation="started",
            output_mismatch="commanded 1900 W, measured 0 W: the stage reports it is off (state OFF)",
        ),
    )
    v2gctl(["status", "--runtime-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "reports it is off" in out
    assert "told to operate: yes" in out


def test_v2gctl_status_flags_a_stale_daemon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status_file.write(
        tmp_path / "status.json",
        status_file.Status(written_at=time.time() - 60, pid=1, state="normal", energize_allowed=True),
    )
    assert v2gctl(["status", "--runtime-dir", str(tmp_path)]) == 1
    assert "STALE" in capsys.readouterr().out


def test_v2gctl_config_set_is_audited_and_keeps_comments(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(default_config_text())
    audit = tmp_path / "audit.jsonl"
    assert (
        v2gctl(
            [
                "config",
                "set",
                "--file",
                str(cfg),
                "--no-reload",
                "grid.volt_var.olrt_s",
                "7.5",
                "--who",
                "tech-1",
                "--audit",
                str(audit),
            ]
        )
        == 0
    )
    assert load_file(cfg).grid.volt_var.olrt_s == 7.5  # type: ignore[union-attr]
    assert "# The control loop." in cfg.read_text()
    (record,) = read_audit(audit)
    assert record.who == "tech-1" and record.old == 5.0 and record.new == 7.5


def test_v2gctl_config_set_refuses_out_of_range_and_writes_nothing(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(default_config_text())
    before = cfg.read_text()
    rc = v2gctl(
        [
            "config",
            "set",
            "--file",
            str(cfg),
            "grid.voltage_trip.uv1.clearing_s",
            "99",
            "--who",
            "t",
            "--audit",
            str(tmp_path / "a"),
        ]
    )
    assert rc == 1
    assert cfg.read_text() == before
