"""What a conformance test is: a scenario (plant, daemon settings, timeline) and a judge that turns the
plant's recorded signals into rows of the summary table a lab engineer reads (test, setting, measured,
limit, verdict), each with the band it was judged against for the plot.

Tests are built in Python (the step sequences are computed from the characteristic under test), run
with :func:`hil.runner.run_one` and judged here, not by the scenario's own ``checks``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from hil.scenario import Scenario

Owner = Literal["daemon", "inverter"]
Columns = Mapping[str, Sequence[float]]

# Before a full test's first stimulus, on top of its own settling: the daemon's own start and entry
# into service (1-2 s alone; with 22 runs started on the 2-core bench by `--jobs` 4-7 s to ready, and
# with 36 running the first start command came 7.4 s in and a 12 s lead was not enough). The quick
# subset runs one at a time (CI) and keeps its budget.
START_S = 10.0


def start_lead_s(quick: bool) -> float:
    """What a test adds before its first stimulus for a slow start: START_S for a full test."""
    return 0.0 if quick else START_S


@dataclass(frozen=True)
class Band:
    """The tolerance band a row was judged against, for its plot: ``lo``/``hi`` over ``t_s``. A NaN in
    ``t_s`` separates pieces (the response band at Tr, the steady-state window); an infinite bound is
    a one-sided limit (drawn to the edge of the plot)."""

    signal: str
    t_s: tuple[float, ...]
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    marks: tuple[tuple[float, float], ...] = ()  # (t_s, value) points that were judged
    # The recorded signal is divided by this for the plot (a band in per unit of the rating: the
    # rating in the signal's unit); 1.0: the band is in the signal's own unit.
    scale: float = 1.0
    stimulus: str = ""  # a second recorded signal drawn on its own axis (grid_v_pu, grid_f_hz)


@dataclass(frozen=True)
class Row:
    """One line of the summary table."""

    test: str  # "VV char 1 step h (V3 + av)"
    setting: str  # "V3 1.02 pu, Tr 5 s"
    measured: str  # "Q(Tr) -0.212 pu"
    limit: str  # "[-0.236, -0.190] pu"
    passed: bool
    band: Band | None = None
    window_s: tuple[float, float] | None = None  # the part of the run the plot shows


Judge = Callable[[Columns], list[Row]]


@dataclass(frozen=True)
class ConformanceTest:
    id: str  # unique slug: "vv-char1-daemon"
    title: str
    clause: str  # "IEEE 1547.1-2020 5.14.4"
    owner: Owner
    scenario: Scenario
    judge: Judge
    quick: bool = False  # part of the CI subset
    notes: tuple[str, ...] = field(default_factory=tuple)  # deviations from the clause, said in the report
    # A local dispatch (W, > 0 export) the suite writes to the daemon's state dir before the run
    # (``operation.mode = "v2g"`` in the scenario's daemon settings makes the daemon follow it).
    dispatch_p_w: float | None = None
