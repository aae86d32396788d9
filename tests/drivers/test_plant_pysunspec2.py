"""pysunspec2 (the SunSpec Alliance's client, with its own copy of the model definitions) reads the
bench plant's power stage: 702 ``CtrlModes`` names exactly the functions the plant implements."""

from __future__ import annotations

import asyncio

import pytest

from hil.plant import Plant
from hil.plant import config as plant_config
from tests.drivers.test_pysunspec2_interop import scan

pytest.importorskip("sunspec2.modbus.client")


async def test_pysunspec2_decodes_the_plant_ctrl_modes() -> None:
    async with Plant(plant_config.load(None, {})) as plant:
        addr = next(a for a in plant.addresses if a.name == "power_stage" and a.transport == "tcp")
        d = await asyncio.to_thread(scan, addr.port, addr.unit_id)
    point = d.DERCapacity[0].CtrlModes
    symbols = {s["value"]: s["name"] for s in point.pdef["symbols"]}
    bits = {b for b in range(32) if point.value >> b & 1}
    assert bits <= set(symbols), f"bits pysunspec2's definition does not name: {bits - set(symbols)}"
    assert {symbols[b] for b in bits} == {
        "MAX_W",
        "FIXED_W",
        "FIXED_VAR",
        "FIXED_PF",
        "VOLT_WATT",
        "WATT_VAR",
        "VOLT_VAR",
        "FREQ_WATT",
        "LV_TRIP",
        "HV_TRIP",
        "LF_TRIP",
        "HF_TRIP",
    }
