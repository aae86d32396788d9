"""Protection parameters: the grid-code values have one source (the profile), the site's tuning reaches
the kernel's parameter array."""

from __future__ import annotations

import math
from dataclasses import MISSING, fields, replace

import numpy as np
import pytest

from edge.control import protect_types as pt
from edge.control.protect_params import (
    BACKUP_F_MARGIN_HZ,
    BACKUP_V_MARGIN_PU,
    OWNER_F_ERROR_HZ,
    ProtectParamError,
    ProtectParams,
    Trip,
    params_from_settings,
)
from edge.control.protect_types import Mode
from edge.settings.edit import set_value
from edge.settings.errors import SettingsError
from edge.settings.load import default_config_text, load_text
from edge.settings.model import Settings, Site

GRID_CODE = (
    "ov2", "ov1", "uv1", "uv2", "of2", "of1", "uf1", "uf2", "v_cont_lo_pu", "v_cont_hi_pu", "f_cont_lo_hz",
    "f_cont_hi_hz", "v_lo_bands", "v_hi_bands", "f_lo_bands", "f_hi_bands", "rocof_limit_hz_s",
    "phase_jump_limit_deg", "es_v_lo_pu", "es_v_hi_pu", "es_f_lo_hz", "es_f_hi_hz", "es_delay_s", "es_ramp_s",
    "es_rand_s", "momentary_cessation", "mc_low_pu", "mc_high_pu",
)  # fmt: skip

# [site] setting -> (ProtectParams field, index in the kernel's parameter array, a non-default value)
SITE_TUNING = {
    "export_trim_gain_per_s": ("fb_gain_per_s", pt.P_FB_GAIN_PER_S, 1.25),
    "export_trim_max_w": ("trim_max_w", pt.P_TRIM_MAX_W, 300.0),
    "export_trim_steady_tol_w": ("steady_tol_w", pt.P_STEADY_TOL_W, 80.0),
    "export_rise_w_per_s": ("rise_w_per_s", pt.P_RISE_W_PER_S, 2000.0),
    "export_backstop_hold_s": ("backstop_hold_s", pt.P_BACKSTOP_HOLD_S, 120.0),
    "meter_window_s": ("meter_window_s", pt.P_METER_WINDOW_S, 1.0),
    "meter_frozen_tol_w": ("frozen_tol_w", pt.P_FROZEN_TOL_W, 2.0),
    "meter_frozen_delta_w": ("frozen_delta_w", pt.P_FROZEN_DELTA_W, 500.0),
    "meter_frozen_s": ("frozen_s", pt.P_FROZEN_S, 3.0),
    "meter_frozen_still_s": ("frozen_still_s", pt.P_FROZEN_STILL_S, 0.0),
    "meter_frozen_noise_floor_w": ("frozen_noise_w", pt.P_FROZEN_NOISE_W, 20.0),
    "meter_counter_stall_max_s": ("counter_stall_max_s", pt.P_COUNTER_STALL_MAX_S, 90.0),
    "discharge_detect_w": ("discharge_detect_w", pt.P_DISCHARGE_DETECT_W, 120.0),
    "min_import_s": ("min_import_s", pt.P_MIN_IMPORT_S, 1.5),
    "rocof_window_s": ("rocof_window_s", pt.P_ROCOF_WINDOW_S, 0.5),
    "rocof_pickup_s": ("rocof_pickup_s", pt.P_ROCOF_PICKUP_S, 0.6),
    "island_dither_half_s": ("dither_half_s", pt.P_DITHER_HALF_S, 0.3),
    "island_dither_df_hz": ("dither_df_hz", pt.P_DITHER_DF_HZ, 0.06),
    "island_dither_halves": ("dither_n", pt.P_DITHER_N, 4),
}


# The daemon owns the protection: every detector at the commissioned settings.
DAEMON_OWNS = {
    "functions__voltage_trip": "daemon",
    "functions__frequency_trip": "daemon",
    "functions__anti_islanding": "daemon",
}


LATENCY_S = 0.05  # the settings' daemon.actuation_latency_s: the kernel gets the same one


def _settings(**changes: object) -> Settings:
    # the profile's values, not the bench's examples; a command path fast enough for the daemon to own
    # Cat III's momentary cessation and 1547's 0.16 s stages
    text = set_value(default_config_text(), "grid.voltage_trip.uv1.clearing_s", None)
    text = set_value(text, "grid.enter_service.ramp_s", None)
    text = set_value(text, "daemon.cycle_s", 0.02)
    text = set_value(text, "daemon.actuation_latency_s", LATENCY_S)
    text = set_value(text, "inverter.response_tau_s", 0.01)
    for key, value in changes.items():
        text = set_value(text, key.replace("__", "."), value)
    return load_text(text)


@pytest.mark.parametrize(("name", "category"), [("I", 1), ("II", 2), ("III", 3)])
def test_for_category_is_params_from_settings_of_that_category(name: str, category: int) -> None:
    # A multi-phase site (for_category carries the multi-phase phase-jump limit, 20 degrees) whose
    # daemon owns enter service (so the profile's delay and ramp reach the kernel), default [site].
    settings = _settings(
        commissioning__abnormal_category=name,
        commissioning__phase_topology="split",
        functions__enter_service="daemon",
        **DAEMON_OWNS,
    )
    params = params_from_settings(settings, measured_latency_s=LATENCY_S)
    # Only the measured latency and the site terms whose settings defaults differ from the kernel's
    # differ; every other field, grid code and tuning alike, is the same.
    ours = ProtectParams.for_category(
        category,
        params.rated_w,
        latency_s=params.latency_s,
        margin_w=params.margin_w,
        stale_meter_s=params.stale_meter_s,
        min_import_w=params.min_import_w,
        # the active method's amplitude and limits come from the inverter's ratings, its timing bound
        # from the daemon's cycle
        dither_var=params.dither_var,
        q_max_inj_var=params.q_max_inj_var,
        q_max_abs_var=params.q_max_abs_var,
        s_rated_va=params.s_rated_va,
        response_tau_s=params.response_tau_s,
        cycle_s=params.cycle_s,
    )
    assert ours == params
    assert ours.category == category
    assert (ours.pack() == params.pack()).all()  # and both pass the kernel's own checks


def test_grid_code_values_have_no_second_source() -> None:
    # ProtectParams carries no copy of the grid code: without a profile those fields cannot be built.
    no_default = {f.name for f in fields(ProtectParams) if f.default is MISSING}
    # and whether ride-through holds the trips comes with them (from the owner: _grid_fields)
    assert no_default == {"rated_w", *GRID_CODE, "rt_holds_v_trips", "rt_holds_f_trips"}
    with pytest.raises(TypeError):
        ProtectParams(rated_w=7000.0)  # type: ignore[call-arg]


def test_categories_differ_as_the_profile_says() -> None:
    cat = {c: ProtectParams.for_category(c, 7000.0) for c in (1, 2, 3)}
    assert (cat[1].uv1, cat[2].uv1, cat[3].uv1) == (Trip(0.70, 2.0), Trip(0.70, 10.0), Trip(0.88, 21.0))
    # the detector's limit: Table 21's ride-through plus the error of a difference over the 0.2 s window
    margin = 2.0 * OWNER_F_ERROR_HZ / 0.2
    assert [c.rocof_limit_hz_s for c in cat.values()] == pytest.approx(
        [0.5 + margin, 2.0 + margin, 3.0 + margin]
    )
    assert cat[3].v_hi_bands[0].mode is Mode.MOMENTARY_CESSATION
    assert cat[2].v_lo_bands[0].slope_s_per_unit == 8.7
    assert ProtectParams.for_category(2, 7000.0, es_delay_s=10.0).es_delay_s == 10.0  # overrides apply


@pytest.mark.parametrize("name", sorted(SITE_TUNING))
def test_site_tuning_defaults_are_the_kernel_defaults(name: str) -> None:
    field = SITE_TUNING[name][0]
    default = next(f.default for f in fields(ProtectParams) if f.name == field)
    assert getattr(Site(), name) == default


@pytest.mark.parametrize("name", sorted(SITE_TUNING))
def test_site_tuning_reaches_the_kernel_parameter_array(name: str) -> None:
    field, index, value = SITE_TUNING[name]
    settings = _settings(**{f"site__{name}": value}, **DAEMON_OWNS)
    params = params_from_settings(settings, measured_latency_s=LATENCY_S)
    assert getattr(params, field) == value
    p = params.pack()
    assert p[index] == value
    # and nothing else moved (but the ROCOF limit, whose margin is an error over the window)
    base = params_from_settings(_settings(**DAEMON_OWNS), measured_latency_s=LATENCY_S).pack()
    moved = [index, pt.P_ROCOF_LIMIT_HZ_S] if name == "rocof_window_s" else [index]
    assert np.flatnonzero(p != base).tolist() == sorted(moved)


@pytest.mark.parametrize("value", [4.9, 600.1])
def test_a_counter_stall_bound_out_of_range_is_refused_with_its_range(value: float) -> None:
    with pytest.raises(SettingsError, match=r"site\.meter_counter_stall_max_s = .*allowed: 5 … 600"):
        _settings(site__meter_counter_stall_max_s=value)


def test_single_phase_sites_ride_through_larger_phase_jumps() -> None:
    single = params_from_settings(
        _settings(commissioning__phase_topology="single", **DAEMON_OWNS), measured_latency_s=LATENCY_S
    )
    assert single.phase_jump_limit_deg == 60.0
    multi = params_from_settings(
        _settings(commissioning__phase_topology="split", **DAEMON_OWNS), measured_latency_s=LATENCY_S
    )
    assert multi.phase_jump_limit_deg == 20.0


def test_cat_iii_momentary_cessation_bands_come_through_where_the_daemon_owns_the_voltage_trips() -> None:
    params = params_from_settings(
        _settings(commissioning__abnormal_category="III", functions__voltage_trip="daemon"),
        measured_latency_s=LATENCY_S,
    )
    assert params.v_hi_bands[0].mode is Mode.MOMENTARY_CESSATION
    assert params.v_lo_bands[-1].mode is Mode.MOMENTARY_CESSATION
    assert (params.momentary_cessation, params.mc_low_pu, params.mc_high_pu) == (True, 0.50, 1.10)
    p = params.pack()
    assert (p[pt.P_MC_LO_PU], p[pt.P_MC_HI_PU]) == (0.50, 1.10)
    # The inverter owns them (the bench default): it ceases by itself; its backup only ever stops, so
    # the same bands ride through without a cessation of its own.
    backup = params_from_settings(
        _settings(commissioning__abnormal_category="III"), measured_latency_s=LATENCY_S
    )
    assert backup.v_hi_bands[0].mode is Mode.PERMISSIVE
    assert backup.v_hi_bands[0].t0_s == params.v_hi_bands[0].t0_s
    assert not backup.momentary_cessation
    p = backup.pack()
    assert (p[pt.P_MC_LO_PU], p[pt.P_MC_HI_PU]) == (-np.inf, np.inf)


TRIPS = ("ov2", "ov1", "uv1", "uv2", "of2", "of1", "uf1", "uf2")


def test_each_protection_function_runs_by_its_owner() -> None:
    """daemon: commissioned settings; inverter + backup: outside them; inverter without backup: off."""
    ours = params_from_settings(_settings(**DAEMON_OWNS), measured_latency_s=LATENCY_S)
    grid = _settings().grid
    assert grid is not None
    vt, ft, rt = grid.voltage_trip, grid.frequency_trip, grid.ride_through
    assert (ours.ov2, ours.uv1, ours.of2, ours.uf2) == (
        Trip(vt.ov2.pickup_pu, vt.ov2.clearing_s),
        Trip(vt.uv1.pickup_pu, vt.uv1.clearing_s),
        Trip(ft.of2.pickup_hz, ft.of2.clearing_s),
        Trip(ft.uf2.pickup_hz, ft.uf2.clearing_s),
    )
    # ROCOF beyond the category's ride-through by twice the 10 mHz steady-state accuracy over 0.2 s
    assert ours.rocof_limit_hz_s == pytest.approx(rt.rocof_hz_per_s + 0.1)
    assert (ours.rocof_pickup_s, ours.islanding_on) == (0.3, True)
    assert ours.phase_jump_limit_deg == rt.phase_jump_single_phase_deg  # the bench is single phase
    assert ours.island_clearing_s == 2.0

    backup = params_from_settings(_settings(), measured_latency_s=LATENCY_S)  # inverter owns all, backup on
    extra = 0.5  # functions.supervisory_extra_delay_s default
    for name in TRIPS:
        theirs, mine = getattr(ours, name), getattr(backup, name)
        wider = BACKUP_V_MARGIN_PU if name[0] in "ou" and name[1] == "v" else BACKUP_F_MARGIN_HZ
        outward = 1.0 if name[0] == "o" else -1.0
        assert mine.pickup == pytest.approx(theirs.pickup + outward * wider), name
        assert mine.clearing_s == pytest.approx(theirs.clearing_s + extra), name
    assert backup.latency_s == ours.latency_s == LATENCY_S  # one measured latency; the backup waits longer
    # ROCOF beyond the category's ride-through by twice the 100 mHz accuracy over the 0.2 s window
    assert backup.rocof_limit_hz_s == pytest.approx(rt.rocof_hz_per_s + 1.0)
    assert backup.rocof_pickup_s == pytest.approx(0.3 + extra)
    assert backup.phase_jump_limit_deg == 70.0  # beyond the 60 degrees 1547 rides through
    assert backup.island_clearing_s == pytest.approx(2.0 + extra)
    backup.pack()

    off = params_from_settings(_settings(functions__supervisory_backup=False), measured_latency_s=LATENCY_S)
    assert [getattr(off, n) for n in TRIPS] == [Trip(2.0, 1000.0)] * 2 + [Trip(0.0, 1000.0)] * 2 + [
        Trip(70.0, 1000.0)
    ] * 2 + [Trip(40.0, 1000.0)] * 2
    p = off.pack()
    assert p[pt.P_ROCOF_LIMIT_HZ_S] == np.inf and p[pt.P_PHASE_JUMP_LIMIT_DEG] == np.inf
    # and the backup switch does not touch what the daemon owns
    ours_no_backup = params_from_settings(
        _settings(functions__supervisory_backup=False, **DAEMON_OWNS), measured_latency_s=LATENCY_S
    )
    assert ours_no_backup == ours


def test_owners_are_honoured_per_function() -> None:
    """Voltage trips owned by the daemon, frequency trips and anti-islanding by the inverter."""
    mixed = params_from_settings(_settings(functions__voltage_trip="daemon"), measured_latency_s=LATENCY_S)
    ours = params_from_settings(_settings(**DAEMON_OWNS), measured_latency_s=LATENCY_S)
    assert (mixed.ov2, mixed.ov1, mixed.uv1, mixed.uv2) == (ours.ov2, ours.ov1, ours.uv1, ours.uv2)
    assert mixed.of2.pickup == pytest.approx(ours.of2.pickup + BACKUP_F_MARGIN_HZ)
    assert mixed.rocof_limit_hz_s > ours.rocof_limit_hz_s
    islanding_only = params_from_settings(
        _settings(functions__anti_islanding="daemon", functions__supervisory_backup=False),
        measured_latency_s=LATENCY_S,
    )
    assert islanding_only.ov2 == Trip(2.0, 1000.0)  # the inverter's trips, no backup
    assert (islanding_only.islanding_on, islanding_only.rocof_limit_hz_s) == (True, ours.rocof_limit_hz_s)


@pytest.mark.parametrize("owns", [DAEMON_OWNS, {}], ids=["daemon", "backup"])
def test_the_rocof_detector_must_act_within_its_island_clearing_time(owns: dict[str, str]) -> None:
    """Daemon-owned: window + pickup + latency within 2 s (clause 8.1). The backup's extra delay moves
    its pickup and its deadline alike, so the same tuning passes or fails for both."""
    fits = _settings(site__rocof_window_s=0.7, site__rocof_pickup_s=1.0, **owns)
    params_from_settings(fits, measured_latency_s=LATENCY_S).pack()  # 2.0 s (2.5 s for the backup)
    late = _settings(site__rocof_window_s=1.0, site__rocof_pickup_s=1.0, **owns)
    with pytest.raises(ProtectParamError, match="rocof_window_s \\+ rocof_pickup_s \\+ latency_s"):
        params_from_settings(late, measured_latency_s=LATENCY_S).pack()


def test_site_terms_are_carried_over() -> None:
    params = params_from_settings(
        _settings(
            site__non_export=True,
            site__export_cap_w=0.0,
            site__min_import_w=80.0,
            site__export_margin_w=200.0,
        ),
        measured_latency_s=0.2,
    )
    assert (params.non_export, params.min_import_w, params.margin_w, params.cap_wins) == (
        True,
        80.0,
        200.0,
        True,
    )
    params.pack()


def test_uncommissioned_settings_are_refused() -> None:
    with pytest.raises(ProtectParamError, match="commissioned"):
        params_from_settings(Settings(), measured_latency_s=0.2)


def test_enter_service_owned_by_the_inverter_adds_no_delay_of_ours() -> None:
    ours = params_from_settings(_settings(functions__enter_service="daemon"), measured_latency_s=LATENCY_S)
    theirs = params_from_settings(
        _settings(functions__enter_service="inverter"), measured_latency_s=LATENCY_S
    )
    assert (ours.es_delay_s, ours.es_ramp_s) == (300.0, 300.0)
    assert (theirs.es_delay_s, theirs.es_ramp_s, theirs.es_rand_s) == (0.0, 0.0, 0.0)
    assert theirs.es_v_lo_pu == ours.es_v_lo_pu  # the window itself still applies


def test_the_active_method_runs_only_where_the_daemon_owns_anti_islanding() -> None:
    """Its amplitude is island_dither_pu of the rated apparent power; a backup (or no daemon role at
    all) never dithers: the inverter's own active method would see ours."""
    ours = _settings(**DAEMON_OWNS)
    assert ours.inverter is not None
    params = params_from_settings(ours, measured_latency_s=LATENCY_S)
    assert params.dither_var == pytest.approx(ours.site.island_dither_pu * ours.inverter.s_rated_va)
    assert params.dither_var > 0.0
    assert params.pack()[pt.P_DITHER_VAR] == params.dither_var
    for owns in ({}, {"functions__supervisory_backup": False}):
        other = params_from_settings(_settings(**owns), measured_latency_s=LATENCY_S)
        assert other.pack()[pt.P_DITHER_VAR] == 0.0


def test_daemon_owned_anti_islanding_without_an_active_method_is_refused() -> None:
    """Passive windows alone do not see a balanced island: no dither needs the minimum-import check."""
    with pytest.raises(ProtectParamError, match=r"site\.island_dither_pu = 0\.0: must be above 0"):
        params_from_settings(
            _settings(site__island_dither_pu=0.0, **DAEMON_OWNS), measured_latency_s=LATENCY_S
        )
    min_import = _settings(
        site__island_dither_pu=0.0, site__non_export=True, site__min_import_w=80.0, **DAEMON_OWNS
    )
    assert params_from_settings(min_import, measured_latency_s=LATENCY_S).pack()[pt.P_DITHER_VAR] == 0.0


def test_the_dither_is_refused_while_the_inverter_owns_reactive_power() -> None:
    """The stage drops reactive set points while it runs its own reactive mode: the dither would not
    reach the grid, and the daemon would believe it watches an island it cannot see."""
    settings = _settings(functions__volt_var="inverter", **DAEMON_OWNS)
    with pytest.raises(ProtectParamError, match=r"functions\.volt_var = 'inverter'"):
        params_from_settings(settings, measured_latency_s=LATENCY_S)


@pytest.mark.parametrize(
    ("changes", "latency_s", "field"),
    [
        # the response to a reactive step must show at the end of the half period: 0.1 s after a
        # 0.15 s path, nothing has
        ({"site__island_dither_half_s": 0.1}, 0.15, r"island_dither_half_s = 0\.1: must be long enough"),
        # 4 x (0.5 + 0.02) + 2 x 0.05 > 2 s (clause 8.1)
        (
            {"site__island_dither_half_s": 0.5},
            LATENCY_S,
            r"island_dither_half_s = 0\.5: must be short enough",
        ),
        # 9 x (0.2 + 0.02) + 2 x 0.05 > 2 s
        (
            {"site__island_dither_halves": 8, "site__island_dither_half_s": 0.2},
            LATENCY_S,
            r"island_dither_half_s = 0\.2: must be short enough",
        ),
    ],
)
def test_a_dither_that_cannot_act_within_two_seconds_is_refused(
    changes: dict[str, object], latency_s: float, field: str
) -> None:
    settings = _settings(**changes, **DAEMON_OWNS)
    with pytest.raises(ProtectParamError, match=field):
        params_from_settings(settings, measured_latency_s=latency_s).pack()


@pytest.mark.parametrize("half_s", [math.nan, -1.0, 0.0])
def test_a_half_period_out_of_range_is_refused_when_built_directly(half_s: float) -> None:
    """The settings bound it; ProtectParams built without them (the bench, for_category) must be too: a
    NaN half period would never end, and the active method would be silently dead."""
    params = params_from_settings(_settings(**DAEMON_OWNS), measured_latency_s=LATENCY_S)
    with pytest.raises(ProtectParamError, match=r"island_dither_half_s|finite"):
        replace(params, dither_half_s=half_s).pack()


def test_the_dither_needs_a_stage_that_can_follow_it() -> None:
    params = params_from_settings(_settings(**DAEMON_OWNS), measured_latency_s=LATENCY_S)
    with pytest.raises(
        ProtectParamError, match=r"inverter\.q_max_inj_var = 18\.5: must be within \[37\.0, 7400\.0\]"
    ):
        replace(params, q_max_inj_var=params.dither_var / 2.0).pack()
    # and within the rating, where P gives way to it (beyond, the square root has no answer)
    with pytest.raises(ProtectParamError, match=r"inverter\.q_max_abs_var = 9000\.0"):
        replace(params, q_max_abs_var=9000.0).pack()
