"""Run a Mosquitto broker as a child process on a free loopback port (for the bench and the tests).

``max_queued_messages 0`` so a slow subscriber loses nothing (Mosquitto's default of 1000 drops QoS 1
messages for a subscriber that falls behind).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from hil.procs import free_port, stop_process, wait_for_port


class Mosquitto:
    """A private Mosquitto broker: ``with Mosquitto() as b: ... b.port``."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, workdir: Path | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="v2g-mosquitto-")
        self.workdir = workdir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.proc: subprocess.Popen[bytes] | None = None

    def config_text(self) -> str:
        return "\n".join(
            [
                f"listener {self.port} {self.host}",
                "allow_anonymous true",
                "persistence false",
                "max_queued_messages 0",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                "",
            ]
        )

    def start(self) -> Mosquitto:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise FileNotFoundError("mosquitto is not installed (apt-get install mosquitto)")
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config_text())
        self.log_path = self.workdir / "mosquitto.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=self._log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.host, self.port, 10.0)
        except TimeoutError:
            self.stop()
            raise RuntimeError(
                f"mosquitto did not start: {self.log_path.read_text(errors='replace')}"
            ) from None
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
            self._log.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(
        self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
    ) -> None:
        self.stop()
