"""A stand-in for v2g-edged in the runner's tests: reads the generated config, finds the power stage
and the meter over Modbus (SunSpec chain walk), and runs a crude minimum-import loop.

It checks the runner's plumbing (config generation, process handling, judging), not the product.
``--config FILE`` as v2g-edged takes it; ``FAKE_TARGET_IMPORT_W`` sets the loop's target.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import tomllib
from pathlib import Path
from typing import Any

from pymodbus.client import AsyncModbusTcpClient


async def models(c: AsyncModbusTcpClient, unit: int) -> dict[int, int]:
    found: dict[int, int] = {}
    addr = 40002
    while True:
        rr = await c.read_holding_registers(addr, count=2, device_id=unit)
        mid, length = rr.registers
        if mid == 0xFFFF:
            return found
        found[mid] = addr
        addr += 2 + length


def s16(x: int) -> int:
    return x - 65536 if x >= 32768 else x


def append(path: Path, line: str) -> None:
    with path.open("a") as f:
        f.write(line)


async def listen(cfg: dict[str, Any], log: Path, stop: asyncio.Event) -> None:
    """With MQTT enabled, log every message to ``log`` (what an aggregator sent)."""
    import aiomqtt

    async with aiomqtt.Client(cfg["mqtt"]["host"], cfg["mqtt"]["port"], identifier="fake-daemon") as client:
        await client.subscribe("#", qos=1)
        async for msg in client.messages:
            line = f"{msg.topic.value} {msg.payload.decode()}\n"
            await asyncio.to_thread(append, log, line)
            if stop.is_set():
                return


async def run(cfg: dict[str, Any]) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    dev = cfg["devices"]
    ps_bus = cfg["buses"][dev["power_stage"]["bus"]]
    mt_bus = cfg["buses"][dev["site_meter"]["bus"]]
    ps = AsyncModbusTcpClient(ps_bus["host"], port=ps_bus["port"], timeout=0.5, retries=0)
    mt = AsyncModbusTcpClient(mt_bus["host"], port=mt_bus["port"], timeout=0.5, retries=0)
    await ps.connect()
    await mt.connect()
    pu, mu = dev["power_stage"]["unit_id"], dev["site_meter"]["unit_id"]
    pm = await models(ps, pu)
    mm = await models(mt, mu)
    meter_model = next(m for m in (201, 202, 203) if m in mm)
    target = float(os.environ.get("FAKE_TARGET_IMPORT_W", "100"))
    a704 = pm[704]
    await ps.write_registers(a704 + 31, [0, 2], device_id=pu)  # WSetRvrtTms = 2 s
    await ps.write_registers(a704 + 22, [1], device_id=pu)  # WSetEna
    wset = 0.0
    tasks = []
    if cfg["mqtt"]["enabled"] and os.environ.get("FAKE_MQTT_LOG"):
        tasks.append(asyncio.create_task(listen(cfg, Path(os.environ["FAKE_MQTT_LOG"]), stop)))
    print("fake daemon running", flush=True)
    while not stop.is_set():
        rr = await mt.read_holding_registers(mm[meter_model] + 18, count=5, device_id=mu)
        w = s16(rr.registers[0]) * 10.0 ** s16(rr.registers[4])
        wset = max(min(wset + 0.5 * (w - target), 7000.0), -7000.0)
        raw = round(wset) & 0xFFFFFFFF
        await ps.write_registers(a704 + 24, [raw >> 16, raw & 0xFFFF], device_id=pu)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)
    for t in tasks:
        t.cancel()
    ps.close()
    mt.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--runtime-dir")  # as v2g-edged takes it; the stand-in writes no status
    args = ap.parse_args()
    asyncio.run(run(tomllib.loads(Path(args.config).read_text(encoding="utf-8"))))


if __name__ == "__main__":
    main()
