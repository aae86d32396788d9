"""The distribution: the sdist carries the Cython sources, the wheel carries compiled kernels and all
run-time data (config, grid profiles, SunSpec models) and no generated C, and the commands run from
an installed wheel with no checkout beside them."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--no-isolation",
            "--sdist",
            "--wheel",
            "--outdir",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return out


def test_sdist_has_sources_and_no_generated_c(dists: Path) -> None:
    (sdist,) = dists.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
    assert any(n.endswith("ext/pq.pyx") for n in names)
    assert any(n.endswith("ext/protect.pyx") for n in names)
    assert not any(n.endswith((".c", ".so")) for n in names)


def test_wheel_has_kernels_and_data_but_no_sources(dists: Path) -> None:
    (wheel,) = dists.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("edge/control/_pq_c.") and n.endswith(".so") for n in names)
    assert any(n.startswith("edge/control/_protect_c.") and n.endswith(".so") for n in names)
    assert "edge/_config/v2g-edge.toml" in names
    assert "edge/_config/profiles/ieee1547-2018.toml" in names
    assert "drivers/sunspec/models/model_701.json" in names
    assert not any(n.endswith((".c", ".pyx")) for n in names)


def test_commands_run_from_the_installed_wheel_alone(dists: Path, tmp_path: Path) -> None:
    (wheel,) = dists.glob("*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", str(wheel)], check=True, timeout=600, capture_output=True
    )
    for exe in ("v2g-edged", "v2gctl", "v2g-hil"):
        result = subprocess.run(
            [str(env_dir / "bin" / exe), "--help"], cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
    # The embedded configuration and its grid profile load from the package, and the kernels are compiled.
    check = subprocess.run(
        [str(env_dir / "bin" / "v2g-edged"), "--check"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0 and "energize: allowed" in check.stdout, check.stderr
    probe = "import edge.control.pq as k, edge.accel as a; print(a.is_compiled(k.impl), k.impl.__file__)"
    out = subprocess.run(
        [str(py), "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("True") and str(env_dir) in out
