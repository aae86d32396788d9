"""The plant: grid, site, meter, power stage and EV stepped in real time, served over Modbus.

``Plant`` runs in the caller's event loop: ``await plant.start()`` binds the servers and starts a
stepping task (every ``step_s``, 1-10 ms, on loop time; never blocking), ``plant.apply(event)`` or
``plant.schedule(events)`` changes it, ``await plant.stop()`` ends it. ``plant.recorder`` holds every
signal, ``plant.addresses`` where each device is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass

from hil.plant import events as ev
from hil.plant.battery import EcmBattery, TraceBattery
from hil.plant.config import PlantConfig
from hil.plant.devices import LegacyStageDevice, MapMeterDevice, StageDevice, SunSpecMeterDevice
from hil.plant.grid import Grid, RlcLoad
from hil.plant.meter import SiteMeter
from hil.plant.recorder import Recorder
from hil.plant.serving import DeviceServer, LiveRegisters
from hil.plant.site import HouseLoad, Pv
from hil.plant.stage import STATES, PowerStage
from hil.serial_link import TimedSerialLine

log = logging.getLogger("hil.plant")


@dataclass(frozen=True)
class DeviceAddress:
    """Where a device is served: ``power_stage tcp 127.0.0.1:15020 unit 1``."""

    name: str  # "power_stage" | "site_meter"
    transport: str  # "tcp" | "rtu"
    unit_id: int
    host: str = ""
    port: int = 0
    serial_port: str = ""
    baud: int = 0
    protocol: str = "sunspec"  # "sunspec" | "map"
    map: str = ""

    def line(self) -> str:
        where = (
            f"{self.host}:{self.port}" if self.transport == "tcp" else f"{self.serial_port} baud {self.baud}"
        )
        extra = f" map {self.map}" if self.protocol == "map" else ""
        return f"{self.name} {self.transport} {where} unit {self.unit_id}{extra}"


@dataclass
class Ev:
    """The EV session as the charger sees it."""

    plugged: bool
    soc: float
    v_dc_v: float
    max_charge_w: float
    max_discharge_w: float


class Plant:
    def __init__(self, cfg: PlantConfig | None = None) -> None:
        self.cfg = cfg = cfg or PlantConfig()
        g = cfg.grid
        self.grid = Grid(g.v_nominal_v, g.f_nominal_hz, g.phases, g.island_tau_s)
        s = cfg.site
        self.house = HouseLoad(s.house_load_w, s.house_load_var, s.hob.w, s.hob.period_s, s.hob.duty)
        self.pv = Pv(s.pv_w, s.pv_v_band_pu, s.pv_f_band_hz, s.pv_anti_island_s)
        self.meter = SiteMeter(cfg.meter.refresh_s, cfg.meter.noise_w, cfg.seed)
        self.stage = PowerStage(cfg.power_stage, g.f_nominal_hz)
        e = cfg.ev
        self.battery: EcmBattery | TraceBattery = (
            TraceBattery(e.trace)
            if e.trace
            else EcmBattery(
                soc=e.soc,
                capacity_kwh=e.capacity_kwh,
                series=e.series_cells,
                r0=e.r0_ohm,
                r1=e.r1_ohm,
                tau1_s=e.tau1_s,
            )
        )
        self.ev = Ev(e.plugged, self.battery.soc, self.battery.v_v, e.max_charge_w, e.max_discharge_w)
        stage_cls = StageDevice if cfg.power_stage.sunspec_controls == "704" else LegacyStageDevice
        self.stage_dev: StageDevice | LegacyStageDevice = stage_cls(
            cfg, self.stage, lambda: self.t_s, cfg.power_stage.unit_id
        )
        self.meter_dev: SunSpecMeterDevice | MapMeterDevice = (
            SunSpecMeterDevice(cfg, cfg.meter.unit_id)
            if cfg.meter.protocol == "sunspec"
            else MapMeterDevice(cfg, cfg.meter.unit_id)
        )
        self.recorder = Recorder()
        self.addresses: list[DeviceAddress] = []
        self._servers: dict[str, list[tuple[DeviceServer, int]]] = {"power_stage": [], "site_meter": []}
        self._all_servers: list[DeviceServer] = []
        self._line: TimedSerialLine | None = None
        self._task: asyncio.Task[None] | None = None
        self._t0 = 0.0
        self._t_s = 0.0
        self._next_record_s = 0.0
        self._next_publish_s = 0.0
        self._publish_dt_s = 0.0
        self._pending: list[ev.PlantEvent] = []
        self.link_up = {"power_stage": True, "site_meter": True}
        self._restart: ev.InverterRestart | None = None  # the stage is powered off until its power-on
        self._restart_on_s = 0.0
        self.p_site_import_w = 0.0
        self.step_count = 0
        self.late_steps = 0
        self.max_step_s = 0.0

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def t_s(self) -> float:
        """Plant time: seconds since start (advances in steps)."""
        return self._t_s

    async def start(self) -> None:
        """Serve the devices and start stepping."""
        sv = self.cfg.serve
        stage_live = self.stage_dev.dev.live
        meter_live = (
            self.meter_dev.dev.live if isinstance(self.meter_dev, SunSpecMeterDevice) else self.meter_dev.live
        )
        lives: dict[str, tuple[int, LiveRegisters]] = {
            "power_stage": (self.cfg.power_stage.unit_id, stage_live),
            "site_meter": (self.cfg.meter.unit_id, meter_live),
        }
        protocol = self.cfg.meter.protocol
        self._step(0.0, 0.0)  # registers hold real values before the first client connects
        try:
            for k, (name, (uid, live)) in enumerate(lives.items()):
                srv = DeviceServer([(uid, live)])
                self._all_servers.append(srv)
                port = sv.tcp_base_port + k if sv.tcp_base_port else 0
                host, port = await srv.serve_tcp(sv.host, port)
                self._servers[name].append((srv, uid))
                is_map = name == "site_meter" and protocol == "map"
                self.addresses.append(
                    DeviceAddress(
                        name,
                        "tcp",
                        uid,
                        host=host,
                        port=port,
                        protocol="map" if is_map else "sunspec",
                        map=self.cfg.meter.map if is_map else "",
                    )
                )
            if sv.rtu:
                self._line = TimedSerialLine(sv.rtu_baud).start()
                ids = [sv.rtu_stage_unit_id, sv.rtu_meter_unit_id]
                srv = DeviceServer([(ids[0], stage_live), (ids[1], meter_live)])
                self._all_servers.append(srv)
                await srv.serve_rtu(self._line.server_port, baudrate=sv.rtu_baud)
                for name, uid in zip(("power_stage", "site_meter"), ids, strict=True):
                    self._servers[name].append((srv, uid))
                    is_map = name == "site_meter" and protocol == "map"
                    self.addresses.append(
                        DeviceAddress(
                            name,
                            "rtu",
                            uid,
                            serial_port=self._line.client_port,
                            baud=sv.rtu_baud,
                            protocol="map" if is_map else "sunspec",
                            map=self.cfg.meter.map if is_map else "",
                        )
                    )
        except BaseException:
            await self._close_servers()
            raise
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        self._task = asyncio.create_task(self._run(), name="hil-plant-step")

    async def _close_servers(self) -> None:
        for srv in self._all_servers:
            await srv.stop()
        self._all_servers.clear()
        if self._line is not None:
            self._line.stop()
            self._line = None

    def stop(self) -> Awaitable[None]:
        """Stop stepping at once; the returned awaitable closes the servers (``await plant.stop()``)."""
        if self._task is not None:
            self._task.cancel()

        async def finish(task: asyncio.Task[None] | None) -> None:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._close_servers()

        task, self._task = self._task, None
        return asyncio.ensure_future(finish(task))

    async def wait_until(self, t_s: float) -> None:
        """Return once plant time has reached ``t_s`` (or at once if it has)."""
        loop = asyncio.get_running_loop()
        while self._t_s < t_s:
            left = self._t0 + t_s - loop.time()
            await asyncio.sleep(max(min(left, 0.5), self.cfg.step_s))

    async def __aenter__(self) -> Plant:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        step = self.cfg.step_s
        last = loop.time()
        next_t = last
        while True:
            next_t += step
            delay = next_t - loop.time()
            if delay < -0.05:  # fell far behind (a stalled loop): resynchronise instead of racing
                self.late_steps += 1
                next_t = loop.time()
                delay = 0.0
            await asyncio.sleep(max(delay, 0.0))
            now = loop.time()
            dt = now - last
            last = now
            self.max_step_s = max(self.max_step_s, dt)
            try:
                self._step(now - self._t0, min(dt, 0.05))
            except Exception:
                log.exception("plant step failed at t=%.3f s", now - self._t0)
                raise

    # --- events ----------------------------------------------------------------------------------

    def schedule(self, events: Iterable[ev.PlantEvent]) -> None:
        """Apply each event when plant time reaches its ``at_s``."""
        self._pending.extend(events)
        self._pending.sort(key=lambda e: e.at_s)

    def set_link(self, device: str, up: bool) -> None:
        self.link_up[device] = up
        for srv, uid in self._servers[device]:
            srv.set_online(uid, up)

    def apply(self, event: ev.PlantEvent) -> None:
        """Apply one event now."""
        t = self._t_s
        match event:
            case ev.HouseLoad(w=w, var=var):
                self.house.base_w = w
                if var is not None:
                    self.house.q_var = var
            case ev.Hob(w=w, period_s=period_s, duty=duty):
                self.house.set_hob(w, period_s, duty, t)
            case ev.Pv(w=w):
                self.pv.w = w
            case ev.Breaker(closed=closed):
                if closed:
                    self.grid.close_breaker()
                elif self.grid.breaker_closed:
                    s = self.cfg.site
                    p_load, q_load = self.house.nominal_w(t), self.house.q_var
                    g = self.cfg.grid
                    self.grid.open_breaker(
                        RlcLoad(g.v_nominal_v, g.f_nominal_hz, p_load, q_load, s.island_quality_factor)
                    )
            case ev.Grid(v_pu=v_pu, f_hz=f_hz, phase_deg=phase_deg, phase=phase, rocof_hz_s=rocof):
                self.grid.set_source(v_pu, f_hz, phase_deg, phase, rocof)
            case ev.MeterFreeze(on=on):
                self.meter.frozen = on
            case ev.MeterSilent(on=on):
                self.meter.silent = on
                self.set_link("site_meter", not on)
            case ev.Link(device=device, up=up):
                self.set_link(device, up)
            case ev.EvPlug(plugged=plugged, soc=soc):
                self.ev.plugged = plugged
                if soc is not None:
                    self.battery.soc = soc
            case ev.EvLimits(charge_w=charge_w, discharge_w=discharge_w):
                if charge_w is not None:
                    self.ev.max_charge_w = charge_w
                if discharge_w is not None:
                    self.ev.max_discharge_w = discharge_w
            case ev.InverterRestart(offline_s=offline_s):
                self.stage.power_off()
                self.set_link("power_stage", False)
                self._restart, self._restart_on_s = event, t + offline_s
            case _:
                raise TypeError(f"not a plant event: {event!r}")

    def _power_on_stage(self, restart: ev.InverterRestart) -> None:
        self._restart = None
        self.stage_dev.power_on(self._t_s, stopped=restart.stopped, es_disabled=restart.es_disabled)
        for srv, _ in self._servers["power_stage"]:
            srv.drop_connections()
        self.set_link("power_stage", True)
        self._next_publish_s = self._t_s  # its registers show the restarted device at once

    # --- physics ---------------------------------------------------------------------------------

    def _step(self, t_s: float, dt_s: float) -> None:
        self._t_s = t_s
        self.step_count += 1
        while self._pending and self._pending[0].at_s <= t_s:
            self.apply(self._pending.pop(0))
        if self._restart is not None and t_s >= self._restart_on_s:
            self._power_on_stage(self._restart)
        g = self.grid
        islanded = not g.breaker_closed
        v = g.v_avg_pu
        house_p, house_q = self.house.power(t_s, v)
        pv_w = self.pv.step(dt_s, v, g.f_hz, g.f_nominal_hz, islanded)
        e = self.ev
        st = self.stage
        soc_min, soc_max = self.cfg.ev.soc_min, self.cfg.ev.soc_max
        st.step(
            t_s=t_s,
            dt_s=dt_s,
            v_avg_pu=v,
            v_min_pu=g.v_min_pu,
            v_max_pu=g.v_max_pu,
            f_hz=g.f_hz,
            islanded=islanded,
            ev_plugged=e.plugged,
            soc=e.soc,
            soc_min=soc_min,
            soc_max=soc_max,
            ev_chg_w=e.max_charge_w,
            ev_dis_w=e.max_discharge_w,
        )
        if e.plugged:
            self.battery.step(dt_s, st.p_dc_w)
        e.soc = self.battery.soc
        e.v_dc_v = self.battery.v_v
        p_stage = st.p_ac_w
        q_stage = st.q_var if st.state not in ("off", "tripped") else 0.0
        g.step(dt_s, p_stage + pv_w, q_stage)
        if islanded:
            # In the island the house is the RLC load: it takes what the sources give.
            house_p, house_q = p_stage + pv_w, -q_stage
            p_import = q_import = 0.0
        else:
            p_import = house_p - pv_w - p_stage
            q_import = house_q - q_stage
        self.p_site_import_w = p_import
        self.house_w = house_p
        self.pv_w = pv_w
        self.meter.step(
            t_s=t_s,
            dt_s=dt_s,
            p_import_w=p_import,
            q_import_var=q_import,
            v_pu=g.v_pu,
            f_hz=g.f_hz,
            phases=g.phases,
        )
        if self.meter.updated:
            self.meter_dev.publish(self.meter.reading)
        self._publish_dt_s += dt_s
        if t_s >= self._next_publish_s:
            self._next_publish_s = t_s + self.cfg.publish_s
            self.stage_dev.publish(t_s, self._publish_dt_s, g.v_pu, g.f_hz, e)
            self._publish_dt_s = 0.0
        if t_s >= self._next_record_s:
            self._next_record_s = t_s + self.cfg.record_s
            self.recorder.add(t_s, self.snapshot())

    def snapshot(self) -> dict[str, float]:
        g, st, e = self.grid, self.stage, self.ev
        r = self.meter.reading
        sign = 1.0 if self.cfg.meter.sign == "import_positive" else -1.0
        return {
            "grid_v_pu": g.v_pu[0],
            "grid_v_min_pu": g.v_min_pu,
            "grid_v_avg_pu": g.v_avg_pu,
            "grid_v_max_pu": g.v_max_pu,
            "grid_f_hz": g.f_hz,
            "grid_phase_deg": g.src_phase_deg[0],
            "breaker_closed": 1.0 if g.breaker_closed else 0.0,
            "house_load_w": getattr(self, "house_w", 0.0),
            "pv_w": getattr(self, "pv_w", 0.0),
            "p_set_w": st.wset_w if st.wset_ena else 0.0,
            "p_target_w": st.p_target_w,
            "p_ev_w": st.p_ac_w,
            "q_ev_var": st.q_var if st.state not in ("off", "tripped") else 0.0,
            "q_target_var": st.q_target_var,
            "p_vw_limit_w": min(st.p_vw_limit_w, st.p_max_discharge_w),
            "stage_vref_pu": st.vv_vref_auto_pu,
            "p_dc_w": st.p_dc_w,
            "p_site_import_w": self.p_site_import_w,
            "p_site_export_w": max(0.0, -self.p_site_import_w),
            "meter_reported_w": r.p_import_w * sign,
            "ev_soc": e.soc,
            "ev_plugged": 1.0 if e.plugged else 0.0,
            "stage_state": float(STATES.index(st.state)),
            "stage_reverted": 1.0 if st.reverted else 0.0,
            "stage_mom_cess": 1.0 if st.mom_cess else 0.0,
            "stage_es_delay_rem_s": st.es_delay_rem_s(),
            "stage_link_up": 1.0 if self.link_up["power_stage"] else 0.0,
            "meter_link_up": 1.0 if self.link_up["site_meter"] else 0.0,
            "meter_frozen": 1.0 if self.meter.frozen else 0.0,
        }

    def status_line(self) -> str:
        """One compact line: grid V/f, P setpoint and actual, house load, site import, EV SoC."""
        g, st = self.grid, self.stage
        v = g.v_avg_pu * g.v_nominal_v
        p_set = st.wset_w if st.wset_ena else 0.0
        soc = f"{self.ev.soc * 100:.1f}%" if self.ev.plugged else "unplugged"
        grid = f"{v:.1f}V/{g.f_hz:.2f}Hz" + ("" if g.breaker_closed else " ISLAND")
        return (
            f"t={self._t_s:7.1f}s grid={grid} p_set={p_set:.0f}W p_ev={st.p_ac_w:.0f}W "
            f"q_ev={st.q_var:.0f}var load={getattr(self, 'house_w', 0.0):.0f}W "
            f"site_import={self.p_site_import_w:.0f}W soc={soc} stage={st.state}"
            + (f"({st.trip_cause})" if st.trip_cause else "")
        )
