"""The one checked write path to a SunSpec device: engineering value -> raw -> register -> read back.

Every write to a SunSpec point goes through :class:`CheckedWriter`:

* :meth:`CheckedWriter.raw` turns an engineering value into the raw integer with the point's scale
  factor and checks it against the model definition first: a read-only point or a scale factor
  (``sunssf``) is refused, a value outside the type's range (a negative value for an unsigned
  register, an int16 beyond -32767..32767, the not-implemented sentinel), an enum value the
  definition does not name or a bitfield bit it does not define is refused, and NaN is refused.
  A time (a point in seconds: response, clearing, delay and reversion times) is never rounded: one
  the device cannot hold at its scale factor (0.2 s where ``RspTms_SF`` = 0 counts whole seconds) is
  refused, naming the scale factor and the nearest value the device holds. Other scaled points
  (voltages, powers, per-unit curve values) are rounded to the nearest raw step, as their read-back
  allows. A refusal is ``DriverError(kind="range")`` and nothing is written.
* :meth:`CheckedWriter.write_settings` writes settings (reversion timers, enables, modes, curves)
  **on change only**: it keeps the last value verified per register and skips a point whose
  registers already hold it, then reads the written registers back and compares; a mismatch raises
  ``DriverError`` naming the model, the point, the value written and the value read. Many inverters
  keep such registers in EEPROM: writing them every cycle wears the memory out.
* :meth:`CheckedWriter.write_setpoints` writes set points (``WSet``, ``VarSet``, heartbeats) every
  time, without read-back: they are what the device's reversion timer watches.

The verified cache describes what the device held when it was read back. It is invalid after a
reconnect or a device restart (the device may have come back with its power-on settings):
:meth:`CheckedWriter.invalidate` forgets it, and :meth:`CheckedWriter.observe` drops entries a later
read contradicts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from drivers.errors import DriverError, where
from drivers.sunspec import models as ssm
from drivers.sunspec.device import ModelValues, SunSpecDevice
from drivers.transport import MAX_READ, MAX_WRITE

# Types whose values are plain integers on the wire (strings, floats and addresses are not written).
_INTEGER_TYPES = {
    "int16",
    "uint16",
    "enum16",
    "bitfield16",
    "count",
    "int32",
    "uint32",
    "enum32",
    "bitfield32",
    "int64",
    "uint64",
}
SECONDS = "Secs"  # the units of a time point in the model definitions
# A time the device holds differs from the one wanted by binary floating point only (0.2 / 10^-2 is
# 20.000000000000004): relative to the value, absolute below 1 s.
_TIME_TOLERANCE = 1e-9


@dataclass(frozen=True)
class _Planned:
    """One point to write: where, what raw value, which registers."""

    path: str
    slot: ssm.Slot
    address: int
    raw: int
    regs: tuple[int, ...]
    value: float


def _raw_range(ptype: str, size: int) -> tuple[int, int]:
    """The raw values a writable integer point may take (its not-implemented sentinel excluded)."""
    bits = 16 * size
    if ptype in ssm.SIGNED:
        return -(1 << (bits - 1)) + 1, (1 << (bits - 1)) - 1  # the lowest value is "not implemented"
    return 0, (1 << bits) - 2  # the highest value is "not implemented"


class CheckedWriter:
    """Writes points of one SunSpec device through the checks, with a verified-value cache."""

    def __init__(self, device: SunSpecDevice, name: str) -> None:
        self.device = device
        self.name = name
        self._verified: dict[int, int] = {}  # address -> register value read back after a write
        self.writes = 0  # write requests sent (settings and set points)

    # --- the checks ----------------------------------------------------------------------------------

    def _refuse(self, mv: ModelValues, path: str, text: str) -> DriverError:
        slot = mv.layout.slots.get(path)
        addr = None if slot is None else mv.instance.start + slot.offset
        return DriverError(
            f"{where(self.name, addr, what=f'{mv.instance.id} {path}')}: {text}; nothing written",
            kind="range",
            retryable=False,
            device=self.name,
            register=addr,
        )

    def _time_refusal(self, mv: ModelValues, path: str, value: float, sf: int, carrier: str) -> DriverError:
        step = 10.0**sf
        nearest = ssm.unscale(value, sf) * step
        return self._refuse(
            mv,
            path,
            f"wanted {value:g} s, which the device cannot hold: {carrier} "
            f"(steps of {step:g} s), the nearest value it holds is {nearest:g} s; a time is not rounded",
        )

    def raw(self, mv: ModelValues, path: str, value: float) -> int:
        """The raw value of engineering ``value`` for point ``path`` of ``mv``, checked against the model."""
        slot = mv.layout.slots.get(path)
        if slot is None:
            raise self._refuse(mv, path, f"model {mv.instance.id} has no point {path!r} on this device")
        p = slot.point
        if p.type == "sunssf":
            raise self._refuse(mv, path, "a scale factor (sunssf) is not writable")
        if not p.writable:
            raise self._refuse(mv, path, f"the point is read-only (access {p.access})")
        if p.type not in _INTEGER_TYPES:
            raise self._refuse(mv, path, f"type {p.type} is not written by this driver")
        if isinstance(value, bool) or not math.isfinite(value):
            raise self._refuse(mv, path, f"value {value!r} is not a finite number")
        if p.sf is None:
            if not float(value).is_integer():
                if p.units == SECONDS:
                    raise self._time_refusal(mv, path, value, 0, "no scale factor")
                raise self._refuse(
                    mv, path, f"value {value!r} is not an integer and {path} has no scale factor"
                )
            raw = int(value)
        else:
            sf = mv.sf(path)
            if sf is None:
                raise self._refuse(
                    mv, path, f"its scale factor {slot.sf_path or p.sf} is not implemented or outside -10..10"
                )
            raw = ssm.unscale(value, sf)
            # A response or clearing time rounded is another setting: 0.2 s in whole seconds is no lag
            # at all or five times the commissioned one.
            if p.units == SECONDS and abs(raw * 10.0**sf - value) > _TIME_TOLERANCE * max(abs(value), 1.0):
                raise self._time_refusal(mv, path, value, sf, f"{slot.sf_path or 'its scale factor'} = {sf}")
        lo, hi = _raw_range(p.type, p.size)
        if not lo <= raw <= hi:
            sf = mv.sf(path) or 0
            raise self._refuse(
                mv,
                path,
                f"value {value:g} (raw {raw}) is outside the {p.type} range {lo}..{hi}"
                + (f" (x 10^{sf})" if sf else ""),
            )
        if p.type.startswith("enum") and p.symbols and raw not in p.symbols.values():
            names = ", ".join(f"{n}={v}" for n, v in p.symbols.items())
            raise self._refuse(mv, path, f"value {raw} is not one of the enum's values {{{names}}}")
        if p.type.startswith("bitfield") and p.symbols:
            defined = 0
            for bit in p.symbols.values():
                defined |= 1 << bit
            if raw & ~defined:
                raise self._refuse(
                    mv, path, f"value {raw:#x} sets bits {raw & ~defined:#x} the definition does not name"
                )
        return raw

    def _plan(self, mv: ModelValues, values: Mapping[str, float]) -> list[_Planned]:
        out = []
        for path, value in values.items():
            raw = self.raw(mv, path, value)
            slot = mv.layout[path]
            out.append(
                _Planned(
                    path,
                    slot,
                    mv.instance.start + slot.offset,
                    raw,
                    tuple(ssm.encode(slot.point, raw)),
                    float(value),
                )
            )
        return sorted(out, key=lambda x: x.address)

    # --- the writes ----------------------------------------------------------------------------------

    def _runs(self, planned: list[_Planned]) -> list[list[_Planned]]:
        """Contiguous points grouped into one request each (at most MAX_WRITE registers)."""
        runs: list[list[_Planned]] = []
        for item in planned:
            if runs:
                last = runs[-1]
                end = last[-1].address + len(last[-1].regs)
                size = end - last[0].address + len(item.regs)
                if item.address == end and size <= MAX_WRITE:
                    last.append(item)
                    continue
            runs.append([item])
        return runs

    async def _send(self, runs: list[list[_Planned]], model_id: int, *, urgent: bool) -> None:
        for run in runs:
            regs = [r for item in run for r in item.regs]
            what = f"{model_id} " + ", ".join(item.path for item in run)
            await self.device.link.write(run[0].address, regs, what=what, urgent=urgent)
            self.writes += 1

    def unchanged(self, mv: ModelValues, values: Mapping[str, float]) -> bool:
        """True when every point of ``values`` is known (verified) to hold that value already."""
        return all(self._is_verified(item) for item in self._plan(mv, values))

    def _is_verified(self, item: _Planned) -> bool:
        return all(self._verified.get(item.address + i) == r for i, r in enumerate(item.regs))

    async def write_settings(self, mv: ModelValues, values: Mapping[str, float]) -> int:
        """Write the points of ``values`` that are not verified to hold them, then read them back.

        Returns the number of points written (0: all unchanged, nothing sent). Raises DriverError:
        ``range`` before anything is written, a transport error, or a read-back mismatch.
        """
        planned = [item for item in self._plan(mv, values) if not self._is_verified(item)]
        if not planned:
            return 0
        # Not known: what does the device hold? Only what differs is written (a restarted device
        # that kept its settings in EEPROM is not written again).
        held = await self._read_span(mv, planned, "read before write")
        for item in planned:
            if all(held[item.address + i] == r for i, r in enumerate(item.regs)):
                self._verified.update({item.address + i: r for i, r in enumerate(item.regs)})
        planned = [item for item in planned if not self._is_verified(item)]
        if not planned:
            return 0
        await self._send(self._runs(planned), mv.instance.id, urgent=False)
        await self._verify(mv, planned)
        return len(planned)

    async def _read_span(self, mv: ModelValues, planned: list[_Planned], what: str) -> dict[int, int]:
        lo = planned[0].address
        hi = max(item.address + len(item.regs) for item in planned)
        got: dict[int, int] = {}
        addr = lo
        while addr < hi:
            n = min(MAX_READ, hi - addr)
            r = await self.device.link.read(addr, n, what=f"{mv.instance.id} {what}")
            got.update({addr + i: v for i, v in enumerate(r.values)})
            addr += n
        return got

    async def _verify(self, mv: ModelValues, planned: list[_Planned]) -> None:
        got = await self._read_span(mv, planned, "read-back")
        lo = planned[0].address
        hi = max(item.address + len(item.regs) for item in planned)
        problems = []
        for item in planned:
            regs = [got[item.address + i] for i in range(len(item.regs))]
            if tuple(regs) == item.regs:
                for i, v in enumerate(regs):
                    self._verified[item.address + i] = v
                continue
            problems.append(
                f"{item.path} written {item.value:g} (raw {item.raw}) read back {self._read_text(mv, item, regs)}"
            )
        if problems:
            raise DriverError(
                f"{where(self.name, lo, hi - lo, what=f'model {mv.instance.id} read-back')}: the device does "
                f"not hold what was written: model {mv.instance.id} " + "; ".join(problems),
                kind="garbage",
                retryable=False,
                device=self.name,
                register=lo,
            )

    @staticmethod
    def _read_text(mv: ModelValues, item: _Planned, regs: list[int]) -> str:
        read = ssm.decode(item.slot.point, regs)
        if read is None:
            return "not implemented"
        value = ssm.scale(read, mv.sf(item.path)) if isinstance(read, int) else None
        return f"{read!r}" if value is None else f"{value:g} (raw {read})"

    async def write_setpoints(
        self, mv: ModelValues, values: Mapping[str, float], *, urgent: bool = False
    ) -> None:
        """Write ``values`` now, every time, without read-back (set points and heartbeats)."""
        planned = self._plan(mv, values)
        for item in planned:
            for i in range(len(item.regs)):
                self._verified.pop(item.address + i, None)  # a set point is never "verified"
        await self._send(self._runs(planned), mv.instance.id, urgent=urgent)

    # --- the cache -----------------------------------------------------------------------------------

    def invalidate(self) -> None:
        """Forget every verified value (after a reconnect or a device restart)."""
        self._verified.clear()

    def observe(self, mv: ModelValues) -> list[str]:
        """Drop verified values a fresh read of ``mv`` contradicts; returns the paths that changed."""
        start = mv.instance.start
        changed = []
        for path, slot in mv.layout.slots.items():
            a0 = start + slot.offset
            if slot.offset + slot.point.size > len(mv.regs):
                continue
            for i in range(slot.point.size):
                known = self._verified.get(a0 + i)
                if known is not None and known != mv.regs[slot.offset + i]:
                    changed.append(path)
                    for j in range(slot.point.size):
                        self._verified.pop(a0 + j, None)
                    break
        return changed
