"""Battery profiles: chemistry, pack layout, OCV table, initial model parameters and limits, from TOML.

Profiles ship in ``edge/_config/batteries/<name>.toml``; a path to any TOML file in the same format
works too. Everything in a profile is per cell except ``series`` / ``parallel``; the current sensor's
figures (offset, its drift, the rest threshold) are per cell at the profile's own layout, and
``with_pack`` keeps them per pack in another. A broken profile is rejected with an error naming the
file, the field, the value and the allowed range.
"""

from __future__ import annotations

import importlib.resources
import itertools
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.estimation import _ecm_ref as k
from edge.estimation.knee import WINDOW_SOC as KNEE_WINDOW_SOC
from edge.estimation.knee import table_knees

GAS_CONSTANT = 8.314462618  # J/(mol K)
# Default diffusion time of the electrodes' particles (BatteryProfile.diffusion_tau_s), s.
DIFFUSION_TAU_S = 3000.0
TABLE_POINTS = 101  # the kernel's uniform OCV grid over soc 0..1
UPPER_HALF_SOC = 0.5  # the pack voltage of pack_energy_per_soc_wh is averaged from here to full
# Time constant over which the kernel smooths what the voltage shows beyond the model (the SoP's
# offset, see _ecm_ref.S_OCV_OFS): long against the sample noise, short against a rest.
OCV_OFFSET_TAU_S = 30.0
_KELVIN = 273.15
# What a vehicle's traction pack can be (a plug-in hybrid's to a heavy truck's; DC charging standards
# end at 1.5 kV): a layout outside is a misconfiguration, e.g. a large cell given a small cell's
# parallel count, whose datasheet rating times that count lets the SoP ask for many times what the
# pack can take (lfp-prismatic in the A123 pack's 108s95p: 5.5 MWh, charge limit +598 %).
PACK_ENERGY_KWH = (1.0, 1000.0)
PACK_V_MAX = 1500.0


class ProfileError(ValueError):
    """A battery profile that cannot be used; the message names the file, field and value."""


@dataclass(frozen=True)
class Derating:
    """Current-rating factor vs temperature: 0 below ``t0_c``, 1 over ``t1_c..t2_c``, 0 above ``t3_c``."""

    t0_c: float
    t1_c: float
    t2_c: float
    t3_c: float


@dataclass(frozen=True)
class BatteryProfile:
    """One battery type as a charger vendor would configure it (new cell, nameplate figures)."""

    name: str
    chemistry: str
    description: str
    series: int
    parallel: int
    nameplate_capacity_ah: float
    ocv_soc: tuple[float, ...]
    ocv_v: tuple[float, ...]
    docv_dt_v_per_k: tuple[float, ...]
    i0_rel: tuple[float, ...]
    r0_ohm: float
    r1_ohm: float
    tau1_s: float
    r2_ohm: float
    tau2_s: float
    resistance_ea_j_per_mol: float
    i0_a: float
    i0_b: float
    i0_ea_j_per_mol: float
    reference_temp_c: float
    cell_v_min: float
    cell_v_max: float
    cell_i_discharge_max_a: float
    cell_i_charge_max_a: float
    soc_min: float
    soc_max: float
    discharge_derating: Derating
    charge_derating: Derating
    growth_ohmic_share: float
    q_soc_per_s: float
    q_v1_v2_per_s: float
    q_v2_v2_per_s: float
    q_offset_a2_per_s: float
    voltage_sigma_v: float
    gate_sigma: float
    current_gain_sigma: float
    current_offset_sigma_a: float
    rest_current_a: float
    rest_min_s: float
    horizons_s: tuple[float, ...] = field(default=(2.0, 10.0, 30.0))
    # The SoP's conservative side (see docs/estimation.md, "SoP"): the temperature sensor's stated error
    # and a margin beyond it (the SoP works at the measured temperature less both), the temperature
    # assumed when none is measured, and the activation energy of the lower bound on the resistance's
    # growth in the cold.
    sensor_temp_error_c: float = 2.0
    sop_temp_margin_c: float = 1.0
    # How far the cell's OCV may be from the table at the table's temperature (another batch, a
    # datasheet curve read at a few points), V, and how far its temperature coefficient may be from
    # the table's, V/K. Both make the filter's OCV-error variance: counted once per reading, and a
    # bound below which the voltage no longer moves the SoC (a bias is not averaged away).
    ocv_sigma_v: float = 0.005
    ocv_sigma_dvdt_v_per_k: float = 0.0003
    # How far along the SoC axis the cell's OCV features (an LFP knee, NMC's low end) may sit from the
    # table's: a generic curve puts a knee where most cells have it, this cell may have it points away.
    ocv_sigma_soc: float = 0.0
    # The OCV's hysteresis (LFP): half the gap between the branches a charge and a discharge leave
    # the cell on, V (the table is their mean), and how fast the cell moves to a branch, per unit of
    # SoC moved (Plett / Axen one-state model: 20 means 1/e of the way left after 5 % of SoC). 0: none.
    ocv_hysteresis_v: float = 0.0
    ocv_hysteresis_rate: float = 20.0
    # Where the OCV's slope (V per unit SoC) over 2 % of SoC crosses this value towards either end of
    # the table, the cell is at a knee of a flat curve, whose place the table tells whatever its offset
    # in volts (edge.estimation.knee; LFP). 0: no knee fixes (curves without a plateau: NMC).
    ocv_knee_slope_v: float = 0.0
    # Share of the modelled overpotential (ohmic, kinetic, RC) the model may be off by: diffusion,
    # electrolyte and temperature effects a two-RC model does not hold, so the voltage under load
    # tells the OCV less than at rest.
    overpotential_rel_sigma: float = 0.25
    # Diffusion time of the electrodes' particles, R^2/D, s: how far the surface's SoC leads the bulk's
    # in a pulse, which the SoP counts where the table is steeper than its median (docs/estimation.md,
    # "Surface lead"). Published graphite and NMC electrodes: about 1000 to 10000 s.
    diffusion_tau_s: float = DIFFUSION_TAU_S
    # The electrolyte's limit on a pulse (docs/estimation.md, "The electrolyte's limit"): Sand's
    # constant of the cell at the reference temperature, A s^0.5 (a current I depletes the electrolyte
    # at an electrode after (K / I)^2 s; 0: no limit), the time whose depletion equals a held current's
    # steady one, s, and the electrolyte diffusivity's temperature law, Vogel-Tammann-Fulcher
    # D ~ exp(-B / (T - T0)), K (required with K). K scales with sqrt(D), the time with 1 / D.
    electrolyte_k_a_sqrt_s: float = 0.0
    electrolyte_t_eq_s: float = 0.0
    electrolyte_vtf_b_k: float = 0.0
    electrolyte_vtf_t0_k: float = 0.0
    sop_unknown_temp_c: float = 0.0
    sop_resistance_ea_floor_j_per_mol: float = 30000.0
    # Where R0 / RC were fitted (``v2g-hil battery-profile --replay``): the record's name and window,
    # so that scoring on that record leaves the window out (a fit is not judged on its own data).
    fit_trace: str = ""
    fit_window_s: tuple[float, float] | None = None

    @property
    def sop_temp_allowance_c(self) -> float:
        """How far below (or above) the measured temperature the SoP assumes the cell may be."""
        return self.sensor_temp_error_c + self.sop_temp_margin_c

    @property
    def cells(self) -> int:
        return self.series * self.parallel

    def ocv_table(self) -> npt.NDArray[np.float64]:
        """The kernel's table: OCV, dOCV/dT and relative exchange current on a uniform 0..1 grid."""
        grid = np.linspace(0.0, 1.0, TABLE_POINTS)
        soc = np.asarray(self.ocv_soc)
        cols = [np.interp(grid, soc, np.asarray(c)) for c in (self.ocv_v, self.docv_dt_v_per_k, self.i0_rel)]
        return np.ascontiguousarray(np.concatenate(cols), dtype=np.float64)

    def ocv_slope_ref(self) -> float:
        """The table's median slope over the SoC window, V per unit SoC: where the records R0 / RC are
        fitted on mostly sit, so the RC branches already hold the surface's lead at about this slope."""
        ocv = self.ocv_table()[:TABLE_POINTS]
        lo = math.ceil(self.soc_min * (TABLE_POINTS - 1) - 1e-9)
        hi = math.floor(self.soc_max * (TABLE_POINTS - 1) + 1e-9)
        slopes = np.diff(ocv[lo : hi + 1]) * (TABLE_POINTS - 1)
        return float(np.median(slopes)) if slopes.size else 0.0

    def kernel_params(self) -> npt.NDArray[np.float64]:
        """The kernel's parameter array for a new cell at nameplate capacity (layout P_* of the kernel)."""
        p = np.zeros(k.P_N, dtype=np.float64)
        p[k.P_Q_AH] = self.nameplate_capacity_ah
        p[k.P_R0] = self.r0_ohm
        p[k.P_R1] = self.r1_ohm
        p[k.P_TAU1] = self.tau1_s
        p[k.P_R2] = self.r2_ohm
        p[k.P_TAU2] = self.tau2_s
        p[k.P_EA_R] = self.resistance_ea_j_per_mol / GAS_CONSTANT
        p[k.P_TREF_K] = self.reference_temp_c + _KELVIN
        p[k.P_R_GROWTH] = 1.0
        p[k.P_SOP_GROWTH] = 1.0
        p[k.P_GROWTH_OHMIC] = self.growth_ohmic_share
        p[k.P_I0_A] = self.i0_a
        p[k.P_I0_B] = self.i0_b
        p[k.P_EA_I0_R] = self.i0_ea_j_per_mol / GAS_CONSTANT
        p[k.P_Q_SOC] = self.q_soc_per_s
        p[k.P_Q_V1] = self.q_v1_v2_per_s
        p[k.P_Q_V2] = self.q_v2_v2_per_s
        p[k.P_Q_B] = self.q_offset_a2_per_s
        # The table's own error is a bias the kernel handles apart (P_OCV_VAR), not sensor noise.
        p[k.P_R_V] = self.voltage_sigma_v**2
        p[k.P_OCV_VAR] = self.ocv_var(self.reference_temp_c)
        p[k.P_OCV_SOC_VAR] = self.ocv_sigma_soc**2
        p[k.P_DIFF_TAU_S] = self.diffusion_tau_s
        # At the reference temperature; the estimator sets them at the SoP's.
        p[k.P_ELEC_K] = self.electrolyte_k_a_sqrt_s
        p[k.P_ELEC_T_EQ_S] = self.electrolyte_t_eq_s
        p[k.P_SOP_RC1] = p[k.P_SOP_RC2] = 1.0  # the profile's split until identified
        p[k.P_SOP_TAU1] = 1.0  # the profile's time constant until identified
        p[k.P_OCV_SLOPE_REF] = self.ocv_slope_ref()
        p[k.P_HYST_M] = self.ocv_hysteresis_v
        p[k.P_HYST_RATE] = self.ocv_hysteresis_rate
        p[k.P_OVERPOT_REL] = self.overpotential_rel_sigma
        p[k.P_OFS_TAU_S] = OCV_OFFSET_TAU_S
        p[k.P_GATE] = self.gate_sigma
        p[k.P_V_MIN] = self.cell_v_min
        p[k.P_V_MAX] = self.cell_v_max
        p[k.P_I_DIS_MAX] = self.cell_i_discharge_max_a
        p[k.P_I_CHG_MAX] = self.cell_i_charge_max_a
        p[k.P_SOC_MIN] = self.soc_min
        p[k.P_SOC_MAX] = self.soc_max
        d, c = self.discharge_derating, self.charge_derating
        p[k.P_DIS_T0 : k.P_DIS_T3 + 1] = (d.t0_c, d.t1_c, d.t2_c, d.t3_c)
        p[k.P_CHG_T0 : k.P_CHG_T3 + 1] = (c.t0_c, c.t1_c, c.t2_c, c.t3_c)
        return p

    def ocv_var(self, temp_c: float) -> float:
        """Variance of the table's error at ``temp_c`` (its own and its temperature coefficient's), V^2."""
        return self.ocv_sigma_v**2 + (self.ocv_sigma_dvdt_v_per_k * (temp_c - 25.0)) ** 2

    def soc_to_ocv(self, soc: float, temp_c: float = 25.0) -> float:
        """The table's OCV at ``soc`` and ``temp_c``, V per cell."""
        ocv = np.asarray(self.ocv_v) + np.asarray(self.docv_dt_v_per_k) * (temp_c - 25.0)
        return float(np.interp(soc, np.asarray(self.ocv_soc), ocv))

    def ocv_to_soc(self, cell_v: float, temp_c: float = 25.0) -> float:
        """Invert the OCV table (monotonic by validation) at ``temp_c``."""
        soc = np.asarray(self.ocv_soc)
        ocv = np.asarray(self.ocv_v) + np.asarray(self.docv_dt_v_per_k) * (temp_c - 25.0)
        return float(np.interp(cell_v, ocv, soc))


def _get(doc: dict[str, Any], path: str, source: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ProfileError(f"{source}: missing field {path!r}")
        node = node[part]
    return node


def _num(doc: dict[str, Any], path: str, source: str, lo: float, hi: float) -> float:
    value = _get(doc, path, source)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProfileError(f"{source}: field {path!r} = {value!r} is not a finite number")
    if not lo <= value <= hi:
        raise ProfileError(f"{source}: field {path!r} = {value!r} outside the allowed range [{lo}, {hi}]")
    return float(value)


def _optional(  # noqa: PLR0917 - the shape of _num plus the default
    doc: dict[str, Any], path: str, source: str, lo: float, hi: float, default: float
) -> float:
    """``_num`` for a field that may be left out (``default`` then)."""
    try:
        _get(doc, path, source)
    except ProfileError:
        return default
    return _num(doc, path, source, lo, hi)


def _int(doc: dict[str, Any], path: str, source: str, lo: int, hi: int) -> int:
    value = _get(doc, path, source)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ProfileError(f"{source}: field {path!r} = {value!r} must be an integer in [{lo}, {hi}]")
    return value


def _str(doc: dict[str, Any], path: str, source: str) -> str:
    value = _get(doc, path, source)
    if not isinstance(value, str) or not value:
        raise ProfileError(f"{source}: field {path!r} = {value!r} must be a non-empty string")
    return value


def _column(
    doc: dict[str, Any], path: str, source: str, n: int | None, default: float | None = None
) -> tuple[float, ...]:
    try:
        value = _get(doc, path, source)
    except ProfileError:
        if default is None or n is None:
            raise
        return (default,) * n
    if not isinstance(value, list) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in value
    ):
        raise ProfileError(f"{source}: field {path!r} must be a list of finite numbers")
    if n is not None and len(value) != n:
        raise ProfileError(f"{source}: field {path!r} has {len(value)} values, expected {n} (one per soc)")
    return tuple(float(x) for x in value)


def _derating(doc: dict[str, Any], path: str, source: str) -> Derating:
    t = _column(doc, path, source, 4)
    if not t[0] <= t[1] <= t[2] <= t[3] or t[0] == t[1] or t[2] == t[3]:
        raise ProfileError(f"{source}: field {path!r} = {list(t)} must be t0 < t1 <= t2 < t3 (degC)")
    return Derating(*t)


def parse_profile(doc: dict[str, Any], source: str) -> BatteryProfile:
    """Validate a parsed profile document; ``source`` names it in error messages."""
    soc = _column(doc, "ocv.soc", source, None)
    n = len(soc)
    if (
        n < 3
        or abs(soc[0]) > 1e-9
        or abs(soc[-1] - 1.0) > 1e-9
        or any(b <= a for a, b in itertools.pairwise(soc))
    ):
        raise ProfileError(f"{source}: field 'ocv.soc' must rise strictly from 0.0 to 1.0 (got {n} values)")
    ocv = _column(doc, "ocv.ocv_v", source, n)
    if any(b <= a for a, b in itertools.pairwise(ocv)):
        raise ProfileError(f"{source}: field 'ocv.ocv_v' must rise strictly with soc")
    i0_rel = _column(doc, "ocv.i0_rel", source, n, default=1.0)
    if min(i0_rel) <= 0.0:
        raise ProfileError(f"{source}: field 'ocv.i0_rel' must be > 0 everywhere")
    v_min = _num(doc, "limits.cell_v_min", source, 1.0, 5.0)
    v_max = _num(doc, "limits.cell_v_max", source, v_min + 0.1, 5.0)
    soc_min = _num(doc, "limits.soc_min", source, 0.0, 0.5)
    soc_max = _num(doc, "limits.soc_max", source, 0.5, 1.0)
    tau1 = _num(doc, "model.tau1_s", source, 0.1, 1e4)
    tau2 = _num(doc, "model.tau2_s", source, tau1, 1e5)
    horizons = _column(doc, "sop.horizons_s", source, None)
    if not horizons or any(not 0.1 <= h <= 3600.0 for h in horizons):
        raise ProfileError(f"{source}: field 'sop.horizons_s' = {list(horizons)} must be 0.1..3600 s each")
    profile = BatteryProfile(
        name=_str(doc, "battery.name", source),
        chemistry=_str(doc, "battery.chemistry", source),
        description=_str(doc, "battery.description", source),
        series=_int(doc, "battery.series", source, 1, 1000),
        parallel=_int(doc, "battery.parallel", source, 1, 1000),
        nameplate_capacity_ah=_num(doc, "battery.nameplate_capacity_ah", source, 0.1, 2000.0),
        ocv_soc=soc,
        ocv_v=ocv,
        docv_dt_v_per_k=_column(doc, "ocv.docv_dt_v_per_k", source, n, default=0.0),
        i0_rel=i0_rel,
        r0_ohm=_num(doc, "model.r0_ohm", source, 1e-6, 1.0),
        r1_ohm=_num(doc, "model.r1_ohm", source, 0.0, 1.0),
        tau1_s=tau1,
        r2_ohm=_num(doc, "model.r2_ohm", source, 0.0, 1.0),
        tau2_s=tau2,
        resistance_ea_j_per_mol=_num(doc, "model.resistance_ea_j_per_mol", source, 0.0, 1e5),
        i0_a=_num(doc, "model.i0_a", source, 0.0, 1e4),
        i0_b=_num(doc, "model.i0_b", source, 0.0, 1e4),
        i0_ea_j_per_mol=_num(doc, "model.i0_ea_j_per_mol", source, 0.0, 1e5),
        reference_temp_c=_num(doc, "model.reference_temp_c", source, -20.0, 60.0),
        cell_v_min=v_min,
        cell_v_max=v_max,
        cell_i_discharge_max_a=_num(doc, "limits.cell_i_discharge_max_a", source, 0.0, 1e4),
        cell_i_charge_max_a=_num(doc, "limits.cell_i_charge_max_a", source, 0.0, 1e4),
        soc_min=soc_min,
        soc_max=soc_max,
        discharge_derating=_derating(doc, "limits.discharge_derating_c", source),
        charge_derating=_derating(doc, "limits.charge_derating_c", source),
        growth_ohmic_share=_num(doc, "model.growth_ohmic_share", source, 0.0, 1.0),
        q_soc_per_s=_num(doc, "filter.q_soc_per_s", source, 0.0, 1.0),
        q_v1_v2_per_s=_num(doc, "filter.q_v1_v2_per_s", source, 0.0, 1.0),
        q_v2_v2_per_s=_num(doc, "filter.q_v2_v2_per_s", source, 0.0, 1.0),
        q_offset_a2_per_s=_num(doc, "filter.q_offset_a2_per_s", source, 0.0, 1.0),
        voltage_sigma_v=_num(doc, "filter.voltage_sigma_v", source, 1e-5, 1.0),
        gate_sigma=_num(doc, "filter.gate_sigma", source, 1.0, 100.0),
        current_gain_sigma=_num(doc, "filter.current_gain_sigma", source, 0.0, 0.2),
        current_offset_sigma_a=_num(doc, "filter.current_offset_sigma_a", source, 0.0, 10.0),
        rest_current_a=_num(doc, "filter.rest_current_a", source, 0.0, 100.0),
        rest_min_s=_num(doc, "filter.rest_min_s", source, 0.0, 86400.0),
        horizons_s=horizons,
        ocv_sigma_v=_optional(doc, "ocv.sigma_v", source, 0.0, 0.5, 0.005),
        ocv_sigma_dvdt_v_per_k=_optional(doc, "ocv.sigma_dvdt_v_per_k", source, 0.0, 0.01, 0.0003),
        ocv_sigma_soc=_optional(doc, "ocv.sigma_soc", source, 0.0, 0.2, 0.0),
        ocv_hysteresis_v=_optional(doc, "ocv.hysteresis_v", source, 0.0, 0.1, 0.0),
        ocv_hysteresis_rate=_optional(doc, "ocv.hysteresis_rate", source, 1.0, 1000.0, 20.0),
        ocv_knee_slope_v=_optional(doc, "ocv.knee_slope_v", source, 0.0, 100.0, 0.0),
        overpotential_rel_sigma=_optional(doc, "model.overpotential_rel_sigma", source, 0.0, 2.0, 0.25),
        diffusion_tau_s=_optional(doc, "model.diffusion_tau_s", source, 0.0, 1e5, DIFFUSION_TAU_S),
        electrolyte_k_a_sqrt_s=_optional(doc, "model.electrolyte_k_a_sqrt_s", source, 0.0, 1e6, 0.0),
        electrolyte_t_eq_s=_optional(doc, "model.electrolyte_t_eq_s", source, 0.0, 1e5, 0.0),
        electrolyte_vtf_b_k=_optional(doc, "model.electrolyte_vtf_b_k", source, 0.0, 5000.0, 0.0),
        # Below any reference temperature (-20 degC at least): 1 M LiPF6 in carbonates has 234 K.
        electrolyte_vtf_t0_k=_optional(doc, "model.electrolyte_vtf_t0_k", source, 0.0, 250.0, 0.0),
        sensor_temp_error_c=_optional(doc, "sop.sensor_temp_error_c", source, 0.0, 20.0, 2.0),
        sop_temp_margin_c=_optional(doc, "sop.temp_margin_c", source, 0.0, 20.0, 1.0),
        fit_trace=_fit_trace(doc, source),
        fit_window_s=_fit_window(doc, source),
        sop_unknown_temp_c=_optional(doc, "sop.unknown_temp_c", source, -40.0, 25.0, 0.0),
        sop_resistance_ea_floor_j_per_mol=_optional(
            doc, "sop.resistance_ea_floor_j_per_mol", source, 0.0, 1e5, 30000.0
        ),
    )
    if profile.ocv_knee_slope_v > 0.0 and profile.ocv_sigma_soc <= 0.0:
        # A fix would then claim the window's half point, where a chemistry's curve puts its knee
        # points away from a given cell's.
        raise ProfileError(
            f"{source}: field 'ocv.knee_slope_v' needs 'ocv.sigma_soc' > 0 (how far along the SoC axis "
            "the cell's knees may sit from the table's)"
        )
    if profile.ocv_knee_slope_v > 0.0:
        _check_knees(profile, source)
    if profile.electrolyte_k_a_sqrt_s > 0.0 and profile.electrolyte_t_eq_s <= 0.0:
        # Without it a current already flowing would leave the whole budget to the pulse.
        raise ProfileError(
            f"{source}: field 'model.electrolyte_t_eq_s' must be > 0 where 'model.electrolyte_k_a_sqrt_s' is given"
        )
    if profile.electrolyte_k_a_sqrt_s > 0.0 and profile.electrolyte_vtf_b_k <= 0.0:
        # Without it the limit would hold in the cold what it holds at the reference.
        raise ProfileError(
            f"{source}: field 'model.electrolyte_vtf_b_k' must be > 0 where 'model.electrolyte_k_a_sqrt_s' "
            "is given (the electrolyte diffusivity's temperature law; 1 M LiPF6 in EC/EMC: 124.3 K, T0 234 K)"
        )
    return _checked_pack(profile, source)


def _check_knees(profile: BatteryProfile, source: str) -> None:
    """Refuse a knee slope the table cannot honour (edge.estimation.knee)."""
    field_ = f"{source}: field 'ocv.knee_slope_v' = {profile.ocv_knee_slope_v}"
    try:
        knees = table_knees(
            np.asarray(profile.ocv_soc), np.asarray(profile.ocv_v), profile.ocv_knee_slope_v, KNEE_WINDOW_SOC
        )
    except ValueError as exc:
        raise ProfileError(f"{field_}: {exc}") from None
    if knees == (None, None):
        raise ProfileError(
            f"{field_}: the table's slope never crosses it between a plateau and an end "
            "(no knee to fix the SoC at)"
        )


def _fit_trace(doc: dict[str, Any], source: str) -> str:
    try:
        _get(doc, "provenance.fit_trace", source)
    except ProfileError:
        return ""
    return _str(doc, "provenance.fit_trace", source)


def _fit_window(doc: dict[str, Any], source: str) -> tuple[float, float] | None:
    try:
        _get(doc, "provenance.fit_window_s", source)
    except ProfileError:
        return None
    a, b = _column(doc, "provenance.fit_window_s", source, 2)
    if not b > a:
        raise ProfileError(f"{source}: field 'provenance.fit_window_s' = {[a, b]} must be [start, end]")
    return a, b


def available() -> list[str]:
    """Names of the profiles shipped in ``edge/_config/batteries``."""
    folder = importlib.resources.files("edge") / "_config" / "batteries"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_profile(name_or_path: str | Path) -> BatteryProfile:
    """Load a shipped profile by name (``nmc-lgm50``) or any profile file by path."""
    text: str
    source = str(name_or_path)
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProfileError(f"{source}: cannot read battery profile ({exc})") from exc
    else:
        res = importlib.resources.files("edge") / "_config" / "batteries" / f"{source}.toml"
        if not res.is_file():
            raise ProfileError(f"unknown battery profile {source!r}; shipped: {', '.join(available())}")
        text = res.read_text(encoding="utf-8")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: not valid TOML ({exc})") from exc
    return parse_profile(doc, source)


def pack_energy_per_soc_wh(profile: BatteryProfile, pack_capacity_ah: float | None = None) -> float:
    """The pack's DC energy per unit SoC, Wh: ``pack_capacity_ah`` (the estimator's SoH capacity;
    default the nameplate pack) times the pack's OCV averaged over the upper half of the SoC range.

    The OCV is highest there, so this errs high, the safe side for whoever plans a charge with it
    (more energy to put back: the charge starts earlier).
    """
    capacity_ah = (
        profile.nameplate_capacity_ah * profile.parallel if pack_capacity_ah is None else pack_capacity_ah
    )
    soc = np.asarray(profile.ocv_soc)
    # The OCV table is linear between its points: a trapezoid over them is the exact mean.
    grid = np.unique(np.concatenate(([UPPER_HALF_SOC, 1.0], soc[soc > UPPER_HALF_SOC])))
    ocv = np.interp(grid, soc, np.asarray(profile.ocv_v))
    mean_cell_v = float(np.trapezoid(ocv, grid)) / (1.0 - UPPER_HALF_SOC)
    return capacity_ah * mean_cell_v * profile.series


def with_pack(profile: BatteryProfile, series: int, parallel: int) -> BatteryProfile:
    """The same cell in another pack layout (as the EV reports it).

    The current sensor's figures are the charger's, per pack: held per cell they would shrink with
    fewer cells in parallel, and an 8-parallel pack's rest threshold (0.08 A) fell below the offset of
    the generated records' sensor (0.1 A), so no rest was ever seen and no capacity anchored
    (docs/estimation.md). Per cell the threshold then grows with fewer cells in parallel (C/23 for
    nmc-lgm50's cell at 2p): the anchors take the filter's SoC, whose model carries such a current.
    """
    if not 1 <= series <= 1000 or not 1 <= parallel <= 1000:
        raise ProfileError(f"pack layout {series}s{parallel}p outside 1..1000 each")
    values = {f.name: getattr(profile, f.name) for f in fields(profile)}
    scale = profile.parallel / parallel
    values.update(
        series=series,
        parallel=parallel,
        current_offset_sigma_a=profile.current_offset_sigma_a * scale,
        rest_current_a=profile.rest_current_a * scale,
        q_offset_a2_per_s=profile.q_offset_a2_per_s * scale**2,
    )
    return _checked_pack(BatteryProfile(**values), f"profile {profile.name} as {series}s{parallel}p")


def configured_profile(
    name: str, series: int | None, parallel: int | None, horizon_s: float | None = None
) -> BatteryProfile:
    """Profile ``name`` in the configured pack layout (None: the profile's own count), checked as the
    daemon would run it: ProfileError for a profile not found, a layout no vehicle has, or an SoP
    horizon the profile does not compute (None: any)."""
    profile = load_profile(name)
    if series is not None or parallel is not None:
        profile = with_pack(profile, series or profile.series, parallel or profile.parallel)
    if horizon_s is not None and horizon_s not in profile.horizons_s:
        raise ProfileError(
            f"SoP horizon {horizon_s:g} s: profile {name} computes {list(profile.horizons_s)} s"
        )
    return profile


def _checked_pack(profile: BatteryProfile, source: str) -> BatteryProfile:
    """``profile`` if its pack can be a vehicle's (``PACK_ENERGY_KWH``, ``PACK_V_MAX``), else ProfileError."""
    kwh = pack_energy_per_soc_wh(profile) / 1000.0
    v_max = profile.series * profile.cell_v_max
    lo, hi = PACK_ENERGY_KWH
    if not lo <= kwh <= hi or v_max > PACK_V_MAX:
        raise ProfileError(
            f"{source}: a {profile.series}s{profile.parallel}p pack of {profile.nameplate_capacity_ah:g} Ah "
            f"cells is {kwh:.1f} kWh and up to {v_max:.0f} V, not a vehicle's ({lo:g}..{hi:g} kWh, "
            f"<= {PACK_V_MAX:g} V): check the series and parallel counts against the vehicle"
        )
    return profile
