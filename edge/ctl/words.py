"""The daemon's constraint and reason names in words, for ``v2gctl status`` (names stay in ``--json``).

``binding`` names come from ``edge.control.pq_types.Constraint`` (lower case) and the daemon's own
bounds (``export_cap``, ``departure``); ``reasons`` from ``edge.control.protect_types.Reason`` and
the controllers' holds. A name missing here is shown as it is.
"""

from __future__ import annotations

BINDING = {
    "input_invalid": "a measurement was invalid: last good value held",
    "stop_ramp": "ramping down for a stop",
    "droop_of": "over-frequency droop",
    "droop_uf": "under-frequency droop",
    "volt_watt": "volt-watt (high voltage)",
    "soc_reserve": "discharge held by: minimum SoC reserve (owner.min_soc)",
    "soc_full": "charging held by: battery full",
    "sop_discharge": "discharge held by: battery power limit (SoP)",
    "sop_charge": "charging held by: battery power limit (SoP)",
    "p_rating_discharge": "discharge held by: inverter rating (inverter.p_rated_w)",
    "p_rating_charge": "charging held by: inverter rating (inverter.p_rated_charge_w)",
    "s_limit": "apparent-power rating (inverter.s_rated_va)",
    "q_limit": "reactive-power capability",
    "ramp": "ramping toward the set point",
    "export_cap": "export held by: site export cap (site.export_cap_w)",
    "departure": "discharge held by: the owner's departure target (owner.departure_soc)",
}

REASON = {
    "ov1": "over-voltage 1",
    "ov2": "over-voltage 2",
    "uv1": "under-voltage 1",
    "uv2": "under-voltage 2",
    "of1": "over-frequency 1",
    "of2": "over-frequency 2",
    "uf1": "under-frequency 1",
    "uf2": "under-frequency 2",
    "island_rocof": "island suspected: rate of change of frequency",
    "island_phase_jump": "island suspected: phase jump",
    "island_min_import": "island suspected: site import below the minimum",
    "island_active": "island suspected: frequency follows the reactive dither",
    "grid_meas_invalid": "grid measurement invalid",
    "commissioning_lock": "not commissioned",
    "permit_off": "not permitted to operate",
    "momentary_cessation": "momentary cessation (voltage outside the continuous range)",
    "export_backstop": "export over the cap for too long: stopped",
    "meter_stale": "site meter data stale: no export",
    "meter_frozen": "site meter frozen: no export",
    "cap_limiting": "export cap limiting",
    "ride_through": "riding through a grid disturbance",
}


def binding(name: str) -> str:
    return BINDING.get(name, name)


def reason(name: str) -> str:
    return REASON.get(name, name)
