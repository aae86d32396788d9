"""Configuration of the driver layer: the ``[buses.*]`` and ``[devices.*]`` sections of the daemon config.

The settings model embeds these structs; :func:`parse` validates the raw sections (unknown keys,
types, ranges) and the cross references between them, and raises :class:`~drivers.errors.DriverError`
(kind ``config``) naming the section and key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from drivers.errors import DriverError

Transport = Literal["tcp", "rtu"]
Role = Literal["power_stage", "site_meter"]
Protocol = Literal["sunspec", "map"]
MeterSign = Literal["import_positive", "export_positive"]
PowerSign = Literal["export_positive", "import_positive"]
ReactiveSign = Literal["injection_positive", "absorption_positive"]


class _Struct(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Strict base: unknown keys are errors, instances are immutable."""


class BusConfig(_Struct, frozen=True, kw_only=True):
    """One bus: a Modbus TCP connection, or an RS-485 line shared by several unit ids.

    ``timeout_s`` is per request; ``retries`` more attempts follow a retryable failure. A device whose
    request failed after its retries is left alone for ``backoff_s`` (doubling up to ``backoff_max_s``),
    so it does not take the others' bus time; one probe per back-off tells when it is back.
    """

    transport: Transport
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535)] = 502
    serial_port: str = ""
    baud: Annotated[int, Meta(ge=1200, le=1_000_000)] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    timeout_s: Annotated[float, Meta(gt=0.0, le=30.0)] = 0.5
    retries: Annotated[int, Meta(ge=0, le=5)] = 1
    backoff_s: Annotated[float, Meta(gt=0.0, le=60.0)] = 0.5
    backoff_max_s: Annotated[float, Meta(gt=0.0, le=600.0)] = 10.0

    @property
    def bits_per_char(self) -> int:
        """Start bit, 8 data bits, parity, stop bits: 10 for 8N1, 11 for 8E1 or 8N2."""
        return 1 + 8 + (0 if self.parity == "N" else 1) + self.stopbits


class DeviceConfig(_Struct, frozen=True, kw_only=True):
    """One device on a bus, serving one role.

    ``poll_s`` is the period of the fast block (measurements), ``slow_poll_s`` that of ratings and
    settings. ``meter_sign``/``power_sign``/``q_sign`` override the sign convention of the device's
    protocol or map (None keeps it). ``frozen_after_s``: a point the map says must move that has not
    changed for this long marks the device frozen. ``setpoint_revert_s``: the device reverts to 0 W
    by itself when no setpoint arrives for this long. ``sunspec_base``: None discovers it.
    ``legacy_reversion_safe``: a SunSpec 123/124 inverter (no 704) reverts, when set points stop, to
    its own mode, not to 0 W; it is run only once commissioning has checked that this own mode never
    exports (then set true), else its stage reports a configuration problem and holds zero.
    """

    bus: str
    unit_id: Annotated[int, Meta(ge=0, le=247)] = 1
    role: Role
    protocol: Protocol = "sunspec"
    map: str = ""
    poll_s: Annotated[float, Meta(ge=0.01, le=60.0)] = 0.2
    slow_poll_s: Annotated[float, Meta(ge=0.1, le=3600.0)] = 10.0
    meter_sign: MeterSign | None = None
    power_sign: PowerSign | None = None
    q_sign: ReactiveSign | None = None
    frozen_after_s: Annotated[float, Meta(gt=0.0, le=3600.0)] = 10.0
    setpoint_revert_s: Annotated[int, Meta(ge=1, le=3600)] = 10
    sunspec_base: Literal[0, 40000, 50000] | None = None
    legacy_reversion_safe: bool = False


def _convert(kind: str, name: str, raw: Any, typ: type[msgspec.Struct]) -> Any:
    try:
        return msgspec.convert(raw, typ, strict=True)
    except msgspec.ValidationError as e:
        # msgspec names the key ("at `$.timeout_s`"); give the section it sits in.
        raise DriverError(f"[{kind}.{name}]: {e}", kind="config", retryable=False) from None


def parse(
    buses: Mapping[str, Any], devices: Mapping[str, Any]
) -> tuple[dict[str, BusConfig], dict[str, DeviceConfig]]:
    """Typed, cross-checked ``[buses.*]`` and ``[devices.*]``; raw dicts or structs are both accepted."""
    bus_cfg = {
        n: b if isinstance(b, BusConfig) else _convert("buses", n, b, BusConfig) for n, b in buses.items()
    }
    dev_cfg = {
        n: d if isinstance(d, DeviceConfig) else _convert("devices", n, d, DeviceConfig)
        for n, d in devices.items()
    }
    validate(bus_cfg, dev_cfg)
    return bus_cfg, dev_cfg


def validate(buses: Mapping[str, BusConfig], devices: Mapping[str, DeviceConfig]) -> None:
    """Cross references: each device's bus exists, unit ids are unique per bus, each role at most once."""

    def bad(msg: str) -> DriverError:
        return DriverError(msg, kind="config", retryable=False)

    for name, b in buses.items():
        if b.transport == "rtu" and not b.serial_port:
            raise bad(f"[buses.{name}]: transport = 'rtu' needs serial_port (e.g. '/dev/ttyUSB0')")
        if b.backoff_max_s < b.backoff_s:
            raise bad(f"[buses.{name}]: backoff_max_s {b.backoff_max_s} is below backoff_s {b.backoff_s}")
    seen_units: dict[tuple[str, int], str] = {}
    seen_roles: dict[str, str] = {}
    for name, d in devices.items():
        if d.bus not in buses:
            raise bad(f"[devices.{name}]: bus {d.bus!r} is not defined (have {sorted(buses)})")
        if buses[d.bus].transport == "rtu" and not 1 <= d.unit_id <= 247:
            raise bad(f"[devices.{name}]: unit_id {d.unit_id} on an RTU bus must be 1..247")
        key = (d.bus, d.unit_id)
        if key in seen_units:
            raise bad(f"[devices.{name}]: unit_id {d.unit_id} on bus {d.bus!r} is also {seen_units[key]!r}")
        seen_units[key] = name
        if d.role in seen_roles:
            raise bad(f"[devices.{name}]: role {d.role!r} is already served by {seen_roles[d.role]!r}")
        seen_roles[d.role] = name
        if d.protocol == "map" and not d.map:
            raise bad(f"[devices.{name}]: protocol = 'map' needs map = '<name>' (config/devices/<name>.toml)")
        if d.protocol == "sunspec" and d.map:
            raise bad(f"[devices.{name}]: map = {d.map!r} is only used with protocol = 'map'")
        if d.role == "site_meter" and (d.power_sign is not None):
            raise bad(f"[devices.{name}]: power_sign is for a power stage; a site meter takes meter_sign")
        if d.role == "power_stage" and d.meter_sign is not None:
            raise bad(f"[devices.{name}]: meter_sign is for a site meter; a power stage takes power_sign")
        if d.slow_poll_s < d.poll_s:
            raise bad(f"[devices.{name}]: slow_poll_s {d.slow_poll_s} is below poll_s {d.poll_s}")
