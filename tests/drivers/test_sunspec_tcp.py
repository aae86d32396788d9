"""SunSpec devices over loopback TCP: discovery, decoding, meter and power-stage reads, the setpoint path."""

from __future__ import annotations

import math
from typing import Any

import pytest

from drivers import PowerStage, SiteMeter
from drivers.errors import DriverError
from drivers.sunspec.power_stage import SunSpecPowerStage
from hil.sunspec_server import ModelSpec, SunSpecImage, charger_models, meter_models
from tests.drivers.conftest import BuildDrivers, tcp_bus


async def serve(start: Any, *images: tuple[int, SunSpecImage], **kw: Any) -> Any:
    return await start([img.sim_device(unit) for unit, img in images], ignore_missing_devices=True, **kw)


def stage_cfg(**kw: Any) -> dict[str, Any]:
    return {"bus": "link", "unit_id": 1, "role": "power_stage", "protocol": "sunspec", **kw}


def meter_cfg(**kw: Any) -> dict[str, Any]:
    return {"bus": "link", "unit_id": 2, "role": "site_meter", "protocol": "sunspec", **kw}


@pytest.mark.parametrize("base", [0, 40000, 50000])
@pytest.mark.parametrize("common_length", [65, 66])
async def test_discovery_finds_every_base_and_both_model_1_lengths(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers, base: int, common_length: int
) -> None:
    img = SunSpecImage(charger_models(common_length=common_length), base=base)
    srv = await serve(modbus_tcp_server, (1, img))
    d = await drivers_factory({"link": tcp_bus(srv)}, {"inv": stage_cfg()})
    stage = d.devices["inv"]
    assert isinstance(stage, SunSpecPowerStage)
    smap = stage.device.map
    assert smap is not None
    assert smap.base == base
    assert smap.ids == (1, 701, 702, 703, 704, 713, 714, 715)
    assert smap.find(1) is not None
    assert smap.find(1).length == common_length  # type: ignore[union-attr]
    assert smap.find(701).start == img.start(701)  # type: ignore[union-attr]


async def test_a_device_without_suns_is_not_sunspec(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    from pymodbus.simulator import DataType, SimData, SimDevice

    plain = SimDevice(id=1, simdata=[SimData(address=0, count=60000, values=7, datatype=DataType.REGISTERS)])
    srv = await modbus_tcp_server([plain])
    d = await drivers_factory({"link": tcp_bus(srv)}, {"inv": stage_cfg()}, start=False)
    await d.buses["link"].start()
    with pytest.raises(
        DriverError, match=r"device 'inv'.*no SunSpec marker 'SunS' at 40000: 0x0007 0x0007"
    ) as e:
        await d.devices["inv"].read()
    assert e.value.kind == "unsupported"


async def test_meter_reads_scaled_values_with_import_positive(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    img = SunSpecImage(meter_models(w=1500))
    srv = await serve(modbus_tcp_server, (2, img))
    d = await drivers_factory({"link": tcp_bus(srv)}, {"meter": meter_cfg()})
    assert isinstance(d.site_meter, SiteMeter)
    r = await d.site_meter.read()
    assert r.p_site_import_w == 1500.0
    assert r.q_site_import_var == 300.0
    assert r.pf_site == pytest.approx(0.98)
    assert r.v_l1_v == pytest.approx(230.1)
    assert r.f_hz == pytest.approx(50.0)
    assert r.i_a == pytest.approx(6.5)
    assert (r.p_l1_import_w, r.p_l2_import_w, r.p_l3_import_w) == (500.0, 500.0, 500.0)
    assert (r.e_import_wh, r.e_export_wh) == (250000.0, 1000.0)
    assert d.site_meter.latest() is r


async def test_meter_mounted_reversed_is_normalized(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    img = SunSpecImage(meter_models(w=-2000))
    srv = await serve(modbus_tcp_server, (2, img))
    d = await drivers_factory({"link": tcp_bus(srv)}, {"meter": meter_cfg(meter_sign="export_positive")})
    assert d.site_meter is not None
    r = await d.site_meter.read()
    # The meter says -2000 W with export positive: the site imports 2000 W.
    assert r.p_site_import_w == 2000.0
    assert r.pf_site is not None
    assert r.pf_site > 0
    assert (r.e_import_wh, r.e_export_wh) == (1000.0, 250000.0)


@pytest.mark.parametrize("model_id", [201, 202, 204])
async def test_every_meter_model_reads(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers, model_id: int
) -> None:
    img = SunSpecImage(meter_models(model_id=model_id))
    srv = await serve(modbus_tcp_server, (2, img))
    d = await drivers_factory({"link": tcp_bus(srv)}, {"meter": meter_cfg()})
    assert d.site_meter is not None
    assert (await d.site_meter.read()).p_site_import_w == 1500.0


async def test_not_implemented_points_are_none_never_numbers(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    specs = meter_models()
    values = dict(specs[1].values)
    values.update({"PF": None, "VAR_SF": None, "PhVphB": None})  # sentinels 0x8000
    img = SunSpecImage([specs[0], ModelSpec(203, values)])
    srv = await serve(modbus_tcp_server, (2, img))
    d = await drivers_factory({"link": tcp_bus(srv)}, {"meter": meter_cfg()})
    assert d.site_meter is not None
    r = await d.site_meter.read()
    assert r.pf_site is None
    assert r.q_site_import_var is None  # the value is there but its scale factor is not
    assert r.v_l2_v is None
    assert r.v_l1_v == pytest.approx(230.1)


async def test_meter_without_power_scale_factor_publishes_nothing(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    img = SunSpecImage(meter_models())
    srv = await serve(modbus_tcp_server, (2, img))
    d = await drivers_factory({"link": tcp_bus(srv)}, {"meter": meter_cfg()})
    meter = d.site_meter
    assert meter is not None
    good = await meter.read()
    await img.set(srv, 2, 203, "W_SF", None)
    with pytest.raises(DriverError, match=r"device 'meter' register \d+ \(W\).*W_SF") as e:
        await meter.read()
    assert e.value.kind == "garbage"
    assert meter.latest() is good  # the old reading stays, with its old time


async def test_power_stage_reads_ac_dc_and_ev(modbus_tcp_server: Any, drivers_factory: BuildDrivers) -> None:
    img = SunSpecImage(charger_models(p_w=-3700, soc_pct=55))
    srv = await serve(modbus_tcp_server, (1, img))
    d = await drivers_factory({"link": tcp_bus(srv)}, {"inv": stage_cfg()})
    stage = d.power_stage
    assert isinstance(stage, PowerStage)
    r = await stage.read()
    assert r.p_w == -3700.0  # charging
    assert r.pf == -1.0  # PF signed like P
    assert r.q_var == 0.0
    assert r.v_ac_v == pytest.approx(230.0)
    assert r.f_hz == pytest.approx(50.0)
    assert r.operating == "RUNNING"
    assert r.connected is True
    assert r.alarms == frozenset()
    assert r.dc_v_v == pytest.approx(380.0)
    assert r.dc_i_a == pytest.approx(-9.6)
    assert r.dc_p_w == -3650.0
    assert r.ev_soc == pytest.approx(0.55)
    assert (r.e_injected_wh, r.e_absorbed_wh) == (12345.0, 67890.0)
    rt = stage.ratings()
    assert rt is not None
    assert (rt.p_max_export_w, rt.p_max_charge_w, rt.s_max_va) == (11000.0, 11000.0, 11000.0)
    assert (rt.q_max_inject_var, rt.q_max_absorb_var) == (6600.0, 6600.0)


async def test_server_side_change_shows_with_a_later_time(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    img = SunSpecImage(charger_models(p_w=1000))
    srv = await serve(modbus_tcp_server, (1, img))
    d = await drivers_factory({"link": tcp_bus(srv)}, {"inv": stage_cfg()})
    assert d.power_stage is not None
    r1 = await d.power_stage.read()
    await img.set(srv, 1, 701, "W", 2500)
    await img.set(srv, 1, 701, "Alrm", (1 << 7) | (1 << 30))
    r2 = await d.power_stage.read()
    assert (r1.p_w, r2.p_w) == (1000.0, 2500.0)
    assert r2.t_s > r1.t_s
    assert r2.alarms == frozenset({"OVER_TEMP", "bit30"})


async def registers(srv: Any, unit: int, img: SunSpecImage) -> list[int]:
    return list(await srv.async_getValues(unit, 3, img.base, len(img.registers)))


async def test_setpoint_write_arms_reversion_and_writes_wset(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    img = SunSpecImage(charger_models())
    srv = await serve(modbus_tcp_server, (1, img))
    d = await drivers_factory({"link": tcp_bus(srv)}, {"inv": stage_cfg(setpoint_revert_s=7)})
    stage = d.power_stage
    assert stage is not None
    await stage.write_setpoint(-5000.0, 1200.0)
    regs = await registers(srv, 1, img)

    def get(path: str) -> Any:
        return img.decode(regs, 704, path)

    assert (get("WSetEna"), get("WSetMod"), get("WSet"), get("WSetRvrt")) == (1, 1, -5000, 0)
    assert (get("WSetEnaRvrt"), get("WSetRvrtTms")) == (1, 7)
    assert (get("VarSetEna"), get("VarSetMod"), get("VarSet"), get("VarSetRvrt")) == (1, 4, 1200, 0)
    assert (get("VarSetEnaRvrt"), get("VarSetRvrtTms")) == (1, 7)


@pytest.mark.parametrize(
    ("p_w", "q_var", "match"),
    [
        (
            11001.0,
            0.0,
            r"device 'inv' \(p_w\): setpoint 11001 W is outside the allowed range -11000\.\.11000 W",
        ),
        (-12000.0, 0.0, r"\(p_w\): setpoint -12000 W .* -11000\.\.11000 W"),
        (0.0, 7000.0, r"\(q_var\): setpoint 7000 var .* -6600\.\.6600 var"),
        (10000.0, 6000.0, r"hypot.*11661\.9 VA .* 0\.\.11000 VA"),
        (math.nan, 0.0, r"\(p_w\): setpoint nan W"),
    ],
)
async def test_out_of_range_setpoint_raises_and_writes_nothing(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers, p_w: float, q_var: float, match: str
) -> None:
    img = SunSpecImage(charger_models())
    srv = await serve(modbus_tcp_server, (1, img))
    d = await drivers_factory({"link": tcp_bus(srv)}, {"inv": stage_cfg()})
    stage = d.power_stage
    assert stage is not None
    before = await registers(srv, 1, img)
    requests_before = stage.stats().requests
    with pytest.raises(DriverError, match=match) as e:
        await stage.write_setpoint(p_w, q_var)
    assert e.value.kind == "range"
    assert not e.value.retryable
    assert await registers(srv, 1, img) == before
    assert stage.stats().requests == requests_before


async def test_a_setpoint_at_the_rating_is_not_refused_for_a_rounding(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    """P = sqrt(S^2 - Q^2) (kernel I's reactive priority, the protection kernel's dither at full power)
    comes back from hypot one rounding above S for some Q: 0.29 var at 11 kVA."""
    img = SunSpecImage(charger_models())
    srv = await serve(modbus_tcp_server, (1, img))
    d = await drivers_factory({"link": tcp_bus(srv)}, {"inv": stage_cfg()})
    stage = d.power_stage
    assert stage is not None
    p_w = math.sqrt(11000.0**2 - 0.29**2)
    assert math.hypot(p_w, 0.29) > 11000.0
    await stage.write_setpoint(p_w, 0.29)
    assert img.decode(await registers(srv, 1, img), 704, "WSet") == 11000


async def test_power_sign_override_flips_reads_and_writes(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    img = SunSpecImage(charger_models(p_w=-3700))
    srv = await serve(modbus_tcp_server, (1, img))
    d = await drivers_factory({"link": tcp_bus(srv)}, {"inv": stage_cfg(power_sign="import_positive")})
    stage = d.power_stage
    assert stage is not None
    assert (await stage.read()).p_w == 3700.0
    await stage.write_setpoint(2000.0)
    assert img.decode(await registers(srv, 1, img), 704, "WSet") == -2000


async def test_heartbeat_counts_up_and_stop_zeroes_then_stops(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    img = SunSpecImage(charger_models())
    srv = await serve(modbus_tcp_server, (1, img))
    d = await drivers_factory({"link": tcp_bus(srv)}, {"inv": stage_cfg()})
    stage = d.power_stage
    assert isinstance(stage, SunSpecPowerStage)
    await stage.write_setpoint(4000.0)
    for expected in (1, 2, 3):
        await stage.heartbeat()
        assert img.decode(await registers(srv, 1, img), 715, "ControllerHb") == expected
    await stage.stop()
    regs = await registers(srv, 1, img)
    assert img.decode(regs, 704, "WSet") == 0
    assert img.decode(regs, 704, "VarSet") == 0
    assert img.decode(regs, 715, "OpCtl") == 0  # STOP
    await stage.resume()
    assert img.decode(await registers(srv, 1, img), 715, "OpCtl") == 1  # START


async def test_without_715_stop_turns_permit_service_off(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    img = SunSpecImage(charger_models(with_heartbeat=False))
    srv = await serve(modbus_tcp_server, (1, img))
    d = await drivers_factory({"link": tcp_bus(srv)}, {"inv": stage_cfg()})
    stage = d.power_stage
    assert stage is not None
    await stage.write_setpoint(3000.0)
    await stage.stop()
    regs = await registers(srv, 1, img)
    assert img.decode(regs, 704, "WSet") == 0
    assert img.decode(regs, 703, "ES") == 0


LEGACY_103: dict[str, int | None] = {
    "A": 100,
    "A_SF": -1,
    "PhVphA": 2300,
    "V_SF": -1,
    "W": -500,
    "W_SF": 1,
    "Hz": 5000,
    "Hz_SF": -2,
    "PF": -95,
    "PF_SF": 0,
    "WH": 1000,
    "WH_SF": 0,
    "St": 4,
    "DCV": 3800,
    "DCV_SF": -1,
    "DCA": 130,
    "DCA_SF": -1,
    "DCW": -4900,
    "DCW_SF": 0,
    "TmpCab": 30,
    "Tmp_SF": 0,
    "Evt1": 0,
    "Evt2": 0,
}


LEGACY_123: dict[str, int | None] = {
    "Conn": 1,
    "WMaxLimPct": 100,
    "WMaxLim_Ena": 0,
    "OutPFSet": 0,
    "OutPFSet_Ena": 0,
    "VArPct_Ena": 0,
    "WMaxLimPct_SF": 0,
    "OutPFSet_SF": -3,
}
LEGACY_124: dict[str, int | None] = {
    "WChaMax": 400,
    "WChaGra": 10,
    "WDisChaGra": 10,
    "StorCtl_Mod": 0,
    "ChaState": 412,
    "ChaSt": 4,
    "WChaMax_SF": 1,
    "WChaDisChaGra_SF": 0,
    "ChaState_SF": -1,
}


async def test_legacy_inverter_reads_through_103_and_120(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    img = SunSpecImage(
        [
            ModelSpec(1, {"Mn": "Old", "Md": "Inv", "SN": "1"}),
            ModelSpec(103, LEGACY_103),
            ModelSpec(121, {"WMax": 500, "WMax_SF": 1, "VRef": 230, "VRefOfs": 0, "VRef_SF": 0}),
            ModelSpec(122, {"PVConn": 1, "StorConn": 1, "ECPConn": 1}),
            ModelSpec(123, LEGACY_123),
            ModelSpec(124, LEGACY_124),
            ModelSpec(
                120,
                {
                    "DERTyp": 82,
                    "WRtg": 500,
                    "WRtg_SF": 1,
                    "VARtg": 500,
                    "VARtg_SF": 1,
                    "MaxChaRte": 400,
                    "MaxChaRte_SF": 1,
                    "MaxDisChaRte": 450,
                    "MaxDisChaRte_SF": 1,
                },
            ),
        ]
    )
    srv = await serve(modbus_tcp_server, (1, img))
    d = await drivers_factory({"link": tcp_bus(srv)}, {"inv": stage_cfg()})
    stage = d.power_stage
    assert stage is not None
    r = await stage.read()
    assert r.p_w == -5000.0
    assert r.pf == pytest.approx(-0.95)
    assert r.operating == "MPPT"
    assert r.dc_v_v == pytest.approx(380.0)
    assert r.ev_soc == pytest.approx(0.412)  # legacy storage 124 ChaState
    rt = stage.ratings()
    assert rt is not None
    assert (rt.p_max_export_w, rt.p_max_charge_w) == (4500.0, 4000.0)
    assert isinstance(stage, SunSpecPowerStage)
    ctl = await stage.device.read_model(stage.device.require(123))
    assert ctl.symbol("Conn") == "CONNECT"
    assert ctl.value("WMaxLimPct") == 100.0
    settings = await stage.device.read_model(stage.device.require(121))
    assert settings.value("WMax") == 5000.0
    status = await stage.device.read_model(stage.device.require(122))
    assert status.flags("PVConn") == frozenset({"CONNECTED"})
    # Without 704 the set point goes to 123/124 (tests/drivers/test_legacy_controls.py); this device's
    # 124 leaves InOutWRte_SF not implemented, so no rate can be scaled: refused, nothing written.
    with pytest.raises(DriverError, match=r"124 OutWRte\).*InOutWRte_SF is not implemented") as e:
        await stage.write_setpoint(1000.0)
    assert e.value.kind == "range"
    assert (await stage.device.read_model(stage.device.require(124))).raw("StorCtl_Mod") == 0


async def test_polling_a_device_that_is_not_sunspec_yet_logs_once_and_keeps_trying(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio
    import logging

    from pymodbus.simulator import DataType, SimData, SimDevice

    booting = SimDevice(
        id=1, simdata=[SimData(address=0, count=60000, values=0, datatype=DataType.REGISTERS)]
    )
    srv = await modbus_tcp_server([booting])
    caplog.set_level(logging.WARNING, logger="drivers")
    d = await drivers_factory(
        {"link": tcp_bus(srv)}, {"inv": stage_cfg(poll_s=0.02, slow_poll_s=0.1)}, poll=True
    )
    await asyncio.sleep(0.35)
    stage = d.devices["inv"]
    assert stage._task is not None
    assert not stage._task.done()  # still trying
    assert sum("is not usable" in r.getMessage() for r in caplog.records) == 1
    assert stage.stats().requests >= 3 * 3  # three bases per attempt, several attempts


async def test_build_start_poll_both_roles_and_stop(modbus_tcp_server: Any) -> None:
    import asyncio

    from drivers import build

    charger, meter = SunSpecImage(charger_models(p_w=-2000)), SunSpecImage(meter_models(w=700))
    srv = await serve(modbus_tcp_server, (1, charger), (2, meter))
    cfg = {"inverter": stage_cfg(poll_s=0.05), "grid_meter": meter_cfg(poll_s=0.05)}
    async with build({"link": tcp_bus(srv)}, cfg) as d:
        assert d.power_stage is d.devices["inverter"]
        assert d.site_meter is d.devices["grid_meter"]
        for _ in range(100):
            if d.power_stage.latest() and d.site_meter.latest():
                break
            await asyncio.sleep(0.01)
        first = d.site_meter.latest()
        assert first is not None
        assert first.p_site_import_w == 700.0
        await meter.set(srv, 2, 203, "W", -300)
        await asyncio.sleep(0.2)
        later = d.site_meter.latest()
        assert later is not None
        assert later.p_site_import_w == -300.0
        assert later.t_s > first.t_s
        stats = d.stats()
        assert stats["grid_meter"].requests >= 3
        assert stats["grid_meter"].rtt_p50_s is not None
        assert stats["inverter"].errors == 0
        assert d.budgets() == []  # TCP only
