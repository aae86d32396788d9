"""The local audit log of settings changes: who, when, which setting, old and new value.

JSON lines, appended and fsynced before the config file is replaced, so a change is never in force
without its record. Protection, ride-through and commissioning changes are marked ``protected``.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import msgspec

AUDIT_FILE = "audit.jsonl"


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One settings change."""

    at: datetime
    who: str
    source: Literal["local", "aggregator"]
    path: str
    old: Any
    new: Any
    protected: bool


def append_audit(log_path: str | Path, record: AuditRecord) -> None:
    """Append one record and fsync it (the parent folder is created if needed)."""
    p = Path(log_path)
    p.parent.mkdir(parents=True, exist_ok=True)
    line = msgspec.json.encode(record) + b"\n"
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_audit(log_path: str | Path) -> list[AuditRecord]:
    """All records, oldest first; a missing log is empty."""
    p = Path(log_path)
    if not p.exists():
        return []
    decoder = msgspec.json.Decoder(AuditRecord)
    return [decoder.decode(line) for line in p.read_bytes().splitlines() if line.strip()]
