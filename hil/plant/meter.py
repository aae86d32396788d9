"""The site meter at the point of common coupling: what it measures, how often, and its faults.

It measures the true PCC flow (import > 0) every ``refresh_s`` with a little noise and holds the value
in between, like a real meter's update cycle. Faults: ``frozen`` (it keeps answering with the same
values, bit for bit) and ``silent`` (it stops answering; the serving layer takes it off the bus).
The sign of the registers is the device's business (``MeterConfig.sign``); this class works in the
project's convention.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class MeterReading:
    p_import_w: float = 0.0
    q_import_var: float = 0.0
    v_pu: tuple[float, float, float] = (1.0, 1.0, 1.0)
    f_hz: float = 50.0
    p_phase_w: tuple[float, float, float] = (0.0, 0.0, 0.0)
    e_import_wh: float = 0.0
    e_export_wh: float = 0.0


class SiteMeter:
    def __init__(self, refresh_s: float, noise_w: float, seed: int) -> None:
        self.refresh_s = refresh_s
        self.noise_w = noise_w
        self.rng = random.Random(seed)
        self.frozen = False
        self.silent = False
        self.reading = MeterReading()
        self._next_s = 0.0
        self._e_imp = 0.0
        self._e_exp = 0.0
        self.updated = False  # True on the step a new reading was taken

    def step(
        self,
        *,
        t_s: float,
        dt_s: float,
        p_import_w: float,
        q_import_var: float,
        v_pu: list[float],
        f_hz: float,
        phases: int,
    ) -> None:
        # Energy registers integrate the true flow, as a meter's do.
        if p_import_w >= 0:
            self._e_imp += p_import_w * dt_s / 3600.0
        else:
            self._e_exp -= p_import_w * dt_s / 3600.0
        self.updated = False
        if self.frozen or t_s < self._next_s:
            return
        self._next_s = max(self._next_s + self.refresh_s, t_s)
        noise = self.rng.gauss(0.0, self.noise_w) if self.noise_w > 0 else 0.0
        p = p_import_w + noise
        per = p / phases
        self.reading = MeterReading(
            p_import_w=p,
            q_import_var=q_import_var,
            v_pu=(v_pu[0], v_pu[1], v_pu[2]),
            f_hz=f_hz,
            p_phase_w=(per, per if phases == 3 else 0.0, per if phases == 3 else 0.0),
            e_import_wh=self._e_imp,
            e_export_wh=self._e_exp,
        )
        self.updated = True
