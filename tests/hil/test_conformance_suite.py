"""The conformance suite (hil/conformance/suite.py, functions.py): the registry's ids, the function
tests' judges on synthetic records (an ideal EUT passes, a slow one fails), and the quick subset end to
end against the real daemon and the plant through ``v2g-hil run --suite``: summary.md, result.json,
plots, and the exit code; ``--jobs``: tests at once in worker processes."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hil import runner
from hil.conformance import functions as fn
from hil.conformance import suite, worker
from hil.conformance.base import START_S, ConformanceTest, Row
from hil.plant import events as ev
from hil.scenario import Scenario


def test_registry_lists_the_function_tests_for_each_owner() -> None:
    quick = {t.id for t in suite.registry(("daemon", "inverter"), quick=True)}
    full = {t.id for t in suite.registry(("daemon", "inverter"), quick=False)}
    for owner in ("daemon", "inverter"):
        assert {
            f"vv-char1-{owner}",
            f"vw-char1-{owner}",
            f"fw-char2-over-dis-{owner}",
            f"pri-{owner}",
        } <= quick
        for n in (1, 2, 3):
            assert f"vv-char{n}-{owner}" in full and f"vw-char{n}-{owner}" in full
        assert {f"vv-vref-{owner}", f"cpf-90inj-{owner}", f"crp-m44-{owner}", f"wv-char1-chg-{owner}"} <= full
        for d in ("over", "under"):
            for s in ("dis", "chg"):
                assert f"fw-char1-{d}-{s}-{owner}" in full and f"fw-char2-{d}-{s}-{owner}" in full
    only = suite.registry(("daemon",), quick=True, only=["fw-*"])
    assert only and all(t.id.startswith("fw-") and t.owner == "daemon" for t in only)


def test_quick_function_tests_fit_the_ci_budget() -> None:
    quick = fn.tests("daemon", quick=True)
    assert all(t.quick for t in quick)
    # Scenario time of the quick subset per owner; with start-up and plots it must stay under 3 min.
    assert sum(t.scenario.duration_s for t in quick) <= 150.0
    full = fn.tests("inverter", quick=False)
    # 59.5 min of steps and holds, and each full test's START_S lead for a slow start under --jobs.
    assert sum(t.scenario.duration_s for t in full) <= 59.5 * 60.0 + len(full) * START_S + 1.0


def test_a_full_function_test_steps_first_after_the_lead_a_quick_one_keeps_its_budget() -> None:
    # Under --jobs a daemon may need seconds to start: a full test's first stimulus comes START_S
    # after the settling a quick test (CI, one at a time) has.
    for owner in ("daemon", "inverter"):
        for quick, first_s in ((True, fn.SETTLE_S), (False, fn.SETTLE_S + START_S)):
            for t in fn.tests(owner, quick=quick):
                assert min(e.at_s for e in t.scenario.events) >= first_s - 1e-9, t.id
        quick_first = {min(e.at_s for e in t.scenario.events) for t in fn.tests(owner, quick=True)}
        assert fn.SETTLE_S in quick_first


def _columns(test: ConformanceTest, q_of_v, tr_s: float, dt: float = 0.01) -> dict[str, list[float]]:
    """A record of an EUT whose Q follows ``q_of_v`` with a first-order response of t90 ``tr_s``."""
    grid = sorted((e for e in test.scenario.events if isinstance(e, ev.Grid)), key=lambda e: e.at_s)
    tau = tr_s / math.log(10.0)
    cols: dict[str, list[float]] = {"t_s": [], "grid_v_pu": [], "q_ev_var": [], "p_ev_w": [], "grid_f_hz": []}
    v, q, k = 1.0, 0.0, 0
    n = int(test.scenario.duration_s / dt)
    for i in range(n + 1):
        t = i * dt
        while k < len(grid) and grid[k].at_s <= t + 1e-9:
            v = grid[k].v_pu if grid[k].v_pu is not None else v
            k += 1
        q += (q_of_v(v) * fn.S_VA - q) * (1.0 - math.exp(-dt / tau))
        for name, val in (
            ("t_s", t),
            ("grid_v_pu", v),
            ("q_ev_var", q),
            ("p_ev_w", fn.P_W),
            ("grid_f_hz", 60.0),
        ):
            cols[name].append(val)
    return cols


def test_volt_var_judge_passes_an_ideal_eut_and_fails_a_slow_one() -> None:
    test = fn.volt_var("daemon", 1, quick=True)
    c = fn.VV_CHARS[1]
    curve = fn._curve(list(zip(c.v, c.q, strict=True)))
    rows = test.judge(_columns(test, curve, 1.0))
    assert rows[0].test == "operating point before the first step"
    assert len(rows) == 1 + len(fn.VV_QUICK)
    assert all(r.passed for r in rows), [r.measured for r in rows if not r.passed]
    slow = test.judge(_columns(test, curve, 3.0))
    failed = [r.test for r in slow if not r.passed]
    # The steps that move Q by more than the 1.5 MRA tolerance fail; the deadband steps do not move it.
    assert "step k) V4+av" in failed and "step w) V1-av" in failed
    wrong_curve = test.judge(_columns(test, lambda v: 0.5 * curve(v), 1.0))
    assert any(not r.passed for r in wrong_curve)


def test_suite_runs_a_quick_test_end_to_end(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    runner.add_arguments(parser)
    args = parser.parse_args(
        [
            "--suite",
            "ieee1547",
            "--quick",
            "--owner",
            "daemon",
            "--only",
            "fw-char2-over-*",
            "--out",
            str(tmp_path),
        ]
    )
    assert suite.main(args) == 0
    summary = (tmp_path / "summary.md").read_text()
    assert "| test | clause | owner | setting | measured | limit | verdict |" in summary
    assert summary.count("fw-char2-over-dis-daemon: step") == 8
    result = json.loads((tmp_path / "result.json").read_text())
    (t,) = result["tests"]
    assert t["passed"] and t["id"] == "fw-char2-over-dis-daemon" and t["wall_s"] > 0
    folder = tmp_path / t["id"]
    for row in t["rows"]:
        assert row["passed"]
        assert (folder / row["plot"]).stat().st_size > 5000
    assert (folder / "daemon.log").exists() and "FAIL" not in (folder / "summary.md").read_text()
    # the run's daemon kept its status in the run's folder, not where a daemon in service keeps its own
    assert f"status in {folder / 'run'}" in (folder / "daemon.log").read_text()


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    runner.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_jobs_run_tests_at_once_each_in_its_own_process(tmp_path: Path) -> None:
    # What is judged here is the running, not the verdicts: a loaded machine can fail a quick test's
    # timing (test_suite_runs_a_quick_test_end_to_end judges one alone).
    ids = ["fw-char2-over-dis-daemon", "fw-char2-over-dis-inverter"]
    argv = ["--suite", "ieee1547", "--quick", "--owner", "both", "--jobs", "2", "--out", str(tmp_path)]
    args = _args(*argv, *[a for i in ids for a in ("--only", i)])
    assert suite.main(args) in (0, 1)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["jobs"] == 2
    assert [t["id"] for t in result["tests"]] == ids  # the registry's order, whichever ended first
    spans = []
    for t in result["tests"]:
        assert t["errors"] == [] and len(t["rows"]) == 9  # judged: the judge's eight steps and the start
        assert f"--config {tmp_path / t['id']}" in (tmp_path / t["id"] / "daemon.log").read_text()
        start = dt.datetime.fromisoformat(t["started"]).timestamp()
        spans.append((start, start + t["wall_s"]))
    (a0, a1), (b0, b1) = spans
    assert a0 < b1 and b0 < a1, f"the two runs did not overlap: {spans}"
    assert "up to 2 tests at once" in (tmp_path / "summary.md").read_text()


@pytest.mark.asyncio
async def test_a_worker_that_fails_is_that_tests_error_not_the_suites_end(tmp_path: Path) -> None:
    # Not in the registry, so its worker cannot rebuild it; the registry's test beside it still runs.
    sc = Scenario(name="tiny", duration_s=4.0, plant=fn.PLANT, daemon=fn._daemon("daemon", [], {}))
    tiny = ConformanceTest(
        id="tiny", title="tiny", clause="-", owner="daemon", scenario=sc, judge=lambda c: []
    )
    (real,) = suite.registry(["daemon"], True, ["fw-char2-over-dis-daemon"])
    code = await suite.run_suite(
        [tiny, real], tmp_path, runner.daemon_command(None), quick=True, owners=["daemon"], jobs=2
    )
    assert code == 1
    result = json.loads((tmp_path / "result.json").read_text())
    bad, good = result["tests"]
    assert bad["id"] == "tiny" and not bad["passed"]
    assert bad["errors"] == [
        "worker process failed (exit code 2): no test 'tiny' for owner daemon in the quick registry"
    ]
    assert good["passed"] and good["rows"] and all(row["passed"] for row in good["rows"])


@pytest.mark.asyncio
async def test_workers_start_apart_in_the_order_they_ask() -> None:
    pacer = suite._Pacer(0.05)
    loop = asyncio.get_running_loop()
    started: list[tuple[int, float]] = []

    async def start(k: int) -> None:
        await pacer.wait()
        started.append((k, loop.time()))

    await asyncio.gather(*(start(k) for k in range(4)))
    assert [k for k, _ in started] == [0, 1, 2, 3]
    t0 = started[0][1]
    # a sleep never ends early, so the k-th is at least k gaps after the first (however late each wakes)
    assert all(t >= t0 + k * 0.05 - 1e-3 for k, t in started), started


def _processes_under(path: Path) -> list[str]:
    """Command lines of the processes that name ``path`` (a run's daemons and workers)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(path) in cmd:
            found.append(cmd)
    return found


@pytest.mark.parametrize(
    ("jobs", "sig"),
    [(2, signal.SIGINT), (2, signal.SIGTERM), (2, signal.SIGHUP), (2, signal.SIGKILL), (1, signal.SIGTERM)],
)
def test_a_stopped_suite_stops_its_workers_and_their_daemons(
    tmp_path: Path, jobs: int, sig: signal.Signals
) -> None:
    """Ctrl-C, a scheduler's stop, a closed terminal: the suite stops its runs (workers, each its daemon
    and plant) and waits for them; killed outright, its workers notice (their stdin closes) and stop too.
    One at a time (no workers) a stop ends the run in this process the same way."""
    ids = ["fw-char2-over-dis-daemon", "fw-char2-over-dis-inverter"]
    argv = ["--suite", "ieee1547", "--quick", "--owner", "both", "--jobs", str(jobs), "--out", str(tmp_path)]
    cmd = [sys.executable, "-m", "hil.cli", "run", *argv, *[a for i in ids for a in ("--only", i)]]
    # SIGHUP and SIGINT at their defaults whatever this test inherits (under nohup SIGHUP is ignored, and
    # a shell without job control starts a background job with SIGINT ignored; the suite rightly keeps
    # ignoring both there): set, then exec the suite in the same process.
    at_defaults = (
        "import os, signal, sys; signal.signal(signal.SIGHUP, signal.SIG_DFL); "
        "signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", at_defaults, *cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60.0
        while len([c for c in _processes_under(tmp_path) if "v2g-edged --config" in c]) < jobs:
            if proc.poll() is not None:  # ended before all its daemons were running: say what it printed
                assert proc.stdout is not None
                pytest.fail(f"the suite ended ({proc.returncode}) first:\n{proc.stdout.read().decode()}")
            assert time.monotonic() < deadline, "the daemons did not start"
            time.sleep(0.2)
        proc.send_signal(sig)  # to the suite's process alone, as a scheduler or a terminal does
        out, _ = proc.communicate(timeout=60.0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if sig == signal.SIGKILL:
        deadline = time.monotonic() + 30.0  # each worker stops its daemon (up to 5 s) on its own
        while _processes_under(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.1)
    else:
        assert proc.returncode == 130, out.decode()
    assert _processes_under(tmp_path) == []  # the suite waited for them (killed: they stopped themselves)
    if sig == signal.SIGKILL:
        assert not (tmp_path / "result.json").exists()
    else:  # nothing had finished: a report that says so, both tests named as stopped
        result = json.loads((tmp_path / "result.json").read_text())
        assert result["tests"] == [] and result["stopped"] == ids and not result["passed"]
        assert (
            (tmp_path / "summary.md").read_text().startswith("# IEEE 1547.1-style conformance suite: STOPPED")
        )
    for i in ids if jobs > 1 else []:
        log = (tmp_path / i / "worker.log").read_text()
        assert "stopping" in log if sig == signal.SIGKILL else "stopped" in log
        assert not (tmp_path / i / suite.WORKER_RESULT).exists()


@pytest.mark.asyncio
async def test_a_stop_keeps_the_report_of_the_tests_that_had_finished(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A stop after hours of runs must not lose them: the short test finishes, the long one is stopped.
    short, long = suite.registry(["daemon"], True, ["vw-char1-daemon", "trip-short-daemon"])
    assert short.scenario.duration_s + 10.0 < long.scenario.duration_s
    run = asyncio.create_task(
        suite.run_suite(
            [short, long], tmp_path, runner.daemon_command(None), quick=True, owners=["daemon"], jobs=2
        )
    )
    deadline = time.monotonic() + 120.0
    said = ""
    while f"{short.id}: " not in said or "1 of 2 done" not in said:  # the suite has its result
        assert not run.done() and time.monotonic() < deadline, "the short test did not finish"
        await asyncio.sleep(0.2)
        said += capsys.readouterr().out
    assert not run.done(), "the long test ended before the stop: the test proves nothing"
    run.cancel()  # what the suite's signal handlers do
    with pytest.raises(asyncio.CancelledError):
        await run
    result = json.loads((tmp_path / "result.json").read_text())
    assert [t["id"] for t in result["tests"]] == [short.id] and result["stopped"] == [long.id]
    assert result["tests"][0]["rows"] and not result["passed"]
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("# IEEE 1547.1-style conformance suite: STOPPED")
    assert (
        f"Stopped by a signal after 1 of 2 tests; these did not finish and have no verdict: {long.id}."
        in summary
    )
    assert f"{short.id}: " in summary and f"| {long.id}" not in summary
    assert _processes_under(tmp_path) == []


def test_under_nohup_a_closed_terminal_does_not_stop_the_suite(tmp_path: Path) -> None:
    ids = ["fw-char2-over-dis-daemon", "fw-char2-over-dis-inverter"]
    argv = ["--suite", "ieee1547", "--quick", "--owner", "both", "--jobs", "2", "--out", str(tmp_path)]
    cmd = [sys.executable, "-m", "hil.cli", "run", *argv, *[a for i in ids for a in ("--only", i)]]
    # nohup (coreutils) ignores SIGHUP and execs the suite: the pid is the suite's
    proc = subprocess.Popen(["nohup", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60.0
        while len([c for c in _processes_under(tmp_path) if "v2g-edged --config" in c]) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, "the daemons did not start"
            time.sleep(0.2)
        proc.send_signal(signal.SIGHUP)
        time.sleep(3.0)
        assert proc.poll() is None
        assert len([c for c in _processes_under(tmp_path) if "v2g-edged --config" in c]) == 2
    finally:
        proc.terminate()
        assert proc.wait(timeout=60.0) == 130
    assert _processes_under(tmp_path) == []


def test_a_worker_refuses_a_test_that_changed_since_the_suite_started(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (t,) = suite.registry(["daemon"], True, ["fw-char2-over-dis-daemon"])
    argv = [t.id, "--owner", "daemon", "--quick", "--folder", str(tmp_path), "--", "v2g-edged"]
    assert worker.main([*argv[:4], "--fingerprint", "0" * 16, *argv[4:]]) == 2
    assert "not the one the suite started with" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing ran
    # the same test rebuilt in another process has the same fingerprint (hash seeds differ there)
    code = (
        "from hil.conformance import suite; "
        "(t,) = suite.registry(['daemon'], True, ['fw-char2-over-dis-daemon']); "
        "print(suite.fingerprint(t, suite.code_digest()))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert other.stdout.strip() == suite.fingerprint(t, suite.code_digest())


def test_the_fingerprint_covers_the_code_a_run_is_made_of(tmp_path: Path) -> None:
    # An edited judge, plant or setting, or a rebuilt kernel, during hours of runs would make the
    # later workers run other code than the first: their fingerprints differ.
    for name in suite.CODE_DIRS:
        (tmp_path / name / "sub").mkdir(parents=True)
        (tmp_path / name / "sub" / "m.py").write_text("x = 1\n")
    (tmp_path / "docs").mkdir()
    first = suite.code_digest(tmp_path)
    (tmp_path / "docs" / "notes.md").write_text("not code")
    (tmp_path / "hil" / "sub" / "__pycache__").mkdir()
    (tmp_path / "hil" / "sub" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"cache")
    assert suite.code_digest(tmp_path) == first
    edits = [
        ("hil/sub/m.py", b"x = 2\n"),  # a judge
        ("edge/_k.cpython-311-x86_64-linux-gnu.so", b"\x7fELF"),  # a kernel rebuilt
        ("config/sub/ieee1547.toml", b"[trip]\n"),  # a setting
        ("drivers/sub/model_701.json", b"{}"),  # a SunSpec model
    ]
    seen = {first}
    for rel, content in edits:
        (tmp_path / rel).write_bytes(content)
        seen.add(suite.code_digest(tmp_path))
    assert len(seen) == 1 + len(edits)
    assert (suite.CODE_ROOT / "hil" / "conformance" / "suite.py").is_file()  # the real tree's root
    (t,) = suite.registry(["daemon"], True, ["fw-char2-over-dis-daemon"])
    assert suite.fingerprint(t, first) != suite.fingerprint(t, min(seen - {first}))


@pytest.mark.asyncio
async def test_the_suite_checks_every_worker_against_the_tree_as_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digests = iter(["at the start", "edited since"])
    monkeypatch.setattr(suite, "code_digest", lambda: next(digests))
    given: list[str] = []

    async def fake_run(t: ConformanceTest, *args: object, code: str, on_done, **kw: object) -> None:
        given.append(code)
        on_done(suite.TestResult(t))

    monkeypatch.setattr(suite, "_run_in_process", fake_run)
    tests = suite.registry(["daemon"], True, ["fw-char2-*", "vw-char1-*"])
    done: list[suite.TestResult] = []
    await suite._run_parallel(tests, tmp_path, [], quick=True, jobs=2, on_done=done.append)
    assert given == ["at the start"] * len(tests) and len(done) == len(tests) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--suite", "ieee1547", "--quick", "--jobs", "0"], "--jobs must be 1 or more (got 0)"),
        (["--all", "--jobs", "2"], "--jobs runs a --suite's tests at once"),
    ],
)
def test_jobs_are_refused_where_they_cannot_apply(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert runner.main(_args(*argv)) == 2
    assert message in capsys.readouterr().err


@pytest.mark.asyncio
async def test_a_failing_row_fails_the_suite(tmp_path: Path) -> None:
    def judge(cols):
        p = max(cols["p_ev_w"])
        return [
            Row(
                test="P stays below 1 kW",
                setting="-",
                measured=f"{p:.0f} W",
                limit="<= 1000 W",
                passed=p <= 1000.0,
            )
        ]

    # 10 s: the daemon must be exporting for the row to fail; on a machine loaded with a bench's runs
    # its start took more than 4 s: the row passed and this test failed.
    sc = Scenario(name="tiny", duration_s=10.0, plant=fn.PLANT, daemon=fn._daemon("daemon", [], {}))
    test = ConformanceTest(
        id="tiny", title="tiny", clause="-", owner="daemon", scenario=sc, judge=judge, dispatch_p_w=fn.P_W
    )
    code = await suite.run_suite([test], tmp_path, runner.daemon_command(None), quick=True, owners=["daemon"])
    assert code == 1
    assert "**FAIL**" in (tmp_path / "summary.md").read_text()
    assert json.loads((tmp_path / "result.json").read_text())["passed"] is False


def test_a_stage_that_never_runs_fails_the_watt_var_test() -> None:
    # Watt-var's Q is 0 at P = 0: without the operating-point and power-step checks an idle stage
    # would pass every step.
    test = fn.watt_var("inverter", 1, charging=False, quick=True)
    cols = _columns(test, lambda _v: 0.0, 1.0)
    cols["p_ev_w"] = [0.0] * len(cols["t_s"])
    rows = test.judge(cols)
    assert not rows[0].passed
    assert all(not r.passed and "P not reached" in r.measured for r in rows[1:])
