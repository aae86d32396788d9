"""Check every grid value against the commissioned profile's allowed range (and conditional rules).

Works on the builtins tree (``{"grid": {...}}``) so that relative bounds (``"v2_pu - 0.02"``) can look up
sibling values, and errors name the dotted field path, the value and the range with its origin.
"""

from __future__ import annotations

import re
from typing import Any

from edge.settings.errors import SettingsError
from edge.settings.paths import lookup
from edge.settings.profiles import Bound, ResolvedProfile, Spec

# Values within this of a bound are in range: relative bounds are sums of decimals (0.98 - 0.02).
EPS = 1e-9

_RELATIVE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(?:([+-])\s*([0-9]*\.?[0-9]+))?\s*")


def resolve_bound(bound: Bound, path: str, tree: dict[str, Any]) -> float:
    """A bound's value: a number, or a sibling/dotted field plus or minus a number."""
    if isinstance(bound, int | float):
        return float(bound)
    match = _RELATIVE.fullmatch(bound)
    if match is None:
        raise SettingsError(path, bound, "profile bound is neither a number nor '<field> +/- <number>'")
    name, sign, number = match.groups()
    ref = name if "." in name else f"{path.rpartition('.')[0]}.{name}"
    try:
        base = lookup(tree, ref)
    except KeyError:
        raise SettingsError(path, bound, f"profile bound refers to unknown field {ref}") from None
    offset = float(number) if number else 0.0
    return float(base) + (offset if sign != "-" else -offset)


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def check_range(
    path: str, value: Any, lo: Bound | None, hi: Bound | None, tree: dict[str, Any], *, reason: str
) -> None:
    """Raise SettingsError if a numeric value is outside [lo, hi] (either may be None)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or (lo is None and hi is None):
        return
    lo_v = resolve_bound(lo, path, tree) if lo is not None else None
    hi_v = resolve_bound(hi, path, tree) if hi is not None else None
    if (lo_v is not None and value < lo_v - EPS) or (hi_v is not None and value > hi_v + EPS):
        allowed = (
            f"{_fmt(lo_v) if lo_v is not None else '-inf'} … {_fmt(hi_v) if hi_v is not None else 'inf'}"
        )
        if isinstance(lo, str) or isinstance(hi, str):
            allowed += f" [{lo if lo is not None else '-inf'} … {hi if hi is not None else 'inf'}]"
        raise SettingsError(path, value, reason, allowed)


def check_spec(path: str, value: Any, spec: Spec, tree: dict[str, Any], label: str) -> None:
    """One value against its spec: fixed, allowed values, range."""
    if spec.fixed and value != spec.default:
        shown = spec.default if not isinstance(spec.default, list) else "the profile's table"
        raise SettingsError(path, value, f"fixed by profile {label}; not overridable", repr(shown))
    if spec.allowed is not None and value not in spec.allowed:
        raise SettingsError(
            path, value, f"not allowed by profile {label}", ", ".join(repr(a) for a in spec.allowed)
        )
    reason = f"outside the range of profile {label}" + (f" ({spec.note})" if spec.note else "")
    check_range(path, value, spec.min, spec.max, tree, reason=reason)


def check_grid_ranges(tree: dict[str, Any], profile: ResolvedProfile) -> None:
    """Check every ``grid`` value of the builtins tree against the profile; the first failure raises."""
    for path, spec in profile.specs.items():
        check_spec(path, lookup(tree, path), spec, tree, profile.label)
    for rule in profile.rules:
        if all(lookup(tree, key) == want for key, want in rule.when.items()):
            cond = ", ".join(f"{key} = {want!r}" for key, want in rule.when.items())
            reason = f"outside the range of profile {profile.label} when {cond}"
            if rule.note:
                reason += f" ({rule.note})"
            check_range(rule.field, lookup(tree, rule.field), rule.min, rule.max, tree, reason=reason)
