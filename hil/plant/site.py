"""The site behind the meter: house load (constant impedance, with a pulsing induction hob) and PV.

Loads are given at nominal voltage and scale with V² (constant impedance), which is also what the
island's RLC equivalent assumes. The hob is a pulsing load: full power for ``duty`` of every
``period_s``, the way induction hobs hold low settings, a hard case for an export cap.
"""

from __future__ import annotations


class HouseLoad:
    def __init__(
        self, base_w: float, q_var: float, hob_w: float, hob_period_s: float, hob_duty: float
    ) -> None:
        self.base_w = base_w
        self.q_var = q_var
        self.hob_w = hob_w
        self.hob_period_s = hob_period_s
        self.hob_duty = hob_duty
        self._hob_t0 = 0.0

    def set_hob(self, w: float, period_s: float | None, duty: float | None, t_s: float) -> None:
        self.hob_w = w
        if period_s is not None:
            self.hob_period_s = period_s
        if duty is not None:
            self.hob_duty = duty
        self._hob_t0 = t_s

    def hob_on(self, t_s: float) -> bool:
        if self.hob_w <= 0.0:
            return False
        phase = ((t_s - self._hob_t0) % self.hob_period_s) / self.hob_period_s
        return phase < self.hob_duty

    def nominal_w(self, t_s: float) -> float:
        """Active power at nominal voltage."""
        return self.base_w + (self.hob_w if self.hob_on(t_s) else 0.0)

    def power(self, t_s: float, v_pu: float) -> tuple[float, float]:
        """(P, Q) drawn at ``v_pu``."""
        k = v_pu * v_pu
        return self.nominal_w(t_s) * k, self.q_var * k


class Pv:
    """A PV inverter at a set output, with its own simple protection (it ceases outside its V/f bands
    and on islanding after ``anti_island_s``)."""

    def __init__(
        self, w: float, v_band_pu: tuple[float, float], f_band_hz: float, anti_island_s: float
    ) -> None:
        self.w = w
        self.v_band_pu = v_band_pu
        self.f_band_hz = f_band_hz
        self.anti_island_s = anti_island_s
        self.ceased = False
        self._island_s = 0.0

    def step(self, dt_s: float, v_pu: float, f_hz: float, f_nominal_hz: float, islanded: bool) -> float:
        """Output (W) for this step."""
        self._island_s = self._island_s + dt_s if islanded else 0.0
        if not islanded:
            self.ceased = False
        out_of_band = (
            not (self.v_band_pu[0] <= v_pu <= self.v_band_pu[1]) or abs(f_hz - f_nominal_hz) > self.f_band_hz
        )
        if out_of_band or self._island_s > self.anti_island_s:
            self.ceased = True
        return 0.0 if self.ceased else self.w
