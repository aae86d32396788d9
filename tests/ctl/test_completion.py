"""``v2gctl completion``: the script bash loads, and what it completes (run in a real bash)."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from edge.ctl.completion import bash_script, zsh_script
from edge.ctl.main import build_parser, main


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("completion") / "v2gctl.bash"
    path.write_text(bash_script(build_parser()))
    return path


def complete(script: Path, line: str, cwd: Path | None = None) -> list[str]:
    """What bash offers for the last word of ``line`` (a trailing space: a new, empty word)."""
    words = line.split() + ([""] if line.endswith(" ") else [])
    array = " ".join(shlex.quote(w) for w in words)
    program = (
        f"source {shlex.quote(str(script))}; COMP_WORDS=({array}); COMP_CWORD={len(words) - 1};"
        ' _v2gctl; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    r = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True, cwd=cwd)
    assert r.stderr == ""
    return sorted(x for x in r.stdout.splitlines() if x)


def test_the_scripts_are_valid_bash(script: Path, tmp_path: Path) -> None:
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    zsh = tmp_path / "v2gctl.zsh"
    zsh.write_text(zsh_script(build_parser()))
    assert subprocess.run(["bash", "-n", str(zsh)], check=False).returncode == 0
    assert "bashcompinit" in zsh.read_text()


def test_the_command_prints_the_script(capsys: pytest.CaptureFixture[str], script: Path) -> None:
    assert main(["completion", "bash"]) == 0
    assert capsys.readouterr().out == script.read_text()
    with pytest.raises(SystemExit) as exc:
        main(["completion", "fish"])
    assert exc.value.code == 2


def test_it_completes_commands_actions_options_and_values(script: Path, tmp_path: Path) -> None:
    assert complete(script, "v2gctl con") == ["config"]
    assert complete(script, "v2gctl di") == ["diagnostics", "dispatch"]
    assert complete(script, "v2gctl config s") == ["schema", "set", "show"]
    assert complete(script, "v2gctl completion ") == ["bash", "zsh"]
    assert "--out" in complete(script, "v2gctl diagnostics --")
    # Options of the action, after an option with its value.
    assert complete(script, "v2gctl config --help set --no") == ["--no-reload"]
    assert complete(script, "v2gctl events --state-dir /tmp --js") == ["--json"]
    (tmp_path / "site.toml").write_text("")
    (tmp_path / "state").mkdir()
    assert complete(script, "v2gctl config check s", cwd=tmp_path) == ["site.toml", "state"]
    assert complete(script, "v2gctl events --state-dir s", cwd=tmp_path) == ["state"]
    assert complete(script, "v2gctl watch --interval ") == []  # a number: nothing to offer
