"""The checked write path of a vendor-map device: engineering value -> raw -> register -> read back.

Every write a map's power stage makes goes through :class:`MapWriter`, the map counterpart of
:class:`drivers.sunspec.write.CheckedWriter`:

* :meth:`MapWriter.registers` checks a value against the point the map declares before anything is
  written: the point must be writable, the value finite and inside the point's ``min``/``max``, and the
  raw value (``(value - offset) / scale``) must fit the declared type: a negative raw value never reaches
  an unsigned register, an int16 stays within -32768..32767. A refusal is ``DriverError(kind="range")``
  naming the device, the point and its register; nothing is written (a request with one bad point
  writes none of them).
* :meth:`MapWriter.write_settings` (the map's ``arm`` command: modes, timeouts) writes **on change
  only**: a point already verified (or, when the map says it is not readable, already written since
  the last contact loss) holding the value is skipped; a readable point is read first (only what
  differs is written) and read back after the write, and a mismatch raises naming the point, the value
  written and the value read.
* :meth:`MapWriter.write_setpoints` (the set point, start, stop, heartbeat) writes every time without
  read-back.

The cache is forgotten after a read timeout or a disconnect (:meth:`MapWriter.invalidate`: the device
may have restarted with its power-on settings) and :meth:`MapWriter.observe` drops entries that a
later read of the device contradicts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from drivers.errors import DriverError, where
from drivers.maps import TYPE_REGS, PointSpec, VendorMap, decode_point, encode_point, raw_value, type_range
from drivers.transport import DeviceLink


class MapWriter:
    """Writes points of one vendor-map device through the checks, with a last-known-value cache."""

    def __init__(self, vmap: VendorMap, link: DeviceLink, name: str) -> None:
        self.vmap = vmap
        self.link = link
        self.name = name
        self._known: dict[str, tuple[int, ...]] = {}  # point -> registers it holds (verified or written)
        self.writes = 0  # write requests sent

    def _refuse(self, point: str, p: PointSpec | None, text: str) -> DriverError:
        addr = None if p is None else p.address
        return DriverError(
            f"{where(self.name, addr, what=point)}: {text}; nothing written",
            kind="range",
            retryable=False,
            device=self.name,
            register=addr,
        )

    def registers(self, point: str, value: float) -> tuple[int, ...]:
        """The registers of engineering ``value`` for ``point``, checked against the map's declaration."""
        p = self.vmap.points.get(point)
        if p is None:
            raise self._refuse(point, None, "the map has no such point")
        if not p.writable:
            raise self._refuse(point, p, f"the point is not writable (access {p.access!r})")
        if isinstance(value, bool) or not math.isfinite(value):
            raise self._refuse(point, p, f"value {value!r} is not a finite number")
        lo = -math.inf if p.min is None else p.min
        hi = math.inf if p.max is None else p.max
        if not lo <= value <= hi:
            raise self._refuse(
                point, p, f"value {value:g} {p.unit} is outside the map's range {lo:g}..{hi:g}"
            )
        raw = raw_value(p, value)
        if p.type != "float32":
            t_lo, t_hi = type_range(p.type)
            if not t_lo <= raw <= t_hi:
                kind = "a negative value for an unsigned register" if raw < 0 <= t_lo else "out of range"
                raise self._refuse(
                    point, p, f"value {value:g} is raw {raw:g}, {kind}: {p.type} takes {t_lo}..{t_hi}"
                )
        elif abs(raw) > 3.4e38:
            raise self._refuse(point, p, f"value {value:g} does not fit float32")
        return tuple(encode_point(self.vmap, p, value))

    def _plan(self, values: Mapping[str, float]) -> list[tuple[str, PointSpec, tuple[int, ...]]]:
        planned = [(name, self.vmap.points.get(name), self.registers(name, v)) for name, v in values.items()]
        return [(name, p, regs) for name, p, regs in planned if p is not None]

    async def _send(
        self, name: str, p: PointSpec, regs: tuple[int, ...], value: float, *, urgent: bool
    ) -> None:
        fc = 6 if p.fc == 6 else 16
        await self.link.write(
            p.address, list(regs), what=f"{name} {value:g} {p.unit}".rstrip(), urgent=urgent, fc=fc
        )
        self.writes += 1

    async def _read(self, p: PointSpec, what: str) -> tuple[int, ...]:
        r = await self.link.read(p.address, TYPE_REGS[p.type], fc=p.fc if p.fc in (3, 4) else 3, what=what)
        return tuple(r.values)

    def unchanged(self, values: Mapping[str, float]) -> bool:
        """True when every point of ``values`` is known to hold that value already."""
        return all(self._known.get(name) == regs for name, _, regs in self._plan(values))

    async def write_settings(self, values: Mapping[str, float]) -> int:
        """Write the points of ``values`` not known to hold them (readable ones read first and read
        back); returns how many were written. Raises DriverError: ``range`` before anything is
        written, a transport error, or a read-back mismatch."""
        written = 0
        for name, p, regs in self._plan(values):
            if self._known.get(name) == regs:
                continue
            if p.readable:
                held = await self._read(p, f"{name} read before write")
                if held == regs:
                    self._known[name] = regs
                    continue
            value = values[name]
            await self._send(name, p, regs, value, urgent=False)
            written += 1
            if p.readable:
                got = await self._read(p, f"{name} read-back")
                if got != regs:
                    self._known.pop(name, None)
                    read = self._decode(p, got)
                    raise DriverError(
                        f"{where(self.name, p.address, what=name)}: the device does not hold what was "
                        f"written: {name} written {value:g} read back {read}",
                        kind="garbage",
                        retryable=False,
                        device=self.name,
                        register=p.address,
                    )
            self._known[name] = regs
        return written

    def _decode(self, p: PointSpec, regs: tuple[int, ...]) -> str:
        value = decode_point(self.vmap, p, regs)
        words = ", ".join(f"{r:#06x}" for r in regs)
        return f"{'a value outside the map range' if value is None else f'{value:g}'} (registers {words})"

    async def write_setpoints(self, values: Mapping[str, float], *, urgent: bool = False) -> None:
        """Write ``values`` now, every time, without read-back (set points, start/stop, heartbeats)."""
        planned = self._plan(values)
        for name, _, _ in planned:
            self._known.pop(name, None)  # a set point is never "known": it is what the device acts on
        for name, p, regs in planned:
            await self._send(name, p, regs, values[name], urgent=urgent)

    def invalidate(self) -> None:
        """Forget what the device holds (after a read timeout or a disconnect)."""
        self._known.clear()

    def observe(self, values: Mapping[str, float | None]) -> list[str]:
        """Drop known values a fresh read (point -> decoded value) contradicts; returns those points."""
        changed = []
        for name, read in values.items():
            regs = self._known.get(name)
            if regs is None:
                continue
            known = decode_point(self.vmap, self.vmap.points[name], regs)
            if read is None or known is None or abs(read - known) > 1e-9 * max(1.0, abs(known)):
                changed.append(name)
                del self._known[name]
        return changed
