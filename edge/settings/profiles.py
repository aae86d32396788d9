"""Grid-code profiles as data: load ``config/profiles/<id>.toml``, resolve the chosen categories.

A profile file gives, for every ``grid`` setting, a spec: ``default``, and ``min``/``max`` (a number,
or ``"<sibling> ± <number>"`` for bounds relative to another field of the same struct, e.g.
``"v2_pu - 0.02"``; a dotted name is a path from the top), ``allowed`` (a list, for strings and
booleans), ``fixed = true`` (the value cannot be overridden; the default for tables such as ride-through
regions) and a ``note``. ``[category.<X>.grid...]`` entries override the base specs for normal category
X (A, B) or abnormal category X (I, II, III), key by key. ``[[rules]]`` / ``[[category.<X>.rules]]``
add a range that applies only ``when`` other settings have given values. A new grid code is a new file.
"""

from __future__ import annotations

import functools
import tomllib
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any, TypeVar

import msgspec

from edge.settings.errors import SettingsError, SettingsFileError, validation_error
from edge.settings.model import Grid
from edge.settings.paths import lookup

SPEC_KEYS = frozenset({"default", "min", "max", "fixed", "allowed", "note"})

Bound = float | str
T = TypeVar("T")


class Spec(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The default and allowed range of one setting in one profile (after category overlays)."""

    default: Any = None
    min: Bound | None = None
    max: Bound | None = None
    fixed: bool = False
    allowed: list[Any] | None = None
    note: str = ""


class Rule(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A range on ``field`` that applies while every ``when`` path has the given value."""

    field: str
    when: dict[str, Any]
    min: Bound | None = None
    max: Bound | None = None
    note: str = ""


class ReactiveCapability(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Minimum reactive capability a category demands, per-unit of S rated (1547 Table 7)."""

    inject_pu: float
    absorb_pu: float


class _Header(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    id: str
    title: str
    f_nominal_hz: int
    normal_categories: list[str] = []
    abnormal_categories: list[str] = []
    source: str = ""


class ResolvedProfile(msgspec.Struct, frozen=True, kw_only=True):
    """A profile with its categories chosen: one complete spec per grid setting."""

    id: str
    title: str
    f_nominal_hz: int
    normal_category: str | None
    abnormal_category: str | None
    specs: dict[str, Spec]
    rules: list[Rule]
    reactive_capability: ReactiveCapability | None

    @property
    def label(self) -> str:
        """``ieee1547-2018 (Cat B/II)`` for messages."""
        cats = "/".join(c for c in (self.normal_category, self.abnormal_category) if c)
        return f"{self.id} (Cat {cats})" if cats else self.id

    def defaults(self) -> dict[str, Any]:
        """The nested ``{"grid": {...}}`` tree of default values."""
        return _tree(self.specs)


def _tree(specs: dict[str, Spec]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, spec in specs.items():
        node = tree
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = spec.default
    return tree


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    """A grid-code profile as read from its file: base specs plus per-category overlays."""

    id: str
    title: str
    f_nominal_hz: int
    normal_categories: list[str]
    abnormal_categories: list[str]
    source: str
    base: dict[str, dict[str, Any]]
    overlays: dict[str, dict[str, dict[str, Any]]]
    rules: list[Rule]
    category_rules: dict[str, list[Rule]]
    capability: dict[str, ReactiveCapability]
    base_capability: ReactiveCapability | None

    def resolve(self, normal: str | None, abnormal: str | None) -> ResolvedProfile:
        """Apply the overlays of the chosen categories (each must be one this profile defines)."""
        chosen: list[str] = []
        for kind, cat, options in (
            ("normal_category", normal, self.normal_categories),
            ("abnormal_category", abnormal, self.abnormal_categories),
        ):
            if not options:
                if cat is not None:
                    raise SettingsError(
                        f"commissioning.{kind}", cat, f"profile {self.id} has no {kind.replace('_', ' ')}"
                    )
                continue
            if cat not in options:
                raise SettingsError(
                    f"commissioning.{kind}", cat, f"not a category of profile {self.id}", ", ".join(options)
                )
            chosen.append(cat)
        raw = {path: dict(spec) for path, spec in self.base.items()}
        rules = list(self.rules)
        capability = self.base_capability
        for cat in chosen:
            for path, overlay in self.overlays.get(cat, {}).items():
                raw.setdefault(path, {}).update(overlay)
            rules.extend(self.category_rules.get(cat, []))
            capability = self.capability.get(cat, capability)
        specs: dict[str, Spec] = {}
        for path, spec_raw in raw.items():
            spec = _convert(spec_raw, Spec, f"{self.id}: {path}")
            if spec.default is None:
                raise SettingsError(path, None, f"profile {self.id} gives no default for these categories")
            specs[path] = spec
        # Defaults in the model's own form (tables with every field), as msgspec.to_builtins gives them.
        normal_form = msgspec.to_builtins(_convert(_tree(specs)["grid"], Grid, f"{self.id}: grid defaults"))
        specs = {
            path: msgspec.structs.replace(spec, default=lookup(normal_form, path.removeprefix("grid.")))
            for path, spec in specs.items()
        }
        return ResolvedProfile(
            id=self.id,
            title=self.title,
            f_nominal_hz=self.f_nominal_hz,
            normal_category=normal if self.normal_categories else None,
            abnormal_category=abnormal if self.abnormal_categories else None,
            specs=specs,
            rules=rules,
            reactive_capability=capability,
        )


def _convert(raw: object, typ: type[T], where: str) -> T:
    try:
        return msgspec.convert(raw, typ)
    except msgspec.ValidationError as exc:
        err = validation_error(exc, raw)
        raise SettingsError(
            f"{where}: {err.path}", err.value, f"invalid profile entry: {err.reason}"
        ) from exc


def _flatten(tree: dict[str, Any], prefix: str, out: dict[str, dict[str, Any]], where: str) -> None:
    """Collect spec leaves (tables whose keys are all spec keys) under dotted paths."""
    for key, value in tree.items():
        path = f"{prefix}.{key}"
        if not isinstance(value, dict):
            raise SettingsError(
                path, value, f"{where}: expected a spec table like {{ default = ..., min = ... }}"
            )
        if value and set(value) <= SPEC_KEYS:
            out[path] = value
        else:
            _flatten(value, path, out, where)


def parse_profile(data: dict[str, Any], where: str) -> Profile:
    """Build a Profile from the parsed TOML of a profile file."""
    header = _convert(data.get("profile"), _Header, f"{where}: [profile]")
    tables = {"profile", "grid", "category", "rules", "reactive_capability"}
    unknown = set(data) - tables
    if unknown:
        raise SettingsError(
            where, sorted(unknown), "unknown top-level tables in profile", ", ".join(sorted(tables))
        )
    base: dict[str, dict[str, Any]] = {}
    _flatten(data.get("grid", {}), "grid", base, where)
    overlays: dict[str, dict[str, dict[str, Any]]] = {}
    category_rules: dict[str, list[Rule]] = {}
    capability: dict[str, ReactiveCapability] = {}
    known = set(header.normal_categories) | set(header.abnormal_categories)
    for cat, body in data.get("category", {}).items():
        if cat not in known:
            raise SettingsError(
                f"{where}: category", cat, "category not declared in [profile]", ", ".join(known)
            )
        extra = set(body) - {"grid", "rules", "reactive_capability"}
        if extra:
            raise SettingsError(f"{where}: category.{cat}", sorted(extra), "unknown keys")
        overlay: dict[str, dict[str, Any]] = {}
        _flatten(body.get("grid", {}), "grid", overlay, where)
        overlays[cat] = overlay
        category_rules[cat] = _convert(body.get("rules", []), list[Rule], f"{where}: category.{cat}.rules")
        if "reactive_capability" in body:
            capability[cat] = _convert(
                body["reactive_capability"],
                ReactiveCapability,
                f"{where}: category.{cat}.reactive_capability",
            )
    return Profile(
        id=header.id,
        title=header.title,
        f_nominal_hz=header.f_nominal_hz,
        normal_categories=header.normal_categories,
        abnormal_categories=header.abnormal_categories,
        source=header.source,
        base=base,
        overlays=overlays,
        rules=_convert(data.get("rules", []), list[Rule], f"{where}: rules"),
        category_rules=category_rules,
        capability=capability,
        base_capability=(
            _convert(data["reactive_capability"], ReactiveCapability, f"{where}: reactive_capability")
            if "reactive_capability" in data
            else None
        ),
    )


def profiles_dir() -> Traversable:
    """The shipped profiles folder (``edge/_config/profiles``)."""
    return files("edge") / "_config" / "profiles"


def available_profiles() -> list[str]:
    """Ids of the shipped profiles."""
    return sorted(p.name.removesuffix(".toml") for p in profiles_dir().iterdir() if p.name.endswith(".toml"))


@functools.cache
def load_profile(profile_id: str) -> Profile:
    """Load a shipped profile by id; an unknown id names the known ones."""
    names = available_profiles()
    if profile_id not in names:
        raise SettingsError(
            "commissioning.profile", profile_id, "unknown grid-code profile", ", ".join(names)
        )
    resource = profiles_dir() / f"{profile_id}.toml"
    text = resource.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsFileError.from_toml(str(resource), exc) from exc
    profile = parse_profile(data, str(resource))
    if profile.id != profile_id:
        raise SettingsError(f"{resource}: profile.id", profile.id, "must match the file name", profile_id)
    return profile
