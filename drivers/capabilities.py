"""Capability interfaces the daemon programs against: a site meter and a bidirectional power stage.

Small ``typing.Protocol`` classes with units in the names, and the readings they publish. Every
reading carries ``t_s``, the monotonic time its values were read; a failed read publishes nothing,
so ``now - reading.t_s`` is the age of the freshest good data. Signs follow CONTRIBUTING.md, whatever
the device reports: P > 0 is export from the EV into the AC side (discharge), P < 0 charging; Q > 0
injection (over-excited). The site meter's readings are named by direction (``p_site_import_w`` > 0
importing from the grid). Power factors are magnitudes signed like the active power they go with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from drivers.stats import StatsSnapshot


@dataclass(frozen=True)
class MeterReading:
    """One snapshot of the site meter at the grid connection point."""

    t_s: float
    p_site_import_w: float
    q_site_import_var: float | None = None  # > 0 the site draws reactive power (inductive load)
    pf_site: float | None = None  # |PF| signed like p_site_import_w
    v_l1_v: float | None = None  # line-to-neutral where the meter has a neutral
    v_l2_v: float | None = None
    v_l3_v: float | None = None
    f_hz: float | None = None
    i_a: float | None = None  # total (or single-phase) current magnitude
    p_l1_import_w: float | None = None
    p_l2_import_w: float | None = None
    p_l3_import_w: float | None = None
    e_import_wh: float | None = None
    e_export_wh: float | None = None
    e_counter_wh: float | None = None  # energy throughput the meter counts (import + export): a sign of life
    frozen: bool = False  # a point that must move has not moved for the device's frozen_after_s


@dataclass(frozen=True)
class PowerStageReading:
    """One snapshot of the charger's bidirectional power stage (AC side, DC side, the EV behind it)."""

    t_s: float
    p_w: float | None  # > 0 export (discharge), < 0 charging
    q_var: float | None = None  # > 0 injection
    s_va: float | None = None
    pf: float | None = None  # |PF| signed like p_w
    v_ac_v: float | None = None  # average of the active phases (LN where reported, else LL)
    f_hz: float | None = None
    i_ac_a: float | None = None
    operating: str | None = None  # e.g. "RUNNING", "STANDBY", "FAULT" (SunSpec 701 InvSt names)
    stopped: bool | None = None  # the stage says it is off (not operating); None: it does not say
    connected: bool | None = None  # grid connection state
    alarms: frozenset[str] = frozenset()
    dc_v_v: float | None = None
    dc_i_a: float | None = None  # > 0 out of the EV battery (discharge)
    dc_p_w: float | None = None  # > 0 out of the EV battery (discharge)
    ev_state: str | None = None  # EV session state where the charger forwards it
    ev_soc: float | None = None  # 0..1, as the EV reports it through the charger
    ev_p_max_charge_w: float | None = None  # EV-reported limits, magnitudes
    ev_p_max_discharge_w: float | None = None
    e_injected_wh: float | None = None
    e_absorbed_wh: float | None = None
    frozen: bool = False
    # The inverter's own grid functions do not read back as commissioned (a value, an enable, a
    # function both it and the daemon run, anti-islanding off, an adopt that failed), or have not
    # been verified since it restarted: which point, expected and read. None: verified, or the
    # daemon gave the stage no functions to check.
    config_problem: str | None = None


@dataclass(frozen=True)
class PowerStageRatings:
    """What the setpoint path checks against; magnitudes in W/var/VA, read from the device."""

    t_s: float
    p_max_export_w: float  # discharge limit
    p_max_charge_w: float  # charge limit (a magnitude: the setpoint may go down to -p_max_charge_w)
    s_max_va: float | None = None
    q_max_inject_var: float | None = None
    q_max_absorb_var: float | None = None
    v_nominal_v: float | None = None
    # The device takes reactive set points now (SunSpec 704 VarSet, no reactive mode of its own running):
    # what the daemon's reactive dither (its active anti-islanding) needs.
    q_setpoints: bool = False


@runtime_checkable
class SiteMeter(Protocol):
    """The meter at the grid connection point."""

    name: str

    def latest(self) -> MeterReading | None:
        """The freshest good reading (None before the first); never re-stamped."""
        ...

    async def read(self) -> MeterReading:
        """Read the meter now (raises DriverError; ``latest()`` keeps the previous reading then)."""
        ...

    def stats(self) -> StatsSnapshot: ...


@runtime_checkable
class PowerStage(Protocol):
    """The charger's bidirectional power stage; setpoints go through a range-checked path only."""

    name: str

    def latest(self) -> PowerStageReading | None: ...

    async def read(self) -> PowerStageReading: ...

    def ratings(self) -> PowerStageRatings | None:
        """The ratings read from the device (None until read); the setpoint range comes from them."""
        ...

    async def write_setpoint(self, p_w: float, q_var: float = 0.0) -> None:
        """Command P (> 0 export), Q (> 0 injection); out of range raises DriverError, writes nothing."""
        ...

    async def heartbeat(self) -> None:
        """Tell the device the controller is alive (its watchdog falls back to a safe state without it)."""
        ...

    async def stop(self) -> None:
        """Zero power and stop operation (the safe state); see docs/drivers.md per device."""
        ...

    async def resume(self) -> None:
        """Undo ``stop()``'s stop command so that setpoints are followed again (power stays at 0 W)."""
        ...

    def stats(self) -> StatsSnapshot: ...
