"""Every problem of a configuration at once, for a technician (``v2gctl config check``).

The daemon's loader (``load.from_builtins``) stops at the first error, and msgspec names a table's
entries ``devices[...]``. This walks the same model field by field instead, so that one run lists
each wrong field with its exact path (``devices.inverter.unit_id``), the value found, and what is
allowed (a range, the choices, or the known names with a did-you-mean for a typo). The cross-field
rules run one by one once the types are right, and the daemon's own loader runs last as the
authority: nothing it refuses is ever reported valid here.
"""

from __future__ import annotations

import difflib
import functools
import tomllib
import types
from collections.abc import Callable
from typing import Any, Union, get_args, get_origin

import msgspec

from edge.settings.checks import (
    check_battery,
    check_daemon,
    check_devices,
    check_functions,
    check_inverter,
    check_mqtt,
    check_owner,
    check_site,
)
from edge.settings.errors import SettingsError, SettingsFileError, allowed_range, validation_error
from edge.settings.load import deep_merge, from_builtins, resolve_profile
from edge.settings.migrate import migrate_tree
from edge.settings.model import Commissioning, Settings
from edge.settings.ranges import check_grid_ranges

_NONE = type(None)


def allowed_values(tp: Any) -> str | None:
    """What a field of type ``tp`` accepts, in words: a numeric range, the choices, true/false."""
    info: Any = msgspec.inspect.type_info(tp)
    if isinstance(info, msgspec.inspect.UnionType):
        members = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        info = members[0] if len(members) == 1 else None
    if isinstance(info, msgspec.inspect.LiteralType):
        return ", ".join(str(v) if not isinstance(v, str) else v for v in info.values)
    if isinstance(info, msgspec.inspect.EnumType):
        return ", ".join(str(m.value) for m in info.cls)
    if isinstance(info, msgspec.inspect.BoolType):
        return "true, false"
    return allowed_range(tp, "")


def _reason(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    return text.split(" - at `$", 1)[0]


def _struct(value: Any, tp: type[msgspec.Struct], path: str, out: list[SettingsError]) -> None:
    if not isinstance(value, dict):
        out.append(SettingsError(path or "<settings>", value, "expected a table"))
        return
    fields = {f.encode_name: f for f in msgspec.structs.fields(tp)}
    before = len(out)
    for key, item in value.items():
        sub = f"{path}.{key}" if path else key
        field = fields.get(key)
        if field is None:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            reason = f"unknown setting; did you mean {close[0]}?" if close else "unknown setting"
            out.append(SettingsError(sub, item, reason, ", ".join(fields) or "none"))
            continue
        _walk(item, field.type, sub, out)
    for name, field in fields.items():
        if field.required and name not in value:
            sub = f"{path}.{name}" if path else name
            out.append(SettingsError(sub, None, "required setting missing", allowed_values(field.type)))
    if len(out) == before:
        # Each field is right on its own: what is left are the struct's own checks (__post_init__).
        try:
            msgspec.convert(value, tp)
        except msgspec.ValidationError as exc:
            out.append(validation_error(exc, value, path, tp))


def _walk(value: Any, tp: Any, path: str, out: list[SettingsError]) -> None:
    origin = get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        _struct(value, tp, path, out)
        return
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(tp) if a is not _NONE]
        if value is None and len(members) < len(get_args(tp)):
            return
        if len(members) == 1:
            _walk(value, members[0], path, out)
            return
    elif origin is dict:
        if not isinstance(value, dict):
            out.append(SettingsError(path, value, "expected a table"))
            return
        for key, item in value.items():
            _walk(item, get_args(tp)[1], f"{path}.{key}", out)
        return
    elif origin is list or (origin is tuple and get_args(tp)[1:] == (...,)):
        if not isinstance(value, list):
            out.append(SettingsError(path, value, "expected a list"))
            return
        for i, item in enumerate(value):
            _walk(item, get_args(tp)[0], f"{path}[{i}]", out)
        return
    try:
        msgspec.convert(value, tp)
    except msgspec.ValidationError as exc:
        out.append(SettingsError(path, value, _reason(exc), allowed_values(tp)))


def _add(out: list[SettingsError], check: Callable[[], object]) -> None:
    try:
        check()
    except SettingsError as exc:
        if all(str(exc) != str(seen) for seen in out):
            out.append(exc)


def find_problems(raw: Any) -> list[SettingsError]:
    """Every problem of a parsed configuration (a TOML tree); empty when the daemon would take it."""
    out: list[SettingsError] = []
    if not isinstance(raw, dict):
        return [SettingsError("<settings>", raw, "expected a table of sections")]
    try:
        # Read at the current schema as the daemon does (schema_version, renamed settings).
        raw = migrate_tree(raw)
    except SettingsError as exc:
        return [exc]
    _walk(raw.get("commissioning", {}), Commissioning, "commissioning", out)
    if out:
        # Without a valid commissioning there is no profile: the grid table cannot be judged.
        tree = {k: v for k, v in raw.items() if k not in ("commissioning", "grid")}
        _walk(tree, Settings, "", out)
        return out
    profile = None
    tree = dict(raw)
    try:
        profile = resolve_profile(msgspec.convert(raw.get("commissioning", {}), Commissioning))
    except SettingsError as exc:
        out.append(exc)
    overrides = tree.pop("grid", None)
    if profile is not None and (overrides is None or isinstance(overrides, dict)):
        tree["grid"] = deep_merge(profile.defaults()["grid"], overrides or {})
    elif overrides is not None:
        tree["grid"] = overrides
    _walk(tree, Settings, "", out)
    if out:
        return out
    settings = msgspec.convert(tree, Settings)
    if profile is not None:
        _add(out, functools.partial(check_grid_ranges, tree, profile))
    for check in (
        check_functions,
        check_daemon,
        check_devices,
        check_site,
        check_owner,
        check_mqtt,
        check_battery,
    ):
        _add(out, functools.partial(check, settings))
    if settings.inverter is not None:
        _add(out, functools.partial(check_inverter, settings.inverter))
    # The daemon's own loader, last: whatever else it refuses (profile rules, renamed settings).
    _add(out, functools.partial(from_builtins, raw))
    return out


def problems_in_text(text: str, source: str) -> list[SettingsError]:
    """Every problem of config text; a TOML syntax error is the only one a file that does not parse has."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return [SettingsFileError.from_toml(source, exc)]
    return find_problems(raw)
