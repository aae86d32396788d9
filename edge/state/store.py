"""The daemon's state kept across restarts: vehicle records, energy counters, events, sessions
(finished, and the one going on at each port).

``StateStore.open(state_dir)`` runs once before the daemon cycles (it waits for the file to be opened,
checked and read). After that the event loop never touches the file: the write calls only queue
for the writer thread (``edge.state.writer``) and return, ``vehicle`` and ``open_session`` read the
copies loaded at open, and ``await flush()`` waits for the commit without blocking the loop. A database that cannot be
used leaves the store in memory only, with ``problem`` saying why (``edge.state.opening``).

The write calls are meant for one thread (the event loop's); the writer thread is the only other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import msgspec

from edge.estimation.record import SALT_BYTES, VehicleRecord, vehicle_key
from edge.state.opening import DB_FILE
from edge.state.records import ENERGY_COUNTERS, OpenSession, SessionRecord, StoreStats, check_energy
from edge.state.vehicles import StoredVehicle, decode_vehicle, encode_vehicle
from edge.state.writer import AddEvent, AddSession, Flush, PutOpenSession, PutVehicle, Writer

log = logging.getLogger(__name__)


class StateStore:
    """See the module docstring. Build with ``open``."""

    def __init__(
        self,
        path: Path,
        *,
        salt: bytes,
        vehicles: dict[str, StoredVehicle],
        energy: dict[str, float],
        open_sessions: dict[str, str],
        writer: Writer | None,
        problem: str | None,
    ) -> None:
        self.path = path
        self.problem = problem  # why the state is kept in memory only; None when it is on disk
        self._salt = salt
        self._vehicles = vehicles
        self._open_sessions = open_sessions  # port -> OpenSession JSON
        self._energy = {name: energy.get(name, 0.0) for name in ENERGY_COUNTERS}
        self._writer = writer
        self._closed = False
        self._memory_dropped = 0

    @classmethod
    def open(cls, state_dir: Path, *, clock: Callable[[], float] = time.monotonic) -> StateStore:
        """Open ``<state_dir>/state.db`` (blocking; before the daemon cycles). Never raises for a bad
        file or directory: the store then runs in memory only (see ``problem``).

        ``clock`` (monotonic seconds) times the bytes-per-hour window.
        """
        path = Path(state_dir) / DB_FILE
        writer = Writer(Path(state_dir), clock)
        opened = writer.start()
        if isinstance(opened, str):
            log.error("state not kept across restarts: %s; keeping it in memory only", opened)
            return cls(
                path,
                salt=secrets.token_bytes(SALT_BYTES),
                vehicles={},
                energy={},
                open_sessions={},
                writer=None,
                problem=opened,
            )
        return cls(
            path,
            salt=opened.salt,
            vehicles=opened.vehicles,
            energy=opened.energy,
            open_sessions=opened.open_sessions,
            writer=writer,
            problem=None,
        )

    # -- vehicles ---------------------------------------------------------------------------------

    def key(self, vehicle_id: str) -> str:
        """The pseudonymous key of ``vehicle_id`` (salted per installation; safe for telemetry)."""
        return vehicle_key(self._salt, vehicle_id)

    def vehicle(self, key: str) -> VehicleRecord | None:
        """The record kept under ``key`` (a new copy each call), or None. No disk access."""
        stored = self._vehicles.get(key)
        return None if stored is None else decode_vehicle(stored)

    def put_vehicle(self, key: str, record: VehicleRecord) -> None:
        """Keep ``record`` under ``key`` (queued; committed by the writer thread)."""
        self._check_open()
        # Encoded here, so that later changes to ``record`` reach neither the copy nor the file.
        stored = encode_vehicle(record)
        self._vehicles[key] = stored
        if self._writer is not None:
            self._writer.put(PutVehicle(key, stored, time.time()))

    # -- energy, events, sessions -----------------------------------------------------------------

    def add_energy(self, **deltas_wh: float) -> None:
        """Add to the lifetime counters (``ENERGY_COUNTERS``; Wh, >= 0). Committed with the next
        transaction, at the latest a minute later; raises ValueError naming a bad name or value."""
        self._check_open()
        for name, wh in deltas_wh.items():
            check_energy(name, wh)
        moved = {name: wh for name, wh in deltas_wh.items() if wh > 0.0}
        for name, wh in moved.items():
            self._energy[name] += wh
        if self._writer is not None and moved:  # an idle charger's zeros are not worth a commit
            self._writer.add_energy(moved)

    def energy(self) -> dict[str, float]:
        """Lifetime energy totals, Wh, including what is not committed yet."""
        return dict(self._energy)

    def event(
        self, kind: str, detail: Mapping[str, object] | None = None, *, t_unix_s: float | None = None
    ) -> None:
        """Record an event (queued); ``detail`` must be JSON-serialisable. Time: now unless given."""
        self._check_open()
        t = time.time() if t_unix_s is None else t_unix_s
        if not math.isfinite(t):
            raise ValueError(f"event t_unix_s = {t!r} is not finite")
        text = json.dumps(dict(detail or {}))
        if self._writer is None:
            self._memory_dropped += 1
            return
        self._writer.put(AddEvent(t, kind, text))

    def open_session(self, port: str) -> OpenSession | None:
        """The session going on at ``port`` when it was last kept (a new copy each call), or None."""
        text = self._open_sessions.get(port)
        return None if text is None else msgspec.json.decode(text, type=OpenSession)

    def put_open_session(self, session: OpenSession) -> None:
        """Keep the session going on at ``session.port`` (queued; replaces the one kept before)."""
        self._check_open()
        text = msgspec.json.encode(session).decode()
        self._open_sessions[session.port] = text
        if self._writer is not None:
            self._writer.put(PutOpenSession(session.port, text, time.time()))

    def write_session(self, record: SessionRecord, *, closes: str | None = None) -> None:
        """Record a finished plug-in session (queued). ``closes``: the port whose open session it
        ends, removed in the same transaction (a crash cannot leave both, or neither)."""
        self._check_open()
        if closes is not None:
            self._open_sessions.pop(closes, None)
        if self._writer is None:
            self._memory_dropped += 1
            return
        r = record
        row = (
            r.vehicle_key,
            r.start_unix_s,
            r.end_unix_s,
            r.e_charge_ac_wh,
            r.e_discharge_ac_wh,
            r.e_charge_dc_wh,
            r.e_discharge_dc_wh,
            r.soc_start,
            r.soc_end,
            json.dumps(list(r.reasons)),
        )
        self._writer.put(AddSession(row, closes))

    # -- flushing, closing, stats -----------------------------------------------------------------

    async def flush(self) -> bool:
        """Wait (without blocking the loop) until everything queued so far is committed, energy
        included. True when it is on disk; False in memory-only mode or when the write failed
        (the data is kept and tried again; see ``stats``)."""
        return await self._mark(stop=False)

    async def aclose(self) -> None:
        """Flush, close the database and end the writer thread. Further writes raise."""
        if self._closed:
            return
        await self._mark(stop=True)
        self._closed = True
        if self._writer is not None:
            self._writer.join()  # it has closed the file and is returning: no wait to speak of

    @property
    def stats(self) -> StoreStats:
        if self._writer is None:
            return StoreStats(
                bytes_written=0,
                bytes_per_hour=0.0,
                bytes_dirtied=0,
                dirtied_per_hour=0.0,
                bytes_measured=False,
                transactions=0,
                write_errors=0,
                dropped=self._memory_dropped,
                last_error=self.problem,
            )
        return self._writer.stats()

    async def _mark(self, *, stop: bool) -> bool:
        self._check_open()
        if self._writer is None:
            return False
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()

        def tell(ok: bool) -> None:
            loop.call_soon_threadsafe(_resolve, done, ok)

        self._writer.put(Flush(tell, stop=stop))
        return await done

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"state store {self.path} is closed")


def _resolve(fut: asyncio.Future[bool], ok: bool) -> None:
    if not fut.done():
        fut.set_result(ok)
