"""Run the real daemon in-process against the in-process plant (shared by the daemon tests)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import tomlkit

from edge.daemon.app import Daemon
from edge.settings import Settings, load_text
from edge.settings.load import default_config_text
from hil.plant import Plant
from hil.plant import config as plant_config


def bench_config_text(plant: Plant, **sections: dict[str, Any]) -> str:
    """The embedded configuration pointed at ``plant``, with sections overridden (``None`` removes)."""
    doc = tomlkit.parse(default_config_text())
    by_role = {a.name: a for a in plant.addresses if a.transport == "tcp"}
    doc["buses"]["stage_link"]["port"] = by_role["power_stage"].port  # type: ignore[index]
    doc["buses"]["meter_link"]["port"] = by_role["site_meter"].port  # type: ignore[index]
    doc["mqtt"]["enabled"] = False  # type: ignore[index]
    for name, values in sections.items():
        if values is None:
            doc.pop(name, None)
            continue
        table = doc.setdefault(name, tomlkit.table())
        for key, value in values.items():
            table[key] = value  # type: ignore[index]
    return tomlkit.dumps(doc)


@contextlib.asynccontextmanager
async def running_plant(**overrides: dict[str, Any]) -> AsyncIterator[Plant]:
    plant = Plant(plant_config.load(None, overrides))
    await plant.start()
    try:
        yield plant
    finally:
        await plant.stop()


@contextlib.asynccontextmanager
async def running_daemon(settings: Settings, runtime_dir: Path, **options: Any) -> AsyncIterator[Daemon]:
    daemon = Daemon(settings, runtime_dir=runtime_dir, state_dir=runtime_dir / "state", **options)
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop), name="daemon-under-test")
    try:
        yield daemon
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def settings_for(plant: Plant, **sections: dict[str, Any]) -> Settings:
    return load_text(bench_config_text(plant, **sections), "<bench test>")


async def until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` after ``timeout_s``."""
    try:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {timeout_s} s: {what}") from None
