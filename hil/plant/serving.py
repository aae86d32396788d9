"""Serve the plant's devices live: one register list per device, shared by every transport.

:mod:`hil.sunspec_server` (the drivers' helper) lays a SunSpec map out and encodes points into
``SunSpecImage.registers``; this module makes that list the *live* one. pymodbus 3.16.1 copies a
``SimDevice``'s values into its own list when a server is built; :class:`DeviceServer` swaps that list
for the device's (``SimRuntime.block["x"]``), so the plant publishes a value once and Modbus TCP and
RTU both serve it without a copy or an ``await``.

Client writes go through the device's hooks before they land: writes to read-only registers are
refused with exception 2 (illegal address), and a hook may refuse a value with exception 3 (illegal
value), as a real SunSpec device does. A device can be taken off every bus
(:meth:`DeviceServer.set_online`): it then stays silent and clients time out, as with a dead RS-485
device or a broken link; :meth:`DeviceServer.drop_connections` closes its clients' TCP connections, as
a restart does.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.sunspec import models as ss
from hil.modbus_compat import patch_unknown_device_ids
from hil.sunspec_server import ModelSpec, SunSpecImage

WRITE_FUNCTION_CODES = frozenset({6, 16, 22, 23})

# hook(address, values) -> None to accept or an exception code to refuse; called before values land.
WriteHook = Callable[[int, list[int]], ExcCodes | None]


class LiveRegisters:
    """A device's registers from ``base``: ``regs[i]`` is protocol address ``base + i``.

    ``regs`` has one spare entry at the end (pymodbus keeps an invalid sentinel after the last register).
    ``writable``: addresses clients may write (None: all).
    """

    def __init__(self, base: int, regs: list[int], writable: Iterable[int] | None = None) -> None:
        if not 0 <= base < 65536 or not regs or base + len(regs) > 65536:
            raise ValueError(f"register map base {base} size {len(regs)} does not fit 0..65535")
        self.base = base
        self.size = len(regs)
        regs.append(0)
        self.regs = regs
        self.writable: frozenset[int] | None = frozenset(writable) if writable is not None else None
        self.hooks: list[WriteHook] = []

    def set(self, address: int, values: Sequence[int]) -> None:
        off = address - self.base
        if off < 0 or off + len(values) > self.size:
            raise IndexError(f"registers {address}..{address + len(values) - 1} are outside the map")
        self.regs[off : off + len(values)] = values

    def get(self, address: int, count: int) -> list[int]:
        off = address - self.base
        if off < 0 or off + count > self.size:
            raise IndexError(f"registers {address}..{address + count - 1} are outside the map")
        return self.regs[off : off + count]

    def check_write(self, address: int, values: list[int]) -> ExcCodes | None:
        if self.writable is not None and any(
            a not in self.writable for a in range(address, address + len(values))
        ):
            return ExcCodes.ILLEGAL_ADDRESS
        for hook in self.hooks:
            result = hook(address, values)
            if result is not None:
                return result
        return None


class LiveSunSpecDevice:
    """A SunSpec device whose :class:`SunSpecImage` registers are live; points by ``(model_id, path)``.

    Only points the definitions mark RW are writable by clients (:meth:`protect` narrows that further).
    Engineering values are scaled by the point's scale factor (read once: SFs are static).
    """

    def __init__(self, unit_id: int, specs: Sequence[ModelSpec], base: int = 40000) -> None:
        self.unit_id = unit_id
        self.image = SunSpecImage(specs, base)
        writable = [
            a
            for lay, start in self.image.layouts
            for slot in lay.slots.values()
            if slot.point.writable
            for a in range(start + slot.offset, start + slot.offset + slot.point.size)
        ]
        self.live = LiveRegisters(base, self.image.registers, writable)
        self._sf: dict[tuple[int, str, int], int] = {}
        self._slots: dict[tuple[int, str, int], tuple[int, ss.Slot]] = {}

    def _slot(self, model_id: int, path: str, index: int = 0) -> tuple[int, ss.Slot]:
        key = (model_id, path, index)
        found = self._slots.get(key)
        if found is None:
            lay, start = self.image._layout(model_id, index)
            slot = lay[path]
            found = self._slots[key] = (start + slot.offset, slot)
        return found

    def protect(self, model_id: int, prefix: str, index: int = 0) -> None:
        """Make points whose path starts with ``prefix`` read-only (e.g. ``Crv[0].``: the active curve
        of 705-712, which the definitions mark RW but the specification says is read-only)."""
        lay, start = self.image._layout(model_id, index)
        ro = {
            a
            for path, slot in lay.slots.items()
            if path.startswith(prefix)
            for a in range(start + slot.offset, start + slot.offset + slot.point.size)
        }
        assert self.live.writable is not None
        self.live.writable = self.live.writable - ro

    def paths(self, model_id: int, index: int = 0) -> list[str]:
        return list(self.image._layout(model_id, index)[0].slots)

    def set_raw(self, model_id: int, path: str, raw: int | float | str | None, index: int = 0) -> None:
        addr, slot = self._slot(model_id, path, index)
        self.live.set(addr, ss.encode(slot.point, raw))

    def get_raw(self, model_id: int, path: str, index: int = 0) -> int | float | str | None:
        addr, slot = self._slot(model_id, path, index)
        return ss.decode(slot.point, self.live.get(addr, slot.point.size))

    def sf(self, model_id: int, path: str, index: int = 0) -> int:
        """The scale factor of a point (0 without one)."""
        key = (model_id, path, index)
        cached = self._sf.get(key)
        if cached is not None:
            return cached
        _, slot = self._slot(model_id, path, index)
        if slot.sf_value is not None:
            sf = slot.sf_value
        elif slot.sf_path is None:
            sf = 0
        else:
            raw = self.get_raw(model_id, slot.sf_path, index)
            sf = int(raw) if isinstance(raw, int) else 0
        self._sf[key] = sf
        return sf

    def set(self, model_id: int, path: str, value: float | None, index: int = 0) -> None:
        """Publish an engineering value, scaled and clamped to the point type's range."""
        addr, slot = self._slot(model_id, path, index)
        if value is None:
            self.live.set(addr, ss.encode(slot.point, None))
            return
        raw = ss.unscale(value, self.sf(model_id, path, index))
        bits = 16 * slot.point.size
        if slot.point.type.startswith("acc"):
            raw %= 1 << bits
        elif slot.point.type in ss.SIGNED:
            raw = min(max(raw, -(1 << (bits - 1)) + 1), (1 << (bits - 1)) - 1)  # lowest = not implemented
        else:
            raw = min(max(raw, 0), (1 << bits) - 2)  # highest = not implemented
        self.live.set(addr, ss.encode(slot.point, raw))

    def get(self, model_id: int, path: str, index: int = 0) -> float | None:
        raw = self.get_raw(model_id, path, index)
        if raw is None or isinstance(raw, str):
            return None
        return float(raw) * 10.0 ** self.sf(model_id, path, index)

    def decode_write(
        self, address: int, values: list[int]
    ) -> list[tuple[int, str, int | float | str | None]]:
        """The points a client write touches, as ``(model_id, path, new raw value)`` (the written
        registers merged over the current ones, so half of a 32-bit point decodes as the device holds it)."""
        end = address + len(values)
        touched: list[tuple[int, str, int | float | str | None]] = []
        for lay, start in self.image.layouts:
            if end <= start or address >= start + lay.length + 2:
                continue
            for path, slot in lay.slots.items():
                a0 = start + slot.offset
                if a0 + slot.point.size <= address or a0 >= end:
                    continue
                regs = self.live.get(a0, slot.point.size)
                for i in range(slot.point.size):
                    if address <= a0 + i < end:
                        regs[i] = values[a0 + i - address]
                touched.append((lay.model.id, path, ss.decode(slot.point, regs)))
        return touched


class DeviceServer:
    """Serve live register maps over any number of transports (TCP, RTU); ``units`` = (unit id, map)."""

    def __init__(self, units: Sequence[tuple[int, LiveRegisters]]) -> None:
        ids = [uid for uid, _ in units]
        if len(set(ids)) != len(ids):
            raise ValueError(f"unit ids must differ on one server, got {ids}")
        patch_unknown_device_ids()
        self.units = list(units)
        self.servers: list[ModbusTcpServer | ModbusSerialServer] = []
        self._runtimes: list[dict[int, Any]] = []
        self._offline: set[int] = set()

    def _simdevices(self) -> list[SimDevice]:
        sims = []
        for unit_id, live in self.units:

            async def action(  # noqa: PLR0917 - pymodbus calls it positionally
                function_code: int,
                start_address: int,
                address: int,
                count: int,
                current_registers: list[int],
                set_values: list[int] | list[bool] | None,
                live: LiveRegisters = live,
            ) -> ExcCodes | None:
                if function_code in WRITE_FUNCTION_CODES and set_values is not None:
                    return live.check_write(address, [int(v) for v in set_values])
                return None

            data = SimData(address=live.base, count=live.size, values=0, datatype=DataType.REGISTERS)
            sims.append(SimDevice(id=unit_id, simdata=[data], action=action))
        return sims

    def _adopt(self, server: ModbusTcpServer | ModbusSerialServer) -> None:
        runtimes = getattr(server.context, "devices", None)
        if not isinstance(runtimes, dict):
            raise TypeError(
                "pymodbus internals changed: server.context.devices is not a dict (pinned 3.16.1)"
            )
        for unit_id, live in self.units:
            rt = runtimes[unit_id]
            start, n, _regs, flags = rt.block["x"]
            if start != live.base or n != len(live.regs):
                raise RuntimeError(f"pymodbus built a block {start}+{n} for a map at {live.base}+{live.size}")
            rt.block["x"] = (start, n, live.regs, flags)
        self._runtimes.append(dict(runtimes))
        for uid in self._offline:
            runtimes.pop(uid, None)
        self.servers.append(server)

    async def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Start a Modbus TCP server (port 0: a free one); returns where it listens."""
        if port == 0:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
        server = ModbusTcpServer(
            self._simdevices(), address=(host, port), framer=FramerType.SOCKET, ignore_missing_devices=True
        )
        self._adopt(server)
        await server.serve_forever(background=True)
        return host, port

    async def serve_rtu(
        self, port: str, baudrate: int = 115200, parity: str = "N", stopbits: int = 1
    ) -> None:
        """Start a Modbus RTU server on serial ``port`` (e.g. a TimedSerialLine's ``server_port``)."""
        server = ModbusSerialServer(
            self._simdevices(),
            port=port,
            framer=FramerType.RTU,
            baudrate=baudrate,
            parity=parity,
            stopbits=stopbits,
            bytesize=8,
            ignore_missing_devices=True,
        )
        self._adopt(server)
        await server.serve_forever(background=True)

    def set_online(self, unit_id: int, online: bool) -> None:
        """Take a unit off every bus (silent: clients time out) or put it back."""
        if online:
            self._offline.discard(unit_id)
        else:
            self._offline.add(unit_id)
        for server, runtimes in zip(self.servers, self._runtimes, strict=True):
            live: dict[int, Any] = getattr(server.context, "devices")  # noqa: B009 - checked in _adopt
            if online:
                live[unit_id] = runtimes[unit_id]
            else:
                live.pop(unit_id, None)

    def drop_connections(self) -> None:
        """Close every client's TCP connection, as a device that restarted has forgotten them (RTU has
        none to drop)."""
        for server in self.servers:
            if isinstance(server, ModbusTcpServer):
                for conn in list(server.active_connections.values()):
                    conn.callback_disconnected(None)
                    conn.close()

    async def stop(self) -> None:
        for server in self.servers:
            await server.shutdown()  # type: ignore[no-untyped-call]
        self.servers.clear()
        self._runtimes.clear()
