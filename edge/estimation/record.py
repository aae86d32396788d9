"""What is kept of one vehicle between sessions, and how a vehicle is named where it is kept.

A vehicle is named by a salted hash of the identifier the charger reports (EVCCID / MAC / VIN): the
raw identifier is never stored, and the salt is random per installation so the hash cannot be
matched against a list of identifiers. The key is also what telemetry may carry. ``VehicleRecords``
is what the estimator needs of a store (``edge.state.StateStore`` in the daemon).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from edge.estimation.capacity import CapacityPoint
from edge.estimation.rc import FastBranch
from edge.estimation.resistance import UNKNOWN_GROWTH_SIGMA

FORMAT_VERSION = 1
T = TypeVar("T")
SALT_BYTES = 16

log = logging.getLogger(__name__)


# Records written before 2026-12-05 held any growth above 5 at exactly this value (the tracker's upper
# bound then), with the sigma of the steps as if it had been identified.
FORMER_UPPER_BOUND = 5.0


@dataclass(frozen=True)
class ClockStamp:
    """A moment by the wall clock and by the boot's monotonic clock, with the boot it belongs to.

    Within one boot (a daemon restarted) the monotonic clock tells the time that passed even when the
    wall clock was stepped in between (NTP's first sync on a board without a real-time clock); across
    boots only the wall clock can."""

    unix_s: float
    mono_s: float
    boot_id: str

    def plus(self, seconds: float) -> ClockStamp:
        return ClockStamp(self.unix_s + seconds, self.mono_s + seconds, self.boot_id)

    def since(self, then: ClockStamp) -> float:
        """Seconds from ``then`` to this moment, never below 0 (a wall clock stepped back, or not set
        yet after a reboot, relaxes nothing)."""
        if self.boot_id and self.boot_id == then.boot_id:
            return max(self.mono_s - then.mono_s, 0.0)
        return max(self.unix_s - then.unix_s, 0.0)


@dataclass(frozen=True)
class ElectrolyteMemory:
    """The electrolyte's memory (docs/estimation.md, "The electrolyte's memory") as a session left it:
    the currents per cell whose depletion it may still hold, each way, and the moment until which
    they may have flowed (a checkpoint's is ahead of it: the session may have gone on)."""

    held_dis_a: float
    held_chg_a: float
    t_eq_s: float  # the time constant it relaxes with, at the temperature it was left at
    until: ClockStamp

    def after(self, now: ClockStamp) -> tuple[float, float]:
        """The currents still held at ``now``."""
        keep = math.exp(-now.since(self.until) / self.t_eq_s)
        return self.held_dis_a * keep, self.held_chg_a * keep

    def to_json(self) -> dict[str, Any]:
        return {
            "held_dis_a": self.held_dis_a,
            "held_chg_a": self.held_chg_a,
            "t_eq_s": self.t_eq_s,
            "until_unix_s": self.until.unix_s,
            "until_mono_s": self.until.mono_s,
            "boot_id": self.until.boot_id,
        }

    @classmethod
    def from_json(cls, data: Any) -> ElectrolyteMemory:
        """Raises ValueError, KeyError or TypeError for anything that is not one."""
        if not isinstance(data, dict):
            raise TypeError(f"an electrolyte memory is a JSON object, not {type(data).__name__}")
        held_dis, held_chg, t_eq, unix_s, mono_s = (
            float(data[key]) for key in ("held_dis_a", "held_chg_a", "t_eq_s", "until_unix_s", "until_mono_s")
        )
        if not (
            math.isfinite(held_dis + held_chg + t_eq + unix_s + mono_s)
            and min(held_dis, held_chg) >= 0.0
            and t_eq > 0.0
        ):
            raise ValueError(f"electrolyte memory {data!r} is not one")
        return cls(held_dis, held_chg, t_eq, ClockStamp(unix_s, mono_s, str(data["boot_id"])))


@dataclass(frozen=True)
class RcScales:
    """The RC branches' identified scales against the profile's (``edge.estimation.rc``) and their
    standard deviations, at the profile's time constants; and a faster first time constant the
    sessions favoured, with its own (``fast``; records before it was identified: none)."""

    scale: tuple[float, float]
    sigma: tuple[float, float]
    fast: FastBranch | None = None

    def __post_init__(self) -> None:
        if not all(math.isfinite(x) and x > 0.0 for x in (*self.scale, *self.sigma)):
            raise ValueError(f"RC scales {self.scale} +/- {self.sigma}: positive finite values expected")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"scale": list(self.scale), "sigma": list(self.sigma)}
        f = self.fast
        if f is not None:
            data["fast"] = {
                "tau1_scale": f.tau1_scale,
                "scale": list(f.scale),
                "sigma": list(f.sigma),
                "log_odds": f.log_odds,
            }
        return data

    @classmethod
    def from_json(cls, data: Any) -> RcScales:
        """Raises ValueError, KeyError or TypeError for anything that is not two positive finite pairs
        (and, where there is one, a readable faster time constant)."""
        scale, sigma = _pairs(data)
        fast = None
        if data.get("fast") is not None:
            f = data["fast"]
            fast_scale, fast_sigma = _pairs(f)
            fast = FastBranch(float(f["tau1_scale"]), fast_scale, fast_sigma, float(f["log_odds"]))
        return cls(scale, sigma, fast)


def _pairs(data: Any) -> tuple[tuple[float, float], tuple[float, float]]:
    """``data``'s "scale" and "sigma", two numbers each."""
    scale = [float(x) for x in data["scale"]]
    sigma = [float(x) for x in data["sigma"]]
    if len(scale) != 2 or len(sigma) != 2:
        raise ValueError(f"RC scales {scale} +/- {sigma}: two values each expected")
    return (scale[0], scale[1]), (sigma[0], sigma[1])


@dataclass
class VehicleRecord:
    """What is kept between sessions for one vehicle."""

    profile: str
    sessions: int = 0
    capacity_points: list[CapacityPoint] = field(default_factory=list)
    growth: float = 1.0
    growth_sigma: float = UNKNOWN_GROWTH_SIGMA
    aging: dict[str, float] = field(default_factory=dict)
    electrolyte: ElectrolyteMemory | None = None
    rc: RcScales | None = None  # None: not identified (the profile's split, as a vehicle never seen)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "profile": self.profile,
            "sessions": self.sessions,
            "capacity_points": [[p.dsoc, p.ah, p.var_dsoc, p.var_ah, p.weight] for p in self.capacity_points],
            # A key of its own: a release before it reads the record as it always did (a downgrade
            # keeps what was learned; the depths are then simply not known).
            "capacity_points_soc_low": [p.soc_low for p in self.capacity_points],
            "growth": self.growth,
            "growth_sigma": self.growth_sigma,
            "aging": self.aging,
            # Likewise a key of its own (a release before it starts the memory empty, as it always did).
            "electrolyte": None if self.electrolyte is None else self.electrolyte.to_json(),
            "rc": None if self.rc is None else self.rc.to_json(),  # a key of its own, as above
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VehicleRecord:
        """Raises ValueError, KeyError or TypeError for anything that is not a record of this version."""
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {FORMAT_VERSION}")
        rows = data["capacity_points"]
        # Records from before the lower anchors' SoC was kept: unknown, i.e. shallow (1.0).
        soc_low = data.get("capacity_points_soc_low") or [1.0] * len(rows)
        if len(soc_low) != len(rows):
            raise ValueError(f"{len(soc_low)} capacity_points_soc_low for {len(rows)} capacity_points")
        points = []
        for row, low in zip(rows, soc_low, strict=True):
            dsoc, ah, var_dsoc, var_ah, weight = (float(x) for x in row)
            points.append(CapacityPoint(dsoc, ah, var_dsoc, var_ah, weight, float(low)))
        # Minutes' worth of caution is not worth the vehicle's capacity, growth and aging: a memory
        # that cannot be read starts empty, and scales that cannot be read start the branches as
        # unknown, as before either was kept.
        electrolyte = _optional(data, "electrolyte", ElectrolyteMemory.from_json, "electrolyte memory")
        rc = _optional(data, "rc", RcScales.from_json, "RC scales")
        return cls(
            profile=str(data["profile"]),
            sessions=int(data["sessions"]),
            capacity_points=points,
            growth=float(data["growth"]),
            growth_sigma=float(data["growth_sigma"]),
            aging={str(k): float(v) for k, v in dict(data["aging"]).items()},
            electrolyte=electrolyte,
            rc=rc,
        )


def _optional(data: dict[str, Any], key: str, parse: Callable[[Any], T], what: str) -> T | None:
    """``parse(data[key])``; None where the key is missing or null, or (logged) unreadable."""
    if data.get(key) is None:
        return None
    try:
        return parse(data[key])
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("vehicle record: %s ignored (%s)", what, exc)
        return None


def vehicle_key(salt: bytes, vehicle_id: str) -> str:
    """The pseudonymous key of ``vehicle_id`` under the installation's ``salt``."""
    if not vehicle_id:
        raise ValueError("vehicle id is empty")
    return hashlib.sha256(salt + vehicle_id.encode("utf-8")).hexdigest()[:24]


class VehicleRecords(Protocol):
    """Where the estimator finds what is known of a vehicle."""

    def key(self, vehicle_id: str) -> str:
        """The pseudonymous key of ``vehicle_id`` (safe for telemetry and file names)."""
        ...

    def vehicle(self, key: str) -> VehicleRecord | None:
        """The record kept under ``key`` (a copy the caller may change), or None."""
        ...
