"""Reading SunSpec models from a device and decoding them with the official definitions.

:class:`SunSpecDevice` discovers the model chain, lays each model out (repeating groups sized by
their count points, read from the device), reads whole models or register blocks, and decodes them
into :class:`ModelValues`: scale factors applied, "not implemented" sentinels as None (never a
number), enums by symbol name, bitfields as sets of flag names, strings as text.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.errors import DriverError, where
from drivers.sunspec import models as ssm
from drivers.sunspec.discovery import ModelInstance, SunSpecMap, discover
from drivers.transport import MAX_READ, DeviceLink
from drivers.values import Registers

# One-register types decoded inline, with their not-implemented value.
_ONE_REGISTER = {
    t: ssm.NOT_IMPLEMENTED[t] for t in ("int16", "uint16", "acc16", "enum16", "bitfield16", "sunssf", "pad")
}


@dataclass(frozen=True)
class ModelValues:
    """One model instance decoded from registers read at ``t_s`` (``regs`` may cover only a prefix)."""

    layout: ssm.Layout
    instance: ModelInstance
    regs: tuple[int, ...]
    t_s: float

    def __post_init__(self) -> None:
        # Registers never change once read: a scale factor is decoded once per instance.
        object.__setattr__(self, "_sfs", {})

    def raw(self, path: str) -> int | float | str | None:
        """The unscaled value; None when not implemented, beyond the device's L, or not read."""
        slot = self.layout.slots.get(path)
        if slot is None:
            return None
        p, off = slot.point, slot.offset
        if off + p.size > len(self.regs):
            return None
        sentinel = _ONE_REGISTER.get(p.type)
        if sentinel is not None and p.size == 1:
            # The common case inline: a polled model has dozens of these (ssm.decode is general).
            r = self.regs[off]
            if r == sentinel:
                return None
            return r - 0x10000 if r >= 0x8000 and p.type in ssm.SIGNED else r
        return ssm.decode(p, self.regs[off : off + p.size])

    def sf(self, path: str) -> int | None:
        """The scale factor that applies to ``path`` (0 when the point has none)."""
        slot = self.layout.slots.get(path)
        if slot is None:
            return None
        if slot.sf_value is not None:
            return slot.sf_value
        if slot.sf_path is None:
            return 0
        cache: dict[str, int | None] = self._sfs  # type: ignore[attr-defined]
        if slot.sf_path in cache:
            return cache[slot.sf_path]
        sf = self.raw(slot.sf_path)
        # A scale factor outside -10..10 is garbage, not a measurement range (SunSpec limits it so).
        result = sf if isinstance(sf, int) and -10 <= sf <= 10 else None
        cache[slot.sf_path] = result
        return result

    def value(self, path: str) -> float | None:
        """The engineering value (scale factor applied); None when the point or its scale factor is absent."""
        raw = self.raw(path)
        if raw is None or isinstance(raw, str):
            return None
        return ssm.scale(raw, self.sf(path))

    def symbol(self, path: str) -> str | None:
        """An enum point's symbol name; the number as text when the definition has no such symbol."""
        raw = self.raw(path)
        if raw is None or isinstance(raw, (str, float)):
            return None
        for name, val in self.layout.slots[path].point.symbols.items():
            if val == raw:
                return name
        return str(raw)

    def flags(self, path: str) -> frozenset[str]:
        """A bitfield point's set bits by name (``bit<n>`` for bits the definition does not name)."""
        raw = self.raw(path)
        if not isinstance(raw, int):
            return frozenset()
        names = {v: n for n, v in self.layout.slots[path].point.symbols.items()}
        return frozenset(names.get(b, f"bit{b}") for b in range(raw.bit_length()) if raw >> b & 1)

    def text(self, path: str) -> str | None:
        raw = self.raw(path)
        return raw if isinstance(raw, str) else None


def _counts(model: ssm.ModelDef, regs: tuple[int, ...]) -> dict[str, int]:
    """Values of the top-level count points (``NCrv``, ``NPt``, ``NPrt``): they precede every group."""
    counts: dict[str, int] = {}
    wanted = set()

    def collect(g: ssm.GroupDef) -> None:
        for sub in g.groups:
            if isinstance(sub.count, str):
                wanted.add(sub.count)
            collect(sub)

    collect(model.group)
    offset = 0
    for p in model.group.points:
        if p.name in wanted and offset + p.size <= len(regs):
            raw = ssm.decode(p, regs[offset : offset + p.size])
            counts[p.name] = raw if isinstance(raw, int) else 0
        offset += p.size
    return counts


def model_layout(instance: ModelInstance, regs: tuple[int, ...]) -> ssm.Layout:
    """The layout of a model instance; ``regs`` (from its ``ID``) give the repeating groups' counts."""
    try:
        model = ssm.load(instance.id)
        return ssm.layout(model, _counts(model, regs), length=instance.length)
    except ssm.SunSpecDefinitionError as e:
        raise DriverError(
            f"model {instance.id} at {instance.start}: {e}",
            kind="garbage",
            retryable=False,
            register=instance.start,
        ) from None


class SunSpecDevice:
    """A SunSpec device on a link: discovery once, then model reads and block decoding."""

    def __init__(self, link: DeviceLink, base: int | None = None) -> None:
        self.link = link
        self.base = base
        self.map: SunSpecMap | None = None
        self._layouts: dict[int, ssm.Layout] = {}  # by model start address

    async def discover(self) -> SunSpecMap:
        bases = (self.base,) if self.base is not None else ssm.BASE_ADDRESSES
        self.map = await discover(self.link, bases)
        return self.map

    def instance(self, model_id: int, index: int = 0) -> ModelInstance | None:
        return self.map.find(model_id, index) if self.map else None

    def require(self, *model_ids: int) -> ModelInstance:
        """The first of ``model_ids`` the device has (raises DriverError naming what it has instead)."""
        for mid in model_ids:
            inst = self.instance(mid)
            if inst is not None:
                return inst
        have = self.map.ids if self.map else ()
        raise DriverError(
            f"{where(self.link.name, None)}: needs SunSpec model {' or '.join(map(str, model_ids))}; "
            f"it has {list(have)}",
            kind="unsupported",
            retryable=False,
            device=self.link.name,
        )

    async def read_model(self, inst: ModelInstance) -> ModelValues:
        """Read a whole model (several requests when it is longer than one read) and decode it."""
        total = inst.length + 2
        regs: list[int] = []
        t_s = 0.0
        while len(regs) < total:
            n = min(MAX_READ, total - len(regs))
            r = await self.link.read(inst.start + len(regs), n, what=f"model {inst.id}")
            regs.extend(r.values)
            t_s = r.t_s
        values = tuple(regs)
        self._check_header(inst, values)
        lay = model_layout(inst, values)
        self._layouts[inst.start] = lay
        return ModelValues(lay, inst, values, t_s)

    def _check_header(self, inst: ModelInstance, regs: tuple[int, ...]) -> None:
        if len(regs) >= 2 and (regs[0], regs[1]) != (inst.id, inst.length):
            raise DriverError(
                f"{where(self.link.name, inst.start)}: model header reads {regs[0]}/{regs[1]}, "
                f"discovery found {inst.id}/{inst.length} (the map changed: rediscover)",
                kind="garbage",
                retryable=True,
                device=self.link.name,
                register=inst.start,
            )

    def decode_block(self, inst: ModelInstance, block: Registers) -> ModelValues:
        """Decode ``inst`` from a block read that starts at or before its ``ID`` register."""
        offset = inst.start - block.address
        if offset < 0 or offset >= len(block.values):
            raise ValueError(f"block at {block.address} does not hold model {inst.id} at {inst.start}")
        regs = tuple(block.values[offset : offset + inst.length + 2])
        self._check_header(inst, regs)
        lay = self._layouts.get(inst.start)
        if lay is None:
            lay = model_layout(inst, regs)
            self._layouts[inst.start] = lay
        return ModelValues(lay, inst, regs, block.t_s)

    def layout_of(self, inst: ModelInstance) -> ssm.Layout:
        """The layout of ``inst`` (from its last read; models without repeating groups need none)."""
        lay = self._layouts.get(inst.start)
        return lay if lay is not None else model_layout(inst, ())

    def span(self, inst: ModelInstance, upto: str | None = None) -> tuple[int, int]:
        """(address, count) from the model's ``ID`` through point ``upto`` (whole model when None)."""
        if upto is None:
            return inst.start, inst.length + 2
        slot = self.layout_of(inst)[upto]
        return inst.start, slot.offset + slot.point.size
