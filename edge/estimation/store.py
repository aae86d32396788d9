"""Per-vehicle persistence of the slow battery state (capacity observations, resistance growth, aging).

One JSON file per vehicle in a state directory, named by a salted hash of the vehicle identifier the
charger reports (EVCCID / MAC / VIN): the raw identifier is never written anywhere, and the salt is
random per installation so the hash cannot be matched against a list of identifiers. The key is also
what telemetry may carry. Writes are atomic (temporary file + rename). A corrupt file is set aside
(renamed ``*.corrupt``) and the vehicle starts from the profile, with a warning; nothing is deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.estimation.capacity import CapacityPoint

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass
class VehicleRecord:
    """What is kept between sessions for one vehicle."""

    profile: str
    sessions: int = 0
    capacity_points: list[CapacityPoint] = field(default_factory=list)
    growth: float = 1.0
    growth_sigma: float = 0.5  # a vehicle never seen may be new or well aged
    aging: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "profile": self.profile,
            "sessions": self.sessions,
            "capacity_points": [[p.dsoc, p.ah, p.var_dsoc, p.var_ah, p.weight] for p in self.capacity_points],
            "growth": self.growth,
            "growth_sigma": self.growth_sigma,
            "aging": self.aging,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VehicleRecord:
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {FORMAT_VERSION}")
        points = [CapacityPoint(*(float(x) for x in row)) for row in data["capacity_points"]]
        return cls(
            profile=str(data["profile"]),
            sessions=int(data["sessions"]),
            capacity_points=points,
            growth=float(data["growth"]),
            growth_sigma=float(data["growth_sigma"]),
            aging={str(k): float(v) for k, v in dict(data["aging"]).items()},
        )


class VehicleStore:
    """Vehicle records in ``state_dir`` keyed by a salted hash of the vehicle identifier."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._salt = self._load_salt()

    def _load_salt(self) -> bytes:
        path = self.state_dir / "vehicle-salt"
        try:
            return bytes.fromhex(path.read_text(encoding="ascii").strip())
        except FileNotFoundError:
            pass
        except ValueError as exc:
            raise ValueError(f"{path}: not a hex salt ({exc}); restore it or remove the state dir") from exc
        salt = secrets.token_bytes(16)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(salt.hex())
        return salt

    def key(self, vehicle_id: str) -> str:
        """The pseudonymous key of ``vehicle_id`` (safe for telemetry and file names)."""
        if not vehicle_id:
            raise ValueError("vehicle id is empty")
        return hashlib.sha256(self._salt + vehicle_id.encode("utf-8")).hexdigest()[:24]

    def _path(self, key: str) -> Path:
        return self.state_dir / f"vehicle-{key}.json"

    def load(self, key: str) -> VehicleRecord | None:
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
