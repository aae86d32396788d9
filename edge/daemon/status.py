"""The daemon's status file: what it is doing and why, for ``v2gctl status`` on the device.

Written atomically (temporary file, then rename) about once a second into the runtime directory, so
a reader never sees half a file. A reader judges the daemon's liveness from ``written_at``.
"""

from __future__ import annotations

import time
from pathlib import Path

import msgspec

from edge.daemon.sessions import SessionStatus
from edge.fileio import write_atomic


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


class Status(msgspec.Struct, kw_only=True):
    """A snapshot of the daemon's state; ``binding`` names what limited the command."""

    written_at: float
    pid: int
    state: str
    energize_allowed: bool
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
    meter_age_s: float | None = None
    stage_age_s: float | None = None
    output_mismatch: str | None = None  # the stage does not do what it is told, and the likely cause
    stage_operation: str | None = None  # "started" / "stopped": what the stage was last told and took
    devices: list[DeviceHealth] = []
    cycles: int = 0
    overruns: int = 0
    write_errors: int = 0
    telemetry_backlog: int = 0
    telemetry_dropped: int = 0
    state_problem: str | None = None  # why the state store keeps its data in memory only, or its last error
    state_write_bytes_per_hour: float | None = None  # what reaches the SD card (dirtied pages)


def write(path: Path, status: Status) -> None:
    """Replace ``path`` with ``status`` atomically."""
    write_atomic(path, msgspec.json.format(msgspec.json.encode(status)), durable=False)


def read(path: Path) -> tuple[Status, float]:
    """The status in ``path`` and its age in seconds (wall clock)."""
    status = msgspec.json.decode(path.read_bytes(), type=Status)
    return status, time.time() - status.written_at
