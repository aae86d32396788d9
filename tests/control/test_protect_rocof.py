"""The ROCOF islanding detector against what IEEE 1547 requires to be ridden through, and against islands.

The detector trips on a rate of change of frequency beyond the category's ride-through (plus the error
of a frequency difference over the window) that keeps one sign over the pickup and is confirmed by a
later window. Ridden through: the 1547.1-style step pulse (60 -> 62.1 -> 60 Hz for 0.11 s), the 1547.1
ROCOF ramp at exactly the category's rate (Cat III 3 Hz/s, notes B.7) into the mandatory band and held,
with the 10 mHz steady-state measurement error on every sample, and a phase jump as a measured frequency
shows it (a spike of one or two samples). Detected: an island drifting beyond the limit, within 2 s.

Parameters come from settings (``params_from_settings``): the daemon owns anti-islanding, the inverter
the frequency trips (its backup's widened, delayed elements do not act on these excursions), so a trip
here is the ROCOF detector's. Daemon cycles of 0.1, 0.05 and 0.02 s, each excursion swept over its
phase against the cycle and the ROCOF window, the pickup at its default and at 0 (the shortest the
settings allow). Replayed on an injected clock through the compiled kernel and the reference.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from edge.control import _protect_c as _c
from edge.control import _protect_ref
from edge.control import protect_types as pt
from edge.control.protect_params import ProtectParams, params_from_settings
from edge.control.protect_types import Reason, State
from edge.settings.edit import set_value
from edge.settings.load import default_config_text, load_text

IMPLS = [pytest.param(_protect_ref.step, id="ref"), pytest.param(_c.step, id="compiled")]
CYCLES_S = [0.1, 0.05, 0.02]
LATENCY_S = 0.2
ISLAND_CLEARING_S = 2.0  # 1547 clause 8.1
RIDE_THROUGH_HZ_S = {"I": 0.5, "II": 2.0, "III": 3.0}  # 1547-2018 Table 21 (notes A.9)
F_ERROR_HZ = 0.01  # steady-state frequency accuracy, 1547-2018 Table 3 (notes A.11)

Step = Callable[[pt.FloatArray, pt.FloatArray, pt.FloatArray, pt.FloatArray], None]
Grid = Callable[[float], float]


def packed(category: str, cycle_s: float, pickup_s: float | None = None) -> ProtectParams:
    text = set_value(default_config_text(), "grid.voltage_trip.uv1.clearing_s", None)  # the bench's example
    changes: dict[str, object] = {
        "functions.anti_islanding": "daemon",
        "commissioning.abnormal_category": category,
        "daemon.cycle_s": cycle_s,
        "daemon.actuation_latency_s": LATENCY_S,
        # the ROCOF detector alone at the default path: no reactive dither (which this path cannot show
        # in time), the minimum-import check as the site's active method (idle here: no meter)
        "site.island_dither_pu": 0.0,
        "site.non_export": True,
        "site.min_import_w": 80.0,
    }
    if pickup_s is not None:
        changes["site.rocof_pickup_s"] = pickup_s
    for key, value in changes.items():
        text = set_value(text, key, value)
    return params_from_settings(load_text(text), measured_latency_s=LATENCY_S)


def replay(
    step: Step, params: ProtectParams, dt: float, seconds: float, f_hz: Grid
) -> tuple[float | None, Reason]:
    """In service from the first cycle (the inverter owns enter service), the frequency ``f_hz(t)``
    sampled every ``dt``; the time of the first trip (None: none) and its reason."""
    p = params.pack()
    s, x, o = pt.new_state(), pt.new_inputs(), pt.new_outputs()
    x[pt.I_V_MAX_PU] = x[pt.I_V_MIN_PU] = 1.0
    x[pt.I_P_REQ_W] = 3000.0
    x[pt.I_PHASE_JUMP_DEG] = math.nan  # a meter without angle: the frequency is all the detector sees
    for k in range(round(seconds / dt)):
        t = k * dt
        x[pt.I_T_S] = t
        x[pt.I_F_HZ] = f_hz(t)
        step(p, s, x, o)
        if k == 0:
            assert State(int(o[pt.O_STATE])) is State.NORMAL
        elif State(int(o[pt.O_STATE])) is State.TRIPPED:
            return t, Reason(int(o[pt.O_TRIP_REASON]))
    return None, Reason(0)


def offsets(dt: float) -> list[float]:
    """Start times swept over two ROCOF windows (0.2 s) in steps of a fifth of the cycle."""
    n = round(0.4 / (dt / 5.0))
    return [2.0 + k * dt / 5.0 for k in range(n)]


@pytest.mark.parametrize("step", IMPLS)
@pytest.mark.parametrize("dt", CYCLES_S)
@pytest.mark.parametrize("pickup_s", [None, 0.0])
def test_the_1547_1_step_pulse_is_ridden_through(step: Step, dt: float, pickup_s: float | None) -> None:
    """60 -> 62.1 -> 60 Hz for 0.11 s reads +x then -x over one window each: no drift. With a pickup
    of 0 (or one shorter than a window) the rise alone used to trip: one window held its value."""
    params = packed("II", dt, pickup_s)
    for start in offsets(dt):

        def f(t: float, start: float = start) -> float:
            return 62.1 if start <= t < start + 0.11 else 60.0

        when, why = replay(step, params, dt, 4.0, f)
        assert when is None, (start, why)


@pytest.mark.parametrize("step", IMPLS)
@pytest.mark.parametrize("dt", CYCLES_S)
@pytest.mark.parametrize("category", ["I", "II", "III"])
@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_the_category_rocof_ramp_into_the_mandatory_band_is_ridden_through(
    step: Step, dt: float, category: str, direction: float
) -> None:
    """1547.1 FRT (notes B.7): ramp at the category's ROCOF to 61.8 Hz (57.0 Hz) and hold, every
    sample off by up to the 10 mHz steady-state accuracy; several start phases and noise draws."""
    params = packed(category, dt)
    rate = RIDE_THROUGH_HZ_S[category]
    span_hz = 1.8 if direction > 0 else 3.0
    ramp_s = span_hz / rate
    for seed in range(8):
        rng = random.Random(seed)
        start = 1.0 + rng.uniform(0.0, 0.2)

        def f(t: float, start: float = start, rng: random.Random = rng) -> float:
            dev = min(max(0.0, t - start) * rate, span_hz)
            return 60.0 + direction * dev + rng.uniform(-F_ERROR_HZ, F_ERROR_HZ)

        when, why = replay(step, params, dt, start + ramp_s + 2.0, f)
        assert when is None, (seed, why)


@pytest.mark.parametrize("step", IMPLS)
@pytest.mark.parametrize("dt", CYCLES_S)
@pytest.mark.parametrize("spike_hz", [1.67, -1.67, 10.0, -10.0])
@pytest.mark.parametrize("samples", [1, 2])
@pytest.mark.parametrize("pickup_s", [None, 0.0])
def test_a_phase_jump_read_as_a_frequency_spike_is_ridden_through(
    step: Step, dt: float, spike_hz: float, samples: int, pickup_s: float | None
) -> None:
    """A 60 degree jump (single phase, 1547 rides it through) seen by a frequency measurement over
    0.1 s is a 1.67 Hz spike for a sample or two; over one 60 Hz cycle, 10 Hz. Either sign."""
    params = packed("II", dt, pickup_s)
    for start in offsets(dt):
        first = round(start / dt)

        def f(t: float, first: int = first) -> float:
            return 60.0 + (spike_hz if first <= round(t / dt) < first + samples else 0.0)

        when, why = replay(step, params, dt, 4.0, f)
        assert when is None, (start, why)


@pytest.mark.parametrize("step", IMPLS)
@pytest.mark.parametrize("dt", CYCLES_S)
@pytest.mark.parametrize("category", ["I", "II", "III"])
@pytest.mark.parametrize("factor", [1.5, 2.0])
@pytest.mark.parametrize("pickup_s", [None, 0.0])
def test_an_island_still_trips_within_two_seconds(
    step: Step, dt: float, category: str, factor: float, pickup_s: float | None
) -> None:
    """An island whose frequency drifts at 1.5 or 2 times the category's ride-through (beyond the
    detector's limit by more than a difference's error), with the measurement error on every sample:
    the detector trips within two windows (the one the drift starts in, the first whole one) and then
    the pickup or the confirming window, whichever is longer, of the drift's start (a window may close
    a cycle late: on the first sample at least the window after its start; the pickup ends on a
    sample too), and the output ceases within 2 s of it (latency included)."""
    params = packed(category, dt, pickup_s)
    rate = factor * RIDE_THROUGH_HZ_S[category]
    window_s = max(params.rocof_window_s, dt) + dt
    for seed in range(4):
        rng = random.Random(seed)
        start = 1.0 + rng.uniform(0.0, 0.2)

        def f(t: float, start: float = start, rng: random.Random = rng) -> float:
            return 60.0 - max(0.0, t - start) * rate + rng.uniform(-F_ERROR_HZ, F_ERROR_HZ)

        when, why = replay(step, params, dt, 4.0, f)
        assert when is not None, seed
        # Category I drifts slowly enough that a frequency trip element may act first; the others by ROCOF
        assert why & (Reason.ISLAND_ROCOF | Reason.UF1 | Reason.UF2), why
        if category != "I":
            assert Reason.ISLAND_ROCOF in why, why
        bound_s = 2.0 * window_s + max(params.rocof_pickup_s + dt, window_s)
        assert when - start <= bound_s + 1e-9, (seed, when - start)
        assert when - start + LATENCY_S <= ISLAND_CLEARING_S
