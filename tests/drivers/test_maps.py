"""Vendor maps: loading and validation errors, the SDM630 meter and the Wallbox Quasar power stage."""

from __future__ import annotations

import asyncio
import math
import struct
from pathlib import Path
from typing import Any

import pytest
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.errors import DriverError
from drivers.maps import load_map, parse_map
from tests.drivers.conftest import BuildDrivers, sdm630_device, tcp_bus

SDM = {"bus": "link", "unit_id": 3, "role": "site_meter", "protocol": "map", "map": "eastron-sdm630"}
QUASAR = {"bus": "link", "unit_id": 1, "role": "power_stage", "protocol": "map", "map": "wallbox-quasar"}

MINIMAL = """
[map]
name = "x"
role = "site_meter"
source = "test"
[signs]
power = "import_positive"
[[blocks]]
fc = 4
address = 0
count = 10
[points.p]
address = 0
fc = 4
type = "float32"
capability = "p_site_import_w"
"""


def test_shipped_maps_load() -> None:
    sdm = load_map("eastron-sdm630")
    assert sdm.role == "site_meter"
    assert sdm.points["p_total"].fc == 4
    assert sdm.points["p_total"].type == "float32"
    q = load_map("wallbox-quasar")
    assert q.role == "power_stage"
    assert q.current_setpoint is not None
    assert q.by_capability("setpoint.i_a") is not None


BROKEN = [
    (
        'capability = "p_site_import_w"',
        'capability = "p_site_w"',
        r"\[points\.p\] capability 'p_site_w' is not one of",
    ),
    (
        "address = 0\nfc = 4\ntype",
        "address = 9\nfc = 4\ntype",
        r"\[points\.p\] address 9 \(fc 4, 2 registers\) is in no",
    ),
    ('type = "float32"', 'type = "float33"', r"type"),
    ("count = 10", "count = 126", r"count"),
    ("[signs]", "[sings]", r"sings"),
    ('capability = "p_site_import_w"', "", r"needs a point with capability 'p_site_import_w'"),
    ("[map]", "[map", r"not valid TOML"),
]
APPENDED = [
    ('[points.w]\naddress = 5\naccess = "W"\n', r"\[points\.w\] writable point needs min and max"),
    ('[points.p2]\naddress = 2\nfc = 4\ncapability = "p_site_import_w"\n', r"also served by 'p'"),
]


@pytest.mark.parametrize(
    ("text", "match"),
    [(MINIMAL.replace(old, new), m) for old, new, m in BROKEN]
    + [(MINIMAL + extra, m) for extra, m in APPENDED],
)
def test_broken_maps_fail_at_load_naming_the_point(text: str, match: str) -> None:
    with pytest.raises(DriverError, match=match) as e:
        parse_map(text, "test.toml")
    assert e.value.kind == "config"
    assert "vendor map test.toml" in str(e.value)


@pytest.mark.parametrize(
    "bounds",
    ["", "min = 1.0\nmax = 100.0", "min = -0.1\nmax = 1.0", "min = 0.9\nmax = 0.1"],
)
def test_an_ev_soc_point_must_be_a_bounded_fraction(bounds: str) -> None:
    # A map forwarding percent unbounded read as a known SoC (85) far above any reserve.
    text = (Path(__file__).resolve().parents[2] / "config" / "devices" / "wallbox-quasar.toml").read_text()
    broken = text.replace("min = 0.01\nmax = 1.0", bounds)
    assert broken != text
    with pytest.raises(
        DriverError, match=r"\[points\.ev_soc\] capability 'ev_soc' needs min and max within 0\.\.1"
    ):
        parse_map(broken, "test.toml")


def test_map_dir_override(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(MINIMAL)
    assert load_map("mine", tmp_path).map.name == "x"
    with pytest.raises(DriverError, match=r"no such file \(maps here: \['mine'\]\)"):
        load_map("other", tmp_path)


async def test_sdm630_reads_float32_fc4_and_normalizes(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    srv = await modbus_tcp_server(
        [
            sdm630_device(
                3, p_total=-1234.5, q_total=-200.0, pf_total=0.95, v_l1=230.5, v_l2=231.0, v_l3=229.5,
                frequency=50.02, import_energy=1_500_000.0, export_energy=20_000.0, p_l1=-400.0, i_sum=9.0,
            )
        ]
    )  # fmt: skip
    d = await drivers_factory({"link": tcp_bus(srv)}, {"m": SDM})
    assert d.site_meter is not None
    r = await d.site_meter.read()
    assert r.p_site_import_w == pytest.approx(-1234.5)  # exporting
    assert r.q_site_import_var == pytest.approx(-200.0)
    assert r.pf_site == pytest.approx(-0.95)  # signed like p_site_import_w, whatever Eastron's sign says
    assert (r.v_l1_v, r.v_l2_v, r.v_l3_v) == pytest.approx((230.5, 231.0, 229.5))
    assert r.f_hz == pytest.approx(50.02)
    assert r.e_import_wh == pytest.approx(1_500_000.0)
    assert r.e_export_wh == pytest.approx(20_000.0)
    assert r.p_l1_import_w == pytest.approx(-400.0)
    assert r.i_a == pytest.approx(9.0)


async def test_sdm630_mounted_reversed(modbus_tcp_server: Any, drivers_factory: BuildDrivers) -> None:
    srv = await modbus_tcp_server([sdm630_device(3, p_total=500.0, import_energy=10.0, export_energy=20.0)])
    d = await drivers_factory({"link": tcp_bus(srv)}, {"m": {**SDM, "meter_sign": "export_positive"}})
    assert d.site_meter is not None
    r = await d.site_meter.read()
    assert r.p_site_import_w == pytest.approx(-500.0)
    assert (r.e_import_wh, r.e_export_wh) == pytest.approx((20.0, 10.0))


async def test_sdm630_garbage_and_nan(modbus_tcp_server: Any, drivers_factory: BuildDrivers) -> None:
    srv = await modbus_tcp_server(
        [sdm630_device(3, p_total=100.0, v_l1=230.0, v_l2=5000.0, frequency=math.nan)]
    )
    d = await drivers_factory({"link": tcp_bus(srv)}, {"m": SDM})
    meter = d.site_meter
    assert meter is not None
    r = await meter.read()
    assert r.v_l2_v is None  # 5000 V is outside the map's plausible range: garbage, not a value
    assert r.f_hz is None  # NaN is "not available"
    nan = struct.unpack(">HH", struct.pack(">f", math.nan))
    await srv.async_setValues(3, 16, 0x34, list(nan))
    with pytest.raises(
        DriverError, match=r"device 'm' register 52 \(p_site_import_w\): reads as not available"
    ) as e:
        await meter.read()
    assert e.value.kind == "garbage"
    assert meter.latest() is r


async def test_sdm630_frozen_when_voltage_stops_moving(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    srv = await modbus_tcp_server([sdm630_device(3, p_total=100.0, v_l1=230.0)])
    d = await drivers_factory({"link": tcp_bus(srv)}, {"m": {**SDM, "frozen_after_s": 0.15}})
    meter = d.site_meter
    assert meter is not None
    assert not (await meter.read()).frozen
    await asyncio.sleep(0.2)
    assert (await meter.read()).frozen
    await srv.async_setValues(3, 16, 0, list(struct.unpack(">HH", struct.pack(">f", 230.2))))
    assert not (await meter.read()).frozen


def quasar_device(**regs: int) -> SimDevice:
    values = [0] * 0x300
    values[0x202] = 7400
    for addr, v in regs.items():
        values[int(addr, 16)] = v & 0xFFFF
    return SimDevice(id=1, simdata=[SimData(address=0, values=values, datatype=DataType.REGISTERS)])


async def test_quasar_reads_and_normalizes(modbus_tcp_server: Any, drivers_factory: BuildDrivers) -> None:
    srv = await modbus_tcp_server([quasar_device(**{"0x20E": -3000, "0x219": 11, "0x21A": 62})])
    d = await drivers_factory({"link": tcp_bus(srv)}, {"q": QUASAR})
    stage = d.power_stage
    assert stage is not None
    r = await stage.read()
    assert r.p_w == 3000.0  # the Quasar says -3000 (charging positive): it is discharging
    assert r.operating == "DISCHARGING"
    assert r.ev_soc == pytest.approx(0.62)
    rt = stage.ratings()
    assert rt is not None
    assert (rt.p_max_export_w, rt.p_max_charge_w) == (7400.0, 7400.0)
    await srv.async_setValues(1, 6, 0x21A, [0])  # no car: the Quasar reports 0 %
    assert (await stage.read()).ev_soc is None


async def test_quasar_setpoint_in_amps(modbus_tcp_server: Any, drivers_factory: BuildDrivers) -> None:
    srv = await modbus_tcp_server([quasar_device()])
    d = await drivers_factory({"link": tcp_bus(srv)}, {"q": QUASAR})
    stage = d.power_stage
    assert stage is not None

    async def reg(addr: int) -> int:
        v = (await srv.async_getValues(1, 3, addr, 1))[0]
        return int(v) - 0x10000 if v >= 0x8000 else int(v)

    await stage.write_setpoint(-3000.0)  # charge 3 kW: +13 A (13.04 rounded toward zero)
    assert await reg(0x102) == 13
    assert [await reg(a) for a in (0x51, 0x52, 0x53, 0x58)] == [1, 0, 0, 60]  # armed: remote, current mode
    assert await reg(0x101) == 1  # started
    await stage.write_setpoint(7360.0)  # discharge 7.36 kW: -32 A
    assert await reg(0x102) == -32
    await stage.write_setpoint(1000.0)  # 4.3 A is below the 6 A minimum: 0 A
    assert await reg(0x102) == 0
    with pytest.raises(
        DriverError, match=r"device 'q' \(p_w\): setpoint 7500 W is outside .* -7400\.\.7400 W"
    ) as e:
        await stage.write_setpoint(7500.0)
    assert e.value.kind == "range"
    assert await reg(0x102) == 0
    with pytest.raises(DriverError, match=r"\(q_var\).*no reactive setpoint"):
        await stage.write_setpoint(0.0, 100.0)
    await stage.write_setpoint(-2000.0)
    await stage.stop()
    assert await reg(0x102) == 0
    assert await reg(0x101) == 2  # stop


async def test_quasar_register_rating_narrows_the_range(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    srv = await modbus_tcp_server([quasar_device(**{"0x202": 3680})])
    d = await drivers_factory({"link": tcp_bus(srv)}, {"q": QUASAR})
    stage = d.power_stage
    assert stage is not None
    with pytest.raises(DriverError, match=r"-3680\.\.3680 W"):
        await stage.write_setpoint(4000.0)
