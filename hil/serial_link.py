"""Serial lines for RTU without hardware: a socat pseudo-terminal pair, and a byte-timed relay.

A pty pair carries real RTU framing and CRC but ignores the baud rate: bytes arrive at memory
speed. :class:`TimedSerialLine` puts a relay between two pty pairs that holds every byte for its
wire time (start bit, data bits, parity, stop bits) at the configured baud rate, so polling plans
and timeouts meet real timing: a 50-register read at 115200 baud takes about 10 ms, as on RS-485.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

from hil.procs import stop_process


class SocatPair:
    """Two linked pseudo-terminals, ``a`` and ``b``: what is written to one is read from the other."""

    def __init__(self, directory: Path | None = None, name: str = "tty") -> None:
        self._tmp = None if directory else tempfile.TemporaryDirectory(prefix="v2g-serial-")
        base = directory or Path(self._tmp.name)  # type: ignore[union-attr]
        self.a = str(base / f"{name}A")
        self.b = str(base / f"{name}B")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 5.0) -> SocatPair:
        exe = shutil.which("socat")
        if exe is None:
            raise FileNotFoundError("socat is not installed (apt-get install socat)")
        self.proc = subprocess.Popen(
            [exe, f"pty,raw,echo=0,link={self.a}", f"pty,raw,echo=0,link={self.b}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout_s
        while not (os.path.exists(self.a) and os.path.exists(self.b)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                self.stop()
                raise RuntimeError(f"socat did not create {self.a} and {self.b}: {err}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            if self.proc.stderr:
                self.proc.stderr.close()
            self.proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> SocatPair:
        return self.start()

    def __exit__(
        self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
    ) -> None:
        self.stop()


def char_time_s(baud: int, bits_per_char: int = 10) -> float:
    """Wire time of one character: 10 bits for 8N1 (start + 8 data + stop), 11 for 8E1."""
    return bits_per_char / baud


class TimedSerialLine:
    """A serial line with wire timing: open ``client_port`` in the master, ``server_port`` in the device.

    Each direction is a thread that reads what arrives and writes it out no earlier than the wire
    would have carried it: a byte occupies the line for ``bits_per_char / baud`` seconds, and the
    line carries one byte at a time per direction (RS-485 is half duplex, but master and slave never
    talk at once in Modbus RTU, so per-direction timing is what matters).
    """

    def __init__(self, baud: int, bits_per_char: int = 10) -> None:
        self.baud = baud
        self.char_s = char_time_s(baud, bits_per_char)
        self._tmp = tempfile.TemporaryDirectory(prefix="v2g-line-")
        base = Path(self._tmp.name)
        self._client_side = SocatPair(base, "client")
        self._server_side = SocatPair(base, "server")
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._fds: list[int] = []
        self.client_port = self._client_side.a
        self.server_port = self._server_side.b

    def start(self) -> TimedSerialLine:
        self._client_side.start()
        self._server_side.start()
        # The relay holds the inner ends: client_side.b <-> server_side.a
        a = os.open(self._client_side.b, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        b = os.open(self._server_side.a, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self._fds = [a, b]
        for src, dst, name in ((a, b, "to-device"), (b, a, "to-master")):
            t = threading.Thread(
                target=self._relay, args=(src, dst), name=f"serial-relay-{name}", daemon=True
            )
            t.start()
            self._threads.append(t)
        return self

    def _relay(self, src: int, dst: int) -> None:
        line_free_at = 0.0
        while not self._stop.is_set():
            ready, _, _ = select.select([src], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(src, 4096)
            except BlockingIOError:
                continue
            except OSError:
                return
            if not data:
                continue
            # Each byte is due when the wire would have finished carrying it; a frame spreads over its
            # wire time as on a real line. Bytes already due go out together (sleep granularity).
            start = max(line_free_at, time.monotonic())
            due = [start + (k + 1) * self.char_s for k in range(len(data))]
            line_free_at = due[-1]
            sent = 0
            while sent < len(data):
                now = time.monotonic()
                n = sent
                while n < len(data) and due[n] <= now:
                    n += 1
                if n == sent:
                    time.sleep(due[sent] - now)
                    continue
                try:
                    os.write(dst, data[sent:n])
                except OSError:
                    return
                sent = n

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        self._threads.clear()
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        self._client_side.stop()
        self._server_side.stop()
        self._tmp.cleanup()

    def __enter__(self) -> TimedSerialLine:
        return self.start()

    def __exit__(
        self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
    ) -> None:
        self.stop()
