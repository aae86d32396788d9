"""Grid-code profiles load, resolve per category and match the tables of the standards (notes section A)."""

from __future__ import annotations

import itertools
import re
import tomllib
from typing import Any

import msgspec
import pytest

from edge.settings import SettingsError, available_profiles, load_profile
from edge.settings.model import Grid
from edge.settings.overlaps import trip_ride_through_overlaps
from edge.settings.profiles import parse_profile, profiles_dir
from edge.settings.ranges import check_grid_ranges

IEEE = "ieee1547-2018"
EN = "en50549-1"


def grid(profile: str, normal: str | None = None, abnormal: str | None = None) -> Grid:
    resolved = load_profile(profile).resolve(normal, abnormal)
    return msgspec.convert(resolved.defaults()["grid"], Grid)


def all_resolutions() -> list[tuple[str, str | None, str | None]]:
    out: list[tuple[str, str | None, str | None]] = []
    for name in available_profiles():
        p = load_profile(name)
        normals: list[str | None] = list(p.normal_categories) or [None]
        abnormals: list[str | None] = list(p.abnormal_categories) or [None]
        out.extend((name, n, a) for n, a in itertools.product(normals, abnormals))
    return out


def test_shipped_profiles() -> None:
    assert {IEEE, EN} <= set(available_profiles())


@pytest.mark.parametrize(("name", "normal", "abnormal"), all_resolutions())
def test_every_category_gives_a_complete_grid_within_its_own_ranges(
    name: str, normal: str | None, abnormal: str | None
) -> None:
    resolved = load_profile(name).resolve(normal, abnormal)
    tree = resolved.defaults()
    msgspec.convert(tree["grid"], Grid)  # every Grid field present and typed
    check_grid_ranges(tree, resolved)  # defaults inside their own ranges


@pytest.mark.parametrize(
    ("cat", "v", "q", "olrt"),
    [
        ("A", (0.90, 1.00, 1.00, 1.10), (0.25, 0.0, 0.0, -0.25), 10.0),
        ("B", (0.92, 0.98, 1.02, 1.08), (0.44, 0.0, 0.0, -0.44), 5.0),
    ],
)
def test_ieee_volt_var_table_8(cat: str, v: tuple[float, ...], q: tuple[float, ...], olrt: float) -> None:
    vv = grid(IEEE, cat, "II").volt_var
    assert (vv.v1_pu, vv.v2_pu, vv.v3_pu, vv.v4_pu) == v
    assert (vv.q1_pu, vv.q2_pu, vv.q3_pu, vv.q4_pu) == q
    assert vv.v_ref_pu == 1.0
    assert vv.olrt_s == olrt
    assert vv.v_ref_auto is False


def test_ieee_reactive_capability_table_7() -> None:
    a = load_profile(IEEE).resolve("A", "I").reactive_capability
    b = load_profile(IEEE).resolve("B", "I").reactive_capability
    assert a is not None
    assert (a.inject_pu, a.absorb_pu) == (0.44, 0.25)
    assert b is not None
    assert (b.inject_pu, b.absorb_pu) == (0.44, 0.44)


def test_ieee_volt_watt_and_watt_var() -> None:
    g = grid(IEEE, "B", "II")
    vw = g.volt_watt
    assert (vw.v1_pu, vw.v2_pu, vw.p1_pu, vw.p2_pu, vw.p2_charging_pu, vw.olrt_s) == (
        1.06,
        1.10,
        1.0,
        0.2,
        0.0,
        10.0,
    )
    wv = g.watt_var
    assert (wv.p1_pu, wv.p2_pu, wv.p3_pu, wv.q3_pu) == (0.2, 0.5, 1.0, -0.44)
    assert (wv.p1_charging_pu, wv.p2_charging_pu, wv.p3_charging_pu, wv.q3_charging_pu) == (
        -0.2,
        -0.5,
        -1.0,
        0.44,
    )
    assert grid(IEEE, "A", "II").watt_var.q3_pu == -0.25


@pytest.mark.parametrize(
    ("abnormal", "k_min", "olrt_min"), [("I", 0.03, 1.0), ("II", 0.03, 1.0), ("III", 0.02, 0.2)]
)
def test_ieee_frequency_droop(abnormal: str, k_min: float, olrt_min: float) -> None:
    resolved = load_profile(IEEE).resolve("B", abnormal)
    fd = msgspec.convert(resolved.defaults()["grid"], Grid).freq_droop
    assert (fd.db_of_hz, fd.db_uf_hz, fd.k_of, fd.k_uf, fd.olrt_s) == (0.036, 0.036, 0.05, 0.05, 5.0)
    assert resolved.specs["grid.freq_droop.k_of"].min == k_min
    assert resolved.specs["grid.freq_droop.olrt_s"].min == olrt_min
    assert resolved.specs["grid.freq_droop.db_of_hz"].min == 0.017
    assert resolved.specs["grid.freq_droop.db_of_hz"].max == 1.0


# Tables 11-13: (pickup, clearing) defaults per category.
VOLTAGE_TRIP = {
    "I": {"ov2": (1.20, 0.16), "ov1": (1.10, 2.0), "uv1": (0.70, 2.0), "uv2": (0.45, 0.16)},
    "II": {"ov2": (1.20, 0.16), "ov1": (1.10, 2.0), "uv1": (0.70, 10.0), "uv2": (0.45, 0.16)},
    "III": {"ov2": (1.20, 0.16), "ov1": (1.10, 13.0), "uv1": (0.88, 21.0), "uv2": (0.50, 2.0)},
}


@pytest.mark.parametrize("abnormal", ["I", "II", "III"])
def test_ieee_voltage_trip_tables(abnormal: str) -> None:
    vt = grid(IEEE, "B", abnormal).voltage_trip
    for stage, (pickup, clearing) in VOLTAGE_TRIP[abnormal].items():
        s = getattr(vt, stage)
        assert (s.enabled, s.pickup_pu, s.clearing_s) == (True, pickup, clearing), stage
    assert vt.ov_mean_10min.enabled is False


def test_ieee_voltage_trip_ranges_per_category() -> None:
    two = load_profile(IEEE).resolve("B", "II").specs
    three = load_profile(IEEE).resolve("B", "III").specs
    assert (two["grid.voltage_trip.uv1.clearing_s"].min, two["grid.voltage_trip.uv1.clearing_s"].max) == (
        2.0,
        21.0,
    )
    assert (three["grid.voltage_trip.uv1.clearing_s"].min, three["grid.voltage_trip.uv1.clearing_s"].max) == (
        21.0,
        50.0,
    )
    assert (three["grid.voltage_trip.uv2.clearing_s"].min, three["grid.voltage_trip.uv2.clearing_s"].max) == (
        2.0,
        21.0,
    )
    assert two["grid.voltage_trip.ov2.pickup_pu"].fixed
    assert (two["grid.voltage_trip.ov1.pickup_pu"].min, two["grid.voltage_trip.ov1.pickup_pu"].max) == (
        1.10,
        1.20,
    )


def test_ieee_frequency_trip_table() -> None:
    ft = grid(IEEE, "B", "III").frequency_trip
    got = {n: (getattr(ft, n).pickup_hz, getattr(ft, n).clearing_s) for n in ("of2", "of1", "uf1", "uf2")}
    assert got == {"of2": (62.0, 0.16), "of1": (61.2, 300.0), "uf1": (58.5, 300.0), "uf2": (56.5, 0.16)}


@pytest.mark.parametrize(
    ("abnormal", "rocof", "mc"), [("I", 0.5, False), ("II", 2.0, False), ("III", 3.0, True)]
)
def test_ieee_ride_through(abnormal: str, rocof: float, mc: bool) -> None:
    rt = grid(IEEE, "B", abnormal).ride_through
    assert rt.rocof_hz_per_s == rocof
    assert rt.momentary_cessation is mc
    assert (rt.phase_jump_multi_phase_deg, rt.phase_jump_single_phase_deg) == (20.0, 60.0)
    continuous = [b for b in rt.voltage if b.mode == "continuous"]
    assert [(b.v_low_pu, b.v_high_pu) for b in continuous] == [(0.88, 1.10)]
    mandatory_f = [(b.f_low_hz, b.f_high_hz, b.t_min_s) for b in rt.frequency if b.mode == "mandatory"]
    assert mandatory_f == [(61.2, 61.8, 299.0), (57.0, 58.8, 299.0)]


def test_ieee_cat_ii_low_voltage_mandatory_slope() -> None:
    band = next(b for b in grid(IEEE, "B", "II").ride_through.voltage if b.mode == "mandatory")
    assert (band.v_low_pu, band.v_high_pu) == (0.65, 0.88)
    # 3 s + 8.7 s/p.u. x (V - 0.65): 5.001 s at 0.88 p.u.
    assert band.t_min_s is not None
    assert band.t_min_s + band.t_slope_s_per_pu * (0.88 - band.v_low_pu) == pytest.approx(5.001)


def test_ieee_enter_service() -> None:
    es = grid(IEEE, "A", "I").enter_service
    assert (es.v_low_pu, es.v_high_pu, es.f_low_hz, es.f_high_hz) == (0.917, 1.05, 59.5, 60.1)
    assert (es.delay_s, es.ramp_s, es.randomized_delay_s) == (300.0, 300.0, 0.0)


def test_en50549_is_a_50_hz_profile_without_categories() -> None:
    p = load_profile(EN)
    assert p.f_nominal_hz == 50
    assert p.normal_categories == []
    assert p.abnormal_categories == []
    g = grid(EN)
    # LFSM-O 50.2 Hz / LFSM-U 49.8 Hz, droop 5 %; thresholds 50.2-52 and 49.8-46 Hz, droop 2-12 %.
    assert (g.freq_droop.db_of_hz, g.freq_droop.db_uf_hz, g.freq_droop.k_of) == (0.2, 0.2, 0.05)
    specs = p.resolve(None, None).specs
    assert (specs["grid.freq_droop.db_of_hz"].min, specs["grid.freq_droop.db_of_hz"].max) == (0.2, 2.0)
    assert (specs["grid.freq_droop.db_uf_hz"].min, specs["grid.freq_droop.db_uf_hz"].max) == (0.2, 4.0)
    assert (specs["grid.freq_droop.k_of"].min, specs["grid.freq_droop.k_of"].max) == (0.02, 0.12)
    assert g.frequency_trip.of1.pickup_hz == 51.5
    assert g.frequency_trip.uf1.pickup_hz == 47.5
    assert g.voltage_trip.ov_mean_10min.enabled
    assert g.voltage_trip.ov_mean_10min.pickup_pu == 1.10


@pytest.mark.parametrize(
    ("normal", "abnormal", "field"),
    [("C", "II", "commissioning.normal_category"), ("B", "IV", "commissioning.abnormal_category")],
)
def test_unknown_category_is_refused(normal: str, abnormal: str, field: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_profile(IEEE).resolve(normal, abnormal)
    assert err.value.path == field
    assert "I, II, III" in str(err.value) or "A, B" in str(err.value)


def test_categories_on_a_profile_without_them_are_refused() -> None:
    with pytest.raises(SettingsError, match="has no normal category"):
        load_profile(EN).resolve("B", None)


def test_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(SettingsError) as err:
        load_profile("rule21")
    assert "ieee1547-2018" in str(err.value)
    assert "en50549-1" in str(err.value)


def _en_data() -> dict[str, Any]:
    return tomllib.loads((profiles_dir() / "en50549-1.toml").read_text(encoding="utf-8"))


def test_a_new_code_is_data_only() -> None:
    """A national variant written as data alone: a category overlay and a conditional rule."""
    data = _en_data()
    data["profile"].update(id="xx-national", normal_categories=["N1"])
    data["category"] = {
        "N1": {
            "grid": {"volt_var": {"olrt_s": {"default": 7.0}}},
            "rules": [
                {"field": "grid.volt_var.olrt_s", "when": {"grid.volt_var.v_ref_auto": False}, "max": 20.0}
            ],
        }
    }
    resolved = parse_profile(data, "xx-national.toml").resolve("N1", None)
    spec = resolved.specs["grid.volt_var.olrt_s"]
    assert (spec.default, spec.min, spec.max) == (7.0, 3.0, 60.0)
    tree = resolved.defaults()
    tree["grid"]["volt_var"]["olrt_s"] = 30.0
    with pytest.raises(SettingsError, match=re.escape("when grid.volt_var.v_ref_auto = False")) as err:
        check_grid_ranges(tree, resolved)
    assert err.value.allowed == "-inf … 20"


def test_incomplete_profile_is_refused() -> None:
    data = _en_data()
    del data["grid"]["ramp"]
    with pytest.raises(SettingsError, match=r"required setting missing|missing required field"):
        parse_profile(data, "x.toml").resolve(None, None)


def test_profile_with_unknown_table_is_refused() -> None:
    with pytest.raises(SettingsError, match="unknown top-level"):
        parse_profile({"profile": {"id": "x", "title": "X", "f_nominal_hz": 50}, "grids": {}}, "x.toml")


@pytest.mark.parametrize(("name", "normal", "abnormal"), all_resolutions())
def test_default_trips_leave_the_ride_through_regions_alone(
    name: str, normal: str | None, abnormal: str | None
) -> None:
    assert trip_ride_through_overlaps(grid(name, normal, abnormal)) == []


def test_ride_through_conflict_detector_sees_a_cut_in() -> None:
    g = grid(IEEE, "B", "II")
    uv1 = msgspec.structs.replace(g.voltage_trip.uv1, pickup_pu=0.88, clearing_s=2.0)
    bad = msgspec.structs.replace(g, voltage_trip=msgspec.structs.replace(g.voltage_trip, uv1=uv1))
    (conflict,) = trip_ride_through_overlaps(bad)
    assert conflict.startswith("grid.voltage_trip.uv1 (0.88 p.u. / 2 s) clears inside the mandatory")
    assert "up to 5.00 s" in conflict
