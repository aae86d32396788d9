"""How the planner's benchmark days (tests/data/planner/*.json) were made; see README.md here.

Run from the repository root to regenerate them: ``.venv/bin/python tests/data/planner/make_days.py``.
The shapes are written out below (tariffs, a house load profile, a clear-sky PV bell); the forecasts
are the actual values with seeded Gaussian noise, so the files are reproducible bit for bit.
"""

import json
import math

import numpy as np

N = 96


def hours(start_h):  # local hour at each step midpoint
    return [(start_h + (k + 0.5) * 0.25) % 24 for k in range(N)]


def bell(h, peak_w, sunrise, sunset):
    if h <= sunrise or h >= sunset:
        return 0.0
    x = (h - sunrise) / (sunset - sunrise)
    return peak_w * math.sin(math.pi * x) ** 1.5


def load_profile(h, base=300.0):
    v = base
    if 6 <= h < 8:
        v += 900
    if 12 <= h < 13:
        v += 600
    if 17.5 <= h < 22:
        v += 1500
    if 19 <= h < 20:
        v += 1500  # cooking
    return v


rng = np.random.default_rng(20260601)


def noisy(x, rel):
    return [max(0.0, v * (1 + rel * rng.standard_normal())) for v in x]


days = []
# 1 winter two-rate
H = hours(18.0)
imp = [0.085 if 0.5 <= h < 5.5 else 0.30 for h in H]
em = [450 if 17 <= h < 21 else 250 if (h >= 23 or h < 6) else 350 for h in H]
load = [load_profile(h, 350) for h in H]
days.append(
    {
        "name": "winter-two-rate",
        "description": "January weekday, UK-style two-rate EV tariff (0.085 EUR/kWh 00:30-05:30, 0.30 otherwise), export 0.15 flat, no PV, evening plug-in at 18:00 with 35 %, departure 07:00 for 80 %.",
        "start": "2026-01-14T18:00:00+00:00",
        "step_s": 900,
        "import_price": imp,
        "export_price": [0.15] * N,
        "emissions_g_per_kwh": em,
        "emissions_weight_per_kg": 0.0,
        "load_w": load,
        "pv_w": [0.0] * N,
        "load_forecast_w": noisy(load, 0.2),
        "pv_forecast_w": [0.0] * N,
        "session": {
            "soc": 0.35,
            "e_per_soc_wh": 60000.0,
            "p_charge_max_w": 11000.0,
            "p_discharge_max_w": 11000.0,
            "departure_index": 52,
            "departure_soc": 0.8,
            "min_soc": 0.3,
        },
        "export_cap_w": 5000.0,
        "demand_charge_per_kw": 0.0,
    }
)
# 2 summer PV, flat tariff, home-office day
H = hours(18.0)
pv = [bell(h, 6500.0, 5.5, 21.0) if k >= 40 else 0.0 for k, h in enumerate(H)]
pv_f = noisy(pv, 0.1)
load = [load_profile(h, 300) for h in H]
em = [420 if 17 <= h < 22 else 180 if 10 <= h < 16 else 320 for h in H]
days.append(
    {
        "name": "summer-pv-flat",
        "description": "June home-office day, flat 0.32 EUR/kWh, feed-in 0.08, 8 kWp PV (6.5 kW peak), plug-in 18:00 with 40 %, departure next day 17:00 for 80 %.",
        "start": "2026-06-10T18:00:00+00:00",
        "step_s": 900,
        "import_price": [0.32] * N,
        "export_price": [0.08] * N,
        "emissions_g_per_kwh": em,
        "emissions_weight_per_kg": 0.0,
        "load_w": load,
        "pv_w": pv,
        "load_forecast_w": noisy(load, 0.2),
        "pv_forecast_w": pv_f,
        "session": {
            "soc": 0.40,
            "e_per_soc_wh": 60000.0,
            "p_charge_max_w": 11000.0,
            "p_discharge_max_w": 11000.0,
            "departure_index": 92,
            "departure_soc": 0.8,
            "min_soc": 0.3,
        },
        "export_cap_w": 4000.0,
        "demand_charge_per_kw": 0.0,
    }
)
# 3 dynamic spot with negative midday prices and emissions weight
H = hours(18.0)


def spot(h):
    base = 0.09 + 0.07 * math.cos((h - 19) / 24 * 2 * math.pi)
    if 10 <= h < 15:
        base -= 0.14 * math.sin(math.pi * (h - 10) / 5)
    return round(base, 4)


sp = [spot(math.floor(h)) for h in H]  # hourly steps
imp = [round(0.17 + s * 1.19, 4) for s in sp]  # grid fees and VAT on top of the spot price
exp_ = [max(0.0, s) for s in sp]
em = [round(200 + 1500 * max(s, 0.0), 1) for s in sp]
pv = [bell(h, 4000.0, 5.0, 21.5) if k >= 40 else 0.0 for k, h in enumerate(H)]
load = [load_profile(h, 400) for h in H]
days.append(
    {
        "name": "dynamic-spot",
        "description": "May weekend, hourly spot-indexed tariff (Tibber/aWATTar style: 0.17 + 1.19 x spot) with negative spot prices at noon, export at spot, 5 kWp PV, emissions priced at 0.10 EUR/kg, plug-in 18:00 with 30 %, departure next day 16:00 for 90 %.",
        "start": "2026-05-16T18:00:00+00:00",
        "step_s": 900,
        "import_price": imp,
        "export_price": exp_,
        "emissions_g_per_kwh": em,
        "emissions_weight_per_kg": 0.10,
        "load_w": load,
        "pv_w": pv,
        "load_forecast_w": noisy(load, 0.25),
        "pv_forecast_w": noisy(pv, 0.3),
        "session": {
            "soc": 0.30,
            "e_per_soc_wh": 60000.0,
            "p_charge_max_w": 11000.0,
            "p_discharge_max_w": 11000.0,
            "departure_index": 88,
            "departure_soc": 0.9,
            "min_soc": 0.3,
        },
        "export_cap_w": 7000.0,
        "demand_charge_per_kw": 0.0,
    }
)
# 4 demand charge, cloudy day the forecast thought sunny
H = hours(18.0)
pv_real = [0.35 * bell(h, 6000.0, 5.5, 21.0) if k >= 40 else 0.0 for k, h in enumerate(H)]
pv_fc = [bell(h, 6000.0, 5.5, 21.0) if k >= 40 else 0.0 for k, h in enumerate(H)]
imp = [0.38 if 16 <= h < 21 else 0.22 if (h >= 22 or h < 6) else 0.28 for h in H]
load = [load_profile(h, 500) for h in H]
days.append(
    {
        "name": "cloudy-demand-charge",
        "description": "April weekday, three-rate tariff (0.22 night, 0.28 day, 0.38 16:00-21:00), feed-in 0.07, demand charge 9 EUR/kW of monthly peak import (5 kW so far), PV forecast sunny but the day is overcast (35 %), plug-in 18:00 with 50 %, departure next day 13:00 for 85 %.",
        "start": "2026-04-22T18:00:00+00:00",
        "step_s": 900,
        "import_price": imp,
        "export_price": [0.07] * N,
        "emissions_g_per_kwh": None,
        "emissions_weight_per_kg": 0.0,
        "load_w": load,
        "pv_w": pv_real,
        "load_forecast_w": noisy(load, 0.15),
        "pv_forecast_w": pv_fc,
        "session": {
            "soc": 0.50,
            "e_per_soc_wh": 60000.0,
            "p_charge_max_w": 11000.0,
            "p_discharge_max_w": 11000.0,
            "departure_index": 76,
            "departure_soc": 0.85,
            "min_soc": 0.3,
        },
        "export_cap_w": 5000.0,
        "demand_charge_per_kw": 9.0,
        "demand_peak_so_far_w": 5000.0,
    }
)
for d in days:
    for k, v in d.items():
        if isinstance(v, list):
            d[k] = [round(float(x), 1 if k.endswith("_w") or k.startswith("emissions") else 4) for x in v]
    with open(f"tests/data/planner/{d['name']}.json", "w") as f:
        json.dump(d, f, indent=1)
