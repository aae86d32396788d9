"""What every ``v2gctl`` command shares: exit codes, the default paths, reading the daemon's status
file, asking the daemon to reload, and printing for people or (``--json``) for scripts.

Paths follow the systemd unit: the status file in ``/run/v2g-edge`` (RuntimeDirectory), the
configuration in ``/etc/v2g-edge``, the state in ``/var/lib/v2g-edge``. A daemon run by hand (``./dev.sh
run``) writes its status into a per-user folder instead; ``v2gctl`` looks there only when there is no
``/run/v2g-edge``, and always says which file it read.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from pathlib import Path
from typing import Any

import msgspec

from edge.daemon import status as status_file
from edge.daemon.main import runtime_dir as daemon_runtime_dir

# Exit codes (docs/ctl.md).
OK = 0
PROBLEM = 1  # invalid input or configuration; for status: a device, the aggregator or the daemon ails
USAGE = 2  # argparse's
NO_DAEMON = 3  # no daemon runs (no status file, or its process is gone)
NO_ACCESS = 4  # a file that may not be read or written: permissions

SYSTEM_RUNTIME_DIR = Path("/run/v2g-edge")
SYSTEM_CONFIG = Path("/etc/v2g-edge/v2g-edge.toml")
SYSTEM_STATE_DIR = Path("/var/lib/v2g-edge")
OPERATORS_GROUP = "v2g-edge"
STALE_STATUS_S = 5.0
STATUS_FILE = "status.json"


class CtlError(Exception):
    """A failure to report in one line (no traceback), with the exit code it means."""

    def __init__(self, message: str, code: int = PROBLEM) -> None:
        super().__init__(message)
        self.code = code


def give_to_service(path: Path) -> None:
    """A file root writes for the daemon (audit log, dispatch) must stay readable and writable by it,
    which runs as the service user: give it the owner of the folder it is in (the state directory)."""
    if os.geteuid() != 0:
        return
    folder = path.parent.stat()
    st = path.stat()
    if (st.st_uid, st.st_gid) != (folder.st_uid, folder.st_gid):
        os.chown(path, folder.st_uid, folder.st_gid)


def os_error(exc: OSError, path: Path | str, doing: str) -> CtlError:
    """An OSError in words, with what to do about a permission problem."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        return CtlError(
            f"cannot {doing} {path}: permission denied (operators need the group {OPERATORS_GROUP}:"
            f" sudo usermod -aG {OPERATORS_GROUP} $USER, then log in again; changes need sudo)",
            NO_ACCESS,
        )
    return CtlError(f"cannot {doing} {path}: {exc.strerror or exc}")


def runtime_dir(explicit: str | None) -> Path:
    """The daemon's runtime directory: the option, V2G_EDGE_RUNTIME_DIR, the unit's, or the per-user one."""
    if explicit:
        return Path(explicit)
    if env := os.environ.get("V2G_EDGE_RUNTIME_DIR"):
        return Path(env)
    if SYSTEM_RUNTIME_DIR.is_dir():
        return SYSTEM_RUNTIME_DIR
    return daemon_runtime_dir(None)


def config_file(explicit: str | None) -> Path:
    """The configuration file to work on: the option, V2G_EDGE_CONFIG, or the unit's."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("V2G_EDGE_CONFIG") or SYSTEM_CONFIG)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by another user (the service's)
    return True


class DaemonStatus(msgspec.Struct, kw_only=True):
    """The status file as read: where, how old, and whether its daemon still runs."""

    path: str
    age_s: float
    running: bool
    status: status_file.Status


def read_status(run_dir: Path) -> DaemonStatus:
    """The daemon's status; CtlError (NO_DAEMON, NO_ACCESS) when there is none to read."""
    path = run_dir / STATUS_FILE
    try:
        st, age = status_file.read(path)
    except FileNotFoundError:
        raise CtlError(
            f"no daemon status at {path}: v2g-edged is not running (systemctl status v2g-edged), or it"
            " writes elsewhere (--runtime-dir)",
            NO_DAEMON,
        ) from None
    except OSError as exc:
        raise os_error(exc, path, "read") from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CtlError(f"{path} is not a status file this v2gctl understands: {exc}") from None
    return DaemonStatus(path=str(path), age_s=age, running=pid_alive(st.pid), status=st)


def is_daemon(pid: int) -> bool:
    """Whether ``pid`` is a running v2g-edged (a pid a status file names may have been reused)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    # The program itself, not an argument naming it (``journalctl -u v2g-edged``): the entry script
    # (run directly, or by its interpreter) or ``python -m edge.daemon.main``.
    head = argv[:3]
    return any(Path(a.decode(errors="replace")).name == "v2g-edged" for a in head[:2]) or (
        len(head) >= 3 and head[1] == b"-m" and head[2].startswith(b"edge.daemon")
    )


def running_daemon_for(config: Path, run_dir: Path) -> int | None:
    """The pid of the running daemon that serves ``config``, or None."""
    try:
        ds = read_status(run_dir)
    except CtlError:
        return None
    st = ds.status
    if not ds.running or st.config_path is None or not is_daemon(st.pid):
        return None
    return st.pid if Path(st.config_path).resolve() == config.resolve() else None


def ask_reload(pid: int) -> str:
    """SIGHUP the daemon (what ``systemctl reload`` does); says what happened."""
    try:
        os.kill(pid, signal.SIGHUP)
    except PermissionError:
        return f"the daemon (pid {pid}) was not told: permission denied; run sudo systemctl reload v2g-edged"
    except ProcessLookupError:
        return f"the daemon (pid {pid}) has gone: it reads the file when it starts"
    return f"asked the daemon (pid {pid}) to reload"


def print_json(value: Any) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(value)).decode() + "\n")


def fmt(value: float | None, unit: str, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f} {unit}"
