"""Vehicle records as JSON files, for offline replays (``v2g-hil estimate --state-dir``).

The daemon keeps its state in ``edge.state`` (SQLite, written off the event loop) and imports files
of this layout once from ``<state_dir>/vehicles``. Here: one JSON file per vehicle named by its key
(``edge.estimation.record``), written atomically (temporary file + rename); a corrupt file is set
aside (renamed ``*.corrupt``) and the vehicle starts from the profile, with a warning.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from pathlib import Path

from edge.estimation.record import SALT_BYTES, VehicleRecord, vehicle_key

log = logging.getLogger(__name__)

SALT_FILE = "vehicle-salt"


class VehicleStore:
    """Vehicle records in ``state_dir`` keyed by a salted hash of the vehicle identifier."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._salt = self._load_salt()

    def _load_salt(self) -> bytes:
        path = self.state_dir / SALT_FILE
        try:
            return bytes.fromhex(path.read_text(encoding="ascii").strip())
        except FileNotFoundError:
            pass
        except ValueError as exc:
            raise ValueError(f"{path}: not a hex salt ({exc}); restore it or remove the state dir") from exc
        salt = secrets.token_bytes(SALT_BYTES)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(salt.hex())
        return salt

    def key(self, vehicle_id: str) -> str:
        """The pseudonymous key of ``vehicle_id`` (safe for telemetry and file names)."""
        return vehicle_key(self._salt, vehicle_id)

    def _path(self, key: str) -> Path:
        return self.state_dir / f"vehicle-{key}.json"

    def vehicle(self, key: str) -> VehicleRecord | None:
        """The record stored under ``key``, or None (unknown vehicle or a corrupt file set aside)."""
        path = self._path(key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return VehicleRecord.from_json(data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            aside = path.with_suffix(".corrupt")
            log.warning(
                "battery state %s unreadable (%s); kept as %s, starting from the profile", path, exc, aside
            )
            with contextlib.suppress(OSError):
                path.replace(aside)
            return None

    def save(self, key: str, record: VehicleRecord) -> None:
        """Write atomically."""
        path = self._path(key)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record.to_json(), f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
