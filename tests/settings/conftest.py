"""Fixtures for the settings tests: the embedded config text, an EN 50549 site, and edits of them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from edge.settings import Settings, load_text
from edge.settings.edit import set_value
from edge.settings.load import default_config_text

BENCH = default_config_text()


def with_values(text: str = BENCH, **changes: object) -> str:
    """The config text with dotted-path keys (written with __ for dots) set; None removes a key."""
    for key, value in changes.items():
        text = set_value(text, key.replace("__", "."), value)
    return text


def settings_with(**changes: object) -> Settings:
    """The embedded settings with ``changes`` (as ``with_values``), loaded as the daemon loads them."""
    return load_text(with_values(**changes))


EN_SITE = """
[commissioning]
profile = "en50549-1"
v_nominal_v = 230.0
f_nominal_hz = 50
phase_topology = "three"
commissioned_by = "installer"
commissioned_at = 2026-03-01T10:00:00Z

[functions]
frequency_droop = "daemon"
volt_var = "inverter"

[operation]
mode = "v2g"

[site]
non_export = false
export_cap_w = 11000.0

[inverter]
p_rated_w = 11000.0
p_rated_charge_w = 11000.0
s_rated_va = 11000.0
q_max_inj_var = 4800.0
q_max_abs_var = 4800.0
"""


Edit = Callable[..., str]


@pytest.fixture
def bench_text() -> str:
    """The embedded default config (commissioned bench)."""
    return BENCH


@pytest.fixture
def en_site_text() -> str:
    """A commissioned EN 50549-1 site (50 Hz, no categories)."""
    return EN_SITE


@pytest.fixture
def edit() -> Edit:
    """``edit(text, grid__volt_var__v1_pu=0.9)``: the text with settings changed."""
    return with_values
