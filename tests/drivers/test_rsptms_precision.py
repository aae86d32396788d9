"""Times the inverter cannot hold are refused, not rounded (drivers/sunspec/write.py).

A response time (705/706/711 ``RspTms``), a clearing time (707-710 ``Tms``) or an enter-service delay
(703, whole seconds) goes out at the device's own resolution: 0.2 s where ``RspTms_SF`` = 0 would be
0 s or 1 s, another setting than the one commissioned. The write path refuses it naming the model,
the point, the value wanted, the scale factor and the nearest value the device holds; the functions
configurator turns the refusal into the power stage's ``config_problem`` and the daemon holds
P = Q = 0 with it as the reason. Other scaled points (a curve's voltages) still round to their step.

Checked on the model definitions, against the plant's inverter over Modbus TCP (its 711 told to count
whole seconds), and with the real daemon.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from drivers.errors import DriverError
from drivers.sunspec import models as ssm
from drivers.sunspec.device import ModelValues
from drivers.sunspec.discovery import ModelInstance
from drivers.sunspec.functions import plan_from_settings
from drivers.sunspec.write import CheckedWriter
from edge.daemon import status as status_file
from edge.settings import Settings
from hil.plant import Plant
from hil.plant import events as ev
from tests.daemon.bench_support import running_daemon, running_plant, settings_for
from tests.drivers.conftest import BuildDrivers
from tests.drivers.test_write_path import WriteLog, plant_stage

COUNTS = {"NCrv": 2, "NCrvSet": 2, "NCtl": 2, "NPt": 4}


def model(model_id: int, regs: dict[str, int]) -> ModelValues:
    """A model as the write path sees it (two curve sets of four points), raw values ``regs``."""
    lay = ssm.layout(ssm.load(model_id), COUNTS)
    inst = ModelInstance(model_id, 40002, lay.length)
    return ModelValues(lay, inst, tuple(ssm.model_registers(lay, regs)), 0.0)


WRITER = CheckedWriter(None, "inv")  # type: ignore[arg-type]  # raw() never touches the device


@pytest.mark.parametrize(
    ("model_id", "sf_point", "sf", "path", "value", "raw"),
    [
        (711, "RspTms_SF", -2, "Ctl[1].RspTms", 0.2, 20),
        (711, "RspTms_SF", 0, "Ctl[1].RspTms", 5.0, 5),
        (705, "RspTms_SF", -1, "Crv[1].RspTms", 10.0, 100),
        (707, "Tms_SF", -2, "Crv[1].MustTrip.Pt[0].Tms", 0.16, 16),
        (707, "Tms_SF", -2, "Crv[1].MustTrip.Pt[1].Tms", 0.0, 0),
        (703, None, 0, "ESDlyTms", 300.0, 300),
    ],
)
def test_a_time_the_device_holds_is_written_exactly(
    model_id: int, sf_point: str | None, sf: int, path: str, value: float, raw: int
) -> None:
    mv = model(model_id, {sf_point: sf} if sf_point else {})
    assert WRITER.raw(mv, path, value) == raw


@pytest.mark.parametrize(
    ("model_id", "sf_point", "sf", "path", "value", "carrier", "nearest"),
    [
        (711, "RspTms_SF", 0, "Ctl[1].RspTms", 0.2, "RspTms_SF = 0 (steps of 1 s)", "0 s"),
        (706, "RspTms_SF", 0, "Crv[1].RspTms", 2.5, "RspTms_SF = 0 (steps of 1 s)", "3 s"),
        (705, "RspTms_SF", -1, "Crv[1].RspTms", 0.25, "RspTms_SF = -1 (steps of 0.1 s)", "0.3 s"),
        (708, "Tms_SF", -1, "Crv[1].MustTrip.Pt[0].Tms", 0.16, "Tms_SF = -1 (steps of 0.1 s)", "0.2 s"),
        (711, "RspTms_SF", -2, "Ctl[1].RspTms", 0.204, "RspTms_SF = -2 (steps of 0.01 s)", "0.2 s"),
        (703, None, 0, "ESDlyTms", 2.5, "no scale factor (steps of 1 s)", "3 s"),
        (705, "RspTms_SF", 0, "Crv[0].VRefAutoTms", 300.4, "no scale factor (steps of 1 s)", "300 s"),
    ],
)
def test_a_time_the_device_cannot_hold_is_refused_naming_sf_and_nearest(
    model_id: int, sf_point: str | None, sf: int, path: str, value: float, carrier: str, nearest: str
) -> None:
    mv = model(model_id, {sf_point: sf} if sf_point else {})
    with pytest.raises(DriverError) as e:
        WRITER.raw(mv, path, value)
    assert e.value.kind == "range"
    text = str(e.value)
    assert f"({model_id} {path}): wanted {value:g} s" in text, text
    assert f"{carrier}, the nearest value it holds is {nearest}" in text, text
    assert text.endswith("nothing written")


def test_other_scaled_points_still_round_to_their_step() -> None:
    """A curve's voltage at V_SF -1 (0.1 % steps) and a droop deadband at Db_SF -3 are not times."""
    assert WRITER.raw(model(705, {"V_SF": -1}), "Crv[1].Pt[0].V", 92.34) == 923
    assert WRITER.raw(model(711, {"Db_SF": -2}), "Ctl[1].DbOf", 0.0364) == 4


# --- against the plant's inverter --------------------------------------------------------------------


def cat_iii_droop(plant: Plant, olrt_s: float) -> Settings:
    """Frequency droop in the inverter with 1547 Cat III's fastest response, ``olrt_s``."""
    settings = settings_for(
        plant,
        commissioning={"abnormal_category": "III"},
        functions={"frequency_droop": "inverter"},
        # Cat III's own under-voltage clearing time (the embedded configuration writes Cat II's out).
        grid={"freq_droop": {"olrt_s": olrt_s}, "voltage_trip": {"uv1": {"clearing_s": 21.0}}},
    )
    assert settings.grid is not None and settings.grid.freq_droop.olrt_s == olrt_s
    return settings


@pytest.fixture
async def plant() -> Any:
    async with running_plant() as p:
        yield p


async def test_a_response_time_the_inverter_holds_is_adopted_and_read_back(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    settings = cat_iii_droop(plant, 0.2)
    assert settings.grid is not None
    stage = await plant_stage(plant, drivers_factory)
    report = await stage.configure_functions(plan_from_settings(settings.functions, settings.grid))
    assert report.ok, report.problems
    dev = plant.stage_dev.dev
    assert dev.get_raw(711, "RspTms_SF") == -2
    assert dev.get_raw(711, "Ctl[0].RspTms") == 20
    assert plant.stage.droop_ena and plant.stage.droop.olrt_s == pytest.approx(0.2)


async def test_a_response_time_finer_than_the_inverter_counts_is_refused_and_nothing_written(
    plant: Plant, drivers_factory: BuildDrivers
) -> None:
    dev = plant.stage_dev.dev
    dev.set_raw(711, "RspTms_SF", 0)  # this inverter counts droop response times in whole seconds
    active_before = [dev.get_raw(711, p) for p in dev.paths(711)]
    settings = cat_iii_droop(plant, 0.2)
    assert settings.grid is not None
    stage = await plant_stage(plant, drivers_factory)
    log = WriteLog(plant)
    report = await stage.configure_functions(plan_from_settings(settings.functions, settings.grid))
    assert not report.ok
    refusal = "RspTms): wanted 0.2 s, which the device cannot hold: RspTms_SF = 0 (steps of 1 s), the "
    refusal += "nearest value it holds is 0 s"
    # Named once (configuring and checking refuse it alike), and nothing else is wrong.
    assert len(report.problems) == 1, report.problems
    assert report.problems[0].startswith("frequency_droop: model 711 setting refused: ")
    assert refusal in report.problems[0]
    # Nothing of 711 went out: not the control set, not the adopt request, not the enable.
    assert [pt for pt in log.points() if pt[0] == 711] == []
    assert [dev.get_raw(711, p) for p in dev.paths(711)] == active_before
    assert not plant.stage.droop_ena
    problem = (await stage.read()).config_problem
    assert problem is not None and refusal in problem


async def test_the_daemon_holds_zero_naming_the_refused_response_time(tmp_path: Path) -> None:
    async with running_plant() as plant:
        plant.stage_dev.dev.set_raw(711, "RspTms_SF", 0)
        plant.apply(ev.HouseLoad(w=2000.0))
        async with running_daemon(cat_iii_droop(plant, 0.2), tmp_path):
            reasons: list[str] = []
            # Configured at start; a few cycles later the hold must still stand (margins for a loaded host).
            for _ in range(100):
                await asyncio.sleep(0.1)
                try:
                    status, _ = status_file.read(tmp_path / "status.json")
                except FileNotFoundError:
                    continue
                reasons = status.hold_reasons
                if any("RspTms): wanted 0.2 s" in r for r in reasons):
                    break
            assert any("RspTms_SF = 0 (steps of 1 s)" in r for r in reasons), reasons
            await asyncio.sleep(2.0)
            assert abs(plant.snapshot()["p_ev_w"]) <= 50.0
            assert abs(plant.snapshot()["q_ev_var"]) <= 50.0
