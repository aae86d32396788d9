"""Function ownership, site export terms, commissioning lock and other cross-field rules."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import time

import pytest

from edge.control.protect_params import cap_applies, export_cap_w
from edge.settings import SettingsError, energize_lock, load_text, lock_reasons
from edge.settings.model import REACTIVE_MODES, Commissioning

Edit = Callable[..., str]


@pytest.mark.parametrize("second", [m for m in REACTIVE_MODES if m != "volt_var"])
def test_two_reactive_modes_are_refused(second: str, bench_text: str, edit: Edit) -> None:
    with pytest.raises(SettingsError) as err:
        load_text(edit(bench_text, **{f"functions__{second}": "inverter"}))
    assert err.value.path == "functions"
    assert "only one reactive-power mode" in str(err.value)
    assert err.value.value == {"volt_var": "daemon", second: "inverter"}


def test_one_reactive_mode_per_owner_is_fine(bench_text: str, edit: Edit) -> None:
    s = load_text(edit(bench_text, functions__volt_var="off", functions__constant_pf="inverter"))
    assert s.functions.constant_pf == "inverter"


@pytest.mark.parametrize("name", ["voltage_trip", "frequency_trip", "anti_islanding", "enter_service"])
def test_protection_is_never_off(name: str, bench_text: str, edit: Edit) -> None:
    with pytest.raises(SettingsError, match="protection is never turned off") as err:
        load_text(edit(bench_text, **{f"functions__{name}": "off"}))
    assert err.value.path == f"functions.{name}"
    assert err.value.allowed == "inverter, daemon"


def test_non_export_site_needs_zero_cap_and_a_cap_owner(bench_text: str, edit: Edit) -> None:
    v2g = edit(bench_text, operation__mode="v2g", site__non_export=False, site__export_cap_w=7000.0)
    assert not load_text(v2g).site.non_export
    with pytest.raises(SettingsError, match=re.escape("no export allowed while site.non_export = true")):
        load_text(edit(v2g, site__non_export=True))
    text = edit(v2g, site__non_export=True, site__export_cap_w=0.0)
    assert load_text(text).site.non_export
    with pytest.raises(SettingsError) as err:
        load_text(edit(text, functions__export_cap="off"))
    assert err.value.path == "functions.export_cap"


def test_v2h_mode_does_not_export_whatever_the_site_allows(bench_text: str, edit: Edit) -> None:
    with pytest.raises(SettingsError, match=re.escape("site.non_export = true")):
        load_text(edit(bench_text, site__export_cap_w=5000.0))
    site = edit(bench_text, site__non_export=False, site__export_cap_w=5000.0)
    v2h = load_text(site)
    v2g = load_text(edit(site, operation__mode="v2g"))
    assert (export_cap_w(v2h), cap_applies(v2h)) == (0.0, True)  # the EV serves the home only
    assert (export_cap_w(v2g), cap_applies(v2g)) == (5000.0, True)
    free = load_text(edit(bench_text, site__non_export=False, operation__mode="v2g"))
    assert not cap_applies(free)


def test_rocof_detector_ceases_within_two_seconds(bench_text: str, edit: Edit) -> None:
    ok = load_text(edit(bench_text, site__rocof_window_s=0.5, site__rocof_pickup_s=1.5))
    assert (ok.site.rocof_window_s, ok.site.rocof_pickup_s) == (0.5, 1.5)
    with pytest.raises(SettingsError) as err:
        load_text(edit(bench_text, site__rocof_window_s=0.8, site__rocof_pickup_s=1.5))
    assert (err.value.path, err.value.value, err.value.allowed) == ("site.rocof_pickup_s", 1.5, "0 … 1.2")
    assert "within 2 s of island formation" in str(err.value)


def test_owner_departure_target_above_reserve(bench_text: str, edit: Edit) -> None:
    with pytest.raises(SettingsError) as err:
        load_text(edit(bench_text, owner__departure_soc=0.2))
    assert err.value.path == "owner.departure_soc"
    assert err.value.allowed == "0.3 … 1"
    with pytest.raises(SettingsError, match="departure time needs a departure SoC"):
        load_text(edit(bench_text, owner__departure_time=time(7, 30)))
    with pytest.raises(SettingsError) as err:
        load_text(edit(bench_text, owner__time_zone="Mars/Olympus_Mons"))
    assert err.value.path == "owner.time_zone"
    assert load_text(edit(bench_text, owner__time_zone="Europe/Berlin")).owner.time_zone == "Europe/Berlin"
    with pytest.raises(SettingsError) as err:
        load_text(edit(bench_text, owner__min_soc=1.5))
    assert err.value.path == "owner.min_soc"


def test_inverter_below_category_capability(bench_text: str, edit: Edit) -> None:
    with pytest.raises(SettingsError, match="reactive capability profile ieee1547-2018") as err:
        load_text(edit(bench_text, inverter__q_max_abs_var=3000.0))
    assert err.value.path == "inverter.q_max_abs_var"
    assert err.value.allowed == ">= 3256"


def test_q_point_beyond_inverter_capability(bench_text: str, edit: Edit) -> None:
    with pytest.raises(SettingsError, match="beyond the inverter's capability") as err:
        load_text(edit(bench_text, grid__volt_var__q1_pu=0.6))
    assert err.value.path == "grid.volt_var.q1_pu"


def test_curve_must_be_monotonic(en_site_text: str, edit: Edit) -> None:
    with pytest.raises(SettingsError) as err:
        load_text(edit(en_site_text, grid__volt_var={"v2_pu": 1.05, "v3_pu": 1.00}))
    assert err.value.path.startswith("grid.volt_var.v")


def test_trip_stages_are_nested(en_site_text: str, edit: Edit) -> None:
    with pytest.raises(SettingsError, match=re.escape("must be >= grid.voltage_trip.ov1.pickup_pu")) as err:
        load_text(edit(en_site_text, grid__voltage_trip__ov2__pickup_pu=1.12))
    assert err.value.path == "grid.voltage_trip.ov2.pickup_pu"
    # A disabled second stage is not compared.
    load_text(edit(en_site_text, grid__voltage_trip__ov2={"enabled": False, "pickup_pu": 1.12}))


def test_mqtt_tls_files(bench_text: str, edit: Edit) -> None:
    with pytest.raises(SettingsError, match=re.escape("set only with mqtt.tls = true")):
        load_text(edit(bench_text, mqtt__ca_file="/etc/ca.pem"))
    with pytest.raises(SettingsError, match="go together"):
        load_text(edit(bench_text, mqtt__tls=True, mqtt__cert_file="/etc/c.pem"))


# --- commissioning lock ---------------------------------------------------------------------------


def test_real_site_without_commissioning_is_locked() -> None:
    s = load_text('[operation]\nmode = "v2h"\n')
    assert s.grid is None
    assert not s.commissioning.is_complete()
    msg = energize_lock(s)
    assert msg is not None
    assert msg.startswith("holding P = Q = 0: not commissioned: missing commissioning.profile, ")
    assert "inverter (nameplate ratings)" in msg


@pytest.mark.parametrize(
    "field",
    [
        "normal_category",
        "abnormal_category",
        "v_nominal_v",
        "f_nominal_hz",
        "phase_topology",
        "commissioned_by",
        "commissioned_at",
    ],
)
def test_each_missing_commissioning_item_locks(field: str, bench_text: str, edit: Edit) -> None:
    s = load_text(edit(bench_text, **{f"commissioning__{field}": None}))
    assert lock_reasons(s) == [f"commissioning.{field}"]
    assert s.commissioning.missing() == [f"commissioning.{field}"]


def test_missing_category_means_no_grid(bench_text: str, edit: Edit) -> None:
    s = load_text(edit(bench_text, commissioning__abnormal_category=None))
    assert s.grid is None


def test_profile_without_categories_needs_none() -> None:
    c = Commissioning(profile="en50549-1")
    assert "commissioning.normal_category" not in c.missing()
    assert "commissioning.normal_category" in Commissioning(profile="ieee1547-2018").missing()


def test_unknown_profile_in_commissioning_is_reported() -> None:
    assert Commissioning(profile="g99").missing()[0] == "commissioning.profile (unknown profile 'g99')"


def test_missing_inverter_locks(bench_text: str, edit: Edit) -> None:
    s = load_text(edit(bench_text, inverter=None))
    assert lock_reasons(s) == ["inverter (nameplate ratings)"]


def test_driver_sections_are_typed_and_cross_checked(bench_text: str) -> None:
    text = bench_text + '\n[buses.rtu0]\ntransport = "rtu"\nserial_port = "/dev/ttyUSB0"\nbaud = 19200\n'
    s = load_text(text)
    assert (s.buses["rtu0"].baud, s.buses["rtu0"].parity) == (19200, "N")
    assert s.devices["site_meter"].bus == "meter_link"
    with pytest.raises(SettingsError, match="rtu9"):
        load_text(bench_text.replace('bus = "meter_link"', 'bus = "rtu9"'))
    with pytest.raises(SettingsError, match="serial_port"):
        load_text(bench_text + '\n[buses.rtu1]\ntransport = "rtu"\n')
    with pytest.raises(SettingsError, match="speed"):
        load_text(bench_text + '\n[buses.x]\ntransport = "tcp"\nspeed = 1\n')
