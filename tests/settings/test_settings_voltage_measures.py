"""The applicable voltage (``commissioning.trip_voltage``, ``commissioning.volt_var_voltage``): the model
offers ``positive_sequence``, but the drivers read phase magnitudes only, so no kernel could follow it. It
is refused by the settings checks, naming the field, the value, why and what is allowed, and so it stops
``v2g-edged --check`` as well as every other path that validates settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from edge.daemon.main import EX_CONFIG
from edge.daemon.main import main as v2g_edged
from edge.settings import SettingsError, load_text

Edit = Callable[..., str]
FIELDS = [("trip_voltage", "min_max_phase"), ("volt_var_voltage", "average")]


@pytest.mark.parametrize(("name", "allowed"), FIELDS)
def test_positive_sequence_is_refused_naming_field_value_reason_and_what_is_allowed(
    name: str, allowed: str, bench_text: str, edit: Edit
) -> None:
    with pytest.raises(SettingsError) as err:
        load_text(edit(bench_text, **{f"commissioning__{name}": "positive_sequence"}))
    assert err.value.path == f"commissioning.{name}"
    assert err.value.value == "positive_sequence"
    assert err.value.allowed == f'"{allowed}"'
    message = str(err.value)
    assert message.startswith(f"commissioning.{name} = 'positive_sequence': not supported")
    assert "phase angles" in message and "no driver reads" in message


@pytest.mark.parametrize(("name", "allowed"), FIELDS)
def test_the_supported_measure_loads(name: str, allowed: str, bench_text: str, edit: Edit) -> None:
    settings = load_text(edit(bench_text, **{f"commissioning__{name}": allowed}))
    assert getattr(settings.commissioning, name) == allowed


@pytest.mark.parametrize(("name", "allowed"), FIELDS)
def test_check_refuses_to_energize_on_positive_sequence(
    name: str, allowed: str, bench_text: str, edit: Edit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "v2g-edge.toml"
    cfg.write_text(edit(bench_text, **{f"commissioning__{name}": "positive_sequence"}))
    assert v2g_edged(["--check", "--config", str(cfg)]) == EX_CONFIG
    captured = capsys.readouterr()
    assert f"commissioning.{name} = 'positive_sequence'" in captured.err
    assert "energize" not in captured.out  # refused before any verdict on energizing
    cfg.write_text(edit(bench_text, **{f"commissioning__{name}": allowed}))
    assert v2g_edged(["--check", "--config", str(cfg)]) == 0
    assert "energize: allowed" in capsys.readouterr().out
