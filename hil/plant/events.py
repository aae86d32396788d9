"""Plant events: what a scenario (or a test, or the lab) does to the plant, as typed data.

Each event is a msgspec struct tagged by ``kind``, so a scenario file writes
``{ at_s = 5.0, kind = "house_load", w = 3000 }``; :meth:`hil.plant.Plant.apply` takes the same structs.
``at_s`` is the scenario time the event is due (ignored by ``apply``, used by ``schedule``).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

NonNeg = Annotated[float, Meta(ge=0.0)]


class _Event(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, tag_field="kind"):
    at_s: NonNeg = 0.0
    label: str = ""  # optional name, shown in plots and the report


class HouseLoad(_Event, tag="house_load", kw_only=True):
    """Set the house base load (W at nominal voltage)."""

    w: NonNeg
    var: float | None = None


class Hob(_Event, tag="hob", kw_only=True):
    """Induction hob pulsing: ``w`` for ``duty`` of each ``period_s`` (w = 0 switches it off)."""

    w: NonNeg
    period_s: Annotated[float, Meta(gt=0.0)] | None = None
    duty: Annotated[float, Meta(ge=0.0, le=1.0)] | None = None


class Pv(_Event, tag="pv", kw_only=True):
    w: NonNeg


class Breaker(_Event, tag="breaker", kw_only=True):
    """Open (islanding) or close the grid breaker at the point of common coupling."""

    closed: bool


class Grid(_Event, tag="grid", kw_only=True):
    """Step the grid source: voltage (per unit, all phases or one), frequency, phase angle.

    ``phase_deg`` is a phase jump: the angle of the phase (or of all three) relative to its balanced
    position, from this instant. ``rocof_hz_s``: the frequency ramps to ``f_hz`` at that rate (Hz/s,
    a magnitude; 1547.1 ROCOF ride-through: 3 Hz/s) instead of stepping; a later frequency event
    replaces the ramp."""

    v_pu: Annotated[float, Meta(ge=0.0, le=2.0)] | None = None
    f_hz: Annotated[float, Meta(ge=40.0, le=70.0)] | None = None
    phase_deg: Annotated[float, Meta(ge=-180.0, le=180.0)] | None = None
    phase: Annotated[int, Meta(ge=0, le=2)] | None = None
    rocof_hz_s: Annotated[float, Meta(gt=0.0, le=100.0)] | None = None

    def __post_init__(self) -> None:
        if self.rocof_hz_s is not None and self.f_hz is None:
            raise ValueError("rocof_hz_s ramps to f_hz: give f_hz too")


class MeterFreeze(_Event, tag="meter_freeze", kw_only=True):
    """The meter keeps answering with the same registers (``on``) or measures again."""

    on: bool = True


class MeterSilent(_Event, tag="meter_silent", kw_only=True):
    """The meter stops answering on every bus (``on``) or answers again."""

    on: bool = True


class Link(_Event, tag="link", kw_only=True):
    """A device's link drops (it stops answering) or comes back."""

    device: Literal["power_stage", "site_meter"] = "power_stage"
    up: bool


class EvPlug(_Event, tag="ev_plug", kw_only=True):
    """The EV is plugged in (optionally at a given SoC) or unplugged."""

    plugged: bool
    soc: Annotated[float, Meta(ge=0.0, le=1.0)] | None = None


class EvLimits(_Event, tag="ev_limits", kw_only=True):
    """The limits the EV reports (DC side, W)."""

    charge_w: NonNeg | None = None
    discharge_w: NonNeg | None = None


class InverterRestart(_Event, tag="inverter_restart", kw_only=True):
    """The power stage restarts (a power cycle): its output drops to 0 at once, it is off the bus for
    ``offline_s``, then answers again with its power-on settings (704 setpoint enables and reversion
    cleared, heartbeats at 0) and its TCP connections dropped. ``stopped``: it comes back waiting for a
    start command (715 ``OpCtl`` = STOP); ``es_disabled``: with 703 ``ES`` = disabled."""

    offline_s: Annotated[float, Meta(ge=0.0, le=60.0)] = 1.0
    stopped: bool = False
    es_disabled: bool = False


PlantEvent = (
    HouseLoad
    | Hob
    | Pv
    | Breaker
    | Grid
    | MeterFreeze
    | MeterSilent
    | Link
    | EvPlug
    | EvLimits
    | InverterRestart
)


def kind_of(obj: msgspec.Struct) -> str:
    """The ``kind`` tag of an event or a check struct."""
    return str(obj.__struct_config__.tag)


PLANT_EVENT_KINDS = tuple(sorted(str(t.__struct_config__.tag) for t in PlantEvent.__args__))
