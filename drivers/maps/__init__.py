"""Vendor register maps as data: TOML files in ``config/devices/<name>.toml``, validated at load.

A map lists the device's points (address, function code, type, word order, scale, unit, access, and
the capability each point serves), the blocks polled (which registers, how often), the device's sign
conventions, its ratings and its commands. :func:`load_map` checks it all before any device is
touched and raises :class:`~drivers.errors.DriverError` (kind ``config``) naming the file, the point
and the key. The format is documented in ``docs/drivers.md``.
"""

from __future__ import annotations

import math
import struct
import tomllib
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from drivers.capabilities import MeterReading, PowerStageReading
from drivers.errors import DriverError
from drivers.transport import MAX_READ

PointType = Literal["int16", "uint16", "int32", "uint32", "float32"]
WordOrder = Literal["big", "little"]
Address = Annotated[int, Meta(ge=0, le=65535)]

TYPE_REGS = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}

# What a point may serve: a reading field of its role, a rating, or a command input.
_NOT_POINTS = {"t_s", "frozen"}
METER_CAPABILITIES = frozenset(f.name for f in fields(MeterReading)) - _NOT_POINTS
STAGE_CAPABILITIES = (frozenset(f.name for f in fields(PowerStageReading)) - _NOT_POINTS - {"alarms"}) | {
    "alarm_code",
    "rating.p_max_w",
    "rating.p_max_export_w",
    "rating.p_max_charge_w",
    "setpoint.p_w",
    "setpoint.i_a",
}


class _Struct(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class MapInfo(_Struct, frozen=True, kw_only=True):
    """Who the map is for and where it comes from (the source must be public and named)."""

    name: str
    role: Literal["site_meter", "power_stage"]
    source: str
    word_order: WordOrder = "big"


class Signs(_Struct, frozen=True, kw_only=True):
    """The device's conventions. Meter ``power``: import_positive | export_positive. Power stage
    ``power``: export_positive | import_positive (of the AC power, the DC power and the setpoint).
    ``reactive``: for a meter, import_positive (vars drawn from the grid positive) or export_positive;
    for a power stage, injection_positive or absorption_positive."""

    power: Literal["import_positive", "export_positive"]
    reactive: (
        Literal["import_positive", "export_positive", "injection_positive", "absorption_positive"] | None
    ) = None


class BlockSpec(_Struct, frozen=True, kw_only=True):
    """A polled read: ``count`` registers at ``address`` with ``fc``; ``period`` "fast" (``poll_s``) or
    "slow" (``slow_poll_s``)."""

    fc: Literal[3, 4]
    address: Address
    count: Annotated[int, Meta(ge=1, le=MAX_READ)]
    period: Literal["fast", "slow"] = "fast"


class PointSpec(_Struct, frozen=True, kw_only=True):
    """One point. ``value = raw * scale + offset``; ``min``/``max`` bound written values (a write outside
    is refused) and read values (a read outside is garbage: the point reads None). ``sentinels`` are raw
    values meaning "not available". ``must_move_s``: the device is frozen when this point has not
    changed for that long. ``enum`` names raw values."""

    address: Address
    fc: Literal[3, 4, 6, 16] = 3
    type: PointType = "uint16"
    word_order: WordOrder | None = None
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    access: Literal["R", "RW", "W"] = "R"
    capability: str = ""
    min: float | None = None
    max: float | None = None
    sentinels: list[int] = msgspec.field(default_factory=list)
    must_move_s: Annotated[float, Meta(gt=0)] | None = None
    enum: dict[str, str] = msgspec.field(default_factory=dict)
    description: str = ""

    @property
    def size(self) -> int:
        return TYPE_REGS[self.type]

    @property
    def readable(self) -> bool:
        return self.access in ("R", "RW")

    @property
    def writable(self) -> bool:
        return self.access in ("RW", "W")


class RatingsSpec(_Struct, frozen=True, kw_only=True):
    """Ratings when the device has no register for them (magnitudes)."""

    p_max_export_w: Annotated[float, Meta(ge=0)]
    p_max_charge_w: Annotated[float, Meta(ge=0)]
    s_max_va: Annotated[float, Meta(gt=0)] | None = None


class CurrentSetpoint(_Struct, frozen=True, kw_only=True):
    """A charger that takes a current, not a power: ``i = p / (v_nominal_v * phases)``, sign per
    ``signs.power``; magnitudes below ``min_abs_a`` are written as 0 A (the charger pauses), rounding
    is toward zero so the written current never exceeds the request."""

    v_nominal_v: Annotated[float, Meta(gt=0)]
    phases: Literal[1, 2, 3] = 1
    min_abs_a: Annotated[float, Meta(ge=0)] = 0.0
    step_a: Annotated[float, Meta(gt=0)] = 1.0


class Command(_Struct, frozen=True, kw_only=True):
    """Writes of fixed values: ``writes = [[point, value], ...]`` in engineering units."""

    writes: list[tuple[str, float]]


class VendorMap(_Struct, frozen=True, kw_only=True):
    map: MapInfo
    signs: Signs
    blocks: list[BlockSpec]
    points: dict[str, PointSpec]
    ratings: RatingsSpec | None = None
    current_setpoint: CurrentSetpoint | None = None
    commands: dict[str, Command] = msgspec.field(default_factory=dict)

    @property
    def role(self) -> str:
        return self.map.role

    def word_order(self, p: PointSpec) -> WordOrder:
        return p.word_order or self.map.word_order

    def by_capability(self, capability: str) -> tuple[str, PointSpec] | None:
        for name, p in self.points.items():
            if p.capability == capability:
                return name, p
        return None


def decode_point(vmap: VendorMap, p: PointSpec, regs: tuple[int, ...]) -> float | None:
    """Engineering value of ``p`` from its registers; sentinels, NaN and out-of-range reads are None."""
    words = list(regs)
    if vmap.word_order(p) == "little":
        words.reverse()
    raw_u = 0
    for w in words:
        raw_u = (raw_u << 16) | (w & 0xFFFF)
    if raw_u in p.sentinels:
        return None
    if p.type == "float32":
        raw: float = struct.unpack(">f", raw_u.to_bytes(4, "big"))[0]
        if not math.isfinite(raw):
            return None
    elif p.type in ("int16", "int32"):
        bits = 16 * p.size
        raw = raw_u - (1 << bits) if raw_u >= 1 << (bits - 1) else raw_u
    else:
        raw = raw_u
    value = raw * p.scale + p.offset
    if (p.min is not None and value < p.min) or (p.max is not None and value > p.max):
        return None
    return value


def type_range(ptype: PointType) -> tuple[int, int]:
    """The raw values an integer point type holds (signed for int16/int32, never negative otherwise)."""
    bits = 16 * TYPE_REGS[ptype]
    if ptype in ("int16", "int32"):
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def raw_value(p: PointSpec, value: float) -> float:
    """The raw value written for engineering ``value``: ``(value - offset) / scale``; for an integer type
    rounded toward zero (a written set point never exceeds the request) once the division's
    floating-point error is absorbed (0.29 / 0.01 is 28.999999999999996: raw 29, not 28)."""
    raw = (value - p.offset) / p.scale
    if p.type == "float32" or not math.isfinite(raw):
        return raw
    nearest = round(raw)
    return float(nearest) if abs(raw - nearest) <= 1e-9 * max(1.0, abs(raw)) else float(math.trunc(raw))


def encode_point(vmap: VendorMap, p: PointSpec, value: float) -> list[int]:
    """Registers for engineering ``value`` (range-checked by the caller), rounded toward zero."""
    raw = raw_value(p, value)
    if p.type == "float32":
        raw_u = int.from_bytes(struct.pack(">f", raw), "big")
    else:
        if not math.isfinite(raw):
            raise ValueError(f"{value} is not a finite number")
        n = int(raw)
        bits = 16 * p.size
        lo, hi = type_range(p.type)
        if not lo <= n <= hi:
            raise ValueError(f"{value} does not fit {p.type}")
        raw_u = n & ((1 << bits) - 1)
    words = [(raw_u >> (16 * (p.size - 1 - i))) & 0xFFFF for i in range(p.size)]
    if vmap.word_order(p) == "little":
        words.reverse()
    return words


def _bad(origin: str, msg: str) -> DriverError:
    return DriverError(f"vendor map {origin}: {msg}", kind="config", retryable=False)


def validate_map(vmap: VendorMap, origin: str) -> None:
    """Checks beyond types: capabilities known for the role, read points inside a block with their
    function code, blocks within one request, writable points bounded, commands naming points."""
    caps = METER_CAPABILITIES if vmap.role == "site_meter" else STAGE_CAPABILITIES
    if vmap.role == "site_meter" and vmap.signs.power not in ("import_positive", "export_positive"):
        raise _bad(origin, f"[signs] power = {vmap.signs.power!r} is not a meter convention")
    seen_caps: dict[str, str] = {}
    for name, p in vmap.points.items():
        where = f"[points.{name}]"
        if p.capability:
            if p.capability not in caps:
                raise _bad(origin, f"{where} capability {p.capability!r} is not one of {sorted(caps)}")
            if p.capability in seen_caps:
                raise _bad(
                    origin,
                    f"{where} capability {p.capability!r} is also served by {seen_caps[p.capability]!r}",
                )
            seen_caps[p.capability] = name
        if p.capability == "ev_soc" and not (
            p.min is not None and p.max is not None and 0.0 <= p.min <= p.max <= 1.0
        ):
            # A map forwarding percent unbounded read as a known SoC far above any reserve.
            raise _bad(
                origin,
                f"{where} capability 'ev_soc' needs min and max within 0..1 (the SoC is a fraction: scale"
                " percent by 0.01), so that a reading outside them is no SoC",
            )
        if p.scale == 0:
            raise _bad(origin, f"{where} scale = 0")
        if p.readable:
            if p.fc not in (3, 4):
                raise _bad(origin, f"{where} readable point with fc = {p.fc}: reads use 3 or 4")
            inside = [
                b
                for b in vmap.blocks
                if b.fc == p.fc and b.address <= p.address and p.address + p.size <= b.address + b.count
            ]
            if not inside:
                raise _bad(
                    origin, f"{where} address {p.address} (fc {p.fc}, {p.size} registers) is in no [[blocks]]"
                )
        if p.writable:
            if p.min is None or p.max is None:
                raise _bad(origin, f"{where} writable point needs min and max (the write range check)")
            if p.type != "float32":
                t_lo, t_hi = type_range(p.type)
                for key, bound in (("min", p.min), ("max", p.max)):
                    raw = raw_value(p, bound)
                    if not t_lo <= raw <= t_hi:
                        raise _bad(
                            origin,
                            f"{where} {key} = {bound:g} is raw {raw:g} (offset {p.offset:g}, scale {p.scale:g}), "
                            f"which {p.type} cannot hold ({t_lo}..{t_hi})",
                        )
            if p.fc in (4,):
                raise _bad(origin, f"{where} writable point with fc = 4 (input registers are read-only)")
        if p.must_move_s is not None and not p.readable:
            raise _bad(origin, f"{where} must_move_s on a point that is not read")
    for cname, cmd in vmap.commands.items():
        for point, value in cmd.writes:
            target = vmap.points.get(point)
            if target is None:
                raise _bad(origin, f"[commands.{cname}] writes unknown point {point!r}")
            if not target.writable:
                raise _bad(
                    origin,
                    f"[commands.{cname}] writes {point!r}, which is not writable (access {target.access!r})",
                )
            if target.min is None or target.max is None or not target.min <= value <= target.max:
                raise _bad(
                    origin,
                    f"[commands.{cname}] writes {value:g} to {point!r}, outside {target.min}..{target.max}",
                )
    if vmap.role == "site_meter":
        if "p_site_import_w" not in seen_caps:
            raise _bad(origin, "a site meter map needs a point with capability 'p_site_import_w'")
    else:
        if "p_w" not in seen_caps:
            raise _bad(origin, "a power stage map needs a point with capability 'p_w'")
        sp = seen_caps.get("setpoint.p_w") or seen_caps.get("setpoint.i_a")
        if sp is None:
            raise _bad(origin, "a power stage map needs a writable 'setpoint.p_w' or 'setpoint.i_a' point")
        if "setpoint.i_a" in seen_caps and vmap.current_setpoint is None:
            raise _bad(
                origin, "'setpoint.i_a' needs a [current_setpoint] section (how power maps to current)"
            )
        if vmap.ratings is None and not {"rating.p_max_w", "rating.p_max_export_w"} & set(seen_caps):
            raise _bad(origin, "a power stage map needs [ratings] or 'rating.*' points (the setpoint range)")
        for required in ("stop",):
            if required not in vmap.commands:
                raise _bad(origin, f"a power stage map needs [commands.{required}]")


def parse_map(text: str, origin: str) -> VendorMap:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _bad(origin, f"not valid TOML: {e}") from None
    try:
        vmap = msgspec.convert(raw, VendorMap, strict=True)
    except msgspec.ValidationError as e:
        raise _bad(origin, str(e)) from None
    validate_map(vmap, origin)
    return vmap


def map_dir_default() -> Path:
    """``config/devices`` of the checkout, or ``edge/_config/devices`` inside an installed package."""
    here = Path(__file__).resolve().parents[2] / "config" / "devices"
    if here.is_dir():
        return here
    return Path(str(resources.files("edge") / "_config" / "devices"))


def load_map(name: str, directory: Path | None = None) -> VendorMap:
    """The vendor map ``<directory>/<name>.toml`` (default: the shipped ``config/devices``)."""
    if not name or "/" in name or name.startswith("."):
        raise _bad(repr(name), "a map name is a file name without .toml (e.g. 'eastron-sdm630')")
    path = (directory or map_dir_default()) / f"{name}.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        have = sorted(p.stem for p in path.parent.glob("*.toml")) if path.parent.is_dir() else []
        raise _bad(str(path), f"no such file (maps here: {have})") from None
    return parse_map(text, str(path))
