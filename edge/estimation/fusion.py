"""Fusion of the EV's own SoC (when the charger forwards it) into the filter.

The EV's figure is coarse (integer percent), late (forwarded over ISO 15118 / CHAdeMO every few
seconds, some seconds old) and on the EV's own scale (a display SoC with buffers at both ends), so
it is a measurement with a wide error, never an override: its variance is the quantisation, a
definition mismatch term and the charge that can flow during the worst-case delay. The mismatch is
the same in every figure (a bias, not noise), so a thousand figures know no more than one: they can
bring the estimate's variance down to that error, never below, and an estimate that knows better
(a well-observed OCV) is only checked against them. A figure more than ``gate`` sigmas away from the
estimate is rejected and counted. The owner's reserve uses the lower of the two figures, so a
disagreement can only make the reserve more conservative.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EvSocPolicy:
    quantum: float = 0.01  # resolution of the reported SoC (1 %)
    definition_sigma: float = 0.03  # display vs cell SoC scale mismatch
    max_delay_s: float = 10.0  # worst-case age of a forwarded figure
    gate: float = 3.0
    stale_s: float = 60.0  # older than this, the EV figure no longer bounds the reserve

    def variance(self, cell_i_a: float, capacity_ah: float) -> float:
        """Measurement variance of one EV SoC figure at the present cell current."""
        delay_soc = abs(cell_i_a) * self.max_delay_s / (3600.0 * capacity_ah)
        return self.quantum**2 / 12.0 + self.definition_sigma**2 + delay_soc**2


@dataclass
class EvSocState:
    """What the estimator remembers about the EV's figures."""

    last_soc: float | None = None
    last_t_s: float | None = None
    fused: int = 0  # figures that moved the estimate
    rejected: int = 0  # beyond the gate
    agreed: int = 0  # within the gate, the estimate already better than the figure: nothing to learn

    def fresh(self, t_s: float, policy: EvSocPolicy) -> bool:
        """Whether the EV's last figure is recent enough to bound the reserve."""
        return self.last_t_s is not None and t_s - self.last_t_s <= policy.stale_s

    def reserve_soc(self, own_soc: float, t_s: float, policy: EvSocPolicy) -> float:
        """The SoC the owner's reserve is judged on: the lower of ours and a fresh EV figure."""
        if self.last_soc is None or not self.fresh(t_s, policy):
            return own_soc
        return min(own_soc, self.last_soc)
