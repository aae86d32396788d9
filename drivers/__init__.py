"""Modbus devices: transport workers, SunSpec decoding, vendor maps and capability interfaces.

The daemon calls :func:`build` with the ``[buses.*]`` and ``[devices.*]`` sections of its config and
gets a :class:`Drivers`: ``await drivers.start()`` connects the buses and starts polling,
``drivers.power_stage`` and ``drivers.site_meter`` are the devices by role (``PowerStage`` and
``SiteMeter`` capabilities), ``await drivers.stop()`` stops polling and closes the buses (it writes
nothing: a daemon that wants the charger stopped calls ``power_stage.stop()`` first; the reversion
timers armed with the first setpoint bring the inverter to 0 W without us anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from drivers.capabilities import (
    MeterReading,
    PowerStage,
    PowerStageRatings,
    PowerStageReading,
    SiteMeter,
)
from drivers.config import BusConfig, DeviceConfig, parse
from drivers.errors import DriverError
from drivers.poll import Budget, PolledDevice, budget
from drivers.stats import StatsSnapshot
from drivers.transport import BusWorker

__all__ = [
    "BusConfig",
    "DeviceConfig",
    "DriverError",
    "Drivers",
    "MeterReading",
    "PowerStage",
    "PowerStageRatings",
    "PowerStageReading",
    "SiteMeter",
    "StatsSnapshot",
    "build",
]

log = logging.getLogger(__name__)


class Drivers:
    """The driver layer of one daemon: its buses, its devices, and the two roles the daemon uses."""

    def __init__(self, buses: dict[str, BusWorker], devices: dict[str, PolledDevice[Any]]) -> None:
        self.buses = buses
        self.devices = devices
        self.power_stage: PowerStage | None = None
        self.site_meter: SiteMeter | None = None
        for dev in devices.values():
            if dev.config.role == "power_stage":
                self.power_stage = dev  # type: ignore[assignment]
            else:
                self.site_meter = dev
        self._same_bus = len({d.link.bus.name for d in devices.values()}) == 1

    async def start(self, *, poll: bool = True, setup_timeout_s: float = 5.0) -> None:
        """Start the buses, set every device up (a device that is not there yet keeps being tried by its
        poll loop), log the RTU line budgets, then start polling."""
        for bus in self.buses.values():
            await bus.start()

        async def try_setup(dev: PolledDevice[Any]) -> None:
            try:
                async with asyncio.timeout(setup_timeout_s):
                    await dev.ensure_setup()
            except (DriverError, TimeoutError) as e:
                log.warning("device %r not set up at start (polling keeps trying): %s", dev.name, e)

        await asyncio.gather(*(try_setup(d) for d in self.devices.values()))
        for b in self.budgets():
            (log.info if b.fits else log.warning)("%s", b.message())
        if poll:
            for dev in self.devices.values():
                dev.start_polling()

    async def stop(self) -> None:
        for dev in self.devices.values():
            await dev.stop_polling()
        for bus in self.buses.values():
            await bus.stop()

    def budgets(self) -> list[Budget]:
        """The line budget of each RTU bus (devices not set up yet count with an empty plan)."""
        out = []
        for name, bus in self.buses.items():
            if bus.config.transport != "rtu":
                continue
            plans = {d.name: d.plan() for d in self.devices.values() if d.link.bus is bus and d.ready}
            out.append(budget(name, bus.config, plans))
        return out

    def stats(self) -> dict[str, StatsSnapshot]:
        return {name: dev.stats() for name, dev in self.devices.items()}

    async def read_all(self) -> tuple[MeterReading | None, PowerStageReading | None]:
        """Read the site meter and the power stage now: one after the other when they share a bus (its
        requests are serialized anyway), concurrently when they do not."""
        meter, stage = self.site_meter, self.power_stage
        if meter is None or stage is None:
            return (await meter.read() if meter else None), (await stage.read() if stage else None)
        if self._same_bus:
            return await meter.read(), await stage.read()
        m, s = await asyncio.gather(meter.read(), stage.read())
        return m, s

    async def __aenter__(self) -> Drivers:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(DriverError):
            await self.stop()


def build(
    buses: Mapping[str, Any],
    devices: Mapping[str, Any],
    *,
    map_dir: Path | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Drivers:
    """The driver layer for ``[buses.*]`` and ``[devices.*]`` (raw dicts or structs); raises DriverError
    (kind ``config``) naming the section and key for a broken config or vendor map."""
    from drivers.maps import load_map
    from drivers.maps.device import MapMeter, MapPowerStage
    from drivers.sunspec.meter import SunSpecMeter
    from drivers.sunspec.power_stage import SunSpecPowerStage

    bus_cfg, dev_cfg = parse(buses, devices)
    workers = {name: BusWorker(name, cfg, clock) for name, cfg in bus_cfg.items()}
    built: dict[str, PolledDevice[Any]] = {}
    for name, d in dev_cfg.items():
        link = workers[d.bus].device(name, d.unit_id)
        dev: PolledDevice[Any]
        if d.protocol == "sunspec":
            dev = SunSpecPowerStage(name, link, d) if d.role == "power_stage" else SunSpecMeter(name, link, d)
        else:
            vmap = load_map(d.map, map_dir)
            if vmap.role != d.role:
                raise DriverError(
                    f"[devices.{name}]: map {d.map!r} describes a {vmap.role}, not a {d.role}",
                    kind="config",
                    retryable=False,
                    device=name,
                )
            dev = (
                MapPowerStage(name, link, d, vmap)
                if d.role == "power_stage"
                else MapMeter(name, link, d, vmap)
            )
        built[name] = dev
    return Drivers({n: w for n, w in workers.items() if w.links}, built)
