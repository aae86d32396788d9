"""Upgrades of the configuration file: an older schema is migrated on start with a backup of the old
file (``v2g-edged --migrate-config``, the unit's ExecStartPre), a newer one (a downgrade) is refused
with what to do, and nothing is written unless the migrated file validates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge.daemon.main import EX_CONFIG, main
from edge.settings import SettingsError, load_file, load_text
from edge.settings.load import default_config_text
from edge.settings.migrate import KEY, SCHEMA_VERSION, migrate_file

UNIT = Path(__file__).parents[2] / "deploy" / "systemd" / "v2g-edged.service"


def _schema_1_text() -> str:
    """The embedded config as a schema-1 file wrote it: the operating mode under [site]."""
    old = default_config_text().replace("[site]\n", '[site]\nmode = "v2g"  # the installer\'s choice\n', 1)
    old = old.replace('[operation]\nmode = "v2h"', "[operation]", 1)
    assert old != default_config_text() and 'mode = "v2h"' not in old
    return old


def test_old_file_is_migrated_with_a_backup_keeping_comments_owner_and_mode(tmp_path: Path) -> None:
    cfg = tmp_path / "v2g-edge.toml"
    old = _schema_1_text()
    cfg.write_text(old)
    cfg.chmod(0o640)

    backup = migrate_file(cfg)

    assert backup == tmp_path / "v2g-edge.toml.schema-1.bak"
    assert backup.read_text() == old
    new = cfg.read_text()
    assert new.startswith(f"{KEY} = {SCHEMA_VERSION}")
    assert "# Commissioning: set once by the installer" in new  # the operator's comments survive
    assert not re.search(r"^\[site\][^\[]*^mode =", new, flags=re.MULTILINE | re.DOTALL)
    assert load_file(cfg).operation.mode == "v2g"
    assert cfg.stat().st_mode & 0o777 == 0o640
    # A second start finds it current: no rewrite, no second backup.
    assert migrate_file(cfg) is None
    assert cfg.read_text() == new
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v2g-edge.toml", "v2g-edge.toml.schema-1.bak"]


def test_old_file_reads_correctly_before_it_is_migrated() -> None:
    assert load_text(_schema_1_text()).operation.mode == "v2g"


def test_current_file_without_a_version_is_left_alone(tmp_path: Path) -> None:
    cfg = tmp_path / "v2g-edge.toml"
    cfg.write_text(default_config_text())
    assert migrate_file(cfg) is None
    assert cfg.read_text() == default_config_text()
    assert [p.name for p in tmp_path.iterdir()] == ["v2g-edge.toml"]


def test_newer_schema_is_refused_naming_the_way_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "v2g-edge.toml"
    newer = f"{KEY} = {SCHEMA_VERSION + 1}\n" + default_config_text()
    cfg.write_text(newer)
    with pytest.raises(SettingsError) as err:
        load_file(cfg)
    assert err.value.path == KEY and "newer v2g-edge" in str(err.value)
    assert f".schema-{SCHEMA_VERSION}.bak" in str(err.value)
    with pytest.raises(SettingsError):
        migrate_file(cfg)
    assert cfg.read_text() == newer
    assert main(["--check", "--config", str(cfg)]) == EX_CONFIG
    assert main(["--migrate-config", "--config", str(cfg)]) == EX_CONFIG
    assert "newer v2g-edge" in capsys.readouterr().err
    assert cfg.read_text() == newer


@pytest.mark.parametrize("bad", ['"two"', "0", "true", "1.5"])
def test_schema_version_must_be_a_known_whole_number(bad: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_text(f"{KEY} = {bad}\n" + default_config_text())
    assert err.value.path == KEY


def test_a_migration_that_cannot_be_done_writes_nothing(tmp_path: Path) -> None:
    # The old and the new name disagree: refused, the file and the directory as they were.
    cfg = tmp_path / "v2g-edge.toml"
    both = default_config_text().replace("[site]\n", '[site]\nmode = "v2g"\n', 1)
    cfg.write_text(both)
    with pytest.raises(SettingsError) as err:
        migrate_file(cfg)
    assert err.value.path == "site.mode"
    assert cfg.read_text() == both
    assert [p.name for p in tmp_path.iterdir()] == ["v2g-edge.toml"]


def test_migrate_config_command_and_the_unit_running_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "v2g-edge.toml"
    cfg.write_text(_schema_1_text())
    assert main(["--migrate-config", "--config", str(cfg)]) == 0
    assert f"migrated to schema {SCHEMA_VERSION}" in capsys.readouterr().out
    assert main(["--migrate-config"]) == EX_CONFIG
    # Privileged ("+": /etc is read-only to the service), before each start, on the unit's own file.
    pre = re.findall(r"^ExecStartPre=(.*)$", UNIT.read_text(), flags=re.MULTILINE)
    start = re.search(r"^ExecStart=\S+ (.*)$", UNIT.read_text(), flags=re.MULTILINE)
    assert start is not None
    assert pre == [f"+/opt/v2g-edge/bin/v2g-edged --migrate-config {start.group(1)}"]
