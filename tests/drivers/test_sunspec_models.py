"""Decoding every model the drivers read, curve models with repeating groups included, against
register images laid out from the official JSON."""

from __future__ import annotations

from typing import Any

import pytest

from drivers.sunspec import models as ssm
from drivers.sunspec.device import ModelValues, SunSpecDevice
from drivers.sunspec.power_stage import SunSpecPowerStage
from hil.sunspec_server import ModelSpec, SunSpecImage, charger_models
from tests.drivers.conftest import BuildDrivers, tcp_bus

BATTERY_802: dict[str, int | float | str | None] = {
    "AHRtg": 150,
    "WHRtg": 6000,
    "WChaRteMax": 1100,
    "WDisChaRteMax": 1000,
    "SoC": 612,
    "State": 3,
    "LocRemCtl": 0,
    "Typ": 4,
    "Evt1": 0,
    "Evt2": 0,
    "EvtVnd1": 0,
    "EvtVnd2": 0,
    "V": 3800,
    "A": -96,
    "W": -3650,
    "SetOp": 1,
    "SetInvState": 3,
    "AHRtg_SF": 0,
    "WHRtg_SF": 1,
    "WChaDisChaMax_SF": 1,
    "SoC_SF": -1,
    "V_SF": -1,
    "CellV_SF": -3,
    "A_SF": -1,
    "AMax_SF": 0,
    "W_SF": 0,
}

CURVES = [
    ModelSpec(
        705,
        {"Ena": 1, "V_SF": -1, "DeptRef_SF": 0, "RspTms_SF": 0, "RvrtTms": 0,
         "Crv[0].ActPt": 4, "Crv[0].DeptRef": 3, "Crv[0].RspTms": 5, "Crv[0].ReadOnly": 1,
         "Crv[0].Pt[0].V": 920, "Crv[0].Pt[0].Var": 44, "Crv[0].Pt[1].V": 980, "Crv[0].Pt[1].Var": 0,
         "Crv[0].Pt[2].V": 1020, "Crv[0].Pt[2].Var": 0, "Crv[0].Pt[3].V": 1080, "Crv[0].Pt[3].Var": -44,
         "Crv[1].ReadOnly": 0},
        counts={"NCrv": 2, "NPt": 4},
    ),
    ModelSpec(706, {"Ena": 0, "V_SF": 0, "DeptRef_SF": 0, "RspTms_SF": 0, "Crv[0].Pt[1].V": 110,
                    "Crv[0].Pt[1].W": 20},
              counts={"NCrv": 1, "NPt": 2}),
    ModelSpec(707, {"Ena": 1, "V_SF": 0, "Tms_SF": -2, "Crv[0].MustTrip.ActPt": 2,
                    "Crv[0].MustTrip.Pt[0].V": 70, "Crv[0].MustTrip.Pt[0].Tms": 1000,
                    "Crv[0].MustTrip.Pt[1].V": 45, "Crv[0].MustTrip.Pt[1].Tms": 16},
              counts={"NCrvSet": 1, "NPt": 5}),
    ModelSpec(708, {"Ena": 1, "V_SF": 0, "Tms_SF": -2}, counts={"NCrvSet": 1, "NPt": 3}),
    ModelSpec(709, {"Ena": 1, "Hz_SF": -2, "Tms_SF": -2, "Crv[0].MustTrip.Pt[0].Hz": 5650,
                    "Crv[0].MustTrip.Pt[0].Tms": 30000},
              counts={"NCrvSet": 1, "NPt": 2}),
    ModelSpec(710, {"Ena": 1, "Hz_SF": -2, "Tms_SF": -2}, counts={"NCrvSet": 1, "NPt": 2}),
    ModelSpec(711, {"Ena": 1, "Db_SF": -3, "K_SF": -3, "RspTms_SF": 0, "Ctl[0].DbOf": 36, "Ctl[0].DbUf": 36,
                    "Ctl[0].KOf": 50, "Ctl[0].KUf": 50, "Ctl[0].RspTms": 5, "Ctl[0].ReadOnly": 1},
              counts={"NCtl": 1}),
    ModelSpec(712, {"Ena": 0, "W_SF": 0, "DeptRef_SF": 0, "Crv[0].Pt[0].W": -100,
                    "Crv[0].Pt[0].Var": 30},
              counts={"NCrv": 1, "NPt": 6}),
    ModelSpec(802, BATTERY_802),
]  # fmt: skip


async def _read_all_models(modbus_tcp_server: Any, drivers_factory: BuildDrivers) -> dict[int, ModelValues]:
    img = SunSpecImage(charger_models() + CURVES)
    srv = await modbus_tcp_server([img.sim_device(1)])
    dev = {"bus": "link", "unit_id": 1, "role": "power_stage", "protocol": "sunspec"}
    d = await drivers_factory({"link": tcp_bus(srv)}, {"inv": dev})
    stage = d.devices["inv"]
    assert isinstance(stage, SunSpecPowerStage)
    device: SunSpecDevice = stage.device
    assert device.map is not None
    out = {}
    for inst in device.map.models:
        out[inst.id] = await device.read_model(inst)
    # The EV battery (802) feeds the reading: SoC, state and the EV's limits.
    r = await stage.read()
    assert r.ev_soc == pytest.approx(0.612)
    assert r.ev_state == "CONNECTED"
    assert (r.ev_p_max_charge_w, r.ev_p_max_discharge_w) == (11000.0, 10000.0)
    return out


async def test_curve_and_storage_models_decode(modbus_tcp_server: Any, drivers_factory: BuildDrivers) -> None:
    m = await _read_all_models(modbus_tcp_server, drivers_factory)
    vv = m[705]
    assert vv.raw("NCrv") == 2
    assert vv.raw("NPt") == 4
    assert [vv.value(f"Crv[0].Pt[{i}].V") for i in range(4)] == pytest.approx([92.0, 98.0, 102.0, 108.0])
    assert [vv.value(f"Crv[0].Pt[{i}].Var") for i in range(4)] == [44.0, 0.0, 0.0, -44.0]
    assert vv.symbol("Crv[0].DeptRef") == "VA_MAX_PCT"
    assert vv.symbol("Crv[0].ReadOnly") == "R"
    assert vv.symbol("Crv[1].ReadOnly") == "RW"
    assert vv.value("Crv[1].Pt[0].V") is None  # not implemented (uint16 0xFFFF)
    assert m[706].value("Crv[0].Pt[1].W") == 20.0
    trip = m[707]
    assert trip.value("Crv[0].MustTrip.Pt[0].Tms") == pytest.approx(10.0)
    assert trip.value("Crv[0].MustTrip.Pt[1].V") == 45.0
    assert trip.value("Crv[0].MayTrip.Pt[0].V") is None
    assert m[709].value("Crv[0].MustTrip.Pt[0].Hz") == pytest.approx(56.5)
    assert m[709].value("Crv[0].MustTrip.Pt[0].Tms") == pytest.approx(300.0)
    droop = m[711]
    assert droop.value("Ctl[0].DbOf") == pytest.approx(0.036)
    assert droop.value("Ctl[0].KOf") == pytest.approx(0.05)
    assert m[712].value("Crv[0].Pt[0].W") == -100.0
    for mid in (708, 710):
        assert m[mid].symbol("Ena") == "ENABLED"
    assert m[1].text("Mn") == "V2G-Bench"
    assert m[701].flags("Alrm") == frozenset()
    assert m[714].text("Prt[0].IDStr") == "EV"
    assert m[714].symbol("Prt[0].PrtTyp") == "EV"


def test_model_lengths_follow_the_counts() -> None:
    for spec in CURVES:
        lay = ssm.layout(ssm.load(spec.id), spec.counts)
        img = SunSpecImage([ModelSpec(1, {"Mn": "x", "Md": "y", "SN": "z"}), spec])
        assert img.layouts[1][0].length == lay.length
