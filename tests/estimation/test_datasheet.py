"""Profiles built from datasheet data and a replay (``v2g-hil battery-profile``, issue 17)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
from ecm_support import BATTERY_DATA, DATASHEETS, trace_path

from edge.estimation.datasheet import build_profile, load_datasheet
from edge.estimation.profile import ProfileError, load_profile
from hil.cli import main
from hil.estimate import load_trace

SHIPPED_PROFILES = Path(__file__).resolve().parents[2] / "config" / "batteries"
# Profile -> its replay, fit window, and where its datasheet and the profile are: the shipped ones, and
# those of the cells judged and not shipped (tests/data/battery/README.md).
BUILT = {
    "nmc532-pouch": ("mohtat_v2h", "120:2520", DATASHEETS, SHIPPED_PROFILES),
    "lfp-a123-26650": ("lfp_day", "120:1920", DATASHEETS, SHIPPED_PROFILES),
    "nca-judge": ("nca20", "100:1580", BATTERY_DATA / "datasheets", BATTERY_DATA / "profiles"),
    "nmc-hp-judge": ("ecker15", "100:1460", BATTERY_DATA / "datasheets", BATTERY_DATA / "profiles"),
    "nmc-big-judge": ("nmcbig20", "100:1650", BATTERY_DATA / "datasheets", BATTERY_DATA / "profiles"),
}


@pytest.mark.parametrize("name", list(BUILT))
def test_built_profiles_are_what_the_command_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    trace, window, sheets, profiles = BUILT[name]
    out = tmp_path / f"{name}.toml"
    sheet = sheets / f"{name}.toml"
    assert (
        main(
            [
                "battery-profile",
                str(sheet),
                "--replay",
                str(trace_path(trace)),
                "--window-s",
                window,
                "-o",
                str(out),
            ]
        )
        == 0
    )
    shipped = profiles / f"{name}.toml"
    assert tomllib.loads(out.read_text()) == tomllib.loads(shipped.read_text())
    text = out.read_text()
    assert f"fitted on replay {trace} t = {window.replace(':', '..')} s" in text
    assert "measured columns only" in text
    built = load_profile(out)
    assert built.i0_a == 0.0  # no kinetics invented for an unknown cell
    # Where R0 / RC were fitted is in the profile, so that scoring on that record leaves it out.
    assert built.fit_trace == trace
    assert built.fit_window_s == tuple(float(x) for x in window.split(":"))
    # The fitted resistances hold at the record's temperature: that is the profile's reference.
    rec = load_trace(trace_path(trace))
    start, end = built.fit_window_s
    sel = (rec.t_s >= start) & (rec.t_s <= end)
    assert built.reference_temp_c == pytest.approx(float(np.mean(rec.temp_c[sel])), abs=0.05)
    assert built.reference_temp_c != 25.0
    # The OCV is a few published points with their error, never the simulator's 101-point table.
    assert len(built.ocv_soc) <= 13
    assert built.ocv_sigma_v >= 0.01
    assert all(abs(v * 100.0 - round(v * 100.0)) < 1e-9 for v in built.ocv_v)  # 10 mV steps


def test_datasheet_alone_gives_a_valid_profile_with_generic_resistances(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["battery-profile", str(DATASHEETS / "nmc532-pouch.toml")]) == 0
    text = capsys.readouterr().out
    assert "generic for the capacity (a first guess the growth tracker scales), no replay given" in text
    doc = tomllib.loads(text)
    # 0.04 ohm Ah over 5 Ah: the generic first guess (the growth tracker scales its level).
    assert doc["model"]["r0_ohm"] == pytest.approx(0.008)
    assert doc["filter"]["current_offset_sigma_a"] == pytest.approx(0.2 / 44)


def test_missing_and_bad_datasheet_fields_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = load_datasheet(DATASHEETS / "lfp-a123-26650.toml")
    del doc["limits"]["cell_v_max"]
    with pytest.raises(ProfileError, match=r"missing field 'limits.cell_v_max'"):
        build_profile(doc, "sheet")
    doc = load_datasheet(DATASHEETS / "lfp-a123-26650.toml")
    doc["battery"]["nameplate_capacity_ah"] = -2.3
    with pytest.raises(ProfileError, match=r"nameplate_capacity_ah' = -2.3 outside"):
        build_profile(doc, "sheet")
    doc = load_datasheet(DATASHEETS / "lfp-a123-26650.toml")
    doc["model"] = {"diffusion_tau_s": "slow"}
    with pytest.raises(ProfileError, match=r"'model.diffusion_tau_s' = 'slow' is not a finite number"):
        build_profile(doc, "sheet")
    doc["model"] = {"diffusion_tau_s": 500.0}
    built = build_profile(doc, "sheet")
    assert built.profile().diffusion_tau_s == 500.0
    assert built.sources["model.diffusion_tau_s"] == "datasheet [model] diffusion_tau_s"
    # The OCV's hysteresis: its half gap and rate validated, each one's source told apart.
    doc["ocv"]["hysteresis_v"] = 0.5
    with pytest.raises(ProfileError, match=r"'ocv.hysteresis_v' = 0.5 outside"):
        build_profile(doc, "sheet")
    doc["ocv"]["hysteresis_v"] = 0.012
    doc["ocv"]["hysteresis_rate"] = 0.0
    with pytest.raises(ProfileError, match=r"'ocv.hysteresis_rate' = 0.0 outside"):
        build_profile(doc, "sheet")
    del doc["ocv"]["hysteresis_rate"]
    built = build_profile(doc, "sheet")
    assert (built.profile().ocv_hysteresis_v, built.profile().ocv_hysteresis_rate) == (0.012, 20.0)
    assert built.sources["ocv.hysteresis_v"] == "datasheet [ocv] hysteresis_v"
    assert built.sources["ocv.hysteresis_rate"] == "default (20 per unit SoC)"
    bad = tmp_path / "bad.toml"
    bad.write_text("[battery\n")
    assert main(["battery-profile", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["battery-profile", str(bad), "--window-s", "20:10"])


def test_a_datasheet_may_give_the_electrolytes_limit() -> None:
    # Taken as given (the cell's published electrolyte and geometry, docs/estimation.md "The
    # electrolyte's limit"); a constant without the steady current's time is refused, naming it.
    doc = load_datasheet(DATASHEETS / "nmc532-pouch.toml")
    doc["model"] = {"electrolyte_k_a_sqrt_s": 120.0}
    with pytest.raises(ProfileError, match=r"'model.electrolyte_t_eq_s' must be > 0 where"):
        build_profile(doc, "sheet")
    doc["model"]["electrolyte_t_eq_s"] = -5.0
    with pytest.raises(ProfileError, match=r"'model.electrolyte_t_eq_s' = -5.0 outside"):
        build_profile(doc, "sheet")
    doc["model"]["electrolyte_t_eq_s"] = 80.0
    with pytest.raises(ProfileError, match=r"'model.electrolyte_vtf_b_k' must be > 0 where"):
        build_profile(doc, "sheet")
    doc["model"] |= {"electrolyte_vtf_b_k": 300.0, "electrolyte_vtf_t0_k": 300.0}
    with pytest.raises(ProfileError, match=r"'model.electrolyte_vtf_t0_k' = 300.0 outside"):
        build_profile(doc, "sheet")
    doc["model"]["electrolyte_vtf_t0_k"] = 200.0
    built = build_profile(doc, "sheet")
    profile = built.profile()
    assert (profile.electrolyte_k_a_sqrt_s, profile.electrolyte_t_eq_s) == (120.0, 80.0)
    assert (profile.electrolyte_vtf_b_k, profile.electrolyte_vtf_t0_k) == (300.0, 200.0)
    assert built.sources["model.electrolyte_*"] == (
        "datasheet [model] electrolyte_k_a_sqrt_s, electrolyte_t_eq_s, electrolyte_vtf_b_k, electrolyte_vtf_t0_k"
    )
    assert (
        build_profile(load_datasheet(DATASHEETS / "nmc532-pouch.toml"), "sheet")
        .profile()
        .electrolyte_k_a_sqrt_s
        == 0.0
    )
