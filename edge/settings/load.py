"""Read a config file (tomllib), apply the commissioned profile plus the site's grid overrides, validate.

One path for everything: a file, the embedded default config, an MQTT change and a CLI edit all end in
``from_builtins``, which converts with the msgspec model, fills ``grid`` from the profile, and runs the
profile ranges and the cross-field rules. Every failure is a SettingsError naming field, value and range.
"""

from __future__ import annotations

import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

import msgspec

from edge.settings.checks import check_settings
from edge.settings.errors import SettingsError, SettingsFileError, validation_error
from edge.settings.migrate import migrate_tree
from edge.settings.model import Commissioning, Settings
from edge.settings.profiles import ResolvedProfile, load_profile
from edge.settings.ranges import check_grid_ranges


def default_config_text() -> str:
    """The embedded default config (the simulated bench), shipped as ``edge/_config/v2g-edge.toml``."""
    return (files("edge") / "_config" / "v2g-edge.toml").read_text(encoding="utf-8")


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``over`` merged in: tables merge, values replace."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve_profile(comm: Commissioning) -> ResolvedProfile | None:
    """The commissioned profile with its categories, or None while they are not all commissioned."""
    if comm.profile is None:
        return None
    profile = load_profile(comm.profile)
    if (profile.normal_categories and comm.normal_category is None) or (
        profile.abnormal_categories and comm.abnormal_category is None
    ):
        return None
    return profile.resolve(comm.normal_category, comm.abnormal_category)


def from_builtins(raw: dict[str, Any]) -> Settings:
    """Validate a builtins tree (parsed TOML, or ``msgspec.to_builtins`` of Settings with a change)."""
    if not isinstance(raw, dict):
        raise SettingsError("<settings>", raw, "expected a table of sections")
    raw = migrate_tree(raw)  # an older file is read at the current schema; a newer one is refused
    try:
        comm = msgspec.convert(raw.get("commissioning", {}), Commissioning)
    except msgspec.ValidationError as exc:
        raise validation_error(exc, raw.get("commissioning", {}), "commissioning", Commissioning) from exc
    profile = resolve_profile(comm)
    tree = dict(raw)
    overrides = tree.pop("grid", None)
    if overrides is not None and not isinstance(overrides, dict):
        raise SettingsError("grid", overrides, "expected a table of grid-function overrides")
    if profile is not None:
        tree["grid"] = deep_merge(profile.defaults()["grid"], overrides or {})
    try:
        settings = msgspec.convert(tree, Settings)
    except msgspec.ValidationError as exc:
        raise validation_error(exc, tree, typ=Settings) from exc
    if profile is not None:
        check_grid_ranges(tree, profile)
    check_settings(settings, profile)
    return settings


def load_text(text: str, source: str = "<config>") -> Settings:
    """Parse and validate config text; a TOML error names ``source``, the line and what is wrong."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsFileError.from_toml(source, exc) from exc
    return from_builtins(raw)


def load_file(path: str | Path) -> Settings:
    """Read and validate a config file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsFileError(str(p), None, f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[: exc.start].count(b"\n") + 1
        raise SettingsFileError(str(p), line, f"not UTF-8 text (byte {exc.object[exc.start]:#04x})") from None
    return load_text(text, str(p))


def load_default() -> Settings:
    """The embedded default config (commissioned for the simulated bench)."""
    return load_text(default_config_text(), "edge/_config/v2g-edge.toml")


def grid_profile(settings: Settings) -> ResolvedProfile | None:
    """The resolved profile of already-validated settings (None while not commissioned)."""
    return resolve_profile(settings.commissioning)
