"""The cycle's controllers in priority order: dispatch, kernel I (grid-support P/Q functions and the
owner's and battery's limits), kernel II (protection, enter service, anti-islanding, export cap).

Pure computation on a snapshot: no I/O and no clock (time is the ``t_s`` argument), so a cycle can be
replayed. The kernels' records are allocated once here and refilled every cycle.

Where the snapshot lacks something the command falls safe: with no fresh power-stage reading there is
nothing to act on (P = Q = 0); with no fresh meter reading the export cap stops discharge (kernel II);
an unknown SoC counts as below the reserve (kernel I). A configuration the kernels cannot take holds
P = Q = 0 and says why; so does a power stage whose own grid functions do not read back as
commissioned (its reading's ``config_problem``): kernel II ceases as for a commissioning lock, and
enters service again through its enter-service rules once the problem is gone.

When kernel II calls the site meter frozen (or alive again) the log says so once per episode, with the
check that decided and the values it saw (docs/protection.md, frozen meter).
"""

from __future__ import annotations

import logging
import math

from drivers.capabilities import MeterReading, PowerStageRatings, PowerStageReading
from edge.control import pq, protect
from edge.control import protect_types as pt
from edge.control._pq_ref import PqParams
from edge.control.pq_params import PqSettingsError
from edge.control.pq_params import params_from_settings as pq_params_from_settings
from edge.control.pq_types import Constraint, binding_names
from edge.control.protect_params import ProtectParamError, cap_applies, export_cap_w
from edge.control.protect_params import params_from_settings as protect_params_from_settings
from edge.daemon.battery import ev_soc_of, power_limits, reserve_soc
from edge.daemon.snapshot import Command, Dither, Snapshot
from edge.settings import Settings, energize_lock

log = logging.getLogger(__name__)

SQRT3 = math.sqrt(3.0)
_EFFECT = "no discharge while the export cap applies"
PHASES = {"single": 1, "split": 2, "three": 3}


class KernelSettingsError(ValueError):
    """Settings the kernels cannot run (a reload with them is refused)."""


def _rating(value: float | None, unit: str) -> str:
    return "no rating reported" if value is None else f"{value:g} {unit}"


def phase_base_v(settings: Settings) -> float | None:
    """The line-to-neutral nominal voltage the meters' per-phase readings are compared with."""
    c = settings.commissioning
    if c.v_nominal_v is None:
        return None
    # A single-phase connection has one measured voltage, whichever conductors it is between.
    if c.voltage_basis == "line_neutral" or c.phase_topology == "single":
        return c.v_nominal_v
    return c.v_nominal_v / (2.0 if c.phase_topology == "split" else SQRT3)


KERNEL_HOLD = "settings the kernels cannot run"


def kernel_params(settings: Settings) -> tuple[PqParams, pt.FloatArray]:
    """The P/Q kernel's parameter record and the protection kernel's packed parameters for
    ``settings``; raises KernelSettingsError naming the setting the kernels cannot run."""
    pq_p = pq.PqParams()
    try:
        pq_params_from_settings(settings, actuation_tau_s=_response_tau_s(settings), into=pq_p)
        prot_p = protect_params_from_settings(
            settings, measured_latency_s=settings.daemon.actuation_latency_s
        ).pack()
    except (PqSettingsError, ProtectParamError) as exc:
        raise KernelSettingsError(str(exc)) from exc
    return pq_p, prot_p


def kernel_settings_problem(settings: Settings) -> str | None:
    """Why the kernels cannot run ``settings`` (the daemon would start holding P = Q = 0), or None."""
    try:
        kernel_params(settings)
    except KernelSettingsError as exc:
        return f"{KERNEL_HOLD}: {exc}"
    return None


def functions_unsupported(settings: Settings) -> list[str]:
    """What the settings give a SunSpec inverter that its driver cannot configure and verify (the
    power stage would report it as a configuration problem and the cycle hold zero)."""
    if settings.grid is None:
        return []
    from drivers.sunspec.functions import plan_from_settings

    plan = plan_from_settings(settings.functions, settings.grid, settings.inverter)
    return [f"settings the power stage's driver cannot configure and verify: {u}" for u in plan.unsupported]


class Controllers:
    """Kernel I then kernel II, with the settings mapped onto their parameters once."""

    def __init__(self, settings: Settings) -> None:
        self._pq_i, self._pq_s, self._pq_o = pq.PqInputs(), pq.PqState(), pq.PqOutputs()
        self._x, self._s, self._o = pt.new_inputs(), pt.new_state(), pt.new_outputs()
        self._pq_p = pq.PqParams()
        self._prot_p = pt.new_params()
        # Read times of the meter's last two readings: a polled meter's value was measured after the
        # previous read, which is what kernel II needs to pair it with the inverter's power.
        self._meter_read_s = (math.nan, math.nan)
        # The export cap's bound of the last cycle: in cap mode the basis is what the charger can
        # deliver under it, so that a grid function's response starts from the delivered power.
        self._cap_bound_w = 0.0
        self._ramp_w_per_s = 0.0
        self._settings_hold: str | None = None
        self._stage_hold: str | None = None  # the power stage's configuration problem, last cycle
        self._frozen_check = pt.FrozenCheck.NONE
        # The active method's last response and when: the kernel forgets it as soon as the output
        # stops (a trip too), while a technician wants the one that tripped or the last one seen.
        self._dither_last: tuple[float, float] | None = None
        self._configure(settings)
        if self._settings_hold is None:
            try:
                self._map(settings)
            except KernelSettingsError as exc:
                self._settings_hold = f"{KERNEL_HOLD}: {exc}"
                log.error("holding P = Q = 0: %s", self._settings_hold)

    @property
    def hold_reason(self) -> str | None:
        """Why P = Q = 0 is held whatever the grid does: settings that lock energizing, or the power
        stage's own functions not configured as commissioned. None while neither holds."""
        return self._settings_hold or self._stage_hold

    def _configure(self, settings: Settings) -> None:
        self.settings = settings
        self._settings_hold = energize_lock(settings)
        self.v_base_v = phase_base_v(settings)
        self.n_phases = PHASES[settings.commissioning.phase_topology or "three"]

    def _map(self, settings: Settings) -> None:
        """Map ``settings`` onto the kernels' parameters (their state is kept)."""
        pq_p, prot_p = kernel_params(settings)
        self._pq_p, self._prot_p = pq_p, prot_p
        self._ramp_w_per_s = pq_p.ramp_w_per_s

    def reload(self, settings: Settings) -> None:
        """Take new settings while running: the kernels keep their state (timers, filters, service
        state), so a reload is not a restart and does not re-enter service. Raises
        KernelSettingsError, leaving everything as it was, when the kernels cannot take them."""
        if energize_lock(settings) is None:
            self._map(settings)
        self._configure(settings)

    def _request(self, snap: Snapshot, soc: float, cap_mode: bool) -> tuple[float, list[str]]:
        """The dispatch basis: the mode's request, or its local policy where it has none, bounded by
        the owner's departure and, in cap mode, by what the cap lets the charger deliver; with the
        names of the bounds that cut it."""
        inv, b = self.settings.inverter, snap.dispatch
        assert inv is not None  # commissioned
        p = b.p_w
        if math.isnan(p):
            if b.mode == "v2h":
                p = inv.p_rated_w  # serve the home: as much as the cap (the house load) allows
            elif b.mode == "v1g":
                target = self.settings.owner.departure_soc or 1.0
                p = -inv.p_rated_charge_w if not soc >= target else 0.0  # unknown SoC: charge
            else:
                p = 0.0
        bound_by = []
        if snap.p_max_w < p:
            p = snap.p_max_w
            bound_by.append("departure")
        if cap_mode and p > 0.0 and self._cap_bound_w < p:
            # The cap bounds discharge only: a negative bound (a PV surplus) never cuts charging.
            p = max(self._cap_bound_w, 0.0)
            bound_by.append("export_cap")
        return p, bound_by

    def _voltages_pu(
        self, meter: MeterReading | None, stage: PowerStageReading | None
    ) -> tuple[float, float, float]:
        """(average, highest, lowest) phase voltage in p.u.; NaN when nothing measures it."""
        base = self.v_base_v
        if base is None:
            return math.nan, math.nan, math.nan
        phases = []
        if meter is not None:
            # Only the phases the site has: a three-phase meter on a single-phase site reads 0 V on
            # the others, which must not look like an under-voltage.
            wired = (meter.v_l1_v, meter.v_l2_v, meter.v_l3_v)[: self.n_phases]
            phases = [v for v in wired if v is not None]
        if not phases and stage is not None and stage.v_ac_v is not None:
            phases = [stage.v_ac_v]
        if not phases:
            return math.nan, math.nan, math.nan
        pu = [v / base for v in phases]
        return sum(pu) / len(pu), max(pu), min(pu)

    def step(self, snap: Snapshot) -> Command:
        """One cycle's command from one snapshot (``stop_request`` ramps down at the stop rate)."""
        if self._settings_hold is not None:
            return Command(0.0, 0.0, None, "locked", reasons=[self._settings_hold])
        t_s, meter, stage, ratings, battery = snap.t_s, snap.meter, snap.stage, snap.ratings, snap.battery
        stale_s = self.settings.site.stale_meter_s
        if stage is None or t_s - stage.t_s > stale_s or stage.p_w is None:
            why = "no reading from the power stage yet" if stage is None else "power stage data stale"
            return Command(0.0, 0.0, None, "no_power_stage", reasons=[why])

        v_avg, v_max, v_min = self._voltages_pu(meter, stage)
        f_hz = meter.f_hz if meter is not None and meter.f_hz is not None else stage.f_hz
        f = math.nan if f_hz is None else f_hz
        mode = snap.dispatch.mode
        cap_mode = cap_applies(self.settings, mode)
        self._prot_p[pt.P_EXPORT_CAP_W] = export_cap_w(self.settings, mode)
        # Serving the home follows the house load as fast as the cap's own rise limit allows; the
        # normal ramp is for dispatch changes.
        self._pq_p.ramp_w_per_s = (
            max(self._ramp_w_per_s, self.settings.site.export_rise_w_per_s)
            if mode == "v2h"
            else self._ramp_w_per_s
        )

        p_dis, p_chg = power_limits(ratings, stage, battery)
        reserve = reserve_soc(stage, battery)
        # The kernel judges the reserve on the lower of the two SoCs and fullness on the higher: without
        # the EV's figure the lower is our estimate's 2-sigma bound (the reserve's SoC), not its point
        # value, which let a dispatch discharge an uncertain estimate through the owner's reserve.
        soc_ev = reserve if (ev_soc := ev_soc_of(stage)) is None else ev_soc
        p_request, bound_by = self._request(snap, reserve, cap_mode)

        o = self._pq_o
        pq.pack_and_step(
            self._pq_p, self._pq_i, self._pq_s, o,
            t_s, v_avg, f, p_request, snap.dispatch.q_var, p_dis, p_chg, soc_ev, battery.soc_est, stage.p_w, int(snap.stop_request),
        )  # fmt: skip
        droop_extra = max(0.0, o.p_fw_w - o.p_pre_w) if o.binding & Constraint.DROOP_UF else 0.0

        x = self._x
        x[pt.I_T_S] = t_s
        x[pt.I_V_MAX_PU] = v_max
        x[pt.I_V_MIN_PU] = v_min
        x[pt.I_F_HZ] = f
        x[pt.I_PHASE_JUMP_DEG] = math.nan
        x[pt.I_P_REQ_W] = o.p_w
        x[pt.I_Q_REQ_VAR] = o.q_var
        x[pt.I_P_DROOP_W] = droop_extra
        x[pt.I_CAP_MODE] = 1.0 if cap_mode else 0.0
        if meter is not None:
            if meter.t_s != self._meter_read_s[1]:
                self._meter_read_s = (self._meter_read_s[1], meter.t_s)
            x[pt.I_METER_T_S] = meter.t_s
            x[pt.I_METER_T_LO_S] = self._meter_read_s[0]
            x[pt.I_METER_SEQ] = meter.t_s  # a new reading has a new read time
            x[pt.I_P_SITE_IMPORT_W] = math.nan if meter.frozen else meter.p_site_import_w
            counter = meter.e_counter_wh if self.settings.site.meter_alive_counter else None
            x[pt.I_METER_COUNTER] = math.nan if counter is None else counter
        x[pt.I_P_INV_MEAS_W] = stage.p_w
        x[pt.I_P_INV_T_S] = stage.t_s
        x[pt.I_U_RAND] = snap.u_rand
        self._stage_problem(stage, ratings)
        # Kernel II's lock: cease at once and hold; once released, enter service starts over.
        x[pt.I_LOCK] = 0.0 if self._stage_hold is None else 1.0
        x[pt.I_PERMIT] = 1.0
        protect.step(self._prot_p, self._s, x, self._o)
        out = self._o
        self._cap_bound_w = float(out[pt.O_CAP_BOUND_W])
        self._log_frozen_meter(meter, stage)

        state = pt.State(int(out[pt.O_STATE])).name.lower()
        reasons = [r.name.lower() for r in pt.Reason if int(out[pt.O_REASON]) & r and r.name]
        if self._stage_hold is not None:
            # the kernel's lock is this hold here (a settings lock returns before the kernels run)
            reasons = [self._stage_hold, *(r for r in reasons if r != "commissioning_lock")]
        binding = binding_names(o.binding)
        if int(out[pt.O_REASON]) & pt.Reason.CAP_LIMITING and "export_cap" not in bound_by:
            bound_by.append("export_cap")
        binding[:0] = bound_by
        return Command(
            p_w=float(out[pt.O_P_W]),
            q_var=float(out[pt.O_Q_VAR]),
            service=bool(out[pt.O_PERMIT_SERVICE] != 0.0),
            state=state,
            binding=binding,
            reasons=reasons,
            p_request_w=p_request,
            v_pu=None if math.isnan(v_avg) else v_avg,
            es_remaining_s=float(out[pt.O_ES_REMAINING_S]) if state in ("waiting", "tripped") else None,
            dither=self._dither(t_s),
        )

    def _dither(self, t_s: float) -> Dither | None:
        """The active method's figures, for the status a technician reads at commissioning."""
        amplitude = float(self._prot_p[pt.P_DITHER_VAR])
        if amplitude <= 0.0:
            return None
        response = float(self._o[pt.O_DITHER_RESP_HZ])
        if not math.isnan(response):
            self._dither_last = (response, t_s)
        last = self._dither_last
        return Dither(
            amplitude_var=amplitude,
            q_var=float(self._o[pt.O_DITHER_VAR]),
            response_hz=None if last is None else last[0],
            response_age_s=None if last is None else t_s - last[1],
            threshold_hz=float(self._prot_p[pt.P_DITHER_DF_HZ]),
            halves=round(float(self._prot_p[pt.P_DITHER_N])),
        )

    def _stage_problem(self, stage: PowerStageReading, ratings: PowerStageRatings | None) -> None:
        """Hold P = Q = 0 while the stage reports its own functions not as commissioned, or cannot take
        the reactive set points the daemon's active anti-islanding method writes."""
        problem = stage.config_problem
        hold = None if problem is None else f"power stage configuration: {problem}"
        dither_var = float(self._prot_p[pt.P_DITHER_VAR])
        if hold is None and dither_var > 0.0 and ratings is not None:
            # Without them the dither never reaches the grid and a balanced island goes unseen: the
            # stage refuses (or drops) every dithered set point.
            q_max = min(ratings.q_max_inject_var or 0.0, ratings.q_max_absorb_var or 0.0)
            if not ratings.q_setpoints:
                hold = (
                    "functions.anti_islanding = 'daemon': its active method (the reactive dither, "
                    "site.island_dither_pu) needs reactive set points, and the power stage takes none (no "
                    "SunSpec 704 VarSet, legacy or vendor-map controls, or a reactive mode of its own)"
                )
            elif q_max < dither_var:
                hold = (
                    f"functions.anti_islanding = 'daemon': its active method (the reactive dither, "
                    f"site.island_dither_pu) needs +/- {dither_var:g} var, and the power stage's ratings "
                    f"allow {_rating(ratings.q_max_inject_var, 'var')} injected, "
                    f"{_rating(ratings.q_max_absorb_var, 'var')} absorbed"
                )
            elif ratings.s_max_va is not None and ratings.s_max_va < float(self._prot_p[pt.P_S_RATED_VA]):
                # P gives way to the dither at inverter.s_rated_va; past the stage's own rating every
                # full-power set point would be refused
                hold = (
                    f"functions.anti_islanding = 'daemon': inverter.s_rated_va = "
                    f"{self._prot_p[pt.P_S_RATED_VA]:g} VA, but the power stage reports {ratings.s_max_va:g} VA: "
                    "its dithered set points at full power would exceed it (set inverter.s_rated_va to the "
                    "stage's rating)"
                )
        if hold != self._stage_hold:
            if hold is not None:
                log.warning("holding P = Q = 0: %s", hold)
            else:
                log.info("power stage configuration verified again: energizing allowed")
            self._stage_hold = hold

    def _log_frozen_meter(self, meter: MeterReading | None, stage: PowerStageReading) -> None:
        """Say once per episode which check called the meter frozen, on what values, and when it ends."""
        check = pt.FrozenCheck(int(self._o[pt.O_FROZEN_CHECK]))
        if check == self._frozen_check:
            return
        s = self._s
        value = "none" if meter is None else f"{meter.p_site_import_w:.0f} W"
        if check is pt.FrozenCheck.NONE:
            log.info("site meter alive again (reads %s)", value)
        elif check is pt.FrozenCheck.TRACKING:
            log.warning(
                "site meter frozen (tracking check): it reads %s while the power stage moved from %.0f W "
                "to %.0f W (meter_frozen_delta_w %.0f W for meter_frozen_s %.1f s); %s",
                value,
                s[pt.S_PINV_AT_CHG],
                stage.p_w,
                self._prot_p[pt.P_FROZEN_DELTA_W],
                self._prot_p[pt.P_FROZEN_S],
                _EFFECT,
            )
        elif check is pt.FrozenCheck.COUNTER:
            log.warning(
                "site meter frozen (energy counter): it reads %s and its counter stayed at %.1f Wh while "
                "its own reading says %.2f Wh went through (counter step %.3g Wh; unmoved with the value "
                "within the noise floor for %.1f s, meter_counter_stall_max_s %.0f s); %s",
                value,
                s[pt.S_CNT_LAST],
                s[pt.S_CNT_E_WH],
                s[pt.S_CNT_STEP],
                s[pt.S_T_PREV] - s[pt.S_STALL_T0],
                self._prot_p[pt.P_COUNTER_STALL_MAX_S],
                _EFFECT,
            )
        else:
            log.warning(
                "site meter frozen (still-value heuristic, no counter seen moving): it has read %s "
                "for %.1f s while discharging (meter_frozen_still_s %.1f s; smallest change seen %s, "
                "noise floor %.0f W); %s",
                value,
                s[pt.S_T_PREV] - s[pt.S_T_CHG],
                self._prot_p[pt.P_FROZEN_STILL_S],
                "none" if math.isnan(s[pt.S_RES_W]) else f"{s[pt.S_RES_W]:.3g} W",
                self._prot_p[pt.P_FROZEN_NOISE_W],
                _EFFECT,
            )
        self._frozen_check = check


def _response_tau_s(settings: Settings) -> float:
    return settings.inverter.response_tau_s if settings.inverter is not None else 0.0
