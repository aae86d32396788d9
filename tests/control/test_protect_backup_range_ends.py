"""The supervisory backup of an inverter set at the ends of 1547's ranges: widened pickups stay where
the quantity can read them (a UV pickup at 0 pu is not -0.02 pu) and the longest clearing time plus the
extra delay packs. Before, such settings (accepted by the profile) held the charger at P = Q = 0
("uv1.pickup = -0.02: must be within [0.0, 2.0]", "of1.clearing_s = 1000.5"), found by the 1547.1 suite."""

from __future__ import annotations

from edge.control.protect_params import Trip, params_from_settings
from tests.control.test_protect_params import _settings


def test_a_backup_at_the_range_ends_packs() -> None:
    s = _settings(
        grid__voltage_trip__uv1__pickup_pu=0.0,
        grid__voltage_trip__uv2__pickup_pu=0.0,
        grid__frequency_trip__of1__clearing_s=1000.0,
        grid__frequency_trip__uf1__clearing_s=1000.0,
    )
    p = params_from_settings(s, measured_latency_s=0.3)
    p.pack()  # every field inside the kernel's ranges
    extra = s.functions.supervisory_extra_delay_s
    assert p.uv1.pickup == 0.0 and p.uv2.pickup == 0.0
    assert p.of1 == Trip(p.of1.pickup, 1000.0 + extra)
    assert p.uf1.clearing_s == 1000.0 + extra
