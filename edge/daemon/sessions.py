"""EV plug-in sessions from what the power stage reports, and the charger's lifetime energy counters.

``SessionTracker.update(snapshot, command)`` runs once per cycle. It does no I/O: the state store
queues what it is given for its writer thread.

- **Plug-in and unplug** come from ``stage.ev_state`` (``edge.daemon.vehicle.ev_present``). A reading
  that does not say leaves things as they are; a charger that never says is told once in the log:
  its sessions cannot be delimited and none is recorded (no session is invented from the power).
  The first reading that reports no EV ends the session at once, whatever power it last carried.
- **Energy** is integrated once per new reading (a reading's ``t_s`` is its read time: the same
  reading seen by several cycles counts once) over the interval from the previous one, trapezoidal,
  split at a zero crossing into in and out: AC from ``p_w``, DC from ``dc_p_w`` (P > 0 out of the
  EV). The interval goes to the lifetime counters and, when an EV was plugged in at its start, to
  the session. **An interval longer than** ``MAX_GAP_S`` (stale data: a lost link, a stalled poll)
  **or ending at a frozen reading is not integrated at all**: neither held nor interpolated, since
  the stage's power in it is unknown (the daemon's command may have changed, the stage's reversion
  timer may have zeroed it). Its time is reported in the session's reasons ("no readings 12 min:
  energy not counted"), so an under-count says so. An unplug reported after such a gap ends the
  session at the last reading that saw the EV.
- **Limits**: the command's ``binding`` names are timed over the session by the cycles' clock (the
  interval to the next cycle goes to the command in force over it); the record names the
  ``MAX_LIMIT_REASONS`` that held longest ("export_cap 62 min").
- **SoC** at start and end: the EV's reported SoC, else the estimate of the snapshot's battery view;
  the first and the last known while the EV was plugged in.
- **The vehicle key**: ``StateStore.key`` of ``edge.daemon.vehicle.vehicle_id``; the charger reports
  no identity today, so one vehicle per port (said once in the log).
- **Persistence**: the record is written once, when the session ends. The session going on is kept
  in the store (``put_open_session``) at plug-in, then once a minute of readings (the minutes of the
  battery tracker's checkpoints, so both land in one transaction) and at ``stop``; the lifetime
  energy is handed to the store at the same moments. A daemon restarted (or killed) with the EV
  still plugged in continues that session: one record for one plug-in, the downtime counted as
  unmeasured. When the first reading after a restart reports no EV, it left while no daemon ran:
  the session ends at its last known reading, with a reason saying so. The restart cannot tell
  whether another EV came and went in between.
"""

from __future__ import annotations

import logging
import math

import msgspec

from drivers.capabilities import PowerStageReading
from edge.daemon.battery import BatteryView, checkpoint_due, ev_soc_of
from edge.daemon.snapshot import Command, Snapshot
from edge.daemon.vehicle import ev_present, vehicle_id
from edge.state import ENERGY_COUNTERS, OpenSession, StateStore

log = logging.getLogger(__name__)

MAX_GAP_S = 5.0  # readings further apart than this are stale: the interval is not integrated
MAX_LIMIT_REASONS = 5
UNPLUGGED = "unplugged"
LEFT_WHILE_DOWN = "unplugged while the daemon was not running: ended at its last reading"
_H = 3600.0


class SessionStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The session going on, for status and telemetry (energies Wh, magnitudes)."""

    vehicle_key: str | None
    start_unix_s: float
    e_charge_ac_wh: float
    e_discharge_ac_wh: float
    e_charge_dc_wh: float
    e_discharge_dc_wh: float
    soc_start: float | None
    soc_now: float | None
    limits: list[str]  # what limited it longest, e.g. "export_cap 62 min"


class SessionTracker:
    """Sessions at ``port`` (the power stage's name) and the lifetime energy; see the module docstring."""

    def __init__(self, store: StateStore | None, *, port: str) -> None:
        self.store = store
        self.port = port
        self.session = store.open_session(port) if store is not None else None
        # A session kept by an earlier daemon: continued or ended by the first reading that says.
        self._restored = self.session is not None
        self._prev: PowerStageReading | None = None  # the last reading integrated
        self._cycle_t_s: float | None = None
        self._binding: tuple[str, ...] = ()  # of the command in force since the last cycle
        self._pending = dict.fromkeys(ENERGY_COUNTERS, 0.0)  # lifetime energy not handed over yet
        self._checkpoint_t_s: float | None = None
        self._state_seen = False
        self._told_no_state = False
        self._told_no_identity = False
        if self.session is not None:
            log.info(
                "a session at %s was going on when the daemon stopped (last reading %.0f, Unix time):"
                " continued if the EV is still plugged in",
                port,
                self.session.last_unix_s,
            )

    def update(self, snap: Snapshot, cmd: Command) -> None:
        """Advance with this cycle's pair (a stage reading already seen is not counted again)."""
        self._count_limits(snap.t_s)
        self._binding = tuple(cmd.binding)
        stage = snap.stage
        if stage is None or (self._prev is not None and stage.t_s <= self._prev.t_s):
            return
        t_unix = snap.t_unix_s - (snap.t_s - stage.t_s)  # the reading's own time
        present = ev_present(stage)
        if present is not None:
            self._state_seen = True
        elif not self._state_seen and not self._told_no_state:
            self._told_no_state = True
            log.warning(
                "power stage %s reports no EV state: plug-in sessions cannot be delimited and none is"
                " recorded (the lifetime energy counters still count)",
                self.port,
            )
        if self._restored and present is not None:
            self._resume(present, t_unix)
        measured = self._integrate(stage)
        s = self.session
        if s is None and present:
            self._start(stage, t_unix, _soc(stage, snap.battery))
        elif s is not None and not self._restored:
            if present is False:
                self._end(t_unix if measured else s.last_unix_s, UNPLUGGED)
            else:
                s.last_unix_s = max(s.last_unix_s, t_unix)
                soc = _soc(stage, snap.battery)
                if soc is not None:
                    s.soc_start = soc if s.soc_start is None else s.soc_start
                    s.soc_end = soc
        if self._checkpoint_t_s is None:
            self._checkpoint_t_s = stage.t_s
        elif checkpoint_due(self._checkpoint_t_s, stage.t_s):
            self._checkpoint_t_s = stage.t_s
            self._checkpoint()

    def stop(self) -> None:
        """The daemon stops: hand over the energy counted and keep the session going on for the next
        daemon. Call before the store is closed."""
        self._checkpoint()

    def status(self) -> SessionStatus | None:
        s = self.session
        if s is None:
            return None
        return SessionStatus(
            vehicle_key=s.vehicle_key,
            start_unix_s=s.start_unix_s,
            e_charge_ac_wh=s.e_charge_ac_wh,
            e_discharge_ac_wh=s.e_discharge_ac_wh,
            e_charge_dc_wh=s.e_charge_dc_wh,
            e_discharge_dc_wh=s.e_discharge_dc_wh,
            soc_start=s.soc_start,
            soc_now=s.soc_end,
            limits=_limits(s),
        )

    # -- the steps ---------------------------------------------------------------------------------

    def _count_limits(self, t_s: float) -> None:
        prev, self._cycle_t_s = self._cycle_t_s, t_s
        s = self.session
        if s is None or self._restored or prev is None or not 0.0 < t_s - prev <= MAX_GAP_S:
            return
        for name in self._binding:
            s.limits_s[name] = s.limits_s.get(name, 0.0) + (t_s - prev)

    def _resume(self, present: bool, t_unix: float) -> None:
        """The first reading after a restart that says whether the EV is there."""
        s = self.session
        assert s is not None
        self._restored = False
        if not present:
            self._end(s.last_unix_s, LEFT_WHILE_DOWN)
            return
        s.restarts += 1
        s.unmeasured_s += max(0.0, t_unix - s.last_unix_s)
        s.last_unix_s = max(s.last_unix_s, t_unix)
        log.info("the session at %s continues after a daemon restart", self.port)

    def _integrate(self, stage: PowerStageReading) -> bool:
        """Count the interval from the previous reading to ``stage``; False when it was not measured."""
        prev, self._prev = self._prev, stage
        if prev is None:
            return False
        dt = stage.t_s - prev.t_s
        into = self.session if not self._restored else None
        ac = None if dt > MAX_GAP_S or stage.frozen else _interval_wh(prev.p_w, stage.p_w, dt)
        if ac is None:
            if into is not None:
                into.unmeasured_s += dt
            return False
        deltas = {"e_discharge_ac_wh": ac[0], "e_charge_ac_wh": ac[1]}
        dc = _interval_wh(prev.dc_p_w, stage.dc_p_w, dt)
        if dc is not None:
            deltas.update(e_discharge_dc_wh=dc[0], e_charge_dc_wh=dc[1])
            if into is not None:
                into.dc_measured = True
        for name, wh in deltas.items():
            self._pending[name] += wh
            if into is not None:
                setattr(into, name, getattr(into, name) + wh)
        return True

    def _start(self, stage: PowerStageReading, t_unix: float, soc: float | None) -> None:
        key = None
        if self.store is not None:
            key = self.store.key(vehicle_id(self.port, stage))
            if not self._told_no_identity:
                self._told_no_identity = True
                log.info(
                    "power stage %s reports no vehicle identity: every EV at this port is one vehicle"
                    " (one battery record, one vehicle key in the session records)",
                    self.port,
                )
        self.session = OpenSession(
            port=self.port,
            vehicle_key=key,
            start_unix_s=t_unix,
            last_unix_s=t_unix,
            soc_start=soc,
            soc_end=soc,
        )
        log.info("EV plugged in at %s (SoC %s)", self.port, _pct(soc))
        if self.store is not None:
            self.store.put_open_session(self.session)

    def _end(self, end_unix_s: float, why: str) -> None:
        s, self.session = self.session, None
        assert s is not None
        record = s.record(end_unix_s, (why, *_limits(s), *_caveats(s)))
        self._hand_over_energy()
        if self.store is not None:
            self.store.write_session(record, closes=self.port)
        log.info(
            "session at %s ended (%s): %.0f min, AC %.2f kWh in / %.2f kWh out, SoC %s -> %s",
            self.port,
            why,
            (record.end_unix_s - record.start_unix_s) / 60.0,
            record.e_charge_ac_wh / 1000.0,
            record.e_discharge_ac_wh / 1000.0,
            _pct(record.soc_start),
            _pct(record.soc_end),
        )

    def _checkpoint(self) -> None:
        self._hand_over_energy()
        if self.store is not None and self.session is not None and not self._restored:
            self.store.put_open_session(self.session)

    def _hand_over_energy(self) -> None:
        pending, self._pending = self._pending, dict.fromkeys(ENERGY_COUNTERS, 0.0)
        if self.store is not None:
            self.store.add_energy(**pending)


def _interval_wh(p0_w: float | None, p1_w: float | None, dt_s: float) -> tuple[float, float] | None:
    """(energy out, energy in), Wh, magnitudes, of a power going linearly from ``p0_w`` to ``p1_w``
    over ``dt_s`` (> 0 is out), split where it crosses zero; None unless both are numbers."""
    if p0_w is None or p1_w is None or not (math.isfinite(p0_w) and math.isfinite(p1_w)):
        return None
    if (p0_w < 0.0) != (p1_w < 0.0):
        share = p0_w / (p0_w - p1_w)  # of the interval before the crossing
        parts = [0.5 * p0_w * share * dt_s, 0.5 * p1_w * (1.0 - share) * dt_s]
    else:
        parts = [0.5 * (p0_w + p1_w) * dt_s]
    return sum(x for x in parts if x > 0.0) / _H, -sum(x for x in parts if x < 0.0) / _H


def _soc(stage: PowerStageReading, battery: BatteryView) -> float | None:
    """The EV's reported SoC, else the estimate; None when neither is a SoC."""
    ev_soc = ev_soc_of(stage)
    if ev_soc is not None:
        return ev_soc
    own = battery.soc_est
    return own if 0.0 <= own <= 1.0 else None  # NaN fails both comparisons


def _duration(seconds: float) -> str:
    return f"{seconds / 60.0:.0f} min" if seconds >= 60.0 else f"{seconds:.0f} s"


def _limits(s: OpenSession) -> list[str]:
    held = sorted(s.limits_s.items(), key=lambda kv: -kv[1])[:MAX_LIMIT_REASONS]
    return [f"{name} {_duration(seconds)}" for name, seconds in held if seconds >= 1.0]


def _caveats(s: OpenSession) -> list[str]:
    out = []
    if s.unmeasured_s >= 1.0:
        out.append(f"no readings {_duration(s.unmeasured_s)}: energy not counted")
    if not s.dc_measured:
        out.append("no DC power readings: DC energy not counted")
    if s.restarts:
        out.append(f"continued across {s.restarts} daemon restart(s)")
    return out


def _pct(soc: float | None) -> str:
    return "unknown" if soc is None else f"{100.0 * soc:.0f} %"
