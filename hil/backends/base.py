"""The backend interface: what the runner needs from a plant, simulated or real.

A backend starts and stops, keeps scenario time (``t_s``, seconds since start), applies plant events
at their ``at_s``, says where the daemon finds the power stage and the site meter, gives the site
facts the daemon config is commissioned with, and returns the recorded signals (the names of
:data:`hil.plant.recorder.SIGNALS`; a lab backend fills those it can measure and leaves the others out).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import Any

from hil.plant.core import DeviceAddress
from hil.plant.events import PlantEvent


class UnsupportedEventError(ValueError):
    """An event this backend cannot perform (e.g. a frozen meter on real equipment)."""


class Backend(abc.ABC):
    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @property
    @abc.abstractmethod
    def t_s(self) -> float:
        """Scenario time, s."""

    @abc.abstractmethod
    async def wait_until(self, t_s: float) -> None: ...

    @abc.abstractmethod
    def schedule(self, events: Iterable[PlantEvent]) -> None:
        """Apply each event at its ``at_s``; raises UnsupportedEventError before anything runs."""

    @abc.abstractmethod
    def daemon_addresses(self) -> list[DeviceAddress]:
        """Where the daemon reaches the power stage and the site meter."""

    @abc.abstractmethod
    def site_facts(self) -> dict[str, Any]:
        """``f_nominal_hz``, ``v_nominal_v``, ``phases`` and ``inverter`` (the daemon's [inverter] table)."""

    @abc.abstractmethod
    def columns(self) -> dict[str, list[float]]:
        """Recorded signals, ``t_s`` first."""

    def stats(self) -> dict[str, Any]:
        return {}

    def describe_config(self) -> str:
        """The backend's settings as TOML text, kept in the report folder."""
        return ""
