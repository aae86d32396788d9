"""Battery profiles from what a charger vendor or user can have: a datasheet and, optionally, a replay.

``build_profile`` turns a datasheet file (TOML: OCV table or a few OCV points, nominal capacity,
voltage and current limits, temperature windows, chemistry, pack layout) into a complete profile
(``config/batteries/*.toml`` format, validated by ``parse_profile``). Where a characterisation replay
is given (a recorded trace of the cell type; only its measured columns are read) the ohmic and RC
parameters are fitted to it (``edge.estimation.fit``); otherwise they are generic values for the
capacity, a first guess that the online growth tracker scales to the cell (a cell's instant step
resistance includes its charge transfer, which the generic series resistance does not: the tracker
reads 1.3-6.4 on the NMC records here, docs/estimation.md). No kinetic (Butler-Volmer) term is
assumed: nothing a datasheet or a low-current replay holds shows how the resistance flattens at
several C, and a linear resistance errs on the safe side there. ``render`` writes the profile with a
header that says where every value came from (``v2g-hil battery-profile``).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.estimation.fit import fit_rc
from edge.estimation.profile import DIFFUSION_TAU_S, BatteryProfile, ProfileError, parse_profile

FloatArray = npt.NDArray[np.float64]

# Generic first-guess resistances, ohm x Ah (divided by the capacity; a 5 Ah cell gets 8 + 6 + 6
# mOhm), used only when no replay is given. Not a bound either way: the profiles here fit 0.075-0.16
# ohm Ah in all, and the cells' instant step resistance (charge transfer included) is 1.3-6.4 x this.
# The growth tracker scales the level.
_GENERIC_R_OHM_AH = (0.04, 0.03, 0.03)
_GENERIC_TAUS_S = (20.0, 300.0)
# The electrolyte's limit, where the datasheet (or the cell's published parameters) gives it: taken
# as given, none otherwise (docs/estimation.md, "The electrolyte's limit").
_ELECTROLYTE_KEYS = (
    "electrolyte_k_a_sqrt_s",
    "electrolyte_t_eq_s",
    "electrolyte_vtf_b_k",
    "electrolyte_vtf_t0_k",
)

# A few OCV points of a datasheet or a generic chemistry curve are this far (V) from a given cell
# unless the datasheet says better ([ocv] sigma_v), and their features (an LFP knee, the steep low
# end) this far along the SoC axis ([ocv] sigma_soc): a curve written for a chemistry puts a knee
# where most of its cells have it, not where this one does.
_OCV_SIGMA_V = 0.02
_OCV_SIGMA_SOC = 0.02
# The pack temperature sensor's stated error (degC) when the datasheet's [sensor] does not give one.
_SENSOR_TEMP_ERROR_C = 2.0

# Filter settings by chemistry (per cell, scaled from pack-level sensor figures where they are
# currents). LFP: the flat plateau makes the voltage a weak SoC measurement, so the SoC process
# noise is kept as low and the voltage noise as honest as for NMC; nothing else differs.
_FILTER = {
    "q_soc_per_s": 1e-8,
    "q_v1_v2_per_s": 1e-9,
    "q_v2_v2_per_s": 1e-10,
    "voltage_sigma_v": 0.004,
    "gate_sigma": 5.0,
    "current_gain_sigma": 0.01,
    "rest_min_s": 300.0,
}


@dataclass(frozen=True)
class Replay:
    """A characterisation record of the cell type: measured columns only, and the window to fit."""

    name: str
    t_s: FloatArray
    pack_i_a: FloatArray
    pack_v_v: FloatArray
    temp_c: FloatArray
    window_s: tuple[float, float] | None = None


@dataclass
class BuiltProfile:
    """The profile document and, per value, where it came from."""

    doc: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)

    def profile(self, source: str = "<built>") -> BatteryProfile:
        return parse_profile(self.doc, source)


def load_datasheet(path: Path) -> dict[str, Any]:
    """Read a datasheet file; errors name the file."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read datasheet ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML ({exc})") from exc
    return doc


def _need(doc: dict[str, Any], section: str, key: str, source: str) -> Any:
    sec = doc.get(section)
    if not isinstance(sec, dict) or key not in sec:
        raise ProfileError(f"{source}: missing field '{section}.{key}'")
    return sec[key]


def _src(doc: dict[str, Any], section: str, default: str) -> str:
    sec = doc.get(section, {})
    value = sec.get("source", default) if isinstance(sec, dict) else default
    return str(value)


def build_profile(datasheet: dict[str, Any], source: str, replay: Replay | None = None) -> BuiltProfile:
    """A complete, validated profile from a datasheet document and an optional replay."""
    battery = datasheet.get("battery")
    if not isinstance(battery, dict):
        raise ProfileError(f"{source}: missing section [battery]")
    chemistry = str(_need(datasheet, "battery", "chemistry", source))
    capacity = _need(datasheet, "battery", "nameplate_capacity_ah", source)
    if not isinstance(capacity, int | float) or not 0.1 <= capacity <= 2000.0:
        raise ProfileError(
            f"{source}: field 'battery.nameplate_capacity_ah' = {capacity!r} outside [0.1, 2000]"
        )
    parallel = int(_need(datasheet, "battery", "parallel", source))
    ds_src = _src(datasheet, "battery", "datasheet")
    lim_src = _src(datasheet, "limits", ds_src)
    ocv_src = _src(datasheet, "ocv", ds_src)
    sensor = datasheet.get("sensor", {})
    offset_pack = float(sensor.get("current_offset_sigma_a", 0.2))
    rest_pack = float(sensor.get("rest_current_a", 0.5))
    model_sheet = datasheet.get("model", {})
    if not isinstance(model_sheet, dict):
        raise ProfileError(f"{source}: [model] must be a table")
    electrolyte = [key for key in _ELECTROLYTE_KEYS if key in model_sheet]
    r0, r1, r2 = (x / float(capacity) for x in _GENERIC_R_OHM_AH)
    tau1, tau2 = _GENERIC_TAUS_S
    doc: dict[str, Any] = {
        "battery": {k: battery[k] for k in ("name", "chemistry", "description", "series", "parallel")}
        | {"nameplate_capacity_ah": float(capacity)},
        "ocv": {
            "soc": list(_need(datasheet, "ocv", "soc", source)),
            "ocv_v": list(_need(datasheet, "ocv", "ocv_v", source)),
            "sigma_v": float(datasheet["ocv"].get("sigma_v", _OCV_SIGMA_V)),
            "sigma_soc": float(datasheet["ocv"].get("sigma_soc", _OCV_SIGMA_SOC)),
        }
        # validated with the whole document (its field named there)
        | {
            key: datasheet["ocv"][key]
            for key in ("hysteresis_v", "hysteresis_rate", "knee_slope_v")
            if key in datasheet["ocv"]
        },
        "model": {
            "reference_temp_c": 25.0,
            "r0_ohm": r0,
            "r1_ohm": r1,
            "tau1_s": tau1,
            "r2_ohm": r2,
            "tau2_s": tau2,
            "resistance_ea_j_per_mol": 0.0,
            "i0_a": 0.0,
            "i0_b": 0.0,
            "i0_ea_j_per_mol": 0.0,
            "growth_ohmic_share": 0.0,
            # validated with the whole document (its field named there)
            "diffusion_tau_s": model_sheet.get("diffusion_tau_s", DIFFUSION_TAU_S),
        }
        | {key: model_sheet[key] for key in electrolyte},
        "limits": {
            k: _need(datasheet, "limits", k, source)
            for k in (
                "cell_v_min",
                "cell_v_max",
                "cell_i_discharge_max_a",
                "cell_i_charge_max_a",
                "discharge_derating_c",
                "charge_derating_c",
            )
        }
        | {"soc_min": 0.03, "soc_max": 0.98},
        "filter": dict(_FILTER)
        | {
            "q_offset_a2_per_s": (0.1 * offset_pack / parallel) ** 2 / 3600.0,
            "current_offset_sigma_a": offset_pack / parallel,
            "rest_current_a": rest_pack / parallel,
        },
        "sop": {
            "horizons_s": [2.0, 10.0, 30.0],
            "sensor_temp_error_c": float(sensor.get("temp_error_c", _SENSOR_TEMP_ERROR_C)),
        },
    }
    sources = {
        "battery": ds_src,
        "ocv": ocv_src,
        "limits.cell_*": lim_src,
        "limits.*_derating_c": lim_src,
        "limits.soc_min/soc_max": "default (3 % / 98 %)",
        "model.r0/r1/r2, tau1/tau2": "generic for the capacity (a first guess the growth tracker scales), no replay given",
        "model.resistance_ea": "0: the SoP's cold floor (sop.resistance_ea_floor) carries the cold side",
        "model.i0_*": "none: linear resistances (conservative at high current)",
        "model.diffusion_tau_s": _told(
            datasheet,
            "model",
            "diffusion_tau_s",
            "default: within published electrodes' R^2/D, chosen on generated LFP packs (docs/estimation.md, Surface lead)",
        ),
        "model.electrolyte_*": (
            "datasheet [model] " + ", ".join(electrolyte)
            if electrolyte
            else "none (0: no electrolyte limit; the datasheet's rating caps the limits used)"
        ),
        "filter.*": f"defaults for {chemistry}; offset/rest from pack sensor figures "
        f"({offset_pack} A / {rest_pack} A pack)",
        "ocv.sigma_v": _told(datasheet, "ocv", "sigma_v", "default for a few points"),
        "ocv.sigma_soc": _told(datasheet, "ocv", "sigma_soc", "default for a few points (a knee's position)"),
        "ocv.hysteresis_v": _told(datasheet, "ocv", "hysteresis_v", "none (0: no hysteresis)"),
        "ocv.hysteresis_rate": _told(datasheet, "ocv", "hysteresis_rate", "default (20 per unit SoC)"),
        "ocv.knee_slope_v": _told(datasheet, "ocv", "knee_slope_v", "none (0: no knee fixes)"),
        "sop.sensor_temp_error_c": _told(datasheet, "sensor", "temp_error_c", "default (2 K)"),
        "sop.*": "defaults (docs/estimation.md, SoP)",
    }
    built = BuiltProfile(doc, sources)
    if replay is not None:
        _fit(built, replay, source)
    built.profile(source)  # validates the whole document
    return built


def _told(datasheet: dict[str, Any], section: str, key: str, otherwise: str) -> str:
    """Where a value the datasheet may give came from: its ``[section] key``, else ``otherwise``."""
    return f"datasheet [{section}] {key}" if key in datasheet.get(section, {}) else otherwise


def _fit(built: BuiltProfile, replay: Replay, source: str) -> None:
    profile = built.profile(source)
    sel = np.ones(len(replay.t_s), dtype=bool)
    if replay.window_s is not None:
        sel = (replay.t_s >= replay.window_s[0]) & (replay.t_s <= replay.window_s[1])
    fit = fit_rc(
        replace(profile),
        replay.t_s[sel],
        replay.pack_i_a[sel],
        replay.pack_v_v[sel],
        replay.temp_c[sel],
    )
    model = built.doc["model"]
    # The fitted values hold at the record's temperature, not at 25 degC: the SoP's cold floor scales
    # from the reference temperature, so the reference is where the fit was made.
    model.update(
        reference_temp_c=round(float(np.mean(replay.temp_c[sel])), 1),
        r0_ohm=round(fit.r0_ohm, 6),
        r1_ohm=round(fit.r1_ohm, 6),
        tau1_s=round(fit.tau1_s, 1),
        r2_ohm=round(fit.r2_ohm, 6),
        tau2_s=round(fit.tau2_s, 1),
    )
    window = "" if replay.window_s is None else f" t = {replay.window_s[0]:g}..{replay.window_s[1]:g} s,"
    start, end = (
        replay.window_s if replay.window_s is not None else (float(replay.t_s[0]), float(replay.t_s[-1]))
    )
    built.doc["provenance"] = {"fit_trace": replay.name, "fit_window_s": [float(start), float(end)]}
    built.sources["model.r0/r1/r2, tau1/tau2"] = (
        f"fitted on replay {replay.name}{window} {fit.samples} samples, rms {fit.rms_v * 1000:.2f} mV "
        "(measured columns only)"
    )
    built.sources["model.reference_temp_c"] = f"mean measured temperature of the fit window ({replay.name})"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write {value} to a profile")
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to a profile")


def render(built: BuiltProfile, generated_from: str) -> str:
    """The profile as TOML, headed by where each value came from."""
    lines = [
        f"# Battery profile built by `v2g-hil battery-profile` from {generated_from}.",
        "#",
        "# Where the values come from:",
    ]
    lines += [f"# * {key}: {value}" for key, value in built.sources.items()]
    for section, values in built.doc.items():
        lines += ["", f"[{section}]"]
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"
