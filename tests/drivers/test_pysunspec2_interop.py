"""Interoperability with code nobody here wrote: pysunspec2, the SunSpec Alliance's own client.

pysunspec2 scans and decodes the bench's SunSpec servers (built from our copy of the official JSON);
our drivers read a device image that pysunspec2 built from *its* copy of the definitions, and
pysunspec2 decodes the setpoint our driver wrote.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hil.sunspec_server import SunSpecImage, charger_models, meter_models
from tests.drivers.conftest import BuildDrivers, tcp_bus

sunspec2_client = pytest.importorskip("sunspec2.modbus.client")
sunspec2_device = pytest.importorskip("sunspec2.device")


def scan(port: int, unit: int) -> Any:
    d = sunspec2_client.SunSpecModbusClientDeviceTCP(
        slave_id=unit, ipaddr="127.0.0.1", ipport=port, timeout=2
    )
    try:
        d.scan()
    finally:
        d.close()
    return d


@pytest.mark.parametrize("common_length", [66, 65])
async def test_pysunspec2_scans_and_decodes_the_bench_charger(
    modbus_tcp_server: Any, common_length: int
) -> None:
    img = SunSpecImage(charger_models(p_w=-3700, soc_pct=55, common_length=common_length))
    srv = await modbus_tcp_server([img.sim_device(1)])
    port = srv.comm_params.source_address[1]
    d = await asyncio.to_thread(scan, port, 1)
    assert d.base_addr == 40000
    for name in ("common", "DERMeasureAC", "DERCapacity", "DEREnterService", "DERCtlAC", "DERStorageCapacity",
                 "DERMeasureDC", "DERCtl"):  # fmt: skip
        assert name in d.models, f"pysunspec2 did not find {name}: {list(d.models)}"
    assert d.common[0].Mn.value == "V2G-Bench"
    m = d.DERMeasureAC[0]
    assert m.W.cvalue == -3700
    assert m.Hz.cvalue == pytest.approx(50.0)
    assert m.LNV.cvalue == pytest.approx(230.0)
    assert m.PF.cvalue == pytest.approx(-1.0)
    assert m.TmpAmb.value is None  # not implemented stays absent for them too
    assert d.DERCapacity[0].WMaxRtg.cvalue == 11000
    assert d.DERStorageCapacity[0].SoC.cvalue == 55
    port0 = d.DERMeasureDC[0].Prt[0]
    assert port0.DCV.cvalue == pytest.approx(380.0)
    assert port0.IDStr.value == "EV"


async def test_pysunspec2_scans_and_decodes_the_bench_meter(modbus_tcp_server: Any) -> None:
    img = SunSpecImage(meter_models(w=1500), base=50000)
    srv = await modbus_tcp_server([img.sim_device(2)])
    d = await asyncio.to_thread(scan, srv.comm_params.source_address[1], 2)
    assert d.base_addr == 50000
    m = d.models[203][0]
    assert m.W.cvalue == 1500
    assert m.PhVphA.cvalue == pytest.approx(230.1)
    assert m.Hz.cvalue == pytest.approx(50.0)
    assert m.TotWhImp.cvalue == 250000


def pysunspec2_image(models: list[tuple[int, dict[str, Any]]]) -> list[int]:
    """SunS, the models as pysunspec2 lays them out from its own JSON, the end marker."""
    data = bytearray(b"SunS")
    for mid, values in models:
        m = sunspec2_device.Model(model_id=mid)
        for name, v in values.items():
            getattr(m, name).value = v
        data.extend(m.get_mb())
    data.extend(b"\xff\xff\x00\x00")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


CHARGER_BY_PYSUNSPEC2 = [
    (1, {"Mn": "ThirdParty", "Md": "X", "SN": "42"}),
    (701, {"ACType": 0, "InvSt": 3, "W": 4200, "W_SF": 0, "PF": 990, "PF_SF": -3, "Hz": 60010, "Hz_SF": -3,
           "LNV": 2401, "V_SF": -1, "Var": -300, "Var_SF": 0, "A": 175, "A_SF": -1}),
    (702, {"WMaxRtg": 720, "W_SF": 1, "VAMaxRtg": 760, "VA_SF": 1, "VarMaxInjRtg": 400, "VarMaxAbsRtg": 400,
           "Var_SF": 1, "WChaRteMaxRtg": 720}),
    (704, {"WSetEna": 0, "WSetMod": 1, "WSet": 0, "WSet_SF": 0, "VarSet_SF": 0, "WSetPct_SF": 0}),
    (715, {"DERHb": 10, "OpCtl": 1}),
]  # fmt: skip


async def test_our_drivers_read_and_write_a_pysunspec2_built_device(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    from pymodbus.simulator import DataType, SimData, SimDevice

    regs = pysunspec2_image(CHARGER_BY_PYSUNSPEC2)
    srv = await modbus_tcp_server(
        [SimDevice(id=1, simdata=[SimData(address=40000, values=regs, datatype=DataType.REGISTERS)])]
    )
    dev = {"bus": "link", "unit_id": 1, "role": "power_stage", "protocol": "sunspec"}
    d = await drivers_factory({"link": tcp_bus(srv)}, {"inv": dev})
    stage = d.power_stage
    assert stage is not None
    r = await stage.read()
    assert r.p_w == 4200.0
    assert r.q_var == -300.0
    assert r.pf == pytest.approx(0.99)
    assert r.f_hz == pytest.approx(60.01)
    assert r.v_ac_v == pytest.approx(240.1)
    assert r.i_ac_a == pytest.approx(17.5)
    assert r.operating == "RUNNING"
    rt = stage.ratings()
    assert rt is not None
    assert (rt.p_max_export_w, rt.p_max_charge_w, rt.s_max_va) == (7200.0, 7200.0, 7600.0)

    await stage.write_setpoint(-6500.0, 250.0)
    back = await asyncio.to_thread(scan, srv.comm_params.source_address[1], 1)
    ctl = back.DERCtlAC[0]
    assert ctl.WSet.cvalue == -6500  # pysunspec2 decodes what our driver encoded
    assert ctl.WSetEna.value == 1
    assert ctl.WSetMod.value == 1
    assert ctl.VarSet.cvalue == 250
    assert ctl.WSetRvrtTms.value == 10
    assert ctl.WSetRvrt.cvalue == 0
