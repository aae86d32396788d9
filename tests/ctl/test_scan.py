"""``v2gctl scan`` and ``v2gctl probe`` against real devices: a TCP range with one SunSpec server, one
port that accepts and never answers and one address with nothing behind it; an RTU line that only
carries frames at the device's baud rate; the bench plant read live through the daemon's drivers; and
bad input ending in one line with exit code 2 or 1. v2gctl runs as a subprocess of the event loop, so
the servers keep answering while it scans."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import sys
import termios
import threading
import tomllib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer

from drivers import build
from edge.ctl.main import main as v2gctl
from edge.settings import from_builtins
from edge.settings.load import default_config_text
from hil.serial_link import SocatPair
from hil.sunspec_server import SunSpecImage, charger_models, meter_models
from tests.conftest import StartServer
from tests.daemon.bench_support import bench_config_text, running_plant

V2GCTL = str(Path(sys.executable).parent / "v2gctl")


@dataclass
class Result:
    rc: int
    out: str
    err: str


async def ctl(*args: str) -> Result:
    env = {k: v for k, v in os.environ.items() if not k.startswith("V2G_EDGE_")}
    proc = await asyncio.create_subprocess_exec(
        V2GCTL, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


@contextlib.asynccontextmanager
async def silent_listener(port: int) -> AsyncIterator[None]:
    """127.0.0.2:``port`` accepts connections, reads requests, never answers (a hung gateway)."""
    conns: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conns.append(writer)
        while await reader.read(256):
            pass

    srv = await asyncio.start_server(swallow, "127.0.0.2", port)
    try:
        yield
    finally:
        srv.close()
        for w in conns:
            w.close()
        await srv.wait_closed()


def with_snippet(snippet: str) -> dict[str, object]:
    """The bench configuration with its buses and devices replaced by the snippet."""
    tree = tomllib.loads(default_config_text())
    snip = tomllib.loads(snippet)
    tree["buses"], tree["devices"] = snip["buses"], snip["devices"]
    return tree


async def test_tcp_range_finds_exactly_the_sunspec_units_and_a_snippet_the_daemon_loads(
    modbus_tcp_server: StartServer,
) -> None:
    stage, meter = SunSpecImage(charger_models(p_w=2500)), SunSpecImage(meter_models(w=900), base=0)
    srv = await modbus_tcp_server([stage.sim_device(1), meter.sim_device(3)])
    port = srv.comm_params.source_address[1]
    # The real server and a hung one on the same port number, on two loopback addresses; 127.0.0.3
    # has nothing listening (connection refused).
    async with silent_listener(port):
        r = await ctl(
            "scan", "tcp", "127.0.0.1-3", "--port", str(port), "--units", "1-4", "--timeout", "0.2", "--json"
        )
    assert r.rc == 0, r.err
    assert "Traceback" not in r.err
    doc = json.loads(r.out)
    found = {(f["where"], f["unit_id"]): f for f in doc["found"]}
    assert set(found) == {(f"127.0.0.1:{port}", 1), (f"127.0.0.1:{port}", 3)}
    inv, met = found[(f"127.0.0.1:{port}", 1)], found[(f"127.0.0.1:{port}", 3)]
    assert (inv["base"], inv["models"][:2], inv["role"]) == (40000, [1, 701], "power_stage")
    assert (inv["manufacturer"], inv["model"], inv["serial"]) == ("V2G-Bench", "DC-V2G-11", "BENCH0001")
    assert (met["base"], met["models"], met["role"], met["model"]) == (0, [1, 203], "site_meter", "Meter-3P")
    assert sorted(doc["silent"]) == [
        f"127.0.0.2:{port}: no unit answered",
        f"127.0.0.3:{port}: cannot connect",
    ]
    # 4 silent units at 0.2 s each on the hung port, scanned alongside the others: well under 4 s.
    assert doc["elapsed_s"] < 4.0
    assert "scan: " in r.err  # progress on stderr (plain lines: stderr is a pipe)

    settings = from_builtins(with_snippet(doc["snippet"]))
    assert settings.devices["inverter"].unit_id == 1
    assert settings.devices["inverter"].sunspec_base == 40000
    assert settings.devices["site_meter"].sunspec_base == 0
    bus = settings.buses[settings.devices["inverter"].bus]
    assert (bus.transport, bus.host, bus.port) == ("tcp", "127.0.0.1", port)
    # ...and the daemon's drivers read the devices it names.
    d = build(settings.buses, settings.devices)
    await d.start(poll=False)
    try:
        meter_reading, stage_reading = await d.read_all()
    finally:
        await d.stop()
    assert stage_reading is not None and stage_reading.p_w == 2500.0
    assert meter_reading is not None and meter_reading.p_site_import_w == 900.0

    human = await ctl(
        "scan", "tcp", "127.0.0.1,127.0.0.3", "--port", str(port), "--units", "1,3", "--timeout", "0.2"
    )
    assert human.rc == 0, human.err
    assert "V2G-Bench DC-V2G-11 SN BENCH0001" in human.out
    assert "[devices.inverter]" in human.out and "[devices.site_meter]" in human.out
    assert f"127.0.0.3:{port}: cannot connect" in human.out


async def test_a_range_with_nothing_answering_ends_with_exit_1(free_tcp_port: int) -> None:
    async with silent_listener(free_tcp_port):
        r = await ctl(
            "scan", "tcp", "127.0.0.2-4", "--port", str(free_tcp_port), "--units", "1-5", "--timeout", "0.1"
        )
    assert r.rc == 1
    assert "0 unit(s) answered" in r.out
    assert "# nothing the daemon can drive was found" in r.out
    assert "Traceback" not in r.err


class BaudGatedLine:
    """An RS-485 line to one device at ``baud``: the master's frames reach the device only while the
    master's port is set to that baud rate (at another the device sees framing errors and keeps quiet).
    Two socat pairs with a relay between them; the master opens ``master``, the device ``device``.
    A pseudo-terminal keeps the baud rate it is set to but not the parity (the kernel clears PARENB),
    so only the baud rate gates."""

    def __init__(self, baud: int) -> None:
        self.baud = baud
        self._master_side = SocatPair(name="master")
        self._device_side = SocatPair(name="device")
        self.master = self._master_side.a
        self.device = self._device_side.b
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._fds: list[int] = []

    def __enter__(self) -> BaudGatedLine:
        self._master_side.start()
        self._device_side.start()
        flags = os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK
        a, b = os.open(self._master_side.b, flags), os.open(self._device_side.a, flags)
        settings = os.open(self.master, flags)  # the master's port: its termios say the baud rate
        self._fds = [a, b, settings]
        want = getattr(termios, f"B{self.baud}")
        for src, dst, gate in ((a, b, settings), (b, a, None)):
            t = threading.Thread(
                target=self._relay, args=(src, dst, gate, want), name="baud-gate", daemon=True
            )
            t.start()
            self._threads.append(t)
        return self

    def _relay(self, src: int, dst: int, gate: int | None, want: int) -> None:
        while not self._stop.is_set():
            if not select.select([src], [], [], 0.05)[0]:
                continue
            try:
                data = os.read(src, 4096)
            except BlockingIOError:
                continue
            except OSError:
                return
            if gate is None or termios.tcgetattr(gate)[5] == want:
                os.write(dst, data)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        for fd in self._fds:
            os.close(fd)
        self._master_side.stop()
        self._device_side.stop()


@pytest.fixture
def gated_line() -> Iterator[BaudGatedLine]:
    with BaudGatedLine(19200) as line:
        yield line


async def test_rtu_scan_finds_the_unit_at_its_baud_rate(gated_line: BaudGatedLine) -> None:
    img = SunSpecImage(meter_models(w=1200))
    srv = ModbusSerialServer(
        [img.sim_device(2)],
        port=gated_line.device,
        framer=FramerType.RTU,
        baudrate=19200,
        ignore_missing_devices=True,
    )
    await srv.serve_forever(background=True)
    try:
        r = await ctl(
            "scan",
            "rtu",
            gated_line.master,
            "--bauds",
            "9600,19200,38400",
            "--parity",
            "N",
            "--units",
            "1-3",
            "--timeout",
            "0.1",
            "--json",
        )
    finally:
        await srv.shutdown()
    assert r.rc == 0, r.err
    doc = json.loads(r.out)
    assert [(f["unit_id"], f["where"], f["also"]) for f in doc["found"]] == [
        (2, f"{gated_line.master} 19200 8N1", [])
    ]
    assert doc["found"][0]["models"] == [1, 203]
    assert sorted(doc["silent"]) == [
        f"{gated_line.master} 38400 8N1: no unit answered",
        f"{gated_line.master} 9600 8N1: no unit answered",
    ]
    snip = tomllib.loads(doc["snippet"])
    assert snip["buses"]["rs485"] == {
        "transport": "rtu",
        "serial_port": gated_line.master,
        "baud": 19200,
        "parity": "N",
    }
    assert snip["devices"]["site_meter"]["unit_id"] == 2
    assert from_builtins(with_snippet(doc["snippet"])).buses["rs485"].baud == 19200


async def test_probe_reads_the_plant_live(tmp_path: Path) -> None:
    async with running_plant() as plant:
        cfg = tmp_path / "v2g-edge.toml"
        cfg.write_text(bench_config_text(plant))
        r = await ctl("probe", "inverter", "--config", str(cfg), "--json")
        assert r.rc == 0, r.err
        doc = json.loads(r.out)
        assert doc["role"] == "power_stage"
        assert doc["values"]["f_hz"] == pytest.approx(60.0, abs=0.5)  # the plant is a 60 Hz grid
        assert doc["values"]["v_ac_v"] == pytest.approx(240.0, rel=0.1)
        assert doc["values"]["operating"] == "RUNNING"
        assert doc["ratings"]["p_max_export_w"] > 0
        w = await ctl(
            "probe", "site_meter", "--config", str(cfg), "--watch", "--count", "3", "--interval", "0.2"
        )
        assert w.rc == 0, w.err
        assert w.out.count("site_meter at ") == 3
        assert "p_site_import_w" in w.out and "f_hz" in w.out
    # The plant has gone: one line naming the device, exit 1, in bounded time.
    gone = await ctl("probe", "inverter", "--config", str(cfg))
    assert gone.rc == 1
    assert gone.err.startswith("v2gctl: inverter: ") and "cannot connect" in gone.err
    assert gone.err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["scan", "tcp", "10.0.0.9-3"], 2, "must run upwards"),
        (["scan", "tcp", "10.0.0.300"], 2, "not an IPv4 address"),
        (["scan", "tcp", "10.0.0.1", "--units", "5-300"], 2, "outside 0..247"),
        (["scan", "tcp", "10.0.0.1", "--units", "one"], 2, "not a unit id"),
        (["scan", "rtu", "/dev/ttyUSB0", "--units", "0-3"], 2, "outside 1..247"),
        (["scan", "rtu", "/dev/ttyUSB0", "--parity", "X"], 2, "not N, E or O"),
        (["scan", "rtu", "/dev/ttyUSB0", "--bauds", "9600,fast"], 2, "comma list of baud rates"),
        (["scan", "rtu", "/nonexistent/tty"], 1, "no serial port /nonexistent/tty"),
        (
            ["probe", "nosuch", "--embedded"],
            1,
            "no device 'nosuch' in (embedded bench configuration) (devices: inverter, site_meter)",
        ),
        (
            ["probe", "inverter", "--config", "/nonexistent.toml"],
            1,
            "no configuration file /nonexistent.toml",
        ),
    ],
)
def test_bad_input_is_one_line_with_its_exit_code(
    argv: list[str], code: int, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert v2gctl(argv) == code
    err = capsys.readouterr().err
    assert says in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_argparse_refuses_a_bad_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        v2gctl(["scan", "tcp", "10.0.0.1", "--timeout", "60"])
    assert e.value.code == 2
    assert "outside 0.05..5" in capsys.readouterr().err
