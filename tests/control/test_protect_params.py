"""Protection parameters: the IEEE 1547 profile maps onto the same tables as the kernel's own defaults."""

from __future__ import annotations

import pytest

from edge.control.protect_params import ProtectParamError, ProtectParams, Trip, params_from_settings
from edge.control.protect_types import Mode
from edge.settings.edit import set_value
from edge.settings.load import default_config_text, load_text
from edge.settings.model import Settings

COMPARED = (
    "ov2", "ov1", "uv1", "uv2", "of2", "of1", "uf1", "uf2", "v_cont_lo_pu", "v_cont_hi_pu", "f_cont_lo_hz",
    "f_cont_hi_hz", "v_lo_bands", "v_hi_bands", "f_lo_bands", "f_hi_bands", "rocof_limit_hz_s",
    "phase_jump_limit_deg", "es_v_lo_pu", "es_v_hi_pu", "es_f_lo_hz", "es_f_hi_hz", "es_delay_s", "es_ramp_s",
    "es_rand_s",
)  # fmt: skip


def _settings(**changes: object) -> Settings:
    text = set_value(default_config_text(), "grid.voltage_trip.uv1.clearing_s", None)  # the bench's example
    for key, value in changes.items():
        text = set_value(text, key.replace("__", "."), value)
    return load_text(text)


@pytest.mark.parametrize(("name", "category"), [("I", 1), ("II", 2), ("III", 3)])
def test_profile_and_kernel_defaults_agree(name: str, category: int) -> None:
    # A multi-phase site: the kernel's defaults carry the multi-phase phase-jump limit (20 degrees).
    # The daemon owns enter service here, so the profile's delay and ramp reach the kernel.
    settings = _settings(
        commissioning__abnormal_category=name,
        commissioning__phase_topology="split",
        functions__enter_service="daemon",
    )
    params = params_from_settings(settings, measured_latency_s=0.3)
    ours = ProtectParams.for_category(category, params.rated_w)
    for field in COMPARED:
        assert getattr(params, field) == getattr(ours, field), field
    params.pack()  # and it passes the kernel's own checks


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
