"""The SCPI backend against the simulated AC source over TCP, and the lab backend driving it."""

from __future__ import annotations

import asyncio

import pytest

from hil.backends.base import UnsupportedEventError
from hil.backends.lab import AcSourceConfig, InverterConfig, LabBackend, LabConfig, ModbusDeviceConfig
from hil.backends.scpi import ScpiAcSource, ScpiClient, ScpiError, SimulatedAcSource
from hil.plant import Plant, PlantConfig
from hil.plant import events as ev


@pytest.fixture
async def instrument() -> SimulatedAcSource:
    sim = SimulatedAcSource(load_w=lambda s: 1500.0)
    await sim.start()
    yield sim  # type: ignore[misc]
    await sim.stop()


@pytest.fixture
async def source(instrument: SimulatedAcSource) -> ScpiAcSource:
    client = ScpiClient("127.0.0.1", instrument.port, timeout_s=1.0)
    await client.connect()
    yield ScpiAcSource(client)  # type: ignore[misc]
    await client.close()


async def test_identify_and_program_the_source(instrument: SimulatedAcSource, source: ScpiAcSource) -> None:
    assert (await source.identify()).startswith("v2g-edge,SimulatedAcSource")
    await source.set_frequency(59.3)
    await source.set_voltage(132.0)
    await source.set_voltage(100.0, phase=2)
    await source.set_phase_angle(20.0)
    await source.set_output(True)
    assert instrument.f_hz == 59.3
    assert instrument.v_v == [132.0, 132.0, 100.0]
    assert instrument.phase_deg == [20.0, -100.0, 140.0]
    assert instrument.output
    await source.c.checked("INST:NSEL ALL")
    v, f, p = await source.measure()
    assert (v, f, p) == (132.0, 59.3, 1500.0)
    await source.set_output(False)
    assert (await source.measure())[2] == 0.0


async def test_refused_values_raise_with_the_instrument_error(
    instrument: SimulatedAcSource, source: ScpiAcSource
) -> None:
    with pytest.raises(ScpiError, match=r"SOUR:FREQ 80.0000.*-222,\"Data out of range; 80 not in 40..70\""):
        await source.set_frequency(80.0)
    assert instrument.f_hz == 60.0
    with pytest.raises(ScpiError, match=r"-113,\"Undefined header FOO:BAR\""):
        await source.c.checked("FOO:BAR 1")


async def test_long_and_short_forms_are_the_same_command(instrument: SimulatedAcSource) -> None:
    instrument.handle("SOURce:VOLTage 121")
    assert instrument.v_v[0] == 121.0
    instrument.handle("volt 122")
    assert instrument.v_v[0] == 122.0
    assert instrument.handle("SYST:ERR?") == '+0,"No error"'


async def test_unreachable_instrument_is_a_clear_error() -> None:
    sim = SimulatedAcSource()
    await sim.start()
    port = sim.port
    await sim.stop()
    with pytest.raises(ScpiError, match=f"127.0.0.1:{port} unreachable"):
        await ScpiClient("127.0.0.1", port, timeout_s=0.5).connect()


async def test_lab_backend_drives_the_source_and_records_the_inverter(instrument: SimulatedAcSource) -> None:
    async with Plant(PlantConfig()) as plant:  # the "real" inverter and meter, over Modbus TCP
        st = next(a for a in plant.addresses if a.name == "power_stage")
        mt = next(a for a in plant.addresses if a.name == "site_meter")
        cfg = LabConfig(
            v_nominal_v=120.0,
            f_nominal_hz=60,
            record_s=0.05,
            ac_source=AcSourceConfig(host="127.0.0.1", port=instrument.port),
            inverter=InverterConfig(
                host=st.host, port=st.port, unit_id=1, p_rated_w=7400.0, p_rated_charge_w=7400.0,
                s_rated_va=7400.0, q_max_inj_var=3256.0, q_max_abs_var=3256.0,
            ),
            meter=ModbusDeviceConfig(host=mt.host, port=mt.port, unit_id=1),
        )  # fmt: skip
        lab = LabBackend(cfg)
        with pytest.raises(UnsupportedEventError, match="cannot perform 'meter_freeze'"):
            lab.schedule([ev.MeterFreeze(at_s=0.1)])
        lab.schedule([ev.Grid(at_s=0.2, v_pu=1.1, f_hz=60.5), ev.Breaker(at_s=0.4, closed=False)])
        await lab.start()
        try:
            assert instrument.output
            await lab.wait_until(0.3)
            await asyncio.sleep(0.05)
            assert instrument.v_v[0] == pytest.approx(132.0)
            assert instrument.f_hz == 60.5
            await lab.wait_until(0.7)
        finally:
            await lab.stop()
        assert not instrument.output
        cols = lab.columns()
        assert len(cols["t_s"]) >= 5
        assert max(cols["grid_v_pu"]) == pytest.approx(1.1)
        assert cols["breaker_closed"][-1] == 0.0
        assert cols["p_site_import_w"][0] == 1500.0
        assert cols["p_ev_w"][0] == pytest.approx(-15.0)  # the stage's own consumption, via 701 W
        assert [a.name for a in lab.daemon_addresses()] == ["power_stage", "site_meter"]
        assert lab.errors == []


async def test_a_query_cancelled_as_its_answer_arrives_is_cancelled() -> None:
    # A real connection to an instrument that never answers by itself: the answer is put into the
    # client's reader in the same loop turn as the cancellation. asyncio.wait_for (3.11) returned
    # the answer and dropped the cancellation, so the lab's recorder ran on and its stop() waited
    # for it forever (a CI run hung 300 s in test_lab_backend_drives_the_source_and_records_the_inverter).
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    client = ScpiClient("127.0.0.1", server.sockets[0].getsockname()[1], timeout_s=5.0)
    try:
        await client.connect()
        task = asyncio.create_task(client.query("MEAS:VOLT?"))
        for _ in range(5):  # let it send and wait for the line
            await asyncio.sleep(0)
        assert not task.done()
        client._reader.feed_data(b"120.0\n")  # type: ignore[union-attr]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await client.close()
        server.close()
        await server.wait_closed()
