"""What is kept of one vehicle between sessions, and how a vehicle is named where it is kept.

A vehicle is named by a salted hash of the identifier the charger reports (EVCCID / MAC / VIN): the
raw identifier is never stored, and the salt is random per installation so the hash cannot be
matched against a list of identifiers. The key is also what telemetry may carry. ``VehicleRecords``
is what the estimator needs of a store (``edge.state.StateStore`` in the daemon).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from edge.estimation.capacity import CapacityPoint
from edge.estimation.resistance import UNKNOWN_GROWTH_SIGMA

FORMAT_VERSION = 1
SALT_BYTES = 16


# Records written before 2026-12-05 held any growth above 5 at exactly this value (the tracker's upper
# bound then), with the sigma of the steps as if it had been identified.
FORMER_UPPER_BOUND = 5.0


@dataclass
class VehicleRecord:
    """What is kept between sessions for one vehicle."""

    profile: str
    sessions: int = 0
    capacity_points: list[CapacityPoint] = field(default_factory=list)
    growth: float = 1.0
    growth_sigma: float = UNKNOWN_GROWTH_SIGMA
    aging: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "profile": self.profile,
            "sessions": self.sessions,
            "capacity_points": [[p.dsoc, p.ah, p.var_dsoc, p.var_ah, p.weight] for p in self.capacity_points],
            # A key of its own: a release before it reads the record as it always did (a downgrade
            # keeps what was learned; the depths are then simply not known).
            "capacity_points_soc_low": [p.soc_low for p in self.capacity_points],
            "growth": self.growth,
            "growth_sigma": self.growth_sigma,
            "aging": self.aging,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VehicleRecord:
        """Raises ValueError, KeyError or TypeError for anything that is not a record of this version."""
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {FORMAT_VERSION}")
        rows = data["capacity_points"]
        # Records from before the lower anchors' SoC was kept: unknown, i.e. shallow (1.0).
        soc_low = data.get("capacity_points_soc_low") or [1.0] * len(rows)
        if len(soc_low) != len(rows):
            raise ValueError(f"{len(soc_low)} capacity_points_soc_low for {len(rows)} capacity_points")
        points = []
        for row, low in zip(rows, soc_low, strict=True):
            dsoc, ah, var_dsoc, var_ah, weight = (float(x) for x in row)
            points.append(CapacityPoint(dsoc, ah, var_dsoc, var_ah, weight, float(low)))
        return cls(
            profile=str(data["profile"]),
            sessions=int(data["sessions"]),
            capacity_points=points,
            growth=float(data["growth"]),
            growth_sigma=float(data["growth_sigma"]),
            aging={str(k): float(v) for k, v in dict(data["aging"]).items()},
        )


def vehicle_key(salt: bytes, vehicle_id: str) -> str:
    """The pseudonymous key of ``vehicle_id`` under the installation's ``salt``."""
    if not vehicle_id:
        raise ValueError("vehicle id is empty")
    return hashlib.sha256(salt + vehicle_id.encode("utf-8")).hexdigest()[:24]


class VehicleRecords(Protocol):
    """Where the estimator finds what is known of a vehicle."""

    def key(self, vehicle_id: str) -> str:
        """The pseudonymous key of ``vehicle_id`` (safe for telemetry and file names)."""
        ...

    def vehicle(self, key: str) -> VehicleRecord | None:
        """The record kept under ``key`` (a copy the caller may change), or None."""
        ...
