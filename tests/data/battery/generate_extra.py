"""Generate an extra judging trace in the format of the shared PyBaMM sets (README.md here).

The shared sets were made by a generator that is not public; this one makes traces the estimator was
not developed on (an aged pack whose resistance grew as contact resistance, a pack soaked at 0 degC),
in the same format and noise model. It needs PyBaMM (26.10.1.1 was used), which the project does not
depend on, so it runs in its own environment and never in CI:

    python -m venv /tmp/pb && /tmp/pb/bin/pip install pybamm
    /tmp/pb/bin/python generate_extra.py NAME PARAMETER_SET AMBIENT_C SEED [series-aged|kinetic-aged|hysteresis]

SPMe with a lumped thermal model, IDAKLU solver (rtol = atol = 1e-6); a 96s43p pack soaked at a
constant ambient; 2 min rest, 3 h of a synthetic house load (0.5-5 kW held 5-60 s, as pack current at
3.6 V per cell), 1 h rest, a 7 kW-class charge (constant current) to about 85 %, 1 h rest. SoP truth
at 18 points: from the saved state, a constant current for 10 s, 14 bisections up to 50 A per cell,
kept if V_MIN <= V <= V_MAX throughout and the electrolyte stays above zero. soc_true counts the true
current (held between samples) on the C/20 capacity at 25 degC from full. Noise as the shared sets.
GEN_SERIES, GEN_PARALLEL, GEN_V_MIN, GEN_V_MAX, GEN_SOC_START and GEN_SOC_END set another pack, voltage
limits, start and charge end (default 96, 43, 2.5, 4.2, 0.7, 0.85); GEN_V_CELL the cell voltage the
powers are converted at (default 3.6: the house load at it, the charge at it + 0.3 V); GEN_CAP_A the SoP
bisection's cap per cell (default 50 A times GEN_CELL_SCALE); GEN_HYST_V and GEN_HYST_GAMMA the hysteresis's half gap and
decay rate (default 0.010 V, 50). GEN_CHARGE_W sets the charge's power (default 7000 W);
GEN_CELL_SCALE makes a large-format cell of the set's design (electrodes, volume and cooling
surface scaled); GEN_CHARGE_ON_S and GEN_CHARGE_OFF_S make it intermittent (on for ON, off for OFF, as a solar surplus
that comes and goes; default 0: one block), and the SoP truth then also sits GEN_STOP_AFTER_S into each
of the first GEN_STOP_POINTS pauses (default "2,60" s and 4): the electrolyte's depletion a current
leaves once it stops.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import time
from collections.abc import Callable
from itertools import pairwise

import numpy as np
import pybamm

# Another cell's pack and lower limit through the environment (Mohtat2020: 96, 44, 2.8).
SERIES = int(os.environ.get("GEN_SERIES", "96"))
PARALLEL = int(os.environ.get("GEN_PARALLEL", "43"))
V_MIN, V_MAX = float(os.environ.get("GEN_V_MIN", "2.5")), float(os.environ.get("GEN_V_MAX", "4.2"))
SOC_START = float(os.environ.get("GEN_SOC_START", "0.7"))
# An LFP cell sits near 3.2-3.4 V: at the NMC's 3.6 V its powers would come out a tenth low.
V_CELL = float(os.environ.get("GEN_V_CELL", "3.6"))
# A small pack charged at the same power in the cold reaches V_MAX before 85 % (no CV phase here:
# small6c_v2h stops at 75 %).
SOC_END = float(os.environ.get("GEN_SOC_END", "0.85"))
HORIZON_S = 10.0
# LFP hysteresis (aging "hysteresis"): half the gap between the branches, V, and the decay rate.
HYST_V = float(os.environ.get("GEN_HYST_V", "0.010"))
HYST_GAMMA = float(os.environ.get("GEN_HYST_GAMMA", "50"))
CHARGE_W = float(os.environ.get("GEN_CHARGE_W", "7000"))
CHARGE_ON_S = int(os.environ.get("GEN_CHARGE_ON_S", "0"))
CHARGE_OFF_S = int(os.environ.get("GEN_CHARGE_OFF_S", "0"))
STOP_POINTS = int(os.environ.get("GEN_STOP_POINTS", "4"))
STOP_AFTER_S = [int(x) for x in os.environ.get("GEN_STOP_AFTER_S", "2,60").split(",")]
# A large-format cell of the parameter set's design: its electrodes this many times as wide (capacity and
# conductances scale with it), its volume too, its cooling surface by the 2/3 power (a larger cell
# cools less per volume). The model has no tab or terminal resistance, which in a real large cell does
# not shrink in proportion: such a cell is a little better than a real one.
CELL_SCALE = float(os.environ.get("GEN_CELL_SCALE", "1"))
# The SoP bisection's cap per cell (an LFP 26650 holds over 50 A for 10 s), a larger cell's in proportion.
CAP_A = float(os.environ.get("GEN_CAP_A", str(50 * CELL_SCALE)))


# What Prada2013 (A123 26650 LFP) lacks for a thermal SPMe, as the shared lfp_day took it: Chen2020's
# current collectors, densities, heat capacities, conductivities and heat transfer, a 26650 can.
# Its C/20 capacity comes out as lfp_day's (2.2846 Ah).
CHEN2020_FOR = (
    "current collector",
    "density [kg.m-3]",
    "specific heat",
    "thermal conductivity",
    "heat transfer",
)


def parameters(parameter_set: str, aging: str) -> pybamm.ParameterValues:
    p = pybamm.ParameterValues(parameter_set)
    if parameter_set == "Prada2013":
        for key, value in pybamm.ParameterValues("Chen2020").items():
            if key not in p.keys() and any(word in key for word in CHEN2020_FOR):  # noqa: SIM118
                p.update({key: value}, check_already_exists=False)
        p.update(
            {"Cell volume [m3]": 3.45e-5, "Cell cooling surface area [m2]": 0.00637},
            check_already_exists=False,
        )
    if CELL_SCALE != 1.0:
        p["Electrode width [m]"] *= CELL_SCALE
        p["Nominal cell capacity [A.h]"] *= CELL_SCALE
        p["Cell volume [m3]"] *= CELL_SCALE
        p["Cell cooling surface area [m2]"] *= CELL_SCALE ** (2.0 / 3.0)
    p["Upper voltage cut-off [V]"] = V_MAX
    if "Open-circuit voltage at 100% SOC [V]" in p.keys():  # noqa: SIM118 - ParameterValues is not a dict
        p["Open-circuit voltage at 100% SOC [V]"] = V_MAX
    p["Lower voltage cut-off [V]"] = V_MIN
    if aging == "series-aged":
        # Another degradation than aged_v2h's: more lithium loss, positive active material lost, and
        # the resistance growth as film / contact resistance (series) only.
        p["Negative electrode active material volume fraction"] *= 0.97
        p["Positive electrode active material volume fraction"] *= 0.92
        p["Initial concentration in negative electrode [mol.m-3]"] *= 0.80 / 0.97
        p["Contact resistance [Ohm]"] = 0.010 / CELL_SCALE  # a larger cell's in proportion
    elif aging == "kinetic-aged":
        # The resistance growth as slower kinetics only (exchange currents / 2.5), some lithium loss.
        p["Initial concentration in negative electrode [mol.m-3]"] *= 0.90
        for electrode in ("Negative", "Positive"):
            key = f"{electrode} electrode exchange-current density [A.m-2]"
            p[key] = _divided(p[key], 2.5)
        p["Contact resistance [Ohm]"] = 0.0
    elif aging == "hysteresis":
        # LFP's OCV hysteresis (not aging: kept with the other cell variants), which Prada2013 lacks:
        # PyBaMM's one-state model (Axen 2022) on the positive electrode, the lithiation branch
        # HYST_V below the mean OCP and the delithiation branch as far above (a 2 x HYST_V gap, as
        # measured on A123 cells: 15-30 mV at mid SoC), moving to a branch over about 2 / HYST_GAMMA
        # of the particles' stoichiometry; it starts on the lithiation branch (after a discharge).
        ocp = p["Positive electrode OCP [V]"]
        p.update(
            {
                "Positive electrode lithiation OCP [V]": _shifted(ocp, -HYST_V),
                "Positive electrode delithiation OCP [V]": _shifted(ocp, HYST_V),
                "Positive particle lithiation hysteresis decay rate": _constant(HYST_GAMMA),
                "Positive particle delithiation hysteresis decay rate": _constant(HYST_GAMMA),
                "Initial hysteresis state in positive electrode": -1.0,
            },
            check_already_exists=False,
        )
    elif aging:
        raise SystemExit(f"unknown aging {aging!r}")
    return p


def _divided(function: Callable[..., object], divisor: float) -> Callable[..., object]:
    return lambda *args: function(*args) / divisor  # type: ignore[operator]


def _shifted(function: Callable[..., object], volts: float) -> Callable[..., object]:
    return lambda *args: function(*args) + volts  # type: ignore[operator]


def _constant(value: float) -> Callable[..., object]:
    return lambda *args: value


def main(name: str, parameter_set: str, ambient_c: float, seed: int, aging: str) -> None:
    rng = np.random.default_rng(seed)
    options: dict[str, object] = {"thermal": "lumped"}
    if aging == "hysteresis":
        options["open-circuit potential"] = ("single", "one-state hysteresis")
    elif aging:
        options["contact resistance"] = "true"
    solver = pybamm.IDAKLUSolver(rtol=1e-6, atol=1e-6)
    model = pybamm.lithium_ion.SPMe(options)

    # C/20 capacity at 25 degC from full: the soc_true scale.
    p25 = parameters(parameter_set, aging)
    p25["Ambient temperature [K]"] = p25["Initial temperature [K]"] = 298.15
    p25["Current function [A]"] = p25["Nominal cell capacity [A.h]"] / 20
    sol = pybamm.Simulation(model, parameter_values=p25, solver=solver).solve([0, 30 * 3600], initial_soc=1.0)
    q_true = float(sol["Discharge capacity [A.h]"].entries[-1])

    rest0_s, load_s, rest1_s = 120, 3 * 3600, 3600
    power_w: list[float] = []
    while len(power_w) < load_s:
        hold_s = int(rng.integers(5, 61))
        power_w += [1000.0 * (0.5 + 4.5 * rng.beta(1.5, 3.0))] * hold_s
    i_load = np.array(power_w[:load_s]) / (V_CELL * SERIES * PARALLEL)
    soc0, soc_end = SOC_START, SOC_END
    q_out0 = (1 - soc0) * q_true
    i_charge = -CHARGE_W / ((V_CELL + 0.3) * SERIES * PARALLEL)
    charge_s = int(((q_out0 + i_load.sum() / 3600) / q_true - (1 - soc_end)) * q_true * 3600 / -i_charge)
    on_s, off_s = (CHARGE_ON_S, CHARGE_OFF_S) if CHARGE_ON_S > 0 and CHARGE_OFF_S > 0 else (charge_s, 0)
    if off_s and max(STOP_AFTER_S) >= off_s:
        raise SystemExit(f"GEN_STOP_AFTER_S {STOP_AFTER_S}: each within the pause, under {off_s} s")
    blocks = -(-charge_s // max(on_s, 1))
    end_s = rest0_s + load_s + rest1_s + charge_s + (blocks - 1) * off_s + 3600
    profile = np.zeros(end_s + 1)
    profile[rest0_s : rest0_s + load_s] = i_load
    stop_times: list[int] = []
    begin, left = rest0_s + load_s + rest1_s, charge_s
    while left > 0:
        run = min(on_s, left)
        profile[begin : begin + run] = i_charge
        left -= run
        if left > 0 and len(stop_times) < len(STOP_AFTER_S) * STOP_POINTS:
            stop_times += [begin + run + after for after in STOP_AFTER_S]
        begin += run + off_s

    pv = parameters(parameter_set, aging)
    pv["Ambient temperature [K]"] = pv["Initial temperature [K]"] = ambient_c + 273.15
    lip = pybamm.LithiumIonParameters()
    esoh = pybamm.lithium_ion.ElectrodeSOHSolver(pv, param=lip).solve(
        {
            "V_min": V_MIN,
            "V_max": V_MAX,
            "Q_n": pv.evaluate(lip.n.Q_init),
            "Q_p": pv.evaluate(lip.p.Q_init),
            "Q_Li": pv.evaluate(lip.Q_Li_particles_init),
        }
    )
    initial_soc = 1 - q_out0 / float(esoh["Q"])
    sop_times = sorted({*list(range(88, end_s, max(1, end_s // 18)))[:20], *stop_times})
    bounds = sorted({0, *sop_times, end_s})
    pulse_values = pv.copy()
    pulse_values["Current function [A]"] = "[input]"

    rows: dict[str, list[float]] = {"t": [], "i": [], "v": [], "temp": []}
    points = []
    previous = None
    discharged0_ah = 0.0
    started = time.time()
    for a, b in pairwise(bounds):
        # Zero-order hold with a 0.1 s edge before each change, as in the shared sets.
        xs, ys = [], []
        for j in range(b - a):
            xs += [j, j + 0.9]
            ys += [profile[a + j], profile[a + j]]
        xs.append(b - a + 0.9)
        ys.append(profile[b])
        values = pv.copy()
        values["Current function [A]"] = pybamm.Interpolant(np.array(xs), np.array(ys), pybamm.t)
        chunk = model if previous is None else model.set_initial_conditions_from(previous, inplace=False)
        sim = pybamm.Simulation(chunk, parameter_values=values, solver=solver)
        t_eval = np.arange(0, b - a + 1, dtype=float)
        # IDAKLU returns its adaptive steps unless told where to interpolate: without t_interp the
        # rows were the first steps of each chunk stretched over it (the traces of 2026-12-05).
        start = {"initial_soc": initial_soc} if previous is None else {}
        sol = sim.solve(t_eval, t_interp=t_eval, **start)
        if abs(sol.t[-1] - t_eval[-1]) > 1e-6:
            raise SystemExit(f"the scenario stopped at {a + sol.t[-1]} s: {sol.termination}")
        n = len(t_eval) - 1
        if previous is None:
            discharged0_ah = float(sol["Discharge capacity [A.h]"].entries[0])
        if len(sol.t) != len(t_eval) or np.max(np.abs(sol.t - t_eval)) > 1e-9:
            raise SystemExit(f"chunk {a}-{b}: the solution is not on the 1 s grid")
        rows["t"] += list(t_eval[:n] + a)
        rows["i"] += list(sol["Current [A]"].entries[:n])
        rows["v"] += list(sol["Terminal voltage [V]"].entries[:n])
        rows["temp"] += list(sol["Volume-averaged cell temperature [C]"].entries[:n])
        # The counted charge (soc_true's) must be the model's own: the current held over each second.
        counted_ah = float(np.sum(rows["i"])) / 3600.0
        model_ah = float(sol["Discharge capacity [A.h]"].entries[-1]) - discharged0_ah
        if abs(counted_ah - model_ah) > 1e-3 * q_true:
            raise SystemExit(f"t {b}: counted {counted_ah:.5f} Ah, the model discharged {model_ah:.5f} Ah")
        previous = sol
        if b in sop_times:
            points.append(
                sop_point(model, sol, pulse_values, solver, b, q_out0, q_true, float(np.sum(rows["i"])))
            )
            print(f"t {b} {points[-1]} ({time.time() - started:.0f} s)", flush=True)
    assert previous is not None
    rows["t"].append(float(end_s))
    rows["i"].append(float(previous["Current [A]"].entries[-1]))
    rows["v"].append(float(previous["Terminal voltage [V]"].entries[-1]))
    rows["temp"].append(float(previous["Volume-averaged cell temperature [C]"].entries[-1]))
    write(name, rows, rng, q_out0, q_true)
    t_s = np.array(rows["t"])
    soc = 1 - (q_out0 + np.concatenate([[0.0], np.cumsum(rows["i"][:-1])]) / 3600.0) / q_true
    meta = {
        "dataset": name,
        "generator": {
            "script": "tests/data/battery/generate_extra.py",
            "argv": sys.argv[1:],
            "env": {key: value for key, value in sorted(os.environ.items()) if key.startswith("GEN_")},
            "pybamm": pybamm.__version__,
        },
        "cell": {"parameter_set": parameter_set, "true_capacity_ah": q_true, "aging": aging or None},
        "pack": {"series": SERIES, "parallel": PARALLEL, "true_capacity_ah": q_true * PARALLEL},
        "voltage_limits_v_cell": [V_MIN, V_MAX],
        "duration_s": float(t_s[-1]),
        "initial_soc_true": soc0,
        "final_soc_true": float(soc[-1]),
        "min_soc_true": float(soc.min()),
        "max_soc_true": float(soc.max()),
        "ambient": {"mean_c": ambient_c, "amp_c": 0.0},
        "sop_truth": {"horizon_s": HORIZON_S, "bisection_cap_a_cell": CAP_A, "points": points},
    }
    with open(f"{name}.json", "w") as f:
        json.dump(meta, f, indent=1)


def sop_point(
    model: pybamm.BaseModel,
    sol: pybamm.Solution,
    values: pybamm.ParameterValues,
    solver: pybamm.BaseSolver,
    t_s: int,
    q_out0: float,
    q_true: float,
    q_ah: float,
) -> dict[str, float]:
    """The largest 10 s discharge and charge currents from the state at the end of ``sol``."""
    sim = pybamm.Simulation(
        model.set_initial_conditions_from(sol, inplace=False), parameter_values=values, solver=solver
    )

    def holds(i_a: float) -> bool:
        try:
            s = sim.solve(np.linspace(0, HORIZON_S, 41), inputs={"Current function [A]": i_a})
        except pybamm.SolverError:
            return False
        if s.t[-1] < HORIZON_S - 1e-6:
            return False
        v = s["Terminal voltage [V]"].entries
        return bool(
            v.min() >= V_MIN
            and v.max() <= V_MAX
            and s["Electrolyte concentration [mol.m-3]"].entries.min() > 0
        )

    limits = {}
    for sign, key in ((1.0, "discharge"), (-1.0, "charge")):
        lo, hi = 0.0, CAP_A
        for _ in range(14):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if holds(sign * mid) else (lo, mid)
        limits[key] = lo
    return {
        "t_s": t_s,
        "soc_true": 1 - (q_out0 + q_ah / 3600.0) / q_true,
        "temp_c_true": float(sol["Volume-averaged cell temperature [C]"].entries[-1]),
        "max_discharge_current_a_cell": limits["discharge"],
        "max_discharge_current_a_pack": limits["discharge"] * PARALLEL,
        "max_charge_current_a_cell": limits["charge"],
        "max_charge_current_a_pack": limits["charge"] * PARALLEL,
    }


def write(
    name: str, rows: dict[str, list[float]], rng: np.random.Generator, q_out0: float, q_true: float
) -> None:
    t = np.array(rows["t"])
    i_cell, v_cell, temp = np.array(rows["i"]), np.array(rows["v"]), np.array(rows["temp"])
    soc = 1 - (q_out0 + np.concatenate([[0.0], np.cumsum(i_cell[:-1])]) / 3600.0) / q_true
    gain = 0.005 * (1 if rng.random() < 0.5 else -1)
    offset = 0.1 * (1 if rng.random() < 0.5 else -1)
    i_meas = np.round(((1 + gain) * i_cell * PARALLEL + offset + rng.normal(0, 0.05, len(t))) / 0.01) * 0.01
    v_meas = np.round((SERIES * v_cell + rng.normal(0, SERIES * 0.002, len(t))) / 0.01) * 0.01
    t_meas = np.round((temp + rng.normal(0, 0.2, len(t))) / 0.5) * 0.5
    columns = (t, i_meas, v_meas, t_meas, soc, v_cell, i_cell, temp)
    with gzip.open(f"{name}.csv.gz", "wt") as f:
        f.write(
            "t_s,pack_current_a_meas,pack_voltage_v_meas,temp_c_meas,soc_true,"
            "cell_voltage_v_true,cell_current_a_true,temp_c_true\n"
        )
        for row in zip(*columns, strict=True):
            f.write(",".join(f"{x:.6g}" if k else f"{x:.0f}" for k, x in enumerate(row)) + "\n")


if __name__ == "__main__":
    main(
        sys.argv[1],
        sys.argv[2],
        float(sys.argv[3]),
        int(sys.argv[4]),
        sys.argv[5] if len(sys.argv) > 5 else "",
    )
