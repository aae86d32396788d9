"""The shipped systemd files: the unit passes ``systemd-analyze verify`` with nothing printed and rates
at most 2.0 in ``systemd-analyze security --offline=true``; sysusers.d, tmpfiles.d and the journald
drop-in do what they say when systemd's own tools apply them to an empty root.

``systemd-analyze verify`` exits 0 on misspelt keys and bad values and only warns, so any output at
all fails the test. ExecStart must name an executable that exists: it is pointed at this
environment's ``v2g-edged``.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.daemon.main import EX_CONFIG, EX_NOPERM

SYSTEMD = Path(__file__).parents[2] / "deploy" / "systemd"
UNIT = SYSTEMD / "v2g-edged.service"
MAX_EXPOSURE = 2.0


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/lib/systemd")
    if found is None:
        pytest.fail(f"{name} is not installed (Debian package systemd)")
    return found


def _unit_here(tmp_path: Path) -> Path:
    exe = Path(sys.executable).parent / "v2g-edged"
    assert exe.exists(), f"{exe} missing: is the project installed in this environment?"
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/v2g-edge/bin/v2g-edged", str(exe)))
    return unit


def _service_values(key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", UNIT.read_text(), flags=re.MULTILINE)


def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    unit = _unit_here(tmp_path)
    result = subprocess.run(
        [_tool("systemd-analyze"), "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == "", result.stdout + result.stderr


def test_unit_exposure_is_at_most_2_0(tmp_path: Path) -> None:
    unit = _unit_here(tmp_path)
    result = subprocess.run(
        [_tool("systemd-analyze"), "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Overall exposure level for v2g-edged\.service: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, result.stdout


def test_unit_is_notify_with_watchdog_limits_and_never_runs_as_root() -> None:
    text = UNIT.read_text()
    assert "Type=notify" in text
    assert "WatchdogSec=" in text
    assert _service_values("User") == ["v2g-edge"]
    assert "NoNewPrivileges=yes" in text
    assert _service_values("MemoryMax") == ["256M"]
    assert _service_values("StartLimitBurst") and _service_values("StartLimitIntervalSec")
    # The exit codes that restarting cannot mend are the daemon's own constants.
    (prevent,) = _service_values("RestartPreventExitStatus")
    assert set(prevent.split()) == {str(EX_CONFIG), str(EX_NOPERM)}
    assert _service_values("RestrictRealtime") == ["yes"]


def test_sysusers_makes_the_user_with_dialout_and_tmpfiles_its_state_dir(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    subprocess.run(
        [_tool("systemd-sysusers"), f"--root={root}", str(SYSTEMD / "v2g-edge.sysusers.conf")],
        check=True,
        capture_output=True,
    )
    passwd = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
    user = passwd["v2g-edge"]
    assert int(user[2]) < 1000 and user[5] == "/var/lib/v2g-edge" and user[6].endswith("nologin")
    groups = {line.split(":")[0]: line.split(":") for line in (root / "etc/group").read_text().splitlines()}
    assert "v2g-edge" in groups["dialout"][3].split(",")
    assert groups["v2g-edge"][2] == user[3]  # the user's primary group is the operators' group

    subprocess.run(
        [_tool("systemd-tmpfiles"), f"--root={root}", "--create", str(SYSTEMD / "v2g-edge.tmpfiles.conf")],
        check=True,
        capture_output=True,
    )
    state = root / "var/lib/v2g-edge"
    st = state.stat()
    assert st.st_mode & 0o777 == 0o750
    assert (st.st_uid, st.st_gid) == (int(user[2]), int(user[3]))


def test_journald_dropin_uses_only_keys_journald_knows() -> None:
    dropin = configparser.ConfigParser()
    dropin.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    dropin.read(SYSTEMD / "journald.conf.d" / "60-v2g-edge.conf")
    assert dropin.sections() == ["Journal"]
    keys = list(dropin["Journal"])
    assert "SystemMaxUse" in keys
    # journald's parser table holds "Journal.<Key>" for every key it accepts.
    binary = Path(_tool("systemd-analyze")).resolve().parents[1] / "lib/systemd/systemd-journald"
    known = set(re.findall(rb"Journal\.([A-Za-z]+)", binary.read_bytes()))
    assert known, binary
    assert [k for k in keys if k.encode() not in known] == []
