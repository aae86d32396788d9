"""The bench command line as a person uses it: ``v2g-hil run --list`` shows whole descriptions, a run
shows its events as they play, a plot that cannot be drawn is a warning (not a failed check), and
``v2g-hil demo`` says a busy port in one line and stops everything it started when its reader goes."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hil import cli, runner, scenario
from hil.procs import free_port
from tests.hil.test_runner import FAKE, SCENARIO

V2G_HIL = str(Path(sys.executable).parent / "v2g-hil")


def test_list_shows_every_description_whole_and_wrapped() -> None:
    lines = runner.list_scenarios(72)
    assert all(len(line) <= 72 for line in lines)
    text = " ".join(line.strip() for line in lines)
    for path in scenario.builtin_dir().glob("*.toml"):
        description = " ".join(scenario.load(path).description.split())
        assert len(description) > 80  # long enough that the old first-line listing cut it
        assert description in text, path.stem


@pytest.mark.slow
def test_a_run_names_each_event_as_it_plays_and_a_missing_matplotlib_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    sc = tmp_path / "sc.toml"
    sc.write_text(SCENARIO)
    rc = cli.main(["run", str(sc), "--out", str(tmp_path / "report"), "--daemon-cmd", FAKE])
    lines = capsys.readouterr().out.splitlines()
    assert rc == 0, lines
    assert lines[0] == "RUN fake-min-import (1 of 1): 5 s, 2 checks, 1 events"
    event = lines.index("  t=   2.5 s  load drop (house_load w=1000.0)")
    assert event < next(i for i, line in enumerate(lines) if line.startswith("PASS"))
    assert any(line.startswith("WARN fake-min-import: no plots: matplotlib") for line in lines)
    assert lines[-1] == "2 passed, 0 failed"
    summary = (tmp_path / "report" / "fake-min-import" / "summary.md").read_text()
    assert "# fake-min-import: PASS" in summary and "## Warnings" in summary and "[png]" not in summary


def test_demo_on_a_busy_port_says_so_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(
            [V2G_HIL, "demo", "--stage-port", str(port), "--mqtt-port", str(free_port())],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr.splitlines() == [
        f"v2g-hil demo: port {port} is in use: is another v2g-hil demo or v2g-hil plant running?"
        " (stop it, or choose other ports with --stage-port N)"
    ]


def _children(pid: int) -> set[int]:
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(b")", 1)[1].split()[1]) == pid:
                out.add(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state != b"Z"


def _two_free_ports() -> int:
    for _ in range(50):
        port = free_port()
        if port < 65535:
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
    raise RuntimeError("no two consecutive free ports")


@pytest.mark.slow
def test_demo_stops_its_broker_plant_and_daemon_when_the_reader_goes() -> None:
    stage = _two_free_ports()
    demo = subprocess.Popen(
        [V2G_HIL, "demo", "--stage-port", str(stage), "--mqtt-port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert demo.stdout is not None
    first = demo.stdout.readline().decode()
    assert first.startswith(f"plant: power stage 127.0.0.1:{stage}"), first + demo.stderr.read().decode()
    event = demo.stdout.readline().decode()
    assert "EVENT base load (house_load w=800.0)" in event
    children = _children(demo.pid)
    cmdlines = sorted(Path(f"/proc/{p}/cmdline").read_bytes() for p in children)
    assert len(cmdlines) == 2, cmdlines  # the broker and the daemon (the plant runs in the demo)
    assert b"mosquitto" in cmdlines[0] or b"mosquitto" in cmdlines[1], cmdlines
    assert any(b"v2g-edged" in c for c in cmdlines), cmdlines
    demo.stdout.close()  # `| head` has read its lines and gone
    rc = demo.wait(30)
    err = demo.stderr.read().decode()
    demo.stderr.close()
    assert rc == 0, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    deadline = time.monotonic() + 5.0
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in children if _alive(p)]


def test_a_run_whose_reader_leaves_still_reaches_its_verdicts_without_a_traceback(tmp_path: Path) -> None:
    """`v2g-hil run ... | head -1`: the run goes on to its verdicts (in the report), no traceback."""
    sc = tmp_path / "sc.toml"
    sc.write_text(SCENARIO)
    exe = Path(sys.executable).parent / "v2g-hil"
    out = tmp_path / "report"
    cmd = f"{exe} run {sc} --out {out} --daemon-cmd '{FAKE}' | head -1"
    proc = subprocess.run(["bash", "-c", cmd], check=False, capture_output=True, text=True, timeout=120)
    assert proc.stdout.startswith("RUN fake-min-import"), proc.stdout
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    summary = (out / "fake-min-import" / "summary.md").read_text()
    assert "# fake-min-import: PASS" in summary, summary
