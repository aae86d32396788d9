"""Feed the EV pack's estimator from the power stage's DC readings, and hand the kernels its SoC and
state-of-power limits (AC side), and the departure planner the pack's energy per unit SoC.

One estimator per plug-in session, seeded with what the state store knows about the vehicle (SoH
converges over sessions), checkpointed to the store once a minute of reading time (so that a killed
daemon loses at most that much learning) and saved when the EV leaves or the daemon stops. The
tracker does no I/O: the store queues the records for its writer thread. The vehicle is named by
``edge.daemon.vehicle`` (today: one vehicle per port, the charger reports no identity).

Whatever the estimator cannot judge (no DC readings, a sample it refuses) yields "unknown": NaN SoC
and no limits of its own, so the kernels fall back to the EV's and the ratings (and an unknown SoC
on both sides blocks discharge in kernel I). The pack's energy per unit SoC is always known: from
the estimator's SoH capacity during a session, else (no session yet, ``battery.estimate = false``)
from the configured profile and pack layout alone.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drivers.capabilities import PowerStageRatings, PowerStageReading
from edge.daemon.vehicle import NO_SOC_STATES, ev_present, vehicle_id
from edge.estimation.estimator import (
    RESERVE_SIGMAS,
    BatteryEstimator,
    ChargerEfficiency,
    EvLimits,
    SampleError,
    widened,
)
from edge.estimation.profile import configured_profile, pack_energy_per_soc_wh
from edge.estimation.record import ClockStamp
from edge.settings.model import Battery
from edge.state import StateStore

log = logging.getLogger(__name__)

CHECKPOINT_PERIOD_S = 60.0
# A record is also written when the electrolyte's memory rises above the last one's by this share, to
# a current that matters (BatteryEstimator.electrolyte_relevant_a), at most every so many seconds of
# readings unless it more than doubles (a daemon killed within them leaves the rise before it).
RISE_SHARE = 1.1
RISE_CHECKPOINT_MIN_S = 10.0
# The next checkpoint comes with the first reading of the next minute: up to a reading interval late
# (twice the stage's poll period, 5 s at least).
STAMP_MARGIN_S = 5.0
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


def current_boot_id() -> str:
    """This boot's id (Linux), "" where there is none: then only the wall clock stamps."""
    try:
        return BOOT_ID_PATH.read_text(encoding="ascii").strip()
    except OSError:
        return ""


def checkpoint_due(last_t_s: float, t_s: float) -> bool:
    """Whether a reading at ``t_s`` starts a new minute of the readings' clock since ``last_t_s``.

    Every tracker that checkpoints to the store uses the same minutes, so that their records go to
    the writer in the same cycle and are committed in one transaction (each commit costs the SD
    card pages of its own; docs/state.md).
    """
    return t_s // CHECKPOINT_PERIOD_S != last_t_s // CHECKPOINT_PERIOD_S


@dataclass(frozen=True)
class BatteryView:
    """What the kernels take from the estimator: NaN / None where it does not know."""

    soc_est: float = math.nan
    p_max_discharge_w: float | None = None  # AC side, magnitude
    p_max_charge_w: float | None = None
    e_per_soc_wh: float = math.nan  # the pack's DC energy per unit SoC (edge.estimation.profile)
    soc_sigma: float = 0.0  # standard deviation of soc_est (the estimator's, model error included)


UNKNOWN = BatteryView()


def ev_soc_of(stage: PowerStageReading) -> float | None:
    """The EV's SoC as the stage forwards it, None unless it is one (0..1): a map without bounds that
    forwards percent (85) read as a known SoC far above any reserve, and the estimator refused every
    sample that carried it. None too where the stage's state says no EV's battery has reported
    (``NO_SOC_STATES``)."""
    soc = stage.ev_soc
    if soc is None or not 0.0 <= soc <= 1.0:
        return None
    if stage.ev_state is not None and stage.ev_state.lower() in NO_SOC_STATES:
        return None
    return soc


def reserve_soc(stage: PowerStageReading, battery: BatteryView) -> float:
    """The SoC the owner's reserve and departure are judged on (NaN when nothing is known).

    Where the EV reports its SoC, the lower of its figure and our estimate: the owner's reserve is on
    the scale the owner sees (the EV's, which knows its own fade), and our estimate only guards against
    a figure that reads high. Where it does not, our estimate's lower 2-sigma bound, not its point
    value: an uncertain estimate (an unknown vehicle, a flat LFP plateau, a cell whose OCV is not the
    profile's) must not spend the owner's reserve.
    """
    own = battery.soc_est
    ev_soc = ev_soc_of(stage)
    if ev_soc is not None:
        return ev_soc if math.isnan(own) else min(ev_soc, own)
    if math.isnan(own):
        return math.nan
    return max(0.0, own - RESERVE_SIGMAS * battery.soc_sigma)


def power_limits(
    ratings: PowerStageRatings | None, stage: PowerStageReading, battery: BatteryView
) -> tuple[float, float]:
    """(discharge, charge) magnitudes the AC side may take now: the lowest of the charger's ratings,
    the EV's limits and the estimator's state of power (no ratings read yet: nothing)."""
    p_dis = ratings.p_max_export_w if ratings else 0.0
    p_chg = ratings.p_max_charge_w if ratings else 0.0
    # A negative limit is no magnitude: nothing on that side (the planner refuses a negative one).
    for limit in (stage.ev_p_max_discharge_w, battery.p_max_discharge_w):
        if limit is not None and not math.isnan(limit):
            p_dis = min(p_dis, max(limit, 0.0))
    for limit in (stage.ev_p_max_charge_w, battery.p_max_charge_w):
        if limit is not None and not math.isnan(limit):
            p_chg = min(p_chg, max(limit, 0.0))
    return p_dis, p_chg


class BatteryTracker:
    """The estimator of the EV plugged in at ``port`` (the power stage's name), fed once per new
    power-stage reading; with ``cfg.estimate`` off it only reports the nominal pack's energy."""

    def __init__(
        self,
        cfg: Battery,
        store: StateStore | None,
        *,
        port: str,
        revert_s: float = 10.0,
        reading_s: float = 1.0,
        wall_clock: Callable[[], float] = time.time,
        mono_clock: Callable[[], float] = time.monotonic,
        boot_id: str | None = None,
    ) -> None:
        """``revert_s``: the power stage's own reversion time (a killed daemon's last setpoint holds
        that long), ``reading_s`` its poll period; the clocks and ``boot_id`` stamp the electrolyte's
        memory in the records, so that a restarted daemon relaxes it by the time that really passed
        (``edge.estimation.record``)."""
        profile = configured_profile(cfg.profile, cfg.series, cfg.parallel, cfg.sop_horizon_s)
        self.profile = profile
        self.estimate = cfg.estimate
        self.port = port
        self.horizon_s = cfg.sop_horizon_s
        self.efficiency = ChargerEfficiency(charge=cfg.charge_efficiency, discharge=cfg.discharge_efficiency)
        self.store = store
        self.revert_s = revert_s
        self.reading_s = reading_s
        self.wall_clock = wall_clock
        self.mono_clock = mono_clock
        self.boot_id = current_boot_id() if boot_id is None else boot_id
        self.estimator: BatteryEstimator | None = None
        self._key: str | None = None
        self._last_t_s: float | None = None
        self._checkpoint_t_s = 0.0
        self._written_held = (0.0, 0.0)  # the electrolyte's memory in the last record written
        self._rise_written_s = -math.inf
        # The largest cell currents (discharge, charge) the stage's power told before a session had
        # an accepted sample.
        self._unseen = (0.0, 0.0)
        self._refusing = False
        self._nominal = BatteryView(e_per_soc_wh=pack_energy_per_soc_wh(profile))
        self.view = self._nominal

    def _now(self) -> ClockStamp:
        return ClockStamp(self.wall_clock(), self.mono_clock(), self.boot_id)

    def update(self, stage: PowerStageReading | None, *, at_rest: bool) -> BatteryView:
        """Advance with ``stage`` (a reading already seen is not fed twice)."""
        if not self.estimate or stage is None or stage.t_s == self._last_t_s:
            return self.view
        self._last_t_s = stage.t_s
        if ev_present(stage) is False:
            self.end_session()
            return self.view
        if stage.dc_v_v is None or stage.dc_i_a is None:
            self._blind(stage)
            return self.view
        est = self.estimator or self._start_session(stage)
        limits = EvLimits(
            max_charge_power_w=stage.ev_p_max_charge_w, max_discharge_power_w=stage.ev_p_max_discharge_w
        )
        try:
            est.update(
                stage.t_s,
                stage.dc_v_v,
                stage.dc_i_a,
                ev_soc=ev_soc_of(stage),
                ev_limits=limits,
                at_rest=at_rest,
            )
        except SampleError as exc:
            if not self._refusing:
                log.warning("battery estimator refuses the power stage's DC readings: %s", exc)
            self._refusing = True
            self._blind(stage)
            return self.view
        if self._refusing:
            log.info("battery estimator accepts the DC readings again")
        self._refusing = False
        self._keep(est, stage.t_s)
        lim = next(x for x in est.limits() if x.horizon_s == self.horizon_s)
        self.view = BatteryView(
            est.soc, lim.export_ac_w, lim.import_ac_w, self._e_per_soc_wh(est), soc_sigma=est.soc_sigma
        )
        return self.view

    def _blind(self, stage: PowerStageReading) -> None:
        """No accepted sample: no SoC or limits of our own; the electrolyte's memory takes the current
        the stage's power says flows."""
        self.view = self._unknown()
        est = self.estimator
        if est is None:
            # Before the session's first accepted sample (a daemon restarted while the readings are
            # missing): kept for the session to hold from its start.
            i_cell = self._cell_current_a(stage, self.profile.soc_to_ocv(0.5))
            if i_cell is not None:
                self._unseen = widened(self._unseen, i_cell)
            return
        est.blind(self._cell_current_a(stage, est.cell_v))
        self._keep(est, stage.t_s)

    def _cell_current_a(self, stage: PowerStageReading, cell_v: float) -> float | None:
        """The cell current (discharge positive) a reading tells without an accepted sample: its DC
        power, else its AC power (less the charger's losses at most: the larger magnitude), over the
        pack's voltage (the reading's if plausible, else ``cell_v``'s); the DC current only
        where there is no power (the refused field may be the current). None where nothing tells."""
        p = self.profile
        v_cell_ok = stage.dc_v_v is not None and p.cell_v_min <= stage.dc_v_v / p.series <= p.cell_v_max
        v_pack = stage.dc_v_v if v_cell_ok and stage.dc_v_v is not None else cell_v * p.series
        if stage.dc_p_w is not None and math.isfinite(stage.dc_p_w):
            return stage.dc_p_w / v_pack / p.parallel
        if stage.p_w is not None and math.isfinite(stage.p_w):
            eff = min(self.efficiency.charge, self.efficiency.discharge)
            return stage.p_w / eff / v_pack / p.parallel
        if stage.dc_i_a is not None and math.isfinite(stage.dc_i_a):
            return stage.dc_i_a / p.parallel
        return None

    def _keep(self, est: BatteryEstimator, t_s: float) -> None:
        """Checkpoint once a minute of reading time, and soon when the electrolyte's memory rises well
        above the last record's to a current that matters (a charge that starts after a checkpoint: a
        killed daemon would otherwise leave a record that says nothing of it)."""
        if self.store is None or self._key is None:
            return
        held = est.held_now()
        relevant = est.electrolyte_relevant_a()
        rise, doubled = False, False
        for h, w in zip(held, self._written_held, strict=True):
            if h >= relevant and h > RISE_SHARE * w:
                rise = True
                doubled = doubled or h > 2.0 * w
        due = checkpoint_due(self._checkpoint_t_s, t_s)
        if not (due or (rise and (doubled or t_s - self._rise_written_s >= RISE_CHECKPOINT_MIN_S))):
            return
        # Until the next checkpoint, and the power stage's own reversion after it, the present current
        # may flow on if the process dies now.
        self.store.put_vehicle(self._key, est.checkpoint(self._now().plus(self._ahead_s())))
        self._written_held = held
        if due:
            self._checkpoint_t_s = t_s
        else:
            self._rise_written_s = t_s

    def _ahead_s(self) -> float:
        return CHECKPOINT_PERIOD_S + max(STAMP_MARGIN_S, 2.0 * self.reading_s) + self.revert_s

    def _start_session(self, stage: PowerStageReading) -> BatteryEstimator:
        self._checkpoint_t_s = stage.t_s
        if self.store is not None:
            est, self._key = BatteryEstimator.for_vehicle(
                self.store,
                vehicle_id(self.port, stage),
                self.profile,
                efficiency=self.efficiency,
                now=self._now(),
            )
            self._written_held = est.held_now()  # the record's memory, relaxed to now
        else:
            est = BatteryEstimator(self.profile, efficiency=self.efficiency)
        # What the charger drove while the readings were missing before this first accepted sample.
        dis, chg = self._unseen
        for i_cell in (dis, -chg):
            if i_cell:
                est.blind(i_cell)
        self._unseen = (0.0, 0.0)
        self.estimator = est
        log.info(
            "battery session started at %s (profile %s, %d sessions known)",
            self.port,
            self.profile.name,
            est.record.sessions,
        )
        return est

    def _e_per_soc_wh(self, est: BatteryEstimator) -> float:
        return pack_energy_per_soc_wh(self.profile, est.soh.capacity_ah)

    def _unknown(self) -> BatteryView:
        """No SoC or limits; the pack energy of this session's vehicle where there is one."""
        est = self.estimator
        return self._nominal if est is None else BatteryView(e_per_soc_wh=self._e_per_soc_wh(est))

    def telemetry(self) -> dict[str, float]:
        if self.estimator is None:
            return {}
        return {name: float(value) for name, value in self.estimator.telemetry().items()}

    def sop_basis(self) -> str | None:
        """What the SoP limits rest on (``BatteryEstimator.sop_basis``); None without an estimate."""
        return None if self.estimator is None else self.estimator.sop_basis

    def end_session(self) -> None:
        """The EV left (or the daemon stops): keep what was learnt about it."""
        est, self.estimator = self.estimator, None
        self.view = self._nominal
        self._unseen = (0.0, 0.0)
        if est is None:
            return
        # A clean end: the stage is stopped (or the EV gone); should the stop fail, it reverts.
        record = est.end_session(self._now().plus(self.revert_s))
        if self.store is not None and self._key is not None:
            self.store.put_vehicle(self._key, record)
