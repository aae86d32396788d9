"""How a vehicle record is stored: as two JSON texts, the capacity observations apart from the rest.

The record is checkpointed every minute while a vehicle is plugged in; its aging counters change at
every checkpoint, its capacity observations (up to 200 of them, most of the record) only when a rest
anchor completes. Kept in their own table, they are rewritten only then (see docs/state.md for the
bytes this saves).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from edge.estimation.record import VehicleRecord


@dataclass(frozen=True)
class StoredVehicle:
    record_json: str  # VehicleRecord.to_json() without "capacity_points"
    points_json: str  # its "capacity_points"


def encode_vehicle(record: VehicleRecord) -> StoredVehicle:
    data = record.to_json()
    points = data.pop("capacity_points")
    return StoredVehicle(json.dumps(data), json.dumps(points))


def decode_vehicle(stored: StoredVehicle) -> VehicleRecord:
    """Raises ValueError, KeyError or TypeError for texts that are not a record of this version."""
    data = json.loads(stored.record_json)
    if not isinstance(data, dict):
        raise TypeError(f"a vehicle record is a JSON object, not {type(data).__name__}")
    data["capacity_points"] = json.loads(stored.points_json)
    return VehicleRecord.from_json(data)
