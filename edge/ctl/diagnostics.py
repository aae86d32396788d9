"""``v2gctl diagnostics``: one archive (tar.gz) for whoever looks into a charger's problem afterwards.

It holds the configuration with its secrets redacted, the versions (package, Python, the kernels
compiled or not, the libraries), the status file, statistics, the recent events and sessions, and
the ring buffer of recent cycles, which only the running daemon has: it is asked for a dump
(SIGUSR1) and v2gctl waits for the file. Each part that cannot be had (no daemon, no permission)
is named in ``manifest.json`` and on the screen, and the archive is written all the same.

Secrets: the configuration names files (``mqtt.password_file``, ``mqtt.key_file``); their paths are
kept, their contents are never read. A value whose key looks like a secret (password, token, ...)
is replaced by ``<redacted>`` wherever it appears, in the file as written and in the settings in force.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import platform
import re
import signal
import socket
import sys
import tarfile
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import MutableMapping
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import msgspec
import tomlkit

from edge import __version__, accel
from edge.ctl.common import (
    NO_ACCESS,
    OK,
    CtlError,
    DaemonStatus,
    config_file,
    is_daemon,
    os_error,
    read_status,
    runtime_dir,
)
from edge.ctl.history import state_dir
from edge.settings import SettingsError, load_file, load_text
from edge.settings.errors import REDACTED, is_secret_key
from edge.settings.load import default_config_text
from edge.state import query

# Kernel selectors (edge.accel.select): each says whether its compiled module is in use.
KERNEL_SELECTORS = ("edge.control.lag", "edge.control.pq", "edge.control.protect", "edge.estimation.ecm")
LIBRARIES = (
    "pymodbus",
    "aiomqtt",
    "paho-mqtt",
    "msgspec",
    "numpy",
    "tomlkit",
    "cryptography",
    "highspy",
    "matplotlib",
)
# Settings that name files: their paths, existence and modes go in (never their contents).
FILE_SETTINGS = (
    ("mqtt", "ca_file"),
    ("mqtt", "cert_file"),
    ("mqtt", "key_file"),
    ("mqtt", "password_file"),
    ("operation", "dispatch_file"),
)
EVENTS_MAX = 1000
SESSIONS_MAX = 100


def redact_tree(node: Any) -> int:
    """Replace, in place, every value under a secret-looking key of ``node`` (tables, arrays, a
    tomlkit document); returns how many were replaced."""
    n = 0
    if isinstance(node, MutableMapping):
        for key in list(node.keys()):
            if is_secret_key(str(key)):
                node[key] = REDACTED
                n += 1
            else:
                n += redact_tree(node[key])
    elif isinstance(node, list):
        for item in node:
            n += redact_tree(item)
    return n


# ``key = value`` or ``"key": value`` in any text (an error message, an event's JSON): the value of a
# secret-looking key is replaced. Older events and status files may hold what today's messages no longer do.
_KEY_VALUE = re.compile(
    r"""(?P<q>["']?)(?P<key>[A-Za-z0-9_.\-]+)(?P=q)(?P<sep>\s*[:=]\s*)"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"|'[^']*'|[^\s,}\]]+)"""
)


def scrub_text(text: str) -> tuple[str, int]:
    """``text`` with the value of every secret-looking ``key = value`` / ``"key": value`` replaced."""
    n = 0

    def one(m: re.Match[str]) -> str:
        nonlocal n
        if not is_secret_key(m.group("key").rsplit(".", 1)[-1]):
            return m.group(0)
        n += 1
        return f'{m.group("q")}{m.group("key")}{m.group("q")}{m.group("sep")}"{REDACTED}"'

    return _KEY_VALUE.sub(one, text), n


def redacted_config(text: str) -> tuple[str | None, int, str | None]:
    """The configuration with its secrets replaced, as plain TOML (comments are left out: one may
    hold an old password): (text, how many, why it is not TOML). A file that is not valid TOML is
    left out whole (None): no line-by-line guess is safe enough to hand a secret over."""
    try:
        tree = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, 0, str(exc)
    n = redact_tree(tree)
    return tomlkit.dumps(tree), n, None


def versions() -> dict[str, Any]:
    kernels = {}
    for name in KERNEL_SELECTORS:
        try:
            impl = importlib.import_module(name).impl
            kernels[name] = {"module": impl.__name__, "compiled": accel.is_compiled(impl)}
        except ImportError as exc:
            kernels[name] = {"error": str(exc)}
    libraries: dict[str, str | None] = {}
    for lib in LIBRARIES:
        try:
            libraries[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            libraries[lib] = None
    return {
        "v2g-edge": __version__,
        "python": sys.version,
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "pure_python_forced": accel.pure_python_forced(),
        "kernels": kernels,
        "libraries": libraries,
    }


def named_files(doc: Any) -> dict[str, dict[str, Any]]:
    """The files the configuration names (secrets among them): path, size, mode, owner; never contents."""
    files = {}
    for table, key in FILE_SETTINGS:
        section = doc.get(table)
        value = section.get(key) if isinstance(section, dict) else None
        if not isinstance(value, str):
            continue
        entry: dict[str, Any] = {"path": value}
        try:
            st = os.stat(value)
        except OSError as exc:
            entry["problem"] = exc.strerror or str(exc)
        else:
            entry.update(size=st.st_size, mode=oct(st.st_mode & 0o7777), uid=st.st_uid, gid=st.st_gid)
        files[f"{table}.{key}"] = entry
    return files


class Archive:
    """The members collected so far (in memory: the largest, a cycle dump, is a few MB) and the notes."""

    def __init__(self, top: str) -> None:
        self.top = top
        self.members: dict[str, bytes] = {}
        self.notes: list[str] = []

    def add(self, name: str, data: bytes | str, *, binary: bool = False) -> None:
        """Add a member; a text one is scrubbed of secret-looking values (events, status, problems).
        ``binary``: as it is (the cycle dump: numbers and state names, no configuration text)."""
        if binary:
            self.members[name] = data.encode() if isinstance(data, str) else data
            return
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        self.members[name] = scrub_text(text)[0].encode()

    def add_json(self, name: str, value: Any) -> None:
        self.add(name, msgspec.json.format(msgspec.json.encode(value)) + b"\n")

    def note(self, text: str) -> None:
        """Something missing or worth knowing: in the manifest and on the screen."""
        self.notes.append(text)
        print(f"  note: {text}")

    def write(self, path: Path) -> int:
        """Write the tar.gz atomically (a temporary file beside it, then renamed); returns its size."""
        folder = path.parent
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        now = time.time()
        try:
            with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w:gz") as tar:
                for name, data in self.members.items():
                    info = tarfile.TarInfo(f"{self.top}/{name}")
                    info.size, info.mtime, info.mode = len(data), int(now), 0o644
                    tar.addfile(info, io.BytesIO(data))
            os.replace(tmp, path)  # 0600 (mkstemp): it holds status, events and sessions
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path.stat().st_size


def _config(arc: Archive, args: argparse.Namespace, ds: DaemonStatus | None) -> None:
    """The configuration: the one named, else the running daemon's, else the unit's."""
    embedded = False
    if args.file:
        path: Path | None = Path(args.file)
    elif ds is not None and ds.running:
        path = Path(ds.status.config_path) if ds.status.config_path else None
        embedded = path is None
    else:
        path = config_file(None)
    if embedded or path is None:
        text, source = default_config_text(), "the embedded bench configuration"
    else:
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            arc.note(str(os_error(exc, path, "read")))
            return
    redacted, n, not_toml = redacted_config(text)
    if redacted is None:
        arc.note(f"the configuration is not valid TOML ({not_toml}): left out (it may hold a secret)")
        return
    arc.add("config/v2g-edge.toml", redacted)
    print(f"config      {source} ({n} secret value(s) redacted)")
    arc.add_json(
        "config/files.json", named_files(tomlkit.parse(text).unwrap())
    )  # where secrets are, not what
    try:
        settings = load_text(text, source) if path is None or embedded else load_file(path)
    except SettingsError as exc:
        arc.add("config/problems.txt", f"{exc}\n")
        arc.note("the configuration does not load: see config/problems.txt")
        return
    effective = msgspec.to_builtins(settings)
    redact_tree(effective)
    arc.add_json("config/effective.json", effective)


def _status(arc: Archive, run_dir: Path) -> DaemonStatus | None:
    try:
        ds = read_status(run_dir)
    except CtlError as exc:
        arc.note(str(exc))
        return None
    try:
        arc.add("status.json", Path(ds.path).read_bytes())
    except OSError as exc:
        arc.note(str(os_error(exc, ds.path, "read")))
    st = ds.status
    state = "running" if ds.running else "NOT running (its last status)"
    print(f"status      {ds.path}: daemon pid {st.pid} {state}, {ds.age_s:.1f} s old")
    if not ds.running:
        arc.note(f"the daemon (pid {st.pid}) that wrote {ds.path} is not running")
    return ds


def _statistics(ds: DaemonStatus | None, events: list[query.EventRow]) -> dict[str, Any]:
    out: dict[str, Any] = {"event_counts": dict(Counter(e.kind for e in events))}
    if ds is not None:
        st = ds.status
        out.update(
            status_age_s=round(ds.age_s, 3),
            daemon_running=ds.running,
            uptime_s=None if st.started_at is None else round(st.written_at - st.started_at, 1),
            cycles=st.cycles,
            overruns=st.overruns,
            write_errors=st.write_errors,
            telemetry_backlog=st.telemetry_backlog,
            telemetry_dropped=st.telemetry_dropped,
            state_write_bytes_per_hour=st.state_write_bytes_per_hour,
            devices=[msgspec.to_builtins(d) for d in st.devices],
            aggregator=msgspec.to_builtins(st.aggregator),
        )
    return out


def _history(arc: Archive, args: argparse.Namespace) -> list[query.EventRow]:
    folder, _ = state_dir(args)
    db = query.database(folder)
    events: list[query.EventRow] = []
    try:
        events = query.events(db, limit=EVENTS_MAX)
        sessions = query.sessions(db, limit=SESSIONS_MAX)
    except query.QueryError as exc:
        arc.note(f"no events or sessions: {exc}")
        return events
    arc.add_json("events.json", [e.__dict__ for e in events])
    arc.add_json("sessions.json", [s.__dict__ for s in sessions])
    print(f"history     {db}: {len(events)} events, {len(sessions)} sessions")
    return events


def _dumps(run_dir: Path) -> dict[Path, int]:
    try:
        return {p: p.stat().st_mtime_ns for p in run_dir.glob("cycles-*.msgpack")}
    except OSError:
        return {}


def _cycles(arc: Archive, ds: DaemonStatus | None, run_dir: Path, timeout_s: float) -> None:
    """Ask the daemon for its ring of recent cycles and wait for the file it writes."""
    # The pid must still be a v2g-edged: SIGUSR1 would end most other processes (a reused pid).
    if ds is None or not ds.running or not is_daemon(ds.status.pid):
        arc.note("no recent cycles: they live in the running daemon's memory, and no daemon runs")
        return
    pid = ds.status.pid
    before = _dumps(run_dir)
    try:
        os.kill(pid, signal.SIGUSR1)
    except PermissionError:
        arc.note(f"no recent cycles: not allowed to signal the daemon (pid {pid}); use sudo")
        return
    except ProcessLookupError:
        arc.note(f"no recent cycles: the daemon (pid {pid}) has gone")
        return
    deadline = time.monotonic() + timeout_s
    while True:
        new = [p for p, mtime in _dumps(run_dir).items() if before.get(p) != mtime]
        if new:
            break
        if time.monotonic() > deadline:
            arc.note(f"no recent cycles: the daemon (pid {pid}) wrote no dump within {timeout_s:g} s")
            return
        time.sleep(0.1)
    path = new[0]
    try:
        data = path.read_bytes()
    except OSError as exc:
        arc.note(f"no recent cycles: {os_error(exc, path, 'read')}")
        return
    arc.add(f"cycles/{path.name}", data, binary=True)
    print(f"cycles      {path} ({len(data) / 1e3:.0f} kB), dumped by the daemon (pid {pid})")
    try:
        path.unlink()  # made for this archive: the runtime directory is in memory (tmpfs)
    except OSError:
        arc.note(f"{path} is left in place (it may not be removed by this user)")


def cmd_diagnostics(args: argparse.Namespace) -> int:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    top = f"v2g-edge-diagnostics-{socket.gethostname()}-{stamp}"
    out = Path(args.out) if args.out else Path(f"{top}.tar.gz")
    if out.is_dir():
        out = out / f"{top}.tar.gz"
    if not os.access(out.parent, os.W_OK):
        msg = "permission denied" if out.parent.exists() else "no such folder"
        raise CtlError(f"cannot write {out}: {msg} (--out FILE)", NO_ACCESS if out.parent.exists() else 1)
    arc = Archive(top)
    run_dir = runtime_dir(args.runtime_dir)
    ds = _status(arc, run_dir)
    _config(arc, args, ds)
    arc.add_json("versions.json", versions())
    events = _history(arc, args)
    arc.add_json("statistics.json", _statistics(ds, events))
    if args.no_cycles:
        arc.note("no recent cycles: --no-cycles")
    else:
        _cycles(arc, ds, run_dir, args.wait)
    arc.add_json(
        "manifest.json",
        {
            "made_at": datetime.now().astimezone().isoformat(timespec="seconds"),
            "made_by": f"v2gctl {__version__}",
            "host": socket.gethostname(),
            "daemon_running": ds is not None and ds.running,
            "runtime_dir": str(run_dir),
            "members": sorted(arc.members),
            "notes": arc.notes,
        },
    )
    try:
        size = arc.write(out)
    except OSError as exc:
        raise os_error(exc, out, "write") from None
    print(f"wrote {out} ({size / 1e3:.0f} kB, {len(arc.members)} files)")
    if ds is None or not ds.running:
        print("NO daemon is running: the archive holds the files only")
    return OK


def _wait(text: str) -> float:
    value = float(text)
    if not 0.5 <= value <= 120.0:
        raise argparse.ArgumentTypeError(f"{value:g}: expected 0.5 … 120 seconds")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "diagnostics",
        help="one archive for support: configuration (secrets redacted), versions, events, recent cycles",
        description="Write a tar.gz with the configuration (secrets redacted: files holding secrets are"
        " named, never read), versions, the status file, statistics, recent events and sessions and the"
        " daemon's ring of recent cycles (asked for with SIGUSR1). Works without the daemon, and says"
        " what is missing. Exit 0 when the archive is written.",
    )
    p.add_argument(
        "--out", metavar="FILE", help="the archive (default: ./v2g-edge-diagnostics-HOST-TIME.tar.gz)"
    )
    p.add_argument(
        "--file", metavar="FILE", help="configuration (default: the running daemon's, else the unit's)"
    )
    p.add_argument(
        "--runtime-dir", metavar="DIR", help="the daemon's runtime directory (default: /run/v2g-edge)"
    )
    p.add_argument("--state-dir", metavar="DIR", help="the daemon's state directory (default: see docs)")
    p.add_argument(
        "--wait",
        type=_wait,
        default=10.0,
        metavar="S",
        help="how long to wait for the daemon's dump (default 10)",
    )
    p.add_argument("--no-cycles", action="store_true", help="do not ask the daemon for its recent cycles")
    p.set_defaults(fn=cmd_diagnostics, json=False)
