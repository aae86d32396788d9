"""Bidirectional power stage over SunSpec: measure (701, 713, 714, 715, 802), rate (702), command (704).

Read side: the fast plan reads 701 through its scale factors (one request), and 713/714/715/802 where
present, coalesced into as few requests as fit. Legacy devices without 701 are read through 101-103
and rated through 120. Ratings (702) and the control model (704, for its scale factors and the
reversion settings) are re-read every ``slow_poll_s``.

Write side, 704 (or, on a legacy device without 704, 123/124: :mod:`drivers.sunspec.legacy`), every
write through the checked path of :mod:`drivers.sunspec.write`:

* arming, the settings the set points rely on: ``WSetRvrt`` = 0 W, ``WSetEnaRvrt`` = enabled,
  ``WSetRvrtTms`` = ``setpoint_revert_s``, ``WSetEna`` = enabled, ``WSetMod`` = WATTS; likewise
  ``VarSetRvrt`` = 0, ``VarSetEnaRvrt``, ``VarSetRvrtTms``, ``VarSetEna``, ``VarSetMod`` = VARS. Written
  on change only and read back before the first non-zero set point; done again after a read timeout or
  disconnect, after the DER heartbeat (715 ``DERHb``) went backwards (a restart), or when a refresh of
  704 finds a setting changed. If the daemon stops writing, the inverter falls back to 0 W / 0 var on
  its own after ``setpoint_revert_s``.
* each set point: ``WSet`` and ``VarSet``, one request each, no read-back. The range check comes first
  and nothing is written when it fails.
* the safe command, ``write_setpoint(0, 0)`` and ``stop()``: 0 W / 0 var at once, bypassing the
  device's back-off and never waiting for reads or arming.
* heartbeat: 715 ``ControllerHb`` += 1 (without 715: the last setpoint is written again).
* stop: 704 ``WSet`` = 0 and ``VarSet`` = 0 first (zero power at once), then 715 ``OpCtl`` = STOP, or,
  without 715, 703 ``ES`` = DISABLED (permit service off), or, with neither, 123 ``Conn`` = DISCONNECT.
  ``resume()`` writes 715 ``OpCtl`` = START, 703 ``ES`` = ENABLED and 123 ``Conn`` = CONNECT, each where
  present.
* the inverter's own grid functions: ``configure_functions`` (:mod:`drivers.sunspec.functions`); a
  report that is not ok is published as ``config_problem``.

Signs: 701 ``W`` is positive for generation (injection), 704 ``WSet`` positive for discharging ("may be
negative for charging"): the same as ours, so no flip unless ``power_sign = "import_positive"``. 714 DC
power and current are taken as positive out of the EV battery (into the converter), like a PV port.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math

from drivers.capabilities import PowerStageRatings, PowerStageReading
from drivers.config import DeviceConfig
from drivers.errors import DriverError, where
from drivers.poll import Block, PolledDevice, coalesce
from drivers.sunspec.device import ModelValues, SunSpecDevice
from drivers.sunspec.discovery import ModelInstance
from drivers.sunspec.functions import VARSET_MOD_VARS, FunctionsConfigurator, FunctionsPlan, FunctionsReport
from drivers.sunspec.legacy import LEGACY_READ, LegacyControls, Write
from drivers.sunspec.write import CheckedWriter
from drivers.transport import MAX_READ, DeviceLink
from drivers.values import FrozenDetector, Registers

log = logging.getLogger(__name__)

MEASURE_MODELS = (701, 103, 102, 101)
# Read on every poll where present: storage capacity (SoC), DC ports, heartbeats, the EV battery,
# and the legacy storage model (its ChaState is the SoC of a device without 713/802).
FAST_EXTRA = (713, 714, 715, 802, 124)
ENABLED = 1
WSET_MOD_WATTS = 1
OPCTL_STOP, OPCTL_START = 0, 1
# Read failures after which the device may come back as another (restarted, reconnected) one.
CONTACT_LOST = frozenset({"timeout", "disconnected"})
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
        self.writer = CheckedWriter(self.device, name)
        self.legacy = LegacyControls(name, config.setpoint_revert_s)  # used when 704 is absent
        self._armed = False  # reversion and modes verified (read back) since the last contact loss
        self._stale = False  # contact lost or a restart seen: the device's settings are unknown
        self._safe_sent = False  # the modes went out with a safe command since the last contact loss
        self._der_hb: int | None = None
        self._functions_plan: FunctionsPlan | None = None
        self._q_dropped = False  # a reactive set point is being dropped (logged once per episode)
        self._functions_report: FunctionsReport | None = None
        self._functions_stale = False  # contact lost since the functions were last verified
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
            if rated.id == 120:
                self.legacy.models[120] = mv
        ctl = self.device.instance(704)
        if ctl is not None:
            self._ctl = await self.device.read_model(ctl)
            self.writer.observe(self._ctl)
            if self._armed and not self.writer.unchanged(self._ctl, self._arm_values(self._ctl)):
                self._armed = False  # the device lost its reversion settings (a restart): arm again
                # A restart the link did not notice (a gateway kept the session, no 715 heartbeat
                # counter) may also have brought back factory curves: what it holds is unknown.
                self._contact_lost()
            return
        for mid in LEGACY_READ[1:]:
            inst = self.device.instance(mid)
            if inst is not None:
                mv = await self.device.read_model(inst)
                self.legacy.models[mid] = mv
                self.writer.observe(mv)
        if self._armed and not all(self.writer.unchanged(w.model, w.values) for w in self.legacy.arm()):
            self._armed = False  # a mode or a reversion time no longer holds (a restart): arm again
            self._contact_lost()

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
        slow = (702, 120, 704) if self.device.instance(704) else (702, *LEGACY_READ)
        for mid in slow:
            inst = self.device.instance(mid)
            if inst is not None:
                for off in range(0, inst.length + 2, MAX_READ):
                    n = min(MAX_READ, inst.length + 2 - off)
                    blocks.append(Block(f"model {mid}", 3, inst.start + off, n, self.config.slow_poll_s))
        return blocks

    def ratings(self) -> PowerStageRatings | None:
        r = self._ratings
        if r is None or self._ctl is None:
            return r
        # asked each time: the functions plan (a reactive mode of the inverter's own) can change
        return dataclasses.replace(r, q_setpoints=self._q_setpoints(self._ctl))

    # --- read ----------------------------------------------------------------------------------------

    async def _read(self) -> PowerStageReading:
        blocks: list[Registers] = []
        try:
            for addr, count in self._fast:
                blocks.append(await self.link.read(addr, count, what="measurements"))
        except DriverError as e:
            if e.kind in CONTACT_LOST:
                self._contact_lost()
            raise
        decoded: dict[int, ModelValues] = {}
        for inst in self._fast_models:
            block = next(b for b in blocks if b.address <= inst.start < b.address + len(b.values))
            decoded.setdefault(inst.id, self.device.decode_block(inst, block))
        # The reading's time is that of its oldest request: no value is younger than it claims.
        reading = self._decode(decoded, min(b.t_s for b in blocks))
        if self._functions_plan is not None and self._functions_stale:
            # Back in contact (or restarted): the functions are verified again before this reading
            # is published, so that its config_problem is the device's present state.
            await self.configure_functions(self._functions_plan)
            reading = dataclasses.replace(reading, config_problem=self.config_problem())
        return reading

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
                if isinstance(hb, int):
                    if self._der_hb is not None and hb < self._der_hb and self._der_hb - hb < HB_WRAP // 2:
                        self._contact_lost()  # the DER's heartbeat went back: it restarted
                    self._der_hb = hb
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
            config_problem=self.config_problem(),
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
        # A set point computed at the rating (P = sqrt(S^2 - Q^2), the kernels' way) may come back
        # from hypot one rounding above it: that is the rating, not beyond it.
        if r.s_max_va is not None and math.hypot(p_w, q_var) > r.s_max_va * (1.0 + 1e-12):
            raise self._range_error("s_va = hypot(p_w, q_var)", math.hypot(p_w, q_var), 0.0, r.s_max_va, "VA")
        return r

    def _ctl_model(self) -> ModelValues:
        if self._ctl is None:
            raise DriverError(
                f"{where(self.name, None)}: has no SunSpec model 704 (DER AC controls) nor 123/124 (legacy "
                f"controls); it has {list(self.device.map.ids) if self.device.map else []}: setpoints "
                "cannot be written",
                kind="unsupported",
                retryable=False,
                device=self.name,
            )
        return self._ctl

    def _model(self, model_id: int) -> ModelValues | None:
        """Model ``model_id`` for the write path: its layout (and no values: only its points' types count)."""
        inst = self.device.instance(model_id)
        if inst is None:
            return None
        return ModelValues(self.device.layout_of(inst), inst, (), 0.0)

    def _q_supported(self, c: ModelValues) -> bool:
        sf = c.raw("VarSet_SF")
        return isinstance(sf, int) and "VarSet" in c.layout.slots

    def _inverter_reactive(self) -> str | None:
        """The reactive mode the inverter runs itself (its functions plan): 704 VarSet* is then the
        functions' (VarSetEna off, or constant var in VarSetPct), not the set points' channel."""
        return None if self._functions_plan is None else self._functions_plan.inverter_reactive

    def _q_setpoints(self, c: ModelValues) -> bool:
        """Reactive set points go out through 704 VarSet (armed, reverting to 0 var)."""
        return self._q_supported(c) and self._inverter_reactive() is None

    def _arm_values(self, c: ModelValues) -> dict[str, float]:
        """The reversion settings and the setpoint modes (the "last mode") the set points rely on."""
        n = float(self.config.setpoint_revert_s)
        values = {
            "WSetRvrt": 0.0,
            "WSetEnaRvrt": ENABLED,
            "WSetRvrtTms": n,
            "WSetEna": ENABLED,
            "WSetMod": WSET_MOD_WATTS,
        }
        if self._q_setpoints(c):
            values.update(
                {
                    "VarSetRvrt": 0.0,
                    "VarSetEnaRvrt": ENABLED,
                    "VarSetRvrtTms": n,
                    "VarSetEna": ENABLED,
                    "VarSetMod": VARSET_MOD_VARS,
                }
            )
        return values

    def _contact_lost(self) -> None:
        """The device may have restarted or the connection was re-made: what it holds is unknown."""
        self._stale = True
        self._functions_stale = True

    # --- the inverter's own grid functions ---------------------------------------------------------

    async def configure_functions(self, plan: FunctionsPlan) -> FunctionsReport:
        """Write the inverter-owned functions of ``plan`` (adopt protocol), disable the others, read
        every point back. Kept and done again with the first reading after a contact loss or restart;
        ``config_problem`` in each reading says what does not read back as commissioned."""
        await self.ensure_setup()
        self._set_plan(plan)
        self._take_stale()
        self._functions_stale = False
        configurator = FunctionsConfigurator(self.device, self.writer, clock=self.clock)
        report = await configurator.apply(plan)
        self._functions_report = report
        if configurator.contact_failed:
            self._functions_stale = True  # not all of it was read: try again with the next reading
        return report

    def use_functions(self, plan: FunctionsPlan) -> None:
        """Have ``plan`` configured and verified by the next reading, before that reading is
        published (so no reading says "not verified" while it is being done, and none goes out
        before it was done: the daemon calls this before polling starts)."""
        self._set_plan(plan)
        self._functions_stale = True

    def _set_plan(self, plan: FunctionsPlan) -> None:
        if self._functions_plan is not None and plan.inverter_reactive != self._inverter_reactive():
            self._armed = False  # the set points' reactive channel changed hands: arm again
        self._functions_plan = plan

    def config_problem(self) -> str | None:
        """What the reading's ``config_problem`` says (see :class:`PowerStageReading`)."""
        if self._ctl is None and self.legacy.present and not self.config.legacy_reversion_safe:
            # Without 704 nothing makes the device revert to 0 W if the daemon dies (docs/safety.md).
            return (
                "SunSpec 123/124 only: when set points stop the device reverts to its own mode, not 0 W; "
                f"check at commissioning that this mode never exports, then set "
                f"devices.{self.name}.legacy_reversion_safe = true"
            )
        if self._functions_plan is None:
            return None
        if self._functions_stale or self._functions_report is None:
            return "the inverter's grid functions are not verified since the last contact loss or restart"
        return self._functions_report.message()

    def _take_stale(self) -> None:
        if self._stale:
            self._stale = False
            self.writer.invalidate()
            self._armed = False
            self._safe_sent = False

    async def _arm(self, c: ModelValues) -> None:
        """Reversion and modes written where they differ and read back (raises on a mismatch)."""
        await self.writer.write_settings(c, self._arm_values(c))
        self._armed = True
        self._safe_sent = True

    async def write_setpoint(self, p_w: float, q_var: float = 0.0) -> None:
        """Set P and Q. A non-zero set point goes out only once reversion and the modes are verified
        (read back) since the last contact loss or restart; 0 W / 0 var (the safe command) goes out
        at once, bypassing the device's back-off, whatever the reads do."""
        await self.ensure_setup()
        safe = p_w == 0.0 and q_var == 0.0
        if not safe:
            self.check_setpoint(p_w, q_var)
        if self._ctl is None and self.legacy.present:
            await self._write_legacy(p_w, q_var)
            return
        c = self._ctl_model()
        owned = self._inverter_reactive()
        if q_var != 0.0 and owned is not None:
            # The inverter's own reactive mode owns Q: the active power still goes out (refusing the
            # whole write would leave an old export set point standing until the reversion timer).
            if not self._q_dropped:
                log.warning(
                    "%s: reactive set point %g var dropped: the inverter runs its own reactive mode (%s)",
                    where(self.name, None, what="q_var"),
                    q_var,
                    owned,
                )
            self._q_dropped = True
            q_var = 0.0
            safe = p_w == 0.0
        else:
            self._q_dropped = False
        q_ok = self._q_setpoints(c)
        if q_var != 0.0 and not q_ok:
            raise DriverError(
                f"{where(self.name, None, what='q_var')}: setpoint {q_var:g} var but model 704 has no "
                "VarSet_SF: the device takes no reactive setpoint; nothing written",
                kind="unsupported",
                retryable=False,
                device=self.name,
            )
        w = {"WSet": self._p_sign * p_w}
        var = {"VarSet": self._q_sign * q_var}
        self.writer.raw(c, "WSet", w["WSet"])  # every check before anything is written
        if q_ok:
            self.writer.raw(c, "VarSet", var["VarSet"])
        async with self._write_lock:
            self._take_stale()
            try:
                if safe:
                    await self._write_safe(c)
                else:
                    if not self._armed:
                        await self._arm(c)
                    await self.writer.write_setpoints(c, w)
                    if q_ok:
                        await self.writer.write_setpoints(c, var)
            except DriverError as e:
                if e.kind in CONTACT_LOST:
                    self._contact_lost()
                raise
            self._last_setpoint = (p_w, q_var)

    async def _write_legacy(self, p_w: float, q_var: float) -> None:
        """``write_setpoint`` on a 123/124 device: arm (on change only, read back), then the set points."""
        if q_var != 0.0:
            raise DriverError(
                f"{where(self.name, None, what='q_var')}: setpoint {q_var:g} var, but this device has only "
                "the legacy controls 123/124 and the driver writes no reactive set point to them; nothing "
                "written",
                kind="unsupported",
                retryable=False,
                device=self.name,
            )
        writes = self.legacy.setpoints(self._p_sign * p_w)
        for w in writes:  # every check before anything is written
            for path, value in w.values.items():
                self.writer.raw(w.model, path, value)
        async with self._write_lock:
            self._take_stale()
            try:
                if p_w == 0.0:
                    await self._write_safe_legacy(writes)
                else:
                    if not self._armed:
                        for w in self.legacy.arm():
                            await self.writer.write_settings(w.model, w.values)
                        self._armed = True
                        self._safe_sent = True
                    for w in writes:
                        await self.writer.write_setpoints(w.model, w.values)
            except DriverError as e:
                if e.kind in CONTACT_LOST:
                    self._contact_lost()
                raise
            self._last_setpoint = (p_w, q_var)

    async def _write_safe_legacy(self, writes: list[Write]) -> None:
        """0 W now on a 123/124 device (urgent, whatever the reads do), with the modes once per contact
        loss unless they are known to hold; every write is tried, the first error raised."""
        first: DriverError | None = None
        steps = list(writes)
        if not self._safe_sent:
            steps = [m for m in self.legacy.modes() if not self.writer.unchanged(m.model, m.values)] + steps
        for w in steps:
            try:
                await self.writer.write_setpoints(w.model, w.values, urgent=True)
            except DriverError as e:
                first = first or e
        if first is not None:
            raise first
        self._safe_sent = True

    async def _write_safe(self, c: ModelValues) -> None:
        """0 W and 0 var now. Unless the modes are known to hold, WSetEna and WSetMod go with it (once
        per contact loss: a device in back-off gets them with the first zero it takes)."""
        values: dict[str, float] = {"WSet": 0.0}
        if not self._safe_sent and not self.writer.unchanged(
            c, {"WSetEna": ENABLED, "WSetMod": WSET_MOD_WATTS}
        ):
            values = {"WSetEna": ENABLED, "WSetMod": WSET_MOD_WATTS, "WSet": 0.0}
        first: DriverError | None = None
        try:
            await self.writer.write_setpoints(c, values, urgent=True)
            self._safe_sent = True
        except DriverError as e:
            first = e
        if self._q_setpoints(c):
            try:
                await self.writer.write_setpoints(c, {"VarSet": 0.0}, urgent=True)
            except DriverError as e:
                first = first or e
        if first is not None:
            raise first

    async def heartbeat(self) -> None:
        await self.ensure_setup()
        hb = self._model(715)
        if hb is None:
            if self._last_setpoint is not None:
                await self.write_setpoint(*self._last_setpoint)
            return
        self._hb = self._hb % HB_WRAP + 1
        await self.writer.write_setpoints(hb, {"ControllerHb": self._hb})

    async def stop(self) -> None:
        await self.ensure_setup()
        first: DriverError | None = None
        async with self._write_lock:
            self._take_stale()
            steps = self._operation_steps(OPCTL_STOP)
            legacy = self._ctl is None and self.legacy.present
            if self._ctl is None and not legacy and not steps:
                raise DriverError(
                    f"{where(self.name, None)}: has none of SunSpec models 704, 123, 124, 715, 703: it cannot "
                    "be stopped through Modbus (the EVSE's own safety controller must)",
                    kind="unsupported",
                    retryable=False,
                    device=self.name,
                )
            try:
                if self._ctl is not None:
                    await self._write_safe(self._ctl)
                elif legacy:
                    await self._write_safe_legacy(self.legacy.setpoints(0.0))
            except DriverError as e:
                first = e
            for mv, values in steps:
                try:
                    await self.writer.write_setpoints(mv, values, urgent=True)
                except DriverError as e:
                    first = first or e
            self._last_setpoint = (0.0, 0.0)
        if first is not None:
            raise first

    async def resume(self) -> None:
        """Allow operation again: 715 ``OpCtl`` = START, 703 ``ES`` = ENABLED and 123 ``Conn`` = CONNECT,
        each where present (an inverter may come back from a power cycle with either off, whichever
        ``stop()`` used)."""
        await self.ensure_setup()
        async with self._write_lock:
            for mv, values in self._operation_steps(OPCTL_START, every=True):
                await self.writer.write_setpoints(mv, values)

    def _operation_steps(self, op: int, *, every: bool = False) -> list[tuple[ModelValues, dict[str, float]]]:
        """The operation commands: the first of 715 ``OpCtl``, 703 ``ES`` and 123 ``Conn`` present, or
        ``every``."""
        steps: list[tuple[ModelValues, dict[str, float]]] = []
        on = 0 if op == OPCTL_STOP else ENABLED  # 703 ES and 123 Conn: DISABLED/DISCONNECT = 0
        for mid, point, value in ((715, "OpCtl", op), (703, "ES", on), (123, "Conn", on)):
            mv = self._model(mid)
            if mv is not None:
                steps.append((mv, {point: float(value)}))
                if not every:
                    break
        return steps
