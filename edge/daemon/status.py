"""The daemon's status file: what it is doing and why, for ``v2gctl status`` on the device.

Written atomically (temporary file, then rename) about once a second into the runtime directory, so
a reader never sees half a file. A reader judges the daemon's liveness from ``written_at`` and ``pid``.

The file is mode 0640: the service's umask (0077) would make it the service user's alone, and
operators read it through the group (``v2g-edge``) that the runtime directory gives it (docs/ctl.md).
It carries everything ``v2gctl status`` shows, so that an operator needs no access to the state
directory: which daemon (pid, configuration, start), the device and aggregator links with their
last error, the fail-safe and commissioning states and the last events.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import msgspec

from edge.daemon.sessions import SessionStatus
from edge.daemon.snapshot import Dither
from edge.fileio import write_atomic
from edge.state import query


class DeviceHealth(msgspec.Struct, kw_only=True):
    """One device as the daemon sees it."""

    name: str
    role: str
    ok: bool
    last_success_age_s: float | None = None
    error: str | None = None
    rtt_p50_ms: float | None = None
    rtt_p99_ms: float | None = None
    errors: int = 0
    timeouts: int = 0
    last_error: str | None = None  # the text of its last failure (kept after it recovers)


class AggregatorHealth(msgspec.Struct, kw_only=True):
    """The MQTT link to the aggregator (present only with ``[mqtt] enabled``)."""

    connected: bool
    problem: str | None = None  # why it is not connected (or the last failure), None while all is well
    backlog: int = 0  # records kept for the aggregator, not yet acknowledged
    dropped_telemetry: int = 0
    dropped_events: int = 0
    spool_problem: str | None = None  # why the spool is in memory only


class RecentEvent(msgspec.Struct, kw_only=True):
    """One event from the daemon's state store (the same as the aggregator gets)."""

    t_unix_s: float
    kind: str
    detail: dict[str, Any] = {}


class Status(msgspec.Struct, kw_only=True):
    """A snapshot of the daemon's state; ``binding`` names what limited the command."""

    written_at: float
    pid: int
    state: str
    energize_allowed: bool
    version: str | None = None
    config_path: str | None = None  # None: the embedded (bench) configuration
    started_at: float | None = None  # the daemon process's start, wall clock
    commissioning_missing: list[str] = []  # what keeps it from energizing (the commissioning lock)
    fail_safe: list[str] = []  # why it holds zero export for want of trustworthy data; empty: not in it
    mode: str | None = None  # the operating mode in force
    dispatch_source: str | None = None  # what the mode follows (a dispatch's id, a fallback and why)
    departure: str | None = None  # the owner's departure plan: its state and why
    session: SessionStatus | None = None  # the EV plugged in now
    hold_reasons: list[str] = []
    p_cmd_w: float = 0.0
    q_cmd_var: float = 0.0
    p_request_w: float = 0.0
    binding: list[str] = []
    reasons: list[str] = []
    p_meas_w: float | None = None
    q_meas_var: float | None = None
    p_site_import_w: float | None = None
    v_pu: float | None = None
    f_hz: float | None = None
    soc: float | None = None
    soh: float | None = None  # capacity now / nameplate, as the estimator sees it
    sop_charge_w: float | None = None  # what the pack can take / give for the SoP horizon, AC
    sop_discharge_w: float | None = None
    sop_basis: str | None = None  # what the SoP limits rest on (the growth used and why), in words
    meter_age_s: float | None = None
    stage_age_s: float | None = None
    island_dither: Dither | None = None  # None: the daemon runs no reactive dither
    output_mismatch: str | None = None  # the stage does not do what it is told, and the likely cause
    stage_operation: str | None = None  # "started" / "stopped": what the stage was last told and took
    devices: list[DeviceHealth] = []
    cycles: int = 0
    overruns: int = 0
    write_errors: int = 0
    telemetry_backlog: int = 0
    telemetry_dropped: int = 0
    aggregator: AggregatorHealth | None = None
    events: list[RecentEvent] = []  # the last few, newest last
    state_problem: str | None = None  # why the state store keeps its data in memory only, or its last error
    state_write_bytes_per_hour: float | None = None  # what reaches the SD card (dirtied pages)


FILE_MODE = 0o640


def write(path: Path, status: Status) -> None:
    """Replace ``path`` with ``status`` atomically, readable by the runtime directory's group."""
    write_atomic(path, msgspec.json.format(msgspec.json.encode(status)), durable=False, new_mode=FILE_MODE)


RECENT_EVENTS = 8


def write_with_events(path: Path, status: Status, db: Path | None) -> None:
    """``write`` with the last events from the state database ``db`` (on the writer's thread: it
    reads the file); an unreadable database leaves the list empty rather than the status unwritten."""
    if db is not None:
        try:
            rows = query.events(db, limit=RECENT_EVENTS)
        except query.QueryError:
            rows = []
        status.events = [RecentEvent(t_unix_s=r.t_unix_s, kind=r.kind, detail=r.detail) for r in rows]
    write(path, status)


def process_started_at(pid: int) -> float | None:
    """When process ``pid`` started (wall clock), from /proc; None where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, counted after the command name
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def read(path: Path) -> tuple[Status, float]:
    """The status in ``path`` and its age in seconds (wall clock)."""
    status = msgspec.json.decode(path.read_bytes(), type=Status)
    return status, time.time() - status.written_at
