"""``v2g-hil estimate`` and ``v2g-hil bench estimation``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from ecm_support import trace_path

from edge.estimation.profile import load_profile
from edge.state import StateStore
from hil.bench import estimation as bench
from hil.cli import main


def test_estimate_prints_bench_lines_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "fr.png"
    assert main(["estimate", str(trace_path("freq_regulation")), "--plot", str(png)]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = {line.split()[1]: float(line.split()[2]) for line in lines if line.startswith("BENCH ")}
    for fig in (
        "soc_rmse",
        "soc_max_err",
        "capacity_err",
        "resistance_growth",
        "chg10_err_max",
        "chg10_err_median",
    ):
        assert f"estimate.freq_regulation.{fig}" in names
    assert names["estimate.freq_regulation.soc_rmse"] < 1.0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_known_start_on_lfp_is_kept_by_coulomb_counting(capsys: pytest.CaptureFixture[str]) -> None:
    # lfp_day stays on the plateau, where the shipped generic table is 10-25 mV off the cell: told
    # the start is known, the estimate counts; told it is not, the same start drifts to the table.
    rmse = {}
    for sigma in ("0.02", "0.2"):
        args = ["--profile", "lfp-a123-26650", "--initial-soc", "0.55", "--initial-soc-sigma", sigma]
        assert main(["estimate", str(trace_path("lfp_day")), *args]) == 0
        lines = capsys.readouterr().out.splitlines()
        names = {line.split()[1]: float(line.split()[2]) for line in lines if line.startswith("BENCH ")}
        rmse[sigma] = names["estimate.lfp_day.soc_rmse"]
    assert rmse["0.02"] <= 1.0
    assert rmse["0.2"] > 2.0 * rmse["0.02"]


def test_fit_rc_reproduces_the_profile_from_the_new_cell_record(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", str(trace_path("freq_regulation")), "--fit-rc"]) == 0
    out = capsys.readouterr().out
    fitted = dict(line.split(" = ") for line in out.splitlines() if " = " in line)
    p = load_profile("nmc-lgm50")
    assert float(fitted["r0_ohm"]) == pytest.approx(p.r0_ohm, rel=0.02)
    assert float(fitted["tau1_s"]) == pytest.approx(p.tau1_s, rel=0.02)
    assert float(fitted["r2_ohm"]) == pytest.approx(p.r2_ohm, rel=0.02)


def test_a_trace_is_replayed_in_its_own_pack_layout(capsys: pytest.CaptureFixture[str]) -> None:
    # small6c_v2h is a 96s6p pack; the profile's own layout is 96s43p, which would judge another pack.
    def figures(*extra: str) -> dict[str, str]:
        assert main(["estimate", str(trace_path("small6c_v2h")), "--profile", "nmc-lgm50", *extra]) == 0
        lines = capsys.readouterr().out.splitlines()
        return {line.split()[1]: line.split()[2] for line in lines if line.startswith("BENCH ")}

    own = figures()
    assert own == figures("--parallel", "6")
    assert own != figures("--parallel", "43")


def test_a_record_the_fit_cannot_use_is_refused_with_the_way_to_fit_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The cool record's profile table is 30-70 mV off its cell: counted from nameplate over a 37-point
    # swing, every (tau1, tau2) candidate needs a negative resistance.
    assert main(["estimate", str(trace_path("cool_v2h")), "--fit-rc"]) == 2
    err = capsys.readouterr().err
    assert "negative resistance" in err
    assert "--window-s" in err
    assert "Traceback" not in err


def test_state_dir_carries_the_vehicle_between_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "estimate",
        str(trace_path("freq_regulation")),
        "--state-dir",
        str(tmp_path),
        "--vehicle-id",
        "VIN1",
    ]
    assert main(args) == 0
    assert main(args) == 0
    capsys.readouterr()
    store = StateStore.open(tmp_path)  # the daemon's state store: the CLI keeps what the daemon would
    record = store.vehicle(store.key("VIN1"))
    asyncio.run(store.aclose())
    assert record is not None
    assert record.sessions == 2
    assert record.growth_sigma < 0.05
    assert b"VIN1" not in (tmp_path / "state.db").read_bytes()


def test_an_unusable_state_dir_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("not a directory")
    args = ["estimate", str(trace_path("freq_regulation")), "--state-dir", str(tmp_path / "file" / "state")]
    assert main(args) == 2
    assert "cannot create the state directory" in capsys.readouterr().err


def test_errors_are_reported_not_raised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", str(tmp_path / "missing.csv.gz")]) == 2
    assert "missing.csv.gz" in capsys.readouterr().err
    assert main(["estimate", str(trace_path("freq_regulation")), "--profile", "nope"]) == 2
    assert "unknown battery profile 'nope'" in capsys.readouterr().err
    bad = tmp_path / "t.csv"
    bad.write_text("t_s,pack_voltage_v_meas\n0,370\n")
    assert main(["estimate", str(bad), "--initial-soc", "0.5"]) == 2
    assert "missing column(s) pack_current_a_meas, temp_c_meas" in capsys.readouterr().err
    no_truth = tmp_path / "m.csv"
    no_truth.write_text("t_s,pack_current_a_meas,pack_voltage_v_meas,temp_c_meas\n0,0,370,25\n1,0,370,25\n")
    assert main(["estimate", str(no_truth), "--initial-soc", "0.5", "--ev-soc-bias", "0.03"]) == 2
    assert "--ev-soc-bias needs a trace with soc_true" in capsys.readouterr().err
    freq = str(trace_path("freq_regulation"))
    assert main(["estimate", freq, "--ev-soc-bias", "0.03", "--ev-soc-every-s", "0"]) == 2
    assert "--ev-soc-every-s > 0" in capsys.readouterr().err


def test_bench_estimation_quick() -> None:
    figures = {f.name: f for f in bench.run(quick=True)}
    compiled = figures["estimation.step.compiled"]
    assert compiled.ratio is not None
    assert compiled.ratio > 1.0
    assert figures["estimation.freq_regulation.soc_rmse"].value < 1.0
    assert "estimation.v2h_evening.soc_rmse" not in figures  # quick mode: the shortest trace only


def test_a_missing_trace_fails_clearly() -> None:
    with pytest.raises(
        pytest.fail.Exception, match=r"no_such_trace.csv.gz is missing: restore tests/data/battery"
    ):
        trace_path("no_such_trace")
