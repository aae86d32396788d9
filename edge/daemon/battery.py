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

from drivers.capabilities import PowerStageRatings, PowerStageReading
from edge.daemon.vehicle import ev_present, vehicle_id
from edge.estimation.estimator import (
    RESERVE_SIGMAS,
    BatteryEstimator,
    ChargerEfficiency,
    EvLimits,
    SampleError,
)
from edge.estimation.profile import configured_profile, pack_energy_per_soc_wh
from edge.settings.model import Battery
from edge.state import StateStore

log = logging.getLogger(__name__)

CHECKPOINT_PERIOD_S = 60.0


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


def reserve_soc(stage: PowerStageReading, battery: BatteryView) -> float:
    """The SoC the owner's reserve and departure are judged on (NaN when nothing is known).

    Where the EV reports its SoC, the lower of its figure and our estimate: the owner's reserve is on
    the scale the owner sees (the EV's, which knows its own fade), and our estimate only guards against
    a figure that reads high. Where it does not, our estimate's lower 2-sigma bound, not its point
    value: an uncertain estimate (an unknown vehicle, a flat LFP plateau, a cell whose OCV is not the
    profile's) must not spend the owner's reserve.
    """
    own = battery.soc_est
    ev_soc = stage.ev_soc
    if ev_soc is not None and not math.isnan(ev_soc):
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
    for limit in (stage.ev_p_max_discharge_w, battery.p_max_discharge_w):
        if limit is not None and not math.isnan(limit):
            p_dis = min(p_dis, limit)
    for limit in (stage.ev_p_max_charge_w, battery.p_max_charge_w):
        if limit is not None and not math.isnan(limit):
            p_chg = min(p_chg, limit)
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
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        profile = configured_profile(cfg.profile, cfg.series, cfg.parallel, cfg.sop_horizon_s)
        self.profile = profile
        self.estimate = cfg.estimate
        self.port = port
        self.horizon_s = cfg.sop_horizon_s
        self.efficiency = ChargerEfficiency(charge=cfg.charge_efficiency, discharge=cfg.discharge_efficiency)
        self.store = store
        # Stamps the electrolyte's memory in the records, so that a restarted daemon relaxes it by the
        # time that really passed (the readings' clock starts over with the process).
        self.wall_clock = wall_clock
        self.estimator: BatteryEstimator | None = None
        self._key: str | None = None
        self._last_t_s: float | None = None
        self._checkpoint_t_s = 0.0
        self._refusing = False
        self._nominal = BatteryView(e_per_soc_wh=pack_energy_per_soc_wh(profile))
        self.view = self._nominal

    def update(self, stage: PowerStageReading | None, *, at_rest: bool) -> BatteryView:
        """Advance with ``stage`` (a reading already seen is not fed twice)."""
        if not self.estimate or stage is None or stage.t_s == self._last_t_s:
            return self.view
        self._last_t_s = stage.t_s
        if ev_present(stage) is False:
            self.end_session()
            return self.view
        if stage.dc_v_v is None or stage.dc_i_a is None:
            self.view = self._unknown()
            return self.view
        est = self.estimator or self._start_session(stage)
        limits = EvLimits(
            max_charge_power_w=stage.ev_p_max_charge_w, max_discharge_power_w=stage.ev_p_max_discharge_w
        )
        try:
            est.update(
                stage.t_s, stage.dc_v_v, stage.dc_i_a, ev_soc=stage.ev_soc, ev_limits=limits, at_rest=at_rest
            )
        except SampleError as exc:
            if not self._refusing:
                log.warning("battery estimator refuses the power stage's DC readings: %s", exc)
            self._refusing = True
            self.view = self._unknown()
            return self.view
        if self._refusing:
            log.info("battery estimator accepts the DC readings again")
        self._refusing = False
        if (
            self.store is not None
            and self._key is not None
            and checkpoint_due(self._checkpoint_t_s, stage.t_s)
        ):
            self.store.put_vehicle(self._key, est.checkpoint(self.wall_clock() + CHECKPOINT_PERIOD_S))
            self._checkpoint_t_s = stage.t_s
        lim = next(x for x in est.limits() if x.horizon_s == self.horizon_s)
        self.view = BatteryView(
            est.soc, lim.export_ac_w, lim.import_ac_w, self._e_per_soc_wh(est), soc_sigma=est.soc_sigma
        )
        return self.view

    def _start_session(self, stage: PowerStageReading) -> BatteryEstimator:
        self._checkpoint_t_s = stage.t_s
        if self.store is not None:
            est, self._key = BatteryEstimator.for_vehicle(
                self.store,
                vehicle_id(self.port, stage),
                self.profile,
                efficiency=self.efficiency,
                t_unix_s=self.wall_clock(),
            )
        else:
            est = BatteryEstimator(self.profile, efficiency=self.efficiency)
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
        if est is None:
            return
        record = est.end_session(self.wall_clock())
        if self.store is not None and self._key is not None:
            self.store.put_vehicle(self._key, record)
