"""The commissioning lock: no energizing (P = Q = 0) until the site is commissioned, and why.

The grid profile (and its categories, where the profile has them), nominal voltage and frequency, phase
topology, who commissioned and when, and the inverter's ratings must all be set. Each missing item is
named by its field path so the daemon can report it ("holding P = Q = 0: not commissioned: missing ...").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.settings.errors import SettingsError
from edge.settings.profiles import load_profile

if TYPE_CHECKING:
    from edge.settings.model import Commissioning, Settings

_REQUIRED = ("v_nominal_v", "f_nominal_hz", "phase_topology", "commissioned_by", "commissioned_at")


def missing_items(comm: Commissioning) -> list[str]:
    """Commissioning field paths not yet set (an unknown profile counts as missing, with its name)."""
    missing: list[str] = []
    if comm.profile is None:
        missing.append("commissioning.profile")
    else:
        try:
            profile = load_profile(comm.profile)
        except SettingsError:
            missing.append(f"commissioning.profile (unknown profile {comm.profile!r})")
        else:
            if profile.normal_categories and comm.normal_category is None:
                missing.append("commissioning.normal_category")
            if profile.abnormal_categories and comm.abnormal_category is None:
                missing.append("commissioning.abnormal_category")
    missing.extend(f"commissioning.{name}" for name in _REQUIRED if getattr(comm, name) is None)
    return missing


def lock_reasons(settings: Settings) -> list[str]:
    """Everything that keeps the daemon from energizing; empty when it may run."""
    reasons = missing_items(settings.commissioning)
    if settings.inverter is None:
        reasons.append("inverter (nameplate ratings)")
    return reasons


def energize_lock(settings: Settings) -> str | None:
    """None when the site may energize, else the message the daemon reports while holding P = Q = 0."""
    reasons = lock_reasons(settings)
    if not reasons:
        return None
    return "holding P = Q = 0: not commissioned: missing " + ", ".join(reasons)
