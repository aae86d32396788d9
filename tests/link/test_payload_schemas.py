"""The shipped MQTT JSON Schemas are the ones the payload definitions generate, and payloads built from
the definitions validate against them (jsonschema); commands the handler refuses for their shape the
schema refuses too; no payload has room for a vehicle identifier."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import numpy as np
import pytest

from edge.daemon.dispatch import SchedulePoint
from edge.daemon.sessions import SessionStatus
from edge.link import payloads as pl
from edge.link.schemas import PAYLOADS, json_schema, main, render, schema_dir, stale
from edge.planner.envelope import envelope
from edge.planner.inputs import PlanInputs, Series
from edge.planner.report import to_payload
from edge.planner.solve import solve
from edge.settings import load_default
from tests.planner.support import problem

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "schema" / "mqtt"
T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SHIPPED / f"{name}.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _telemetry(seq: int) -> pl.Telemetry:
    return pl.Telemetry(
        seq=seq,
        t=T + timedelta(seconds=seq),
        state="running",
        mode="v2g",
        dispatch_source="aggregator dispatch d-1",
        p_cmd_w=3000.0,
        q_cmd_var=-200.0,
        binding=["export_cap"],
        reasons=["export cap 0 W"],
        meter=pl.Point(p_w=120.0, q_var=10.0, v_pu=1.01, f_hz=60.0, age_s=0.1),
        inverter=pl.Point(p_w=2950.0, q_var=-190.0, v_pu=1.02, f_hz=60.0, age_s=0.05),
        soc=0.62,
        soh=0.97,
        sop_charge_w=7400.0,
        sop_discharge_w=7000.0,
        energy_wh={"charge_ac": 1200.0, "discharge_ac": 300.0},
        departure="free: target reachable",
        session=pl.Session(start=T, e_charge_ac_wh=1.0, e_discharge_ac_wh=2.0, e_charge_dc_wh=0.9,
                           e_discharge_dc_wh=2.1, soc_start=0.5, soc_now=0.62, limits=["export_cap 3 min"]),
        output_mismatch=None,
        links=pl.LinkHealth(
            devices=[pl.DeviceLink(name="inverter", ok=True, rtt_ms=4.2, last_success_age_s=0.1)],
            spool_backlog=3,
            dropped_telemetry=0,
            dropped_events=0,
        ),
    )  # fmt: skip


def _grid_curves() -> dict[str, Any]:
    grid = load_default().grid
    assert grid is not None
    return {"volt_var": grid.volt_var, "volt_watt": grid.volt_watt, "freq_droop": grid.freq_droop}


def _plan() -> pl.PlanPayload:
    pb = problem(
        n=8, departure_index=6, departure_soc=0.6, margin_steps=1, emissions_g_per_kwh=np.full(8, 300.0)
    )
    return to_payload(solve(pb), envelope(pb), T.timestamp(), T + timedelta(hours=1, minutes=30))


def _examples() -> dict[str, list[msgspec.Struct]]:
    owner = load_default().owner
    return {
        "state": [
            pl.StatePayload(
                online=True,
                t=T,
                software_version="0.1.0",
                site_id="site",
                evse_id="evse",
                mode="v2h",
                devices=[pl.DeviceIdentity(name="inverter", role="power_stage", manufacturer="Bench", serial="1")],
                ratings=pl.Ratings(p_rated_w=7400, p_rated_charge_w=7400, q_max_inj_var=3256, q_max_abs_var=3256),
                functions={"volt_var": pl.FunctionState(owner="daemon", settings={"v1_pu": 0.92})},
                commands=["dispatch", "mode", "owner"],
                owner=pl.OwnerPrefs.of(owner),
            ),
            pl.StatePayload(online=False, t=T, software_version="0.1.0", site_id="s", evse_id="e"),
        ],
        "telemetry": [_telemetry(1), pl.Telemetry(seq=2, t=T, state="idle", mode="idle", dispatch_source="none",
                                                  p_cmd_w=0.0, q_cmd_var=0.0)],
        "telemetry-replay": [pl.TelemetryReplay(records=[_telemetry(1), _telemetry(2)])],
        "event": [pl.Event(seq=3, t=T, kind="trip", detail={"why": "ov2", "v_pu": 1.21})],
        "event-replay": [pl.EventReplay(records=[pl.Event(seq=3, t=T, kind="comm_lost", detail={})])],
        "cmd-dispatch": [
            pl.DispatchCommand(id="d-1", issued_at=T, start=T, expiry=T + timedelta(hours=1), p_w=-3000.0,
                               q_var=100.0, mode="v1g", start_window_s=300.0),
            pl.DispatchCommand(id="d-2", issued_at=T, start=T, expiry=T + timedelta(hours=1), mode="schedule",
                               schedule=[SchedulePoint(at=T, p_w=-1000.0)]),
        ],
        "cmd-mode": [pl.ModeCommand(id="m-1", issued_at=T, mode="idle", expiry=T + timedelta(minutes=5)),
                     pl.ModeCommand(id="m-2", issued_at=T, mode="v2g")],
        "cmd-owner": [pl.OwnerCommand(id="o-1", issued_at=T, min_soc=0.3, departure_time="07:30",
                                      departure_soc=0.8),
                      pl.OwnerCommand(id="o-2", issued_at=T, departure_time=None)],
        "cmd-grid": [pl.GridCommand(id="g-1", issued_at=T, **_grid_curves())],
        "cmd-plan_inputs": [
            pl.PlanInputsCommand(id="p-1", issued_at=T, inputs=PlanInputs(
                import_price=Series(start=T, step_s=3600, values=[0.1, 0.3]), demand_peak_so_far_w=4000.0)),
            pl.PlanInputsCommand(id="p-2", issued_at=T, inputs=PlanInputs()),
        ],
        "plan": [_plan(), pl.PlanPayload(t=T, status="none", reasons=["no EV plugged in"])],
        "result": [
            pl.Result(id="d-1", command="dispatch", status="accepted", t=T, start=T + timedelta(seconds=12)),
            pl.Result(id=None, command="dispatch", status="rejected", t=T, reason="too large", field="payload",
                      value="10485760 bytes", allowed="at most 262144 bytes"),
        ],
    }  # fmt: skip


def test_shipped_schemas_are_up_to_date() -> None:
    assert schema_dir().resolve() == SHIPPED.resolve()
    assert stale(SHIPPED) == [], "regenerate: python -m edge.link.schemas --write"
    for name in PAYLOADS:
        assert (SHIPPED / f"{name}.schema.json").read_text(encoding="utf-8") == render(name)


def test_check_finds_a_stale_or_missing_file(tmp_path: Path) -> None:
    assert main(["--write", "--dir", str(tmp_path)]) == 0
    assert main(["--check", "--dir", str(tmp_path)]) == 0
    (tmp_path / "result.schema.json").write_text("{}", encoding="utf-8")
    (tmp_path / "telemetry.schema.json").unlink()
    assert sorted(stale(tmp_path)) == ["result.schema.json", "telemetry.schema.json"]
    assert main(["--check", "--dir", str(tmp_path)]) == 1


def test_every_payload_has_examples() -> None:
    assert set(_examples()) == set(PAYLOADS)


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_examples_validate_against_the_shipped_schema(name: str) -> None:
    validator = _validator(name)
    for example in _examples()[name]:
        assert isinstance(example, PAYLOADS[name][0])
        validator.validate(json.loads(msgspec.json.encode(example)))


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("cmd-dispatch", {"id": "d 1", "issued_at": "2026-03-01T12:00:00Z", "start": "x", "expiry": "y"}),
        ("cmd-dispatch", {"id": "d1", "issued_at": "2026-03-01T12:00:00Z", "start": "2026-03-01T12:00:00Z",
                          "expiry": "2026-03-01T13:00:00Z", "p_w": "3000"}),
        ("cmd-dispatch", {"id": "d1", "issued_at": "2026-03-01T12:00:00Z", "start": "2026-03-01T12:00:00Z",
                          "expiry": "2026-03-01T13:00:00Z", "start_window_s": 4000}),
        ("cmd-mode", {"id": "m1", "issued_at": "2026-03-01T12:00:00Z", "mode": "turbo"}),
        ("cmd-mode", {"id": "m1", "issued_at": "2026-03-01T12:00:00Z", "mode": "idle", "extra": 1}),
        ("cmd-owner", {"id": "o1", "issued_at": "2026-03-01T12:00:00Z", "departure_time": "7:30"}),
        ("cmd-owner", {"id": "o1", "issued_at": "2026-03-01T12:00:00Z", "min_soc": 1.5}),
        ("cmd-grid", {"id": "g1", "issued_at": "2026-03-01T12:00:00Z", "voltage_trip": {}}),
        ("cmd-grid", {"id": "g1", "issued_at": "2026-03-01T12:00:00Z", "volt_var": {"v1_pu": 0.9}}),
    ],
)  # fmt: skip
def test_schema_refuses_what_the_decoder_refuses(name: str, body: dict[str, Any]) -> None:
    validator = _validator(name)
    assert list(validator.iter_errors(body))
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(body, PAYLOADS[name][0])


def _property_names(node: Any) -> set[str]:
    names: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                names.update(value)
            names |= _property_names(value)
    elif isinstance(node, list):
        for item in node:
            names |= _property_names(item)
    return names


def test_no_payload_has_a_field_for_a_vehicle_identifier() -> None:
    for name in PAYLOADS:
        assert not {n.lower() for n in _property_names(json_schema(name))} & pl.VEHICLE_KEYS, name


def test_events_drop_vehicle_identifiers_from_their_detail() -> None:
    event = pl.Event(
        seq=1,
        t=T,
        kind="session_start",
        detail={"VIN": "WVW123", "evccid": "00:11", "soc": 0.4, "ev": {"vehicle_key": "k", "pack_wh": 60e3}},
    )
    body = msgspec.json.decode(msgspec.json.encode(event))
    assert body["detail"] == {"soc": 0.4, "ev": {"pack_wh": 60e3}}


def test_session_carries_no_vehicle_key() -> None:
    status = SessionStatus(
        vehicle_key="salted-key",
        start_unix_s=T.timestamp(),
        e_charge_ac_wh=1.0,
        e_discharge_ac_wh=0.0,
        e_charge_dc_wh=0.9,
        e_discharge_dc_wh=0.0,
        soc_start=0.2,
        soc_now=0.3,
        limits=["export_cap 2 min"],
    )
    body = msgspec.json.encode(pl.Session.of(status))
    assert b"salted-key" not in body and b"vehicle" not in body
    assert msgspec.json.decode(body)["start"] == "2026-03-01T12:00:00Z"
