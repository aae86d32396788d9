"""The lab backend: a programmable AC source (SCPI) as the grid, the real inverter and meter over Modbus.

Grid events become SCPI settings (``grid``: voltage per phase, frequency, phase angle; ``breaker``:
output off/on; a real island needs an RLC load bank behind the breaker, which is outside this backend).
Events that only a simulation can do (a frozen meter, a dropped link, a house load step without a
programmable load) are refused with :class:`UnsupportedEventError` before the run starts.

Recorded: ``grid_v_pu``, ``grid_f_hz`` and ``p_site_import_w`` from the source's own measurements (what
it delivers is what the site imports), ``breaker_closed``, and ``p_ev_w``/``q_ev_var`` from the inverter's
SunSpec 701. A check on a signal the lab does not record fails and says so.

Lab file (TOML)::

    v_nominal_v = 240.0
    f_nominal_hz = 60
    phases = 1
    record_s = 0.1
    [ac_source]
    host = "192.168.1.50"
    port = 5025
    [inverter]                   # where the daemon and the recorder reach the real power stage
    host = "192.168.1.60"
    port = 502
    unit_id = 1
    p_rated_w = 7400.0 ...
    [meter]
    host = "192.168.1.61"
    port = 502
    unit_id = 1
"""

from __future__ import annotations

import asyncio
import contextlib
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import msgspec
from pymodbus.client import AsyncModbusTcpClient

from hil.backends.base import Backend, UnsupportedEventError
from hil.backends.scpi import AcSourceDialect, ScpiAcSource, ScpiClient
from hil.plant import events as ev
from hil.plant.core import DeviceAddress


class _S(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class AcSourceConfig(_S, kw_only=True):
    host: str
    port: int = 5025
    timeout_s: float = 2.0


class ModbusDeviceConfig(_S, kw_only=True):
    host: str
    port: int = 502
    unit_id: int = 1
    protocol: Literal["sunspec", "map"] = "sunspec"
    map: str = ""


class InverterConfig(ModbusDeviceConfig, kw_only=True):
    p_rated_w: float
    p_rated_charge_w: float
    s_rated_va: float
    q_max_inj_var: float
    q_max_abs_var: float


class LabConfig(_S, kw_only=True):
    v_nominal_v: float
    f_nominal_hz: Literal[50, 60]
    phases: Literal[1, 3] = 1
    record_s: float = 0.1
    ac_source: AcSourceConfig
    inverter: InverterConfig
    meter: ModbusDeviceConfig


def load_lab(path: str | Path) -> LabConfig:
    try:
        return msgspec.convert(tomllib.loads(Path(path).read_text(encoding="utf-8")), LabConfig)
    except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"{path}: {exc}") from None


SUPPORTED = (ev.Grid, ev.Breaker)


async def sunspec_models(client: AsyncModbusTcpClient, unit_id: int, base: int = 40000) -> dict[int, int]:
    """Model id -> address of its ID register, by walking the chain from ``base``."""
    rr = await client.read_holding_registers(base, count=2, device_id=unit_id)
    if rr.isError() or rr.registers != [0x5375, 0x6E53]:
        raise RuntimeError(f"no SunSpec marker at {base} on unit {unit_id}")
    found: dict[int, int] = {}
    addr = base + 2
    while True:
        rr = await client.read_holding_registers(addr, count=2, device_id=unit_id)
        if rr.isError():
            raise RuntimeError(f"SunSpec chain read failed at {addr}: {rr}")
        mid, length = rr.registers
        if mid == 0xFFFF:
            return found
        found.setdefault(mid, addr)
        addr += 2 + length


def _s16(x: int) -> int:
    return x - 65536 if x >= 32768 else x


class LabBackend(Backend):
    def __init__(self, cfg: LabConfig, dialect: AcSourceDialect | None = None) -> None:
        self.cfg = cfg
        self.source = ScpiAcSource(
            ScpiClient(cfg.ac_source.host, cfg.ac_source.port, cfg.ac_source.timeout_s), dialect
        )
        self._inv: AsyncModbusTcpClient | None = None
        self._a701 = 0
        self._cols: dict[str, list[float]] = {
            k: []
            for k in (
                "t_s",
                "grid_v_pu",
                "grid_f_hz",
                "p_site_import_w",
                "p_site_export_w",
                "breaker_closed",
                "p_ev_w",
                "q_ev_var",
            )
        }
        self._events: list[ev.PlantEvent] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._t0 = 0.0
        self._breaker = True
        self.errors: list[str] = []

    async def start(self) -> None:
        await self.source.c.connect()
        await self.source.set_frequency(self.cfg.f_nominal_hz)
        await self.source.set_voltage(self.cfg.v_nominal_v)
        await self.source.set_output(True)
        inv = self.cfg.inverter
        self._inv = AsyncModbusTcpClient(inv.host, port=inv.port, timeout=1.0, retries=0)
        await self._inv.connect()
        models = await sunspec_models(self._inv, inv.unit_id)
        if 701 not in models:
            raise RuntimeError(
                f"inverter at {inv.host}:{inv.port} unit {inv.unit_id} has no SunSpec model 701"
            )
        self._a701 = models[701]
        self._t0 = asyncio.get_running_loop().time()
        self._tasks = [
            asyncio.create_task(self._record(), name="lab-record"),
            asyncio.create_task(self._play(), name="lab-events"),
        ]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()
        if self._inv is not None:
            self._inv.close()
            self._inv = None
        with contextlib.suppress(Exception):
            await self.source.set_voltage(self.cfg.v_nominal_v)
        await self.source.c.close()

    @property
    def t_s(self) -> float:
        return asyncio.get_running_loop().time() - self._t0

    async def wait_until(self, t_s: float) -> None:
        await asyncio.sleep(max(t_s - self.t_s, 0.0))

    def schedule(self, events: Iterable[ev.PlantEvent]) -> None:
        evs = list(events)
        for e in evs:
            if not isinstance(e, SUPPORTED):
                kind = ev.kind_of(e)
                raise UnsupportedEventError(
                    f"the lab backend cannot perform {kind!r} events (supported: grid, breaker)"
                )
        self._events = sorted(self._events + evs, key=lambda e: e.at_s)

    async def apply(self, e: ev.PlantEvent) -> None:
        s = self.source
        if isinstance(e, ev.Grid):
            if e.f_hz is not None:
                await s.set_frequency(e.f_hz)
            if e.v_pu is not None:
                await s.set_voltage(e.v_pu * self.cfg.v_nominal_v, e.phase)
            if e.phase_deg is not None:
                await s.set_phase_angle(e.phase_deg, e.phase)
        elif isinstance(e, ev.Breaker):
            await s.set_output(e.closed)
            self._breaker = e.closed

    async def _play(self) -> None:
        while self._events:
            e = self._events.pop(0)
            await self.wait_until(e.at_s)
            try:
                await self.apply(e)
            except Exception as exc:
                self.errors.append(f"event at {e.at_s} s failed: {exc}")

    async def _record(self) -> None:
        inv = self.cfg.inverter
        while True:
            t = self.t_s
            try:
                v, f, p = await self.source.measure()
                assert self._inv is not None
                rr = await self._inv.read_holding_registers(self._a701 + 10, count=3, device_id=inv.unit_id)
                sf = await self._inv.read_holding_registers(self._a701 + 116, count=4, device_id=inv.unit_id)
                w_sf, var_sf = _s16(sf.registers[0]), _s16(sf.registers[3])
                p_ev = _s16(rr.registers[0]) * 10.0**w_sf
                q_ev = _s16(rr.registers[2]) * 10.0**var_sf
            except Exception as exc:
                self.errors.append(f"recording at {t:.2f} s failed: {exc}")
                await asyncio.sleep(self.cfg.record_s)
                continue
            row = {
                "t_s": t,
                "grid_v_pu": v / self.cfg.v_nominal_v,
                "grid_f_hz": f,
                "p_site_import_w": p,
                "p_site_export_w": max(0.0, -p),
                "breaker_closed": 1.0 if self._breaker else 0.0,
                "p_ev_w": p_ev,
                "q_ev_var": q_ev,
            }
            for k, x in row.items():
                self._cols[k].append(x)
            await asyncio.sleep(self.cfg.record_s)

    def daemon_addresses(self) -> list[DeviceAddress]:
        i, m = self.cfg.inverter, self.cfg.meter
        return [
            DeviceAddress(
                "power_stage", "tcp", i.unit_id, host=i.host, port=i.port, protocol=i.protocol, map=i.map
            ),
            DeviceAddress(
                "site_meter", "tcp", m.unit_id, host=m.host, port=m.port, protocol=m.protocol, map=m.map
            ),
        ]

    def site_facts(self) -> dict[str, Any]:
        i = self.cfg.inverter
        return {
            "f_nominal_hz": self.cfg.f_nominal_hz,
            "v_nominal_v": self.cfg.v_nominal_v,
            "phases": self.cfg.phases,
            "inverter": {
                "p_rated_w": i.p_rated_w,
                "p_rated_charge_w": i.p_rated_charge_w,
                "s_rated_va": i.s_rated_va,
                "q_max_inj_var": i.q_max_inj_var,
                "q_max_abs_var": i.q_max_abs_var,
            },
        }

    def columns(self) -> dict[str, list[float]]:
        return self._cols

    def stats(self) -> dict[str, Any]:
        return {"backend": "lab", "samples": len(self._cols["t_s"]), "errors": self.errors[:20]}
