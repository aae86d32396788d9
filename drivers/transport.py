"""The bus worker: one per bus (a Modbus TCP connection or an RS-485 line), serializing its requests.

Devices on a bus get a :class:`DeviceLink` and send reads and writes through it. The worker runs them
one at a time (writes before queued reads: a setpoint or a stop must not wait behind polls), applies
the per-request timeout and bounded retries, keeps per-device statistics, and turns every failure
into a :class:`~drivers.errors.DriverError` naming the device and register.

A device whose request failed after its retries is in *back-off*: its next requests fail at once,
without using the bus, until the back-off expires; then one probe decides. A dead unit on a shared
RS-485 line therefore costs one timeout per back-off period instead of one per poll, and the others
keep their rate. The worker reconnects on its own (also with back-off). It logs once when a device
or the bus breaks and once when it recovers, never per poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from struct import error as struct_error
from typing import Any, Literal

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from drivers.config import BusConfig
from drivers.errors import EXCEPTION_NAMES, RETRYABLE_EXCEPTION_CODES, DriverError, where
from drivers.stats import DeviceStats
from drivers.values import Registers

log = logging.getLogger(__name__)

Op = Literal["read_holding", "read_input", "write", "write_single"]
MAX_READ = 125
MAX_WRITE = 123


class _PymodbusClientNoise(logging.Filter):
    """pymodbus logs an ERROR for every unanswered request and a WARNING for every failed connect;
    the worker reports those itself, once per breakdown and once per recovery."""

    NOISE = ("No response received", "Failed to connect", "Not connected", "received pdu without")

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(n in msg for n in self.NOISE)


_noise_filter = _PymodbusClientNoise()
logging.getLogger("pymodbus.logging").addFilter(_noise_filter)


@dataclass(frozen=True)
class _Request:
    link: DeviceLink
    op: Op
    address: int
    count: int
    values: tuple[int, ...]
    what: str
    urgent: bool


def _cancelling() -> bool:
    """Whether the task running a request has been cancelled, even if pymodbus lost the cancellation:
    its ``asyncio.wait_for`` (Python 3.11) returns an answer, or a failed connect, that came in the
    loop turn the task was cancelled in, and a cancelled request may come back as an I/O error. A
    stopped task must stop, not carry on with the answer or the error (the setpoint writer then
    waited for its next command, and the daemon's shutdown for the writer, for ever). The
    ``asyncio.timeout`` guards below have taken back their own cancellations by then."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class _PriorityLock:
    """Who holds the bus next: the lowest priority number first (writes 0, reads 1), FIFO within one.

    Uncontended, acquiring costs no event-loop turn; that keeps the driver's overhead over a bare
    pymodbus read small (the ``drivers`` benchmark holds it to 1.3x).
    """

    def __init__(self) -> None:
        self._busy = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    async def acquire(self, priority: int) -> None:
        if not self._busy and not self._waiters:
            self._busy = True
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (priority, next(self._seq), fut)
        heapq.heappush(self._waiters, entry)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # granted and cancelled at once: pass the bus on
            elif entry in self._waiters:
                # A release between the cancellation and this line has already dropped the entry
                # (its future was done); removing it again raised ValueError in place of the
                # cancellation, and a daemon's shutdown stopped before stopping the stage.
                self._waiters.remove(entry)
                heapq.heapify(self._waiters)
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)  # the bus stays busy: handed over
                return
        self._busy = False


class DeviceLink:
    """One unit id on a bus: what device drivers read and write through."""

    def __init__(self, bus: BusWorker, name: str, unit_id: int) -> None:
        self.bus = bus
        self.name = name
        self.unit_id = unit_id
        self.stats = DeviceStats(name)
        self._failures = 0
        self._next_try_s = 0.0
        self._last_error = ""

    async def read(self, address: int, count: int, *, fc: int = 3, what: str = "") -> Registers:
        """``count`` registers from ``address`` with function code 3 (holding) or 4 (input)."""
        if fc not in (3, 4):
            raise DriverError(
                f"{where(self.name, address, count, what)}: function code {fc} is not a read (3 or 4)",
                kind="config",
                retryable=False,
                device=self.name,
                register=address,
            )
        if not 1 <= count <= MAX_READ:
            raise DriverError(
                f"{where(self.name, address, count, what)}: {count} registers is outside 1..{MAX_READ}",
                kind="config",
                retryable=False,
                device=self.name,
                register=address,
            )
        op: Op = "read_holding" if fc == 3 else "read_input"
        return await self.bus.submit(
            link=self, op=op, address=address, count=count, values=(), what=what, priority=1, urgent=False
        )

    async def write(
        self, address: int, values: Sequence[int], *, what: str = "", urgent: bool = False, fc: int = 16
    ) -> float:
        """Write holding registers (function code 16, or 6 for one register); returns the answer's time.

        ``urgent`` writes (a stop) bypass this device's back-off for one attempt.
        """
        if not 1 <= len(values) <= MAX_WRITE:
            raise DriverError(
                f"{where(self.name, address, len(values), what)}: writes 1..{MAX_WRITE} registers",
                kind="config",
                retryable=False,
                device=self.name,
                register=address,
            )
        if fc not in (6, 16) or (fc == 6 and len(values) != 1):
            raise DriverError(
                f"{where(self.name, address, len(values), what)}: function code {fc} cannot write "
                f"{len(values)} registers (6 writes one, 16 several)",
                kind="config",
                retryable=False,
                device=self.name,
                register=address,
            )
        regs = await self.bus.submit(
            link=self,
            op="write" if fc == 16 else "write_single",
            address=address,
            count=len(values),
            values=tuple(values),
            what=what,
            priority=0,
            urgent=urgent,
        )
        return regs.t_s

    @property
    def failing(self) -> bool:
        return self.stats.failing

    def _in_backoff(self, now: float) -> bool:
        return self.stats.failing and now < self._next_try_s

    def _succeeded(self) -> None:
        if self.stats.failing:
            log.warning("device %r (unit %d on bus %r) recovered", self.name, self.unit_id, self.bus.name)
        self.stats.failing = False
        self._failures = 0

    def _failed(self, err: DriverError, now: float) -> None:
        cfg = self.bus.config
        self._failures += 1
        self._next_try_s = now + min(cfg.backoff_max_s, cfg.backoff_s * 2 ** (self._failures - 1))
        self._last_error = self.stats.last_error = str(err)
        if not self.stats.failing:
            log.warning(
                "device %r (unit %d on bus %r) is failing: %s", self.name, self.unit_id, self.bus.name, err
            )
        self.stats.failing = True


class BusWorker:
    """Owns one pymodbus client and runs every request of the devices on its bus, one at a time."""

    def __init__(self, name: str, config: BusConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.config = config
        self.clock = clock
        self.links: dict[int, DeviceLink] = {}
        self._lock = _PriorityLock()
        self._running = False
        self._tainted = False
        self._client: Any = None
        self._down = False
        self._next_connect_s = 0.0
        self._connect_failures = 0

    def device(self, name: str, unit_id: int) -> DeviceLink:
        """The link of unit ``unit_id`` (one per unit id; the config checks they are unique)."""
        if unit_id in self.links:
            raise DriverError(
                f"bus {self.name!r}: unit {unit_id} is already {self.links[unit_id].name!r}",
                kind="config",
                retryable=False,
                device=name,
            )
        link = DeviceLink(self, name, unit_id)
        self.links[unit_id] = link
        return link

    def _make_client(self) -> Any:
        c = self.config
        # retries=0 and reconnect_delay=0: retries, back-off and reconnects are the worker's, so they
        # follow the config and are counted; pymodbus would retry silently and reconnect in a task.
        if c.transport == "tcp":
            client: Any = AsyncModbusTcpClient(
                c.host,
                port=c.port,
                framer=FramerType.SOCKET,
                timeout=c.timeout_s,
                retries=0,
                reconnect_delay=0,
            )
        else:
            client = AsyncModbusSerialClient(
                c.serial_port,
                framer=FramerType.RTU,
                baudrate=c.baud,
                bytesize=8,
                parity=c.parity,
                stopbits=c.stopbits,
                timeout=c.timeout_s,
                retries=0,
                reconnect_delay=0,
            )
        # pymodbus drops a TCP connection after a few unanswered requests; behind a gateway that would
        # cut off every healthy unit because one is dead. The worker decides when to reconnect.
        client.set_max_no_responses(1_000_000)
        return client

    async def start(self) -> None:
        if self._running:
            return
        self._client = self._make_client()
        self._running = True

    async def stop(self) -> None:
        """Close the bus; requests still waiting for it fail with kind ``stopped``."""
        self._running = False
        await self._lock.acquire(0)  # let the request on the bus finish
        try:
            if self._client is not None:
                self._client.close()
                self._client = None
        finally:
            self._lock.release()

    async def submit(
        self,
        *,
        link: DeviceLink,
        op: Op,
        address: int,
        count: int,
        values: tuple[int, ...],
        what: str,
        priority: int,
        urgent: bool,
    ) -> Registers:
        """Run one request when the bus is free (writes first); the caller's task runs it."""
        req = _Request(link, op, address, count, values, what, urgent)
        await self._lock.acquire(priority)
        try:
            if not self._running or self._client is None:
                raise self._error(req, f"bus {self.name!r} is not running", "stopped", False)
            if self._tainted:
                await self._untaint()
            try:
                regs = await self._execute(req)
            except asyncio.CancelledError:
                # The caller gave up with the request on the wire: its answer may still come.
                self._tainted = True
                raise
            except DriverError:
                if _cancelling():  # the failure ended the request: the line is as the error left it
                    raise asyncio.CancelledError from None
                raise
            if _cancelling():
                raise asyncio.CancelledError
            return regs
        finally:
            self._lock.release()

    async def _untaint(self) -> None:
        self._tainted = False
        if self.config.transport == "rtu":
            await self._quiet_line()
        else:
            self._client.close()

    async def _ensure_connected(self, req: _Request) -> None:
        client = self._client
        if client.connected:
            return
        now = self.clock()
        if now < self._next_connect_s:
            raise self._error(
                req,
                f"bus {self.name!r} is disconnected (next attempt in {self._next_connect_s - now:.1f} s)",
                "disconnected",
                True,
            )
        ok = False
        with contextlib.suppress(OSError, ModbusException, TimeoutError):
            async with asyncio.timeout(self.config.timeout_s + 1.0):
                ok = bool(await client.connect())
        if ok:
            if self._down:
                log.warning("bus %r reconnected", self.name)
            self._down = False
            self._connect_failures = 0
            return
        self._connect_failures += 1
        cfg = self.config
        self._next_connect_s = self.clock() + min(
            cfg.backoff_max_s, cfg.backoff_s * 2 ** (self._connect_failures - 1)
        )
        target = f"{cfg.host}:{cfg.port}" if cfg.transport == "tcp" else cfg.serial_port
        if not self._down:
            log.warning("bus %r cannot connect to %s; retrying with back-off", self.name, target)
        self._down = True
        raise self._error(req, f"bus {self.name!r} cannot connect to {target}", "disconnected", True)

    def _error(
        self, req: _Request, text: str, kind: Any, retryable: bool, code: int | None = None
    ) -> DriverError:
        return DriverError(
            f"{where(req.link.name, req.address, req.count, req.what)}: {text}",
            kind=kind,
            retryable=retryable,
            device=req.link.name,
            register=req.address,
            exception_code=code,
        )

    async def _execute(self, req: _Request) -> Registers:
        link = req.link
        now = self.clock()
        probing = link.failing
        if link._in_backoff(now) and not req.urgent:
            raise self._error(
                req,
                f"in back-off for {link._next_try_s - now:.1f} s more after: {link._last_error}",
                "backoff",
                True,
            )
        attempts = 1 if probing else 1 + self.config.retries
        err: DriverError | None = None
        for _ in range(attempts):
            try:
                await self._ensure_connected(req)
            except DriverError as e:
                err = e
                break
            try:
                regs = await self._attempt(req)
            except DriverError as e:
                err = e
                link.stats.failure(e.kind)
                if not e.retryable or _cancelling():
                    break
                continue
            link._succeeded()
            return regs
        assert err is not None
        if err.kind != "exception" or err.retryable:
            # An illegal-address answer proves the device alive; only silence and failures back off.
            link._failed(err, self.clock())
        raise err

    async def _attempt(self, req: _Request) -> Registers:
        client = self._client
        unit = req.link.unit_id
        t0 = self.clock()
        try:
            # pymodbus applies timeout_s itself; the outer guard catches a transport that never returns.
            async with asyncio.timeout(self.config.timeout_s * 2 + 0.5):
                if req.op == "read_holding":
                    rr = await client.read_holding_registers(req.address, count=req.count, device_id=unit)
                elif req.op == "read_input":
                    rr = await client.read_input_registers(req.address, count=req.count, device_id=unit)
                elif req.op == "write":
                    rr = await client.write_registers(req.address, list(req.values), device_id=unit)
                else:
                    rr = await client.write_register(req.address, req.values[0], device_id=unit)
        except (TimeoutError, ModbusIOException):
            # pymodbus 3.16.1 hands a late answer to whatever request is waiting when it arrives (it
            # does not check the transaction id): a timed-out request taints the link. TCP drops the
            # connection (late answers die with it); RTU waits out the line and empties the buffer.
            await self._untaint()
            raise self._error(req, f"no answer within {self.config.timeout_s} s", "timeout", True) from None
        except ConnectionException as e:
            client.close()
            raise self._error(req, f"connection lost: {e}", "disconnected", True) from None
        except (ModbusException, OSError, ValueError, struct_error) as e:
            raise self._error(req, f"unreadable answer: {e}", "garbage", True) from None
        t1 = self.clock()
        if rr.isError():
            code = int(getattr(rr, "exception_code", 0) or 0)
            name = EXCEPTION_NAMES.get(code, "unknown")
            raise self._error(
                req, f"exception code {code} ({name})", "exception", code in RETRYABLE_EXCEPTION_CODES, code
            )
        if req.op in ("write", "write_single"):
            values: tuple[int, ...] = ()
        else:
            values = tuple(getattr(rr, "registers", ()) or ())
            if len(values) != req.count:
                raise self._error(req, f"answered {len(values)} registers for {req.count}", "garbage", True)
        req.link.stats.success(t1 - t0, t1)
        return Registers(req.address, values, t1)

    async def _quiet_line(self) -> None:
        # A late answer to a timed-out RTU request must not be taken for the next one's (RTU has no
        # transaction id): give a slow device another timeout plus a longest frame's wire time to
        # finish, then drop whatever arrived. Answers later than that are the residual risk.
        c = self.config
        await asyncio.sleep(c.timeout_s + 256 * c.bits_per_char / c.baud)
        ctx = getattr(self._client, "ctx", None)
        if ctx is not None:
            ctx.recv_buffer = b""
