"""Typed parameters of the protection kernel, their packing into the kernel's array, and the settings map.

The grid-code values (trips, ride-through regions, momentary cessation, ROCOF and phase-jump
ride-through, enter service) have one source, the grid-code profile data
(``config/profiles/ieee1547-2018.toml``, IEEE 1547-2018 as transcribed in the team notes A.6-A.10):
``ProtectParams`` has no defaults for them, and both ``params_from_settings`` and
``ProtectParams.for_category`` fill them from a resolved profile through ``_grid_fields`` and
``_islanding_fields``. The remaining fields (export cap, meter checks, detector tuning) map from the settings'
``[site]`` section; the tuning values there default to the defaults here. Values the notes mark
UNCONFIRMED are named in docs/protection.md.

Ownership (``[functions]``, docs/safety.md) decides how each detector runs: ``daemon`` at the
commissioned settings, the output ceasing by the clearing time; ``inverter`` as the supervisory backup
when ``functions.supervisory_backup`` is on (thresholds widened by the measurement accuracy, delays
``supervisory_extra_delay_s`` past the owner's, outside every ride-through requirement); off otherwise. ``ProtectParams.for_category(2, rated_w)`` gives the
Category II defaults; ``pack()`` checks every field (a clear error names the field, the value and the
allowed range) and returns the array.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

import msgspec

from drivers.sunspec.functions import inverter_reactive_modes
from edge.control import protect_types as pt
from edge.control.protect_types import Mode
from edge.settings.model import (
    FREQUENCY_TRIP_STAGES,
    VOLTAGE_TRIP_STAGES,
    FrequencyBand,
    FrequencyTripStage,
    Functions,
    Grid,
    Settings,
    VoltageBand,
    VoltageTripStage,
)
from edge.settings.profiles import load_profile

# The profile ``for_category`` reads its Category I, II and III defaults from.
CATEGORY_PROFILE = "ieee1547-2018"

# How a detector runs, from its owner in [functions] and functions.supervisory_backup.
Role = Literal["daemon", "backup", "off"]

# The longest clearing time 1547 allows (1000 s, OF1/UF1) plus the longest supervisory extra delay
# (functions.supervisory_extra_delay_s): a backup of an inverter set at the range's end.
MAX_CLEARING_S = 1010.0
# IEEE 1547-2018 Table 3 transient measurement accuracy (notes A.11): a backup on its own meter widens
# the owner's pickups by these so that a measurement difference between the two never makes it act
# where the owner must not.
BACKUP_V_MARGIN_PU = 0.02  # +-2 % VN (5 cycles)
BACKUP_F_MARGIN_HZ = 0.1  # 100 mHz (5 cycles)
# The owner's ROCOF detector rides through the category's ROCOF (1547.1 ramps at exactly that rate) plus
# the error of a frequency difference: twice the steady-state accuracy, 10 mHz (Table 3, notes A.11),
# over the window. A ramp's measurement lag is common to both ends and cancels; a project choice.
OWNER_F_ERROR_HZ = 0.01
# Detector tuning defaults (settings: site.rocof_window_s, site.rocof_pickup_s)
ROCOF_WINDOW_S = 0.2  # averaging window (UNCONFIRMED in the standard)
ROCOF_PICKUP_S = 0.3
# Phase jump: 1547 clause 6.5.2.6 asks a multi-phase DER to ride through individual-phase jumps below
# 60 degrees and a single-phase DER up to 60 degrees (notes A.9); the kernel's input is one vector
# shift whose phase basis depends on the meter, so the backup rides through the larger limit plus
# this margin (a project choice; no accuracy figure for phase angle is in the notes: UNCONFIRMED).
BACKUP_PHASE_JUMP_MARGIN_DEG = 10.0
# 1547 clause 8.1: an island is ceased within 2 s of its formation (notes A.10).
ISLAND_CLEARING_S = 2.0


class ProtectParamError(ValueError):
    """A protection parameter is out of range or inconsistent with another one."""


@dataclass(frozen=True)
class Trip:
    """One trip element: pickup (p.u. of VN or Hz) and clearing time in seconds."""

    pickup: float
    clearing_s: float


@dataclass(frozen=True)
class Band:
    """A ride-through band, from the continuous region outwards.

    ``far_edge`` is the band's edge away from nominal (p.u. or Hz); the minimum ride-through time is
    ``t0_s + slope_s_per_unit * |x - far_edge|`` (the slope expresses Table 14/15's linear mandatory
    regions, e.g. Cat II 3 s + 8.7 s/p.u. x (V - 0.65)).
    """

    far_edge: float
    mode: Mode
    t0_s: float
    slope_s_per_unit: float = 0.0


@dataclass(frozen=True, kw_only=True)
class ProtectParams:
    """All parameters of the protection kernel (units in the names; p.u. of VN; Hz; W; s).

    The grid-code fields (``ov2`` ... ``es_rand_s`` below, without defaults) come from a grid-code
    profile: build with ``for_category`` or ``params_from_settings``, not field by field.
    """

    rated_w: float
    category: int = 2
    # measured command-to-cease latency incl. one sampling period; negative = deliberately late
    # (a supervisory backup behind the certified inverter, see params_from_settings)
    latency_s: float = 0.2
    # --- grid code (profile): trips, ride-through regions, ROCOF / phase-jump limits, enter service
    ov2: Trip
    ov1: Trip
    uv1: Trip
    uv2: Trip
    of2: Trip
    of1: Trip
    uf1: Trip
    uf2: Trip
    v_cont_lo_pu: float
    v_cont_hi_pu: float
    f_cont_lo_hz: float
    f_cont_hi_hz: float
    v_lo_bands: tuple[Band, ...]
    v_hi_bands: tuple[Band, ...]
    f_lo_bands: tuple[Band, ...]
    f_hi_bands: tuple[Band, ...]
    # A ride-through region holds the voltage / frequency trip elements until its time has passed: the
    # supervisory backup's way (it acts outside every ride-through). The owner's trip settings take
    # precedence over ride-through (OpenDER; 1547.1 tests trips at settings inside the regions).
    rt_holds_v_trips: bool
    rt_holds_f_trips: bool
    rocof_limit_hz_s: float  # the detector's: beyond the category's ride-through (_islanding_fields)
    phase_jump_limit_deg: float  # the profile's multi-phase or single-phase limit
    # momentary cessation (1547 clause 6.4.2.7): output ceases while the lowest phase is below mc_low_pu
    # or the highest above mc_high_pu; only where the daemon owns the voltage trips and the profile asks
    momentary_cessation: bool
    mc_low_pu: float
    mc_high_pu: float
    es_v_lo_pu: float
    es_v_hi_pu: float
    es_f_lo_hz: float
    es_f_hi_hz: float
    es_delay_s: float
    es_ramp_s: float
    es_rand_s: float  # > 0: randomized delay instead of the ramp
    # --- project and site values: export cap, meter checks, detector tuning (settings: [site])
    mc_restore_s: float = 0.0  # restore output this long after the voltage is back inside the thresholds
    rocof_window_s: float = ROCOF_WINDOW_S
    rocof_pickup_s: float = ROCOF_PICKUP_S
    # ROCOF and phase-jump detectors on (off: the inverter owns anti-islanding and there is no backup)
    islanding_on: bool = True
    # ROCOF window + pickup + latency must stay within this: 2 s where the daemon owns anti-islanding,
    # 2 s + supervisory_extra_delay_s for the backup (it acts after the owner's deadline)
    island_clearing_s: float = ISLAND_CLEARING_S
    # Active method (site.island_dither_*): a reactive square wave of dither_var (0 = off) whose half
    # periods last at least dither_half_s (from the first cycle past it: up to cycle_s more); an island
    # once dither_n successive half periods moved the frequency against it by more than dither_df_hz.
    # The dithered Q stays within the stage's limits q_max_inj_var / q_max_abs_var, and where it would
    # take the command beyond s_rated_va, P gives way.
    dither_var: float = 0.0
    dither_half_s: float = 0.25
    dither_df_hz: float = 0.04
    dither_n: int = 3
    q_max_inj_var: float = 0.0
    q_max_abs_var: float = 0.0
    s_rated_va: float = 0.0
    response_tau_s: float = 0.0  # the stage's reactive response (inverter.response_tau_s)
    cycle_s: float = 0.1  # the daemon's cycle: how late a half period may end
    non_export: bool = True
    cap_wins: bool = True
    export_cap_w: float = 0.0
    margin_w: float = 250.0  # aim this far below the cap: the command is bounded by load + cap - margin
    fb_gain_per_s: float = 0.5
    trim_max_w: float = 500.0
    rise_w_per_s: float = 5000.0
    backstop_s: float = 2.0
    backstop_hold_s: float = 60.0
    stale_meter_s: float = 1.0
    frozen_tol_w: float = 0.0
    frozen_delta_w: float = 300.0
    frozen_s: float = 1.0
    frozen_still_s: float = 5.0  # 0 = off
    # The still-value heuristic (meters without a counter) acts only on a meter seen to resolve changes
    # smaller than this: a coarser one reads a steady load as one value for minutes.
    frozen_noise_w: float = 50.0
    # The counter check's longest wait while discharging: a counter still this long under a value within
    # frozen_noise_w is frozen (1.5 steps of a coarse counter at a low reading take minutes to hours).
    counter_stall_max_s: float = 45.0
    min_import_w: float = 100.0
    min_import_s: float = 1.0
    discharge_detect_w: float = 50.0
    # How long before its publication a meter value was measured (its averaging window): the load
    # estimate pairs the value with the inverter power over this window plus the polling gap.
    meter_window_s: float = 0.0
    # Inverter power steadier than this over a meter sample's window: the sample is clean enough for
    # the feedback trim.
    steady_tol_w: float = 150.0

    @classmethod
    def for_category(cls, category: int, rated_w: float, **overrides: object) -> ProtectParams:
        """Category I, II or III of the IEEE 1547-2018 profile (its data file is the only source of the
        grid-code values), the other fields at their defaults, then ``overrides``."""
        if category not in (1, 2, 3):
            raise ProtectParamError(f"category: {category!r} is not one of 1, 2, 3")
        grid = _category_grid(category)
        # As params_from_settings does for a multi-phase site whose daemon owns the protection.
        fields_ = _grid_fields(
            grid, voltage="daemon", frequency="daemon", es_owned=True, single_phase=False, backup_delay_s=0.0
        )
        fields_.update(
            _islanding_fields(
                grid, "daemon", window_s=ROCOF_WINDOW_S, pickup_s=ROCOF_PICKUP_S, backup_delay_s=0.0
            )
        )
        base = cls(rated_w=rated_w, category=category, **fields_)
        return replace(base, **overrides)  # type: ignore[arg-type]

    def pack(self) -> pt.FloatArray:
        """Check every field and return the kernel's parameter array."""
        self._check()
        p = pt.new_params()
        p[pt.P_RATED_W] = self.rated_w
        p[pt.P_LATENCY_S] = self.latency_s
        for k, trip in enumerate(
            (self.ov2, self.ov1, self.uv1, self.uv2, self.of2, self.of1, self.uf1, self.uf2)
        ):
            p[pt.P_TRIP + 2 * k] = trip.pickup
            p[pt.P_TRIP + 2 * k + 1] = trip.clearing_s
        p[pt.P_V_CONT_LO_PU] = self.v_cont_lo_pu
        p[pt.P_V_CONT_HI_PU] = self.v_cont_hi_pu
        p[pt.P_F_CONT_LO_HZ] = self.f_cont_lo_hz
        p[pt.P_F_CONT_HI_HZ] = self.f_cont_hi_hz
        for i_n, base, bands in (
            (pt.P_VLO_N, pt.P_VLO_BANDS, self.v_lo_bands),
            (pt.P_VHI_N, pt.P_VHI_BANDS, self.v_hi_bands),
            (pt.P_FLO_N, pt.P_FLO_BANDS, self.f_lo_bands),
            (pt.P_FHI_N, pt.P_FHI_BANDS, self.f_hi_bands),
        ):
            p[i_n] = len(bands)
            for k, band in enumerate(bands):
                p[base + 4 * k : base + 4 * k + 4] = (
                    band.far_edge,
                    int(band.mode),
                    band.t0_s,
                    band.slope_s_per_unit,
                )
        scalars = {
            pt.P_MC_RESTORE_S: self.mc_restore_s,
            # off: no voltage is below -inf or above inf
            pt.P_MC_LO_PU: self.mc_low_pu if self.momentary_cessation else -math.inf,
            pt.P_MC_HI_PU: self.mc_high_pu if self.momentary_cessation else math.inf,
            pt.P_RT_HOLDS_V_TRIPS: float(self.rt_holds_v_trips),
            pt.P_RT_HOLDS_F_TRIPS: float(self.rt_holds_f_trips),
            # off: no finite rate or angle is beyond an infinite limit
            pt.P_ROCOF_LIMIT_HZ_S: self.rocof_limit_hz_s if self.islanding_on else math.inf,
            pt.P_ROCOF_WINDOW_S: self.rocof_window_s,
            pt.P_ROCOF_PICKUP_S: self.rocof_pickup_s,
            pt.P_PHASE_JUMP_LIMIT_DEG: self.phase_jump_limit_deg if self.islanding_on else math.inf,
            pt.P_ES_V_LO_PU: self.es_v_lo_pu,
            pt.P_ES_V_HI_PU: self.es_v_hi_pu,
            pt.P_ES_F_LO_HZ: self.es_f_lo_hz,
            pt.P_ES_F_HI_HZ: self.es_f_hi_hz,
            pt.P_ES_DELAY_S: self.es_delay_s,
            pt.P_ES_RAMP_S: self.es_ramp_s,
            pt.P_ES_RAND_S: self.es_rand_s,
            pt.P_DITHER_VAR: self.dither_var,
            pt.P_DITHER_HALF_S: self.dither_half_s,
            pt.P_DITHER_DF_HZ: self.dither_df_hz,
            pt.P_DITHER_N: float(self.dither_n),
            pt.P_Q_MAX_INJ_VAR: self.q_max_inj_var,
            pt.P_Q_MAX_ABS_VAR: self.q_max_abs_var,
            pt.P_S_RATED_VA: self.s_rated_va,
            pt.P_NON_EXPORT: float(self.non_export),
            pt.P_CAP_WINS: float(self.cap_wins),
            pt.P_EXPORT_CAP_W: self.export_cap_w,
            pt.P_MARGIN_W: self.margin_w,
            pt.P_FB_GAIN_PER_S: self.fb_gain_per_s,
            pt.P_TRIM_MAX_W: self.trim_max_w,
            pt.P_RISE_W_PER_S: self.rise_w_per_s,
            pt.P_BACKSTOP_S: self.backstop_s,
            pt.P_BACKSTOP_HOLD_S: self.backstop_hold_s,
            pt.P_STALE_METER_S: self.stale_meter_s,
            pt.P_FROZEN_TOL_W: self.frozen_tol_w,
            pt.P_FROZEN_DELTA_W: self.frozen_delta_w,
            pt.P_FROZEN_S: self.frozen_s,
            pt.P_FROZEN_STILL_S: self.frozen_still_s,
            pt.P_FROZEN_NOISE_W: self.frozen_noise_w,
            pt.P_COUNTER_STALL_MAX_S: self.counter_stall_max_s,
            pt.P_MIN_IMPORT_W: self.min_import_w,
            pt.P_MIN_IMPORT_S: self.min_import_s,
            pt.P_DISCHARGE_DETECT_W: self.discharge_detect_w,
            pt.P_METER_WINDOW_S: self.meter_window_s,
            pt.P_STEADY_TOL_W: self.steady_tol_w,
        }
        for idx, value in scalars.items():
            p[idx] = value
        return p

    def _check(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float | int) and not isinstance(value, bool) and not math.isfinite(value):
                _fail(f.name, value, "a finite number")
        _range("rated_w", self.rated_w, 1.0, 1e7)
        _range("latency_s", self.latency_s, -10.0, 2.0)
        for name in ("ov2", "ov1", "uv1", "uv2"):
            trip: Trip = getattr(self, name)
            _range(f"{name}.pickup", trip.pickup, 0.0, 2.0)
            _range(f"{name}.clearing_s", trip.clearing_s, 0.0, MAX_CLEARING_S)
        for name in ("of2", "of1", "uf1", "uf2"):
            trip = getattr(self, name)
            _range(f"{name}.pickup", trip.pickup, 40.0, 70.0)
            _range(f"{name}.clearing_s", trip.clearing_s, 0.0, MAX_CLEARING_S)
        _range("ov2.pickup", self.ov2.pickup, self.ov1.pickup, 2.0)
        _range("uv2.pickup", self.uv2.pickup, 0.0, self.uv1.pickup)
        _range("of2.pickup", self.of2.pickup, self.of1.pickup, 70.0)
        _range("uf2.pickup", self.uf2.pickup, 40.0, self.uf1.pickup)
        _range("v_cont_lo_pu", self.v_cont_lo_pu, 0.5, 1.0)
        _range("v_cont_hi_pu", self.v_cont_hi_pu, 1.0, 1.5)
        _range("f_cont_lo_hz", self.f_cont_lo_hz, 40.0, self.f_cont_hi_hz)
        _range("f_cont_hi_hz", self.f_cont_hi_hz, self.f_cont_lo_hz, 70.0)
        for name, cont, over in (
            ("v_lo_bands", self.v_cont_lo_pu, False),
            ("v_hi_bands", self.v_cont_hi_pu, True),
            ("f_lo_bands", self.f_cont_lo_hz, False),
            ("f_hi_bands", self.f_cont_hi_hz, True),
        ):
            bands: tuple[Band, ...] = getattr(self, name)
            if len(bands) > pt.N_BANDS:
                _fail(name, len(bands), f"at most {pt.N_BANDS} bands")
            near = cont
            for k, band in enumerate(bands):
                if (band.far_edge <= near) if over else (band.far_edge >= near):
                    _fail(f"{name}[{k}].far_edge", band.far_edge, f"{'above' if over else 'below'} {near}")
                if band.mode == Mode.CONTINUOUS:
                    _fail(f"{name}[{k}].mode", band.mode, "not CONTINUOUS (that is the central region)")
                # EN 50549-1 rides through 47.5-51.5 Hz for 30 minutes
                _range(f"{name}[{k}].t0_s", band.t0_s, 0.0, 3600.0)
                _range(f"{name}[{k}].slope_s_per_unit", band.slope_s_per_unit, 0.0, 1000.0)
                if band.mode == Mode.MOMENTARY_CESSATION:
                    self._check_mc_band(f"{name}[{k}]", (near, band.far_edge), over)
                near = band.far_edge
        if self.momentary_cessation:
            _range("mc_low_pu", self.mc_low_pu, 0.0, self.v_cont_lo_pu)
            _range("mc_high_pu", self.mc_high_pu, self.v_cont_hi_pu, 2.0)
        _range("mc_restore_s", self.mc_restore_s, 0.0, 60.0)
        _range("rocof_limit_hz_s", self.rocof_limit_hz_s, 0.1, 10.0)
        _range("rocof_window_s", self.rocof_window_s, 0.0, 1.0)
        _range("island_clearing_s", self.island_clearing_s, ISLAND_CLEARING_S, ISLAND_CLEARING_S + 10.0)
        _range("rocof_pickup_s", self.rocof_pickup_s, 0.0, self.island_clearing_s)
        # 1547 clause 8.1: cease to energize within 2 s of island formation (notes A.10); a backup
        # within its extra delay after that
        lat = max(self.latency_s, 0.0)
        _range(
            "rocof_window_s + rocof_pickup_s + latency_s",
            self.rocof_window_s + self.rocof_pickup_s + lat,
            0.0,
            self.island_clearing_s,
        )
        _range("phase_jump_limit_deg", self.phase_jump_limit_deg, 1.0, 180.0)
        _range("cycle_s", self.cycle_s, 0.0, 1.0)
        _range("q_max_inj_var", self.q_max_inj_var, 0.0, 1e7)
        _range("q_max_abs_var", self.q_max_abs_var, 0.0, 1e7)
        _range("s_rated_va", self.s_rated_va, 0.0, 1e7)
        _range("response_tau_s", self.response_tau_s, 0.0, 10.0)
        _range("dither_var", self.dither_var, 0.0, 1e7)
        if self.dither_var > 0.0:
            self._check_dither(lat)
        _range("es_v_lo_pu", self.es_v_lo_pu, 0.5, 1.0)
        _range("es_v_hi_pu", self.es_v_hi_pu, 1.0, 1.5)
        _range("es_f_lo_hz", self.es_f_lo_hz, 40.0, self.es_f_hi_hz)
        _range("es_f_hi_hz", self.es_f_hi_hz, self.es_f_lo_hz, 70.0)
        _range("es_delay_s", self.es_delay_s, 0.0, 600.0)
        _range("es_ramp_s", self.es_ramp_s, 0.0, 1000.0)
        _range("es_rand_s", self.es_rand_s, 0.0, 1000.0)
        _range("export_cap_w", self.export_cap_w, 0.0, 1e7)
        _range("margin_w", self.margin_w, 0.0, 1e5)
        _range("fb_gain_per_s", self.fb_gain_per_s, 0.0, 5.0)
        _range("trim_max_w", self.trim_max_w, 0.0, 1e5)
        _range("rise_w_per_s", self.rise_w_per_s, 1.0, 1e7)
        _range("backstop_s", self.backstop_s, 0.1, 60.0)
        _range("backstop_hold_s", self.backstop_hold_s, 0.0, 3600.0)
        _range("stale_meter_s", self.stale_meter_s, 0.05, 10.0)
        _range("frozen_tol_w", self.frozen_tol_w, 0.0, 1e4)
        _range("frozen_delta_w", self.frozen_delta_w, 1.0, 1e5)
        _range("frozen_s", self.frozen_s, 0.0, 60.0)
        _range("frozen_still_s", self.frozen_still_s, 0.0, 3600.0)
        _range("frozen_noise_w", self.frozen_noise_w, 0.0, 1e4)
        _range("counter_stall_max_s", self.counter_stall_max_s, 5.0, 600.0)
        _range("min_import_w", self.min_import_w, 0.0, 1e5)
        _range("min_import_s + latency_s", self.min_import_s + lat, 0.0, ISLAND_CLEARING_S)
        _range("discharge_detect_w", self.discharge_detect_w, 0.0, 1e4)
        _range("meter_window_s", self.meter_window_s, 0.0, 5.0)
        _range("steady_tol_w", self.steady_tol_w, 0.0, 1e5)
        if self.non_export:
            if not self.cap_wins:
                _fail("cap_wins", self.cap_wins, "True at a non-export site (the cap must win over droop)")
            if self.export_cap_w != 0.0:
                _fail("export_cap_w", self.export_cap_w, "0 at a non-export site")
            _range("margin_w", self.margin_w, self.min_import_w, 1e5)

    def _check_dither(self, lat: float) -> None:
        """The active method's settings, named as the settings file names them."""
        _range("site.island_dither_half_s", self.dither_half_s, 0.05, 1.0)
        _range(
            "site.island_dither_pu (as var, within inverter.s_rated_va)",
            self.dither_var,
            0.0,
            self.s_rated_va,
        )
        for name, q_max in (
            ("inverter.q_max_inj_var", self.q_max_inj_var),
            ("inverter.q_max_abs_var", self.q_max_abs_var),
        ):
            # the dithered command stays within the reactive limit, and P gives way within the rating
            _range(name, q_max, self.dither_var, self.s_rated_va)
        # A difference of two readings, each within 10 mHz (1547 Table 3): less would be noise.
        _range("site.island_dither_df_hz", self.dither_df_hz, 2.0 * OWNER_F_ERROR_HZ, 1.0)
        # A frequency pulse (1547.1's 62.1 Hz for 0.11 s) moves two successive half-period ends.
        _range("site.island_dither_halves", self.dither_n, 3, 10)
        # The response to a reactive step shows at the measurement after the command path and the
        # stage's own reactive response: at a half period's end at least half of the swing must show.
        shown = dither_shown(self.dither_half_s, lat, self.response_tau_s)
        if not shown >= DITHER_SHOWN_MIN:
            _fail(
                "site.island_dither_half_s",
                self.dither_half_s,
                f"long enough for the frequency to show at least {DITHER_SHOWN_MIN:.0%} of the dither's swing "
                f"at its end through daemon.actuation_latency_s = {lat:g} s and the stage's reactive "
                f"response (inverter.response_tau_s = {self.response_tau_s:g} s); here {shown:.0%}",
            )
        # An island that forms just after a half period ended (or less than a latency before one ends):
        # the first response that is all island comes two half periods later, then halves - 1 more,
        # each up to a cycle late, then the cease; where the output restarts into an island (after
        # momentary cessation) the dither starts only once the stage's reading shows the discharge, a
        # latency later.
        bound = (self.dither_n + 1) * (self.dither_half_s + self.cycle_s) + 2.0 * lat
        if not bound <= self.island_clearing_s + 1e-9:
            _fail(
                "site.island_dither_half_s",
                self.dither_half_s,
                f"short enough that (site.island_dither_halves + 1) x (half period + daemon.cycle_s) + 2 x "
                f"daemon.actuation_latency_s stays within {self.island_clearing_s:g} s (1547 clause 8.1); "
                f"here {bound:.3f} s: a faster cycle and measurement path, fewer halves, or the "
                "minimum-import method",
            )

    def _check_mc_band(self, where: str, edges: tuple[float, float], over: bool) -> None:
        """A band of mode MOMENTARY_CESSATION lies wholly where the thresholds cease the output: the
        thresholds are the one definition of where output ceases."""
        if not self.momentary_cessation:
            _fail(f"{where}.mode", "MOMENTARY_CESSATION", "another mode while momentary_cessation is off")
        near = edges[0]
        if over and near < self.mc_high_pu:
            _fail(
                where, edges, f"at or above mc_high_pu ({self.mc_high_pu}, where output ceases) for its mode"
            )
        if not over and near > self.mc_low_pu:
            _fail(where, edges, f"at or below mc_low_pu ({self.mc_low_pu}, where output ceases) for its mode")


# 1547 momentary cessation: cease within this of the voltage crossing (notes A.8: OpenDER's limit; the
# clause's own wording is UNCONFIRMED).
MC_ENTER_S = 0.083
# Ceased = output below 1.5 MRA_P (7.5 % of S, 1547.1): a first-order stage falls that far from its
# rating in ln(1 / 0.075) time constants.
CEASE_TAUS = math.log(1.0 / 0.075)


# At a half period's end the frequency must show at least this share of the dither's swing (the
# threshold is judged against what shows, not against the full swing).
DITHER_SHOWN_MIN = 0.5


def dither_shown(half_s: float, delay_s: float, tau_s: float) -> float:
    """Share of the dither's swing a measurement at a half period's end shows, in steady alternation:
    the stage follows the square wave (after ``delay_s``) with a first-order lag ``tau_s``."""
    if tau_s <= 0.0:
        return 1.0 if half_s >= delay_s else -1.0
    settled = math.tanh(half_s / (2.0 * tau_s))  # where each half period ends up, of the amplitude
    return 1.0 - (1.0 + settled) * math.exp(-max(half_s - delay_s, 0.0) / tau_s)


def _fail(name: str, value: object, allowed: str) -> None:
    raise ProtectParamError(f"protection parameter {name} = {value!r}: must be {allowed}")


def _range(name: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        _fail(name, value, f"within [{lo}, {hi}]")


_MODES = {
    "mandatory": Mode.MANDATORY,
    "permissive": Mode.PERMISSIVE,
    "momentary_cessation": Mode.MOMENTARY_CESSATION,
    "cease": Mode.NONE,
}
_CATEGORIES = {"I": 1, "II": 2, "III": 3}


def export_cap_w(settings: Settings, mode: str | None = None) -> float:
    """The export allowed at the site meter in ``mode`` (default: the configured one): none in V2H
    (the EV serves the home), the site's cap otherwise."""
    return 0.0 if (mode or settings.operation.mode) == "v2h" else settings.site.export_cap_w


def cap_applies(settings: Settings, mode: str | None = None) -> bool:
    """Whether the export cap bounds discharge: at a non-export site, in V2H, or where a cap is set."""
    site = settings.site
    return site.non_export or (mode or settings.operation.mode) == "v2h" or site.export_cap_w > 0.0


def role(owner: str, supervisory_backup: bool) -> Role:
    """How the kernel runs a protection function with this owner (docs/safety.md, one owner)."""
    if owner == "daemon":
        return "daemon"
    return "backup" if supervisory_backup else "off"


def params_from_settings(settings: Settings, *, measured_latency_s: float) -> ProtectParams:
    """Kernel parameters from validated, commissioned settings.

    ``measured_latency_s`` is the command-to-cease latency measured at commissioning (one daemon cycle
    plus the Modbus write plus the inverter's stop). Each protection function runs by its owner
    (``role``): where the daemon owns it, at the commissioned settings with the latency subtracted so
    that output ceases by the clearing time; where the certified inverter owns it and
    ``functions.supervisory_backup`` is on, as its backup, outside the owner's settings and every
    ride-through requirement (``_grid_fields`` for the trips, ``_islanding_fields`` for ROCOF and phase
    jump); without the backup, not at all. The minimum-import check is the site's own term
    (``site.min_import_w``) and the export cap is the daemon's in every case.
    """
    grid, inverter, comm = settings.grid, settings.inverter, settings.commissioning
    if grid is None or inverter is None:
        raise ProtectParamError("protection parameters need a commissioned profile and [inverter] ratings")
    fn, site = settings.functions, settings.site
    # The 10-minute mean stage is the certified inverter's where it owns the voltage trips (the backup
    # supervises the instantaneous stages only); the daemon cannot own it yet.
    if fn.voltage_trip == "daemon" and grid.voltage_trip.ov_mean_10min.enabled:
        _fail(
            "grid.voltage_trip.ov_mean_10min.enabled",
            True,
            "false where functions.voltage_trip = 'daemon' (the kernel has no 10-minute mean stage)",
        )
    # The daemon's momentary cessation is P = Q = 0 set points (nothing may open), which act after the
    # command path and at the stage's own pace: 1547's entry time must fit both.
    ieee = (comm.profile or "").startswith("ieee1547")
    if fn.voltage_trip == "daemon" and grid.ride_through.momentary_cessation and ieee:
        cease_s = measured_latency_s + CEASE_TAUS * inverter.response_tau_s
        if cease_s > MC_ENTER_S + 1e-9:
            _fail(
                "daemon.actuation_latency_s",
                measured_latency_s,
                f"such that it and the stage's response (inverter.response_tau_s = "
                f"{inverter.response_tau_s:g} s, {CEASE_TAUS:.1f} of them to fall below 7.5 % of the "
                f"rating) cease within {MC_ENTER_S} s, as the daemon's momentary cessation must "
                f"(functions.voltage_trip = 'daemon', Cat III); here {cease_s:.3f} s. A cycle, polls, "
                "meter and stage that fast, or functions.voltage_trip = 'inverter' (it ceases by itself)",
            )
    _trips_fit_latency(grid, fn, measured_latency_s)
    dither_var = _dither_var(settings) if fn.anti_islanding == "daemon" else 0.0
    extra = fn.supervisory_extra_delay_s
    grid_fields = _grid_fields(
        grid,
        voltage=role(fn.voltage_trip, fn.supervisory_backup),
        frequency=role(fn.frequency_trip, fn.supervisory_backup),
        es_owned=fn.enter_service == "daemon",
        single_phase=comm.phase_topology == "single",
        backup_delay_s=extra,
    )
    grid_fields.update(
        _islanding_fields(
            grid,
            role(fn.anti_islanding, fn.supervisory_backup),
            window_s=max(site.rocof_window_s, settings.daemon.cycle_s),
            pickup_s=site.rocof_pickup_s,
            backup_delay_s=extra,
        )
    )
    return ProtectParams(
        rated_w=inverter.p_rated_w,
        category=_CATEGORIES.get(comm.abnormal_category or "", 2),
        latency_s=measured_latency_s,
        **grid_fields,
        non_export=site.non_export,
        cap_wins=site.cap_vs_droop == "cap_wins",
        export_cap_w=export_cap_w(settings),
        margin_w=site.export_margin_w,
        fb_gain_per_s=site.export_trim_gain_per_s,
        trim_max_w=site.export_trim_max_w,
        rise_w_per_s=site.export_rise_w_per_s,
        backstop_s=site.export_backstop_s,
        backstop_hold_s=site.export_backstop_hold_s,
        stale_meter_s=site.stale_meter_s,
        frozen_tol_w=site.meter_frozen_tol_w,
        frozen_delta_w=site.meter_frozen_delta_w,
        frozen_s=site.meter_frozen_s,
        frozen_still_s=site.meter_frozen_still_s,
        frozen_noise_w=site.meter_frozen_noise_floor_w,
        counter_stall_max_s=site.meter_counter_stall_max_s,
        min_import_w=site.min_import_w,
        min_import_s=site.min_import_s,
        rocof_window_s=site.rocof_window_s,
        dither_var=dither_var,
        dither_half_s=site.island_dither_half_s,
        dither_df_hz=site.island_dither_df_hz,
        dither_n=site.island_dither_halves,
        q_max_inj_var=inverter.q_max_inj_var,
        q_max_abs_var=inverter.q_max_abs_var,
        s_rated_va=inverter.s_rated_va,
        response_tau_s=inverter.response_tau_s,
        cycle_s=settings.daemon.cycle_s,
        discharge_detect_w=site.discharge_detect_w,
        meter_window_s=site.meter_window_s,
        steady_tol_w=site.export_trim_steady_tol_w,
    )


def _dither_var(settings: Settings) -> float:
    """The active method's amplitude where the daemon owns anti-islanding, or why it cannot run.

    Passive windows cannot see an island whose generation and load balance (1547.1's RLC test at 100 %):
    the daemon owns anti-islanding only with an active method, the reactive dither or, at a non-export
    site, the minimum-import check. The dither is reactive set points, which a stage running its own
    reactive mode drops.
    """
    site, fn, inverter = settings.site, settings.functions, settings.inverter
    assert inverter is not None  # checked by the caller
    if site.island_dither_pu == 0.0:
        if not (site.non_export and site.min_import_w > 0.0):
            _fail(
                "site.island_dither_pu",
                0.0,
                "above 0 where functions.anti_islanding = 'daemon' and the minimum-import check is off "
                "(site.non_export with site.min_import_w > 0): the passive windows alone cannot see a "
                "balanced island (1547 clause 8.1)",
            )
        return 0.0
    owned = inverter_reactive_modes(fn)
    if owned:
        _fail(
            "site.island_dither_pu",
            site.island_dither_pu,
            f"0 while functions.{owned[0]} = 'inverter': the stage runs its own reactive mode and drops "
            "the daemon's reactive set points, the dither among them (use the minimum-import check, or "
            "let the daemon own the reactive function)",
        )
    return site.island_dither_pu * inverter.s_rated_va


def _trips_fit_latency(grid: Grid, fn: Functions, latency_s: float) -> None:
    """Refuse a daemon-owned trip stage that clears faster than the daemon can cease.

    The kernel commands a trip ``latency_s`` before the clearing time; a clearing time shorter than the
    latency would be met only by luck (the sample that shows the crossing may come the whole
    measurement path late). The inverter's own trips have no such path.
    """
    stages: list[tuple[str, str, VoltageTripStage | FrequencyTripStage]] = []
    if fn.voltage_trip == "daemon":
        stages += [("voltage", n, getattr(grid.voltage_trip, n)) for n in VOLTAGE_TRIP_STAGES]
    if fn.frequency_trip == "daemon":
        stages += [("frequency", n, getattr(grid.frequency_trip, n)) for n in FREQUENCY_TRIP_STAGES]
    for kind, name, stage in stages:
        if stage.enabled and stage.clearing_s < latency_s - 1e-9:
            _fail(
                f"grid.{kind}_trip.{name}.clearing_s",
                stage.clearing_s,
                f"at least daemon.actuation_latency_s = {latency_s:g} s where functions.{kind}_trip = "
                "'daemon': the daemon cannot cease faster than its command-to-output time (measurement "
                "included). Where the profile fixes the clearing time (IEEE 1547's OV2), only a faster "
                "cycle, meter and stage with the latency measured again will do, or "
                f"functions.{kind}_trip = 'inverter' (its certified trips have no such path)",
            )


def _islanding_fields(
    grid: Grid, how: Role, *, window_s: float, pickup_s: float, backup_delay_s: float
) -> dict[str, Any]:
    """ROCOF and phase-jump detectors for the anti-islanding owner ``how``.

    ``daemon``: beyond the category's ROCOF ride-through (1547-2018 Table 21) by the error of a frequency
    difference over ``window_s`` (twice the steady-state accuracy), the profile's phase-jump limit,
    cleared within 2 s. ``backup``: beyond the ride-through by the worst error of a frequency
    difference over the window (twice the transient accuracy over ``window_s``, the larger of the
    averaging window and the daemon cycle), the pickup ``backup_delay_s`` longer, the phase-jump limit
    the largest 1547 rides through plus a margin. ``off``: neither detector runs.
    """
    rt = grid.ride_through
    if how == "backup":
        return {
            "rocof_limit_hz_s": rt.rocof_hz_per_s + 2.0 * BACKUP_F_MARGIN_HZ / window_s,
            "rocof_pickup_s": pickup_s + backup_delay_s,
            "phase_jump_limit_deg": max(rt.phase_jump_multi_phase_deg, rt.phase_jump_single_phase_deg)
            + BACKUP_PHASE_JUMP_MARGIN_DEG,
            "island_clearing_s": ISLAND_CLEARING_S + backup_delay_s,
        }
    return {
        "rocof_limit_hz_s": rt.rocof_hz_per_s + 2.0 * OWNER_F_ERROR_HZ / window_s,
        "rocof_pickup_s": pickup_s,
        "islanding_on": how == "daemon",
    }


@functools.cache
def _category_grid(category: int) -> Grid:
    """The grid settings of Category I, II or III as ``CATEGORY_PROFILE`` defines them (no overrides)."""
    profile = load_profile(CATEGORY_PROFILE)
    roman = {1: "I", 2: "II", 3: "III"}[category]
    # The normal category (A/B) sets only the reactive-power curves, none of which reaches this kernel.
    resolved = profile.resolve(profile.normal_categories[-1], roman)
    return msgspec.convert(resolved.defaults()["grid"], Grid)


def _grid_fields(
    grid: Grid, *, voltage: Role, frequency: Role, es_owned: bool, single_phase: bool, backup_delay_s: float
) -> dict[str, Any]:
    """The grid-code fields of ProtectParams from resolved grid settings (the one map for both builders).

    ``voltage`` / ``frequency``: how the voltage and the frequency trip elements run. ``daemon``: the
    commissioned pickups and clearing times. ``backup``: the pickups widened by the transient
    measurement accuracy and the clearing times ``backup_delay_s`` longer, so the output ceases that
    long after the owner's deadline (the kernel subtracts the latency from every clearing time).
    ``off``: the elements are neutralized (a pickup no grid reaches). ``es_owned`` False (the inverter
    runs enter service) keeps the window but adds no delay or ramp of the kernel's own on top of the
    inverter's: one owner.
    """
    vt, ft, rt, es = grid.voltage_trip, grid.frequency_trip, grid.ride_through, grid.enter_service

    def trip(
        how: Role, stage_enabled: bool, pickup: float, clearing_s: float, *, off: float, wider: float
    ) -> Trip:
        if how == "off" or not stage_enabled:
            return Trip(off, 1000.0)
        if how == "backup":
            # Widened, but not past what the quantity can read (a UV pickup at 0 pu stays at 0 pu).
            lo, hi = (0.0, 2.0) if off in (0.0, 2.0) else (40.0, 70.0)
            return Trip(min(max(pickup + wider, lo), hi), clearing_s + backup_delay_s)
        return Trip(pickup, clearing_s)

    # Momentary cessation belongs to the owner of the voltage trips (docs/safety.md): the inverter does
    # its own, and a backup only ever stops, so its bands ride through as permissive ones.
    mc = rt.momentary_cessation and voltage == "daemon"
    v_lo, v_cont, v_hi = _split_bands("grid.ride_through.voltage", rt.voltage, mc)
    f_lo, f_cont, f_hi = _split_bands("grid.ride_through.frequency", rt.frequency, False)
    dv, df = BACKUP_V_MARGIN_PU, BACKUP_F_MARGIN_HZ
    return {
        "ov2": trip(voltage, vt.ov2.enabled, vt.ov2.pickup_pu, vt.ov2.clearing_s, off=2.0, wider=dv),
        "ov1": trip(voltage, vt.ov1.enabled, vt.ov1.pickup_pu, vt.ov1.clearing_s, off=2.0, wider=dv),
        "uv1": trip(voltage, vt.uv1.enabled, vt.uv1.pickup_pu, vt.uv1.clearing_s, off=0.0, wider=-dv),
        "uv2": trip(voltage, vt.uv2.enabled, vt.uv2.pickup_pu, vt.uv2.clearing_s, off=0.0, wider=-dv),
        "of2": trip(frequency, ft.of2.enabled, ft.of2.pickup_hz, ft.of2.clearing_s, off=70.0, wider=df),
        "of1": trip(frequency, ft.of1.enabled, ft.of1.pickup_hz, ft.of1.clearing_s, off=70.0, wider=df),
        "uf1": trip(frequency, ft.uf1.enabled, ft.uf1.pickup_hz, ft.uf1.clearing_s, off=40.0, wider=-df),
        "uf2": trip(frequency, ft.uf2.enabled, ft.uf2.pickup_hz, ft.uf2.clearing_s, off=40.0, wider=-df),
        "v_cont_lo_pu": v_cont[0],
        "v_cont_hi_pu": v_cont[1],
        "f_cont_lo_hz": f_cont[0],
        "f_cont_hi_hz": f_cont[1],
        "v_lo_bands": v_lo,
        "v_hi_bands": v_hi,
        "f_lo_bands": f_lo,
        "f_hi_bands": f_hi,
        "rt_holds_v_trips": voltage == "backup",
        "rt_holds_f_trips": frequency == "backup",
        "phase_jump_limit_deg": (
            rt.phase_jump_single_phase_deg if single_phase else rt.phase_jump_multi_phase_deg
        ),
        "momentary_cessation": mc,
        "mc_low_pu": rt.mc_low_pu,
        "mc_high_pu": rt.mc_high_pu,
        "es_v_lo_pu": es.v_low_pu,
        "es_v_hi_pu": es.v_high_pu,
        "es_f_lo_hz": es.f_low_hz,
        "es_f_hi_hz": es.f_high_hz,
        "es_delay_s": es.delay_s if es_owned else 0.0,
        "es_ramp_s": es.ramp_s if es_owned else 0.0,
        "es_rand_s": es.randomized_delay_s if es_owned else 0.0,
    }


def _edges(band: VoltageBand | FrequencyBand) -> tuple[float, float]:
    if isinstance(band, VoltageBand):
        return band.v_low_pu, band.v_high_pu
    return band.f_low_hz, band.f_high_hz


def _split_bands(
    where: str, bands: Sequence[VoltageBand | FrequencyBand], mc_enabled: bool
) -> tuple[tuple[Band, ...], tuple[float, float], tuple[Band, ...]]:
    """Settings bands (low/high edges) to kernel bands (far edge, outwards from the continuous region)."""
    edges = [_edges(b) for b in bands]
    cont = [k for k, b in enumerate(bands) if b.mode == "continuous"]
    if len(cont) != 1:
        _fail(where, [b.mode for b in bands], "exactly one continuous band")
    lo_c, hi_c = edges[cont[0]]
    below: list[Band] = []
    above: list[Band] = []
    for k in sorted(range(len(bands)), key=lambda k: -edges[k][1]):
        b, (lo, hi) = bands[k], edges[k]
        if k == cont[0]:
            continue
        mode = _MODES[b.mode]
        if mode is Mode.MOMENTARY_CESSATION and not mc_enabled:
            mode = Mode.PERMISSIVE
        slope = getattr(b, "t_slope_s_per_pu", 0.0)
        t0 = b.t_min_s or 0.0
        if hi <= lo_c:  # under-value side: the far edge is the low edge, the slope counts from it
            below.append(Band(lo, mode, t0, slope))
        elif lo >= hi_c:
            if slope != 0.0:
                _fail(f"{where}[{k}].t_slope_s_per_pu", slope, "0 on the over-value side")
            above.append(Band(hi, mode, t0))
        else:
            _fail(f"{where}[{k}]", (lo, hi), f"outside the continuous band {lo_c}-{hi_c}")
    above.reverse()
    for side in (below, above):  # bands beyond the last one are "no requirement" already
        while side and side[-1].mode is Mode.NONE:
            side.pop()
    return tuple(below), (lo_c, hi_c), tuple(above)
