"""The real daemon, in-process, against the simulated plant over real Modbus TCP and a real
Mosquitto: in ``schedule`` mode with the planner on it publishes a retained plan, takes new prices
from the MQTT ``plan_inputs`` command, plans again at once, and the power stage follows the plan."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import aiomqtt

from hil.broker import Mosquitto
from tests.daemon.bench_support import running_daemon, running_plant, settings_for, until


def _in_hours(h: float) -> str:
    return datetime.fromtimestamp(time.time() + h * 3600.0, UTC).strftime("%H:%M:00")


def _cmd(body: dict[str, Any], cid: str) -> bytes:
    return json.dumps({"id": cid, "issued_at": datetime.now(UTC).isoformat(), **body}).encode()


async def _next_plan(sub: aiomqtt.Client, timeout_s: float, pred: Any) -> dict[str, Any]:
    async with asyncio.timeout(timeout_s):
        async for msg in sub.messages:
            if str(msg.topic).endswith("/plan"):
                body = json.loads(bytes(msg.payload))  # type: ignore[arg-type]
                if pred(body):
                    return body  # type: ignore[no-any-return]
    raise AssertionError("unreachable")


async def test_the_daemon_follows_the_plan_and_takes_prices_over_mqtt(
    tmp_path: Any, mqtt_broker: Mosquitto
) -> None:
    async with running_plant() as plant:
        mqtt = {
            "enabled": True,
            "tls": False,
            "host": mqtt_broker.host,
            "port": mqtt_broker.port,
            "evse_id": "plan-t",
        }
        settings = settings_for(
            plant,
            mqtt=mqtt,
            operation={"mode": "schedule"},
            site={"non_export": True},
            # A departure in 6 h that needs energy: the plan charges where energy is cheapest.
            owner={"departure_soc": 0.95, "departure_time": _in_hours(6.0), "time_zone": "UTC"},
            planner={"enabled": True, "import_tariff": [{"start": "00:00:00", "price_per_kwh": 0.30}]},
        )
        base = f"v2g/{settings.mqtt.site_id}/plan-t"
        async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, identifier="plan-watch") as sub:
            await sub.subscribe(f"{base}/plan", qos=1)
            async with running_daemon(settings, tmp_path) as daemon:
                first = await _next_plan(sub, 20, lambda b: b["status"] == "planned")
                assert first["envelope"]["p_min_w"][0] < 0.0
                # Energy is free for the next hour: the plan charges at full power now.
                now = time.time()
                start = datetime.fromtimestamp(now - now % 900, UTC).isoformat()
                series = {"start": start, "step_s": 900, "values": [0.0] * 4}
                await sub.publish(
                    f"{base}/cmd/plan_inputs", _cmd({"inputs": {"import_price": series}}, "pi-1"), qos=1
                )
                second = await _next_plan(
                    sub, 10, lambda b: b["status"] == "planned" and b["import_price"][0] == 0.0
                )
                assert second["p_w"][0] < -1000.0
                await until(lambda: plant.snapshot()["p_ev_w"] < -1000.0, 15, "the EV charges as planned")
                assert daemon.last is not None
                assert daemon.last[0].dispatch.source.startswith("planner dispatch")
                assert (tmp_path / "plan.json").exists()
                # Retained: a client that comes later gets the latest plan at once.
                async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, identifier="plan-late") as late:
                    await late.subscribe(f"{base}/plan", qos=1)
                    retained = await _next_plan(late, 5, lambda b: True)
                assert retained["import_price"][0] == 0.0
