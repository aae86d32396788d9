"""Every plant signal, sampled at a fixed period: what the runner judges and plots."""

from __future__ import annotations

from collections.abc import Mapping

# name -> (unit, description). Names follow the project's unit-in-name convention.
SIGNALS: dict[str, str] = {
    "grid_v_pu": "local bus voltage, phase A (per unit)",
    "grid_v_min_pu": "lowest phase voltage (per unit)",
    "grid_v_avg_pu": "average phase voltage (per unit): what the stage's volt-var/volt-watt see",
    "grid_v_max_pu": "highest phase voltage (per unit)",
    "grid_f_hz": "local bus frequency",
    "grid_phase_deg": "grid source phase A angle from its balanced position (a phase jump)",
    "breaker_closed": "grid breaker at the PCC (1 closed)",
    "house_load_w": "house load incl. hob",
    "pv_w": "PV output",
    "p_set_w": "active power the stage is commanded (WSet if enabled, else 0)",
    "p_target_w": "active power the stage aims at after its limits and functions",
    "p_ev_w": "stage AC output (> 0 export from the EV)",
    "q_ev_var": "stage reactive power (> 0 injection)",
    "q_target_var": "reactive power the stage aims at after its function and limits",
    "p_vw_limit_w": "the stage's volt-watt cap on P (its discharge rating while volt-watt is off)",
    "stage_vref_pu": "the stage's volt-var VRef in effect (autonomous VRef when enabled)",
    "p_dc_w": "DC power at the EV battery (> 0 discharge)",
    "p_site_import_w": "true flow at the PCC (> 0 import from the grid)",
    "p_site_export_w": "export at the PCC (max(0, -import))",
    "meter_reported_w": "the meter's W register in its own sign convention",
    "ev_soc": "EV state of charge (0..1)",
    "ev_plugged": "EV plugged (1) or not",
    "stage_state": "0 off, 1 idle, 2 running, 3 tripped, 4 ramp",
    "stage_reverted": "1 once the stage's WSet reversion timer has fired",
    "stage_mom_cess": "1 while the stage ceases to energize momentarily (no trip)",
    "stage_es_delay_rem_s": "enter-service delay left (incl. the randomized delay) while the stage waits",
    "stage_link_up": "1 while the power stage answers on its bus",
    "meter_link_up": "1 while the meter answers",
    "meter_frozen": "1 while the meter's values are frozen",
}


class Recorder:
    """Columns of floats, one row per sample; ``t_s`` is scenario time."""

    def __init__(self) -> None:
        self.columns: dict[str, list[float]] = {"t_s": [], **{k: [] for k in SIGNALS}}

    def add(self, t_s: float, values: Mapping[str, float]) -> None:
        self.columns["t_s"].append(t_s)
        for name in SIGNALS:
            self.columns[name].append(float(values[name]))

    def __len__(self) -> int:
        return len(self.columns["t_s"])

    def series(self, name: str) -> list[float]:
        if name not in self.columns:
            raise KeyError(f"no signal {name!r}; recorded: {', '.join(self.columns)}")
        return self.columns[name]
