"""Test harness: real parts on free ports (Mosquitto, pymodbus servers, socat serial lines, a
NOTIFY_SOCKET receiver, state stores), and a guard that fails any test leaving tasks, threads or processes behind.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pymodbus import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import SimDevice

from edge.state import StateStore
from hil.broker import Mosquitto
from hil.modbus_compat import patch_unknown_device_ids
from hil.procs import free_port
from hil.serial_link import SocatPair, TimedSerialLine

patch_unknown_device_ids()

# CI machines run the suite as root, and v2g-edged refuses root unless told: the daemons the tests
# start are told (tests/daemon/test_root.py checks the refusal itself with the variable removed).
os.environ.setdefault("V2G_EDGE_ALLOW_ROOT", "1")

pytest_plugins = ["pytester"]

DATA_DIR = Path(__file__).parent / "data"

# Threads that libraries start once per process and keep (not a leak of the test's making).
_LONG_LIVED_THREAD_PREFIXES = ("asyncio_", "ThreadPoolExecutor", "paho-mqtt-client")


# ---------------------------------------------------------------------------------------------
# Leak guard
# ---------------------------------------------------------------------------------------------


def _child_pids() -> set[int]:
    me = os.getpid()
    children = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields after the last ')' are fixed.
        fields = stat.rsplit(b")", 1)[1].split()
        if int(fields[1]) == me:
            children.add(int(entry))
    return children


def _threads() -> set[threading.Thread]:
    return {
        t
        for t in threading.enumerate()
        if t.is_alive() and not t.name.startswith(_LONG_LIVED_THREAD_PREFIXES)
    }


@pytest.fixture(autouse=True)
def _no_leaked_threads_or_processes() -> Iterator[None]:
    threads_before = _threads()
    children_before = _child_pids()
    yield
    deadline = time.monotonic() + 2.0
    while True:
        new_threads = _threads() - threads_before
        new_children = _child_pids() - children_before
        if not (new_threads or new_children) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    for pid in new_children:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    problems = []
    if new_threads:
        problems.append(f"threads left running: {sorted(t.name for t in new_threads)}")
    if new_children:
        problems.append(f"child processes left running (killed now): {sorted(new_children)}")
    if problems:
        pytest.fail("; ".join(problems))


@pytest.fixture
async def _no_leaked_tasks() -> AsyncIterator[None]:
    yield
    me = asyncio.current_task()
    for _ in range(20):  # tasks cancelled at teardown need a few loop turns to finish
        left = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        if not left:
            return
        await asyncio.sleep(0.01)
    for t in left:
        t.cancel()
    pytest.fail(
        f"asyncio tasks left running (cancelled now): {[t.get_name() + ' ' + repr(t.get_coro()) for t in left]}"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fn = getattr(item, "function", None)
        if fn is not None and inspect.iscoroutinefunction(fn):
            # First in the list, so its teardown runs after every other fixture of the test.
            item.fixturenames.insert(0, "_no_leaked_tasks")  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# Real parts
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def free_tcp_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def mqtt_broker() -> Iterator[Mosquitto]:
    """A Mosquitto broker for the whole session (tests keep to their own topics)."""
    with Mosquitto() as broker:
        yield broker


StartServer = Callable[..., Awaitable[ModbusTcpServer]]


@pytest.fixture
async def modbus_tcp_server() -> AsyncIterator[StartServer]:
    """Start pymodbus TCP servers on free loopback ports: ``srv = await start(devices, **kw)``.

    ``srv.comm_params.source_address`` holds ``(host, port)``. Servers stop at teardown.
    """
    servers: list[ModbusTcpServer] = []

    async def start(devices: SimDevice | list[SimDevice], **kwargs: object) -> ModbusTcpServer:
        port = free_port()
        srv = ModbusTcpServer(devices, address=("127.0.0.1", port), framer=FramerType.SOCKET, **kwargs)
        await srv.serve_forever(background=True)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        await srv.shutdown()


@pytest.fixture
def serial_pair() -> Iterator[SocatPair]:
    """Two linked pseudo-terminals (framing and CRC are real; the baud rate is not)."""
    with SocatPair() as pair:
        yield pair


@pytest.fixture
def timed_serial_line() -> Iterator[Callable[[int], TimedSerialLine]]:
    """Serial lines with real wire timing: ``line = make(115200)``; master on ``line.client_port``."""
    lines: list[TimedSerialLine] = []

    def make(baud: int) -> TimedSerialLine:
        line = TimedSerialLine(baud).start()
        lines.append(line)
        return line

    yield make
    for line in lines:
        line.stop()


@dataclass
class NotifyReceiver:
    """A datagram socket bound where ``NOTIFY_SOCKET`` points, as systemd's would be."""

    path: str
    sock: socket.socket
    received: list[str] = field(default_factory=list)

    def wait_for(self, predicate: Callable[[str], bool], timeout_s: float = 5.0) -> str:
        """Return the first message (received so far or arriving) that satisfies ``predicate``."""
        for msg in self.received:
            if predicate(msg):
                return msg
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                msg = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            self.received.append(msg)
            if predicate(msg):
                return msg
        raise AssertionError(f"no matching notify message within {timeout_s} s; got {self.received}")


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifyReceiver]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    try:
        yield NotifyReceiver(path, sock)
    finally:
        sock.close()


@pytest.fixture
async def open_state() -> AsyncIterator[Callable[..., StateStore]]:
    """Open state stores (``edge.state``): ``store = open_state(state_dir)``; each one still open is
    closed (flushed, writer thread ended) at teardown."""
    stores: list[StateStore] = []

    def open_(state_dir: Path, **kwargs: Callable[[], float]) -> StateStore:
        store = StateStore.open(state_dir, **kwargs)
        stores.append(store)
        return store

    yield open_
    for store in stores:
        await store.aclose()
