"""The EV battery seen from the charger's DC side: an equivalent circuit, or a recorded trace.

The ECM is OCV(SoC) in series with R0 and one RC branch, for the whole pack. The charger asks for a DC
power (> 0 discharge); the current follows from P = V·I with V = OCV − v1 − R0·I. A trace replays a
recorded pack voltage and SoC (the ``battery-data`` CSV columns) and ignores the requested power, so
the daemon's estimators can be run against real-looking data.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from bisect import bisect_right
from pathlib import Path

# Cell OCV (V) at SoC 0, 0.1, ..., 1.0: a generic NMC/graphite curve.
NMC_OCV = (3.30, 3.50, 3.58, 3.63, 3.68, 3.74, 3.82, 3.91, 3.99, 4.08, 4.18)


def ocv_cell(soc: float) -> float:
    x = min(max(soc, 0.0), 1.0) * (len(NMC_OCV) - 1)
    k = min(int(x), len(NMC_OCV) - 2)
    return NMC_OCV[k] + (NMC_OCV[k + 1] - NMC_OCV[k]) * (x - k)


class EcmBattery:
    """Pack ECM. ``capacity_kwh`` at nominal voltage sets the charge capacity."""

    def __init__(
        self, *, soc: float, capacity_kwh: float, series: int, r0: float, r1: float, tau1_s: float
    ) -> None:
        self.soc = soc
        self.series = series
        self.r0 = r0
        self.r1 = r1
        self.tau1_s = tau1_s
        v_nom = series * ocv_cell(0.5)
        self.capacity_ah = capacity_kwh * 1000.0 / v_nom
        self.v1 = 0.0
        self.i_a = 0.0
        self.v_v = self.ocv_v

    @property
    def ocv_v(self) -> float:
        return self.series * ocv_cell(self.soc)

    def step(self, dt_s: float, p_dc_w: float) -> float:
        """Apply ``p_dc_w`` (> 0 discharge) for ``dt_s``; returns the power actually delivered."""
        e = self.ocv_v - self.v1
        disc = e * e - 4.0 * self.r0 * p_dc_w
        if disc < 0.0:  # beyond the pack's maximum power: deliver what it can
            disc = 0.0
            p_dc_w = e * e / (4.0 * self.r0)
        self.i_a = (e - math.sqrt(disc)) / (2.0 * self.r0) if self.r0 > 0 else p_dc_w / e
        self.v_v = e - self.r0 * self.i_a
        a = math.exp(-dt_s / self.tau1_s)
        self.v1 = self.v1 * a + self.r1 * self.i_a * (1.0 - a)
        self.soc = min(max(self.soc - self.i_a * dt_s / (3600.0 * self.capacity_ah), 0.0), 1.0)
        return p_dc_w


class TraceBattery:
    """Replay of a recorded trace: ``t_s``, ``pack_voltage_v_meas``, ``soc_true`` (CSV or CSV.gz)."""

    def __init__(self, path: str | Path) -> None:
        p = Path(path)
        text = gzip.decompress(p.read_bytes()).decode() if p.suffix == ".gz" else p.read_text()
        rows = list(csv.DictReader(io.StringIO(text)))
        if not rows:
            raise ValueError(f"battery trace {p} is empty")
        for col in ("t_s", "pack_voltage_v_meas", "soc_true"):
            if col not in rows[0]:
                raise ValueError(f"battery trace {p} has no column {col!r} (columns: {sorted(rows[0])})")
        self.t = [float(r["t_s"]) for r in rows]
        self.v = [float(r["pack_voltage_v_meas"]) for r in rows]
        self.socs = [float(r["soc_true"]) for r in rows]
        self.i_col = [float(r.get("pack_current_a_meas") or 0.0) for r in rows]
        self.t_s = 0.0
        self.soc = self.socs[0]
        self.v_v = self.v[0]
        self.i_a = self.i_col[0]

    def step(self, dt_s: float, p_dc_w: float) -> float:
        self.t_s += dt_s
        k = max(min(bisect_right(self.t, self.t_s) - 1, len(self.t) - 1), 0)
        self.soc, self.v_v, self.i_a = self.socs[k], self.v[k], self.i_col[k]
        return p_dc_w
