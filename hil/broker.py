"""Run a Mosquitto broker as a child process on a free loopback port (for the bench and the tests).

``max_queued_messages 0`` so a slow subscriber loses nothing (Mosquitto's default of 1000 drops QoS 1
messages for a subscriber that falls behind).

By default a plaintext listener open to anyone (the bench). For the link's security tests it can be a
TLS listener (``BrokerTls``: CA, broker certificate and key; client certificates required, their CN
taken as the user name), with a password file made by ``mosquitto_passwd -U`` and an ACL file, as
deploy/mosquitto/mosquitto.conf.example sets up a production broker.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from hil.procs import free_port, stop_process, wait_for_port


@dataclass(frozen=True)
class BrokerTls:
    """A TLS listener: the CA clients are verified against, the broker's certificate and key.

    ``require_certificate``: a client without a certificate signed by ``ca`` is refused;
    ``use_identity_as_username``: the client certificate's CN is the user name the ACL sees.
    """

    ca: Path
    cert: Path
    key: Path
    require_certificate: bool = True
    use_identity_as_username: bool = True


class Mosquitto:
    """A private Mosquitto broker: ``with Mosquitto() as b: ... b.port``.

    ``tls``, ``passwords`` (user name to password) and ``acl`` (an ACL file) make it a secured broker;
    with any of them anonymous clients are refused.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        workdir: Path | None = None,
        *,
        tls: BrokerTls | None = None,
        passwords: dict[str, str] | None = None,
        acl: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="v2g-mosquitto-")
        self.workdir = workdir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.tls = tls
        self.passwords = passwords
        self.acl = acl
        self.proc: subprocess.Popen[bytes] | None = None

    def config_text(self) -> str:
        secured = self.tls is not None or self.passwords is not None or self.acl is not None
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'false' if secured else 'true'}",
            "persistence false",
            "max_queued_messages 0",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        if secured:
            # Started as root, Mosquitto drops to the user "mosquitto" before it reads the certificates,
            # password and ACL files, which are private to the user running the tests.
            lines.append(f"user {pwd.getpwuid(os.geteuid()).pw_name}")
            lines.append("log_type notice")  # the broker's side of a refused client
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca}",
                f"certfile {self.tls.cert}",
                f"keyfile {self.tls.key}",
                "tls_version tlsv1.2",
                f"require_certificate {str(self.tls.require_certificate).lower()}",
                f"use_identity_as_username {str(self.tls.use_identity_as_username).lower()}",
            ]
        if self.passwords is not None:
            lines.append(f"password_file {self.workdir / 'passwords'}")
        if self.acl is not None:
            lines.append(f"acl_file {self.acl}")
        return "\n".join([*lines, ""])

    def _write_passwords(self) -> None:
        """The password file, hashed in place by ``mosquitto_passwd -U`` (Mosquitto's own format)."""
        assert self.passwords is not None
        path = self.workdir / "passwords"
        path.write_text("".join(f"{user}:{pw}\n" for user, pw in self.passwords.items()))
        path.chmod(0o600)
        tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        subprocess.run([tool, "-U", str(path)], check=True, capture_output=True, timeout=30)

    def start(self) -> Mosquitto:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise FileNotFoundError("mosquitto is not installed (apt-get install mosquitto)")
        if self.passwords is not None:
            self._write_passwords()
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config_text())
        self.log_path = self.workdir / "mosquitto.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=self._log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.host, self.port, 10.0)
        except TimeoutError:
            log = self.log_path.read_text(errors="replace")  # before stop() removes the directory
            self.stop()
            raise RuntimeError(f"mosquitto did not start: {log}") from None
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
