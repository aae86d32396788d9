"""The owner's reserve where the EV does not report its SoC is judged on our estimate's lower 2-sigma
bound, not on its point value: an uncertain estimate must not spend the reserve (issue 17). Where the
EV reports its SoC, on the lower of its figure and our point estimate."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from drivers.capabilities import PowerStageRatings, PowerStageReading
from edge.daemon.battery import BatteryTracker, BatteryView, ev_soc_of, power_limits, reserve_soc
from edge.estimation.profile import load_profile
from edge.settings.model import Battery
from edge.state import StateStore

PORT = "inverter"


def stage(t_s: float, pack_v_v: float, ev_soc: float | None = None) -> PowerStageReading:
    return PowerStageReading(
        t_s=t_s, p_w=0.0, dc_v_v=pack_v_v, dc_i_a=0.0, ev_state="CONNECTED", ev_soc=ev_soc
    )


def test_the_reserve_uses_the_lower_bound_of_an_uncertain_estimate() -> None:
    s = PowerStageReading(t_s=0.0, p_w=0.0)
    assert reserve_soc(s, BatteryView(soc_est=0.5, soc_sigma=0.04)) == pytest.approx(0.42)
    assert reserve_soc(s, BatteryView(soc_est=0.05, soc_sigma=0.1)) == 0.0  # never below empty
    assert math.isnan(reserve_soc(s, BatteryView()))
    # Where the EV reports its SoC, the reserve is on the EV's scale: the lower of its figure and our
    # point estimate, whatever our sigma (an unknown fade widens our band, not the EV's figure).
    with_ev = PowerStageReading(t_s=0.0, p_w=0.0, ev_soc=0.35)
    assert reserve_soc(with_ev, BatteryView(soc_est=0.5, soc_sigma=0.04)) == pytest.approx(0.35)
    assert reserve_soc(with_ev, BatteryView(soc_est=0.38, soc_sigma=0.10)) == pytest.approx(0.35)
    assert reserve_soc(with_ev, BatteryView(soc_est=0.32, soc_sigma=0.10)) == pytest.approx(0.32)
    assert reserve_soc(with_ev, BatteryView()) == pytest.approx(0.35)


@pytest.mark.parametrize("state", ["DISCONNECTED", "INITIALIZING", "A", "unplugged"])
def test_a_figure_no_ev_has_reported_is_not_its_soc(state: str) -> None:
    # A SunSpec stage may hold 0 % while no EV is plugged in or its battery has not reported yet: read
    # as a known SoC it put the owner's reserve at empty (and fused an empty pack into the estimate).
    none_yet = PowerStageReading(t_s=0.0, p_w=0.0, ev_state=state, ev_soc=0.0)
    assert ev_soc_of(none_yet) is None
    assert reserve_soc(none_yet, BatteryView(soc_est=0.5, soc_sigma=0.04)) == pytest.approx(0.42)
    # Once the EV is connected its figure is its own, 0 % included; a stage that states nothing is
    # taken at its figure, as before.
    for reported in ("CONNECTED", "STANDBY", None):
        s = PowerStageReading(t_s=0.0, p_w=0.0, ev_state=reported, ev_soc=0.0)
        assert ev_soc_of(s) == 0.0


@pytest.mark.parametrize("profile", ["nmc-lgm50", "lfp-a123-26650"])
def test_the_tracker_hands_the_reserve_the_estimators_band(
    open_state: Callable[..., StateStore], tmp_path: Path, profile: str
) -> None:
    # A resting pack at 60 % read through the real tracker: the view carries the estimator's sigma,
    # and the reserve sits 2 sigma below the estimate (on LFP's plateau that is several points).
    p = load_profile(profile)
    pack_v = float(np.interp(0.6, p.ocv_soc, p.ocv_v)) * p.series
    tracker = BatteryTracker(Battery(profile=profile), open_state(tmp_path), port=PORT)
    for t in range(120):
        view = tracker.update(stage(float(t), pack_v), at_rest=True)
    est = tracker.estimator
    assert est is not None
    assert view.soc_sigma == pytest.approx(est.soc_sigma)
    assert view.soc_sigma > 0.0
    reserve = reserve_soc(stage(120.0, pack_v), view)
    assert reserve == pytest.approx(view.soc_est - 2.0 * view.soc_sigma)
    assert reserve < view.soc_est
    assert est.reserve_soc == pytest.approx(reserve)


def test_an_ev_soc_that_is_no_soc_is_not_taken_for_one(tmp_path: Path) -> None:
    # A map without bounds forwarding percent: 85 read as a known SoC far above any reserve, and the
    # estimator refused every sample that carried it (blind for the whole session).
    s = PowerStageReading(t_s=0.0, p_w=0.0, ev_soc=85.0)
    assert math.isnan(reserve_soc(s, BatteryView()))
    assert reserve_soc(s, BatteryView(soc_est=0.5, soc_sigma=0.04)) == pytest.approx(0.42)
    profile = load_profile("nmc-lgm50")
    tracker = BatteryTracker(Battery(), None, port=PORT)
    v = float(np.interp(0.6, profile.ocv_soc, profile.ocv_v)) * profile.series
    for t in range(5):
        view = tracker.update(
            PowerStageReading(t_s=float(t), p_w=0.0, dc_v_v=v, dc_i_a=0.0, ev_state="CONNECTED", ev_soc=85.0),
            at_rest=True,
        )
    assert not math.isnan(view.soc_est) and tracker.estimator is not None
    assert tracker.estimator.samples == 5  # every sample taken, the figure left out


def test_a_negative_ev_power_limit_allows_nothing_on_its_side() -> None:
    ratings = PowerStageRatings(t_s=0.0, p_max_export_w=7000.0, p_max_charge_w=7000.0)
    s = PowerStageReading(t_s=0.0, p_w=0.0, ev_p_max_charge_w=-50.0, ev_p_max_discharge_w=math.nan)
    assert power_limits(ratings, s, BatteryView()) == (7000.0, 0.0)  # never a negative magnitude
