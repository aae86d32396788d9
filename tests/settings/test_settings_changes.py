"""Aggregator changes (whitelist, in memory), local changes (file, comments kept, audited), the schema."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, time
from pathlib import Path

import msgspec
import pytest
import tomlkit
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.settings import (
    SettingsError,
    apply_local_change,
    apply_remote_change,
    decode_remote_change,
    load_default,
    load_text,
    read_audit,
)
from edge.settings.edit import set_value
from edge.settings.load import default_config_text
from edge.settings.schema import json_schema, render

Edit = Callable[..., str]
NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
SCHEMA_FILE = Path(__file__).resolve().parents[2] / "config" / "schema" / "v2g-edge.schema.json"


# --- aggregator -----------------------------------------------------------------------------------


def test_remote_change_of_a_support_function() -> None:
    s = apply_remote_change(load_default(), "grid.volt_var.olrt_s", 10)
    assert s.grid is not None
    assert s.grid.volt_var.olrt_s == 10.0


def test_remote_change_of_a_whole_curve_is_checked_once() -> None:
    s = load_default()
    curve = {"v1_pu": 0.90, "v2_pu": 0.97, "v3_pu": 1.03, "v4_pu": 1.10}
    new = apply_remote_change(s, "grid.volt_var", curve)
    assert new.grid is not None
    assert (new.grid.volt_var.v1_pu, new.grid.volt_var.v4_pu) == (0.90, 1.10)
    assert s.grid is not None
    assert s.grid.volt_var.v1_pu == 0.92


@pytest.mark.parametrize(
    "path",
    [
        "grid.voltage_trip.ov1.clearing_s",
        "grid.frequency_trip.uf1.pickup_hz",
        "grid.ride_through.rocof_hz_per_s",
        "grid.enter_service.delay_s",
        "commissioning.profile",
        "functions.volt_var",
        "site.export_cap_w",
        "site.rocof_pickup_s",
        "site.min_import_s",
        "site.meter_window_s",
        "site.export_trim_gain_per_s",
        "inverter.p_rated_w",
        "mqtt.host",
        "daemon.cycle_s",
    ],
)
def test_remote_change_of_protected_settings_is_refused(path: str) -> None:
    with pytest.raises(SettingsError, match="refused from the aggregator") as err:
        apply_remote_change(load_default(), path, 1)
    assert err.value.path == path


def test_remote_out_of_range_is_refused() -> None:
    with pytest.raises(SettingsError) as err:
        apply_remote_change(load_default(), "grid.freq_droop.k_of", 0.01)
    assert err.value.path == "grid.freq_droop.k_of"
    assert err.value.allowed == "0.03 … 0.05"


def test_remote_wrong_type_is_refused() -> None:
    with pytest.raises(SettingsError) as err:
        apply_remote_change(load_default(), "grid.volt_var.olrt_s", "10")
    assert err.value.path == "grid.volt_var.olrt_s"


def test_remote_unknown_setting_is_refused() -> None:
    with pytest.raises(SettingsError, match="no such setting"):
        apply_remote_change(load_default(), "grid.volt_var.v9_pu", 1.0)


def test_remote_grid_change_before_commissioning_is_refused() -> None:
    with pytest.raises(SettingsError, match="until the site is commissioned"):
        apply_remote_change(load_text(""), "grid.volt_var.olrt_s", 10.0)


def test_remote_owner_change_from_json(tmp_path: Path) -> None:
    payload = json.loads('{"path": "owner.departure_time", "value": "06:45:00"}')
    log = tmp_path / "audit.jsonl"
    with_target = apply_remote_change(
        load_default(), "owner.departure_soc", 0.8, audit_path=tmp_path / "a0", now=NOW
    )
    s = apply_remote_change(with_target, payload["path"], payload["value"], audit_path=log, now=NOW)
    assert s.owner.departure_time == time(6, 45)
    (rec,) = read_audit(log)
    assert (rec.source, rec.who, rec.old, rec.new, rec.protected) == (
        "aggregator",
        "aggregator",
        None,
        "06:45:00",
        False,
    )


# --- local ----------------------------------------------------------------------------------------


@pytest.fixture
def site_file(tmp_path: Path) -> Path:
    f = tmp_path / "v2g-edge.toml"
    f.write_text(default_config_text())
    return f


def test_local_trip_change_is_written_with_comments_and_audited(site_file: Path, tmp_path: Path) -> None:
    log = tmp_path / "state" / "audit.jsonl"
    before = site_file.read_text()
    s = apply_local_change(
        site_file, "grid.voltage_trip.uv1.clearing_s", 15.0, who="j.doe", audit_path=log, now=NOW
    )
    assert s.grid is not None
    assert s.grid.voltage_trip.uv1.clearing_s == 15.0
    after = site_file.read_text()
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert changed == [
        (
            "clearing_s = 10.0              # the Category II default, written out as an example",
            "clearing_s = 15.0              # the Category II default, written out as an example",
        )
    ]
    (rec,) = read_audit(log)
    assert (rec.at, rec.who, rec.source, rec.path, rec.old, rec.new, rec.protected) == (
        NOW,
        "j.doe",
        "local",
        "grid.voltage_trip.uv1.clearing_s",
        10.0,
        15.0,
        True,
    )


def test_local_invalid_change_writes_nothing(site_file: Path, tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    before = site_file.read_text()
    with pytest.raises(SettingsError, match=re.escape("uv1.clearing_s = 99.0")):
        apply_local_change(site_file, "grid.voltage_trip.uv1.clearing_s", 99.0, who="j.doe", audit_path=log)
    assert site_file.read_text() == before
    assert not log.exists()


def test_local_change_needs_who(site_file: Path, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="name of who"):
        apply_local_change(site_file, "site.export_cap_w", 5000.0, who=" ", audit_path=tmp_path / "a")


def test_local_commissioning_change_stamps_who_and_when(site_file: Path, tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    s = apply_local_change(
        site_file, "commissioning.abnormal_category", "I", who="installer", audit_path=log, now=NOW
    )
    assert s.commissioning.commissioned_by == "installer"
    assert s.commissioning.commissioned_at == NOW
    assert s.grid is not None
    assert s.grid.ride_through.rocof_hz_per_s == 0.5
    (rec,) = read_audit(log)
    assert (rec.old, rec.new, rec.protected) == ("II", "I", True)


def test_recommissioning_to_cat_iii_rechecks_overrides(site_file: Path, tmp_path: Path) -> None:
    # The bench file overrides uv1.clearing_s = 10 s, allowed for Cat II (2-21 s) but not Cat III (21-50 s).
    with pytest.raises(SettingsError) as err:
        apply_local_change(
            site_file, "commissioning.abnormal_category", "III", who="i", audit_path=tmp_path / "a"
        )
    assert err.value.path == "grid.voltage_trip.uv1.clearing_s"
    assert err.value.allowed == "21 … 50"


def test_local_removal_reverts_to_profile_default(site_file: Path, tmp_path: Path) -> None:
    s = apply_local_change(site_file, "grid.voltage_trip.uv1", None, who="i", audit_path=tmp_path / "a")
    assert s.grid is not None
    assert s.grid.voltage_trip.uv1.clearing_s == 10.0
    assert "[grid.voltage_trip.uv1]" not in site_file.read_text()


def test_audit_defaults_to_state_dir(site_file: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    apply_local_change(
        site_file, "daemon.state_dir", str(state), who="i", audit_path=tmp_path / "first.jsonl"
    )
    apply_local_change(site_file, "site.export_margin_w", 200.0, who="i", now=NOW)
    (rec,) = read_audit(state / "audit.jsonl")
    assert (rec.path, rec.old, rec.new, rec.protected) == ("site.export_margin_w", 100.0, 200.0, True)


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        ("site.rocof_window_s", 0.2, 0.3),
        ("site.meter_window_s", 0.0, 1.0),
        ("site.export_rise_w_per_s", 5000.0, 2e3),
    ],
)
def test_local_protection_tuning_change_is_audited_as_protected(
    path: str, old: float, new: float, site_file: Path, tmp_path: Path
) -> None:
    log = tmp_path / "audit.jsonl"
    s = apply_local_change(site_file, path, new, who="installer", audit_path=log, now=NOW)
    assert getattr(s.site, path.removeprefix("site.")) == new
    (rec,) = read_audit(log)
    assert (rec.path, rec.old, rec.new, rec.protected) == (path, old, new, True)


# --- round trip and schema ------------------------------------------------------------------------


def test_round_trip_keeps_every_comment() -> None:
    text = default_config_text()
    assert tomlkit.dumps(tomlkit.parse(text)) == text
    edited = set_value(text, "grid.freq_droop.db_of_hz", 0.05)
    comments = [line for line in text.splitlines() if "#" in line]
    assert [line for line in edited.splitlines() if "#" in line] == comments
    assert "[grid.freq_droop]\ndb_of_hz = 0.05" in edited
    s = load_text(edited)
    assert s.grid is not None
    assert s.grid.freq_droop.db_of_hz == 0.05


def test_typed_values_survive_file_round_trip() -> None:
    """file -> typed -> builtins -> file -> typed gives the same settings."""
    s = load_default()
    text = default_config_text()
    for section in ("site", "owner", "mqtt", "daemon", "functions", "commissioning"):
        for key, value in msgspec.to_builtins(getattr(s, section)).items():
            typed = getattr(getattr(s, section), key)
            text = set_value(text, f"{section}.{key}", typed if typed is not None else value)
    assert load_text(text) == s


@settings(max_examples=50, deadline=None)
@given(st.floats(min_value=0.5, max_value=60.0))
def test_edit_then_load_returns_the_value(olrt: float) -> None:
    s = load_text(set_value(default_config_text(), "grid.volt_watt.olrt_s", olrt))
    assert s.grid is not None
    assert s.grid.volt_watt.olrt_s == olrt


def test_shipped_schema_is_up_to_date() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render(), (
        "regenerate: python -m edge.settings.schema > config/schema/v2g-edge.schema.json"
    )


def test_schema_covers_the_embedded_config() -> None:
    schema = json_schema()
    sections = set(tomlkit.parse(default_config_text()))
    assert sections <= set(schema["$defs"]["Settings"]["properties"])
    assert schema["$defs"]["Settings"]["additionalProperties"] is False
    assert "required" not in schema["$defs"]["VoltVar"]
    assert schema["$defs"]["Inverter"]["required"] == [
        "p_rated_w",
        "p_rated_charge_w",
        "s_rated_va",
        "q_max_inj_var",
        "q_max_abs_var",
    ]


def test_mqtt_payload_decodes_to_a_change() -> None:
    change = decode_remote_change(b'{"path": "grid.volt_var.olrt_s", "value": 8}')
    s = apply_remote_change(load_default(), change.path, change.value)
    assert s.grid is not None
    assert s.grid.volt_var.olrt_s == 8.0


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "malformed JSON"),
        (b'{"path": 3, "value": 1}', "not a settings change"),
        (b"[]", "not a settings"),
    ],
)
def test_malformed_mqtt_payload_is_refused(payload: bytes, reason: str) -> None:
    with pytest.raises(SettingsError, match=reason) as err:
        decode_remote_change(payload)
    assert err.value.path == "payload"


def test_broken_file_can_be_repaired_locally(site_file: Path, tmp_path: Path) -> None:
    broken = site_file.read_text().replace("export_cap_w = 0.0 ", "export_cap_w = -1.0 ")
    assert "export_cap_w = -1.0" in broken
    site_file.write_text(broken)
    log = tmp_path / "audit.jsonl"
    s = apply_local_change(site_file, "site.export_cap_w", 0.0, who="tech", audit_path=log, now=NOW)
    assert s.site.export_cap_w == 0.0
    (rec,) = read_audit(log)
    assert (rec.old, rec.new) == (None, 0.0)
