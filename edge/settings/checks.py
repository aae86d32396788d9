"""Cross-field rules of the settings model that hold for every profile.

Function ownership (one reactive mode; protection never off), the voltages the kernels can measure, site
export terms, curve ordering, the inverter's reactive capability against the category and against every
Q point, and the owner's SoC window.
The profile's own ranges are in ranges.py.
"""

from __future__ import annotations

import ipaddress
import math
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from drivers.config import validate as validate_drivers
from drivers.errors import DriverError
from edge.settings.errors import SettingsError
from edge.settings.model import PROTECTION_FUNCTIONS, REACTIVE_MODES, Grid, Inverter, Settings
from edge.settings.profiles import ResolvedProfile


def _order(path_a: str, a: float, path_b: str, b: float, strict: bool = True) -> None:
    """Require a < b (or a <= b): the error names b, its value and the bound a sets."""
    if a < b or (not strict and a <= b):
        return
    rel = ">" if strict else ">="
    raise SettingsError(path_b, b, f"must be {rel} {path_a} ({a:g})", f"{rel} {a:g}")


def check_functions(settings: Settings) -> None:
    """Ownership rules: at most one reactive mode; protection never off; a non-export site has a cap owner."""
    f = settings.functions
    active = {m: getattr(f, m) for m in REACTIVE_MODES if getattr(f, m) != "off"}
    if len(active) > 1:
        raise SettingsError(
            "functions",
            active,
            "only one reactive-power mode may be active (two reactive modes fight)",
            "at most one of " + ", ".join(REACTIVE_MODES),
        )
    for name in PROTECTION_FUNCTIONS:
        if getattr(f, name) == "off":
            raise SettingsError(
                f"functions.{name}",
                "off",
                "protection is never turned off (the certified inverter's protection stays on)",
                "inverter, daemon",
            )
    if settings.site.non_export and f.export_cap == "off":
        raise SettingsError(
            "functions.export_cap", "off", "a non-export site needs an export-cap owner", "inverter, daemon"
        )


# The applicable voltage each kernel can compute from what the drivers read (per-phase magnitudes).
_VOLTAGE_MEASURES = {"trip_voltage": "min_max_phase", "volt_var_voltage": "average"}


def check_voltage_measures(settings: Settings) -> None:
    """Refuse the positive-sequence voltage: the drivers read phase magnitudes only (meters line-neutral,
    the power stage one voltage), no angles and no line-line voltages, so no kernel can compute it and
    the setting would be silently ignored."""
    comm = settings.commissioning
    for name, allowed in _VOLTAGE_MEASURES.items():
        value = getattr(comm, name)
        if value != allowed:
            raise SettingsError(
                f"commissioning.{name}",
                value,
                "not supported: the positive-sequence voltage needs phase angles or line-line voltages, "
                "which no driver reads (they read line-neutral magnitudes), so no kernel computes it",
                f'"{allowed}"',
            )


# IEEE 1547 clause 8.1: cease to energize within 2 s of island formation.
ISLAND_CEASE_S = 2.0


def check_site(settings: Settings) -> None:
    """A non-export site has a zero export cap; the ROCOF detector can cease within 2 s."""
    site = settings.site
    if site.export_cap_w > 0 and site.non_export:
        raise SettingsError(
            "site.export_cap_w", site.export_cap_w, "no export allowed while site.non_export = true", "0"
        )
    if site.rocof_window_s + site.rocof_pickup_s > ISLAND_CEASE_S:
        raise SettingsError(
            "site.rocof_pickup_s",
            site.rocof_pickup_s,
            f"with site.rocof_window_s = {site.rocof_window_s:g} the ROCOF detector would not cease to "
            f"energize within {ISLAND_CEASE_S:g} s of island formation (IEEE 1547 clause 8.1)",
            f"0 … {ISLAND_CEASE_S - site.rocof_window_s:g}",
        )


def check_owner(settings: Settings) -> None:
    """Departure target above the reserve; a departure time needs a target SoC."""
    owner = settings.owner
    if owner.time_zone is not None:
        try:
            ZoneInfo(owner.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(
                "owner.time_zone",
                owner.time_zone,
                "not a known time zone",
                'an IANA name, e.g. "Europe/Berlin"',
            ) from None
    if owner.departure_time is not None and owner.departure_time.tzinfo is not None:
        raise SettingsError(
            "owner.departure_time",
            str(owner.departure_time),
            "a local time of day, without an offset",
            "HH:MM:SS",
        )
    if owner.departure_time is not None and owner.departure_soc is None:
        raise SettingsError("owner.departure_soc", None, "a departure time needs a departure SoC", "0 … 1")
    if owner.departure_soc is not None and owner.departure_soc < owner.min_soc:
        raise SettingsError(
            "owner.departure_soc",
            owner.departure_soc,
            "below the reserve owner.min_soc",
            f"{owner.min_soc:g} … 1",
        )


def check_inverter(inv: Inverter) -> None:
    """Ratings consistent with the apparent-power rating."""
    for name in ("p_rated_w", "p_rated_charge_w", "q_max_inj_var", "q_max_abs_var"):
        value = getattr(inv, name)
        if value > inv.s_rated_va:
            raise SettingsError(
                f"inverter.{name}", value, "exceeds inverter.s_rated_va", f"0 … {inv.s_rated_va:g}"
            )


# One topic level of the link's tree, and a client id: a conservative subset every broker and ACL accepts.
_TOPIC_LEVEL = re.compile(r"[A-Za-z0-9_.-]+")
_CLIENT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_LEVEL_CHARS = "letters, digits, _ . -"
ID_MAX_CHARS = 64


def _topic_problem(text: str, max_levels: int) -> str | None:
    """Why ``text`` is not a publish-topic prefix of at most ``max_levels`` levels, or None."""
    if "\0" in text:
        return "contains a NUL character"
    if "#" in text or "+" in text:
        return "contains an MQTT wildcard (# or +)"
    if text.startswith("$"):
        return "starts with $ (topics reserved for the broker)"
    levels = text.split("/")
    if len(levels) > max_levels:
        return f"has {len(levels)} topic levels"
    if any(not level for level in levels):
        return "has an empty topic level (a leading, trailing or double /)"
    if any(len(level) > ID_MAX_CHARS for level in levels):
        return f"has a topic level longer than {ID_MAX_CHARS} characters"
    bad = next((c for level in levels for c in level if not _TOPIC_LEVEL.fullmatch(c)), None)
    if bad is not None:
        return f"contains {bad!r}"
    return None


def _is_loopback(host: str) -> bool:
    """True for a host name or address that never leaves this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_mqtt(settings: Settings) -> None:
    """The MQTT link's rules: topic and client id syntax; TLS files only with TLS, a CA with it, a
    client certificate with its key; a password file with its user name and never in plaintext to
    another machine; back-off bounds in order. Files themselves are checked by edge.link.config."""
    m = settings.mqtt
    for name, max_levels in (
        ("topic_prefix", 5),
        ("site_id", 1),
        ("evse_id", 1),
        ("home_assistant_prefix", 5),
    ):
        value = getattr(m, name)
        problem = _topic_problem(value, max_levels)
        if problem is not None:
            levels = (
                "one topic level" if max_levels == 1 else f"1 to {max_levels} topic levels separated by /"
            )
            raise SettingsError(
                f"mqtt.{name}", value, problem, f"{levels} of 1 to {ID_MAX_CHARS} {_LEVEL_CHARS}"
            )
    if m.client_id is not None and not _CLIENT_ID.fullmatch(m.client_id):
        raise SettingsError(
            "mqtt.client_id",
            m.client_id,
            "not a client id this link uses (omit it for v2g-edge-<site_id>-<evse_id>)",
            f"1 to {ID_MAX_CHARS} letters, digits, _ . : -",
        )
    if not m.tls:
        for name in ("ca_file", "cert_file", "key_file"):
            if getattr(m, name) is not None:
                raise SettingsError(f"mqtt.{name}", getattr(m, name), "set only with mqtt.tls = true")
    if (m.cert_file is None) != (m.key_file is None):
        name = "key_file" if m.key_file is None else "cert_file"
        raise SettingsError(
            f"mqtt.{name}",
            getattr(m, name),
            "mqtt.cert_file and mqtt.key_file go together",
            "both or neither",
        )
    if m.password_file is not None and m.username is None:
        raise SettingsError(
            "mqtt.username",
            None,
            "mqtt.password_file is set: the password needs its user name",
            "a user name",
        )
    if m.username is not None and not m.username:
        raise SettingsError("mqtt.username", m.username, "empty", "a user name, or omit it")
    if m.password_file is not None and not m.tls and not _is_loopback(m.host):
        raise SettingsError(
            "mqtt.password_file",
            m.password_file,
            f"a password would cross the network in plaintext to {m.host} (mqtt.tls = false)",
            "mqtt.tls = true, or a loopback broker (localhost, 127.0.0.1, ::1)",
        )
    _order("mqtt.reconnect_min_s", m.reconnect_min_s, "mqtt.reconnect_max_s", m.reconnect_max_s, strict=False)
    if not m.enabled:
        return
    if not m.host:
        raise SettingsError("mqtt.host", m.host, "empty", "the broker's host name or address")
    if m.tls and m.ca_file is None:
        raise SettingsError(
            "mqtt.ca_file",
            None,
            "mqtt.tls = true needs the CA that signed the broker's certificate",
            "a PEM file path (or mqtt.tls = false for a plaintext broker)",
        )


def check_grid_order(grid: Grid, f_nominal_hz: float) -> None:
    """Curves monotonic, trip stages nested, windows around nominal, bands well formed."""
    vv = grid.volt_var
    _order("grid.volt_var.v1_pu", vv.v1_pu, "grid.volt_var.v2_pu", vv.v2_pu)
    _order("grid.volt_var.v2_pu", vv.v2_pu, "grid.volt_var.v3_pu", vv.v3_pu, strict=False)
    _order("grid.volt_var.v3_pu", vv.v3_pu, "grid.volt_var.v4_pu", vv.v4_pu)
    vw = grid.volt_watt
    _order("grid.volt_watt.v1_pu", vw.v1_pu, "grid.volt_watt.v2_pu", vw.v2_pu)
    wv = grid.watt_var
    _order("grid.watt_var.p1_pu", wv.p1_pu, "grid.watt_var.p2_pu", wv.p2_pu)
    _order("grid.watt_var.p2_pu", wv.p2_pu, "grid.watt_var.p3_pu", wv.p3_pu)
    _order(
        "grid.watt_var.p3_charging_pu", wv.p3_charging_pu, "grid.watt_var.p2_charging_pu", wv.p2_charging_pu
    )
    _order(
        "grid.watt_var.p2_charging_pu", wv.p2_charging_pu, "grid.watt_var.p1_charging_pu", wv.p1_charging_pu
    )
    vt = grid.voltage_trip
    if vt.ov1.enabled and vt.ov2.enabled:
        _order(
            "grid.voltage_trip.ov1.pickup_pu",
            vt.ov1.pickup_pu,
            "grid.voltage_trip.ov2.pickup_pu",
            vt.ov2.pickup_pu,
            False,
        )
    if vt.uv1.enabled and vt.uv2.enabled:
        _order(
            "grid.voltage_trip.uv2.pickup_pu",
            vt.uv2.pickup_pu,
            "grid.voltage_trip.uv1.pickup_pu",
            vt.uv1.pickup_pu,
            False,
        )
    ft = grid.frequency_trip
    for name in ("of1", "of2"):
        stage = getattr(ft, name)
        if stage.enabled:
            _order("f_nominal_hz", f_nominal_hz, f"grid.frequency_trip.{name}.pickup_hz", stage.pickup_hz)
    for name in ("uf1", "uf2"):
        stage = getattr(ft, name)
        if stage.enabled:
            _order(f"grid.frequency_trip.{name}.pickup_hz", stage.pickup_hz, "f_nominal_hz", f_nominal_hz)
    if ft.of1.enabled and ft.of2.enabled:
        _order(
            "grid.frequency_trip.of1.pickup_hz",
            ft.of1.pickup_hz,
            "grid.frequency_trip.of2.pickup_hz",
            ft.of2.pickup_hz,
            False,
        )
    if ft.uf1.enabled and ft.uf2.enabled:
        _order(
            "grid.frequency_trip.uf2.pickup_hz",
            ft.uf2.pickup_hz,
            "grid.frequency_trip.uf1.pickup_hz",
            ft.uf1.pickup_hz,
            False,
        )
    es = grid.enter_service
    _order("grid.enter_service.v_low_pu", es.v_low_pu, "grid.enter_service.v_high_pu", es.v_high_pu)
    _order("grid.enter_service.f_low_hz", es.f_low_hz, "f_nominal_hz", f_nominal_hz, strict=False)
    _order("f_nominal_hz", f_nominal_hz, "grid.enter_service.f_high_hz", es.f_high_hz, strict=False)
    for i, vb in enumerate(grid.ride_through.voltage):
        _order(
            f"grid.ride_through.voltage[{i}].v_low_pu",
            vb.v_low_pu,
            f"grid.ride_through.voltage[{i}].v_high_pu",
            vb.v_high_pu,
        )
    for i, fb in enumerate(grid.ride_through.frequency):
        _order(
            f"grid.ride_through.frequency[{i}].f_low_hz",
            fb.f_low_hz,
            f"grid.ride_through.frequency[{i}].f_high_hz",
            fb.f_high_hz,
        )


def check_reactive_capability(grid: Grid, inv: Inverter, profile: ResolvedProfile) -> None:
    """The inverter meets the category's minimum capability, and no Q point asks for more than it has."""
    inj = inv.q_max_inj_var / inv.s_rated_va
    absorb = inv.q_max_abs_var / inv.s_rated_va
    need = profile.reactive_capability
    if need is not None:
        for name, have, want in (
            ("q_max_inj_var", inj, need.inject_pu),
            ("q_max_abs_var", absorb, need.absorb_pu),
        ):
            if have < want - 1e-9:
                raise SettingsError(
                    f"inverter.{name}",
                    getattr(inv, name),
                    f"below the reactive capability profile {profile.label} requires ({want:g} × s_rated_va)",
                    f">= {want * inv.s_rated_va:g}",
                )
    points = {
        **{f"grid.volt_var.{k}": getattr(grid.volt_var, k) for k in ("q1_pu", "q2_pu", "q3_pu", "q4_pu")},
        "grid.constant_var.q_pu": grid.constant_var.q_pu,
        **{
            f"grid.watt_var.{k}": getattr(grid.watt_var, k)
            for k in ("q1_pu", "q2_pu", "q3_pu", "q1_charging_pu", "q2_charging_pu", "q3_charging_pu")
        },
    }
    pf = grid.constant_pf
    q_pf = max(inv.p_rated_w, inv.p_rated_charge_w) / inv.s_rated_va * math.tan(math.acos(pf.pf))
    points["grid.constant_pf.pf"] = q_pf if pf.excitation == "inject" else -q_pf
    for path, q in points.items():
        if q > inj + 1e-9 or q < -absorb - 1e-9:
            value = pf.pf if path == "grid.constant_pf.pf" else q
            raise SettingsError(
                path,
                value,
                f"needs Q = {q:+.3g} × s_rated_va, beyond the inverter's capability "
                "(inverter.q_max_inj_var / q_max_abs_var)",
                f"Q {-absorb:+.3g} … {inj:+.3g} × s_rated_va",
            )


def check_devices(settings: Settings) -> None:
    """The drivers' cross references (each device's bus exists, unit ids unique per bus, one device
    per role), with the drivers' own rules and message."""
    try:
        validate_drivers(settings.buses, settings.devices)
    except DriverError as exc:
        raise SettingsError("devices", "[buses] and [devices]", str(exc)) from None


def check_battery(settings: Settings) -> None:
    """The battery profile loads in the configured pack layout with the configured SoP horizon, as
    the daemon's start needs it (the start refuses what this refuses)."""
    # Imported here: the estimation stack (numpy) is not needed by every reader of the settings.
    from edge.estimation.profile import PACK_V_MAX, ProfileError, configured_profile, load_profile

    b = settings.battery
    try:
        configured_profile(b.profile, b.series, b.parallel, b.sop_horizon_s)
        return
    except ProfileError as exc:
        reason = str(exc)
    # Refused: find the setting to name (the profile is read again only on this path).
    try:
        profile = load_profile(b.profile)
    except ProfileError:
        raise SettingsError("battery.profile", b.profile, reason) from None
    if b.sop_horizon_s not in profile.horizons_s:
        allowed = ", ".join(f"{h:g}" for h in profile.horizons_s)
        raise SettingsError("battery.sop_horizon_s", b.sop_horizon_s, reason, allowed)
    series = b.series or profile.series
    # Too many cells in series for any DC charger, or else the capacity: the count that sets it.
    too_high = series * profile.cell_v_max > PACK_V_MAX
    field = "battery.series" if too_high or not b.parallel else "battery.parallel"
    raise SettingsError(field, f"{series}s{b.parallel or profile.parallel}p", reason)


def check_daemon(settings: Settings) -> None:
    """The command-to-output latency includes at least one cycle: a smaller value is not a measurement."""
    d = settings.daemon
    _order("daemon.cycle_s", d.cycle_s, "daemon.actuation_latency_s", d.actuation_latency_s, strict=False)


def check_settings(settings: Settings, profile: ResolvedProfile | None) -> None:
    """Every cross-field rule; profile-dependent ones only once a profile is commissioned."""
    check_functions(settings)
    check_voltage_measures(settings)
    check_daemon(settings)
    check_devices(settings)
    check_site(settings)
    check_owner(settings)
    check_mqtt(settings)
    check_battery(settings)
    if settings.inverter is not None:
        check_inverter(settings.inverter)
    comm = settings.commissioning
    if profile is None:
        return
    if comm.f_nominal_hz is not None and comm.f_nominal_hz != profile.f_nominal_hz:
        raise SettingsError(
            "commissioning.f_nominal_hz",
            comm.f_nominal_hz,
            f"profile {profile.id} is a {profile.f_nominal_hz} Hz code",
            str(profile.f_nominal_hz),
        )
    if settings.grid is not None:
        check_grid_order(settings.grid, float(profile.f_nominal_hz))
        if settings.inverter is not None:
            check_reactive_capability(settings.grid, settings.inverter, profile)
