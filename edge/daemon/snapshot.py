"""What one cycle saw and what it decided: a frozen ``Snapshot`` in, a ``Command`` out.

The cycle builds exactly one Snapshot (every input the controllers use, time included) and maps it
to one Command; status, telemetry, the setpoint write and the recorder are all built from that pair,
so that nothing reports a value the controllers did not see. Both are plain frozen dataclasses that
msgspec encodes and decodes, so a ring of recent pairs can be dumped from a charger in the field and
replayed on a desk (``edge.daemon.recorder``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from drivers.capabilities import MeterReading, PowerStageRatings, PowerStageReading
from edge.daemon.battery import UNKNOWN, BatteryView
from edge.daemon.dispatch import Basis


@dataclass(frozen=True)
class Dither:
    """The daemon's active anti-islanding in a cycle (functions.anti_islanding = "daemon" with the
    reactive dither), as the status file carries it: the dither's amplitude, the dither the kernel
    asked in this cycle's Q (0 while not exporting; before the reactive limits' clamp), the last
    frequency response it measured and how long ago (None until one; kept after the output stopped,
    so that the response that tripped stays readable), and what trips. Defaults, so that a reader of
    another version still reads the file."""

    amplitude_var: float = 0.0  # site.island_dither_pu x inverter.s_rated_va
    q_var: float = 0.0
    response_hz: float | None = None
    response_age_s: float | None = None
    threshold_hz: float = 0.0  # site.island_dither_df_hz
    halves: int = 0  # site.island_dither_halves responses above it in a row trip


@dataclass(frozen=True)
class Snapshot:
    """Every input of one cycle. ``t_s`` is monotonic time (the control timers' only clock);
    ``t_unix_s`` is the wall clock: it dates reports and decided the dispatch's start and expiry."""

    t_s: float
    t_unix_s: float
    meter: MeterReading | None
    stage: PowerStageReading | None
    ratings: PowerStageRatings | None
    dispatch: Basis  # the mode in force and what it asks, before any grid function or limit
    battery: BatteryView = UNKNOWN
    p_max_w: float = math.inf  # the owner's departure: an upper bound on the basis (< 0: must charge)
    stop_request: bool = False  # a clean (non-protective) stop is under way: ramp down
    u_rand: float = 0.0  # a uniform draw in [0, 1): the randomized enter-service delay's share

    def meter_age_s(self) -> float | None:
        return None if self.meter is None else self.t_s - self.meter.t_s

    def stage_age_s(self) -> float | None:
        return None if self.stage is None else self.t_s - self.stage.t_s

    def f_hz(self) -> float | None:
        """The grid frequency: the site meter's, else the power stage's."""
        if self.meter is not None and self.meter.f_hz is not None:
            return self.meter.f_hz
        return None if self.stage is None else self.stage.f_hz


@dataclass(frozen=True)
class Command:
    """What the cycle decided: the setpoint, whether the stage must operate, and why.

    ``service`` is True when the stage must be operating (start it if it is stopped), False when it
    must be stopped by command (a trip, or enter service not yet allowed), None when the cycle has
    nothing to decide it on (no stage data, commissioning lock): the stage's operation is left as it
    is and only P = Q = 0 is written.
    """

    p_w: float
    q_var: float
    service: bool | None
    state: str
    binding: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    p_request_w: float = 0.0
    v_pu: float | None = None
    es_remaining_s: float | None = None  # waiting to enter service: how long still
    dither: Dither | None = None  # the daemon's active anti-islanding; None where it runs none

    @property
    def stop(self) -> bool:
        return self.service is False

    def summary(self) -> str:
        """One line for ``systemctl status`` (STATUS=) and the log."""
        if self.service is True and self.state in ("normal", "ramping"):
            why = f" ({', '.join(self.binding)})" if self.binding else ""
            return f"{self.state}: P {self.p_w:.0f} W{why}, Q {self.q_var:.0f} var"
        reasons = "; ".join(self.reasons) if self.reasons else self.state
        if self.es_remaining_s is not None:
            reasons += f"; enters service in {self.es_remaining_s:.0f} s if the grid stays within the window"
        held = "stopped" if self.service is False else "holding P = Q = 0"
        return f"{self.state}: {held}: {reasons}"
