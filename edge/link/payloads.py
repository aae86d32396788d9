"""The JSON payloads of the aggregator link: one msgspec definition each, the single source of the
shipped JSON Schemas (``edge.link.schemas``, ``config/schema/mqtt``) and of docs/mqtt.md.

Outbound: ``StatePayload`` (retained), ``Telemetry``, ``Event`` and their replay batches, ``Result``,
``PlanPayload`` (retained, the local planner's schedule and flexibility envelope).
Inbound: the commands (``DispatchCommand``, ``ModeCommand``, ``OwnerCommand``, ``GridCommand``,
``PlanInputsCommand``), strict:
unknown keys are errors, times need a time zone. Signs and units as everywhere (docs/conventions.md):
P > 0 export (discharge), P < 0 charging; Q > 0 injection; ``meter.p_w`` is the site's import (> 0 from
the grid). Times are UTC (RFC 3339, ``Z``). No vehicle identifier (VIN, EVCCID, the store's vehicle
key) is ever part of a payload: ``Session`` has no field for one and ``Event`` strips them from its
detail.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from edge.daemon.dispatch import DispatchId, SchedulePoint
from edge.planner.inputs import PlanInputs
from edge.settings.model import EvOwner, FreqDroop, OperationMode, Soc, VoltVar, VoltWatt

if TYPE_CHECKING:
    from edge.daemon.sessions import SessionStatus

# A time the sender must state with its zone: a naive time is refused, not guessed.
ZonedTime = Annotated[datetime, Meta(tz=True)]
HhMm = Annotated[str, Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="local time of day, HH:MM")]

EVENT_KINDS = (
    "trip",
    "island",
    "enter_service",
    "fail_safe_entered",
    "fail_safe_left",
    "comm_lost",
    "comm_restored",
    "output_mismatch",
    "session_start",
    "session_end",
    "command_applied",
    "config_reloaded",
    "config_reload_refused",
    "dispatch_withdrawn",  # a reload gave Q to the inverter: a held dispatch asking for Q is dropped
    "daemon_start",
    "daemon_stop",
    "momentary_cessation",
    "state",  # any change of the cycle's state (from, to, reasons), besides the kinds above
    "functions_mismatch",  # the inverter's own grid functions do not read back as commissioned
)
# Keys that would name a vehicle (ISO 15118 EVCCID, VIN, the state store's per-vehicle key).
VEHICLE_KEYS = frozenset({"vin", "evccid", "vehicle_id", "vehicle_key", "emaid", "pcid"})


def utc(t_unix_s: float) -> datetime:
    """A Unix time as the UTC datetime the payloads carry."""
    return datetime.fromtimestamp(t_unix_s, UTC)


def without_vehicle_ids(value: Any) -> Any:
    """``value`` with every mapping key that names a vehicle removed, at any depth."""
    if isinstance(value, dict):
        return {k: without_vehicle_ids(v) for k, v in value.items() if str(k).lower() not in VEHICLE_KEYS}
    if isinstance(value, list | tuple):
        return [without_vehicle_ids(v) for v in value]
    return value


class _Out(msgspec.Struct, frozen=True, kw_only=True):
    """Outbound: every field is written (null where unknown), so consumers can rely on the keys."""


# --- state (retained) ----------------------------------------------------------------------------------


class DeviceIdentity(_Out, frozen=True):
    """A Modbus device of the charger as it identified itself (SunSpec common model)."""

    name: str
    role: str
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    version: str | None = None


class Ratings(_Out, frozen=True):
    """Nameplate ratings of the power stage (AC side)."""

    p_rated_w: float
    p_rated_charge_w: float
    q_max_inj_var: float
    q_max_abs_var: float


class FunctionState(_Out, frozen=True):
    """A grid function's owner (``inverter``, ``daemon``, ``off``) and its settings, where it has any."""

    owner: str
    settings: dict[str, Any] | None = None


class OwnerPrefs(_Out, frozen=True):
    """The owner's wishes in force (file settings with the link's overrides): SoC 0..1."""

    min_soc: float
    departure_time: str | None  # local HH:MM
    departure_soc: float | None
    time_zone: str | None

    @classmethod
    def of(cls, owner: EvOwner) -> OwnerPrefs:
        dep = owner.departure_time
        return cls(
            min_soc=owner.min_soc,
            departure_time=None if dep is None else dep.strftime("%H:%M"),
            departure_soc=owner.departure_soc,
            time_zone=owner.time_zone,
        )


class StatePayload(_Out, frozen=True):
    """Retained on ``state``: online (``false`` by the last will and on a clean stop), identity,
    ratings, the grid functions with owner and settings, and the commands this charger accepts."""

    online: bool
    t: datetime
    software_version: str
    site_id: str
    evse_id: str
    mode: str | None = None
    devices: list[DeviceIdentity] = msgspec.field(default_factory=list)
    ratings: Ratings | None = None
    functions: dict[str, FunctionState] = msgspec.field(default_factory=dict)
    commands: list[str] = msgspec.field(default_factory=list)
    owner: OwnerPrefs | None = None


# --- telemetry -----------------------------------------------------------------------------------------


class Point(_Out, frozen=True):
    """One measuring point: P, Q, voltage (per unit of the nominal), frequency, and the reading's age."""

    p_w: float | None = None
    q_var: float | None = None
    v_pu: float | None = None
    f_hz: float | None = None
    age_s: float | None = None


class DeviceLink(_Out, frozen=True):
    """The Modbus link to one device."""

    name: str
    ok: bool
    error: str | None = None
    rtt_ms: float | None = None
    last_success_age_s: float | None = None


class LinkHealth(_Out, frozen=True):
    """Device links and the store-and-forward spool (records waiting, records dropped at its bound)."""

    devices: list[DeviceLink] = msgspec.field(default_factory=list)
    spool_backlog: int = 0
    dropped_telemetry: int = 0
    dropped_events: int = 0


class Session(_Out, frozen=True):
    """The plug-in session going on (AC and DC energy in and out of the EV, Wh). No vehicle key."""

    start: datetime
    e_charge_ac_wh: float
    e_discharge_ac_wh: float
    e_charge_dc_wh: float
    e_discharge_dc_wh: float
    soc_start: float | None = None
    soc_now: float | None = None
    limits: list[str] = msgspec.field(default_factory=list)

    @classmethod
    def of(cls, status: SessionStatus) -> Session:
        """The session's figures without its vehicle key."""
        return cls(
            start=utc(status.start_unix_s),
            e_charge_ac_wh=status.e_charge_ac_wh,
            e_discharge_ac_wh=status.e_discharge_ac_wh,
            e_charge_dc_wh=status.e_charge_dc_wh,
            e_discharge_dc_wh=status.e_discharge_dc_wh,
            soc_start=status.soc_start,
            soc_now=status.soc_now,
            limits=list(status.limits),
        )


class Telemetry(_Out, frozen=True):
    """One sample of the cycle: ``seq`` is the spool's sequence number (strictly increasing across
    restarts: deduplicate and order by it); ``meter`` is the site meter (``p_w`` = site import),
    ``inverter`` the power stage (``p_w`` > 0 discharge); ``soc`` is the EV's own figure, ``soh`` and
    ``sop_*_w`` (10 s, AC) the charger's estimate."""

    seq: int
    t: datetime
    state: str
    mode: str
    dispatch_source: str
    p_cmd_w: float
    q_cmd_var: float
    binding: list[str] = msgspec.field(default_factory=list)
    reasons: list[str] = msgspec.field(default_factory=list)
    meter: Point | None = None
    inverter: Point | None = None
    soc: float | None = None
    soh: float | None = None
    sop_charge_w: float | None = None
    sop_discharge_w: float | None = None
    energy_wh: dict[str, float] = msgspec.field(default_factory=dict)
    departure: str | None = None
    session: Session | None = None
    output_mismatch: str | None = None
    links: LinkHealth = msgspec.field(default_factory=LinkHealth)
    # The estimator's own figures (SoC and its sigma, capacity, resistance growth, SoP per horizon,
    # ageing); none identifies the vehicle. Absent without estimation or without an EV.
    battery: dict[str, float] | None = None


class Event(_Out, frozen=True):
    """Something that happened (``kind``: one of ``EVENT_KINDS``); ``seq`` as in Telemetry.

    ``detail`` never carries a vehicle identifier: keys naming one are removed on construction."""

    seq: int
    t: datetime
    kind: str
    detail: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        clean = without_vehicle_ids(self.detail)
        if clean != self.detail:
            self.detail.clear()
            self.detail.update(clean)


class TelemetryReplay(_Out, frozen=True):
    """Telemetry kept while the broker was unreachable, in sequence order."""

    records: list[Telemetry]
    replay: Literal[True] = True


class EventReplay(_Out, frozen=True):
    """Events kept while the broker was unreachable, in sequence order."""

    records: list[Event]
    replay: Literal[True] = True


class PlanEnvelope(_Out, frozen=True):
    """The session's flexibility (edge.planner.envelope): per step the AC power range (> 0 discharge),
    per instant (one more than the steps) the range of DC energy added to the pack since ``start``."""

    p_min_w: list[float]
    p_max_w: list[float]
    e_min_wh: list[float]
    e_max_wh: list[float]


class PlanCosts(_Out, frozen=True):
    """What the plan is expected to cost over its horizon (the tariff's currency; emissions in kg)."""

    total: float
    energy: float
    demand: float
    wear_cycle: float
    wear_c_rate: float
    wear_calendar: float
    emissions_kg: float
    emissions: float
    margin: float  # what holding the departure target over the margin window costs
    wear_per_kwh_cycled: float  # at 50 % depth


class PlanPayload(_Out, frozen=True):
    """Retained on ``<base>/plan``: the local planner's schedule (``status`` planned) or why there is
    none. Step k runs from ``start + k·step_s``; ``p_w`` per step (> 0 discharge), ``soc`` expected at
    each instant; the prices, the house's import without the EV and the emissions it planned on."""

    t: datetime
    status: Literal["planned", "none"]
    reasons: list[str]
    start: datetime | None = None
    step_s: float | None = None
    p_w: list[float] = msgspec.field(default_factory=list)
    soc: list[float] = msgspec.field(default_factory=list)
    import_price: list[float] = msgspec.field(default_factory=list)
    export_price: list[float] = msgspec.field(default_factory=list)
    base_import_w: list[float] = msgspec.field(default_factory=list)
    emissions_g_per_kwh: list[float] | None = None
    departure: datetime | None = None
    target_soc: float | None = None
    target_reachable: bool = True
    costs: PlanCosts | None = None
    envelope: PlanEnvelope | None = None
    mixed_integer: bool = False
    solve_s: float | None = None


# --- commands (inbound, strict) ------------------------------------------------------------------------


class _Command(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Every command: ``id`` (unique per command name) and when it was issued, with its time zone.

    A command issued longer ago than ``mqtt.command_max_age_s``, or more than 60 s in the future, is
    refused; so is one whose ``issued_at`` is not after, or whose ``id`` equals, the last one applied
    under its name."""

    id: DispatchId
    issued_at: ZonedTime


class DispatchCommand(_Command, frozen=True):
    """A P (and optional Q) set point, or a schedule of them, from ``start`` until ``expiry``; ``mode``
    switches the operating mode for its lifetime. ``start_window_s`` > 0 (a fleet-wide command) delays
    the start by a random draw within the window; the expiry is kept."""

    start: ZonedTime
    expiry: ZonedTime
    p_w: float | None = None
    q_var: float | None = None
    schedule: list[SchedulePoint] | None = None
    mode: OperationMode | None = None
    start_window_s: Annotated[float, Meta(ge=0.0, le=3600.0)] = 0.0


class ModeCommand(_Command, frozen=True):
    """The operating mode: until ``expiry`` (a dispatch without set points: idle, v1g or v2h), or
    without one, lasting (an override of ``operation.mode``)."""

    mode: OperationMode
    expiry: ZonedTime | None = None


class OwnerCommand(_Command, frozen=True):
    """The owner's wishes: reserve ``min_soc``, ``departure_time`` (local HH:MM; null clears it) and
    ``departure_soc`` (null clears it). A key left out keeps its value; at least one is given."""

    min_soc: Soc | UnsetType = UNSET
    departure_time: HhMm | UnsetType | None = UNSET
    departure_soc: Soc | UnsetType | None = UNSET


class GridCommand(_Command, frozen=True):
    """Grid-support curves (whole curves, as in ``[grid]``), only where ``mqtt.allow_grid_settings``
    and only for functions owned by the daemon or the inverter. Trips, ride-through and enter service
    are never settable remotely."""

    volt_var: VoltVar | None = None
    volt_watt: VoltWatt | None = None
    freq_droop: FreqDroop | None = None


class PlanInputsCommand(_Command, frozen=True):
    """Series for the local planner (prices, emissions, load and PV forecasts, the billing period's
    peak so far); each replaces the one given before and the planner plans again at once."""

    inputs: PlanInputs


COMMAND_TYPES: dict[str, type[_Command]] = {
    "dispatch": DispatchCommand,
    "mode": ModeCommand,
    "owner": OwnerCommand,
    "grid": GridCommand,
    "plan_inputs": PlanInputsCommand,
}


class Result(_Out, frozen=True):
    """The answer to one command: accepted, or rejected with a reason naming ``field``, the ``value``
    refused and what is ``allowed``. ``start``: the start a dispatch will use (after its window)."""

    id: str | None
    command: str
    status: Literal["accepted", "rejected"]
    t: datetime
    reason: str | None = None
    field: str | None = None
    value: Any = None
    allowed: str | None = None
    start: datetime | None = None
