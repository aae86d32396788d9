"""The bidirectional power stage (the charger's inverter) as a device: what it does with its settings.

It knows nothing of Modbus (``hil.plant.devices`` maps SunSpec registers to these settings). P and Q
follow their targets through a first-order lag (``tau_s``, default 100 ms); the DC side sees the AC
power through an efficiency that differs between discharging and charging. The device keeps its own
timers, as a certified inverter does: active/reactive setpoint reversion (``WSetRvrtTms``: after that
long without a new write or controller heartbeat, the setpoint becomes ``WSetRvrt``), enter-service
delay and ramp after a trip, anti-islanding. When it owns them (owner = inverter) it runs its own IEEE
1547 functions: volt-var (with VRef and autonomous VRef), volt-watt, watt-var, constant power factor,
constant var, frequency droop, voltage and frequency must-trip curves and momentary cessation.

Active power: the command (WSet, or the legacy own mode) plus the droop's change (1547 6.5.2.7, lagged
by its response time, not below ``PMin``), then capped by volt-watt (5.4.2; the cap always applies, as
in EPRI's OpenDER; its response time applies while the cap holds the output below the command and while
it releases it), then the EV's and the stage's limits, the enter-service ramp and, last, the apparent
power limit. Reactive power: one mode, the first enabled of volt-var, watt-var, constant PF (PFWInj while
the target P >= 0, PFWAbs while < 0), constant var; volt-var and watt-var follow their response time,
constant PF and constant var follow the P target directly (the output lag ``tau_s`` is common to P and Q,
so the power factor holds through a P step). Apparent power: the active mode's priority (705/712
``Pri``, 704 ``VarSetPri``; VENDOR is reactive); constant PF scales P and Q together so the power factor
holds.

Momentary cessation (707/708/709/710 ``MomCess``: below (LV, LF) or above (HV, HF) a point's threshold
for its time): the output drops to zero at once, without a trip; the must-trip timers keep running; the
output comes back through ``tau_s`` as soon as the quantity returns (1547 6.4.2.7: within 0.4 s). Below
0.5 p.u. the stage cannot run and ceases the same way. ``MayTrip`` curves are stored, never acted on: the
stage trips only on its must-trip curves, so it rides through everything inside them.

Enter service (703): after a trip, and (``es_on_permit``) after the permit (ES) is given back, the
stage waits until every phase voltage and f have stayed in the window for ``ESDlyTms`` plus a
randomized delay drawn uniformly in [0, ``ESRndTms``] (seeded, drawn once per sequence); then it ramps
over ``ESRmpTms``, or with a randomized delay steps to its target (ramp and randomized delay are
exclusive). A start command (715 OpCtl) enters through the ramp at once.

States: ``off`` (OpCtl stop, ES disabled, or powered off), ``idle`` (running, no EV or nothing to do),
``running``, ``tripped`` (ceased by protection: trip or anti-islanding, waits for the enter-service window
and delay), ``ramp`` (re-entering service, output limited by the ramp).

A legacy device (``sunspec_controls`` "123+124" or "123": no 704) runs in its own mode at ``own_p_w``,
held by the controller's limits: 124 ``StorCtl_Mod`` bit 0 enables the charge limit ``InWRte``, bit 1
the discharge limit ``OutWRte`` (percent of ``WChaMax``; a negative limit forces the other direction,
so both bits with ``OutWRte = -InWRte = x`` pin the power at x %), and 123 ``WMaxLimPct`` (with
``WMaxLim_Ena``) caps the output. Each has its own reversion timer (``InOutWRte_RvrtTms``,
``WMaxLimPct_RvrtTms``), restarted by a write of its value: when it runs out the limit returns to
100 % and the stage to its own mode.

A power cycle (:meth:`PowerStage.power_off`, :meth:`PowerStage.power_on`) loses what a controller
wrote to the volatile controls (704 setpoints and reversion, 715 OpCtl): they return to their power-on
values. Ratings (702), the enter-service times (703) and the curves (705-711) are kept, as a real
inverter keeps its grid settings in non-volatile memory.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field

from edge.control.lag import lag_step, tau_from_olrt
from hil.plant.config import PowerStageConfig

STATES = ("off", "idle", "running", "tripped", "ramp")


def interp(points: list[tuple[float, float]], x: float) -> float:
    """Piecewise-linear curve, flat outside its points."""
    if not points:
        return 0.0
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]


# 1547-2018 defaults (notes A.2, A.5, A.6, A.7); frequencies relative to nominal so 50 Hz works too.
VV_CAT_B = [(0.92, 0.44), (0.98, 0.0), (1.02, 0.0), (1.08, -0.44)]
LV_TRIP = {
    "I": [(0.70, 2.0), (0.45, 0.16)],
    "II": [(0.70, 10.0), (0.45, 0.16)],
    "III": [(0.88, 21.0), (0.50, 2.0)],
}
HV_TRIP = {
    "I": [(1.10, 2.0), (1.20, 0.16)],
    "II": [(1.10, 2.0), (1.20, 0.16)],
    "III": [(1.10, 13.0), (1.20, 0.16)],
}
LF_TRIP_DHZ = [(-1.5, 300.0), (-3.5, 0.16)]  # 58.5 / 56.5 Hz at 60 Hz
HF_TRIP_DHZ = [(1.2, 300.0), (2.0, 0.16)]  # 61.2 / 62.0 Hz at 60 Hz
# The widest settings of 1547's ranges (1547.1 Table 15, as a lab sets a DER's trips so they do not
# interfere): what an installer sets where the daemon owns the trips and the certified inverter's own
# curves must not act inside the ride-through the daemon owns. OV2 1.20 pu / 0.16 s is fixed by 1547.
WIDEST_LV = [(0.0, 21.0), (0.0, 2.0)]
WIDEST_HV = [(1.20, 13.0), (1.20, 0.16)]
WIDEST_LF_DHZ = [(-10.0, 1000.0), (-10.0, 1000.0)]  # 50 Hz at 60 Hz
WIDEST_HF_DHZ = [(6.0, 1000.0), (6.0, 1000.0)]  # 66 Hz at 60 Hz
# Momentary cessation thresholds (notes A.8: below/above these the category's ride-through table asks
# for cease to energize or momentary cessation), entered at once.
MC_LV = {"I": 0.50, "II": 0.30, "III": 0.50}
MC_HV = {"I": 1.20, "II": 1.20, "III": 1.10}
# Factory volt-watt (1547 Table 10; a client adopts P'2 = 0 or below for a stage that can absorb) and
# watt-var (1547.1 characteristic 1, Cat B, storage): P in per unit of WMax, Q in per unit of S rated.
VW_FACTORY = [(1.06, 1.0), (1.10, 0.2)]  # the generation-only default (P2 = 20 %) until one is adopted
WV_STORAGE = [(-1.0, 0.44), (-0.5, 0.0), (-0.2, 0.0), (0.2, 0.0), (0.5, 0.0), (1.0, -0.44)]
VREF_AUTO_BAND_PU = (0.95, 1.05)  # 1547 VRef range; the kernel's auto-VRef is bounded the same way
# SunSpec DeptRef of 705/712 (what a reactive point is a percentage of) and of 706.
DEPT_W_MAX, DEPT_VAR_MAX, DEPT_VAR_AVAIL, DEPT_VA_MAX = 0, 1, 2, 3
VW_DEPT_W_MAX, VW_DEPT_W_AVAIL = 0, 1
VARSET_VARS = 4  # 704 VarSetMod VARS; 0-3 are percentages with the DeptRef bases above
# Which limit wins when P and Q together exceed the apparent-power rating.
PRI_ACTIVE, PRI_REACTIVE, PRI_PF = "active", "reactive", "pf"


@dataclass
class TripCurve:
    """Stages ``(threshold, time)``: true once beyond a threshold that long (must trip: the clearing
    time; momentary cessation: its time, often 0, i.e. at once)."""

    points: list[tuple[float, float]]
    below: bool  # True: trip when the quantity is below the threshold (LV, LF)
    enabled: bool = True
    timers: list[float] = field(default_factory=list)

    def step(self, dt_s: float, x: float) -> bool:
        if len(self.timers) != len(self.points):
            self.timers = [0.0] * len(self.points)
        tripped = False
        for k, (thr, t_clear) in enumerate(self.points):
            beyond = x < thr if self.below else x > thr
            self.timers[k] = self.timers[k] + dt_s if (beyond and self.enabled) else 0.0
            if beyond and self.enabled and self.timers[k] >= t_clear - 1e-9:
                tripped = True
        return tripped

    def reset(self) -> None:
        self.timers = [0.0] * len(self.points)


@dataclass
class Droop:
    db_of_hz: float = 0.036
    db_uf_hz: float = 0.036
    k_of: float = 0.05
    k_uf: float = 0.05
    olrt_s: float = 5.0
    p_min_pu: float = -1.0


class PowerStage:
    def __init__(self, cfg: PowerStageConfig, f_nominal_hz: float) -> None:
        self.cfg = cfg
        self.f_n = f_nominal_hz
        # Ratings and settings (W, var).
        self.p_max_discharge_w = cfg.p_max_discharge_w
        self.p_max_charge_w = cfg.p_max_charge_w
        self.s_max_va = cfg.s_max_va
        self.q_max_var = cfg.q_max_var
        self.tau_s = cfg.tau_s
        self.legacy = cfg.sunspec_controls != "704"
        self.storage = cfg.sunspec_controls == "123+124"
        self.w_cha_max_w = cfg.p_max_charge_w  # 124 WChaMax: the base of InWRte/OutWRte
        # Controls (SunSpec 703/704/715) at their power-on values.
        self.op_start = True
        self.es_permit = True
        self._power_on_controls()
        self.es_delay_s = cfg.es_delay_s
        self.es_ramp_s = cfg.es_ramp_s
        self.es_rnd_s = cfg.es_rnd_s
        self.es_on_permit = cfg.es_on_permit
        self.es_v_band_pu = cfg.es_v_window_pu
        self.es_f_band_hz = (f_nominal_hz + cfg.es_f_window_dhz[0], f_nominal_hz + cfg.es_f_window_dhz[1])
        self._rng = random.Random(cfg.es_rnd_seed)
        self._es_rnd_draw_s: float | None = None
        self._es_wait = False  # the permit was withdrawn: enter service through the window and delay
        # 1547 functions the inverter owns. Volt-var: points absolute (V p.u., Q fraction of the
        # DeptRef base) at ``vv_vref_pu``; autonomous VRef shifts the curve by VRefAuto - VRef.
        self.vv_ena = cfg.volt_var
        self.vv_curve = list(VV_CAT_B)
        self.vv_olrt_s = 5.0
        self.vv_dept_ref = DEPT_VA_MAX
        self.vv_pri = PRI_REACTIVE
        self.vv_vref_pu = 1.0
        self.vv_vref_auto_ena = False
        self.vv_vref_auto_tau_s = 0.0  # 705 VRefAutoTms as shipped (auto VRef off)
        self.vv_vref_auto_pu = 1.0
        self.vw_ena = cfg.volt_watt
        self.vw_curve = list(VW_FACTORY)
        self.vw_dept_ref = VW_DEPT_W_MAX
        self.vw_olrt_s = 10.0
        self.wv_ena = cfg.watt_var
        self.wv_curve = list(WV_STORAGE)
        self.wv_dept_ref = DEPT_VA_MAX
        self.wv_pri = PRI_REACTIVE
        self.wv_olrt_s = cfg.watt_var_olrt_s
        self.droop_ena = cfg.freq_droop
        self.droop = Droop()
        cat = cfg.category
        widest = cfg.trip_settings == "widest"
        lv, hv = (WIDEST_LV, WIDEST_HV) if widest else (LV_TRIP[cat], HV_TRIP[cat])
        lf, hf = (WIDEST_LF_DHZ, WIDEST_HF_DHZ) if widest else (LF_TRIP_DHZ, HF_TRIP_DHZ)
        self.lv = TripCurve(list(lv), below=True, enabled=cfg.voltage_trip)
        self.hv = TripCurve(list(hv), below=False, enabled=cfg.voltage_trip)
        self.lf = TripCurve([(f_nominal_hz + d, t) for d, t in lf], below=True, enabled=cfg.frequency_trip)
        self.hf = TripCurve([(f_nominal_hz + d, t) for d, t in hf], below=False, enabled=cfg.frequency_trip)
        # Momentary cessation (MomCess) per trip model; may-trip points (MayTrip) stored only.
        mc = cfg.momentary_cessation
        self.mc_lv = TripCurve([(MC_LV[cat], 0.0)] if mc else [], below=True)
        self.mc_hv = TripCurve([(MC_HV[cat], 0.0)] if mc else [], below=False)
        self.mc_lf = TripCurve([], below=True)
        self.mc_hf = TripCurve([], below=False)
        self.may_trip: dict[str, list[tuple[float, float]]] = {"LV": [], "HV": [], "LF": [], "HF": []}
        # State.
        self.state = "idle"
        self.trip_cause = ""
        self.p_w = 0.0  # AC output (> 0 export), after the lag
        self.q_var = 0.0
        self.p_target_w = 0.0
        self.q_target_var = 0.0
        self.p_dc_w = 0.0
        self.q_vv_var = 0.0
        self.q_wv_var = 0.0
        self.p_droop_w = 0.0
        self._vw_p_w: float | None = None  # the volt-watt-capped command, None: the cap does not hold
        self._vw_last_cmd_w = 0.0  # the command one step ago: where a response to the cap starts
        self.p_vw_limit_w = math.inf  # the volt-watt cap right now (inf: off)
        self.mom_cess = False
        self.reverted = False
        self.var_reverted = False
        self.last_touch_s = 0.0
        self._island_s = 0.0
        self._es_ok_s = 0.0
        self._ramp_s = 0.0
        self.hb = 0
        self.powered = True

    def _power_on_controls(self) -> None:
        """The volatile controls (704) as the device starts with them."""
        cfg = self.cfg
        self.wset_ena = False
        self.wset_w = 0.0
        self.wset_rvrt_w = cfg.wset_rvrt_w
        self.wset_rvrt_tms_s = cfg.wset_rvrt_tms_s
        self.varset_ena = False
        self.varset_var = 0.0
        self.varset_rvrt_var = 0.0
        self.varset_rvrt_tms_s = 0.0
        # VarSetMod: VARS uses varset_var, the percentage modes varset_pct of their base.
        self.varset_mod = VARSET_VARS
        self.varset_pct = 0.0
        self.varset_rvrt_pct = 0.0
        self.varset_pri = PRI_ACTIVE
        # Constant power factor (704 PFWInj while P >= 0, PFWAbs while P < 0); ``*_under``: UNDER_EXCITED.
        self.pf_inj_ena = False
        self.pf_inj = 1.0
        self.pf_inj_under = False
        self.pf_abs_ena = False
        self.pf_abs = 1.0
        self.pf_abs_under = False
        self.wmax_lim_ena = False
        self.wmax_lim_pct = 100.0
        self.anti_isl_ena = cfg.anti_islanding
        # Legacy controls (123, 124) and their reversion timers.
        self.lim_rvrt_tms_s = 0.0
        self.lim_touch_s = 0.0
        self.lim_reverted = False
        self.storctl_mod = 0
        self.out_w_rte_pct = 100.0
        self.in_w_rte_pct = 100.0
        self.rte_rvrt_tms_s = 0.0
        self.rte_touch_s = 0.0
        self.rte_reverted = False

    # --- power cycle ----------------------------------------------------------------------------------

    def power_off(self) -> None:
        """Lose supply: cease to energize at once, forget every running timer."""
        self.powered = False
        self.state = "off"
        self.trip_cause = ""
        self._cease()
        self._island_s = self._es_ok_s = self._ramp_s = 0.0
        self._es_rnd_draw_s = None
        for c in (self.lv, self.hv, self.lf, self.hf, *self.mc_curves):
            c.reset()

    def power_on(self, t_s: float, *, stopped: bool = False, es_disabled: bool = False) -> None:
        """Start again with the power-on controls; ``stopped``: waiting for a start command (OpCtl
        STOP), ``es_disabled``: service not permitted (ES disabled). Otherwise it enters service through
        the ramp, as after a start command."""
        self._power_on_controls()
        self.op_start = not stopped
        self.es_permit = not es_disabled
        self.reverted = self.var_reverted = False
        self.last_touch_s = self.lim_touch_s = self.rte_touch_s = t_s
        self.hb = 0
        self.state = "off"
        self.powered = True

    # --- controller interaction -------------------------------------------------------------------

    def touch(self, t_s: float) -> None:
        """A write or a controller heartbeat: the reversion timers start again."""
        self.last_touch_s = t_s

    def set_wset(self, w: float, t_s: float) -> None:
        self.wset_w = w
        self.reverted = False
        self.touch(t_s)

    def set_varset(self, var: float, t_s: float) -> None:
        self.varset_var = var
        self.var_reverted = False
        self.touch(t_s)

    def set_varset_pct(self, pct: float, t_s: float) -> None:
        """704 ``VarSetPct`` (percent of the VarSetMod base) written."""
        self.varset_pct = pct
        self.var_reverted = False
        self.touch(t_s)

    @property
    def mc_curves(self) -> tuple[TripCurve, TripCurve, TripCurve, TripCurve]:
        return self.mc_lv, self.mc_hv, self.mc_lf, self.mc_hf

    def set_limit_pct(self, pct: float, t_s: float) -> None:
        """123 ``WMaxLimPct`` written: the limit's reversion timer starts again."""
        self.wmax_lim_pct = pct
        self.lim_reverted = False
        self.lim_touch_s = t_s

    def set_rates(self, out_pct: float | None, in_pct: float | None, t_s: float) -> None:
        """124 ``OutWRte``/``InWRte`` written (None: not in this write): the rates' timer starts again."""
        if out_pct is not None:
            self.out_w_rte_pct = out_pct
        if in_pct is not None:
            self.in_w_rte_pct = in_pct
        self.rte_reverted = False
        self.rte_touch_s = t_s

    def _legacy_revert(self, t_s: float) -> None:
        if (
            self.lim_rvrt_tms_s > 0.0
            and not self.lim_reverted
            and t_s - self.lim_touch_s >= self.lim_rvrt_tms_s
        ):
            self.wmax_lim_pct = 100.0
            self.lim_reverted = True
        if (
            self.rte_rvrt_tms_s > 0.0
            and not self.rte_reverted
            and t_s - self.rte_touch_s >= self.rte_rvrt_tms_s
        ):
            self.out_w_rte_pct = self.in_w_rte_pct = 100.0
            self.rte_reverted = True

    def _legacy_p_cmd(self) -> float:
        """The stage's own power held inside the 124 window (the 123 cap comes with the limits)."""
        p = self.cfg.own_p_w
        if self.storage:
            hi = self.out_w_rte_pct / 100.0 * self.w_cha_max_w if self.storctl_mod & 2 else math.inf
            lo = -self.in_w_rte_pct / 100.0 * self.w_cha_max_w if self.storctl_mod & 1 else -math.inf
            p = 0.0 if lo > hi else min(max(p, lo), hi)  # contradictory limits: hold
        return p

    def wset_rvrt_rem_s(self, t_s: float) -> float:
        if self.wset_rvrt_tms_s <= 0.0 or self.reverted:
            return 0.0
        return max(self.wset_rvrt_tms_s - (t_s - self.last_touch_s), 0.0)

    # --- physics ----------------------------------------------------------------------------------

    def _limits(  # noqa: PLR0917 - private, called once
        self, ev_plugged: bool, soc: float, soc_min: float, soc_max: float, ev_chg_w: float, ev_dis_w: float
    ) -> tuple[float, float]:
        """(max discharge W >= 0, max charge W >= 0) at the AC side right now."""
        if not ev_plugged:
            return 0.0, 0.0
        dis = min(self.p_max_discharge_w, ev_dis_w * self.cfg.eff_discharge)
        chg = min(self.p_max_charge_w, ev_chg_w / self.cfg.eff_charge)
        if self.wmax_lim_ena:
            dis = min(dis, self.p_max_discharge_w * self.wmax_lim_pct / 100.0)
        if soc <= soc_min:
            dis = 0.0
        if soc >= soc_max:
            chg = 0.0
        return dis, chg

    def _protection(self, dt_s: float, v_min_pu: float, v_max_pu: float, f_hz: float, islanded: bool) -> None:
        self._island_s = self._island_s + dt_s if islanded else 0.0
        causes = []
        if self.lv.step(dt_s, v_min_pu):
            causes.append("LV")
        if self.hv.step(dt_s, v_max_pu):
            causes.append("HV")
        if self.lf.step(dt_s, f_hz):
            causes.append("LF")
        if self.hf.step(dt_s, f_hz):
            causes.append("HF")
        if self.anti_isl_ena and self._island_s >= self.cfg.anti_island_detect_s:
            causes.append("island")
        if causes and self.state != "tripped":
            self.state = "tripped"
            self.trip_cause = "+".join(causes)
            self._es_ok_s = 0.0
            self._es_rnd_draw_s = None
            for c in (self.lv, self.hv, self.lf, self.hf, *self.mc_curves):
                c.reset()

    def _es_required_s(self) -> float:
        """Delay plus this sequence's randomized delay (drawn once per sequence, from the seed)."""
        if self._es_rnd_draw_s is None:
            self._es_rnd_draw_s = self._rng.uniform(0.0, self.es_rnd_s) if self.es_rnd_s > 0.0 else 0.0
        return self.es_delay_s + self._es_rnd_draw_s

    def _es_window(self, dt_s: float, v_pu: tuple[float, float], f_hz: float, islanded: bool) -> bool:
        """Count the time every phase voltage (``v_pu``: lowest, highest) and f stay in the
        enter-service window; True once it is long enough."""
        in_window = (
            not islanded
            and self.es_v_band_pu[0] <= v_pu[0]
            and v_pu[1] <= self.es_v_band_pu[1]
            and self.es_f_band_hz[0] <= f_hz <= self.es_f_band_hz[1]
        )
        self._es_ok_s = self._es_ok_s + dt_s if (in_window and self.es_permit) else 0.0
        # In the window now, not only long enough: with no delay set, 0 s is always long enough.
        if in_window and self.es_permit and self._es_ok_s >= self._es_required_s() - 1e-9:
            self._es_rnd_draw_s = None
            self._es_ok_s = 0.0
            return True
        return False

    def es_delay_rem_s(self) -> float:
        """703 ``ESDlyRemTms``: what is left of the enter-service delay while the stage waits for it."""
        if self.state == "tripped" or (self.state == "off" and self._es_wait):
            return max(self._es_required_s() - self._es_ok_s, 0.0)
        return 0.0

    def _enter_ramp(self) -> None:
        self.state = "ramp"
        self._ramp_s = 0.0

    @property
    def es_ramp_in_effect_s(self) -> float:
        """The enter-service ramp in effect: none with a randomized delay (they are exclusive)."""
        return 0.0 if self.es_rnd_s > 0.0 else self.es_ramp_s

    def step(
        self,
        *,
        t_s: float,
        dt_s: float,
        v_avg_pu: float,
        v_min_pu: float,
        v_max_pu: float,
        f_hz: float,
        islanded: bool,
        ev_plugged: bool,
        soc: float,
        soc_min: float,
        soc_max: float,
        ev_chg_w: float,
        ev_dis_w: float,
    ) -> None:
        """Advance ``dt_s``: timers, protection, targets, then the first-order response."""
        if not self.powered:
            return
        # Setpoint reversion (the device's own timer, independent of the controller).
        if (
            self.wset_rvrt_tms_s > 0.0
            and not self.reverted
            and t_s - self.last_touch_s >= self.wset_rvrt_tms_s
        ):
            self.wset_w = self.wset_rvrt_w
            self.reverted = True
        if (
            self.varset_rvrt_tms_s > 0.0
            and not self.var_reverted
            and t_s - self.last_touch_s >= self.varset_rvrt_tms_s
        ):
            self.varset_var = self.varset_rvrt_var
            self.varset_pct = self.varset_rvrt_pct
            self.var_reverted = True
        if self.legacy:
            self._legacy_revert(t_s)
        self._protection(dt_s, v_min_pu, v_max_pu, f_hz, islanded)
        if self.state == "tripped":
            if self._es_window(dt_s, (v_min_pu, v_max_pu), f_hz, islanded):
                # Stopped by command meanwhile: the trip is over, but it stays off until started.
                self.trip_cause = ""
                if self.op_start:
                    self._enter_ramp()
                else:
                    self.state = "off"
        elif not self.op_start or not self.es_permit:
            if not self.es_permit and self.state != "off":
                self._es_ok_s = 0.0
                self._es_rnd_draw_s = None
            self._es_wait = self._es_wait or (not self.es_permit and self.es_on_permit)
            self.state = "off"
        elif self.state == "off" and (
            not self._es_wait or self._es_window(dt_s, (v_min_pu, v_max_pu), f_hz, islanded)
        ):
            self._es_wait = False
            self._enter_ramp()
        if self.state == "ramp":
            self._ramp_s += dt_s
            if self._ramp_s >= self.es_ramp_in_effect_s:
                self.state = "running"
        if self.state in ("off", "tripped"):
            self._cease()
            return
        # Momentary cessation: every curve steps (its timers), any one ceases.
        mc = [
            c.step(dt_s, x)
            for c, x in zip(self.mc_curves, (v_min_pu, v_max_pu, f_hz, f_hz), strict=True)
            if c.points
        ]
        self.mom_cess = any(mc) or v_avg_pu < 0.5
        if self.mom_cess:
            self.p_w = self.q_var = self.p_target_w = self.q_target_var = self.p_dc_w = 0.0
            return
        dis, chg = self._limits(ev_plugged, soc, soc_min, soc_max, ev_chg_w, ev_dis_w)
        p_cmd = self._legacy_p_cmd() if self.legacy else (self.wset_w if self.wset_ena else 0.0)
        if self.droop_ena:
            d = self.droop
            p_rated = self.p_max_discharge_w
            if f_hz > self.f_n + d.db_of_hz:
                delta = -(f_hz - (self.f_n + d.db_of_hz)) / (self.f_n * d.k_of) * p_rated
            elif f_hz < self.f_n - d.db_uf_hz:
                delta = ((self.f_n - d.db_uf_hz) - f_hz) / (self.f_n * d.k_uf) * p_rated
            else:
                delta = 0.0
            self.p_droop_w = lag_step(self.p_droop_w, delta, dt_s, tau_from_olrt(d.olrt_s))
            p_cmd = max(p_cmd + self.p_droop_w, d.p_min_pu * self.p_max_charge_w)
        p_cmd = min(max(p_cmd, -chg), dis)
        p_target = min(max(self._volt_watt(dt_s, v_avg_pu, p_cmd, dis, chg), -chg), dis)
        if not ev_plugged:
            self.p_w = 0.0  # the EVSE opened its contactors: the DC current stops at once
        if self.state == "ramp" and self.es_ramp_in_effect_s > 0:
            lim = self.p_max_discharge_w * min(self._ramp_s / self.es_ramp_in_effect_s, 1.0)
            p_target = min(max(p_target, -lim), lim)
        q_target, pri = self._reactive(dt_s, v_avg_pu, p_target)
        p_target, q_target = self._apparent_limit(p_target, q_target, pri)
        self.p_target_w = p_target
        self.q_target_var = q_target
        self.p_w = lag_step(self.p_w, p_target, dt_s, self.tau_s)
        self.q_var = lag_step(self.q_var, q_target, dt_s, self.tau_s)
        self.state = "running" if (self.state != "ramp" and (ev_plugged or self.p_w != 0.0)) else self.state
        if not ev_plugged and self.state == "running":
            self.state = "idle"
        p = self.p_w
        self.p_dc_w = p / self.cfg.eff_discharge if p >= 0.0 else p * self.cfg.eff_charge

    # --- the 1547 functions -------------------------------------------------------------------------

    def _volt_watt(self, dt_s: float, v_pu: float, p_cmd: float, dis: float, chg: float) -> float:
        """The command capped by volt-watt. While the cap holds the output below the command (and
        while it lets go of it) the capped command follows the cap through the open-loop response
        time; otherwise it is the command itself, so that volt-watt never slows a set point."""
        last, self._vw_last_cmd_w = self._vw_last_cmd_w, p_cmd
        if not self.vw_ena:
            self._vw_p_w = None
            self.p_vw_limit_w = math.inf
            return p_cmd
        frac = interp(self.vw_curve, v_pu)
        if self.vw_dept_ref == VW_DEPT_W_AVAIL:
            lim = frac * (dis if frac >= 0.0 else chg)
        else:
            lim = frac * self.p_max_discharge_w
        self.p_vw_limit_w = lim
        if self._vw_p_w is None:  # not holding: the capped command is the command
            if lim >= p_cmd:
                return p_cmd
            self._vw_p_w = last
        self._vw_p_w = min(
            lag_step(self._vw_p_w, min(p_cmd, lim), dt_s, tau_from_olrt(self.vw_olrt_s)), p_cmd
        )
        if lim >= p_cmd and self._vw_p_w >= p_cmd - 1e-3 * self.p_max_discharge_w:
            self._vw_p_w = None  # let go
            return p_cmd
        return self._vw_p_w

    def _q_base(self, dept_ref: int, p_w: float) -> float:
        """What a reactive percentage is a percentage of (705/712 DeptRef, 704 VarSetMod 0-3)."""
        if dept_ref == DEPT_W_MAX:
            return self.p_max_discharge_w
        if dept_ref == DEPT_VAR_MAX:
            return self.q_max_var
        if dept_ref == DEPT_VAR_AVAIL:
            return min(math.sqrt(max(self.s_max_va**2 - p_w**2, 0.0)), self.q_max_var)
        return self.s_max_va

    def vv_shift_pu(self) -> float:
        """How far autonomous VRef has moved the volt-var curve (0 when it is off)."""
        return self.vv_vref_auto_pu - self.vv_vref_pu if self.vv_vref_auto_ena else 0.0

    def _reactive(self, dt_s: float, v_pu: float, p_w: float) -> tuple[float, str]:
        """The reactive target of the mode in effect and the apparent-power priority it asks for."""
        if self.vv_ena and self.vv_vref_auto_ena:
            lo, hi = VREF_AUTO_BAND_PU
            self.vv_vref_auto_pu = lag_step(
                self.vv_vref_auto_pu, min(max(v_pu, lo), hi), dt_s, self.vv_vref_auto_tau_s
            )
        else:
            self.vv_vref_auto_pu = self.vv_vref_pu
        if not self.vv_ena:
            self.q_vv_var = 0.0
        if not self.wv_ena:
            self.q_wv_var = 0.0
        if self.vv_ena:
            q = interp(self.vv_curve, v_pu - self.vv_shift_pu()) * self._q_base(self.vv_dept_ref, p_w)
            self.q_vv_var = lag_step(self.q_vv_var, q, dt_s, tau_from_olrt(self.vv_olrt_s))
            return self.q_vv_var, self.vv_pri
        if self.wv_ena:
            q = interp(self.wv_curve, p_w / self.p_max_discharge_w) * self._q_base(self.wv_dept_ref, p_w)
            self.q_wv_var = lag_step(self.q_wv_var, q, dt_s, tau_from_olrt(self.wv_olrt_s))
            return self.q_wv_var, self.wv_pri
        pf_on, pf, under = (
            (self.pf_inj_ena, self.pf_inj, self.pf_inj_under)
            if p_w >= 0.0
            else (self.pf_abs_ena, self.pf_abs, self.pf_abs_under)
        )
        if pf_on:
            q = abs(p_w) * math.sqrt(1.0 / (pf * pf) - 1.0) if 0.0 < pf < 1.0 else 0.0
            return (-q if under else q), PRI_PF
        if self.varset_ena:
            if self.varset_mod == VARSET_VARS:
                return self.varset_var, self.varset_pri
            return self.varset_pct / 100.0 * self._q_base(self.varset_mod, p_w), self.varset_pri
        return 0.0, PRI_ACTIVE

    def _apparent_limit(self, p_w: float, q_var: float, pri: str) -> tuple[float, float]:
        """P and Q inside the reactive rating and the apparent-power rating, by priority."""
        s, q_max = self.s_max_va, self.q_max_var
        if pri == PRI_PF:  # the power factor holds: P comes down with Q
            k = min(1.0, s / max(math.hypot(p_w, q_var), 1e-9), q_max / max(abs(q_var), 1e-9))
            return p_w * k, q_var * k
        q_var = min(max(q_var, -q_max), q_max)
        if pri == PRI_REACTIVE:
            q_var = min(max(q_var, -s), s)
            room = math.sqrt(max(s**2 - q_var**2, 0.0))
            return min(max(p_w, -room), room), q_var
        room = math.sqrt(max(s**2 - p_w**2, 0.0))
        return p_w, min(max(q_var, -room), room)

    def _cease(self) -> None:
        """Cease to energize: no lag, as a protection action."""
        self.p_w = self.q_var = self.p_target_w = self.q_target_var = 0.0
        self.q_vv_var = self.q_wv_var = self.p_droop_w = 0.0
        self._vw_p_w = None
        self.p_dc_w = 0.0
        self.mom_cess = False

    @property
    def p_ac_w(self) -> float:
        """Power at the AC terminals, including the stage's own consumption while energized."""
        if self.state in ("off", "tripped"):
            return 0.0
        return self.p_w - self.cfg.idle_loss_w
