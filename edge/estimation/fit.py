"""Fit the R0 and RC parameters of a profile to a recorded trace (``v2g-hil estimate --fit-rc``).

The overpotential ``OCV(soc) - V - eta(i)`` (kinetic term from the profile) is regressed on the current
and on the current passed through two first-order lags: for fixed time constants the model is linear
in (offset, R0, R1, R2), so a grid over (tau1, tau2) with least squares at each point finds the global
best fit without an optimiser. SoC is counted from the OCV of the first sample (the record should
start at rest) with the profile's nameplate capacity; a record with little SoC swing (regulation)
suits best. Only measured columns are used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.estimation import _ecm_ref as k
from edge.estimation.profile import BatteryProfile

FloatArray = npt.NDArray[np.float64]


class NoPhysicalFitError(ValueError):
    """Every (tau1, tau2) candidate needed a negative resistance: the record does not suit the fit."""


@dataclass(frozen=True)
class RcFit:
    """Fitted model parameters at the record's temperatures, referred to the profile's reference T."""

    r0_ohm: float
    r1_ohm: float
    tau1_s: float
    r2_ohm: float
    tau2_s: float
    offset_v: float
    rms_v: float
    samples: int


def _lag(t_s: FloatArray, i_a: FloatArray, tau_s: float) -> FloatArray:
    """First-order lag of the current under zero-order hold (current i[k-1] over [t[k-1], t[k]))."""
    a = np.exp(-np.diff(t_s) / tau_s)
    z = np.zeros_like(i_a)
    acc = 0.0
    for j in range(1, len(i_a)):
        acc = a[j - 1] * acc + (1.0 - a[j - 1]) * i_a[j - 1]
        z[j] = acc
    return z


def fit_rc(
    profile: BatteryProfile,
    t_s: FloatArray,
    pack_i_a: FloatArray,
    pack_v_v: FloatArray,
    temp_c: FloatArray,
    *,
    taus_s: FloatArray | None = None,
) -> RcFit:
    """Least-squares R0, R1/tau1, R2/tau2 for the pack record; raises ValueError on unusable input."""
    n = len(t_s)
    if n < 100 or not (len(pack_i_a) == len(pack_v_v) == len(temp_c) == n):
        raise ValueError(f"fit needs >= 100 aligned samples, got t={n} i={len(pack_i_a)} v={len(pack_v_v)}")
    if np.any(np.diff(t_s) <= 0.0):
        raise ValueError("fit needs strictly increasing t_s")
    i = pack_i_a / profile.parallel
    v = pack_v_v / profile.series
    table = profile.ocv_table().tolist()
    params = profile.kernel_params().tolist()
    soc0 = profile.ocv_to_soc(float(v[0]), float(temp_c[0]))
    charge_ah = np.concatenate([[0.0], np.cumsum(i[:-1] * np.diff(t_s))]) / 3600.0
    soc = soc0 - charge_ah / profile.nameplate_capacity_ah
    c = [0.0] * k.C_N
    ocv = np.empty(n)
    eta = np.empty(n)
    f_t = np.empty(n)
    for j in range(n):
        k.coefficients(params, table, float(soc[j]), float(temp_c[j]), 1.0, c)
        ocv[j] = k.ocv_lookup(table, float(soc[j]), float(temp_c[j]))
        eta[j] = k.kinetic_overpotential(c, float(i[j]))
        f_t[j] = c[k.C_R0] / profile.r0_ohm  # Arrhenius factor of the resistances at T
    y = ocv - v - eta
    taus = taus_s if taus_s is not None else np.geomspace(2.0, 3000.0, 18)
    lags = [_lag(t_s, i * f_t, float(tau)) for tau in taus]
    best: tuple[float, int, int, list[float]] | None = None
    for a in range(len(taus)):
        for b in range(a + 1, len(taus)):
            x = np.column_stack([np.ones(n), i * f_t, lags[a], lags[b]])
            coef, *_ = np.linalg.lstsq(x, y, rcond=None)
            if np.any(coef[1:] < 0.0):
                continue
            rms = float(np.sqrt(np.mean((x @ coef - y) ** 2)))
            if best is None or rms < best[0]:
                best = (rms, a, b, [float(x) for x in coef])
    if best is None:
        raise NoPhysicalFitError("no physically valid fit (every candidate had a negative resistance)")
    rms, a, b, fitted = best
    return RcFit(
        r0_ohm=fitted[1],
        r1_ohm=fitted[2],
        tau1_s=float(taus[a]),
        r2_ohm=fitted[3],
        tau2_s=float(taus[b]),
        offset_v=fitted[0],
        rms_v=rms,
        samples=n,
    )
