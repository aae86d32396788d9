"""What the daemon hands the state store besides vehicle records (session records, open sessions,
energy counters), and what the store reports about itself."""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec

# Lifetime energy totals, Wh (magnitudes): AC at the charger's grid side, DC at the EV's pack.
ENERGY_COUNTERS = ("e_charge_ac_wh", "e_discharge_ac_wh", "e_charge_dc_wh", "e_discharge_dc_wh")


class SessionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One plug-in session, as kept in the ``sessions`` table (energies are magnitudes, Wh)."""

    vehicle_key: str | None  # StateStore.key() of the vehicle; None when the charger names none
    start_unix_s: float
    end_unix_s: float
    e_charge_ac_wh: float = 0.0
    e_discharge_ac_wh: float = 0.0
    e_charge_dc_wh: float = 0.0
    e_discharge_dc_wh: float = 0.0
    soc_start: float | None = None
    soc_end: float | None = None
    reasons: tuple[str, ...] = ()  # why it ended and what limited it, e.g. ("unplugged",)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start_unix_s) and math.isfinite(self.end_unix_s)):
            raise ValueError(f"session times {self.start_unix_s!r}, {self.end_unix_s!r} must be finite")
        if self.end_unix_s < self.start_unix_s:
            raise ValueError(
                f"session end_unix_s = {self.end_unix_s} before start_unix_s = {self.start_unix_s}"
            )
        for name in ENERGY_COUNTERS:
            check_energy(name, getattr(self, name))
        for name in ("soc_start", "soc_end"):
            soc = getattr(self, name)
            if soc is not None and not 0.0 <= soc <= 1.0:
                raise ValueError(f"session {name} = {soc!r} outside [0.0, 1.0]")


class OpenSession(msgspec.Struct, kw_only=True):
    """A plug-in session still going on at ``port``, kept so that the session continues across a
    daemon restart (one record for one plug-in). Changed in place by its tracker
    (``edge.daemon.sessions``); the store keeps a copy of what it is given."""

    port: str  # the power stage's name
    vehicle_key: str | None
    start_unix_s: float
    last_unix_s: float  # its last reading: where it ends if the EV leaves while no daemon runs
    e_charge_ac_wh: float = 0.0
    e_discharge_ac_wh: float = 0.0
    e_charge_dc_wh: float = 0.0
    e_discharge_dc_wh: float = 0.0
    soc_start: float | None = None
    soc_end: float | None = None  # the latest known
    limits_s: dict[str, float] = {}  # the command's binding names -> seconds each held
    unmeasured_s: float = 0.0  # reading gaps not integrated (stale data, a daemon not running)
    dc_measured: bool = False  # a DC power reading was seen (else the DC energy is not known)
    restarts: int = 0  # daemon restarts it continued across

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start_unix_s) and math.isfinite(self.last_unix_s)):
            raise ValueError(f"open session times {self.start_unix_s!r}, {self.last_unix_s!r} must be finite")
        for name in ENERGY_COUNTERS:
            check_energy(name, getattr(self, name))

    def record(self, end_unix_s: float, reasons: tuple[str, ...]) -> SessionRecord:
        """The finished session, ending at ``end_unix_s`` (not before its start: wall clocks step)."""
        return SessionRecord(
            vehicle_key=self.vehicle_key,
            start_unix_s=self.start_unix_s,
            end_unix_s=max(end_unix_s, self.start_unix_s),
            e_charge_ac_wh=self.e_charge_ac_wh,
            e_discharge_ac_wh=self.e_discharge_ac_wh,
            e_charge_dc_wh=self.e_charge_dc_wh,
            e_discharge_dc_wh=self.e_discharge_dc_wh,
            soc_start=self.soc_start,
            soc_end=self.soc_end,
            reasons=reasons,
        )


def check_energy(name: str, wh: float) -> None:
    """Raise ValueError unless ``name`` is an energy counter and ``wh`` a finite magnitude."""
    if name not in ENERGY_COUNTERS:
        raise ValueError(f"energy counter {name!r} unknown (known: {', '.join(ENERGY_COUNTERS)})")
    if not (math.isfinite(wh) and wh >= 0.0):
        raise ValueError(f"energy {name} = {wh!r} outside [0, inf)")


@dataclass(frozen=True)
class StoreStats:
    """What the store wrote since it was opened, and what went wrong."""

    bytes_written: int  # by the writer thread's write calls (edge.state.writer: what is measured)
    bytes_per_hour: float  # over the last hour (over the time since the open, when younger)
    bytes_dirtied: int  # page-cache pages it dirtied, in bytes: what writeback sends to the card
    dirtied_per_hour: float
    bytes_measured: bool  # False: both are a lower bound from the payload sizes (no /proc)
    transactions: int
    write_errors: int  # failed transactions (their data is kept and tried again)
    dropped: int  # events and sessions lost: no database, or too many kept while writes failed
    last_error: str | None  # of the last transaction, None once one succeeds
