"""The grid source (programmable per-phase voltage, frequency with an optional ROCOF ramp, phase angle,
breaker) and the island.

While the breaker is closed the local bus follows the source. When it opens, the local bus is the
house load seen as a parallel RLC with quality factor Qf (IEEE 1547.1 islanding test load, Qf = 1.0),
fed by whatever the grid-following sources still inject. The voltage settles where the load takes the
injected active power, V = Vn·sqrt(P_gen / P_load), and the frequency where the LC branch takes the
injected reactive power: more injected Q than the load consumes pulls the frequency down, less pushes it
up. Both approach that balance with a short time constant (a few cycles); with nothing injecting, the
bus collapses to zero.
"""

from __future__ import annotations

import math

from edge.control.lag import lag_step


class RlcLoad:
    """Parallel RLC equivalent of a load drawing ``p_w`` and net ``q_var`` (inductive > 0) at nominal."""

    def __init__(
        self, v_nominal_v: float, f_nominal_hz: float, p_w: float, q_var: float, quality: float
    ) -> None:
        self.v_n = v_nominal_v
        self.w_n = 2.0 * math.pi * f_nominal_hz
        p = max(p_w, 1.0)
        self.r_ohm = v_nominal_v**2 / p
        # Qf = sqrt(QL·QC)/P and QL − QC = q_var at nominal: solve for the two branch powers.
        prod = (quality * p) ** 2
        ql = (q_var + math.sqrt(q_var**2 + 4.0 * prod)) / 2.0
        qc = ql - q_var
        self.l_h = v_nominal_v**2 / (self.w_n * ql)
        self.c_f = qc / (self.w_n * v_nominal_v**2)

    @property
    def resonance_hz(self) -> float:
        return 1.0 / (2.0 * math.pi * math.sqrt(self.l_h * self.c_f))

    def balance(self, p_gen_w: float, q_gen_var: float) -> tuple[float, float]:
        """Steady (V, f) where the load takes ``p_gen_w`` and ``q_gen_var`` (Q > 0 injected into it)."""
        if p_gen_w <= 0.0:
            return 0.0, self.w_n / (2.0 * math.pi)
        v = math.sqrt(p_gen_w * self.r_ohm)
        # Q drawn by the LC branches: V²/(ωL) − V²ωC = q_gen  ->  C V² ω² + q ω − V²/L = 0
        a = self.c_f * v * v
        w = (-q_gen_var + math.sqrt(q_gen_var**2 + 4.0 * a * v * v / self.l_h)) / (2.0 * a)
        return v, w / (2.0 * math.pi)


class Grid:
    """The grid source and the local bus: ``v_pu[k]`` per phase (line-to-neutral), ``f_hz``."""

    def __init__(self, v_nominal_v: float, f_nominal_hz: float, phases: int, island_tau_s: float) -> None:
        self.v_nominal_v = v_nominal_v
        self.f_nominal_hz = float(f_nominal_hz)
        self.phases = phases
        self.island_tau_s = island_tau_s
        # The source's programmed values.
        self.src_v_pu = [1.0, 1.0, 1.0]
        self.src_f_hz = float(f_nominal_hz)
        self.src_f_target_hz = float(f_nominal_hz)
        self.src_rocof_hz_s = 0.0  # > 0: src_f_hz ramps towards src_f_target_hz at this rate
        self.src_phase_deg = [0.0, -120.0, 120.0]
        self.breaker_closed = True
        # The local bus.
        self.v_pu = [1.0, 1.0, 1.0]
        self.f_hz = float(f_nominal_hz)
        self.island_load: RlcLoad | None = None

    def set_source(
        self,
        v_pu: float | None = None,
        f_hz: float | None = None,
        phase_deg: float | None = None,
        phase: int | None = None,
        rocof_hz_s: float | None = None,
    ) -> None:
        """Program the source; ``phase`` (0, 1, 2) limits a V or angle step to one phase;
        ``rocof_hz_s`` ramps the frequency to ``f_hz`` at that rate instead of stepping it."""
        idx = range(3) if phase is None else [phase]
        if v_pu is not None:
            for k in idx:
                self.src_v_pu[k] = v_pu
        if phase_deg is not None:
            base = [0.0, -120.0, 120.0]
            for k in idx:
                self.src_phase_deg[k] = base[k] + phase_deg
        if f_hz is not None:
            self.src_f_target_hz = f_hz
            self.src_rocof_hz_s = rocof_hz_s or 0.0
            if not rocof_hz_s:
                self.src_f_hz = f_hz

    def open_breaker(self, load: RlcLoad) -> None:
        self.breaker_closed = False
        self.island_load = load

    def close_breaker(self) -> None:
        self.breaker_closed = True
        self.island_load = None

    def step(self, dt_s: float, p_gen_w: float, q_gen_var: float) -> None:
        """Advance the local bus; ``p_gen_w``/``q_gen_var`` is what the local sources inject (all phases)."""
        if self.src_rocof_hz_s > 0.0:
            gap = self.src_f_target_hz - self.src_f_hz
            step = self.src_rocof_hz_s * dt_s
            self.src_f_hz = (
                self.src_f_target_hz if abs(gap) <= step else self.src_f_hz + math.copysign(step, gap)
            )
            if self.src_f_hz == self.src_f_target_hz:
                self.src_rocof_hz_s = 0.0
        if self.breaker_closed:
            self.v_pu = list(self.src_v_pu)
            self.f_hz = self.src_f_hz
            return
        assert self.island_load is not None
        v_v, f_hz = self.island_load.balance(p_gen_w, q_gen_var)
        target_pu = v_v / self.v_nominal_v
        for k in range(3):
            self.v_pu[k] = lag_step(self.v_pu[k], target_pu, dt_s, self.island_tau_s)
        if target_pu > 0.05:
            self.f_hz = lag_step(self.f_hz, f_hz, dt_s, self.island_tau_s)

    @property
    def v_avg_pu(self) -> float:
        return sum(self.v_pu[: self.phases]) / self.phases

    @property
    def v_min_pu(self) -> float:
        return min(self.v_pu[: self.phases])

    @property
    def v_max_pu(self) -> float:
        return max(self.v_pu[: self.phases])
