"""The site meter's counter (``MeterReading.e_counter_wh``), read over loopback Modbus: the energy a meter
counts whichever way the power flows, by which kernel II tells a steady meter from a frozen one."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from hil.sunspec_server import SunSpecImage, meter_models
from tests.drivers.conftest import BuildDrivers, sdm630_device, tcp_bus

SUNSPEC = {"bus": "link", "unit_id": 2, "role": "site_meter", "protocol": "sunspec"}
SDM = {"bus": "link", "unit_id": 3, "role": "site_meter", "protocol": "map", "map": "eastron-sdm630"}


def meter_image(**values: int) -> SunSpecImage:
    specs = meter_models(w=300)
    specs[1] = replace(specs[1], values={**specs[1].values, **values})
    return SunSpecImage(specs)


@pytest.mark.parametrize(
    ("registers", "counter"),
    [
        ({}, 251_000.0),  # TotWhImp 250000 + TotWhExp 1000, TotWh_SF 0
        ({"TotWh_SF": 1}, 2_510_000.0),
        ({"TotWhExp": 0}, 250_000.0),  # never exported: the mandatory acc32 reads 0 ("not implemented")
        ({"TotWh_SF": -0x8000}, None),  # no scale factor: no counter, whatever the registers hold
    ],
)
async def test_a_sunspec_meter_counts_import_plus_export(
    modbus_tcp_server: Any,
    drivers_factory: BuildDrivers,
    registers: dict[str, int],
    counter: float | None,
) -> None:
    srv = await modbus_tcp_server([meter_image(**registers).sim_device(2)], ignore_missing_devices=True)
    d = await drivers_factory({"link": tcp_bus(srv)}, {"meter": SUNSPEC})
    assert d.site_meter is not None
    r = await d.site_meter.read()
    assert r.e_counter_wh == counter


async def test_a_reversed_sunspec_meter_counts_the_same(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    srv = await modbus_tcp_server([meter_image().sim_device(2)], ignore_missing_devices=True)
    d = await drivers_factory({"link": tcp_bus(srv)}, {"meter": {**SUNSPEC, "meter_sign": "export_positive"}})
    assert d.site_meter is not None
    r = await d.site_meter.read()
    assert (r.e_import_wh, r.e_export_wh, r.e_counter_wh) == (1000.0, 250_000.0, 251_000.0)


async def test_a_map_meter_counts_its_energy_points(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    srv = await modbus_tcp_server(
        [sdm630_device(3, p_total=250.0, import_energy=1_500_250.0, export_energy=20_500.0)]
    )
    d = await drivers_factory({"link": tcp_bus(srv)}, {"m": SDM})
    assert d.site_meter is not None
    r = await d.site_meter.read()
    assert r.e_counter_wh == pytest.approx(1_520_750.0)
