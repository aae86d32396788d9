"""The typed settings model: one msgspec definition for the config file, MQTT changes and CLI edits.

Conventions (docs/conventions.md): P > 0 is export from the EV into the AC side (discharge), P < 0
charging; Q > 0 injection (over-excited). Units are in the field names. In ``grid`` the per-unit bases
are: voltage ``*_pu`` of ``commissioning.v_nominal_v``; active power ``p*_pu`` of ``inverter.p_rated_w``
(discharge side) and ``inverter.p_rated_charge_w`` (charging side, negative values); reactive power
``q*_pu`` of ``inverter.s_rated_va``. Frequencies in the grid section are absolute Hz (a 50 Hz profile
writes 51.5, a 60 Hz one 61.2), deadbands are Hz from nominal.

The grid section of a config file holds only overrides: the loader fills every other value from the
commissioned grid-code profile, so each ``grid`` struct below has no defaults of its own. ``Settings.grid``
is None until the profile (and its categories) is commissioned, which makes "no grid function without
a commissioned profile" visible to the type checker.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from drivers.config import BusConfig, DeviceConfig

Owner = Literal["inverter", "daemon", "off"]
PhaseTopology = Literal["single", "split", "three"]
NormalCategory = Literal["A", "B"]
AbnormalCategory = Literal["I", "II", "III"]
VoltageBasis = Literal["line_neutral", "line_line"]
TripVoltage = Literal["min_max_phase", "positive_sequence"]
VoltVarVoltage = Literal["average", "positive_sequence"]
Excitation = Literal["inject", "absorb"]
RideThroughMode = Literal["continuous", "mandatory", "permissive", "momentary_cessation", "cease"]
OperationMode = Literal["idle", "v1g", "v2g", "v2h", "schedule"]
Fallback = Literal["charge", "idle", "v2h"]
CapVsDroop = Literal["cap_wins", "droop_wins"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

# Sanity bounds only; the grid-code ranges live in the profile data.
VPu = Annotated[float, Meta(ge=0.0, le=2.0)]
PowerPu = Annotated[float, Meta(ge=-1.0, le=1.0)]
FreqHz = Annotated[float, Meta(ge=40.0, le=70.0)]
DeadbandHz = Annotated[float, Meta(ge=0.0, le=10.0)]
Seconds = Annotated[float, Meta(ge=0.0, le=100_000.0)]
Watts = Annotated[float, Meta(ge=0.0)]
Soc = Annotated[float, Meta(ge=0.0, le=1.0)]
Droop = Annotated[float, Meta(gt=0.0, le=1.0)]


class _Struct(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Strict base: unknown keys are errors, instances are immutable (shared across tasks)."""


# --- commissioning -------------------------------------------------------------------------------------


class Commissioning(_Struct, frozen=True):
    """What the installer sets once, locally; the daemon will not energize until it is complete.

    ``v_nominal_v`` is the nominal of the voltage the meter reports per measurement: line-to-neutral
    (``voltage_basis = "line_neutral"``, e.g. 230 or 120) or line-to-line (``"line_line"``, e.g. 240 for
    North-American split phase measured L1-L2).
    """

    profile: str | None = None
    normal_category: NormalCategory | None = None
    abnormal_category: AbnormalCategory | None = None
    v_nominal_v: Annotated[float, Meta(gt=0.0, le=1000.0)] | None = None
    f_nominal_hz: Literal[50, 60] | None = None
    phase_topology: PhaseTopology | None = None
    voltage_basis: VoltageBasis = "line_neutral"
    trip_voltage: TripVoltage = "min_max_phase"
    volt_var_voltage: VoltVarVoltage = "average"
    commissioned_by: str | None = None
    commissioned_at: datetime | None = None

    def missing(self) -> list[str]:
        """Field paths still to commission (categories only where the named profile defines them)."""
        from edge.settings.commissioning import missing_items

        return missing_items(self)

    def is_complete(self) -> bool:
        """True once every commissioning item is set."""
        return not self.missing()


# --- function ownership --------------------------------------------------------------------------------


class Functions(_Struct, frozen=True):
    """Who runs each grid function: ``inverter`` (certified, configured through SunSpec 70x and read
    back), ``daemon`` (computed here, written as P/Q setpoints) or ``off``. One field per function, so a
    function can never have two owners. Protection (trips, anti-islanding, enter service) can never be
    ``off``; ride-through and momentary cessation belong to whoever owns the trips. ``supervisory_backup``
    is not an owner: it only ever sends the stop command, with thresholds outside the owner's.
    See docs/safety.md.
    """

    frequency_droop: Owner = "off"
    volt_var: Owner = "off"
    volt_watt: Owner = "off"
    constant_pf: Owner = "off"
    constant_var: Owner = "off"
    watt_var: Owner = "off"
    voltage_trip: Owner = "inverter"
    frequency_trip: Owner = "inverter"
    anti_islanding: Owner = "inverter"
    enter_service: Owner = "inverter"
    export_cap: Owner = "daemon"
    supervisory_backup: bool = True
    supervisory_extra_delay_s: Annotated[float, Meta(ge=0.05, le=10.0)] = 0.5


REACTIVE_MODES = ("volt_var", "constant_pf", "constant_var", "watt_var")
PROTECTION_FUNCTIONS = ("voltage_trip", "frequency_trip", "anti_islanding", "enter_service")


# --- grid functions (every value from the profile unless overridden) ----------------------------------


class VoltVar(_Struct, frozen=True):
    """Volt-var (IEEE 1547 5.3.3 / EN 50549 Q(U)); Q in per-unit of S rated, + = injection."""

    v_ref_pu: VPu
    v1_pu: VPu
    v2_pu: VPu
    v3_pu: VPu
    v4_pu: VPu
    q1_pu: PowerPu
    q2_pu: PowerPu
    q3_pu: PowerPu
    q4_pu: PowerPu
    olrt_s: Seconds
    v_ref_auto: bool
    v_ref_tau_s: Seconds


class VoltWatt(_Struct, frozen=True):
    """Volt-watt (1547 5.4.2): a cap on P from p1_pu at v1_pu to p2_pu at v2_pu (p2_charging_pu if the
    EV can absorb: a negative value means the curve asks for charging at v2_pu)."""

    v1_pu: VPu
    v2_pu: VPu
    p1_pu: PowerPu
    p2_pu: PowerPu
    p2_charging_pu: PowerPu
    olrt_s: Seconds


class FreqDroop(_Struct, frozen=True):
    """Frequency droop (1547 6.5.2.7.2, EN 50549 LFSM-O/LFSM-U); k is per-unit frequency per per-unit
    power (0.05 = 5 %), p_min_pu may be negative (charging)."""

    db_of_hz: DeadbandHz
    db_uf_hz: DeadbandHz
    k_of: Droop
    k_uf: Droop
    olrt_s: Seconds
    p_min_pu: PowerPu


class ConstantPf(_Struct, frozen=True):
    """Constant power factor; ``inject`` = over-excited (Q > 0)."""

    pf: Annotated[float, Meta(gt=0.0, le=1.0)]
    excitation: Excitation


class ConstantVar(_Struct, frozen=True):
    """Constant reactive power, per-unit of S rated (+ = injection)."""

    q_pu: PowerPu


class WattVar(_Struct, frozen=True):
    """Watt-var (1547 5.3.4): discharge-side points p1..p3 > 0 and charging-side points < 0."""

    p1_pu: PowerPu
    p2_pu: PowerPu
    p3_pu: PowerPu
    q1_pu: PowerPu
    q2_pu: PowerPu
    q3_pu: PowerPu
    p1_charging_pu: PowerPu
    p2_charging_pu: PowerPu
    p3_charging_pu: PowerPu
    q1_charging_pu: PowerPu
    q2_charging_pu: PowerPu
    q3_charging_pu: PowerPu
    olrt_s: Seconds


class VoltageTripStage(_Struct, frozen=True):
    """One voltage protection stage: trip when beyond pickup_pu for clearing_s."""

    enabled: bool
    pickup_pu: VPu
    clearing_s: Seconds


class FrequencyTripStage(_Struct, frozen=True):
    """One frequency protection stage: trip when beyond pickup_hz for clearing_s."""

    enabled: bool
    pickup_hz: FreqHz
    clearing_s: Seconds


# The instantaneous stages of each must-trip table, in the order the tables list them.
VOLTAGE_TRIP_STAGES = ("ov1", "ov2", "uv1", "uv2")
FREQUENCY_TRIP_STAGES = ("of1", "of2", "uf1", "uf2")


class VoltageTrip(_Struct, frozen=True):
    """Must-trip table (1547 6.4.1; EN 50549 interface protection). ``ov_mean_10min`` is the EN 50549
    10-minute mean over-voltage stage (disabled in IEEE 1547)."""

    ov1: VoltageTripStage
    ov2: VoltageTripStage
    uv1: VoltageTripStage
    uv2: VoltageTripStage
    ov_mean_10min: VoltageTripStage


class FrequencyTrip(_Struct, frozen=True):
    """Must-trip table (1547 6.5.1; EN 50549 interface protection)."""

    of1: FrequencyTripStage
    of2: FrequencyTripStage
    uf1: FrequencyTripStage
    uf2: FrequencyTripStage


class VoltageBand(_Struct, frozen=True):
    """A voltage ride-through region. ``t_min_s`` None means no limit (continuous) or no requirement
    (cease); the minimum time is ``t_min_s + t_slope_s_per_pu * (v - v_low_pu)``."""

    v_low_pu: VPu
    v_high_pu: VPu
    mode: RideThroughMode
    t_min_s: Seconds | None = None
    t_slope_s_per_pu: float = 0.0


class FrequencyBand(_Struct, frozen=True):
    """A frequency ride-through region (absolute Hz)."""

    f_low_hz: FreqHz
    f_high_hz: FreqHz
    mode: RideThroughMode
    t_min_s: Seconds | None = None


class RideThrough(_Struct, frozen=True):
    """Ride-through regions, momentary cessation, ROCOF and phase-jump ride-through."""

    voltage: list[VoltageBand]
    frequency: list[FrequencyBand]
    momentary_cessation: bool
    mc_low_pu: VPu
    mc_high_pu: VPu
    rocof_hz_per_s: Annotated[float, Meta(ge=0.0, le=20.0)]
    phase_jump_multi_phase_deg: Annotated[float, Meta(ge=0.0, le=180.0)]
    phase_jump_single_phase_deg: Annotated[float, Meta(ge=0.0, le=180.0)]


class EnterService(_Struct, frozen=True):
    """Enter-service window and ramp (1547 4.10). ``randomized_delay_s`` > 0 replaces the ramp."""

    v_low_pu: VPu
    v_high_pu: VPu
    f_low_hz: FreqHz
    f_high_hz: FreqHz
    delay_s: Seconds
    ramp_s: Seconds
    randomized_delay_s: Seconds


class Ramp(_Struct, frozen=True):
    """Ramp rates in per-unit of rated power per second: normal changes, and a non-protective stop
    (schedule end, owner stop). Protective stops do not ramp."""

    normal_pu_per_s: Annotated[float, Meta(gt=0.0, le=100.0)]
    stop_pu_per_s: Annotated[float, Meta(gt=0.0, le=100.0)]


class Grid(_Struct, frozen=True):
    """All grid-function settings, resolved from the profile plus the site's overrides."""

    volt_var: VoltVar
    volt_watt: VoltWatt
    freq_droop: FreqDroop
    constant_pf: ConstantPf
    constant_var: ConstantVar
    watt_var: WattVar
    voltage_trip: VoltageTrip
    frequency_trip: FrequencyTrip
    ride_through: RideThrough
    enter_service: EnterService
    ramp: Ramp


# --- site, equipment, owner, services ------------------------------------------------------------------


class Site(_Struct, frozen=True):
    """The site's interconnection terms (local only), and the tuning of the protection kernel's export
    cap, site-meter checks and passive anti-islanding detectors at this site (docs/protection.md).

    ``p_site_import_w`` > 0 is import from the grid; ``min_import_w`` > 0 turns on the supervisory
    reverse-power check (stop if import drops below it for ``min_import_s``). The tuning values default
    to the kernel's own defaults (``edge.control.protect_params.ProtectParams``) and have the kernel's
    ranges; when its parameters are packed the kernel also checks that each islanding detector's time
    plus the measured actuation latency stays within 2 s.
    """

    non_export: bool = True
    export_cap_w: Watts = 0.0
    export_margin_w: Watts = 100.0
    min_import_w: Watts = 0.0
    # Import below min_import_w for this long while discharging trips: an island shows ~0 W at the
    # meter. Kept short so that, with the actuation latency, output ceases within 2 s (1547 clause 8.1).
    min_import_s: Annotated[float, Meta(ge=0.0, le=2.0)] = 1.0
    # ROCOF detector: frequency difference taken over at least rocof_window_s (the averaging window is
    # UNCONFIRMED in the standard), beyond grid.ride_through.rocof_hz_per_s for rocof_pickup_s, trips.
    # Longer rides through more noise but detects islands later; window + pickup <= 2 s (clause 8.1).
    rocof_window_s: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.2
    rocof_pickup_s: Annotated[float, Meta(ge=0.0, le=1.5)] = 0.3
    # Active anti-islanding where functions.anti_islanding = 'daemon' (docs/protection.md): while
    # discharging, Q alternates by +/- island_dither_pu x inverter.s_rated_va every
    # island_dither_half_s (at least the actuation latency: the response must show within a half);
    # island_dither_halves successive half periods in which the frequency moved against Q by more than
    # island_dither_df_hz trip. 0 = passive only, allowed only with the minimum-import check. 3 halves
    # at least: a 1547.1 frequency pulse moves two.
    island_dither_pu: Annotated[float, Meta(ge=0.0, le=0.05)] = 0.005
    island_dither_half_s: Annotated[float, Meta(ge=0.05, le=1.0)] = 0.25
    island_dither_df_hz: Annotated[float, Meta(ge=0.02, le=1.0)] = 0.04
    island_dither_halves: Annotated[int, Meta(ge=3, le=10)] = 3
    stale_meter_s: Annotated[float, Meta(gt=0.0, le=60.0)] = 2.0
    # How long before its publication a meter value was measured (the meter's averaging window): the
    # load estimate pairs the value with the inverter's power over this window. 0 = an instantaneous
    # value; set it for a meter that publishes e.g. 1 s averages.
    meter_window_s: Annotated[float, Meta(ge=0.0, le=5.0)] = 0.0
    # Frozen meter (stop discharge while the cap applies): the value stays within meter_frozen_tol_w
    # while the inverter's power moves by meter_frozen_delta_w for meter_frozen_s. A meter with a
    # counter (its energy registers, or a map's e_counter_wh point) that has been seen moving is alive
    # while it moves and frozen once its own power reading says 1.5 of its steps went through without
    # it moving (meter_alive_counter = false ignores the counter), and while discharging once its
    # counter has not moved for meter_counter_stall_max_s with its value within
    # meter_frozen_noise_floor_w (the bound on the wait for a coarse counter or a low reading; a live
    # meter whose counter moves more rarely pays with a brief stop of discharge). A meter without a
    # counter is frozen when its value does not change at all for meter_frozen_still_s while
    # discharging (0 = off), but only while it has shown changes smaller than
    # meter_frozen_noise_floor_w: a coarser meter reads a steady load as one value for minutes.
    # docs/protection.md.
    meter_frozen_tol_w: Annotated[float, Meta(ge=0.0, le=10_000.0)] = 0.0
    meter_frozen_delta_w: Annotated[float, Meta(ge=1.0, le=100_000.0)] = 300.0
    meter_frozen_s: Annotated[float, Meta(ge=0.0, le=60.0)] = 1.0
    meter_frozen_still_s: Annotated[float, Meta(ge=0.0, le=3600.0)] = 5.0
    meter_frozen_noise_floor_w: Annotated[float, Meta(ge=0.0, le=10_000.0)] = 50.0
    meter_counter_stall_max_s: Annotated[float, Meta(ge=5.0, le=600.0)] = 45.0
    meter_alive_counter: bool = True
    # Inverter power above this counts as discharging (the backstop, minimum-import and frozen-meter
    # checks act only then): above the stage's idle reading, well below any real discharge.
    discharge_detect_w: Annotated[float, Meta(ge=0.0, le=10_000.0)] = 50.0
    export_backstop_s: Annotated[float, Meta(gt=0.0, le=60.0)] = 2.0
    # After the backstop stops discharge it holds this long (and until the export is gone), so a site
    # that keeps exporting does not cycle the charger every export_backstop_s.
    export_backstop_hold_s: Annotated[float, Meta(ge=0.0, le=3600.0)] = 60.0
    # The command's bound falls at once on a load drop and rises at most this fast on a load rise:
    # a slower rise exports less when a load switches off again right away (e.g. a cycling hob).
    export_rise_w_per_s: Annotated[float, Meta(ge=1.0, le=1e7)] = 5000.0
    # Feedback trim (corrects a biased inverter measurement): integral gain on the meter's import error,
    # the error and the trim clamped to export_trim_max_w so transients barely move it; it integrates
    # only while the inverter's power stayed within export_trim_steady_tol_w over the meter sample's
    # window and the load estimate moved no more than that (else it would integrate the timing
    # mismatch between meter and inverter, or a load step the bound already answers).
    export_trim_gain_per_s: Annotated[float, Meta(ge=0.0, le=5.0)] = 0.5
    export_trim_max_w: Annotated[float, Meta(ge=0.0, le=100_000.0)] = 500.0
    export_trim_steady_tol_w: Annotated[float, Meta(ge=0.0, le=100_000.0)] = 150.0
    cap_vs_droop: CapVsDroop = "cap_wins"


class Inverter(_Struct, frozen=True):
    """Nameplate ratings of the charger's power stage (AC side)."""

    p_rated_w: Annotated[float, Meta(gt=0.0)]
    p_rated_charge_w: Annotated[float, Meta(gt=0.0)]
    s_rated_va: Annotated[float, Meta(gt=0.0)]
    q_max_inj_var: Watts
    q_max_abs_var: Watts
    reduced_q_at_low_p: bool = True
    # First-order time constant of the stage's output after a setpoint write (measured at
    # commissioning; the bench's stage: 0.1 s). Kernel I shortens its response filters by it so that
    # the 1547 open-loop response times hold at the terminals, not only in the setpoint.
    response_tau_s: Annotated[float, Meta(ge=0.0, le=10.0)] = 0.1


class EvOwner(_Struct, frozen=True):
    """The EV owner's wishes: a reserve never discharged below, and an optional departure target."""

    min_soc: Soc = 0.3
    departure_soc: Soc | None = None
    departure_time: time | None = None
    # An IANA zone (e.g. "Europe/Berlin") for departure_time; None: the system's (/etc/localtime).
    time_zone: str | None = None


class Battery(_Struct, frozen=True):
    """The EV pack as the daemon's estimator models it (docs/estimation.md).

    ``profile`` names a battery profile in ``config/batteries`` (the cell: OCV, RC, limits);
    ``series``/``parallel`` give the pack layout where it differs from the profile's. The efficiencies
    turn DC power limits into AC-side ones. ``sop_horizon_s`` picks the SoP horizon the kernel is fed.
    """

    estimate: bool = True
    profile: str = "nmc-lgm50"
    series: Annotated[int, Meta(ge=1, le=1000)] | None = None
    parallel: Annotated[int, Meta(ge=1, le=1000)] | None = None
    charge_efficiency: Annotated[float, Meta(ge=0.5, le=1.0)] = 0.94
    discharge_efficiency: Annotated[float, Meta(ge=0.5, le=1.0)] = 0.95
    sop_horizon_s: Annotated[float, Meta(gt=0.0, le=3600.0)] = 10.0


class Mqtt(_Struct, frozen=True):
    """MQTT 5 link to the aggregator (docs/mqtt.md). Secrets live in files named here, never in this file.

    Secure by default: ``tls`` verifies the broker against ``ca_file`` and its host name; a client
    certificate (``cert_file`` + ``key_file``) gives mutual TLS; ``password_file`` holds the password
    of ``username`` (one line, readable by the service user only). A password is never sent in
    plaintext except to a loopback broker. ``port`` None: 8883 with TLS, 1883 without.

    Topics: ``<topic_prefix>/<site_id>/<evse_id>/...``; ``topic_prefix`` is 1 to 5 levels, the ids one
    level each, of letters, digits and ``_ . -`` (no wildcards, no leading ``$``, no empty level).
    ``client_id`` None: ``v2g-edge-<site_id>-<evse_id>``; else 1 to 64 of letters, digits and ``_ . : -``.

    Store-and-forward: while the broker is unreachable telemetry and events are kept (up to
    ``spool_max_mb``) and replayed on reconnect in batches of ``replay_batch`` records, at most
    ``replay_rate_msgs_s`` messages a second and ``inflight_max`` unacknowledged publishes; the replay
    starts at a random moment within ``replay_start_jitter_s`` of connecting (a fleet reconnecting at
    once spreads its backlogs).
    Reconnects back off from ``reconnect_min_s`` to ``reconnect_max_s`` with jitter. A certificate
    expiring within ``cert_warn_days`` is warned about. A command issued more than
    ``command_max_age_s`` ago is refused as expired; grid-support settings are accepted from the
    aggregator only with ``allow_grid_settings``. ``home_assistant`` publishes Home Assistant MQTT
    discovery under ``home_assistant_prefix``.
    """

    enabled: bool = False
    host: str = "localhost"
    port: Annotated[int, Meta(ge=1, le=65535)] | None = None
    tls: bool = True
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password_file: str | None = None
    client_id: str | None = None
    topic_prefix: str = "v2g"
    site_id: str = "site"
    evse_id: str = "evse"
    keepalive_s: Annotated[int, Meta(ge=5, le=3600)] = 30
    telemetry_period_s: Annotated[float, Meta(ge=0.1, le=60.0)] = 1.0
    spool_max_mb: Annotated[float, Meta(ge=1.0, le=4096.0)] = 64.0
    replay_batch: Annotated[int, Meta(ge=1, le=1000)] = 100
    replay_rate_msgs_s: Annotated[float, Meta(ge=0.1, le=1000.0)] = 5.0
    replay_start_jitter_s: Annotated[float, Meta(ge=0.0, le=600.0)] = 10.0
    inflight_max: Annotated[int, Meta(ge=1, le=1000)] = 20
    reconnect_min_s: Annotated[float, Meta(ge=0.01, le=600.0)] = 1.0
    reconnect_max_s: Annotated[float, Meta(ge=0.1, le=3600.0)] = 60.0
    cert_warn_days: Annotated[int, Meta(ge=0, le=3650)] = 30
    command_max_age_s: Annotated[float, Meta(ge=10.0, le=86_400.0)] = 300.0
    allow_grid_settings: bool = False
    home_assistant: bool = False
    home_assistant_prefix: str = "homeassistant"

    @property
    def resolved_port(self) -> int:
        """The broker port: ``port``, else the MQTT default for the transport (8883 TLS, 1883 plain)."""
        if self.port is not None:
            return self.port
        return 8883 if self.tls else 1883

    @property
    def resolved_client_id(self) -> str:
        """The MQTT client id: ``client_id``, else one unique per charger built from the topic ids."""
        return self.client_id or f"v2g-edge-{self.site_id}-{self.evse_id}"


class Operation(_Struct, frozen=True):
    """How the charger is used: one mode at a time, and what it does without its aggregator.

    Modes: ``idle`` (P = 0; grid-support functions still act), ``v1g`` (managed charging, never
    discharge: the dispatch's charge power, else charge toward the owner's target), ``v2g`` (follow
    the dispatch, export up to the site's cap), ``v2h`` (serve the home, never export), ``schedule``
    (follow a time series of set points given in advance). A dispatch (MQTT, ``dispatch_file``,
    ``v2gctl dispatch``) may switch the mode for its lifetime. An aggregator's dispatch is followed
    only while the aggregator was heard within ``dispatch_timeout_s``; otherwise ``fallback``:
    ``charge`` (no discharge, charge toward the owner's departure target), ``idle``, or ``v2h``
    (discharging without the aggregator: opt-in).
    """

    mode: OperationMode = "v2h"
    dispatch_timeout_s: Annotated[float, Meta(ge=1.0, le=86_400.0)] = 300.0
    fallback: Fallback = "charge"
    # A local dispatch (a site without an aggregator, the bench); default: dispatch.json in the state dir.
    dispatch_file: str | None = None


class TouRate(_Struct, frozen=True):
    """One row of a time-of-use table: from ``start`` (local time of day, ``owner.time_zone``) until
    the next row's start (the last row runs to the first one's start on the next day)."""

    start: time
    price_per_kwh: Annotated[float, Meta(ge=-10.0, le=10.0)]


def _flat(price_per_kwh: float) -> list[TouRate]:
    return [TouRate(start=time(0, 0), price_per_kwh=price_per_kwh)]


class Planner(_Struct, frozen=True):
    """The local planner (docs/planner.md): a schedule for ``operation.mode = "schedule"``, re-planned
    every ``replan_s`` and on every new input, over ``horizon_h`` at ``step_s`` steps.

    Tariffs are time-of-use tables in the owner's local time (prices per kWh, one currency); a price
    series from ``inputs_file`` or the MQTT ``plan_inputs`` command replaces them where it covers.
    ``demand_charge_per_kw``: the price of the billing period's peak import. Emissions count with
    ``emissions_weight_per_kg`` (currency per kg CO2) when a marginal-emissions series is given.

    Wear (``edge.planner.wear``): ``battery_cost_per_kwh`` is the value of one kWh of the pack's
    capacity; a cycle of depth d uses d^``cycle_depth_exponent`` / ``cycle_life`` of its life; calendar
    aging at ``temperature_c`` for a pack ``pack_age_days`` old, with end of life at
    ``end_of_life_fade`` of the capacity lost. The charge and discharge efficiencies are
    ``battery.charge_efficiency`` and ``battery.discharge_efficiency``.

    ``departure_margin_s``: the departure target also holds if the owner leaves up to this much
    earlier than ``owner.departure_time`` (the plan shows what that costs).
    """

    enabled: bool = False
    horizon_h: Annotated[float, Meta(ge=1.0, le=48.0)] = 24.0
    step_s: Literal[300, 900] = 900
    replan_s: Annotated[float, Meta(ge=60.0, le=3600.0)] = 900.0
    import_tariff: list[TouRate] = msgspec.field(default_factory=lambda: _flat(0.30))
    export_tariff: list[TouRate] = msgspec.field(default_factory=lambda: _flat(0.08))
    demand_charge_per_kw: Annotated[float, Meta(ge=0.0, le=1000.0)] = 0.0
    emissions_weight_per_kg: Annotated[float, Meta(ge=0.0, le=100.0)] = 0.0
    battery_cost_per_kwh: Annotated[float, Meta(ge=0.0, le=10_000.0)] = 100.0
    cycle_life: Annotated[float, Meta(ge=100.0, le=100_000.0)] = 1908.0
    cycle_depth_exponent: Annotated[float, Meta(ge=1.0, le=4.0)] = 2.03
    temperature_c: Annotated[float, Meta(ge=-30.0, le=60.0)] = 20.0
    pack_age_days: Annotated[float, Meta(ge=1.0, le=10_000.0)] = 730.0
    end_of_life_fade: Annotated[float, Meta(gt=0.0, le=0.5)] = 0.2
    departure_margin_s: Annotated[float, Meta(ge=0.0, le=6 * 3600.0)] = 3600.0
    # JSON series (edge.planner.inputs.PlanInputs): prices, emissions, load and PV forecasts.
    inputs_file: str | None = None

    def __post_init__(self) -> None:
        for name in ("import_tariff", "export_tariff"):
            rows: list[TouRate] = getattr(self, name)
            if not rows:
                raise ValueError(
                    f"planner.{name} is empty: give at least one row (start 00:00 for a flat price)"
                )
            for k in range(1, len(rows)):
                if rows[k].start <= rows[k - 1].start:
                    raise ValueError(
                        f"planner.{name}[{k}].start {rows[k].start.isoformat()} is not after the row before"
                        f" ({rows[k - 1].start.isoformat()}): give the rows in increasing time of day"
                    )
            for k, row in enumerate(rows):
                if row.start.tzinfo is not None:
                    raise ValueError(
                        f"planner.{name}[{k}].start {row.start.isoformat()}: a local time of day without offset"
                    )


class Daemon(_Struct, frozen=True):
    """The control loop: ``cycle_s`` 0.1 s suits Modbus devices (a SunSpec read/write pair over RS-485
    takes tens of ms); protection stays in the inverter, so the loop need not be faster."""

    cycle_s: Annotated[float, Meta(ge=0.01, le=1.0)] = 0.1
    # Command-to-output latency (the grid condition's measurement to the stage ceasing): the device
    # poll period, one cycle, the Modbus write and the stage's stop. Protection owned by the daemon
    # fires this much before the clearing time, and owns no trip stage clearing faster than this (1547's
    # 0.16 s stages need a faster path than the default). Default: measured p99 on the bench at
    # cycle_s = 0.1 (docs/benchmarks.md, loop); commissioning measures it on the site.
    actuation_latency_s: Annotated[float, Meta(ge=0.0, le=2.0)] = 0.2
    state_dir: str = "/var/lib/v2g-edge"
    log_level: LogLevel = "INFO"


class Settings(_Struct, frozen=True):
    """The whole configuration.

    ``buses`` and ``devices`` are the drivers' own structs (``drivers.config``): one definition for the
    file, the schema and the driver layer; their cross references are checked in ``checks.py``.
    """

    commissioning: Commissioning = msgspec.field(default_factory=Commissioning)
    functions: Functions = msgspec.field(default_factory=Functions)
    site: Site = msgspec.field(default_factory=Site)
    inverter: Inverter | None = None
    owner: EvOwner = msgspec.field(default_factory=EvOwner)
    battery: Battery = msgspec.field(default_factory=Battery)
    operation: Operation = msgspec.field(default_factory=Operation)
    mqtt: Mqtt = msgspec.field(default_factory=Mqtt)
    daemon: Daemon = msgspec.field(default_factory=Daemon)
    planner: Planner = msgspec.field(default_factory=Planner)
    grid: Grid | None = None
    buses: dict[str, BusConfig] = msgspec.field(default_factory=dict)
    devices: dict[str, DeviceConfig] = msgspec.field(default_factory=dict)
