"""Change settings: from the aggregator (MQTT, in memory, a whitelist) or locally (the file, audited).

The aggregator may tune the grid-support curves, the ramps and the owner's wishes; everything else
(commissioning, function ownership, trips, ride-through, enter service, site terms, ratings, the MQTT and
daemon sections) belongs to the utility and the installer and changes only locally, through
``apply_local_change``, which edits the file with tomlkit (comments kept), validates the result with the
same model, appends an audit record and only then replaces the file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from edge.fileio import write_atomic
from edge.settings.audit import AUDIT_FILE, AuditRecord, append_audit
from edge.settings.edit import set_value
from edge.settings.errors import SettingsError
from edge.settings.load import from_builtins, load_text
from edge.settings.model import Settings
from edge.settings.paths import lookup

REMOTE_EDITABLE = (
    "grid.volt_var",
    "grid.volt_watt",
    "grid.freq_droop",
    "grid.constant_pf",
    "grid.constant_var",
    "grid.watt_var",
    "grid.ramp",
    "owner",
)

PROTECTED = (
    "commissioning",
    "functions",
    "grid.voltage_trip",
    "grid.frequency_trip",
    "grid.ride_through",
    "grid.enter_service",
    "site",
    "inverter",
)


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + ".") for p in prefixes)


def is_remote_editable(path: str) -> bool:
    """True for settings the aggregator may change."""
    return _under(path, REMOTE_EDITABLE)


def is_protected(path: str) -> bool:
    """True for protection, ride-through, commissioning and interconnection settings."""
    return _under(path, PROTECTED)


def get_value(settings: Settings, path: str) -> Any:
    """The effective value at a dotted path, as builtins (None where the section is not set)."""
    try:
        return lookup(msgspec.to_builtins(settings), path)
    except KeyError:
        return None


def _put(tree: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node: Any = tree
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict) or leaf not in node:
        raise SettingsError(path, value, "no such setting")
    if isinstance(value, dict) and isinstance(node[leaf], dict):
        node[leaf] = {**node[leaf], **value}
    else:
        node[leaf] = value


class RemoteChange(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """An aggregator's settings change as it arrives over MQTT: ``{"path": "...", "value": ...}``."""

    path: str
    value: Any


def decode_remote_change(payload: bytes) -> RemoteChange:
    """Decode an MQTT payload; malformed JSON or a wrong shape is a SettingsError naming what is wrong."""
    try:
        return msgspec.json.decode(payload, type=RemoteChange)
    except msgspec.ValidationError as exc:
        raise SettingsError(
            "payload", payload[:200], f"not a settings change: {exc}", '{"path": str, "value": ...}'
        ) from exc
    except msgspec.DecodeError as exc:
        raise SettingsError("payload", payload[:200], f"malformed JSON: {exc}") from exc


def apply_remote_change(
    settings: Settings,
    path: str,
    value: Any,
    *,
    who: str = "aggregator",
    audit_path: str | Path | None = None,
    now: datetime | None = None,
) -> Settings:
    """Settings with one aggregator change applied (a dict value sets several keys of one table).

    Raises SettingsError for a setting the aggregator may not change, a section not yet commissioned,
    or a value out of type or out of the profile's range. The caller persists nothing: the file stays
    the installer's. With ``audit_path`` the accepted change is recorded.
    """
    if not is_remote_editable(path):
        raise SettingsError(
            path,
            value,
            "set locally by the installer or the utility; refused from the aggregator",
            ", ".join(f"{p}.*" for p in REMOTE_EDITABLE),
        )
    if path.startswith("grid.") and settings.grid is None:
        raise SettingsError(path, value, "grid settings do not exist until the site is commissioned")
    tree = msgspec.to_builtins(settings)
    _put(tree, path, value)
    new = from_builtins(tree)
    if audit_path is not None:
        record = AuditRecord(
            at=now or datetime.now(UTC),
            who=who,
            source="aggregator",
            path=path,
            old=get_value(settings, path),
            new=get_value(new, path),
            protected=False,
        )
        append_audit(audit_path, record)
    return new


def apply_local_change(
    config_path: str | Path,
    path: str,
    value: Any,
    *,
    who: str,
    audit_path: str | Path | None = None,
    now: datetime | None = None,
) -> Settings:
    """Change one setting in the config file (technician CLI): validate, audit, then replace the file.

    ``None`` removes the key (a grid override falls back to the profile's default). A change under
    ``commissioning`` also stamps ``commissioned_by`` and ``commissioned_at``. The audit log defaults
    to ``<daemon.state_dir>/audit.jsonl``. On any error nothing is written.
    """
    if not who.strip():
        raise SettingsError("who", who, "a local change needs the name of who makes it")
    at = now or datetime.now(UTC)
    file = Path(config_path)
    text = file.read_text(encoding="utf-8")
    try:
        old: Settings | None = load_text(text, str(file))
    except SettingsError:
        old = None  # a file that no longer validates can still be repaired, one audited change at a time
    new_text = set_value(text, path, value, str(file))
    if path == "commissioning" or path.startswith("commissioning."):
        new_text = set_value(new_text, "commissioning.commissioned_by", who, str(file))
        new_text = set_value(new_text, "commissioning.commissioned_at", at.replace(microsecond=0), str(file))
    new = load_text(new_text, str(file))
    record = AuditRecord(
        at=at,
        who=who,
        source="local",
        path=path,
        old=get_value(old, path) if old is not None else None,
        new=get_value(new, path),
        protected=is_protected(path),
    )
    append_audit(audit_path or Path(new.daemon.state_dir) / AUDIT_FILE, record)
    write_atomic(file, new_text.encode("utf-8"))
    return new
