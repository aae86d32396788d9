"""Devices described by a vendor map: a site meter and a bidirectional power stage.

Both read the map's blocks (fast ones every ``poll_s``, slow ones every ``slow_poll_s``), decode each
point with its type, word order, scale and sentinels, normalize signs to ours, and flag the device
frozen when a ``must_move_s`` point stops changing. The power stage writes through the checked path of
:mod:`drivers.maps.write`: the setpoint against the ratings, then every point against its declared
``min``/``max``, type and signedness; the ``arm`` command's settings on change only, read back where
the map reads the register; set points, start, stop and heartbeat every time. The safe command (0 W)
does not wait for arming.

A meter map may name a counter the meter advances as it measures (capability ``e_counter_wh``, e.g. a
total-energy register); without one, the sum of its ``e_import_wh`` and ``e_export_wh`` points (when it
polls both with the fast blocks) serves. Kernel II judges a frozen meter by that counter.
"""

from __future__ import annotations

import asyncio
import math

from drivers.capabilities import MeterReading, PowerStageRatings, PowerStageReading
from drivers.config import DeviceConfig
from drivers.errors import DriverError, where
from drivers.maps import BlockSpec, PointSpec, VendorMap, decode_point
from drivers.maps.write import MapWriter
from drivers.poll import Block, PolledDevice
from drivers.transport import DeviceLink
from drivers.values import FrozenDetector, Registers


class MapReader:
    """Reads a map's blocks through a link and decodes the points they hold."""

    def __init__(self, vmap: VendorMap, link: DeviceLink, config: DeviceConfig) -> None:
        self.vmap = vmap
        self.link = link
        self.config = config
        self.fast = [b for b in vmap.blocks if b.period == "fast"]
        self.slow = [b for b in vmap.blocks if b.period == "slow"]
        self._frozen = {
            name: FrozenDetector(min(p.must_move_s, config.frozen_after_s) if p.must_move_s else 0.0)
            for name, p in vmap.points.items()
            if p.must_move_s is not None
        }

    def plan(self) -> list[Block]:
        return [
            Block(
                f"{b.fc}:{b.address}",
                b.fc,
                b.address,
                b.count,
                self.config.poll_s if b.period == "fast" else self.config.slow_poll_s,
            )
            for b in self.vmap.blocks
        ]

    async def read(self, blocks: list[BlockSpec]) -> tuple[dict[str, float | None], float]:
        """Values by point name of every point inside ``blocks``, and the oldest answer's time."""
        got: list[tuple[BlockSpec, Registers]] = [
            (b, await self.link.read(b.address, b.count, fc=b.fc, what=f"block {b.address}+{b.count}"))
            for b in blocks
        ]
        values: dict[str, float | None] = {}
        for name, p in self.vmap.points.items():
            if not p.readable:
                continue
            for b, regs in got:
                off = p.address - b.address
                if b.fc == p.fc and 0 <= off <= b.count - p.size:
                    values[name] = decode_point(self.vmap, p, regs.values[off : off + p.size])
                    break
        return values, min((r.t_s for _, r in got), default=0.0)

    def frozen(self, values: dict[str, float | None], t_s: float) -> bool:
        frozen = False
        for name, det in self._frozen.items():
            if name in values:
                frozen = det.update(values[name], t_s) or frozen
        self.link.stats.frozen = frozen
        return frozen

    def capability(self, values: dict[str, float | None], cap: str) -> float | None:
        found = self.vmap.by_capability(cap)
        return None if found is None else values.get(found[0])

    def symbol(self, values: dict[str, float | None], cap: str) -> str | None:
        found = self.vmap.by_capability(cap)
        if found is None:
            return None
        v = values.get(found[0])
        if v is None:
            return None
        return found[1].enum.get(str(int(v)), str(int(v)))

    def garbage(self, cap: str) -> DriverError:
        found = self.vmap.by_capability(cap)
        addr = found[1].address if found else None
        return DriverError(
            f"{where(self.link.name, addr, what=cap)}: reads as not available (sentinel, NaN or outside the "
            "map's plausible range)",
            kind="garbage",
            retryable=True,
            device=self.link.name,
            register=addr,
        )


class MapMeter(PolledDevice[MeterReading]):
    """A site meter described by a vendor map (e.g. Eastron SDM630)."""

    def __init__(self, name: str, link: DeviceLink, config: DeviceConfig, vmap: VendorMap) -> None:
        super().__init__(name, link, config)
        self.vmap = vmap
        self.reader = MapReader(vmap, link, config)
        effective = config.meter_sign or vmap.signs.power
        flip = -1.0 if effective != vmap.signs.power else 1.0  # mounted the other way round
        self._p = 1.0 if effective == "import_positive" else -1.0
        self._q = (1.0 if vmap.signs.reactive in (None, "import_positive") else -1.0) * flip
        self._swap_energy = flip < 0

    async def setup(self) -> None:
        if self.reader.slow:
            await self.reader.read(self.reader.slow)

    def plan(self) -> list[Block]:
        return self.reader.plan()

    async def _read(self) -> MeterReading:
        values, t_s = await self.reader.read(self.reader.fast)
        cap = self.reader.capability
        p = cap(values, "p_site_import_w")
        if p is None:
            raise self.reader.garbage("p_site_import_w")
        p *= self._p
        q = cap(values, "q_site_import_var")
        pf = cap(values, "pf_site")

        def phase(name: str) -> float | None:
            v = cap(values, name)
            return None if v is None else self._p * v

        imp, exp = cap(values, "e_import_wh"), cap(values, "e_export_wh")
        if self._swap_energy:
            imp, exp = exp, imp
        counter = cap(values, "e_counter_wh")
        if counter is None and imp is not None and exp is not None:
            counter = imp + exp  # both or nothing: a one-way counter stands still on reverse flow
        i = cap(values, "i_a")
        return MeterReading(
            t_s=t_s,
            p_site_import_w=p,
            q_site_import_var=None if q is None else self._q * q,
            pf_site=None if pf is None else math.copysign(min(1.0, abs(pf)), p),
            v_l1_v=cap(values, "v_l1_v"),
            v_l2_v=cap(values, "v_l2_v"),
            v_l3_v=cap(values, "v_l3_v"),
            f_hz=cap(values, "f_hz"),
            i_a=None if i is None else abs(i),
            p_l1_import_w=phase("p_l1_import_w"),
            p_l2_import_w=phase("p_l2_import_w"),
            p_l3_import_w=phase("p_l3_import_w"),
            e_import_wh=imp,
            e_export_wh=exp,
            e_counter_wh=counter,
            frozen=self.reader.frozen(values, t_s),
        )


class MapPowerStage(PolledDevice[PowerStageReading]):
    """A bidirectional charger described by a vendor map (e.g. Wallbox Quasar, current setpoints)."""

    def __init__(self, name: str, link: DeviceLink, config: DeviceConfig, vmap: VendorMap) -> None:
        super().__init__(name, link, config)
        self.vmap = vmap
        self.reader = MapReader(vmap, link, config)
        effective = config.power_sign or vmap.signs.power
        self._p = 1.0 if effective == "export_positive" else -1.0
        q_conv = config.q_sign or vmap.signs.reactive
        self._q = -1.0 if q_conv == "absorption_positive" else 1.0
        self._ratings: PowerStageRatings | None = None
        self.writer = MapWriter(vmap, link, name)
        self._armed = False  # the arm command's settings known to hold since the last contact loss
        self._started = False
        self._stale = False  # a read timed out or the link dropped: what the device holds is unknown
        self._last_setpoint: tuple[float, float] | None = None
        self._write_lock = asyncio.Lock()

    async def setup(self) -> None:
        await self.refresh()

    async def _read_blocks(self, blocks: list[BlockSpec]) -> tuple[dict[str, float | None], float]:
        try:
            return await self.reader.read(blocks)
        except DriverError as e:
            self._note_contact(e)
            raise

    def _note_contact(self, e: DriverError) -> None:
        if e.kind in ("timeout", "disconnected"):
            self._stale = True  # the device may come back restarted, with its power-on settings

    def _arm_values(self) -> dict[str, float]:
        cmd = self.vmap.commands.get("arm")
        return {} if cmd is None else dict(cmd.writes)

    async def refresh(self) -> None:
        values, t_s = await self._read_blocks(self.reader.slow) if self.reader.slow else ({}, self.clock())
        self.writer.observe(values)
        if self._armed and not self.writer.unchanged(self._arm_values()):
            self._armed = False  # a setting no longer reads as written (a restart, a local change)
        r = self.vmap.ratings
        cap = self.reader.capability
        both = cap(values, "rating.p_max_w")
        exp = cap(values, "rating.p_max_export_w")
        chg = cap(values, "rating.p_max_charge_w")
        exp = both if exp is None else exp
        chg = both if chg is None else chg
        if r is not None:
            # A register rating never widens the map's: the map holds what the hardware is built for.
            exp = r.p_max_export_w if exp is None else min(abs(exp), r.p_max_export_w)
            chg = r.p_max_charge_w if chg is None else min(abs(chg), r.p_max_charge_w)
        self._ratings = (
            None
            if exp is None or chg is None
            else PowerStageRatings(
                t_s=t_s, p_max_export_w=abs(exp), p_max_charge_w=abs(chg), s_max_va=r.s_max_va if r else None
            )
        )

    def plan(self) -> list[Block]:
        return self.reader.plan()

    def ratings(self) -> PowerStageRatings | None:
        return self._ratings

    async def _read(self) -> PowerStageReading:
        values, t_s = await self._read_blocks(self.reader.fast)
        cap = self.reader.capability
        p = cap(values, "p_w")
        if p is None:
            raise self.reader.garbage("p_w")
        p *= self._p
        q = cap(values, "q_var")
        pf = cap(values, "pf")
        dc_i, dc_p = cap(values, "dc_i_a"), cap(values, "dc_p_w")
        alarm = cap(values, "alarm_code")
        return PowerStageReading(
            t_s=t_s,
            p_w=p,
            q_var=None if q is None else self._q * q,
            s_va=cap(values, "s_va"),
            pf=None if pf is None else math.copysign(min(1.0, abs(pf)), p),
            v_ac_v=cap(values, "v_ac_v"),
            f_hz=cap(values, "f_hz"),
            i_ac_a=None if (i := cap(values, "i_ac_a")) is None else abs(i),
            operating=self.reader.symbol(values, "operating"),
            connected=None if (c := cap(values, "connected")) is None else c != 0,
            alarms=frozenset() if not alarm else frozenset({f"code {int(alarm)}"}),
            dc_v_v=cap(values, "dc_v_v"),
            dc_i_a=None if dc_i is None else self._p * dc_i,
            dc_p_w=None if dc_p is None else self._p * dc_p,
            ev_state=self.reader.symbol(values, "ev_state"),
            ev_soc=cap(values, "ev_soc"),
            ev_p_max_charge_w=cap(values, "ev_p_max_charge_w"),
            ev_p_max_discharge_w=cap(values, "ev_p_max_discharge_w"),
            e_injected_wh=cap(values, "e_injected_wh"),
            e_absorbed_wh=cap(values, "e_absorbed_wh"),
            frozen=self.reader.frozen(values, t_s),
        )

    # --- write ---------------------------------------------------------------------------------------

    def _range_error(self, point: str, value: float, lo: float, hi: float, unit: str) -> DriverError:
        return DriverError(
            f"{where(self.name, None, what=point)}: setpoint {value:g} {unit} is outside the allowed range "
            f"{lo:g}..{hi:g} {unit}; nothing written",
            kind="range",
            retryable=False,
            device=self.name,
        )

    def _device_setpoint(self, p_w: float, q_var: float) -> tuple[str, PointSpec, float]:
        """(point name, point, value in the point's unit) for (p_w, q_var), range-checked."""
        r = self._ratings
        if r is None:
            raise DriverError(
                f"{where(self.name, None)}: ratings not known yet: no setpoint can be checked or written",
                kind="unsupported",
                retryable=True,
                device=self.name,
            )
        if not math.isfinite(p_w) or not -r.p_max_charge_w <= p_w <= r.p_max_export_w:
            raise self._range_error("p_w", p_w, -r.p_max_charge_w, r.p_max_export_w, "W")
        if q_var != 0.0:
            raise self._range_error("q_var", q_var, 0.0, 0.0, "var (this map has no reactive setpoint)")
        found = self.vmap.by_capability("setpoint.p_w")
        if found is not None:
            name, point = found
            value = self._p * p_w
        else:
            found = self.vmap.by_capability("setpoint.i_a")
            cs = self.vmap.current_setpoint
            if found is None or cs is None:  # the map loader rules this out
                raise DriverError(f"{self.name}: map has no setpoint", kind="config", retryable=False)
            name, point = found
            amps = self._p * p_w / (cs.v_nominal_v * cs.phases)
            amps = math.copysign(math.floor(abs(amps) / cs.step_a) * cs.step_a, amps)
            value = 0.0 if abs(amps) < cs.min_abs_a else amps
        lo = -math.inf if point.min is None else point.min  # the loader requires both on writable points
        hi = math.inf if point.max is None else point.max
        if not lo <= value <= hi:
            raise self._range_error(name, value, lo, hi, point.unit)
        return name, point, value

    async def _command(self, command: str, *, urgent: bool = False) -> bool:
        """The map's command ``command``: ``arm`` as settings (on change only), the others every time."""
        cmd = self.vmap.commands.get(command)
        if cmd is None:
            return False
        if command == "arm":
            await self.writer.write_settings(dict(cmd.writes))
        else:
            await self.writer.write_setpoints(dict(cmd.writes), urgent=urgent)
        return True

    def _take_stale(self) -> None:
        if self._stale:
            self._stale = False
            self.writer.invalidate()
            self._armed = self._started = False

    async def write_setpoint(self, p_w: float, q_var: float = 0.0) -> None:
        """Set P. 0 W goes out at once (urgent, without arming); another set point after the ``arm``
        settings are known to hold (written and read back where readable) since the last contact loss."""
        await self.ensure_setup()
        name, _, value = self._device_setpoint(p_w, q_var)
        self.writer.registers(name, value)  # type, signedness and range checked before anything is written
        async with self._write_lock:
            self._take_stale()
            try:
                if p_w == 0.0:
                    await self.writer.write_setpoints({name: value}, urgent=True)
                else:
                    if not self._armed:
                        await self._command("arm")
                        self._armed = True
                    await self.writer.write_setpoints({name: value})
                    if not self._started and value != 0.0:
                        await self._command("start")
                        self._started = True
            except DriverError as e:
                self._note_contact(e)
                raise
            self._last_setpoint = (p_w, q_var)

    async def heartbeat(self) -> None:
        await self.ensure_setup()
        if await self._command("heartbeat"):
            return
        if self._last_setpoint is not None:
            await self.write_setpoint(*self._last_setpoint)

    async def stop(self) -> None:
        await self.ensure_setup()
        first: DriverError | None = None
        async with self._write_lock:
            self._take_stale()
            for step in ("zero", "stop"):
                try:
                    if step == "zero":
                        found = self.vmap.by_capability("setpoint.p_w") or self.vmap.by_capability(
                            "setpoint.i_a"
                        )
                        if found is not None:
                            await self.writer.write_setpoints({found[0]: 0.0}, urgent=True)
                    else:
                        await self._command("stop", urgent=True)
                except DriverError as e:
                    self._note_contact(e)
                    first = first or e
            self._started = False
            self._last_setpoint = (0.0, 0.0)
        if first is not None:
            raise first

    async def resume(self) -> None:
        """Allow operation again after ``stop()`` (the map's ``start`` command)."""
        await self.ensure_setup()
        async with self._write_lock:
            self._take_stale()
            try:
                if await self._command("start"):
                    self._started = True
            except DriverError as e:
                self._note_contact(e)
                raise
