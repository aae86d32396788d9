"""The plant's devices as Modbus sees them: the power stage and the site meter as SunSpec devices, and
a vendor-map meter (SDM630-style float32 registers).

Power stage (base 40000): models 1, 701 (AC measurement), 702 (ratings and settings), 703 (enter
service: window, delay, randomized delay, ramp), 704 (AC controls: WSet/VarSet in every VarSetMod,
constant power factor PFWInj/PFWAbs, reversion timers, priorities, AntiIslEna), 705 (volt-var, 3
curves of 4 points, DeptRef, Pri, VRef, autonomous VRef), 706 (volt-watt, 3 curves of 2 points),
707/708 (LV/HV trip, 2 sets of 5 points: MustTrip acted on, MomCess ceases without a trip, MayTrip
stored), 709/710 (LF/HF trip, the same), 711 (frequency droop, 3 controls), 712 (watt-var, 3 curves of
6 points), 713 (SoC/SoH), 714 (DC port, type EV), 715 (heartbeats, OpCtl), 802 (EV battery: SoC, the
EV's charge/discharge limits, State CONNECTED/DISCONNECTED). What each point means to the stage is
in :mod:`hil.plant.stage` and docs/hil.md.
The first curve/control set of 705-712 is the active one and read-only; writing set n's index to
``AdptCrvReq``/``AdptCtlReq`` copies set n into it after ``adopt_delay_s`` (``AdptCrvRslt``: 0 in
progress, 1 completed, 2 failed when the set is out of range, its points are not monotonic or a value is
outside what the device accepts).
Injectable faults (``fail_adopt``, ``refuse_writes``, ``vv_clamp_pct``): an adopt that fails, a point
the device refuses, a curve the device clamps to its own capability when it adopts it.

Legacy power stage (``power_stage.sunspec_controls`` "123+124" or "123"): models 1, 101/103, 120, 123
(immediate controls: ``WMaxLimPct`` with its reversion timer, ``Conn``) and 124 (storage: ``StorCtl_Mod``,
``OutWRte``/``InWRte`` with their reversion timer), no 70x model.

Site meter: models 1 + 201 (single phase), 202 (split phase) or 203 (three phase); ``W`` > 0 is import
from the grid when ``meter.sign = "import_positive"`` (SunSpec meter convention), the reverse otherwise.
"""

from __future__ import annotations

import itertools
import math
import struct
from collections.abc import Callable

from pymodbus.constants import ExcCodes

from drivers.sunspec import models as ss
from hil.plant.config import PlantConfig
from hil.plant.meter import MeterReading
from hil.plant.serving import LiveRegisters, LiveSunSpecDevice
from hil.plant.stage import (
    DEPT_VA_MAX,
    PRI_ACTIVE,
    PRI_REACTIVE,
    VARSET_VARS,
    VW_DEPT_W_AVAIL,
    PowerStage,
)
from hil.sunspec_server import ModelSpec

NCRV = 3
VV_NPT = 4
VW_NPT = 2
WV_NPT = 6
TRIP_NCRV = 2
TRIP_NPT = 5
NCTL = 3
# Response times in hundredths of a second (705/706/711 RspTms_SF): 1547's Cat III droop asks 0.2 s,
# which whole seconds cannot carry.
RSP_TMS_SF = -2
RSP_TMS_SCALE = 10.0**-RSP_TMS_SF


def _ctrl_modes(*names: str) -> int:
    """702 ``CtrlModes`` with the named bits set, bit numbers from the model definition (not by hand)."""
    point = next(p for p in ss.load(702).group.points if p.name == "CtrlModes")
    return sum(1 << point.symbols[n] for n in names)


def _common(md: str, unit_id: int, sn: str) -> ModelSpec:
    return ModelSpec(
        1, values={"Mn": "v2g-edge-hil", "Md": md, "Opt": "simulated", "Vr": "1.0", "SN": sn, "DA": unit_id}
    )


class StageDevice:
    """SunSpec face of :class:`PowerStage`: client writes become settings, state becomes registers."""

    def __init__(self, cfg: PlantConfig, stage: PowerStage, clock: Callable[[], float], unit_id: int) -> None:
        self.cfg = cfg
        self.stage = stage
        self.clock = clock
        ps = cfg.power_stage
        self.v_nom = cfg.grid.v_nominal_v
        three = cfg.grid.phases == 3
        vv_curve = {}
        for c in range(NCRV):
            vv_curve.update(
                {
                    f"Crv[{c}].ActPt": VV_NPT,
                    f"Crv[{c}].DeptRef": 3,  # VA_MAX_PCT
                    f"Crv[{c}].Pri": 1,
                    f"Crv[{c}].VRef": 1000,
                    f"Crv[{c}].VRefAutoEna": 0,
                    f"Crv[{c}].RspTms": round(5 * RSP_TMS_SCALE),
                    f"Crv[{c}].ReadOnly": 1 if c == 0 else 0,
                }
            )
            for k, (v, q) in enumerate(stage.vv_curve):
                vv_curve[f"Crv[{c}].Pt[{k}].V"] = round(v * 1000)
                vv_curve[f"Crv[{c}].Pt[{k}].Var"] = round(q * 1000)
        droop = {}
        for c in range(NCTL):
            d = stage.droop
            droop.update(
                {
                    f"Ctl[{c}].DbOf": round(d.db_of_hz * 1000),
                    f"Ctl[{c}].DbUf": round(d.db_uf_hz * 1000),
                    f"Ctl[{c}].KOf": round(d.k_of * 1000),
                    f"Ctl[{c}].KUf": round(d.k_uf * 1000),
                    f"Ctl[{c}].RspTms": round(d.olrt_s * RSP_TMS_SCALE),
                    f"Ctl[{c}].PMin": round(d.p_min_pu * 100),
                    f"Ctl[{c}].ReadOnly": 1 if c == 0 else 0,
                }
            )
        models = [
            _common("sim-power-stage", unit_id, "PS-0001"),
            ModelSpec(
                701,
                values={
                    "ACType": 2 if three else 0,
                    "A_SF": -2,
                    "V_SF": -1,
                    "Hz_SF": -3,
                    "W_SF": 0,
                    "PF_SF": -3,
                    "VA_SF": 0,
                    "Var_SF": 0,
                    "TotWh_SF": 0,
                    "TotVarh_SF": 0,
                    "Tmp_SF": 0,
                },
            ),
            ModelSpec(
                702,
                values={
                    "WMaxRtg": round(ps.p_max_discharge_w),
                    "WDisChaRteMaxRtg": round(ps.p_max_discharge_w),
                    "WChaRteMaxRtg": round(ps.p_max_charge_w),
                    "VAMaxRtg": round(ps.s_max_va),
                    "VarMaxInjRtg": round(ps.q_max_var),
                    "VarMaxAbsRtg": round(ps.q_max_var),
                    "VNomRtg": round(self.v_nom * 10),
                    "VMaxRtg": round(self.v_nom * 11.5),
                    "VMinRtg": round(self.v_nom * 8.5),
                    "AMaxRtg": round(ps.s_max_va / self.v_nom / cfg.grid.phases * 100),
                    "NorOpCatRtg": 1,
                    "AbnOpCatRtg": {"I": 0, "II": 1, "III": 2}[ps.category],
                    "CtrlModes": _ctrl_modes(
                        "MAX_W",
                        "FIXED_W",
                        "FIXED_VAR",
                        "FIXED_PF",
                        "VOLT_VAR",
                        "VOLT_WATT",
                        "WATT_VAR",
                        "FREQ_WATT",
                        "LV_TRIP",
                        "HV_TRIP",
                        "LF_TRIP",
                        "HF_TRIP",
                    ),
                    "WMax": round(ps.p_max_discharge_w),
                    "VAMax": round(ps.s_max_va),
                    "VarMaxInj": round(ps.q_max_var),
                    "VarMaxAbs": round(ps.q_max_var),
                    "WChaRteMax": round(ps.p_max_charge_w),
                    "WDisChaRteMax": round(ps.p_max_discharge_w),
                    "VNom": round(self.v_nom * 10),
                    "W_SF": 0,
                    "PF_SF": -3,
                    "VA_SF": 0,
                    "Var_SF": 0,
                    "V_SF": -1,
                    "A_SF": -2,
                    "S_SF": 0,
                },
            ),
            ModelSpec(
                703,
                values={
                    "ES": 1,
                    "ESVHi": round(stage.es_v_band_pu[1] * 1000),
                    "ESVLo": round(stage.es_v_band_pu[0] * 1000),
                    "ESHzHi": round(stage.es_f_band_hz[1] * 100),
                    "ESHzLo": round(stage.es_f_band_hz[0] * 100),
                    "ESDlyTms": round(ps.es_delay_s),
                    "ESRndTms": round(ps.es_rnd_s),
                    "ESRmpTms": round(ps.es_ramp_s),
                    "ESDlyRemTms": 0,
                    "V_SF": -1,
                    "Hz_SF": -2,
                },
            ),
            ModelSpec(
                704,
                values={
                    "PFWInjEna": 0,
                    "PFWAbsEna": 0,
                    "WMaxLimPctEna": 0,
                    "WMaxLimPct": 1000,
                    "WMaxLimPctRvrt": 1000,
                    "WMaxLimPctEnaRvrt": 0,
                    "WMaxLimPctRvrtTms": 0,
                    "WSetEna": 0,
                    "WSetMod": 1,
                    "WSet": 0,
                    "WSetRvrt": round(ps.wset_rvrt_w),
                    "WSetPct": 0,
                    "WSetPctRvrt": 0,
                    "WSetEnaRvrt": 1,
                    "WSetRvrtTms": round(ps.wset_rvrt_tms_s),
                    "WSetRvrtRem": 0,
                    "VarSetEna": 0,
                    "VarSetMod": 4,
                    "VarSetPri": 0,
                    "VarSet": 0,
                    "VarSetRvrt": 0,
                    "VarSetPct": 0,
                    "VarSetPctRvrt": 0,
                    "VarSetEnaRvrt": 1,
                    "VarSetRvrtTms": 0,
                    "VarSetRvrtRem": 0,
                    "AntiIslEna": 1 if ps.anti_islanding else 0,
                    "PF_SF": -3,
                    "WMaxLimPct_SF": -1,
                    "WSet_SF": 0,
                    "WSetPct_SF": -1,
                    "VarSet_SF": 0,
                    "VarSetPct_SF": -1,
                    "PFWInj.PF": 1000,
                    "PFWInj.Ext": 0,
                    "PFWAbs.PF": 1000,
                    "PFWAbs.Ext": 0,
                },
            ),
            ModelSpec(
                705,
                counts={"NCrv": NCRV, "NPt": VV_NPT},
                values={
                    "Ena": 1 if stage.vv_ena else 0,
                    "AdptCrvReq": 0,
                    "AdptCrvRslt": 1,
                    "NPt": VV_NPT,
                    "NCrv": NCRV,
                    "RvrtTms": 0,
                    "RvrtRem": 0,
                    "RvrtCrv": 0,
                    "V_SF": -1,
                    "DeptRef_SF": -1,
                    "RspTms_SF": RSP_TMS_SF,
                    **vv_curve,
                },
            ),
            ModelSpec(
                706,
                counts={"NCrv": NCRV, "NPt": VW_NPT},
                values={
                    "Ena": 1 if stage.vw_ena else 0,
                    "AdptCrvReq": 0,
                    "AdptCrvRslt": 1,
                    "NPt": VW_NPT,
                    "NCrv": NCRV,
                    "RvrtTms": 0,
                    "RvrtRem": 0,
                    "RvrtCrv": 0,
                    "V_SF": -1,
                    "DeptRef_SF": -1,
                    "RspTms_SF": RSP_TMS_SF,
                    **self._curves(
                        stage.vw_curve,
                        "V",
                        "W",
                        {"DeptRef": 0, "RspTms": round(stage.vw_olrt_s * RSP_TMS_SCALE)},
                    ),
                },
            ),
            *(self._trip_model(mid, stage) for mid in (707, 708, 709, 710)),
            ModelSpec(
                711,
                counts={"NCtl": NCTL},
                values={
                    "Ena": 1 if stage.droop_ena else 0,
                    "AdptCtlReq": 0,
                    "AdptCtlRslt": 1,
                    "NCtl": NCTL,
                    "RvrtTms": 0,
                    "RvrtRem": 0,
                    "RvrtCtl": 0,
                    "Db_SF": -3,
                    "K_SF": -3,
                    "RspTms_SF": RSP_TMS_SF,
                    **droop,
                },
            ),
            ModelSpec(
                712,
                counts={"NCrv": NCRV, "NPt": WV_NPT},
                values={
                    "Ena": 1 if stage.wv_ena else 0,
                    "AdptCrvReq": 0,
                    "AdptCrvRslt": 1,
                    "NPt": WV_NPT,
                    "NCrv": NCRV,
                    "RvrtTms": 0,
                    "RvrtRem": 0,
                    "RvrtCrv": 0,
                    "W_SF": -1,
                    "DeptRef_SF": -1,
                    **self._curves(stage.wv_curve, "W", "Var", {"DeptRef": DEPT_VA_MAX, "Pri": 1}),
                },
            ),
            ModelSpec(
                713,
                values={
                    "WHRtg": round(cfg.ev.capacity_kwh * 100),
                    "WH_SF": 1,
                    "Pct_SF": -1,
                    "SoH": 1000,
                    "Sta": 0,
                },
            ),
            ModelSpec(
                714,
                counts={"NPrt": 1},
                values={
                    "NPrt": 1,
                    "DCA_SF": -1,
                    "DCV_SF": -1,
                    "DCW_SF": 0,
                    "DCWH_SF": 0,
                    "Tmp_SF": 0,
                    "Prt[0].PrtTyp": 2,  # EV
                    "Prt[0].ID": 1,
                    "Prt[0].IDStr": "EV",
                },
            ),
            ModelSpec(
                715, values={"LocRemCtl": 0, "DERHb": 0, "ControllerHb": 0, "AlarmReset": 0, "OpCtl": 1}
            ),
            ModelSpec(
                802,
                values={
                    "AHRtg": 150,
                    "WHRtg": round(cfg.ev.capacity_kwh * 100),
                    "WChaRteMax": round(cfg.ev.max_charge_w),
                    "WDisChaRteMax": round(cfg.ev.max_discharge_w),
                    "SoCMax": round(cfg.ev.soc_max * 1000),
                    "SoCMin": round(cfg.ev.soc_min * 1000),
                    "SoC": round(cfg.ev.soc * 1000),
                    "ChaSt": 6,
                    "LocRemCtl": 0,
                    "Typ": 4,
                    "State": 3 if cfg.ev.plugged else 1,
                    "Evt1": 0,
                    "Evt2": 0,
                    "V": 0,
                    "A": 0,
                    "W": 0,
                    "SetOp": 1,
                    "SetInvState": 3,
                    "AHRtg_SF": 0,
                    "WHRtg_SF": 1,
                    "WChaDisChaMax_SF": 0,
                    "SoC_SF": -1,
                    "V_SF": -1,
                    "A_SF": -1,
                    "W_SF": 0,
                },
            ),
        ]
        self.dev = LiveSunSpecDevice(unit_id, models)
        for mid in (705, 706, 707, 708, 709, 710, 712):
            self.dev.protect(mid, "Crv[0].")
        self.dev.protect(711, "Ctl[0].")
        self.dev.live.hooks.append(self._on_write)
        self._pending: list[tuple[float, int, int]] = []  # (due, model, index)
        self._e_inj = 0.0
        self._e_abs = 0.0
        self._last_hb_s = 0.0
        self.log: list[str] = []
        # Faults a test can inject, as a real inverter shows them: adopt requests of these models
        # fail (AdptCrvRslt FAILED); writes to these (model, point) are refused (exception 3, e.g. a
        # function the installer locked); volt-var reactive points beyond this percentage are clamped
        # when a curve is adopted (a device with less reactive capability than the settings ask).
        self.fail_adopt: set[int] = set()
        self.refuse_writes: set[tuple[int, str]] = set()
        self.vv_clamp_pct: float | None = None
        self._power_on_regs = list(self.dev.live.regs)

    def power_on(self, t_s: float, *, stopped: bool, es_disabled: bool) -> None:
        """Start again after a power cycle: the volatile models (704 controls, 715 heartbeats and
        OpCtl) hold their power-on registers, 715 ``OpCtl`` and 703 ``ES`` say whether it waits for a
        start command or a permit; adopt requests in progress are lost."""
        live = self.dev.live
        for lay, start in self.dev.image.layouts:
            if lay.model.id in (704, 715):
                off = start - live.base
                live.regs[off : off + lay.length + 2] = self._power_on_regs[off : off + lay.length + 2]
        self.dev.set_raw(715, "OpCtl", 0 if stopped else 1)
        self.dev.set_raw(703, "ES", 0 if es_disabled else 1)
        self._pending.clear()
        self._last_hb_s = t_s
        self.stage.power_on(t_s, stopped=stopped, es_disabled=es_disabled)

    @property
    def vw_ena(self) -> bool:
        """706 enabled (the stage's own volt-watt)."""
        return self.stage.vw_ena

    # --- model building --------------------------------------------------------------------------

    @staticmethod
    def _curves(
        points: list[tuple[float, float]], x: str, y: str, extra: dict[str, int]
    ) -> dict[str, int | float | str | None]:
        """Every curve set of a 706/712 model holding ``points`` (per unit, as percentages with SF -1)."""
        vals: dict[str, int | float | str | None] = {}
        for c in range(NCRV):
            vals[f"Crv[{c}].ActPt"] = len(points)
            vals[f"Crv[{c}].ReadOnly"] = 1 if c == 0 else 0
            for name, raw in extra.items():
                vals[f"Crv[{c}].{name}"] = raw
            for k, (a, b) in enumerate(points):
                vals[f"Crv[{c}].Pt[{k}].{x}"] = round(a * 1000)
                vals[f"Crv[{c}].Pt[{k}].{y}"] = round(b * 1000)
        return vals

    def _trip_model(self, mid: int, stage: PowerStage) -> ModelSpec:
        curve = {707: stage.lv, 708: stage.hv, 709: stage.lf, 710: stage.hf}[mid]
        mc = {707: stage.mc_lv, 708: stage.mc_hv, 709: stage.mc_lf, 710: stage.mc_hf}[mid]
        is_v = mid in (707, 708)
        vals: dict[str, int | float | str | None] = {
            "Ena": 1 if curve.enabled else 0,
            "AdptCrvReq": 0,
            "AdptCrvRslt": 1,
            "NPt": TRIP_NPT,
            "NCrvSet": TRIP_NCRV,
            "Tms_SF": -2,
        }
        vals["V_SF" if is_v else "Hz_SF"] = -1 if is_v else -2
        x = "V" if is_v else "Hz"
        for c in range(TRIP_NCRV):
            vals[f"Crv[{c}].ReadOnly"] = 1 if c == 0 else 0
            vals[f"Crv[{c}].MustTrip.ActPt"] = len(curve.points)
            for k, (thr, t) in enumerate(curve.points):
                vals[f"Crv[{c}].MustTrip.Pt[{k}].{x}"] = round(thr * 1000) if is_v else round(thr * 100)
                vals[f"Crv[{c}].MustTrip.Pt[{k}].Tms"] = round(t * 100)
            vals[f"Crv[{c}].MayTrip.ActPt"] = 0
            vals[f"Crv[{c}].MomCess.ActPt"] = len(mc.points)
            for k, (thr, t) in enumerate(mc.points):
                vals[f"Crv[{c}].MomCess.Pt[{k}].{x}"] = round(thr * 1000) if is_v else round(thr * 100)
                vals[f"Crv[{c}].MomCess.Pt[{k}].Tms"] = round(t * 100)
        return ModelSpec(mid, counts={"NCrvSet": TRIP_NCRV, "NPt": TRIP_NPT}, values=vals)

    # --- client writes ---------------------------------------------------------------------------

    def _refuse(self, what: str) -> ExcCodes:
        self.log.append(what)
        return ExcCodes.ILLEGAL_VALUE

    def _on_write(self, address: int, values: list[int]) -> ExcCodes | None:
        now = self.clock()
        st = self.stage
        changes = self.dev.decode_write(address, values)
        # Validate everything first: a refused write changes nothing.
        for mid, path, raw in changes:
            if raw is None:
                continue
            if mid == 704 and path in ("WSet", "WSetRvrt"):
                w = float(raw) * 10.0 ** self.dev.sf(704, path)
                if not -st.p_max_charge_w <= w <= st.p_max_discharge_w:
                    return self._refuse(
                        f"704.{path}={w:g} W outside -{st.p_max_charge_w:g}..{st.p_max_discharge_w:g} W"
                    )
            if mid == 704 and path in ("VarSet", "VarSetRvrt"):
                q = float(raw) * 10.0 ** self.dev.sf(704, path)
                if abs(q) > st.q_max_var:
                    return self._refuse(f"704.{path}={q:g} var outside ±{st.q_max_var:g} var")
            if (mid, path) in self.refuse_writes:
                return self._refuse(f"{mid}.{path} is locked on this device")
            if path.endswith("Ena") and isinstance(raw, int) and raw not in (0, 1):
                return self._refuse(f"{mid}.{path}={raw} is not 0 or 1")
            if mid == 715 and path == "OpCtl" and raw not in (0, 1, 2, 3):
                return self._refuse(f"715.OpCtl={raw} is not 0..3")
            if mid == 704 and path == "WSetMod" and raw not in (0, 1):
                return self._refuse(f"704.WSetMod={raw} is not 0 (W_MAX_PCT) or 1 (WATTS)")
            problem = self._check(mid, path, raw)
            if problem:
                return self._refuse(problem)
        for mid, path, raw in changes:
            self._apply(now, mid, path, raw)
        return None

    def _check(self, mid: int, path: str, raw: int | float | str | None) -> str | None:
        """What the device refuses in a single point (the 704/703 settings it acts on at once)."""
        eng = self._eng(mid, path, raw)
        if mid == 704 and path in ("PFWInj.PF", "PFWAbs.PF", "PFWInjRvrt.PF", "PFWAbsRvrt.PF"):
            if not 0.0 < eng <= 1.0:
                return f"704.{path}={eng:g} outside 0..1"
        elif mid == 704 and path.endswith(".Ext") and raw not in (0, 1):
            return f"704.{path}={raw} is not 0 (OVER_EXCITED) or 1 (UNDER_EXCITED)"
        elif mid == 704 and path == "VarSetMod" and raw not in (0, 1, 2, 3, VARSET_VARS):
            return f"704.VarSetMod={raw} is not 0..4"
        elif mid == 704 and path == "VarSetPri" and raw not in (0, 1, 2):
            return f"704.VarSetPri={raw} is not 0 (ACTIVE), 1 (REACTIVE) or 2 (VENDOR)"
        elif mid == 704 and path in ("VarSetPct", "VarSetPctRvrt") and not -100.0 <= eng <= 100.0:
            return f"704.{path}={eng:g} % outside -100..100 %"
        elif mid == 703 and path in ("ESVHi", "ESVLo"):
            lo, hi = self.stage.es_v_band_pu
            lo, hi = (lo, eng / 100.0) if path == "ESVHi" else (eng / 100.0, hi)
            if not lo < 1.0 < hi:
                return f"703.{path}={eng:g} %: the window must hold nominal voltage ({lo:g}..{hi:g} p.u.)"
        elif mid == 703 and path in ("ESHzHi", "ESHzLo"):
            lo, hi = self.stage.es_f_band_hz
            lo, hi = (lo, eng) if path == "ESHzHi" else (eng, hi)
            if not lo < self.stage.f_n < hi:
                return f"703.{path}={eng:g} Hz: the window must hold nominal frequency ({lo:g}..{hi:g} Hz)"
        return None

    def _eng(self, mid: int, path: str, raw: object) -> float:
        return float(raw) * 10.0 ** self.dev.sf(mid, path) if isinstance(raw, int) else 0.0

    def _apply(self, now: float, mid: int, path: str, raw: int | float | str | None) -> None:
        st = self.stage
        if mid in (704, 715, 703, 702):
            st.touch(now)
        if mid == 704:
            if path == "WSetEna":
                st.wset_ena = raw == 1
            elif path == "WSet" and self.dev.get_raw(704, "WSetMod") == 1:
                st.set_wset(self._eng(704, path, raw), now)
            elif path == "WSetMod" and raw == 1:
                st.set_wset(self.dev.get(704, "WSet") or 0.0, now)
            elif path == "WSetPct" and self.dev.get_raw(704, "WSetMod") == 0:
                st.set_wset(self._eng(704, path, raw) / 100.0 * st.p_max_discharge_w, now)
            elif path == "WSetRvrt":
                st.wset_rvrt_w = self._eng(704, path, raw)
            elif path == "WSetRvrtTms":
                st.wset_rvrt_tms_s = float(raw or 0)
            elif path == "VarSetEna":
                st.varset_ena = raw == 1
            elif path == "VarSet":
                st.set_varset(self._eng(704, path, raw), now)
            elif path == "VarSetRvrt":
                st.varset_rvrt_var = self._eng(704, path, raw)
            elif path == "VarSetRvrtTms":
                st.varset_rvrt_tms_s = float(raw or 0)
            elif path == "VarSetMod" and isinstance(raw, int):
                st.varset_mod = raw
            elif path == "VarSetPct":
                st.set_varset_pct(self._eng(704, path, raw), now)
            elif path == "VarSetPctRvrt":
                st.varset_rvrt_pct = self._eng(704, path, raw)
            elif path == "VarSetPri":
                st.varset_pri = PRI_ACTIVE if raw == 0 else PRI_REACTIVE
            elif path == "PFWInjEna":
                st.pf_inj_ena = raw == 1
            elif path == "PFWAbsEna":
                st.pf_abs_ena = raw == 1
            elif path == "PFWInj.PF":
                st.pf_inj = self._eng(704, path, raw)
            elif path == "PFWInj.Ext":
                st.pf_inj_under = raw == 1
            elif path == "PFWAbs.PF":
                st.pf_abs = self._eng(704, path, raw)
            elif path == "PFWAbs.Ext":
                st.pf_abs_under = raw == 1
            elif path == "WMaxLimPctEna":
                st.wmax_lim_ena = raw == 1
            elif path == "WMaxLimPct":
                st.wmax_lim_pct = self._eng(704, path, raw)
            elif path == "AntiIslEna":
                st.anti_isl_ena = raw == 1
        elif mid == 715:
            if path == "OpCtl":
                st.op_start = raw in (1, 3)
        elif mid == 703:
            if path == "ES":
                st.es_permit = raw == 1
            elif path == "ESDlyTms":
                st.es_delay_s = float(raw or 0)
            elif path == "ESRmpTms":
                st.es_ramp_s = float(raw or 0)
            elif path == "ESRndTms":
                st.es_rnd_s = float(raw or 0)
            elif path == "ESVHi":
                st.es_v_band_pu = (st.es_v_band_pu[0], self._eng(703, path, raw) / 100.0)
            elif path == "ESVLo":
                st.es_v_band_pu = (self._eng(703, path, raw) / 100.0, st.es_v_band_pu[1])
            elif path == "ESHzHi":
                st.es_f_band_hz = (st.es_f_band_hz[0], self._eng(703, path, raw))
            elif path == "ESHzLo":
                st.es_f_band_hz = (self._eng(703, path, raw), st.es_f_band_hz[1])
        elif mid == 702:
            if path == "WChaRteMax" and isinstance(raw, int):
                st.p_max_charge_w = min(float(raw), self.cfg.power_stage.p_max_charge_w)
            elif path in ("WDisChaRteMax", "WMax") and isinstance(raw, int):
                st.p_max_discharge_w = min(float(raw), self.cfg.power_stage.p_max_discharge_w)
        elif mid in (705, 706, 707, 708, 709, 710, 711, 712):
            if path == "Ena":
                self._set_enable(mid, raw == 1)
            elif path in ("AdptCrvReq", "AdptCtlReq") and isinstance(raw, int) and raw > 0:
                self.dev.set_raw(mid, "AdptCtlRslt" if mid == 711 else "AdptCrvRslt", 0)
                self._pending.append((now + self.cfg.power_stage.adopt_delay_s, mid, raw))

    def _set_enable(self, mid: int, on: bool) -> None:
        st = self.stage
        if mid == 705:
            st.vv_ena = on
        elif mid == 706:
            st.vw_ena = on
        elif mid == 712:
            st.wv_ena = on
        elif mid == 711:
            st.droop_ena = on
        else:
            {707: st.lv, 708: st.hv, 709: st.lf, 710: st.hf}[mid].enabled = on

    # --- adopt protocol --------------------------------------------------------------------------

    def _rsp_tms_s(self, mid: int, group: str, default_s: float) -> float:
        """A curve's response time in seconds: 0 is a response without lag, an unset point the default."""
        value = self.dev.get(mid, group + "RspTms")
        return default_s if value is None else float(value)

    def _adopt(self, mid: int, index: int) -> bool:
        """Copy set ``index`` (1-based) into the active set; False when it does not pass the checks."""
        n = NCTL if mid == 711 else (NCRV if mid in (705, 706, 712) else TRIP_NCRV)
        if not 1 <= index <= n:
            self.log.append(f"{mid}: adopt request {index} outside 1..{n}")
            return False
        if mid in self.fail_adopt:
            self.log.append(f"{mid}: adopt request {index} failed (injected fault)")
            return False
        src, grp = index - 1, ("Ctl" if mid == 711 else "Crv")
        paths = [
            p for p in self.dev.paths(mid) if p.startswith(f"{grp}[{src}].") and not p.endswith("ReadOnly")
        ]
        st = self.stage
        if mid == 705:
            npt = int(self.dev.get_raw(705, f"Crv[{src}].ActPt") or 0)
            if not 2 <= npt <= VV_NPT:
                return False
            pts = [
                (
                    (self.dev.get(705, f"Crv[{src}].Pt[{k}].V") or 0.0) / 100.0,
                    (self.dev.get(705, f"Crv[{src}].Pt[{k}].Var") or 0.0) / 100.0,
                )
                for k in range(npt)
            ]
            if any(b[0] <= a[0] for a, b in itertools.pairwise(pts)):
                self.log.append(f"705: curve {index} voltages are not increasing: {pts}")
                return False
            g = f"Crv[{src}]."
            dept = self.dev.get_raw(705, g + "DeptRef")
            vref = (self.dev.get(705, g + "VRef") or 100.0) / 100.0
            if dept not in (0, 1, 2, 3) or not 0.95 <= vref <= 1.05:
                self.log.append(
                    f"705: curve {index} DeptRef {dept} or VRef {vref:g} p.u. outside what it accepts"
                )
                return False
            if self.vv_clamp_pct is not None:
                lim = self.vv_clamp_pct
                for k in range(npt):
                    path = f"Crv[{src}].Pt[{k}].Var"
                    q = self.dev.get(705, path) or 0.0
                    self.dev.set(705, path, min(max(q, -lim), lim))
                pts = [(v, min(max(q, -lim / 100.0), lim / 100.0)) for v, q in pts]
            st.vv_curve = pts
            st.vv_olrt_s = self._rsp_tms_s(705, g, 5.0)
            st.vv_dept_ref = int(dept)
            st.vv_pri = PRI_ACTIVE if self.dev.get_raw(705, g + "Pri") == 0 else PRI_REACTIVE
            st.vv_vref_pu = st.vv_vref_auto_pu = vref
            st.vv_vref_auto_ena = self.dev.get_raw(705, g + "VRefAutoEna") == 1
            st.vv_vref_auto_tau_s = float(self.dev.get_raw(705, g + "VRefAutoTms") or 0)
        elif mid in (706, 712):
            xy = self._xy_curve(mid, index)
            if xy is None:
                return False
            g = f"Crv[{src}]."
            if mid == 706:
                st.vw_curve = xy
                st.vw_olrt_s = self._rsp_tms_s(706, g, 10.0)
                st.vw_dept_ref = VW_DEPT_W_AVAIL if self.dev.get_raw(706, g + "DeptRef") == 1 else 0
            else:
                st.wv_curve = xy
                st.wv_dept_ref = int(self.dev.get_raw(712, g + "DeptRef") or 0)
                st.wv_pri = PRI_ACTIVE if self.dev.get_raw(712, g + "Pri") == 0 else PRI_REACTIVE
        elif mid == 711:
            g = f"Ctl[{src}]."
            k_of = self.dev.get(711, g + "KOf") or 0.0
            k_uf = self.dev.get(711, g + "KUf") or 0.0
            if k_of <= 0 or k_uf <= 0:
                return False
            d = st.droop
            d.db_of_hz = self.dev.get(711, g + "DbOf") or 0.0
            d.db_uf_hz = self.dev.get(711, g + "DbUf") or 0.0
            d.k_of, d.k_uf = k_of, k_uf
            d.olrt_s = self._rsp_tms_s(711, g, 5.0)
            d.p_min_pu = (self.dev.get(711, g + "PMin") or -100.0) / 100.0
        else:
            is_v = mid in (707, 708)
            x = "V" if is_v else "Hz"
            npt = int(self.dev.get_raw(mid, f"Crv[{src}].MustTrip.ActPt") or 0)
            if not 1 <= npt <= TRIP_NPT:
                return False
            pts = []
            for k in range(npt):
                thr = self.dev.get(mid, f"Crv[{src}].MustTrip.Pt[{k}].{x}") or 0.0
                t = self.dev.get(mid, f"Crv[{src}].MustTrip.Pt[{k}].Tms") or 0.0
                pts.append((thr / 100.0 if is_v else thr, t))
            curve = {707: st.lv, 708: st.hv, 709: st.lf, 710: st.hf}[mid]
            mc = {707: st.mc_lv, 708: st.mc_hv, 709: st.mc_lf, 710: st.mc_hf}[mid]
            region = {707: "LV", 708: "HV", 709: "LF", 710: "HF"}[mid]
            mc_pts = self._trip_points(mid, f"Crv[{src}].MomCess", x, is_v)
            may_pts = self._trip_points(mid, f"Crv[{src}].MayTrip", x, is_v)
            if mc_pts is None or may_pts is None:
                return False
            curve.points = pts
            curve.reset()
            mc.points = mc_pts
            mc.reset()
            st.may_trip[region] = may_pts
        for p in paths:
            self.dev.set_raw(mid, p.replace(f"{grp}[{src}].", f"{grp}[0].", 1), self.dev.get_raw(mid, p))
        return True

    def _xy_curve(self, mid: int, index: int) -> list[tuple[float, float]] | None:
        """A 706 (V, W) or 712 (W, Var) curve set as per-unit points, or None when it is not valid:
        2..NPt points, x strictly increasing, y within -100..100 %, DeptRef one the model defines."""
        src = index - 1
        x, y, most, depts = ("V", "W", VW_NPT, (0, 1)) if mid == 706 else ("W", "Var", WV_NPT, (0, 1, 2, 3))
        npt = int(self.dev.get_raw(mid, f"Crv[{src}].ActPt") or 0)
        if not 2 <= npt <= most or self.dev.get_raw(mid, f"Crv[{src}].DeptRef") not in depts:
            self.log.append(f"{mid}: curve {index} has {npt} points or an unknown DeptRef")
            return None
        pts = [
            (
                (self.dev.get(mid, f"Crv[{src}].Pt[{k}].{x}") or 0.0) / 100.0,
                (self.dev.get(mid, f"Crv[{src}].Pt[{k}].{y}") or 0.0) / 100.0,
            )
            for k in range(npt)
        ]
        if any(b[0] <= a[0] for a, b in itertools.pairwise(pts)) or any(abs(q) > 1.0 for _, q in pts):
            self.log.append(f"{mid}: curve {index} is not increasing in {x} or exceeds 100 %: {pts}")
            return None
        return pts

    def _trip_points(self, mid: int, group: str, x: str, is_v: bool) -> list[tuple[float, float]] | None:
        """A MomCess or MayTrip sub-curve as (threshold p.u. or Hz, time s); None beyond NPt points."""
        npt = int(self.dev.get_raw(mid, f"{group}.ActPt") or 0)
        if not 0 <= npt <= TRIP_NPT:
            self.log.append(f"{mid}: {group} has {npt} points")
            return None
        pts = []
        for k in range(npt):
            thr = self.dev.get(mid, f"{group}.Pt[{k}].{x}") or 0.0
            pts.append((thr / 100.0 if is_v else thr, self.dev.get(mid, f"{group}.Pt[{k}].Tms") or 0.0))
        return pts

    # --- publishing ------------------------------------------------------------------------------

    def publish(self, t_s: float, dt_s: float, v_pu: list[float], f_hz: float, ev: object) -> None:
        st = self.stage
        d = self.dev
        for item in [p for p in self._pending if p[0] <= t_s]:
            self._pending.remove(item)
            _, mid, index = item
            ok = self._adopt(mid, index)
            d.set_raw(mid, "AdptCtlRslt" if mid == 711 else "AdptCrvRslt", 1 if ok else 2)
        p = st.p_ac_w
        q = st.q_var if st.state not in ("off", "tripped") else 0.0
        if p >= 0:
            self._e_inj += p * dt_s / 3600.0
        else:
            self._e_abs -= p * dt_s / 3600.0
        phases = self.cfg.grid.phases
        s = math.hypot(p, q)
        v_avg = sum(v_pu[:phases]) / phases * self.v_nom
        d.set(701, "W", p)
        d.set(701, "Var", q)
        d.set(701, "VA", s)
        d.set(701, "PF", (math.copysign(abs(p) / s, p) if s > 1.0 else 1.0))
        d.set(701, "A", s / max(v_avg, 1.0))
        d.set(701, "LNV", v_avg)
        d.set(701, "Hz", f_hz)
        for k in range(phases):
            d.set(701, f"VL{k + 1}", v_pu[k] * self.v_nom)
            d.set(701, f"WL{k + 1}", p / phases)
            d.set(701, f"VarL{k + 1}", q / phases)
        d.set(701, "TotWhInj", self._e_inj)
        d.set(701, "TotWhAbs", self._e_abs)
        energized = st.state in ("running", "ramp", "idle")
        d.set_raw(701, "St", 1 if energized else 0)
        d.set_raw(701, "InvSt", {"off": 0, "idle": 7, "running": 3, "tripped": 6, "ramp": 2}[st.state])
        d.set_raw(701, "ConnSt", 1 if energized else 0)
        d.set_raw(701, "Alrm", (1 << 4) if st.state == "tripped" else 0)  # GRID_DISCONNECT
        d.set(704, "WSetRvrtRem", st.wset_rvrt_rem_s(t_s))
        d.set(703, "ESDlyRemTms", round(st.es_delay_rem_s()))
        d.set(705, "Crv[0].VRefAuto", st.vv_vref_auto_pu * 100.0)
        plugged = bool(getattr(ev, "plugged", False))
        soc = float(getattr(ev, "soc", 0.0))
        d.set(713, "SoC", soc * 100.0 if plugged else 0.0)
        d.set(713, "WHAvail", soc * self.cfg.ev.capacity_kwh * 1000.0 if plugged else 0.0)
        v_dc = float(getattr(ev, "v_dc_v", 0.0)) if plugged else 0.0
        # DC values signed like the AC side (docs/drivers.md): > 0 from the EV port into the stage,
        # i.e. the EV discharging.
        i_dc = st.p_dc_w / v_dc if v_dc > 0 else 0.0
        d.set(714, "DCW", st.p_dc_w)
        d.set(714, "DCA", i_dc)
        d.set(714, "Prt[0].DCV", v_dc)
        d.set(714, "Prt[0].DCA", i_dc)
        d.set(714, "Prt[0].DCW", st.p_dc_w)
        d.set_raw(714, "Prt[0].DCSta", 1 if plugged else 0)
        d.set(802, "SoC", soc * 100.0 if plugged else None)
        d.set_raw(802, "State", 3 if plugged else 1)
        d.set(802, "WChaRteMax", float(getattr(ev, "max_charge_w", 0.0)) if plugged else 0.0)
        d.set(802, "WDisChaRteMax", float(getattr(ev, "max_discharge_w", 0.0)) if plugged else 0.0)
        d.set(802, "V", v_dc)
        d.set(802, "W", st.p_dc_w)
        d.set_raw(802, "ChaSt", 1 if not plugged else (3 if st.p_dc_w > 1 else (4 if st.p_dc_w < -1 else 6)))
        if t_s - self._last_hb_s >= 1.0:
            self._last_hb_s = t_s
            st.hb = (st.hb + 1) & 0xFFFFFFFF
            d.set_raw(715, "DERHb", st.hb)


class LegacyStageDevice:
    """SunSpec face of a legacy :class:`PowerStage` without 70x models (``sunspec_controls`` "123+124"
    or "123"): 1, 101 (one phase) or 103 (three), 120 nameplate, 123 immediate controls and, for
    "123+124", 124 storage. Writes land in the stage's legacy controls, whose reversion timers run on
    the stage (see :mod:`hil.plant.stage`); the controls read back what the stage holds, so a
    reversion shows in the registers as on a real device."""

    def __init__(self, cfg: PlantConfig, stage: PowerStage, clock: Callable[[], float], unit_id: int) -> None:
        self.cfg = cfg
        self.stage = stage
        self.clock = clock
        ps = cfg.power_stage
        self.v_nom = cfg.grid.v_nominal_v
        self.measure = 103 if cfg.grid.phases == 3 else 101
        self.storage = ps.sunspec_controls == "123+124"
        q = round(ps.q_max_var)
        models = [
            _common("sim-power-stage-legacy", unit_id, "PS-0002"),
            ModelSpec(
                self.measure,
                values={
                    "A_SF": -2,
                    "V_SF": -1,
                    "W_SF": 0,
                    "Hz_SF": -2,
                    "VA_SF": 0,
                    "VAr_SF": 0,
                    "PF_SF": -1,
                    "WH_SF": 0,
                    "DCA_SF": -1,
                    "DCV_SF": -1,
                    "DCW_SF": 0,
                    "Tmp_SF": 0,
                    "TmpCab": 30,
                    "St": 8,
                    "Evt1": 0,
                    "Evt2": 0,
                },
            ),
            ModelSpec(
                120,
                values={
                    "DERTyp": 82,  # PV_STOR: the closest the legacy nameplate has to a storage inverter
                    "WRtg": round(ps.p_max_discharge_w),
                    "WRtg_SF": 0,
                    "VARtg": round(ps.s_max_va),
                    "VARtg_SF": 0,
                    "VArRtgQ1": q,
                    "VArRtgQ2": q,
                    "VArRtgQ3": -q,
                    "VArRtgQ4": -q,
                    "VArRtg_SF": 0,
                    "ARtg": round(ps.s_max_va / self.v_nom / cfg.grid.phases * 100),
                    "ARtg_SF": -2,
                    "PFRtgQ1": -800,
                    "PFRtgQ2": -800,
                    "PFRtgQ3": 800,
                    "PFRtgQ4": 800,
                    "PFRtg_SF": -3,
                    "MaxChaRte": round(ps.p_max_charge_w),
                    "MaxChaRte_SF": 0,
                    "MaxDisChaRte": round(ps.p_max_discharge_w),
                    "MaxDisChaRte_SF": 0,
                },
            ),
            ModelSpec(123, values=dict(self._power_on_123())),
        ]
        if self.storage:
            models.append(ModelSpec(124, values=dict(self._power_on_124())))
        self.dev = LiveSunSpecDevice(unit_id, models)
        self.dev.live.hooks.append(self._on_write)
        self._e_wh = 0.0
        self.log: list[str] = []

    def _power_on_123(self) -> dict[str, int | float | str | None]:
        return {
            "Conn_WinTms": 0,
            "Conn_RvrtTms": 0,
            "Conn": 1,
            "WMaxLimPct": 1000,
            "WMaxLimPct_WinTms": 0,
            "WMaxLimPct_RvrtTms": 0,
            "WMaxLimPct_RmpTms": 0,
            "WMaxLim_Ena": 0,
            "OutPFSet": 1000,
            "OutPFSet_WinTms": 0,
            "OutPFSet_RvrtTms": 0,
            "OutPFSet_RmpTms": 0,
            "OutPFSet_Ena": 0,
            "VArPct_WinTms": 0,
            "VArPct_RvrtTms": 0,
            "VArPct_RmpTms": 0,
            "VArPct_Mod": 0,
            "VArPct_Ena": 0,
            "WMaxLimPct_SF": -1,
            "OutPFSet_SF": -3,
            "VArPct_SF": -1,
        }

    def _power_on_124(self) -> dict[str, int | float | str | None]:
        return {
            "WChaMax": round(self.cfg.power_stage.p_max_charge_w),
            "WChaGra": 100,
            "WDisChaGra": 100,
            "StorCtl_Mod": 0,
            "ChaState": 0,
            "ChaSt": 6,
            "OutWRte": 1000,
            "InWRte": 1000,
            "InOutWRte_WinTms": 0,
            "InOutWRte_RvrtTms": 0,
            "InOutWRte_RmpTms": 0,
            "ChaGriSet": 1,
            "WChaMax_SF": 0,
            "WChaDisChaGra_SF": 0,
            "ChaState_SF": -1,
            "InBatV_SF": -1,
            "InOutWRte_SF": -1,
        }

    def power_on(self, t_s: float, *, stopped: bool, es_disabled: bool) -> None:
        """Start again after a power cycle: 123 and 124 hold their power-on values (volatile, like
        704); ``stopped`` or ``es_disabled``: 123 ``Conn`` reads DISCONNECT until a connect command."""
        for path, raw in self._power_on_123().items():
            self.dev.set_raw(123, path, raw)
        if self.storage:
            for path, raw in self._power_on_124().items():
                self.dev.set_raw(124, path, raw)
        off = stopped or es_disabled
        self.dev.set_raw(123, "Conn", 0 if off else 1)
        self.stage.power_on(t_s, stopped=off, es_disabled=False)

    def _refuse(self, what: str) -> ExcCodes:
        self.log.append(what)
        return ExcCodes.ILLEGAL_VALUE

    def _on_write(self, address: int, values: list[int]) -> ExcCodes | None:
        now = self.clock()
        st = self.stage
        changes = self.dev.decode_write(address, values)
        for mid, path, raw in changes:  # validate everything first: a refused write changes nothing
            if raw is None or mid not in (123, 124):
                continue
            if not isinstance(raw, int):
                return self._refuse(f"{mid}.{path}={raw!r} is not an integer")
            eng = float(raw) * 10.0 ** self.dev.sf(mid, path)
            if path == "WMaxLimPct" and not 0.0 <= eng <= 100.0:
                return self._refuse(f"123.WMaxLimPct={eng:g} % outside 0..100 %")
            if path in ("OutWRte", "InWRte") and not -100.0 <= eng <= 100.0:
                return self._refuse(f"124.{path}={eng:g} % outside -100..100 %")
            if path in ("Conn", "WMaxLim_Ena", "OutPFSet_Ena", "VArPct_Ena") and raw not in (0, 1):
                return self._refuse(f"{mid}.{path}={raw} is not 0 or 1")
            if path == "StorCtl_Mod" and raw & ~3:
                return self._refuse(f"124.StorCtl_Mod={raw:#x} sets undefined bits")
            if path == "WChaMax" and not 0 < eng <= self.cfg.power_stage.p_max_charge_w:
                return self._refuse(
                    f"124.WChaMax={eng:g} W outside 0..{self.cfg.power_stage.p_max_charge_w:g} W"
                )
        rates: dict[str, float] = {}
        for mid, path, raw in changes:
            if not isinstance(raw, int):
                continue
            eng = float(raw) * 10.0 ** self.dev.sf(mid, path)
            if mid == 123:
                if path == "Conn":
                    st.op_start = raw == 1
                elif path == "WMaxLim_Ena":
                    st.wmax_lim_ena = raw == 1
                elif path == "WMaxLimPct":
                    st.set_limit_pct(eng, now)
                elif path == "WMaxLimPct_RvrtTms":
                    st.lim_rvrt_tms_s = eng
            elif mid == 124:
                if path == "StorCtl_Mod":
                    st.storctl_mod = raw
                elif path in ("OutWRte", "InWRte"):
                    rates[path] = eng
                elif path == "InOutWRte_RvrtTms":
                    st.rte_rvrt_tms_s = eng
                elif path == "WChaMax":
                    st.w_cha_max_w = eng
        if rates:
            st.set_rates(rates.get("OutWRte"), rates.get("InWRte"), now)
        return None

    def publish(self, t_s: float, dt_s: float, v_pu: list[float], f_hz: float, ev: object) -> None:
        st, d, m = self.stage, self.dev, self.measure
        p = st.p_ac_w
        q = st.q_var if st.state not in ("off", "tripped") else 0.0
        self._e_wh += abs(p) * dt_s / 3600.0  # WH is an accumulator: it counts both directions
        phases = self.cfg.grid.phases
        s = math.hypot(p, q)
        v = [x * self.v_nom for x in v_pu[:phases]]
        v_avg = sum(v) / phases
        d.set(m, "W", p)
        d.set(m, "VAr", q)
        d.set(m, "VA", s)
        d.set(m, "PF", (math.copysign(100.0 * abs(p) / s, p) if s > 1.0 else 100.0))
        d.set(m, "A", s / max(v_avg, 1.0))
        d.set(m, "Hz", f_hz)
        for k, ph in enumerate("ABC"[:phases]):
            d.set(m, f"PhVph{ph}", v[k])
            d.set(m, f"Aph{ph}", s / phases / max(v[k], 1.0))
        d.set(m, "WH", self._e_wh)
        d.set_raw(m, "St", {"off": 1, "idle": 8, "running": 4, "tripped": 7, "ramp": 3}[st.state])
        d.set_raw(m, "Evt1", (1 << 4) if st.state == "tripped" else 0)  # GRID_DISCONNECT
        plugged = bool(getattr(ev, "plugged", False))
        v_dc = float(getattr(ev, "v_dc_v", 0.0)) if plugged else 0.0
        d.set(m, "DCV", v_dc)
        d.set(m, "DCA", abs(st.p_dc_w) / v_dc if v_dc > 0 else 0.0)  # uint16: a magnitude
        d.set(m, "DCW", st.p_dc_w)
        d.set(123, "WMaxLimPct", st.wmax_lim_pct)
        d.set_raw(123, "WMaxLim_Ena", 1 if st.wmax_lim_ena else 0)
        d.set_raw(123, "Conn", 1 if st.op_start else 0)
        if self.storage:
            soc = float(getattr(ev, "soc", 0.0))
            d.set(124, "ChaState", soc * 100.0 if plugged else None)
            d.set(124, "InBatV", v_dc)
            d.set(124, "OutWRte", st.out_w_rte_pct)
            d.set(124, "InWRte", st.in_w_rte_pct)
            d.set_raw(
                124, "ChaSt", 1 if not plugged else (3 if st.p_dc_w > 1 else (4 if st.p_dc_w < -1 else 6))
            )


class SunSpecMeterDevice:
    """Site meter as SunSpec 1 + 201/202/203."""

    def __init__(self, cfg: PlantConfig, unit_id: int) -> None:
        self.cfg = cfg
        self.model = cfg.meter.model or (203 if cfg.grid.phases == 3 else 201)
        self.sign = 1.0 if cfg.meter.sign == "import_positive" else -1.0
        self.v_nom = cfg.grid.v_nominal_v
        self.dev = LiveSunSpecDevice(
            unit_id,
            [
                _common(f"sim-meter-{self.model}", unit_id, "MT-0001"),
                ModelSpec(
                    self.model,
                    values={
                        "A_SF": -2,
                        "V_SF": -1,
                        "Hz_SF": -2,
                        "W_SF": 0,
                        "VA_SF": 0,
                        "VAR_SF": 0,
                        "PF_SF": -1,
                        "TotWh_SF": 0,
                        "TotVAh_SF": 0,
                        "TotVArh_SF": 0,
                        "Evt": 0,
                    },
                ),
            ],
        )

    def publish(self, r: MeterReading) -> None:
        d, m = self.dev, self.model
        phases = self.cfg.grid.phases if m != 202 else 2
        p = r.p_import_w * self.sign
        q = r.q_import_var * self.sign
        s = math.hypot(p, q)
        v = [x * self.v_nom for x in r.v_pu]
        d.set(m, "W", p)
        d.set(m, "VAR", q)
        d.set(m, "VA", s)
        d.set(m, "PF", 100.0 * abs(p) / s if s > 1.0 else 100.0)
        d.set(m, "Hz", r.f_hz)
        d.set(m, "A", s / max(sum(v[:phases]) / phases, 1.0))
        d.set(m, "PhV", sum(v[:phases]) / phases)
        d.set(m, "PhVphA", v[0])
        if phases >= 2:
            d.set(m, "PhVphB", v[1])
        if phases == 3:
            d.set(m, "PhVphC", v[2])
            d.set(m, "PPV", sum(v) / 3 * math.sqrt(3))
        for k, ph in enumerate("ABC"[:phases]):
            d.set(m, f"Wph{ph}", r.p_phase_w[k] * self.sign)
        d.set(m, "TotWhImp", r.e_import_wh)
        d.set(m, "TotWhExp", r.e_export_wh)


# SDM630-style map: input registers (FC 4; served on FC 3 too), float32, high word first.
SDM630: dict[str, int] = {
    "v_l1_v": 0x0000,
    "v_l2_v": 0x0002,
    "v_l3_v": 0x0004,
    "i_l1_a": 0x0006,
    "i_l2_a": 0x0008,
    "i_l3_a": 0x000A,
    "p_l1_w": 0x000C,
    "p_l2_w": 0x000E,
    "p_l3_w": 0x0010,
    "p_total_w": 0x0034,
    "s_total_va": 0x0038,
    "q_total_var": 0x003C,
    "pf_total": 0x003E,
    "f_hz": 0x0046,
    "e_import_kwh": 0x0048,
    "e_export_kwh": 0x004A,
}


class MapMeterDevice:
    """A vendor-map meter (SDM630-style): total power > 0 = import, float32 registers from address 0."""

    def __init__(self, cfg: PlantConfig, unit_id: int) -> None:
        self.cfg = cfg
        self.unit_id = unit_id
        self.map = SDM630
        self.sign = 1.0 if cfg.meter.sign == "import_positive" else -1.0
        self.live = LiveRegisters(0, [0] * 0x0050, writable=())

    def _f(self, name: str, value: float) -> None:
        hi, lo = struct.unpack(">HH", struct.pack(">f", value))
        self.live.set(self.map[name], [hi, lo])

    def publish(self, r: MeterReading) -> None:
        v_nom = self.cfg.grid.v_nominal_v
        phases = self.cfg.grid.phases
        p = r.p_import_w * self.sign
        q = r.q_import_var * self.sign
        s = math.hypot(p, q)
        for k in range(3):
            v = r.v_pu[k] * v_nom if k < phases else 0.0
            self._f(f"v_l{k + 1}_v", v)
            self._f(f"p_l{k + 1}_w", r.p_phase_w[k] * self.sign)
            self._f(f"i_l{k + 1}_a", abs(r.p_phase_w[k]) / v if v > 1.0 else 0.0)
        self._f("p_total_w", p)
        self._f("q_total_var", q)
        self._f("s_total_va", s)
        self._f("pf_total", abs(p) / s if s > 1.0 else 1.0)
        self._f("f_hz", r.f_hz)
        self._f("e_import_kwh", r.e_import_wh / 1000.0)
        self._f("e_export_kwh", r.e_export_wh / 1000.0)
