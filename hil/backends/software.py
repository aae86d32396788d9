"""The software backend: the simulated plant of :mod:`hil.plant`, in the runner's process."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import tomlkit

from hil.backends.base import Backend
from hil.plant import Plant
from hil.plant import config as plant_config
from hil.plant.core import DeviceAddress
from hil.plant.events import PlantEvent
from hil.scenario import Scenario


class SoftwareBackend(Backend):
    """``transport``: how the daemon reaches the plant, "tcp" (default) or "rtu" (a byte-timed serial
    line, which the plant then serves too)."""

    def __init__(self, sc: Scenario, transport: str | None = None) -> None:
        overrides: dict[str, Any] = dict(sc.plant)
        if transport == "rtu":
            overrides = plant_config.merge(overrides, {"serve": {"rtu": True}})
        self.cfg = plant_config.from_dict(overrides, f"{sc.path or sc.name} [plant]")
        self.transport = transport or ("rtu" if self.cfg.serve.rtu else "tcp")
        self.plant = Plant(self.cfg)

    async def start(self) -> None:
        await self.plant.start()

    async def stop(self) -> None:
        await self.plant.stop()

    @property
    def t_s(self) -> float:
        return self.plant.t_s

    async def wait_until(self, t_s: float) -> None:
        await self.plant.wait_until(t_s)

    def schedule(self, events: Iterable[PlantEvent]) -> None:
        self.plant.schedule(events)

    def daemon_addresses(self) -> list[DeviceAddress]:
        return [a for a in self.plant.addresses if a.transport == self.transport]

    def site_facts(self) -> dict[str, Any]:
        ps = self.cfg.power_stage
        return {
            "f_nominal_hz": self.cfg.grid.f_nominal_hz,
            "v_nominal_v": self.cfg.grid.v_nominal_v,
            "phases": self.cfg.grid.phases,
            "inverter": {
                "p_rated_w": ps.p_max_discharge_w,
                "p_rated_charge_w": ps.p_max_charge_w,
                "s_rated_va": ps.s_max_va,
                "q_max_inj_var": ps.q_max_var,
                "q_max_abs_var": ps.q_max_var,
            },
        }

    def columns(self) -> dict[str, list[float]]:
        return self.plant.recorder.columns

    def stats(self) -> dict[str, Any]:
        p = self.plant
        return {
            "addresses": [a.line() for a in p.addresses],
            "step_s": self.cfg.step_s,
            "steps": p.step_count,
            "max_step_interval_s": round(p.max_step_s, 4),
            "late_resyncs": p.late_steps,
            "stage_refused_writes": list(p.stage_dev.log),
        }

    def describe_config(self) -> str:
        return tomlkit.dumps(_drop_none(plant_config.to_dict(self.cfg)))


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    """TOML has no null: unset optional settings are left out."""
    return {k: _drop_none(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}
