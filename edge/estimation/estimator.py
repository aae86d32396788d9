"""The battery estimator of one plugged-in vehicle: SoC, SoH, SoP (DC and AC side) and aging.

The daemon creates one per session (``BatteryEstimator.for_vehicle``), feeds every DC sample with
``update`` (monotonic time in seconds, pack voltage, pack current with discharge positive,
temperature, and whatever the EV forwards), reads ``soc`` / ``reserve_soc`` / ``limits`` / ``soh``,
keeps ``checkpoint`` now and then (so that a crash loses little), and calls ``end_session`` at
unplug to persist what was learned. The per-sample maths runs in the
compiled ECM kernel (``edge.estimation.ecm``); this class keeps the slow loops (capacity anchors,
resistance growth, aging counters, EV SoC fusion) around it.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import astuple, dataclass, replace

import numpy as np
import numpy.typing as npt

from edge.estimation import _ecm_ref as k
from edge.estimation.aging import AgingIndicators
from edge.estimation.capacity import AnchorTracker, CapacityEstimator, CapacityPoint
from edge.estimation.ecm import impl
from edge.estimation.fusion import EvSocPolicy, EvSocState
from edge.estimation.knee import MIN_C_RATE, KneeFix, KneeTracker
from edge.estimation.profile import GAS_CONSTANT, BatteryProfile
from edge.estimation.rc import UNKNOWN_RC_SIGMA, RcBank, RcChoice
from edge.estimation.record import (
    FORMER_UPPER_BOUND,
    ClockStamp,
    ElectrolyteMemory,
    RcScales,
    VehicleRecord,
    VehicleRecords,
)
from edge.estimation.resistance import UNKNOWN_GROWTH_SIGMA, ResistanceTracker, at_bound

log = logging.getLogger(__name__)

# A carried-over growth is never trusted tighter than this, so it can follow aging between sessions.
_GROWTH_SIGMA_FLOOR = 0.05
# The capacity is reported as learned once its standard deviation is within this share of it.
CAPACITY_LEARNED_REL_SIGMA = 0.03
# Half-width of the SoC span over which the OCV slope is taken for an anchor's uncertainty.
OCV_SLOPE_SPAN = 0.05
# The owner's reserve is judged this many standard deviations below the estimate.
RESERVE_SIGMAS = 2.0
# Identification has converged when the growth's standard deviation is within this, it is off its
# bounds, and the voltage innovations are consistent with their variance: their normalised square,
# averaged over NIS_TAU_S, within NIS_CONVERGED (3 sigma rms; 1 when the model fits).
GROWTH_SIGMA_CONVERGED = 0.25  # half the unknown vehicle's prior: the steps have told something
NIS_TAU_S = 300.0
# A knee fix further than this many sigmas (its own and the estimate's) from the estimate is not fused
# (a fix far off a surer estimate says more of the fix than of the SoC).
KNEE_GATE = 3.0
KNEE_FIXES_KEPT = 16
# A sample further than this many of the sensor's sigmas from the knee window's line is a disturbance.
KNEE_OUTLIER_SIGMAS = 4.0
# The least time a steady current must have flowed before its voltage's slope is taken (the profile's
# RC branches may settle sooner; the particles' surface lead builds over minutes).
KNEE_SETTLE_MIN_S = 60.0
NIS_CONVERGED = 9.0
# The RC identification is looked at every this many samples (a few tens of seconds change little of a
# regression that forgets over hours).
RC_APPLY_EVERY = 30
NIS_CLIP = 100.0  # one wild sample (a spike) moves the average by at most this over its weight
# While identification has not converged the SoP assumes at least the growth bound of a vehicle never
# seen (the tracker's default prior, 1.0 + 2 x 0.5): the identified values are not evidence yet.
UNCONVERGED_SOP_GROWTH = 2.0
# How far below the profile's new cell the growth's upper bound may fall before the profile's current
# dependence (its Butler-Volmer flattening) is no longer credited at all: the production spread of a
# cell type's resistance and a profile's fit, about 10 %. From 1 down to 1 - this the credit falls in
# proportion (``kinetic_credit``; why, ``_apply_growth``).
KINETIC_CREDIT_SPREAD = 0.1
# The least electrolyte diffusivity (over the reference's) the SoP's electrolyte limit is taken at: at
# its law's T0 the electrolyte is frozen and the limit is the present current's (electrolyte_cap).
DIFFUSIVITY_REL_MIN = 1e-6
# SoC points (0..1) over which the warm factor takes the new cell's largest fall with warmth.
WARM_GRID_POINTS = 21


def widened(held: tuple[float, float], i_cell_a: float) -> tuple[float, float]:
    """``held`` (discharge, charge magnitudes per cell) widened by a current (discharge positive)."""
    return max(held[0], i_cell_a), max(held[1], -i_cell_a)


def _floor_pct(share: float) -> int:
    """``share`` in whole percent, rounded down (a share short of all is not shown as all of it), with
    the float's error taken off first (0.29 * 100 is 28.999...)."""
    return math.floor(share * 100.0 + 1e-9)


def kinetic_credit(growth_upper: float) -> float:
    """The share of a profile's kinetic flattening the SoP credits a cell whose growth's upper bound
    is ``growth_upper``: all of it at or above the profile's new cell, none a spread below."""
    return min(max(1.0 - (1.0 - growth_upper) / KINETIC_CREDIT_SPREAD, 0.0), 1.0)


def _diffusivity_rel(profile: BatteryProfile, temp_c: float) -> float:
    """The electrolyte's diffusivity at ``temp_c`` over the reference's, by the profile's Vogel-Tammann-
    Fulcher law; 1 at or above the reference (no credit for warmth), ``DIFFUSIVITY_REL_MIN`` at least:
    a frozen electrolyte keeps a (vanishing) limit, K = 0 being the kernel's "none"."""
    t_k, ref_k = temp_c + k.KELVIN, profile.reference_temp_c + k.KELVIN
    b, t0 = profile.electrolyte_vtf_b_k, profile.electrolyte_vtf_t0_k
    if b <= 0.0 or t_k >= ref_k:
        return 1.0
    if t_k <= t0:
        return DIFFUSIVITY_REL_MIN
    return max(math.exp(-b * (1.0 / (t_k - t0) - 1.0 / (ref_k - t0))), DIFFUSIVITY_REL_MIN)


def _carried_growth_sigma(record: VehicleRecord) -> float:
    """The prior width of a persisted growth: never tighter than the floor, so that it can follow
    aging, and as wide as an unknown vehicle's where the stored value was the former upper bound's
    clamp rather than an identification."""
    if record.growth == FORMER_UPPER_BOUND:
        return max(record.growth_sigma, UNKNOWN_GROWTH_SIGMA)
    return max(record.growth_sigma, _GROWTH_SIGMA_FLOOR)


@dataclass(frozen=True)
class ChargerEfficiency:
    """DC/AC conversion efficiency of the charger, which differs by direction."""

    charge: float = 0.94  # DC energy into the pack / AC energy drawn
    discharge: float = 0.95  # AC energy exported / DC energy out of the pack

    def __post_init__(self) -> None:
        for name in ("charge", "discharge"):
            value = getattr(self, name)
            if not 0.5 <= value <= 1.0:
                raise ValueError(f"charger efficiency {name} = {value} outside [0.5, 1.0]")


@dataclass(frozen=True)
class EvLimits:
    """Limits the EV forwards (DC side, magnitudes); None where not forwarded."""

    max_charge_current_a: float | None = None
    max_discharge_current_a: float | None = None
    max_charge_power_w: float | None = None
    max_discharge_power_w: float | None = None

    def stated(self) -> EvLimits:
        """These limits with a NaN or infinite one as not forwarded and a negative one as 0 (nothing on
        that side, as the daemon's ``power_limits`` takes it): a NaN counted as a stated limit, so at an
        unknown temperature the rating was not derated, while ``min`` with it bounded nothing."""
        return EvLimits(*(None if v is None or not math.isfinite(v) else max(v, 0.0) for v in astuple(self)))


@dataclass(frozen=True)
class PowerLimits:
    """SoP over one horizon. Magnitudes (>= 0); AC values are what the kernel may command."""

    horizon_s: float
    discharge_current_a: float  # pack, within voltage, SoC window, derated rating and EV limits
    charge_current_a: float
    discharge_dc_w: float
    charge_dc_w: float
    export_ac_w: float  # discharge limit seen from the AC side
    import_ac_w: float  # charge limit seen from the AC side
    discharge_current_voltage_limited_a: float  # the model's own limit: voltage, electrolyte (pack)
    charge_current_voltage_limited_a: float
    fallback: bool = False  # identification not converged: conservative parameter set (see limits)


@dataclass(frozen=True)
class StateOfHealth:
    capacity_ah: float  # pack
    capacity_sigma_ah: float
    capacity_ratio: float  # vs nameplate
    resistance_growth: float  # instant step resistance vs the new cell
    resistance_growth_sigma: float
    capacity_observations: int
    resistance_steps: int


class SampleError(ValueError):
    """A sample the estimator cannot use; the message names the field, value and allowed range."""


class BatteryEstimator:
    """SoC / SoH / SoP estimator of one EV pack; see the module docstring."""

    def __init__(
        self,
        profile: BatteryProfile,
        *,
        initial_soc: float | None = None,
        initial_soc_sigma: float = 0.2,
        record: VehicleRecord | None = None,
        efficiency: ChargerEfficiency | None = None,
        ev_policy: EvSocPolicy | None = None,
        now: ClockStamp | None = None,
    ) -> None:
        """``now``: the moment the session starts, which relaxes the electrolyte's memory the record
        left (None: not known, and the memory starts empty)."""
        if initial_soc is not None and not -0.05 <= initial_soc <= 1.05:
            raise ValueError(f"initial_soc = {initial_soc} outside [-0.05, 1.05]")
        self.profile = profile
        self.efficiency = efficiency or ChargerEfficiency()
        self.ev_policy = ev_policy or EvSocPolicy()
        self.record = record or VehicleRecord(profile=profile.name)
        self.record.sessions += 1
        # A daemon restarted in a pause after a charge would otherwise take the charge's depletion as
        # gone: up to +20 % over the cell's 10 s charge limit for a minute or two (nmcstop20).
        memory = self.record.electrolyte
        self._held_at_start = (0.0, 0.0) if memory is None or now is None else memory.after(now)
        self._blind = False  # currents flowed that no accepted sample saw (see blind())
        self._blind_held = (0.0, 0.0)  # the largest of them each way, per cell
        self._table = profile.ocv_table()
        self._table_list = self._table.tolist()
        self._params = profile.kernel_params()
        self._state = np.zeros(k.S_N, dtype=np.float64)
        self._horizons = np.asarray(profile.horizons_s, dtype=np.float64)
        self._out = np.zeros(k.O_N * len(self._horizons), dtype=np.float64)
        self._coef = np.zeros(k.C_N, dtype=np.float64)
        self._kernel = impl.Kernel(
            self._state, self._params, self._table, self._horizons, self._out, self._coef
        )
        self._initial_soc = initial_soc
        self._initial_soc_sigma = initial_soc_sigma
        self.capacity = CapacityEstimator(profile.nameplate_capacity_ah, points=self.record.capacity_points)
        self.capacity.new_session()
        self.anchors = AnchorTracker(
            rest_current_a=profile.rest_current_a,
            rest_min_s=profile.rest_min_s,
            min_dsoc=0.1,
            gain_sigma=profile.current_gain_sigma,
            offset_sigma_a=profile.current_offset_sigma_a,
            soc_sigma_floor=0.01,
        )
        self.resistance = ResistanceTracker(
            prior_growth=self.record.growth,
            prior_sigma=_carried_growth_sigma(self.record),
            capacity_ah=profile.nameplate_capacity_ah,
        )
        carried = self.record.rc
        self.rc = RcBank(
            tau_s=(profile.tau1_s, profile.tau2_s),
            r_ohm=(profile.r1_ohm, profile.r2_ohm),
            noise_v=profile.voltage_sigma_v,
            carried=None if carried is None else (carried.scale, carried.sigma),
            carried_fast=None if carried is None else carried.fast,
        )
        # What the SoP takes of it: the profile's until identified.
        self.rc_choice = RcChoice(1.0, (1.0, 1.0))
        self.aging = AgingIndicators.from_dict(self.record.aging)
        self.ev = EvSocState()
        self.knee = (
            KneeTracker(
                soc=np.asarray(profile.ocv_soc),
                ocv=np.asarray(profile.ocv_v),
                slope_v=profile.ocv_knee_slope_v,
                sigma_soc=profile.ocv_sigma_soc,
                min_current_a=MIN_C_RATE * profile.nameplate_capacity_ah,
                # The model's RC drops are taken out of the voltage; its longest time constant left
                # out as well, for what of a cell's relaxation the model does not hold.
                settle_s=max(KNEE_SETTLE_MIN_S, profile.tau1_s, profile.tau2_s),
                outlier_v=KNEE_OUTLIER_SIGMAS * profile.voltage_sigma_v,
            )
            if profile.ocv_knee_slope_v > 0.0
            else None
        )
        # The session's last knee fixes: when, what, and what the fusion made of it.
        self.knee_fixes: deque[tuple[float, KneeFix, str]] = deque(maxlen=KNEE_FIXES_KEPT)
        self._t_s: float | None = None
        self._v_cell = 0.0
        self._temp_c = profile.reference_temp_c
        # The variance of the OCV's hysteresis state (-1 the discharge branch .. +1 the charge branch,
        # held as its voltage in P_HYST_V): at plug-in the branch is not known (0, uniform over -1..1);
        # a swing of a few points in one direction tells it whatever it was (see _track_hysteresis).
        self._hyst_var = 1.0 / 3.0
        self._set_ocv_var()
        self._temp_measured = False
        self._coef_scratch = [0.0] * k.C_N
        self._sop_temp_key: tuple[float, bool] | None = None
        self._floor = 1.0
        self._warm = 1.0
        self._nis_avg = NIS_CLIP  # nothing seen yet: not converged
        self._series_share: float | None = None
        self._has_kinetics = profile.i0_a > 0.0 or profile.i0_b > 0.0
        self._kinetic_credit = 1.0
        self._sop_cache: tuple[int, npt.NDArray[np.float64]] | None = None
        # Parameters, coefficients and outputs of the limits' second SoP (``_sop_out``).
        self._second_sop_scratch = (np.empty_like(self._params), np.zeros(k.C_N), np.empty_like(self._out))
        self._chord_coef = np.zeros(k.C_N, dtype=np.float64)
        self._apply_capacity()
        self._apply_growth()
        self._apply_rc()  # a known vehicle's scales price its first sample
        self.samples = 0
        self.rejected_samples = 0
        self._ev_limits = EvLimits()

    @classmethod
    def for_vehicle(
        cls,
        store: VehicleRecords,
        vehicle_id: str,
        profile: BatteryProfile,
        *,
        initial_soc: float | None = None,
        efficiency: ChargerEfficiency | None = None,
        ev_policy: EvSocPolicy | None = None,
        now: ClockStamp | None = None,
    ) -> tuple[BatteryEstimator, str]:
        """An estimator seeded with what ``store`` knows about the vehicle (``now``: the session's
        start, see the constructor), and its telemetry key."""
        key = store.key(vehicle_id)
        record = store.vehicle(key)
        if record is not None and record.profile != profile.name:
            log.warning(
                "vehicle %s was estimated with profile %s, now %s: starting over",
                key,
                record.profile,
                profile.name,
            )
            record = None
        est = cls(
            profile,
            initial_soc=initial_soc,
            record=record,
            efficiency=efficiency,
            ev_policy=ev_policy,
            now=now,
        )
        return est, key

    # -- per-sample input -------------------------------------------------------------------------

    def _check(self, name: str, value: float, lo: float, hi: float) -> None:
        if not (math.isfinite(value) and lo <= value <= hi):
            self.rejected_samples += 1
            raise SampleError(f"battery sample field {name} = {value!r} outside [{lo}, {hi}]")

    def update(
        self,
        t_s: float,
        pack_v_v: float,
        pack_i_a: float,
        temp_c: float | None = None,
        *,
        ev_soc: float | None = None,
        ev_limits: EvLimits | None = None,
        at_rest: bool | None = None,
    ) -> None:
        """Feed one DC sample taken at monotonic time ``t_s`` (positive current = discharge).

        ``at_rest=True`` tells that no current flows (the charger's setpoint is zero and settled, or its
        contactor is open): the measured current is then the sensor's offset. ``None`` lets the
        estimator judge from the current itself (below the profile's rest current).

        Raises SampleError (and leaves the state untouched) for a value that cannot be a measurement;
        a sample not later than the previous one is ignored (counted in ``rejected_samples``).
        """
        p = self.profile
        self._check("t_s", t_s, -1e12, 1e12)
        self._check("pack_v_v", pack_v_v, 0.5 * p.cell_v_min * p.series, 1.2 * p.cell_v_max * p.series)
        self._check("pack_i_a", pack_i_a, -1e4, 1e4)
        if temp_c is not None:
            self._check("temp_c", temp_c, -40.0, 90.0)
        if ev_soc is not None:
            self._check("ev_soc", ev_soc, 0.0, 1.0)
        if self._t_s is not None and t_s <= self._t_s:
            self.rejected_samples += 1
            return
        # The free voltage (OCV less the branches) of the state the last sample left, at its temperature:
        # what came after the kernel's update (EV SoC, offset, knee fusions) is in it, as it is in the
        # state the kernel now predicts from; S_VFREE_POST, from before them, would count their jump
        # as the voltage's.
        st = self._state
        vfree_post_prev = (
            float(impl.ocv_lookup(self._table, float(st[k.S_SOC]), self._temp_c))
            + float(self._params[k.P_HYST_V])
            - float(st[k.S_V1])
            - float(st[k.S_V2])
        )
        v_rc_prev = (float(st[k.S_V1]), float(st[k.S_V2]))
        if temp_c is not None:
            if temp_c != self._temp_c:
                self._temp_c = temp_c
                self._set_ocv_var()
            self._temp_measured = True
        if ev_limits is not None:
            self._ev_limits = ev_limits.stated()
        v = pack_v_v / p.series
        i = pack_i_a / p.parallel
        if self._t_s is None:
            self._start(v, i)
            dt = 0.0
        else:
            dt = t_s - self._t_s
        i_prev = self._state[k.S_I_PREV]
        i_held = float(i_prev - st[k.S_B])  # the true current the kernel's prediction holds
        v_prev = self._v_cell
        if p.ocv_hysteresis_v > 0.0 and dt > 0.0:
            self._track_hysteresis(dt, i_held)
        self._kernel.step(dt, i, v, self._temp_c)
        if self._blind:
            # What the charger drove while no sample was accepted may have flowed until a moment ago:
            # the memory holds it from now, and relaxes.
            st = self._state
            st[k.S_ELEC_DIS] = max(st[k.S_ELEC_DIS], self._blind_held[0])
            st[k.S_ELEC_CHG] = max(st[k.S_ELEC_CHG], self._blind_held[1])
            self._blind_held = (0.0, 0.0)
        if dt > 0.0:
            w = math.exp(-dt / NIS_TAU_S)
            self._nis_avg = w * self._nis_avg + (1.0 - w) * min(float(self._state[k.S_NIS]), NIS_CLIP)
            self._track_rc(
                dt, i_held, float(i_prev), float(i - i_prev), v - v_prev, vfree_post_prev, v_rc_prev
            )
            if self.resistance.accepts(dt, i_prev, i):
                self.resistance.update(
                    dt,
                    i_prev,
                    i,
                    v_prev,
                    v,
                    self._state[k.S_VFREE_PRIOR] - vfree_post_prev,
                    self._step_resistance_new(i_prev, i),
                )
            self._apply_growth()
            if self.knee is not None:
                i_true = i - self._state[k.S_B]
                st = self._state
                fix = self.knee.update(
                    dt,
                    i_true,
                    v + st[k.S_V1] + st[k.S_V2] - self._params[k.P_HYST_V],
                    self._coef[k.C_R0],
                    self._params[k.P_Q_AH],
                )
                if fix is not None:
                    self._fuse_knee(t_s, fix)
            # An anchor's SoC is read from the OCV table: the table's error counts in full, not only
            # the filter's variance (which, once the SoC no longer follows the voltage, holds what
            # the counting since the previous anchor tells: no independent evidence), or a datasheet
            # table would pass its own error on as a confident, wrong capacity. Where the filter's
            # variance sits at its floor (one reading of the table) the table's error is in both
            # terms: counted twice, on the safe side; each anchor then weighs half what it could,
            # so a generic table's profile learns its capacity slower.
            ocv_sigma = self._ocv_soc_sigma()
            point = self.anchors.update(
                dt,
                i_prev,
                self._state[k.S_SOC],
                self._state[k.S_P00] + ocv_sigma * ocv_sigma,
                self._state[k.S_B],
            )
            if point is not None:
                self.capacity.add(point)
                self._apply_capacity()
            self.aging.update(dt, i_prev * p.parallel, self._state[k.S_SOC], self._temp_c)
        self._observe_offset(i, at_rest)
        if ev_soc is not None:
            self._fuse_ev_soc(t_s, ev_soc, i)
        self._t_s = t_s
        self._v_cell = v
        self.samples += 1
        self._blind = False

    def _track_rc(  # noqa: PLR0917 - called per sample
        self,
        dt_s: float,
        i_held_a: float,
        i_meas_a: float,
        di_a: float,
        dv_v: float,
        vfree_post_prev_v: float,
        v_rc_prev_v: tuple[float, float],
    ) -> None:
        """Hand the RC tracker the interval just filtered: the true current the kernel held over it
        (measured: ``i_meas_a``; below the rest current a rest, whatever the offset state says), the
        filter's branch resistances (at the growth the kernel used, not yet updated: the kernel's
        charge-power set, C_POW, holds them), and the voltage's change ``dv_v`` less the OCV's by the
        charge counted (the kernel's predicted free voltage less its predicted branch change) and the
        instant response to the current's change ``di_a``. An interval with currents no sample saw
        (``blind``) closes the segment."""
        st = self._state
        filt = self._coef[k.C_POW :]
        r1, r2 = float(filt[k.C_R1]), float(filt[k.C_R2])
        r_inst = float(filt[k.C_R0]) + float(impl.kinetic_slope(filt, 0.0))
        a1, a2 = self.rc.profile.decay(dt_s)
        d_rc_pred = (a1 - 1.0) * v_rc_prev_v[0] + (a2 - 1.0) * v_rc_prev_v[1]
        d_rc_pred += (r1 * (1.0 - a1) + r2 * (1.0 - a2)) * i_held_a
        d_ocv = float(st[k.S_VFREE_PRIOR]) - vfree_post_prev_v + d_rc_pred
        held = abs(di_a) < self.resistance.min_step_a and not self._blind
        resting = abs(i_meas_a) < self.profile.rest_current_a
        y = dv_v - d_ocv + r_inst * di_a
        for tracker in self.rc.trackers:
            tracker.update(dt_s, i_held_a, r1, r2, y, held, resting)
        if self.samples % RC_APPLY_EVERY == 0:
            self._apply_rc()

    def _apply_rc(self) -> None:
        """Hand the SoP the RC identification's choice (``RcBank.choose``): the first time constant
        and the branches' scales, the profile's until identified."""
        choice = self.rc_choice = self.rc.choose(self.profile.horizons_s)
        self._params[k.P_SOP_TAU1] = choice.tau1_scale
        self._params[k.P_SOP_RC1], self._params[k.P_SOP_RC2] = choice.used

    def _start(self, v_cell: float, i_cell: float) -> None:
        soc = self._initial_soc
        if soc is None:
            # No better knowledge: read the OCV, wide open since the pack may not be at rest.
            soc = self.profile.ocv_to_soc(v_cell + i_cell * self.profile.r0_ohm, self._temp_c)
        s = self._state
        s[k.S_SOC] = soc
        s[k.S_P00] = self._initial_soc_sigma**2
        s[k.S_P11] = (0.02) ** 2
        s[k.S_P22] = (0.02) ** 2
        s[k.S_P33] = self.profile.current_offset_sigma_a**2
        s[k.S_I_PREV] = i_cell
        s[k.S_VFREE_POST] = v_cell + i_cell * self.profile.r0_ohm
        s[k.S_ELEC_DIS], s[k.S_ELEC_CHG] = self._held_at_start

    def _track_hysteresis(self, dt_s: float, i_cell: float) -> None:
        """Move the hysteresis state towards the branch of the current held over ``dt_s`` (charge: +1)
        by the SoC it moved, and hand the kernel its voltage and what is left of its uncertainty."""
        p = self.profile
        dsoc = abs(i_cell) * dt_s / (3600.0 * self._params[k.P_Q_AH])
        decay = math.exp(-p.ocv_hysteresis_rate * dsoc)
        branch = 1.0 if i_cell < 0.0 else -1.0
        h = self._params[k.P_HYST_V] / p.ocv_hysteresis_v
        # Whatever the state was, it is that much nearer the branch: its error shrinks alike.
        self._hyst_var *= decay * decay
        self._params[k.P_HYST_V] = p.ocv_hysteresis_v * (branch + (h - branch) * decay)
        self._set_ocv_var()

    def _set_ocv_var(self) -> None:
        # The table's error at the temperature, and the hysteresis's where its branch is not known:
        # the same kind of error (the cell's OCV off the table's), so the consider update treats both.
        hyst_v = self.profile.ocv_hysteresis_v
        self._params[k.P_OCV_VAR] = self.profile.ocv_var(self._temp_c) + hyst_v * hyst_v * self._hyst_var

    @property
    def ocv_hysteresis_v(self) -> float:
        """The OCV's hysteresis now (the cell's OCV less the table's), V per cell; its sigma is in
        the telemetry (the branch not yet known at plug-in)."""
        return float(self._params[k.P_HYST_V])

    def _observe_offset(self, i_cell: float, at_rest: bool | None) -> None:
        # At rest the measured current is the offset. Judged from the current alone, the true
        # current can be anything below the rest threshold, hence the wide variance; the gate
        # rejects a "rest" that the filter's offset says is a small real current.
        thr = self.profile.rest_current_a
        if at_rest is None:
            if abs(i_cell) <= thr:
                self._kernel.fuse_offset(i_cell, thr * thr, 3.0)
        elif at_rest:
            # The charger knows no current flows: authoritative, so no gate.
            self._kernel.fuse_offset(i_cell, (0.1 * thr) ** 2, math.inf)

    def _fuse_ev_soc(self, t_s: float, ev_soc: float, i_cell: float) -> None:
        # The EV's figure repeats its scale error in every reading: see _fuse_repeating.
        outcome = self._fuse_repeating(
            ev_soc, self.ev_policy.variance(i_cell, self._params[k.P_Q_AH]), self.ev_policy.gate
        )
        if outcome == "rejected":
            self.ev.rejected += 1
        elif outcome == "fused":
            self.ev.fused += 1
        else:
            self.ev.agreed += 1
        self.ev.last_soc = ev_soc
        self.ev.last_t_s = t_s

    def _fuse_knee(self, t_s: float, fix: KneeFix) -> None:
        # A knee's place on the table is off by the same amount at every crossing, and the filter's
        # own readings at the knee see that error too: a fix repeats its error, as the EV's figure.
        # Fused as independent evidence, the generic LFP curve's low knee (5 points early against
        # the A123 cell) pulled a known SoC 1.4 points off, for the rest of the record.
        before = float(self._state[k.S_SOC])
        outcome = self._fuse_repeating(fix.soc, fix.var, KNEE_GATE)
        self.knee_fixes.append((t_s, fix, outcome))
        log.info(
            "SoC at the %s knee (slope %.2f V per unit SoC): %.3f +/- %.3f, estimate %.3f -> %.3f (%s)",
            fix.knee,
            fix.slope_v,
            fix.soc,
            math.sqrt(fix.var),
            before,
            float(self._state[k.S_SOC]),
            outcome,
        )

    def _fuse_repeating(self, soc: float, err_var: float, gate: float) -> str:
        """Fuse a SoC figure whose error (variance ``err_var``) repeats in every figure of its kind.

        Such figures do not average: one can bring the SoC's variance down to its error, never below
        (fused with the variance that leaves exactly that); an estimate already better is only checked
        against it. The gate is judged on the figure's own variance (the kernel's would see the
        inflated one). Returns "rejected", "fused" or "agreed".
        """
        p00 = float(self._state[k.S_P00])
        nu = soc - float(self._state[k.S_SOC])
        if nu * nu > gate * gate * (p00 + err_var):
            return "rejected"
        if p00 > err_var:
            self._kernel.fuse_soc(soc, p00 * err_var / (p00 - err_var), math.inf)
            return "fused"
        return "agreed"

    def _apply_capacity(self) -> None:
        self._params[k.P_Q_AH] = self.capacity.estimate.capacity_ah

    def _apply_growth(self) -> None:
        est = self.resistance.estimate
        self._params[k.P_R_GROWTH] = est.growth
        floor, warm = self._sop_temperature_terms()  # also sets the electrolyte's limit there
        # Above the reference the SoP takes no credit for warmth (as the floor): the growth identified
        # times the new cell's resistance at the reference, not at the warmer temperature. The profile's
        # law is the new cell's kinetics; an aged cell's excess (contact resistance) does not fall with
        # warmth, and a growth identified at 25 degC was applied at 29 degC, when a small aged pack
        # self-heated on a charge, to a new cell's resistance 10 % lower there (+7.6 % over).
        sop = max(est.upper * warm, floor)
        if not self.identification_converged:
            sop = max(sop, UNCONVERGED_SOP_GROWTH * warm)
        self._params[k.P_SOP_GROWTH] = sop
        # Film or contact resistance (series) and slower kinetics or RC growth (scaled: Butler-Volmer
        # flattens with current) raise the step resistance alike at V2H currents; a 10 s pulse of
        # several C does not see them alike, and which one is worse depends on the profile's model.
        # So where the identified growth's upper bound exceeds the new cell's the limits are also
        # computed with that excess as series resistance (its share of the SoP's growth; the rest is
        # the cold floor's or the unconverged one's, which scale like the profile), and the lower wins
        # (``_sop_out``). The bound, not the mean: while the growth is uncertain its excess may all be
        # series (a generated pack aged by contact resistance was +9.7 % over with the mean).
        self._series_share = None
        if est.upper > 1.0:
            # sop >= upper * warm and warm >= 1, so sop - 1 >= warm * (upper - 1) > 0: within (0, 1].
            share = warm * (est.upper - 1.0) / (sop - 1.0)
            if share > self.profile.growth_ohmic_share:
                self._series_share = share
        # A cell whose instant resistance is below the profile's new cell's is not explained by aging,
        # which only raises it: the profile's kinetics are not this cell's, and neither is their
        # flattening with current, which a pulse of several C would be credited with. A flat cell
        # (ORegan2022's LG M50 with contact resistance, read as 0.53-0.79 at 20 degC) was +18 % over.
        # So as the growth's upper bound falls below 1 the limits are also computed with that share of
        # the kinetic overpotential taken as linear at its small-signal slope, all of it a spread below.
        # (A profile without a kinetic term has no flattening to withhold: no second SoP for it.)
        self._kinetic_credit = kinetic_credit(est.upper) if self._has_kinetics else 1.0

    def _step_resistance_new(self, i_prev: float, i: float) -> float:
        """The new cell's instant response to the step from ``i_prev`` to ``i`` (measured, the
        tracker guarantees a step), per ampere: R0 plus the kinetic term's chord at the currents the
        filter believes flow. Against its small-signal value a new pack stepping at 0.1-0.36C
        (small8_v2h) read a growth of 0.92 and its charge limit was +5.1 % over (docs/estimation.md)."""
        c = self._chord_coef
        impl.coefficients(self._params, self._table, float(self._state[k.S_SOC]), self._temp_c, 1.0, c)
        b = float(self._state[k.S_B])
        eta = float(impl.kinetic_overpotential(c, i - b)) - float(impl.kinetic_overpotential(c, i_prev - b))
        return float(c[k.C_R0]) + eta / (i - i_prev)

    def _sop_out(self) -> npt.NDArray[np.float64]:
        """The kernel's SoP outputs, or their minimum with a second set where the growth's kind or the
        cell's kinetics are in doubt (``_apply_growth``): the identified growth's excess priced as
        series resistance, or the kinetics' flattening credited only in part. Computed once per
        sample, when the limits are first read.

        The second set sees the state and parameters after the whole sample (EV SoC fused, growth
        and capacity applied), the kernel's before them: the minimum errs low, never high.
        """
        share = self._series_share
        credit = self._kinetic_credit
        if share is None and credit >= 1.0:
            return self._out
        if self._sop_cache is not None and self._sop_cache[0] == self.samples:
            return self._sop_cache[1]
        params, coef, out = self._second_sop_scratch
        np.copyto(params, self._params)
        soc = float(self._state[k.S_SOC])
        if credit < 1.0:  # the growth's upper bound is below 1, so no series share (above 1 only)
            # The SoP's coefficients; of their kinetic terms the uncredited share is replaced by its
            # small-signal resistance in series, the credited one keeps a Butler-Volmer curve of that
            # share's slope (which flattens later than the share of the whole curve: conservative).
            impl.sop_coefficients(params, self._table, soc, self._temp_c, coef)
            coef[k.C_R0] += (1.0 - credit) * float(impl.kinetic_slope(coef, 0.0))
            coef[k.C_I0A] = coef[k.C_I0A] / credit if credit > 0.0 else 0.0
            coef[k.C_I0B] = coef[k.C_I0B] / credit if credit > 0.0 else 0.0
        else:
            assert share is not None
            params[k.P_GROWTH_OHMIC] = share
            impl.sop_coefficients(params, self._table, soc, self._temp_c, coef)
        for j, horizon in enumerate(self._horizons):
            impl.sop(self._state, params, self._table, coef, float(horizon), self._temp_c, out, j * k.O_N)
        lowest = np.minimum(self._out, out)
        self._sop_cache = (self.samples, lowest)
        return lowest

    def _sop_temperature_terms(self) -> tuple[float, float]:
        """The least resistance growth the SoP may assume at the present temperature, and the factor
        that takes the new cell's resistance there back to the reference's where it is warmer (1 where
        it is not); sets the electrolyte's limit (``P_ELEC_K``, ``P_ELEC_T_EQ_S``) at the same
        temperature.

        The tracker identifies the instant step resistance at low current; a pulse of 10 s at several C
        also sees diffusion and electrolyte polarisation, which grow faster in the cold than the
        instant response and are not observable at V2H currents. So the SoP never assumes a cell
        better than the profile's new cell at its reference temperature, scaled by an Arrhenius law of
        documented activation energy (``sop_resistance_ea_floor_j_per_mol``) evaluated at the measured
        temperature less the sensor's stated error and a margin, or at ``sop_unknown_temp_c`` when
        nothing is measured.
        The floor is relative to the profile's own temperature dependence at the kernel's temperature.
        The electrolyte's limit follows its diffusivity's law (``electrolyte_vtf_*``) at that
        temperature: Sand's constant with its square root, the steady current's time with its inverse.
        Neither is credited above the reference.
        """
        key = (self._temp_c, self._temp_measured)
        if key == self._sop_temp_key:
            return self._floor, self._warm
        p = self.profile
        t_sop = self._temp_c - p.sop_temp_allowance_c if self._temp_measured else p.sop_unknown_temp_c
        t_ref_k = p.reference_temp_c + k.KELVIN
        colder = max(0.0, 1.0 / (t_sop + k.KELVIN) - 1.0 / t_ref_k)
        law = math.exp(p.sop_resistance_ea_floor_j_per_mol / GAS_CONSTANT * colder)
        params = self._params.tolist()

        def fall(soc: float) -> float:
            """The new cell's small-signal resistance at ``soc`` at the reference over that now."""
            c = self._coef_scratch
            k.coefficients(params, self._table_list, soc, p.reference_temp_c, 1.0, c)
            r_ref = c[k.C_RSS_NEW]
            k.coefficients(params, self._table_list, soc, self._temp_c, 1.0, c)
            return float(r_ref / c[k.C_RSS_NEW])

        model = 1.0 / fall(0.5)
        # The warm factor at the SoC where warmth lowers the new cell's resistance most (the kinetic
        # share is largest at the table's ends): no credit is left anywhere in the window.
        warm = 1.0
        if self._temp_c > p.reference_temp_c:
            warm = max(1.0, *(fall(j / (WARM_GRID_POINTS - 1)) for j in range(WARM_GRID_POINTS)))
        d_rel = _diffusivity_rel(p, t_sop)
        self._params[k.P_ELEC_K] = p.electrolyte_k_a_sqrt_s * math.sqrt(d_rel)
        self._params[k.P_ELEC_T_EQ_S] = p.electrolyte_t_eq_s / d_rel
        self._sop_temp_key = key
        self._floor = law / model
        self._warm = warm
        return self._floor, self._warm

    # -- outputs ----------------------------------------------------------------------------------

    @property
    def soc(self) -> float:
        """Estimated SoC (0..1, clamped for display; the filter keeps the unclamped value)."""
        return min(1.0, max(0.0, float(self._state[k.S_SOC])))

    @property
    def soc_sigma(self) -> float:
        """Standard deviation of the SoC: the filter's, plus the scale of an unknown fade.

        The filter's variance already holds the OCV table's error (its OCV-error state: on a flat OCV,
        LFP's plateau, the band stays as wide as the voltage leaves the SoC). Added: the SoC scale of a
        faded cell: its OCV is pinned at full charge (the upper voltage limit) and the table's SoC axis
        is stretched by the capacity ratio below it, so an unknown fade of relative standard deviation
        ``s`` (the capacity estimate's own: the nameplate prior until observations narrow it) moves the
        SoC read from the OCV by ``s (1 - soc)``.
        """
        soc = float(self._state[k.S_SOC])
        cap = self.capacity.estimate
        scale_sigma = (cap.sigma_ah / cap.capacity_ah) * (1.0 - min(max(soc, 0.0), 1.0))
        return math.sqrt(float(self._state[k.S_P00]) + scale_sigma * scale_sigma)

    def _ocv_soc_sigma(self) -> float:
        """The OCV table's error as SoC: in volts (at its temperature and in its temperature coefficient)
        divided by the table's slope over +/- OCV_SLOPE_SPAN around the estimate, and along its SoC axis."""
        soc = float(self._state[k.S_SOC])
        lo = max(0.0, soc - OCV_SLOPE_SPAN)
        hi = min(1.0, soc + OCV_SLOPE_SPAN)
        slope = (
            k.ocv_lookup(self._table_list, hi, self._temp_c)
            - k.ocv_lookup(self._table_list, lo, self._temp_c)
        ) / (hi - lo)
        along_v = math.sqrt(self._params[k.P_OCV_VAR]) / max(slope, 1e-6)
        return min(math.sqrt(along_v * along_v + self._params[k.P_OCV_SOC_VAR]), 1.0)

    @property
    def reserve_soc(self) -> float:
        """SoC for the owner's reserve: with a recent EV figure, the lower of it and our estimate (the
        owner's reserve is on the EV's scale); without one, our 2-sigma lower bound, not the point
        estimate: the reserve must hold while the estimate is uncertain (edge.daemon.battery)."""
        t = self._t_s if self._t_s is not None else 0.0
        if self.ev.fresh(t, self.ev_policy):
            return self.ev.reserve_soc(self.soc, t, self.ev_policy)
        return max(0.0, self.soc - RESERVE_SIGMAS * self.soc_sigma)

    @property
    def soh(self) -> StateOfHealth:
        cap = self.capacity.estimate
        g = self.resistance.estimate
        par = self.profile.parallel
        return StateOfHealth(
            capacity_ah=cap.capacity_ah * par,
            capacity_sigma_ah=cap.sigma_ah * par,
            capacity_ratio=cap.capacity_ah / self.profile.nameplate_capacity_ah,
            resistance_growth=g.growth,
            resistance_growth_sigma=g.sigma,
            capacity_observations=cap.points,
            resistance_steps=g.steps,
        )

    @property
    def sop_growth(self) -> float:
        """The resistance growth the SoP works with (against the new cell at the present temperature):
        the tracker's upper bound (taken at the reference temperature's resistance where warmer), the
        cold floor, or the unconverged fallback."""
        return float(self._params[k.P_SOP_GROWTH])

    @property
    def sop_basis(self) -> str:
        """What the limits rest on, in words for a technician (``v2gctl status``): the growth they use
        and where it comes from, and what else makes them lower than the identified cell's."""
        g = self.resistance.estimate
        read = f"read {g.growth:.2f} +/- {g.sigma:.2f}"
        if not self.identification_converged:
            held = self.resistance.held(g.growth)
            why = (
                "the profile does not fit this cell, growth held at a bound"
                if held
                else "identification not converged"
            )
            text = f"fallback: {why} ({read}); growth {self.sop_growth:.2f} assumed"
        else:
            if self.sop_growth > g.upper * self._warm:
                source = "the temperature floor"
            elif self._warm > 1.0:
                source = f"its upper bound {g.upper:.2f} taken at the reference temperature's resistance"
            else:
                source = "its upper bound"
            text = f"growth {self.sop_growth:.2f} ({source}; {read})"
        if self._series_share is not None:
            text += f", the upper bound's excess over a new cell ({g.upper - 1.0:.2f}) also priced as series resistance"
        if self._kinetic_credit < 1.0:
            text += (
                f", the profile's kinetic flattening credited {_floor_pct(self._kinetic_credit)} %"
                " (the cell reads below the profile's new cell)"
            )
        return text + self._temperature_basis()

    def _temperature_basis(self) -> str:
        """``sop_basis``'s words for the temperature's part: a charge limit of 0 must say why (a cold
        pack, or no pack temperature and no limit from the EV)."""
        p = self.profile
        factors = self._rating_factors()
        sides = []
        if self._temp_measured:
            for side, factor in zip(("discharge", "charge"), factors, strict=True):
                if factor < 1.0:
                    sides.append(f"the {side} rating derated to {_floor_pct(factor)} %")
            where = (
                f"at the pack's {self._temp_c:g} degC +/- {p.sop_temp_allowance_c:g} K"
                " (the sensor's error and a margin)"
            )
            return f"; {', '.join(sides)} {where}" if sides else ""
        for side, factor, told in zip(
            ("discharge", "charge"), factors, self._ev_states_limits(), strict=True
        ):
            if told:
                sides.append(f"the {side} rating not derated (the EV states its own {side} limit)")
            elif factor < 1.0:
                sides.append(
                    f"the {side} rating derated to {_floor_pct(factor)} % there"
                    f" (the EV states no {side} limit)"
                )
        text = (
            "; no pack temperature measured: the resistance floor taken at"
            f" {p.sop_unknown_temp_c:g} degC (sop.unknown_temp_c)"
        )
        return text + "".join(f", {side}" for side in sides)

    def _ev_states_limits(self) -> tuple[bool, bool]:
        """Whether the EV states its own (discharge, charge) limit, in power or current."""
        ev = self._ev_limits
        return (
            ev.max_discharge_power_w is not None or ev.max_discharge_current_a is not None,
            ev.max_charge_power_w is not None or ev.max_charge_current_a is not None,
        )

    @property
    def sop_kinetic_credit(self) -> float:
        """The share of the profile's kinetic flattening the limits credit the cell (``kinetic_credit``;
        1 for a profile without a kinetic term)."""
        return self._kinetic_credit

    @property
    def identification_converged(self) -> bool:
        """Whether the resistance identification can be trusted for the SoP.

        Not while the growth is uncertain or held at one of its bounds (the profile does not fit the
        cell), nor while the voltage innovations are larger than the filter's variance says (a wrong
        start, a model mismatch). Until then the limits fall back to the datasheet rating derated by
        temperature (``limits``).
        """
        g = self.resistance.estimate
        return (
            g.sigma <= GROWTH_SIGMA_CONVERGED
            and not self.resistance.held(g.growth)
            and self._nis_avg <= NIS_CONVERGED
        )

    def _rating_factors(self) -> tuple[float, float]:
        """(discharge, charge) derating of the datasheet rating at the least favourable temperature
        within the sensor's allowance of the measured one (the trapezoid's minimum over an interval is
        at one of its ends); at ``sop_unknown_temp_c`` when nothing is measured."""
        p = self.profile
        if self._temp_measured:
            temps = (self._temp_c - p.sop_temp_allowance_c, self._temp_c + p.sop_temp_allowance_c)
        else:
            temps = (p.sop_unknown_temp_c, p.sop_unknown_temp_c)
        d, c = p.discharge_derating, p.charge_derating
        return (
            min(k.derate(t, d.t0_c, d.t1_c, d.t2_c, d.t3_c) for t in temps),
            min(k.derate(t, c.t0_c, c.t1_c, c.t2_c, c.t3_c) for t in temps),
        )

    @property
    def capacity_learned(self) -> bool:
        """Whether the capacity comes from observations (sigma within 3 %) rather than the nameplate."""
        cap = self.capacity.estimate
        return cap.points > 0 and cap.sigma_ah <= CAPACITY_LEARNED_REL_SIGMA * cap.capacity_ah

    @property
    def current_offset_a(self) -> float:
        """The filter's estimate of the pack current sensor's offset (measured - true), A."""
        return float(self._state[k.S_B]) * self.profile.parallel

    @property
    def voltage_innovation_v(self) -> float:
        """Last measured minus predicted cell voltage (model health indicator)."""
        return float(self._state[k.S_INNOV])

    def limits(self) -> list[PowerLimits]:
        """SoP for every configured horizon (the latest sample's), lower of ours and the EV's."""
        p = self.profile
        ev = self._ev_limits
        # Without the hysteresis's charge branch, as the kernel prices charge power: a higher voltage
        # would let the EV's power cap draw more than its current cap.
        v_free = (float(self._state[k.S_VFREE_POST]) - max(float(self._params[k.P_HYST_V]), 0.0)) * p.series
        f_dis, f_chg = self._rating_factors()
        if not self._temp_measured:
            # Nothing measures the pack's temperature, but the EV states its own limits: its BMS knows
            # the temperature, so the rating is not derated for a guess (a guess of 0 degC would forbid
            # charging on every charger without a pack sensor); the EV's figures bound the limits below.
            told_dis, told_chg = self._ev_states_limits()
            f_dis = 1.0 if told_dis else f_dis
            f_chg = 1.0 if told_chg else f_chg
        converged = self.identification_converged
        rated_dis = p.cell_i_discharge_max_a * f_dis * p.parallel
        rated_chg = p.cell_i_charge_max_a * f_chg * p.parallel
        result = []
        sop_out = self._sop_out()
        for j, horizon in enumerate(self._horizons):
            o = sop_out[j * k.O_N : (j + 1) * k.O_N]
            i_dis = float(o[k.O_I_DIS]) * p.parallel
            i_chg = float(o[k.O_I_CHG]) * p.parallel
            p_dis = float(o[k.O_P_DIS]) * p.cells
            p_chg = float(o[k.O_P_CHG]) * p.cells
            # The datasheet rating derated at the least favourable temperature within the sensor's
            # allowance (the kernel derates at the measured one) caps whatever the model says; until
            # identification has converged the model itself runs with an unknown vehicle's growth
            # bound (``_apply_growth``), so the rating is then what mostly sets the limit.
            if i_dis > rated_dis:
                p_dis *= rated_dis / i_dis
                i_dis = rated_dis
            if i_chg > rated_chg:
                p_chg *= rated_chg / i_chg
                i_chg = rated_chg
            if ev.max_discharge_current_a is not None and ev.max_discharge_current_a < i_dis:
                # Scaling the power with the current prices it at the lower voltage of the larger
                # current: conservative.
                p_dis *= ev.max_discharge_current_a / i_dis
                i_dis = ev.max_discharge_current_a
            if ev.max_charge_current_a is not None and ev.max_charge_current_a < i_chg:
                # At a smaller charge current the voltage is lower than at ours: price the EV's current
                # at the free voltage (OCV less the RC voltages), which a charge pulse never goes below.
                i_chg = ev.max_charge_current_a
                p_chg = i_chg * v_free
            if ev.max_discharge_power_w is not None:
                p_dis = min(p_dis, ev.max_discharge_power_w)
            if ev.max_charge_power_w is not None:
                p_chg = min(p_chg, ev.max_charge_power_w)
            result.append(
                PowerLimits(
                    horizon_s=float(horizon),
                    discharge_current_a=max(0.0, i_dis),
                    charge_current_a=max(0.0, i_chg),
                    discharge_dc_w=max(0.0, p_dis),
                    charge_dc_w=max(0.0, p_chg),
                    export_ac_w=max(0.0, p_dis) * self.efficiency.discharge,
                    import_ac_w=max(0.0, p_chg) / self.efficiency.charge,
                    discharge_current_voltage_limited_a=float(o[k.O_I_DIS_V]) * p.parallel,
                    charge_current_voltage_limited_a=float(o[k.O_I_CHG_V]) * p.parallel,
                    fallback=not converged,
                )
            )
        return result

    def telemetry(self) -> dict[str, float]:
        """Flat figures for telemetry (no vehicle identifier in here), each estimate with its
        uncertainty: the SoC's sigma, the capacity's and whether it counts as learned, the growth's
        sigma and the growth the limits are computed with (``sop_growth``: the ``sop_*`` powers are
        that conservative bound, not a mean)."""
        soh = self.soh
        out: dict[str, float] = {
            "soc": self.soc,
            "soc_sigma": self.soc_sigma,
            "reserve_soc": self.reserve_soc,
            "capacity_ah": soh.capacity_ah,
            "capacity_sigma_ah": soh.capacity_sigma_ah,
            "capacity_learned": float(self.capacity_learned),
            "capacity_ratio": soh.capacity_ratio,
            "resistance_growth": soh.resistance_growth,
            "resistance_growth_sigma": soh.resistance_growth_sigma,
            "sop_growth": self.sop_growth,
            "sop_kinetic_credit": self.sop_kinetic_credit,
            "ev_soc_fused": float(self.ev.fused),
            "ev_soc_rejected": float(self.ev.rejected),
            "ev_soc_agreed": float(self.ev.agreed),
            "rejected_samples": float(self.rejected_samples),
            "current_offset_a": self.current_offset_a,
            "ocv_hysteresis_v": self.ocv_hysteresis_v,
            "ocv_hysteresis_sigma_v": self.profile.ocv_hysteresis_v * math.sqrt(self._hyst_var),
            "sop_fallback": float(not self.identification_converged),
            "efc": self.aging.equivalent_full_cycles(soh.capacity_ah),
        }
        for name, value in self.aging.to_dict().items():
            out[f"aging_{name}"] = value
        for lim in self.limits():
            h = f"{lim.horizon_s:g}s"
            out[f"sop_{h}_export_ac_w"] = lim.export_ac_w
            out[f"sop_{h}_import_ac_w"] = lim.import_ac_w
        return out

    def blind(self, i_cell_a: float | None) -> None:
        """Currents flow that no accepted sample sees (samples refused, DC readings missing);
        ``i_cell_a`` is the cell current the charger's power says flows (discharge positive), None
        where not even that is known (the last current seen is then taken to go on, as the kernel's
        hold does). The electrolyte's memory holds what flowed, from the next accepted sample."""
        self._blind = True
        if i_cell_a is not None and math.isfinite(i_cell_a):
            self._blind_held = widened(self._blind_held, i_cell_a)

    def held_now(self) -> tuple[float, float]:
        """The currents per cell (discharge, charge) whose depletion the electrolyte may hold now: its
        memory (before the first sample, what the record left), the present current (whose interval
        has not been held yet), and what flowed while blind."""
        s = self._state
        if self.samples:
            i_now = float(s[k.S_I_PREV] - s[k.S_B])
            dis = max(float(s[k.S_ELEC_DIS]), i_now, 0.0)
            chg = max(float(s[k.S_ELEC_CHG]), -i_now, 0.0)
        else:
            dis, chg = self._held_at_start
        return max(dis, self._blind_held[0]), max(chg, self._blind_held[1])

    def electrolyte_relevant_a(self) -> float:
        """The held current per cell below which the electrolyte's memory spends under a tenth of its
        budget on the shortest SoP pulse (inf without the limit): smaller ones need no record of their
        own."""
        kk, t_eq = float(self._params[k.P_ELEC_K]), float(self._params[k.P_ELEC_T_EQ_S])
        span = math.sqrt(t_eq) - math.sqrt(min(float(self._horizons.min()), t_eq))
        return 0.1 * kk / span if kk > 0.0 and span > 0.0 else math.inf

    @property
    def cell_v(self) -> float:
        """The last accepted cell voltage (the table's mid-SoC OCV before the first)."""
        return self._v_cell if self.samples else self.profile.soc_to_ocv(0.5)

    def checkpoint(self, until: ClockStamp | None = None) -> VehicleRecord:
        """The record ``end_session`` would return now, while the session goes on (nothing changes).

        A rest anchor still pending is in it as the observation it would make, so a crash during a
        long rest does not lose the charge counted since the previous anchor. ``until``: the moment
        until which the present currents may flow if the process dies now (the next checkpoint, and
        the power stage's own reversion after it); None keeps no electrolyte memory.
        """
        pending = self.anchors.pending()
        points = self.capacity.points if pending is None else self.capacity.points_with(pending)
        return self._record(points, until)

    def end_session(self, at: ClockStamp | None = None) -> VehicleRecord:
        """Close the session at ``at`` (None: not known, no electrolyte memory kept): commit a pending
        rest anchor and return the record to persist."""
        point = self.anchors.commit()
        if point is not None:
            self.capacity.add(point)
            self._apply_capacity()
        self.record = self._record(self.capacity.points, at)
        return self.record

    def _record(self, points: list[CapacityPoint], until: ClockStamp | None) -> VehicleRecord:
        # A new record each time: one handed out must not change under its holder as learning goes on.
        growth = self.resistance.estimate
        # A growth held at a bound is the clamp's: the next session starts it as unknown, not as known.
        held = self.resistance.held(growth.growth)
        memory = self.record.electrolyte  # a session that saw nothing leaves it as it was
        if self.samples > 0 or self._blind:
            memory = None
            if until is not None and self.profile.electrolyte_k_a_sqrt_s > 0.0:
                dis, chg = self.held_now()
                memory = ElectrolyteMemory(dis, chg, float(self._params[k.P_ELEC_T_EQ_S]), until)
        return replace(
            self.record,
            capacity_points=list(points),
            growth=growth.growth,
            growth_sigma=max(growth.sigma, UNKNOWN_GROWTH_SIGMA) if held else growth.sigma,
            aging=self.aging.to_dict(),
            electrolyte=memory,
            rc=self._rc_record(),
        )

    def _rc_record(self) -> RcScales | None:
        """The RC scales to keep: the record's where nothing was regressed, else the estimate's at the
        profile's time constants, a branch held at a bound with the unknown vehicle's sigma (the
        clamp's value, not the data's: the next session starts it as unknown there, as the growth);
        and the most probable faster first time constant, where it has converged (``RcBank.fast``)."""
        tracker = self.rc.profile
        e = tracker.estimate
        # Nothing regressed, or a state gone non-finite: what the record held, rather than no record.
        if tracker.samples == 0 or not all(math.isfinite(x) for x in (*e.scale, *e.sigma)):
            return self.record.rc
        sigma = tuple(
            max(e.sigma[j], UNKNOWN_RC_SIGMA) if at_bound(e.scale[j], tracker.bounds) else e.sigma[j]
            for j in (0, 1)
        )
        return RcScales(e.scale, (sigma[0], sigma[1]), self.rc.fast())
