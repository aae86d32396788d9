"""Protection parameters: the grid-code values have one source (the profile), the site's tuning reaches
the kernel's parameter array."""

from __future__ import annotations

from dataclasses import MISSING, fields

import numpy as np
import pytest

from edge.control import protect_types as pt
from edge.control.protect_params import ProtectParamError, ProtectParams, Trip, params_from_settings
from edge.control.protect_types import Mode
from edge.settings.edit import set_value
from edge.settings.load import default_config_text, load_text
from edge.settings.model import Settings, Site

GRID_CODE = (
    "ov2", "ov1", "uv1", "uv2", "of2", "of1", "uf1", "uf2", "v_cont_lo_pu", "v_cont_hi_pu", "f_cont_lo_hz",
    "f_cont_hi_hz", "v_lo_bands", "v_hi_bands", "f_lo_bands", "f_hi_bands", "rocof_limit_hz_s",
    "phase_jump_limit_deg", "es_v_lo_pu", "es_v_hi_pu", "es_f_lo_hz", "es_f_hi_hz", "es_delay_s", "es_ramp_s",
    "es_rand_s",
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
    "discharge_detect_w": ("discharge_detect_w", pt.P_DISCHARGE_DETECT_W, 120.0),
    "min_import_s": ("min_import_s", pt.P_MIN_IMPORT_S, 1.5),
    "rocof_window_s": ("rocof_window_s", pt.P_ROCOF_WINDOW_S, 0.5),
    "rocof_pickup_s": ("rocof_pickup_s", pt.P_ROCOF_PICKUP_S, 0.6),
}


def _settings(**changes: object) -> Settings:
    text = set_value(default_config_text(), "grid.voltage_trip.uv1.clearing_s", None)  # the bench's example
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
    )
    params = params_from_settings(settings, measured_latency_s=0.3)
    # Only the measured latency and the site terms whose settings defaults differ from the kernel's
    # differ; every other field, grid code and tuning alike, is the same.
    ours = ProtectParams.for_category(
        category,
        params.rated_w,
        latency_s=params.latency_s,
        margin_w=params.margin_w,
        stale_meter_s=params.stale_meter_s,
        min_import_w=params.min_import_w,
    )
    assert ours == params
    assert ours.category == category
    assert (ours.pack() == params.pack()).all()  # and both pass the kernel's own checks


def test_grid_code_values_have_no_second_source() -> None:
    # ProtectParams carries no copy of the grid code: without a profile those fields cannot be built.
    no_default = {f.name for f in fields(ProtectParams) if f.default is MISSING}
    assert no_default == {"rated_w", *GRID_CODE}
    with pytest.raises(TypeError):
        ProtectParams(rated_w=7000.0)  # type: ignore[call-arg]


def test_categories_differ_as_the_profile_says() -> None:
    cat = {c: ProtectParams.for_category(c, 7000.0) for c in (1, 2, 3)}
    assert (cat[1].uv1, cat[2].uv1, cat[3].uv1) == (Trip(0.70, 2.0), Trip(0.70, 10.0), Trip(0.88, 21.0))
    assert [c.rocof_limit_hz_s for c in cat.values()] == [0.5, 2.0, 3.0]
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
    settings = _settings(**{f"site__{name}": value})
    params = params_from_settings(settings, measured_latency_s=0.3)
    assert getattr(params, field) == value
    p = params.pack()
    assert p[index] == value
    # and nothing else moved
    base = params_from_settings(_settings(), measured_latency_s=0.3).pack()
    assert np.flatnonzero(p != base).tolist() == [index]


def test_single_phase_sites_ride_through_larger_phase_jumps() -> None:
    single = params_from_settings(_settings(commissioning__phase_topology="single"), measured_latency_s=0.3)
    assert single.phase_jump_limit_deg == 60.0


def test_cat_iii_momentary_cessation_bands_come_through() -> None:
    params = params_from_settings(_settings(commissioning__abnormal_category="III"), measured_latency_s=0.3)
    assert params.v_hi_bands[0].mode is Mode.MOMENTARY_CESSATION
    assert params.v_lo_bands[-1].mode is Mode.MOMENTARY_CESSATION


def test_latency_depends_on_who_owns_the_trips() -> None:
    backup = params_from_settings(_settings(), measured_latency_s=0.3)
    assert backup.latency_s == pytest.approx(0.3 - 0.5)  # supervisory: acts after the owner's deadline
    owned = params_from_settings(
        _settings(functions__voltage_trip="daemon", functions__frequency_trip="daemon"),
        measured_latency_s=0.3,
    )
    assert owned.latency_s == 0.3
    off = params_from_settings(_settings(functions__supervisory_backup=False), measured_latency_s=0.3)
    assert off.ov2 == Trip(2.0, 1000.0)
    assert off.uf2 == Trip(40.0, 1000.0)


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
    ours = params_from_settings(_settings(functions__enter_service="daemon"), measured_latency_s=0.3)
    theirs = params_from_settings(_settings(functions__enter_service="inverter"), measured_latency_s=0.3)
    assert (ours.es_delay_s, ours.es_ramp_s) == (300.0, 300.0)
    assert (theirs.es_delay_s, theirs.es_ramp_s, theirs.es_rand_s) == (0.0, 0.0, 0.0)
    assert theirs.es_v_lo_pu == ours.es_v_lo_pu  # the window itself still applies
