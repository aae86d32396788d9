"""``v2g-hil run`` end to end on short scenarios, with a stand-in daemon (tests/hil/fake_daemon.py):
the plant, the daemon as a separate process on a generated config, judging, the report folder."""

from __future__ import annotations

import json
import shlex
import sys
import tomllib
from pathlib import Path

import pytest

from hil import cli

FAKE = f"{shlex.quote(sys.executable)} {shlex.quote(str(Path(__file__).parent / 'fake_daemon.py'))}"

SCENARIO = """
name = "fake-min-import"
description = "The stand-in daemon holds the site near +100 W import through a load drop."
duration_s = 5.0

[plant.site]
house_load_w = 2000.0

[daemon.site]
export_margin_w = 150.0

[[events]]
at_s = 2.5
kind = "house_load"
w = 1000.0
label = "load drop"

[[checks]]
name = "import settles after the drop"
kind = "settle"
signal = "p_site_import_w"
from_s = 2.5
within_s = 2.0
min = -300.0
max = 400.0

[[checks]]
name = "the EV discharged"
kind = "energy"
signal = "p_ev_w"
from_s = 1.0
to_s = 5.0
min_wh = 0.5
"""

IMPOSSIBLE = """
[[checks]]
name = "impossible"
kind = "mean"
signal = "p_ev_w"
from_s = 1.0
min = 100000.0
"""


@pytest.mark.slow
def test_run_passes_writes_the_report_and_the_daemon_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sc = tmp_path / "sc.toml"
    sc.write_text(SCENARIO)
    out = tmp_path / "report"
    rc = cli.main(["run", str(sc), "--out", str(out), "--daemon-cmd", FAKE])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "PASS fake-min-import: import settles after the drop" in printed
    assert printed.strip().splitlines()[-1] == "2 passed, 0 failed"
    folder = out / "fake-min-import"
    result = json.loads((folder / "result.json").read_text())
    assert result["passed"] is True
    assert [c["passed"] for c in result["checks"]] == [True, True]
    assert all((folder / c["plot"]).stat().st_size > 5000 for c in result["checks"])
    signals = json.loads((folder / "signals.json").read_text())["columns"]
    assert len(signals["t_s"]) > 300
    assert max(signals["p_ev_w"]) > 500.0
    assert "| PASS | import settles after the drop |" in (folder / "summary.md").read_text()
    cfg = tomllib.loads((folder / "daemon.toml").read_text())
    assert cfg["devices"]["power_stage"]["role"] == "power_stage"
    assert cfg["devices"]["site_meter"]["protocol"] == "sunspec"
    bus = cfg["buses"][cfg["devices"]["power_stage"]["bus"]]
    assert bus["transport"] == "tcp"
    assert bus["port"] > 0
    assert cfg["mqtt"]["enabled"] is False
    assert cfg["commissioning"]["f_nominal_hz"] == 60
    assert cfg["site"]["export_margin_w"] == 150.0  # the scenario's [daemon] table merged on top
    assert cfg["inverter"]["p_rated_w"] == 7400.0


@pytest.mark.slow
def test_a_failed_check_fails_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sc = tmp_path / "sc.toml"
    short = SCENARIO
    for a, b in [("duration_s = 5.0", "duration_s = 3.0"), ("at_s = 2.5", "at_s = 2.0"),
                 ("to_s = 5.0", "to_s = 3.0"), ("from_s = 2.5", "from_s = 2.0"),
                 ("within_s = 2.0", "within_s = 0.9")]:  # fmt: skip
        short = short.replace(a, b)
    sc.write_text(short + IMPOSSIBLE)
    rc = cli.main(["run", str(sc), "--out", str(tmp_path / "r"), "--daemon-cmd", FAKE])
    printed = capsys.readouterr().out
    assert rc == 1
    assert "FAIL fake-min-import: impossible (mean p_ev_w" in printed
    assert printed.strip().splitlines()[-1].endswith("1 failed")


@pytest.mark.slow
def test_a_daemon_that_dies_is_a_failure_with_its_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sc = tmp_path / "sc.toml"
    sc.write_text(
        SCENARIO.replace("duration_s = 5.0", "duration_s = 2.0").split("[[events]]")[0] + IMPOSSIBLE
    )
    crash = f"{shlex.quote(sys.executable)} -c 'import sys; print(\"boom\", file=sys.stderr); sys.exit(3)'"
    rc = cli.main(["run", str(sc), "--out", str(tmp_path / "r"), "--daemon-cmd", crash])
    printed = capsys.readouterr().out
    assert rc == 1
    assert "daemon exited with code 3" in printed
    log = (tmp_path / "r" / "fake-min-import" / "daemon.log").read_text()
    assert "boom" in log
    assert "boom" in (tmp_path / "r" / "fake-min-import" / "summary.md").read_text()


def test_a_broken_scenario_stops_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sc = tmp_path / "sc.toml"
    sc.write_text(SCENARIO.replace('kind = "house_load"', 'kind = "houseload"'))
    rc = cli.main(["run", str(sc), "--out", str(tmp_path / "r"), "--daemon-cmd", FAKE])
    err = capsys.readouterr().err
    assert rc == 2
    assert "houseload" in err
    assert not (tmp_path / "r").exists()


def test_list_shows_the_builtin_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("v2h-export-cap-load-drop", "stale-meter", "island-min-import", "ev-unplug-discharging"):
        assert f"{name}: " in out
    assert "INVALID" not in out


async def _configs(tmp_path: Path, transport: str | None) -> list[tuple[str, Path, dict[str, object]]]:
    import tomlkit

    from hil import scenario
    from hil.backends.software import SoftwareBackend
    from hil.runner import daemon_config

    out = []
    for p in sorted(scenario.builtin_dir().glob("*.toml")):
        sc = scenario.load(p)
        backend = SoftwareBackend(sc, transport=transport)
        await backend.start()
        try:
            doc = daemon_config(sc, backend, tmp_path, None)
        finally:
            await backend.stop()
        path = tmp_path / f"{p.stem}.toml"
        path.write_text(tomlkit.dumps(doc))
        out.append((p.stem, path, tomllib.loads(path.read_text())))
    return out


async def test_rtu_transport_puts_both_devices_on_one_serial_bus(tmp_path: Path) -> None:
    (_, _, cfg), *_ = await _configs(tmp_path, "rtu")
    assert list(cfg["buses"]) == ["rs485"]  # type: ignore[call-overload]
    bus = cfg["buses"]["rs485"]  # type: ignore[index]
    assert bus["transport"] == "rtu"
    assert bus["serial_port"].endswith("clientA")
    assert bus["baud"] == 115200
    units = {d["role"]: d["unit_id"] for d in cfg["devices"].values()}  # type: ignore[attr-defined]
    assert units == {"power_stage": 1, "site_meter": 2}


@pytest.mark.slow
async def test_the_daemon_accepts_every_generated_config(tmp_path: Path) -> None:
    import asyncio

    from hil.runner import daemon_command

    exe = daemon_command(None)[0]
    for name, path, _ in await _configs(tmp_path, None):
        proc = await asyncio.create_subprocess_exec(
            exe,
            "--check",
            "--config",
            str(path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, (name, out.decode(), err.decode())


@pytest.mark.slow
def test_mqtt_scenarios_get_a_broker_and_publish_on_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "mqtt.log"
    monkeypatch.setenv("FAKE_MQTT_LOG", str(log))
    sc = tmp_path / "sc.toml"
    text = 'needs = ["mqtt"]\n' + SCENARIO.replace("duration_s = 5.0", "duration_s = 4.0").replace(
        "to_s = 5.0", "to_s = 4.0"
    )
    text = text.replace("within_s = 2.0", "within_s = 1.4")
    text += '\n[[events]]\nat_s = 3.0\nkind = "mqtt_publish"\ntopic = "v2g-edge/bench/cmd"\n'
    text += 'payload = "{\\"p_w\\": 1000}"\n'
    sc.write_text(text)
    rc = cli.main(["run", str(sc), "--out", str(tmp_path / "r"), "--daemon-cmd", FAKE])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    cfg = tomllib.loads((tmp_path / "r" / "fake-min-import" / "daemon.toml").read_text())
    assert cfg["mqtt"]["enabled"] is True
    assert cfg["mqtt"]["port"] != 1883
    assert 'v2g-edge/bench/cmd {"p_w": 1000}' in log.read_text()
