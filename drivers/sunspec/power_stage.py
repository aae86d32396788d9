"""Bidirectional power stage over SunSpec: measure (701, 713, 714, 715, 802), rate (702), command (704).

Read side: the fast plan reads 701 through its scale factors (one request), and 713/714/715/802 where
present, coalesced into as few requests as fit. Legacy devices without 701 are read through 101-103
and rated through 120. Ratings (702) and the control model (704, for its scale factors and the
reversion settings) are re-read every ``slow_poll_s``.

Write side, 704 only (legacy 123/124 control is not implemented: a legacy device is read-only here):

* arming (once, and again whenever a refresh finds the device lost it): ``WSetRvrt`` = 0 W,
  ``WSetEnaRvrt`` = enabled, ``WSetRvrtTms`` = ``setpoint_revert_s``; likewise ``VarSetRvrt`` = 0,
  ``VarSetEnaRvrt``, ``VarSetRvrtTms``, and ``VarSetMod`` = VARS. If the daemon stops writing, the
  inverter falls back to 0 W / 0 var on its own after ``setpoint_revert_s``.
* each setpoint: ``WSetEna`` = enabled, ``WSetMod`` = WATTS, ``WSet``, ``WSetRvrt`` = 0 in one write;
  ``VarSetEna``, ``VarSet`` likewise. The range check comes first and nothing is written when it fails.
* heartbeat: 715 ``ControllerHb`` += 1 (without 715: the last setpoint is written again).
* stop: 704 ``WSet`` = 0 and ``VarSet`` = 0 first (zero power at once), then 715 ``OpCtl`` = STOP, or,
  without 715, 703 ``ES`` = DISABLED (permit service off). ``resume()`` writes 715 ``OpCtl`` = START and
  703 ``ES`` = ENABLED, each where present.

Signs: 701 ``W`` is positive for generation (injection), 704 ``WSet`` positive for discharging ("may be
negative for charging"): the same as ours, so no flip unless ``power_sign = "import_positive"``. 714 DC
power and current are taken as positive out of the EV battery (into the converter), like a PV port.
"""

from __future__ import annotations

import asyncio
import math

from drivers.capabilities import PowerStageRatings, PowerStageReading
from drivers.config import DeviceConfig
from drivers.errors import DriverError, where
from drivers.poll import Block, PolledDevice, coalesce
from drivers.sunspec import models as ssm
from drivers.sunspec.device import ModelValues, SunSpecDevice
from drivers.sunspec.discovery import ModelInstance
from drivers.transport import MAX_READ, DeviceLink
from drivers.values import FrozenDetector, Registers

MEASURE_MODELS = (701, 103, 102, 101)
# Read on every poll where present: storage capacity (SoC), DC ports, heartbeats, the EV battery,
# and the legacy storage model (its ChaState is the SoC of a device without 713/802).
FAST_EXTRA = (713, 714, 715, 802, 124)
ENABLED = 1
WSET_MOD_WATTS = 1
VARSET_MOD_VARS = 4
OPCTL_STOP, OPCTL_START = 0, 1
HB_WRAP = 0xFFFFFFFE  # uint32 not-implemented value is 0xFFFFFFFF: the counter never sends it


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def _min(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


class SunSpecPowerStage(PolledDevice[PowerStageReading]):
    """A SunSpec DER (the charger's power stage) serving the ``PowerStage`` capability."""

    def __init__(self, name: str, link: DeviceLink, config: DeviceConfig) -> None:
        super().__init__(name, link, config)
        self.device = SunSpecDevice(link, config.sunspec_base)
        self._p_sign = -1.0 if config.power_sign == "import_positive" else 1.0
        self._q_sign = -1.0 if config.q_sign == "absorption_positive" else 1.0
        self.measure: ModelInstance | None = None
        self._fast: list[tuple[int, int]] = []
        self._fast_models: list[ModelInstance] = []
        self._ratings: PowerStageRatings | None = None
        self._ctl: ModelValues | None = None  # last read of 704
        self._armed = False
        self._hb = 0
        self._last_setpoint: tuple[float, float] | None = None
        self._frozen = FrozenDetector(config.frozen_after_s)
        self._write_lock = asyncio.Lock()

    # --- setup and refresh ---------------------------------------------------------------------------

    async def setup(self) -> None:
        await self.device.discover()
        self.measure = self.device.require(*MEASURE_MODELS)
        models = [self.measure] + [i for m in FAST_EXTRA if (i := self.device.instance(m)) is not None]
        ranges = []
        for inst in models:
            mv = await self.device.read_model(inst)  # fixes the layout (repeating groups) once
            addr, count = self._fast_span(inst, mv)
            ranges.append((addr, count))
        self._fast = coalesce(ranges)
        self._fast_models = models
        await self.refresh()

    def _fast_span(self, inst: ModelInstance, mv: ModelValues) -> tuple[int, int]:
        if inst.id == 701:
            # Through Tmp_SF: every measurement and its scale factor, without the 32-register alarm text.
            return self.device.span(inst, "Tmp_SF")
        count = inst.length + 2
        if count > MAX_READ:
            raise DriverError(
                f"{where(self.name, inst.start)}: model {inst.id} is {count} registers, more than one read "
                f"({MAX_READ}); its scale factors could not come with its values",
                kind="unsupported",
                retryable=False,
                device=self.name,
                register=inst.start,
            )
        return inst.start, count

    async def refresh(self) -> None:
        rated = self.device.instance(702) or self.device.instance(120)
        if rated is not None:
            mv = await self.device.read_model(rated)
            self._ratings = self._decode_ratings(mv)
        ctl = self.device.instance(704)
        if ctl is not None:
            self._ctl = await self.device.read_model(ctl)
            if self._armed and not self._still_armed(self._ctl):
                self._armed = False  # the device lost its reversion settings (a restart): arm again

    def _still_armed(self, c: ModelValues) -> bool:
        return c.raw("WSetRvrtTms") == self.config.setpoint_revert_s and c.raw("WSetEnaRvrt") == ENABLED

    def _decode_ratings(self, m: ModelValues) -> PowerStageRatings | None:
        if m.instance.id == 120:
            p_max = m.value("WRtg")
            if p_max is None:
                return None
            q1, q4 = m.value("VArRtgQ1"), m.value("VArRtgQ4")
            return PowerStageRatings(
                t_s=m.t_s,
                p_max_export_w=min(p_max, _first(m.value("MaxDisChaRte"), p_max) or 0.0),
                p_max_charge_w=_first(m.value("MaxChaRte"), p_max) or 0.0,
                s_max_va=m.value("VARtg"),
                q_max_inject_var=None if q1 is None else abs(q1),
                q_max_absorb_var=None if q4 is None else abs(q4),
            )
        p_max = m.value("WMaxRtg")
        if p_max is None:
            return None
        charge = m.value("WChaRteMax")
        if charge is None:
            charge = m.value("WChaRteMaxRtg")
        return PowerStageRatings(
            t_s=m.t_s,
            p_max_export_w=min(
                v
                for v in (p_max, m.value("WMax"), m.value("WDisChaRteMax"), m.value("WDisChaRteMaxRtg"))
                if v is not None
            ),
            p_max_charge_w=p_max if charge is None else charge,
            s_max_va=_min(m.value("VAMaxRtg"), m.value("VAMax")),
            q_max_inject_var=_min(m.value("VarMaxInjRtg"), m.value("VarMaxInj")),
            q_max_absorb_var=_min(m.value("VarMaxAbsRtg"), m.value("VarMaxAbs")),
            v_nominal_v=_first(m.value("VNom"), m.value("VNomRtg")),
        )

    def plan(self) -> list[Block]:
        blocks = [Block(f"fast {a}", 3, a, n, self.config.poll_s) for a, n in self._fast]
        for mid in (702, 120, 704):
            inst = self.device.instance(mid)
            if inst is not None:
                for off in range(0, inst.length + 2, MAX_READ):
                    n = min(MAX_READ, inst.length + 2 - off)
                    blocks.append(Block(f"model {mid}", 3, inst.start + off, n, self.config.slow_poll_s))
        return blocks

    def ratings(self) -> PowerStageRatings | None:
        return self._ratings

    # --- read ----------------------------------------------------------------------------------------

    async def _read(self) -> PowerStageReading:
        blocks: list[Registers] = []
        for addr, count in self._fast:
            blocks.append(await self.link.read(addr, count, what="measurements"))
        decoded: dict[int, ModelValues] = {}
        for inst in self._fast_models:
            block = next(b for b in blocks if b.address <= inst.start < b.address + len(b.values))
            decoded.setdefault(inst.id, self.device.decode_block(inst, block))
        # The reading's time is that of its oldest request: no value is younger than it claims.
        return self._decode(decoded, min(b.t_s for b in blocks))

    def _decode(self, d: dict[int, ModelValues], t_s: float) -> PowerStageReading:
        ps, qs = self._p_sign, self._q_sign
        m = next(d[i] for i in MEASURE_MODELS if i in d)
        legacy = m.instance.id != 701
        w = m.value("W")
        if w is None:
            addr = m.instance.start + m.layout["W"].offset
            raise DriverError(
                f"{where(self.name, addr, what='W')}: active power is not implemented or W_SF is absent",
                kind="garbage",
                retryable=True,
                device=self.name,
                register=addr,
            )
        p = ps * w
        q = m.value("VAr" if legacy else "Var")
        pf = m.value("PF")
        if pf is not None:
            pf = math.copysign(min(1.0, abs(pf) / (100.0 if legacy else 1.0)), p)
        dc_v = dc_a = dc_w = None
        if 714 in d and isinstance(nprt := d[714].raw("NPrt"), int) and nprt >= 1:
            dc = d[714]
            dc_v, dc_a, dc_w = dc.value("Prt[0].DCV"), dc.value("Prt[0].DCA"), dc.value("Prt[0].DCW")
        elif legacy:
            dc_v, dc_a, dc_w = m.value("DCV"), m.value("DCA"), m.value("DCW")
        soc = None
        ev_state = ev_chg = ev_dis = None
        if 802 in d:
            b = d[802]
            soc = b.value("SoC")
            ev_state = b.symbol("State")
            ev_chg, ev_dis = b.value("WChaRteMax"), b.value("WDisChaRteMax")
        if soc is None and 713 in d:
            soc = d[713].value("SoC")
        if soc is None and 124 in d:
            soc = d[124].value("ChaState")
        frozen = False
        if 715 in d:
            hb = d[715].raw("DERHb")
            if hb is not None:
                frozen = self._frozen.update(hb, t_s)
        self.link.stats.frozen = frozen
        operating = m.symbol("St" if legacy else "InvSt")
        e_inj = m.value("TotWhInj") if not legacy else m.value("WH")
        e_abs = m.value("TotWhAbs") if not legacy else None
        if ps < 0:
            e_inj, e_abs = e_abs, e_inj
        return PowerStageReading(
            t_s=t_s,
            p_w=p,
            q_var=None if q is None else qs * q,
            s_va=m.value("VA"),
            pf=pf,
            v_ac_v=m.value("PhVphA") if legacy else _first(m.value("LNV"), m.value("LLV")),
            f_hz=m.value("Hz"),
            i_ac_a=None if (a := m.value("A")) is None else abs(a),
            operating=operating,
            stopped=None if operating is None else operating == "OFF",
            connected=None if legacy or (c := m.raw("ConnSt")) is None else c == 1,
            alarms=m.flags("Evt1" if legacy else "Alrm"),
            dc_v_v=dc_v,
            dc_i_a=None if dc_a is None else ps * dc_a,
            dc_p_w=None if dc_w is None else ps * dc_w,
            ev_state=ev_state,
            ev_soc=None if soc is None else soc / 100.0,
            ev_p_max_charge_w=ev_chg,
            ev_p_max_discharge_w=ev_dis,
            e_injected_wh=e_inj,
            e_absorbed_wh=e_abs,
            frozen=frozen,
        )

    # --- write ---------------------------------------------------------------------------------------

    def _range_error(self, point: str, value: float, lo: float, hi: float, unit: str) -> DriverError:
        return DriverError(
            f"{where(self.name, None, what=point)}: setpoint {value:g} {unit} is outside the allowed range "
            f"{lo:g}..{hi:g} {unit} (from the device's ratings); nothing written",
            kind="range",
            retryable=False,
            device=self.name,
        )

    def check_setpoint(self, p_w: float, q_var: float) -> PowerStageRatings:
        """Raise DriverError (kind ``range``/``unsupported``) unless (p_w, q_var) is within the ratings."""
        r = self._ratings
        if r is None:
            raise DriverError(
                f"{where(self.name, None)}: ratings (model 702 WMaxRtg) not read yet or not implemented; "
                "no setpoint can be checked, so none is written",
                kind="unsupported",
                retryable=True,
                device=self.name,
            )
        if not math.isfinite(p_w):
            raise self._range_error("p_w", p_w, -r.p_max_charge_w, r.p_max_export_w, "W")
        if not math.isfinite(q_var):
            raise self._range_error(
                "q_var", q_var, -(r.q_max_absorb_var or 0.0), r.q_max_inject_var or 0.0, "var"
            )
        if not -r.p_max_charge_w <= p_w <= r.p_max_export_w:
            raise self._range_error("p_w", p_w, -r.p_max_charge_w, r.p_max_export_w, "W")
        q_lo, q_hi = -(r.q_max_absorb_var or 0.0), r.q_max_inject_var or 0.0
        if not q_lo <= q_var <= q_hi:
            raise self._range_error("q_var", q_var, q_lo, q_hi, "var")
        if r.s_max_va is not None and math.hypot(p_w, q_var) > r.s_max_va:
            raise self._range_error("s_va = hypot(p_w, q_var)", math.hypot(p_w, q_var), 0.0, r.s_max_va, "VA")
        return r

    def _ctl_model(self) -> ModelValues:
        if self._ctl is None:
            raise DriverError(
                f"{where(self.name, None)}: has no SunSpec model 704 (DER AC controls); it has "
                f"{list(self.device.map.ids) if self.device.map else []}: setpoints cannot be written",
                kind="unsupported",
                retryable=False,
                device=self.name,
            )
        return self._ctl

    def _regs(self, c: ModelValues, values: dict[str, int]) -> tuple[int, list[int]]:
        """(address, registers) of contiguous points ``values`` (raw) of model 704."""
        slots = sorted((c.layout[p] for p in values), key=lambda s: s.offset)
        regs: list[int] = []
        for s in slots:
            if s.offset != slots[0].offset + len(regs):
                raise AssertionError(f"704 points {list(values)} are not contiguous")
            regs.extend(ssm.encode(s.point, values[s.path]))
        return c.instance.start + slots[0].offset, regs

    def _raw(self, c: ModelValues, point: str, value: float, sf_point: str) -> int:
        sf = c.raw(sf_point)
        if not isinstance(sf, int) or not -10 <= sf <= 10:
            raise DriverError(
                f"{where(self.name, c.instance.start + c.layout[sf_point].offset, what=sf_point)}: scale "
                f"factor of {point} is {sf!r}, not -10..10: {point} cannot be written",
                kind="unsupported",
                retryable=False,
                device=self.name,
            )
        raw = ssm.unscale(value, sf)
        if not -(2**31) < raw < 2**31:
            raise self._range_error(point, value, -(2**31 - 1) * 10.0**sf, (2**31 - 1) * 10.0**sf, "raw")
        return raw

    def _q_supported(self, c: ModelValues) -> bool:
        sf = c.raw("VarSet_SF")
        return isinstance(sf, int) and "VarSet" in c.layout.slots

    async def _arm(self, c: ModelValues) -> None:
        n = self.config.setpoint_revert_s
        addr, regs = self._regs(c, {"WSetEnaRvrt": ENABLED, "WSetRvrtTms": n})
        await self.link.write(addr, regs, what="704 WSetEnaRvrt, WSetRvrtTms")
        if self._q_supported(c):
            addr, regs = self._regs(c, {"VarSetEnaRvrt": ENABLED, "VarSetRvrtTms": n})
            await self.link.write(addr, regs, what="704 VarSetEnaRvrt, VarSetRvrtTms")
            addr, regs = self._regs(c, {"VarSetEna": ENABLED, "VarSetMod": VARSET_MOD_VARS})
            await self.link.write(addr, regs, what="704 VarSetEna, VarSetMod")
        self._armed = True

    async def write_setpoint(self, p_w: float, q_var: float = 0.0) -> None:
        await self.ensure_setup()
        self.check_setpoint(p_w, q_var)
        c = self._ctl_model()
        q_ok = self._q_supported(c)
        if q_var != 0.0 and not q_ok:
            raise DriverError(
                f"{where(self.name, None, what='q_var')}: setpoint {q_var:g} var but model 704 has no "
                "VarSet_SF: the device takes no reactive setpoint; nothing written",
                kind="unsupported",
                retryable=False,
                device=self.name,
            )
        w_raw = self._raw(c, "WSet", self._p_sign * p_w, "WSet_SF")
        var_raw = self._raw(c, "VarSet", self._q_sign * q_var, "VarSet_SF") if q_ok else 0
        async with self._write_lock:
            if not self._armed:
                await self._arm(c)
            addr, regs = self._regs(
                c, {"WSetEna": ENABLED, "WSetMod": WSET_MOD_WATTS, "WSet": w_raw, "WSetRvrt": 0}
            )
            await self.link.write(addr, regs, what=f"704 WSet {p_w:g} W")
            if q_ok:
                addr, regs = self._regs(c, {"VarSet": var_raw, "VarSetRvrt": 0})
                await self.link.write(addr, regs, what=f"704 VarSet {q_var:g} var")
            self._last_setpoint = (p_w, q_var)

    async def heartbeat(self) -> None:
        await self.ensure_setup()
        hb = self.device.instance(715)
        if hb is None:
            if self._last_setpoint is not None:
                await self.write_setpoint(*self._last_setpoint)
            return
        self._hb = self._hb % HB_WRAP + 1
        lay = self.device.layout_of(hb)
        slot = lay["ControllerHb"]
        await self.link.write(
            hb.start + slot.offset, ssm.encode(slot.point, self._hb), what="715 ControllerHb"
        )

    async def stop(self) -> None:
        await self.ensure_setup()
        first: DriverError | None = None
        async with self._write_lock:
            steps: list[tuple[int, list[int], str]] = []
            if self._ctl is not None:
                c = self._ctl
                steps.append(
                    (*self._regs(c, {"WSetEna": ENABLED, "WSetMod": WSET_MOD_WATTS, "WSet": 0}), "704 WSet 0")
                )
                if self._q_supported(c):
                    steps.append((*self._regs(c, {"VarSet": 0}), "704 VarSet 0"))
            steps.extend(self._operation_steps(OPCTL_STOP))
            if not steps:
                raise DriverError(
                    f"{where(self.name, None)}: has none of SunSpec models 704, 715, 703: it cannot be "
                    "stopped through Modbus (the EVSE's own safety controller must)",
                    kind="unsupported",
                    retryable=False,
                    device=self.name,
                )
            for addr, regs, what in steps:
                try:
                    await self.link.write(addr, regs, what=what, urgent=True)
                except DriverError as e:
                    first = first or e
            self._last_setpoint = (0.0, 0.0)
        if first is not None:
            raise first

    async def resume(self) -> None:
        """Allow operation again: 715 ``OpCtl`` = START and 703 ``ES`` = ENABLED, each where present
        (an inverter may come back from a power cycle with either off, whichever ``stop()`` used)."""
        await self.ensure_setup()
        async with self._write_lock:
            for addr, regs, what in self._operation_steps(OPCTL_START, every=True):
                await self.link.write(addr, regs, what=what)

    def _operation_steps(self, op: int, *, every: bool = False) -> list[tuple[int, list[int], str]]:
        """The operation control writes: the first of 715 ``OpCtl`` and 703 ``ES`` present, or ``every``."""
        steps = []
        for mid, point, value in ((715, "OpCtl", op), (703, "ES", 0 if op == OPCTL_STOP else ENABLED)):
            inst = self.device.instance(mid)
            if inst is not None:
                lay = self.device.layout_of(inst)
                slot = lay[point]
                steps.append(
                    (inst.start + slot.offset, ssm.encode(slot.point, value), f"{mid} {point} {value}")
                )
                if not every:
                    break
        return steps
