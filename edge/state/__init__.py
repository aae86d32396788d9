"""Crash-safe daemon state in ``<state_dir>/state.db`` (SQLite, write-ahead log, written off the
event loop): per-vehicle battery records, lifetime energy counters, events and session records.

Import from here: ``StateStore`` (``store``; its writer thread in ``writer``, the checks and
migrations at open in ``opening`` and ``schema``), ``SessionRecord``, ``OpenSession``, ``StoreStats``
and ``ENERGY_COUNTERS`` (``records``). See docs/state.md.
"""

from edge.state.records import ENERGY_COUNTERS, OpenSession, SessionRecord, StoreStats
from edge.state.store import StateStore

__all__ = ["ENERGY_COUNTERS", "OpenSession", "SessionRecord", "StateStore", "StoreStats"]
