"""The bidirectional power stage (the charger's inverter) as a device: what it does with its settings.

It knows nothing of Modbus (``hil.plant.devices`` maps SunSpec registers to these settings). P and Q
follow their targets through a first-order lag (``tau_s``, default 100 ms); the DC side sees the AC
power through an efficiency that differs between discharging and charging. The device keeps its own
timers, as a certified inverter does: active/reactive setpoint reversion (``WSetRvrtTms``: after that
long without a new write or controller heartbeat, the setpoint becomes ``WSetRvrt``), enter-service
delay and ramp after a trip, anti-islanding. When it owns them (owner = inverter) it runs its own IEEE
1547 functions: volt-var, frequency droop, voltage and frequency must-trip curves.

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


@dataclass
class TripCurve:
    """Must-trip stages ``(threshold, clearing time)``: trip once beyond a threshold that long."""

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
            if self.timers[k] >= t_clear - 1e-9 and self.enabled:
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
        self.es_v_band_pu = (0.917, 1.05)
        self.es_f_band_hz = (f_nominal_hz - 0.5, f_nominal_hz + 0.1)
        # 1547 functions the inverter owns.
        self.vv_ena = cfg.volt_var
        self.vv_curve = list(VV_CAT_B)
        self.vv_olrt_s = 5.0
        self.droop_ena = cfg.freq_droop
        self.droop = Droop()
        cat = cfg.category
        self.lv = TripCurve(list(LV_TRIP[cat]), below=True, enabled=cfg.voltage_trip)
        self.hv = TripCurve(list(HV_TRIP[cat]), below=False, enabled=cfg.voltage_trip)
        self.lf = TripCurve(
            [(f_nominal_hz + d, t) for d, t in LF_TRIP_DHZ], below=True, enabled=cfg.frequency_trip
        )
        self.hf = TripCurve(
            [(f_nominal_hz + d, t) for d, t in HF_TRIP_DHZ], below=False, enabled=cfg.frequency_trip
        )
        # State.
        self.state = "idle"
        self.trip_cause = ""
        self.p_w = 0.0  # AC output (> 0 export), after the lag
        self.q_var = 0.0
        self.p_target_w = 0.0
        self.q_target_var = 0.0
        self.p_dc_w = 0.0
        self.q_vv_var = 0.0
        self.p_droop_w = 0.0
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
        for c in (self.lv, self.hv, self.lf, self.hf):
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
            for c in (self.lv, self.hv, self.lf, self.hf):
                c.reset()

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
            self.var_reverted = True
        if self.legacy:
            self._legacy_revert(t_s)
        self._protection(dt_s, v_min_pu, v_max_pu, f_hz, islanded)
        if self.state == "tripped":
            in_window = (
                not islanded
                and self.es_v_band_pu[0] <= v_avg_pu <= self.es_v_band_pu[1]
                and self.es_f_band_hz[0] <= f_hz <= self.es_f_band_hz[1]
            )
            self._es_ok_s = self._es_ok_s + dt_s if (in_window and self.es_permit) else 0.0
            if self._es_ok_s >= self.es_delay_s:
                # Stopped by command meanwhile: the trip is over, but it stays off until started.
                self.state = "ramp" if self.op_start else "off"
                self._ramp_s = 0.0
                self.trip_cause = ""
        elif not self.op_start or not self.es_permit:
            self.state = "off"
        elif self.state == "off":
            self.state = "ramp"
            self._ramp_s = 0.0
        if self.state == "ramp":
            self._ramp_s += dt_s
            if self._ramp_s >= self.es_ramp_s:
                self.state = "running"
        if self.state in ("off", "tripped") or v_avg_pu < 0.5:
            self._cease()
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
        p_target = min(max(p_cmd, -chg), dis)
        if not ev_plugged:
            self.p_w = 0.0  # the EVSE opened its contactors: the DC current stops at once
        if self.state == "ramp" and self.es_ramp_s > 0:
            lim = self.p_max_discharge_w * min(self._ramp_s / self.es_ramp_s, 1.0)
            p_target = min(max(p_target, -lim), lim)
        if self.vv_ena:
            q_vv = interp(self.vv_curve, v_avg_pu) * self.s_max_va
            self.q_vv_var = lag_step(self.q_vv_var, q_vv, dt_s, tau_from_olrt(self.vv_olrt_s))
            q_target = self.q_vv_var
        elif self.varset_ena:
            q_target = self.varset_var
        else:
            q_target = 0.0
        q_target = min(max(q_target, -self.q_max_var), self.q_max_var)
        # Apparent-power limit, active power first.
        q_room = max(self.s_max_va**2 - p_target**2, 0.0) ** 0.5
        q_target = min(max(q_target, -q_room), q_room)
        self.p_target_w = p_target
        self.q_target_var = q_target
        self.p_w = lag_step(self.p_w, p_target, dt_s, self.tau_s)
        self.q_var = lag_step(self.q_var, q_target, dt_s, self.tau_s)
        self.state = "running" if (self.state != "ramp" and (ev_plugged or self.p_w != 0.0)) else self.state
        if not ev_plugged and self.state == "running":
            self.state = "idle"
        p = self.p_w
        self.p_dc_w = p / self.cfg.eff_discharge if p >= 0.0 else p * self.cfg.eff_charge

    def _cease(self) -> None:
        """Cease to energize: no lag, as a protection action."""
        self.p_w = self.q_var = self.p_target_w = self.q_target_var = 0.0
        self.q_vv_var = self.p_droop_w = 0.0
        self.p_dc_w = 0.0

    @property
    def p_ac_w(self) -> float:
        """Power at the AC terminals, including the stage's own consumption while energized."""
        if self.state in ("off", "tripped"):
            return 0.0
        return self.p_w - self.cfg.idle_loss_w
