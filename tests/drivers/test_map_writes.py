"""The checked write path of vendor-map power stages (drivers/maps/write.py).

Against a pymodbus server holding the Wallbox Quasar map (the bidirectional DC charger, amps set
point), every write request recorded at the server: the ``arm`` settings written on change only and
read back, set points every time, a device that does not keep a setting named by the read-back, the
safe command without arming, and a negative value that never reaches an unsigned register (refused at
load in a map, and again at write time should an unchecked map get that far).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers import Drivers, build
from drivers.errors import DriverError
from drivers.maps import VendorMap, load_map, parse_map, raw_value
from drivers.maps.device import MapPowerStage
from drivers.maps.write import MapWriter
from tests.drivers.conftest import BuildDrivers, tcp_bus

QUASAR = {"bus": "link", "unit_id": 1, "role": "power_stage", "protocol": "map", "map": "wallbox-quasar"}
ARM = {0x51: "control", 0x52: "autostart", 0x53: "setpoint_type", 0x58: "idle_timeout"}
CURRENT, ACTION = 0x102, 0x101


class Recorder:
    """A SimDevice action recording every write request (address, values); ``keep`` alters a stored
    value the way a device that does not keep it would, ``delay_s`` makes the device slow."""

    def __init__(self) -> None:
        self.writes: list[tuple[int, list[int]]] = []
        self.keep: dict[int, int] = {}  # address -> the value the device stores whatever is written
        self.delay_s = 0.0

    async def action(
        self, fc: int, start: int, address: int, count: int, regs: list[int], values: Any
    ) -> Any:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if values:
            for a, v in self.keep.items():
                if address <= a < address + count:
                    values[a - address] = v
            self.writes.append((address, list(values)))
        return None

    def addresses(self) -> list[int]:
        return [a for a, _ in self.writes]


def quasar(rec: Recorder) -> SimDevice:
    values = [0] * 0x300
    values[0x202] = 7400  # max available power
    return SimDevice(
        id=1, simdata=[SimData(address=0, values=values, datatype=DataType.REGISTERS)], action=rec.action
    )


async def quasar_stage(
    modbus_tcp_server: Any, make: BuildDrivers, rec: Recorder
) -> tuple[MapPowerStage, Any]:
    srv = await modbus_tcp_server([quasar(rec)])
    d = await make({"link": tcp_bus(srv)}, {"q": QUASAR})
    stage = d.power_stage
    assert isinstance(stage, MapPowerStage)
    return stage, srv


async def test_arm_settings_on_change_only_set_points_every_time(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    rec = Recorder()
    stage, srv = await quasar_stage(modbus_tcp_server, drivers_factory, rec)
    await stage.write_setpoint(-3000.0)  # charge: +13 A
    # autostart and setpoint_type already hold 0 (read first): only control and idle_timeout written.
    assert rec.writes == [(0x51, [1]), (0x58, [60]), (CURRENT, [13]), (ACTION, [1])]
    rec.writes.clear()
    for i in range(20):
        await stage.write_setpoint(-3000.0 - 100 * i)
        await stage.heartbeat()  # no heartbeat command: the last set point again
        if i % 5 == 4:
            await stage.refresh()  # reads the control registers back: they still hold
    assert len(rec.writes) == 40
    assert set(rec.addresses()) == {CURRENT}, "only the amps set point, every cycle"

    # A local change (the app took control back): the next set point re-arms what no longer holds.
    await srv.async_setValues(1, 3, 0x51, [0])
    await stage.refresh()
    rec.writes.clear()
    await stage.write_setpoint(-3000.0)
    assert rec.writes == [(0x51, [1]), (CURRENT, [13])]

    # Contact lost and back: settings read again (they hold: nothing written), start sent again.
    rec.delay_s = 0.5
    with pytest.raises(DriverError) as e:
        await stage.read()
    assert e.value.kind == "timeout"
    rec.delay_s = 0.0
    for _ in range(40):
        try:
            await stage.read()
            break
        except DriverError:
            await asyncio.sleep(0.1)
    rec.writes.clear()
    await stage.write_setpoint(-3000.0)
    assert rec.writes == [(CURRENT, [13]), (ACTION, [1])]
    assert stage.writer.writes == 4 + 40 + 2 + 2


@pytest.mark.parametrize("command", ["set point", "start"])
async def test_a_write_that_times_out_makes_the_next_set_point_arm_and_start_again(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers, command: str
) -> None:
    """A write timing out is a contact loss as much as a read: the device may come back restarted,
    so the next set point re-reads the settings and sends start again. The same for the writer's
    resume after a stop: its start timing out leaves the device's state unknown."""
    rec = Recorder()
    stage, _ = await quasar_stage(modbus_tcp_server, drivers_factory, rec)
    await stage.write_setpoint(-3000.0)
    ratings = stage.ratings()
    assert ratings is not None and not ratings.q_setpoints  # a map has no reactive set point
    rec.delay_s = 0.5
    with pytest.raises(DriverError) as e:
        await (stage.write_setpoint(-3100.0) if command == "set point" else stage.resume())
    assert e.value.kind == "timeout"
    rec.delay_s = 0.0
    for _ in range(40):
        try:
            await stage.read()
            break
        except DriverError:
            await asyncio.sleep(0.1)
    rec.writes.clear()
    await stage.write_setpoint(-3000.0)
    assert (ACTION, [1]) in rec.writes, rec.writes  # started again, not assumed still started


async def test_a_setting_the_device_does_not_keep_is_named_and_no_set_point_goes_out(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    rec = Recorder()
    rec.keep = {0x58: 30}  # this charger caps its idle timeout at 30 s
    stage, _ = await quasar_stage(modbus_tcp_server, drivers_factory, rec)
    with pytest.raises(DriverError, match=r"idle_timeout written 60 read back 30 \(registers 0x001e\)") as e:
        await stage.write_setpoint(-3000.0)
    assert e.value.kind == "garbage"
    assert CURRENT not in rec.addresses() and ACTION not in rec.addresses()
    # The safe command does not wait for arming: 0 A goes out alone.
    rec.writes.clear()
    await stage.write_setpoint(0.0)
    assert rec.writes == [(CURRENT, [0])]


CHARGE_ONLY = """
[map]
name = "charge-only DC charger"
role = "power_stage"
source = "test"
[signs]
power = "import_positive"
[ratings]
p_max_export_w = 0.0
p_max_charge_w = 7400.0
[current_setpoint]
v_nominal_v = 230.0
[[blocks]]
fc = 3
address = 0
count = 4
[points.p]
address = 0
type = "int16"
capability = "p_w"
[points.amps]
address = 2
type = "uint16"
access = "RW"
scale = 0.1
capability = "setpoint.i_a"
min = 0.0
max = 32.0
[commands.stop]
writes = [["amps", 0]]
"""


def test_a_negative_minimum_on_an_unsigned_register_is_refused_at_load() -> None:
    text = CHARGE_ONLY.replace("min = 0.0\nmax = 32.0", "min = -32.0\nmax = 32.0")
    with pytest.raises(
        DriverError, match=r"\[points\.amps\] min = -32 is raw -320 .* uint16 cannot hold \(0\.\.65535\)"
    ):
        parse_map(text, "charge-only.toml")
    assert parse_map(CHARGE_ONLY, "charge-only.toml").points["amps"].type == "uint16"


async def test_a_negative_value_never_reaches_an_unsigned_register(
    modbus_tcp_server: Any, tmp_path: Path
) -> None:
    rec = Recorder()
    srv = await modbus_tcp_server(
        [
            SimDevice(
                id=1,
                simdata=[SimData(address=0, values=[0] * 8, datatype=DataType.REGISTERS)],
                action=rec.action,
            )
        ]
    )
    (tmp_path / "charge-only.toml").write_text(CHARGE_ONLY)
    d = build({"link": tcp_bus(srv)}, {"c": {**QUASAR, "map": "charge-only"}}, map_dir=tmp_path)
    try:
        await d.start(poll=False)
        await check_charge_only(d, rec)
    finally:
        await d.stop()


async def check_charge_only(d: Drivers, rec: Recorder) -> None:
    stage = d.power_stage
    assert isinstance(stage, MapPowerStage)
    # Discharging would be a negative current: refused by the ratings, then (should they allow it) by
    # the point's range and by its type.
    with pytest.raises(DriverError, match=r"setpoint 1000 W is outside the allowed range -7400\.\.0 W") as e:
        await stage.write_setpoint(1000.0)
    assert e.value.kind == "range"
    await stage.write_setpoint(-2300.0)  # 10 A, raw 100 at scale 0.1
    assert rec.writes == [(2, [100])]
    # A map that escaped the load checks (built without them): the writer still refuses the sign.
    raw = msgspec.to_builtins(stage.vmap)
    raw["points"]["amps"]["min"] = -32.0
    unchecked = msgspec.convert(raw, VendorMap)
    writer = MapWriter(unchecked, stage.link, "c")
    with pytest.raises(
        DriverError, match=r"value -3 is raw -30, a negative value for an unsigned register: uint16"
    ) as e:
        await writer.write_setpoints({"amps": -3.0})
    assert e.value.kind == "range"
    assert "register 2 (amps)" in str(e.value)
    assert rec.writes == [(2, [100])], "nothing more reached the device"


def test_raw_values_round_toward_zero_without_float_noise() -> None:
    amps = load_map("wallbox-quasar").points["current_setpoint"]
    assert raw_value(amps, -13.7) == -13.0  # toward zero: never more current than asked
    tenth = msgspec.structs.replace(amps, scale=0.01)
    assert 0.29 / 0.01 < 29  # the division alone would write 28
    assert raw_value(tenth, 0.29) == 29.0
    assert raw_value(tenth, -0.299) == -29.0
