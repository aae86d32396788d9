"""Loading config files: the embedded bench config, overrides against the profile, clear errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.settings import SettingsError, SettingsFileError, energize_lock, load_default, load_file, load_text
from edge.settings.edit import set_value
from edge.settings.load import default_config_text, resolve_profile
from edge.settings.paths import lookup
from edge.settings.profiles import Spec
from edge.settings.ranges import resolve_bound

Edit = Callable[..., str]


def with_values(**changes: object) -> str:
    """The embedded config with settings changed (``__`` for dots); hypothesis tests cannot take fixtures."""
    text = default_config_text()
    for key, value in changes.items():
        text = set_value(text, key.replace("__", "."), value)
    return text


def test_embedded_config_is_a_commissioned_bench() -> None:
    s = load_default()
    c = s.commissioning
    assert (c.profile, c.normal_category, c.abnormal_category) == ("ieee1547-2018", "B", "II")
    assert (c.v_nominal_v, c.f_nominal_hz, c.phase_topology) == (240.0, 60, "single")
    assert (s.operation.mode, s.site.non_export, s.site.export_cap_w) == ("v2h", True, 0.0)
    assert energize_lock(s) is None
    assert s.grid is not None
    assert s.daemon.cycle_s == 0.1
    assert s.functions.volt_var == "daemon"


def test_config_without_grid_overrides_takes_profile_defaults(bench_text: str, edit: Edit) -> None:
    s = load_text(edit(bench_text, grid=None))
    assert s.grid is not None
    assert s.grid.volt_var.q1_pu == 0.44
    assert s.grid.voltage_trip.uv1.clearing_s == 10.0


def test_en_site_loads_at_50_hz(en_site_text: str) -> None:
    s = load_text(en_site_text)
    assert energize_lock(s) is None
    assert s.grid is not None
    assert s.grid.frequency_trip.of1.pickup_hz == 51.5


def test_override_within_range_is_applied(bench_text: str, edit: Edit) -> None:
    s = load_text(edit(bench_text, grid__voltage_trip__ov1__clearing_s=12.5))
    assert s.grid is not None
    assert s.grid.voltage_trip.ov1.clearing_s == 12.5


def test_out_of_range_override_names_field_value_and_range(bench_text: str, edit: Edit) -> None:
    with pytest.raises(SettingsError) as err:
        load_text(edit(bench_text, grid__voltage_trip__uv1__clearing_s=25.0))
    e = err.value
    assert e.path == "grid.voltage_trip.uv1.clearing_s"
    assert e.value == 25.0
    assert e.allowed == "2 … 21"
    assert str(e) == (
        "grid.voltage_trip.uv1.clearing_s = 25.0: "
        "outside the range of profile ieee1547-2018 (Cat B/II) (allowed: 2 … 21)"
    )


def test_relative_bound_is_explained(bench_text: str, edit: Edit) -> None:
    with pytest.raises(SettingsError) as err:
        load_text(edit(bench_text, grid__volt_var__v1_pu=0.97))
    assert err.value.path == "grid.volt_var.v1_pu"
    assert "v2_pu - 0.02" in str(err.value)
    assert "0.82 … 0.96" in str(err.value)


def test_fixed_value_cannot_be_overridden(bench_text: str, edit: Edit) -> None:
    with pytest.raises(SettingsError, match=r"grid\.voltage_trip\.ov2\.pickup_pu = 1\.25: fixed by profile"):
        load_text(edit(bench_text, grid__voltage_trip__ov2__pickup_pu=1.25))


def test_conditional_rule_cat_a_absorbing_pf(bench_text: str, edit: Edit) -> None:
    text = edit(
        bench_text,
        commissioning__normal_category="A",
        inverter__q_max_inj_var=7400.0,
        inverter__q_max_abs_var=7400.0,
        grid__constant_pf__excitation="absorb",
        grid__constant_pf__pf=0.95,
    )
    with pytest.raises(SettingsError, match=r"PFmin,ab = 0\.97") as err:
        load_text(text)
    assert err.value.path == "grid.constant_pf.pf"
    load_text(edit(text, grid__constant_pf__excitation="inject"))  # 0.95 injecting is fine for Cat A


def test_unknown_setting_is_refused(bench_text: str, edit: Edit) -> None:
    with pytest.raises(SettingsError) as err:
        load_text(edit(bench_text, grid__volt_var__v5_pu=1.2))
    assert err.value.path == "grid.volt_var.v5_pu"
    assert "unknown setting" in str(err.value)


def test_wrong_type_is_refused(bench_text: str, edit: Edit) -> None:
    with pytest.raises(SettingsError) as err:
        load_text(edit(bench_text, site__export_cap_w="lots"))
    assert err.value.path == "site.export_cap_w"
    assert err.value.value == "lots"


def test_50_hz_commissioning_with_60_hz_profile(bench_text: str, edit: Edit) -> None:
    with pytest.raises(SettingsError, match="profile ieee1547-2018 is a 60 Hz code") as err:
        load_text(edit(bench_text, commissioning__f_nominal_hz=50))
    assert err.value.path == "commissioning.f_nominal_hz"


def test_broken_toml_names_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "site.toml"
    f.write_text("[site]\nnon_export = false\nexport_cap_w = = 3\n")
    with pytest.raises(SettingsFileError) as err:
        load_file(f)
    assert err.value.line == 3
    assert str(err.value).startswith(f"{f}:3: ")


def test_missing_file_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsFileError, match="cannot read"):
        load_file(tmp_path / "nope.toml")


def _numeric_specs() -> list[tuple[str, Spec]]:
    resolved = resolve_profile(load_default().commissioning)
    assert resolved is not None
    return [
        (path, spec)
        for path, spec in resolved.specs.items()
        if isinstance(spec.default, float | int) and not isinstance(spec.default, bool)
    ]


@pytest.mark.parametrize(("path", "spec"), _numeric_specs(), ids=lambda x: x if isinstance(x, str) else "")
def test_every_out_of_range_override_is_refused(path: str, spec: Spec, bench_text: str, edit: Edit) -> None:
    """Each bound of each bench-profile setting, just outside: refused, naming the field and value."""
    resolved = resolve_profile(load_default().commissioning)
    assert resolved is not None
    tree = resolved.defaults()
    candidates = []
    if spec.fixed:
        candidates.append(spec.default + 0.01)
    if spec.min is not None:
        candidates.append(round(resolve_bound(spec.min, path, tree) - 0.01, 6))
    if spec.max is not None:
        candidates.append(round(resolve_bound(spec.max, path, tree) + 0.01, 6))
    assert candidates, f"{path} has neither a range nor fixed"
    for bad in candidates:
        with pytest.raises(SettingsError) as err:
            load_text(edit(bench_text, **{path.replace(".", "__"): bad}))
        assert err.value.path == path
        assert repr(bad) in str(err.value)


@settings(max_examples=60, deadline=None)
@given(st.floats(min_value=1.0, max_value=13.0), st.floats(min_value=2.0, max_value=21.0))
def test_any_in_range_trip_time_is_accepted(ov1_s: float, uv1_s: float) -> None:
    s = load_text(
        with_values(grid__voltage_trip__ov1__clearing_s=ov1_s, grid__voltage_trip__uv1__clearing_s=uv1_s)
    )
    assert s.grid is not None
    assert (s.grid.voltage_trip.ov1.clearing_s, s.grid.voltage_trip.uv1.clearing_s) == (ov1_s, uv1_s)


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.floats(max_value=0.0169, allow_nan=False), st.floats(min_value=1.0001, max_value=1e6)))
def test_any_out_of_range_deadband_is_refused(db: float) -> None:
    with pytest.raises(SettingsError) as err:
        load_text(with_values(grid__freq_droop__db_of_hz=db))
    assert err.value.path == "grid.freq_droop.db_of_hz"


def test_lookup_names_missing_path() -> None:
    with pytest.raises(KeyError):
        lookup({"a": {"b": 1}}, "a.c")


# The protection kernel's tuning in [site]: (lowest, highest) allowed, the kernel's own ranges.
SITE_TUNING_RANGES = {
    "min_import_s": (0.0, 2.0),
    "rocof_window_s": (0.0, 1.0),
    "rocof_pickup_s": (0.0, 1.5),
    "meter_window_s": (0.0, 5.0),
    "meter_frozen_tol_w": (0.0, 10_000.0),
    "meter_frozen_delta_w": (1.0, 100_000.0),
    "meter_frozen_s": (0.0, 60.0),
    "meter_frozen_still_s": (0.0, 3600.0),
    "discharge_detect_w": (0.0, 10_000.0),
    "export_backstop_hold_s": (0.0, 3600.0),
    "export_rise_w_per_s": (1.0, 1e7),
    "export_trim_gain_per_s": (0.0, 5.0),
    "export_trim_max_w": (0.0, 100_000.0),
    "export_trim_steady_tol_w": (0.0, 100_000.0),
}


@pytest.mark.parametrize("name", sorted(SITE_TUNING_RANGES))
def test_site_tuning_out_of_range_names_field_value_and_range(name: str, bench_text: str, edit: Edit) -> None:
    lo, hi = SITE_TUNING_RANGES[name]
    allowed = f"{lo:g} … {hi:g}"
    for bad in (lo - 0.5, hi * 2 + 1):
        with pytest.raises(SettingsError) as err:
            load_text(edit(bench_text, **{f"site__{name}": bad}))
        e = err.value
        assert (e.path, e.value, e.allowed) == (f"site.{name}", bad, allowed)
        assert str(e).startswith(f"site.{name} = {bad!r}: Expected `float` ")
        assert str(e).endswith(f"(allowed: {allowed})")
    for good in (lo, hi):
        if name.startswith("rocof_"):  # the pair has a joint limit (test_settings_rules)
            continue
        assert getattr(load_text(edit(bench_text, **{f"site__{name}": good})).site, name) == good


def test_model_range_is_given_for_existing_fields_too(bench_text: str, edit: Edit) -> None:
    with pytest.raises(SettingsError) as err:
        load_text(edit(bench_text, site__stale_meter_s=100.0))
    assert (err.value.path, err.value.allowed) == ("site.stale_meter_s", "> 0, <= 60")
    with pytest.raises(SettingsError) as err:
        load_text(edit(bench_text, commissioning__v_nominal_v=-1.0))
    assert (err.value.path, err.value.allowed) == ("commissioning.v_nominal_v", "> 0, <= 1000")
    with pytest.raises(SettingsError) as err:
        load_text(edit(bench_text, site__rocof_window_s="0.2"))
    assert (err.value.path, err.value.allowed) == ("site.rocof_window_s", None)  # a type error, not a range


def test_a_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "latin1.toml"
    f.write_bytes(b"[site]\n# caf\xe9\nnon_export = true\n")
    with pytest.raises(SettingsFileError) as err:
        load_file(f)
    assert err.value.line == 2
    assert "not UTF-8" in str(err.value)


def test_the_old_site_mode_is_taken_as_the_operating_mode() -> None:
    old = default_config_text().replace("[site]\n", '[site]\nmode = "v2g"\n', 1)
    old = old.replace('[operation]\nmode = "v2h"', "[operation]", 1)
    assert load_text(old).operation.mode == "v2g"
    both = default_config_text().replace("[site]\n", '[site]\nmode = "v2g"\n', 1)
    with pytest.raises(SettingsError) as err:
        load_text(both)  # operation.mode = "v2h" says otherwise
    assert err.value.path == "site.mode"
