"""The bus worker under faults: dead and slow units, exception codes, disconnects, garbage, back-off,
statistics, log-once, and readings that never get a fresh time from a failed read."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import pytest
from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer

from drivers.errors import DriverError
from hil.procs import free_port
from hil.sunspec_server import SunSpecImage, charger_models, meter_models
from tests.drivers.conftest import BuildDrivers, Fault, tcp_bus

STAGE = {"bus": "link", "unit_id": 1, "role": "power_stage", "protocol": "sunspec"}
METER = {"bus": "link", "unit_id": 2, "role": "site_meter", "protocol": "sunspec"}


async def test_dead_unit_backs_off_without_stalling_the_others(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers, caplog: pytest.LogCaptureFixture
) -> None:
    img = SunSpecImage(charger_models())
    srv = await modbus_tcp_server([img.sim_device(1)], ignore_missing_devices=True)  # unit 2 is not there
    bus = tcp_bus(srv, timeout_s=0.2, retries=1, backoff_s=5.0)
    d = await drivers_factory({"link": bus}, {"inv": STAGE, "meter": METER}, start=False)
    await d.buses["link"].start()
    caplog.set_level(logging.WARNING, logger="drivers")
    meter, stage = d.site_meter, d.power_stage
    assert meter is not None
    assert stage is not None

    t0 = time.monotonic()
    with pytest.raises(
        DriverError, match=r"device 'meter' register 40000\+2 \(SunS marker\): no answer within 0.2 s"
    ) as e:
        await meter.read()
    assert e.value.kind == "timeout"
    assert e.value.retryable
    assert time.monotonic() - t0 >= 0.4  # 1 + 1 retry, each waiting out the timeout
    assert meter.stats().timeouts == 2

    # In back-off: the dead unit fails at once and the live one keeps its pace.
    for _ in range(5):
        t0 = time.monotonic()
        with pytest.raises(DriverError, match="in back-off") as e:
            await meter.read()
        assert e.value.kind == "backoff"
        assert time.monotonic() - t0 < 0.05
        r = await stage.read()
        assert r.p_w == -3700.0
    assert meter.stats().timeouts == 2  # back-off used no bus time
    failing = [r for r in caplog.records if "is failing" in r.getMessage()]
    assert len(failing) == 1  # logged once, not per poll
    assert "'meter'" in failing[0].getMessage()
    assert meter.stats().failing
    assert not stage.stats().failing


async def test_slow_device_times_out_then_recovers_logged_once(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers, caplog: pytest.LogCaptureFixture
) -> None:
    fault = Fault()
    img = SunSpecImage(meter_models())
    srv = await modbus_tcp_server([img.sim_device(2, action=fault.action)])
    bus = tcp_bus(srv, timeout_s=0.15, retries=0, backoff_s=0.05, backoff_max_s=0.05)
    d = await drivers_factory({"link": bus}, {"meter": METER})
    meter = d.site_meter
    assert meter is not None
    caplog.set_level(logging.WARNING, logger="drivers")
    first = await meter.read()

    fault.delay_s = 0.1  # slow but within the timeout: still a good reading
    slow = await meter.read()
    assert slow.p_site_import_w == 1500.0
    assert meter.stats().rtt_p99_s is not None
    assert meter.stats().rtt_p99_s >= 0.1  # type: ignore[operator]

    fault.delay_s = 0.3  # slower than the timeout
    for _ in range(3):
        with pytest.raises(DriverError) as e:
            await meter.read()
        assert e.value.kind in ("timeout", "backoff")
        await asyncio.sleep(0.06)
    assert meter.latest() is slow  # failed reads publish nothing
    assert meter.latest().t_s > first.t_s  # type: ignore[union-attr]
    fault.delay_s = 0.0
    await asyncio.sleep(0.35)  # let the late answers drain and the back-off expire
    fresh = await meter.read()
    assert fresh.t_s > slow.t_s
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("is failing" in m for m in msgs) == 1
    assert sum("recovered" in m for m in msgs) == 1
    s = meter.stats()
    assert s.timeouts >= 1
    assert s.errors >= s.timeouts
    assert s.last_success_t_s == fresh.t_s
    assert not s.failing


@pytest.mark.parametrize(
    ("code", "retryable"),
    [(ExcCodes.DEVICE_BUSY, True), (ExcCodes.DEVICE_FAILURE, True), (ExcCodes.ILLEGAL_ADDRESS, False)],
)
async def test_exception_codes_become_our_error(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers, code: ExcCodes, retryable: bool
) -> None:
    fault = Fault()
    img = SunSpecImage(meter_models())
    srv = await modbus_tcp_server([img.sim_device(2, action=fault.action)])
    d = await drivers_factory({"link": tcp_bus(srv, retries=2)}, {"meter": METER})
    meter = d.site_meter
    assert meter is not None
    await meter.read()
    fault.code = code
    calls = fault.calls
    with pytest.raises(
        DriverError,
        match=rf"device 'meter' register \d+\+107 \(meter model 203\): exception code {int(code)}",
    ) as e:
        await meter.read()
    assert e.value.exception_code == int(code)
    assert e.value.retryable is retryable
    assert fault.calls - calls == (3 if retryable else 1)  # retries only what a retry can fix
    assert meter.stats().exceptions == fault.calls - calls
    # An illegal address proves the device alive: no back-off for it.
    assert meter.stats().failing is retryable


async def test_disconnect_mid_request_then_reconnect_on_its_own(
    drivers_factory: BuildDrivers, caplog: pytest.LogCaptureFixture
) -> None:
    img = SunSpecImage(meter_models())
    port = free_port()
    fault = Fault()

    async def serve() -> ModbusTcpServer:
        srv = ModbusTcpServer(
            [img.sim_device(2, action=fault.action)], address=("127.0.0.1", port), framer=FramerType.SOCKET
        )
        await srv.serve_forever(background=True)
        return srv

    srv = await serve()
    bus = {"transport": "tcp", "host": "127.0.0.1", "port": port, "timeout_s": 0.3, "retries": 0,
           "backoff_s": 0.05, "backoff_max_s": 0.1}  # fmt: skip
    d = await drivers_factory({"link": bus}, {"meter": METER})
    meter = d.site_meter
    assert meter is not None
    caplog.set_level(logging.WARNING, logger="drivers")
    try:
        good = await meter.read()
        fault.delay_s = 0.2
        pending = asyncio.create_task(meter.read())
        await asyncio.sleep(0.05)  # the request is on the wire
        await srv.shutdown()
        with pytest.raises(DriverError) as e:
            await pending
        assert e.value.retryable
        assert e.value.kind in ("timeout", "disconnected")
        with pytest.raises(DriverError) as e:
            await meter.read()
        assert e.value.kind in ("disconnected", "backoff")
        assert meter.latest() is good
        await asyncio.sleep(0.2)  # the server's slow action finishes
        fault.delay_s = 0.0
        srv = await serve()
        deadline = time.monotonic() + 3.0
        while True:
            try:
                back = await meter.read()
                break
            except DriverError:
                assert time.monotonic() < deadline, "the worker never reconnected"
                await asyncio.sleep(0.05)
        assert back.t_s > good.t_s
        msgs = [r.getMessage() for r in caplog.records]
        assert sum("is failing" in m for m in msgs) == 1
        assert sum("recovered" in m for m in msgs) == 1
        down = sum("cannot connect" in m for m in msgs)
        assert down <= 1
        assert sum("reconnected" in m for m in msgs) == down
    finally:
        await srv.shutdown()


async def test_garbage_on_the_wire_is_an_error_not_a_crash(drivers_factory: BuildDrivers) -> None:
    async def babble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.read(256):
                writer.write(b"\x00\x01\x00\x00\x00\x05\x02\x83garbage!")
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(babble, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        bus = {"transport": "tcp", "host": "127.0.0.1", "port": port, "timeout_s": 0.2, "retries": 0}
        d = await drivers_factory({"link": bus}, {"meter": METER}, start=False)
        await d.buses["link"].start()
        assert d.site_meter is not None
        with pytest.raises(DriverError, match=r"device 'meter' register \d+\+2 \(SunS marker\)") as e:
            await d.site_meter.read()
        assert e.value.retryable
        assert d.site_meter.latest() is None
    finally:
        await d.stop()
        server.close()
        await server.wait_closed()


async def test_polling_never_restamps_old_values(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    fault = Fault()
    img = SunSpecImage(meter_models())
    srv = await modbus_tcp_server([img.sim_device(2, action=fault.action)])
    meter_cfg = {**METER, "poll_s": 0.02}
    bus = tcp_bus(srv, timeout_s=0.1, backoff_s=0.05, backoff_max_s=0.05)
    d = await drivers_factory({"link": bus}, {"meter": meter_cfg}, poll=True)
    meter = d.site_meter
    assert meter is not None
    deadline = time.monotonic() + 2
    while meter.latest() is None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    fault.code = ExcCodes.DEVICE_FAILURE
    await asyncio.sleep(0.05)
    stale = meter.latest()
    assert stale is not None
    await asyncio.sleep(0.3)
    assert meter.latest() is stale
    assert meter.stats().exceptions >= 3
    fault.code = None
    await asyncio.sleep(0.3)
    assert meter.latest().t_s > stale.t_s  # type: ignore[union-attr]


async def test_frozen_heartbeat_flags_the_power_stage(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    img = SunSpecImage(charger_models())
    srv = await modbus_tcp_server([img.sim_device(1)])
    d = await drivers_factory({"link": tcp_bus(srv)}, {"inv": {**STAGE, "frozen_after_s": 0.2}})
    stage = d.power_stage
    assert stage is not None
    assert not (await stage.read()).frozen
    await asyncio.sleep(0.25)
    frozen = await stage.read()
    assert frozen.frozen  # DERHb has not moved for 0.25 s
    assert stage.stats().frozen
    await img.set(srv, 1, 715, "DERHb", 2)
    assert not (await stage.read()).frozen
    assert not stage.stats().frozen


async def test_writes_go_before_queued_reads(modbus_tcp_server: Any, drivers_factory: BuildDrivers) -> None:
    fault = Fault()
    img = SunSpecImage(charger_models())
    srv = await modbus_tcp_server([img.sim_device(1, action=fault.action)])
    d = await drivers_factory({"link": tcp_bus(srv, timeout_s=1.0)}, {"inv": STAGE})
    link = d.devices["inv"].link
    fault.delay_s = 0.05
    fault.log.clear()
    reads = [asyncio.create_task(link.read(40000 + i, 1, what="poll")) for i in range(3)]
    await asyncio.sleep(0.01)  # the first read is on the wire, two wait
    await link.write(img.address(715, "ControllerHb"), [0, 7], what="heartbeat")
    await asyncio.gather(*reads)
    fault.delay_s = 0.0
    assert [fc for fc, _ in fault.log] == [3, 16, 3, 3]


async def test_a_request_answered_as_its_task_is_cancelled_ends_cancelled(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    # pymodbus waits for the answer with asyncio.wait_for, which on Python 3.11 returns an answer that
    # came in the loop turn its task was cancelled in: the cancellation was lost, and a setpoint writer
    # stopped that way went on waiting for its next command while the shutdown waited for it (a
    # cancelled daemon's test, under load). Played here by a client that keeps the answer.
    fault = Fault()
    img = SunSpecImage(meter_models())
    srv = await modbus_tcp_server([img.sim_device(2, action=fault.action)])
    d = await drivers_factory({"link": tcp_bus(srv, timeout_s=1.0, retries=0)}, {"meter": METER})
    meter = d.site_meter
    assert meter is not None
    await meter.read()
    client = d.buses["link"]._client
    real = client.read_holding_registers

    async def keeps_the_answer(*args: Any, **kwargs: Any) -> Any:
        answer = asyncio.ensure_future(real(*args, **kwargs))
        try:
            return await asyncio.shield(answer)
        except asyncio.CancelledError:
            return await answer

    client.read_holding_registers = keeps_the_answer
    fault.delay_s = 0.2
    pending = asyncio.create_task(meter.read())
    await asyncio.sleep(0.05)  # the request is on the wire
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(pending, 2.0)
    fault.delay_s = 0.0
    assert (await meter.read()).p_site_import_w == 1500.0  # the bus goes on serving


async def test_a_connect_failing_as_its_task_is_cancelled_ends_cancelled(
    modbus_tcp_server: Any, drivers_factory: BuildDrivers
) -> None:
    # pymodbus's connect waits with asyncio.wait_for too: a connection refused in the loop turn of the
    # cancellation returns False, and the task went on with "cannot connect" as if not stopped.
    img = SunSpecImage(meter_models())
    srv = await modbus_tcp_server([img.sim_device(2)])
    d = await drivers_factory({"link": tcp_bus(srv, timeout_s=1.0, retries=0)}, {"meter": METER})
    meter = d.site_meter
    assert meter is not None
    await meter.read()
    client = d.buses["link"]._client
    client.close()

    async def refused_as_cancelled() -> bool:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.2)
        return False

    client.connect = refused_as_cancelled
    pending = asyncio.create_task(meter.read())
    await asyncio.sleep(0.05)  # connecting
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(pending, 2.0)
