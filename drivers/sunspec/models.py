"""SunSpec model definitions: load the official JSON shipped in the package and lay out registers.

The JSON files in ``drivers/sunspec/models/`` are byte-for-byte copies of the SunSpec Alliance's
``sunspec/models`` repository (Apache-2.0, see ``models/README.md``). Register offsets are implicit
in those files: points follow each other in order, ``ID`` at offset 0 and ``L`` at 1, and groups
repeat ``count`` times, where ``count`` is a number or the name of a point holding it.

This module only knows the definitions and the register codec; reading devices is ``drivers``' job
and serving them is the bench's. Values here are *raw* (unscaled integers, strings); applying the
scale factor is :func:`scale`.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

# Registers per point type; strings take their size from the definition.
TYPE_SIZE: dict[str, int] = {
    "int16": 1,
    "uint16": 1,
    "acc16": 1,
    "enum16": 1,
    "bitfield16": 1,
    "sunssf": 1,
    "pad": 1,
    "count": 1,
    "int32": 2,
    "uint32": 2,
    "acc32": 2,
    "enum32": 2,
    "bitfield32": 2,
    "float32": 2,
    "ipaddr": 2,
    "int64": 4,
    "uint64": 4,
    "acc64": 4,
    "float64": 4,
    "ipv6addr": 8,
    "eui48": 4,
}

# The "not implemented" value of each type (SunSpec Information Model Specification). A point that
# reads as this value is absent and decodes to None, never to a number.
NOT_IMPLEMENTED: dict[str, int] = {
    "int16": 0x8000,
    "uint16": 0xFFFF,
    "acc16": 0,
    "enum16": 0xFFFF,
    "bitfield16": 0xFFFF,
    "sunssf": 0x8000,
    "pad": 0x8000,
    "count": 0xFFFF,
    "int32": 0x80000000,
    "uint32": 0xFFFFFFFF,
    "acc32": 0,
    "enum32": 0xFFFFFFFF,
    "bitfield32": 0xFFFFFFFF,
    "ipaddr": 0,
    "int64": 0x8000000000000000,
    "uint64": 0xFFFFFFFFFFFFFFFF,
    "acc64": 0,
}
SIGNED = {"int16", "int32", "int64", "sunssf"}
FLOAT_NAN_BITS = 0x7FC00000

SUNS_MARKER = (0x5375, 0x6E53)  # "SunS"
END_MODEL_ID = 0xFFFF
BASE_ADDRESSES = (40000, 0, 50000)


class SunSpecDefinitionError(ValueError):
    """A model definition, layout request or value that does not fit the SunSpec rules."""


@dataclass(frozen=True)
class PointDef:
    """One point of a model definition."""

    name: str
    type: str
    size: int
    sf: str | int | None = None
    units: str | None = None
    access: str = "R"
    mandatory: bool = False
    static: bool = False
    symbols: Mapping[str, int] = field(default_factory=dict)
    value: int | None = None  # fixed value (ID)

    @property
    def writable(self) -> bool:
        return self.access == "RW"


@dataclass(frozen=True)
class GroupDef:
    """A group of points, possibly repeated ``count`` times (an int or the name of a count point)."""

    name: str
    points: tuple[PointDef, ...]
    groups: tuple[GroupDef, ...] = ()
    count: int | str | None = None


@dataclass(frozen=True)
class ModelDef:
    """A model definition: its id, name and top-level group."""

    id: int
    name: str
    group: GroupDef

    @property
    def fixed_length(self) -> int:
        """Registers of the top-level points after ``ID`` and ``L`` (the part before any repeating group)."""
        return sum(p.size for p in self.group.points) - 2


@dataclass(frozen=True)
class Slot:
    """A point placed in a concrete layout: ``path`` like ``Crv[1].Pt[0].V``, offset from the model start."""

    path: str
    point: PointDef
    offset: int
    sf_path: str | None = None  # path of the scale-factor point, when the scale factor is a point
    sf_value: int | None = None  # fixed scale factor, when the definition gives a number


@dataclass(frozen=True)
class Layout:
    """Where every point of one model instance sits; ``length`` is the model's ``L``."""

    model: ModelDef
    slots: Mapping[str, Slot]
    length: int

    def __getitem__(self, path: str) -> Slot:
        try:
            return self.slots[path]
        except KeyError:
            raise KeyError(f"model {self.model.id} ({self.model.name}) has no point {path!r}") from None


def _point(raw: Mapping[str, Any]) -> PointDef:
    ptype = str(raw["type"])
    size = int(raw.get("size", TYPE_SIZE.get(ptype, 1)))
    sf = raw.get("sf")
    symbols = {str(s["name"]): int(s["value"]) for s in raw.get("symbols", [])}
    return PointDef(
        name=str(raw["name"]),
        type=ptype,
        size=size,
        sf=sf if isinstance(sf, (str, int)) else None,
        units=raw.get("units"),
        access=str(raw.get("access", "R")),
        mandatory=raw.get("mandatory") == "M",
        static=raw.get("static") == "S",
        symbols=symbols,
        value=raw.get("value") if isinstance(raw.get("value"), int) else None,
    )


def _group(raw: Mapping[str, Any]) -> GroupDef:
    count = raw.get("count")
    return GroupDef(
        name=str(raw["name"]),
        points=tuple(_point(p) for p in raw.get("points", [])),
        groups=tuple(_group(g) for g in raw.get("groups", [])),
        count=count if isinstance(count, (int, str)) else None,
    )


def _models_dir() -> Any:
    return resources.files("drivers.sunspec") / "models"


@cache
def available_ids() -> tuple[int, ...]:
    """Ids of the model definitions shipped in the package."""
    ids = []
    for entry in _models_dir().iterdir():
        name = entry.name
        if name.startswith("model_") and name.endswith(".json"):
            ids.append(int(name[len("model_") : -len(".json")]))
    return tuple(sorted(ids))


@cache
def load(model_id: int) -> ModelDef:
    """The definition of model ``model_id`` (raises SunSpecDefinitionError if it is not shipped)."""
    path = _models_dir() / f"model_{model_id}.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SunSpecDefinitionError(
            f"SunSpec model {model_id} is not shipped (have {', '.join(map(str, available_ids()))})"
        ) from None
    raw = json.loads(text)
    return ModelDef(id=int(raw["id"]), name=str(raw["group"]["name"]), group=_group(raw["group"]))


def _resolve_count(group: GroupDef, counts: Mapping[str, int]) -> int:
    if group.count is None:
        return 1
    if isinstance(group.count, int):
        return group.count
    if group.count not in counts:
        raise SunSpecDefinitionError(
            f"group {group.name} repeats {group.count} times: give counts[{group.count!r}]"
        )
    return int(counts[group.count])


def layout(model: ModelDef, counts: Mapping[str, int] | None = None, length: int | None = None) -> Layout:
    """Place every point of ``model``; ``counts`` gives the count points (e.g. ``NCrv``, ``NPt``).

    ``length`` is the ``L`` a device reports: points beyond it are left out (model 1 with L = 65,
    the older form without the pad, is accepted this way). A length beyond the definition is an error.
    """
    counts = counts or {}
    slots: dict[str, Slot] = {}
    scope_sf: list[dict[str, str]] = []

    def place(group: GroupDef, prefix: str, offset: int) -> int:
        names = {p.name: f"{prefix}{p.name}" for p in group.points}
        scope_sf.append(names)
        for p in group.points:
            sf_path: str | None = None
            sf_value: int | None = None
            if isinstance(p.sf, int):
                sf_value = p.sf
            elif isinstance(p.sf, str):
                # A scale factor names a point of this group or of an enclosing one.
                sf_path = next((scope[p.sf] for scope in reversed(scope_sf) if p.sf in scope), None)
                if sf_path is None:
                    raise SunSpecDefinitionError(
                        f"model {model.id}: scale factor {p.sf} of {p.name} not found"
                    )
            slots[f"{prefix}{p.name}"] = Slot(f"{prefix}{p.name}", p, offset, sf_path, sf_value)
            offset += p.size
        for sub in group.groups:
            n = _resolve_count(sub, counts)
            for i in range(n):
                sub_prefix = f"{prefix}{sub.name}[{i}]." if sub.count is not None else f"{prefix}{sub.name}."
                offset = place(sub, sub_prefix, offset)
        scope_sf.pop()
        return offset

    end = place(model.group, "", 0)
    full_length = end - 2
    if length is None:
        length = full_length
    elif length > full_length:
        raise SunSpecDefinitionError(
            f"model {model.id} ({model.name}) reports L={length} but its definition has {full_length} registers"
        )
    kept = {path: s for path, s in slots.items() if s.offset + s.point.size <= length + 2}
    return Layout(model=model, slots=kept, length=length)


def decode(point: PointDef, regs: Sequence[int]) -> int | float | str | None:
    """Raw value of ``point`` from its registers; the not-implemented sentinel becomes None."""
    if len(regs) != point.size:
        raise SunSpecDefinitionError(f"{point.name}: expected {point.size} registers, got {len(regs)}")
    if point.type == "string":
        data = b"".join(r.to_bytes(2, "big") for r in regs)
        text = data.split(b"\x00", 1)[0].decode("utf-8", errors="replace").rstrip()
        return text or None
    if point.type in ("float32", "float64"):
        fmt = ">f" if point.type == "float32" else ">d"
        data = b"".join(r.to_bytes(2, "big") for r in regs)
        f = float(struct.unpack(fmt, data)[0])
        return None if math.isnan(f) else f
    raw = 0
    for r in regs:
        raw = (raw << 16) | (r & 0xFFFF)
    if point.type in NOT_IMPLEMENTED and raw == NOT_IMPLEMENTED[point.type]:
        return None
    if point.type in SIGNED:
        bits = 16 * point.size
        if raw >= 1 << (bits - 1):
            raw -= 1 << bits
    return raw


def encode(point: PointDef, value: int | float | str | None) -> list[int]:
    """Registers for raw ``value`` of ``point``; None writes the not-implemented sentinel."""
    if point.type == "string":
        data = (value or "").encode("utf-8") if isinstance(value, str) or value is None else b""
        if not isinstance(value, (str, type(None))):
            raise SunSpecDefinitionError(f"{point.name}: a string point takes a str, not {value!r}")
        if len(data) > 2 * point.size:
            raise SunSpecDefinitionError(f"{point.name}: {value!r} is longer than {2 * point.size} bytes")
        data = data.ljust(2 * point.size, b"\x00")
        return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if point.type in ("float32", "float64"):
        fmt = ">f" if point.type == "float32" else ">d"
        data = struct.pack(fmt, math.nan if value is None else float(value))
        return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    bits = 16 * point.size
    if value is None:
        if point.type not in NOT_IMPLEMENTED:
            raise SunSpecDefinitionError(f"{point.name}: type {point.type} has no not-implemented value")
        raw = NOT_IMPLEMENTED[point.type]
    else:
        if isinstance(value, float):
            if not value.is_integer():
                raise SunSpecDefinitionError(f"{point.name}: raw value {value!r} is not an integer")
            value = int(value)
        if not isinstance(value, int):
            raise SunSpecDefinitionError(f"{point.name}: {value!r} is not an integer")
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if point.type in SIGNED else (0, (1 << bits) - 1)
        if not lo <= value <= hi:
            raise SunSpecDefinitionError(f"{point.name}: {value} is outside {point.type} range {lo}..{hi}")
        if value == NOT_IMPLEMENTED.get(point.type) and point.type not in ("acc16", "acc32", "acc64"):
            raise SunSpecDefinitionError(
                f"{point.name}: {value} is the not-implemented value of {point.type}"
            )
        raw = value & ((1 << bits) - 1)
    return [(raw >> (16 * (point.size - 1 - i))) & 0xFFFF for i in range(point.size)]


def scale(raw: int | float | None, sf: int | None) -> float | None:
    """The engineering value of a raw point and its scale factor; None when either is absent."""
    if raw is None or sf is None:
        return None
    return float(raw) * 10.0**sf


def unscale(value: float, sf: int) -> int:
    """The raw integer for engineering ``value`` at scale factor ``sf`` (rounded half away from zero)."""
    scaled = value / 10.0**sf
    return int(math.copysign(math.floor(abs(scaled) + 0.5), scaled))


def model_registers(lay: Layout, values: Mapping[str, int | float | str | None]) -> list[int]:
    """The registers of one model instance (``ID``, ``L`` and the points), unset points not implemented.

    ``values`` maps point paths to raw values. Unknown paths are an error, so a typo in a plant or a
    test does not silently leave a point absent.
    """
    unknown = set(values) - set(lay.slots)
    if unknown:
        raise SunSpecDefinitionError(f"model {lay.model.id}: no such points {sorted(unknown)}")
    regs = [0] * (lay.length + 2)
    for path, slot in lay.slots.items():
        p = slot.point
        if path == "ID":
            raw: int | float | str | None = lay.model.id
        elif path == "L":
            raw = lay.length
        elif path in values:
            raw = values[path]
        elif p.type in NOT_IMPLEMENTED or p.type in ("string", "float32", "float64"):
            raw = None  # "pad" is in NOT_IMPLEMENTED: pads read 0x8000
        else:
            raw = 0
        regs[slot.offset : slot.offset + p.size] = encode(p, raw)
    return regs


def device_image(models: Sequence[tuple[Layout, Mapping[str, int | float | str | None]]]) -> list[int]:
    """A whole SunSpec register map: ``SunS``, each model in order, then the end marker."""
    regs = list(SUNS_MARKER)
    for lay, values in models:
        regs.extend(model_registers(lay, values))
    regs.extend([END_MODEL_ID, 0])
    return regs
