"""Battery profiles: the shipped ones load and are sane; broken ones are rejected by field."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.estimation import _ecm_ref as k
from edge.estimation.profile import ProfileError, available, load_profile, parse_profile, with_pack


def test_nmc_and_lfp_profiles_ship() -> None:
    assert {"nmc-lgm50", "lfp-prismatic"} <= set(available())


@pytest.mark.parametrize("name", ["nmc-lgm50", "lfp-prismatic"])
def test_shipped_profiles_are_consistent(name: str) -> None:
    p = load_profile(name)
    table = p.ocv_table()
    ocv = table[: len(table) // 3]
    assert np.all(np.diff(ocv) > 0.0)
    assert p.cell_v_min < ocv[0] + 0.5
    assert ocv[-1] <= p.cell_v_max + 0.05
    assert len(p.kernel_params()) == k.P_N
    assert 10.0 in p.horizons_s
    assert p.ocv_to_soc(float(np.interp(0.37, p.ocv_soc, p.ocv_v))) == pytest.approx(0.37, abs=1e-9)


def test_nmc_profile_uses_nameplate_not_truth_capacity() -> None:
    assert load_profile("nmc-lgm50").nameplate_capacity_ah == 5.0


def test_lfp_has_the_flat_plateau() -> None:
    p = load_profile("lfp-prismatic")
    mid = [v for s, v in zip(p.ocv_soc, p.ocv_v, strict=True) if 0.3 <= s <= 0.9]
    assert max(mid) - min(mid) < 0.06
    assert 3.25 < float(np.mean(mid)) < 3.36


def _doc() -> dict[str, Any]:
    path = Path(__file__).resolve().parents[2] / "config" / "batteries" / "nmc-lgm50.toml"
    return tomllib.loads(path.read_text())


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("battery.nameplate_capacity_ah", -1.0, "'battery.nameplate_capacity_ah' = -1.0 outside"),
        ("limits.cell_v_max", 2.0, "'limits.cell_v_max' = 2.0 outside"),
        ("model.tau1_s", "fast", "'model.tau1_s' = 'fast' is not a finite number"),
        ("battery.series", 0, "'battery.series' = 0 must be an integer"),
        ("limits.charge_derating_c", [10.0, 0.0, 40.0, 45.0], "must be t0 < t1 <= t2 < t3"),
        ("sop.horizons_s", [], "'sop.horizons_s'"),
        ("model.diffusion_tau_s", -1.0, "'model.diffusion_tau_s' = -1.0 outside"),
    ],
)
def test_bad_fields_are_named(path: str, value: object, message: str) -> None:
    doc = _doc()
    section, field = path.split(".")
    doc[section][field] = value
    with pytest.raises(
        ProfileError, match=r"^bad.toml: .*" + message.replace("[", r"\[").replace("(", r"\(")
    ):
        parse_profile(doc, "bad.toml")


def test_non_monotonic_ocv_and_missing_fields_are_rejected() -> None:
    doc = _doc()
    doc["ocv"]["ocv_v"][10] = doc["ocv"]["ocv_v"][11]
    with pytest.raises(ProfileError, match=r"'ocv.ocv_v' must rise strictly"):
        parse_profile(doc, "x")
    doc = _doc()
    del doc["model"]["r0_ohm"]
    with pytest.raises(ProfileError, match=r"missing field 'model.r0_ohm'"):
        parse_profile(doc, "x")
    doc = _doc()
    doc["ocv"]["i0_rel"] = doc["ocv"]["i0_rel"][:-1]
    with pytest.raises(ProfileError, match=r"expected 101"):
        parse_profile(doc, "x")


def test_unknown_profile_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"unknown battery profile 'nope'; shipped: .*nmc-lgm50"):
        load_profile("nope")
    bad = tmp_path / "b.toml"
    bad.write_text("[battery\n")
    with pytest.raises(ProfileError, match=r"not valid TOML"):
        load_profile(bad)


def test_with_pack_changes_only_the_layout() -> None:
    p = load_profile("nmc-lgm50")
    q = with_pack(p, 108, 30)
    assert (q.series, q.parallel, q.cells) == (108, 30, 3240)
    assert q.ocv_v == p.ocv_v
    with pytest.raises(ProfileError, match=r"0s30p"):
        with_pack(p, 0, 30)


@pytest.mark.parametrize(
    ("name", "series", "parallel", "says"),
    [
        # A 160 Ah prismatic cell in the A123 pack's layout (2.3 Ah cells, 95 in parallel): the
        # datasheet rating times 95 let the SoP allow 6.9x the pack's charge current.
        ("lfp-prismatic", 108, 95, "5460.7 kWh"),
        ("nmc-lgm50", 1, 1, "0.0 kWh"),
        ("nmc-lgm50", 400, 2, "1680 V"),  # 31 kWh, but no DC standard charges 1.68 kV
    ],
)
def test_a_pack_no_vehicle_has_is_refused(name: str, series: int, parallel: int, says: str) -> None:
    with pytest.raises(ProfileError, match=rf"{name} as {series}s{parallel}p: .*{says}.*series and parallel"):
        with_pack(load_profile(name), series, parallel)
    # The same check holds a profile's own layout.
    doc = _doc()
    doc["battery"]["parallel"] = 1000
    with pytest.raises(ProfileError, match=r"t.toml: a 96s1000p pack .* kWh"):
        parse_profile(doc, "t.toml")


@pytest.mark.parametrize("name", ["nmc-lgm50", "nmc532-pouch", "lfp-a123-26650"])
def test_another_layout_keeps_the_chargers_current_sensor(name: str) -> None:
    # The offset, its drift and the rest threshold are the charger's sensor's, per pack: the same
    # in amperes at the pack whatever the cells' layout, per cell they scale with 1 / parallel.
    own = load_profile(name)
    assert with_pack(own, own.series, own.parallel) == own
    for parallel in (2, 8, own.parallel, 200):
        p = with_pack(own, own.series, parallel)
        assert p.rest_current_a * parallel == pytest.approx(own.rest_current_a * own.parallel)
        assert p.current_offset_sigma_a * parallel == pytest.approx(own.current_offset_sigma_a * own.parallel)
        assert p.q_offset_a2_per_s * parallel**2 == pytest.approx(own.q_offset_a2_per_s * own.parallel**2)
        assert p.current_gain_sigma == own.current_gain_sigma  # relative: the same per cell
