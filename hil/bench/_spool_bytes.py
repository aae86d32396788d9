"""Bytes the MQTT outbox (``edge.link.spool``) writes to the card per hour while the broker is
unreachable: telemetry of about 1 kB appended once per period into a real spool in a temporary
directory, one transaction per record as the daemon's writer does at that period, nothing acked.

Time is simulated: the spool's clock advances one period per record, so an hour's rate is measured
in seconds. Bytes are the writer thread's own write calls (``/proc/thread-self/io`` ``wchar``, as in
``edge.state``): the log frames of each commit and the checkpoints into the file, not the card's
erase blocks.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

from edge.link.spool import Spool

SPOOL_MAX_BYTES = 64 * 1024 * 1024  # the default [mqtt] spool_max_mb


def telemetry_body(seq: int) -> bytes:
    """A telemetry record of the size the daemon publishes (about 1 kB of JSON)."""
    point = {"p_w": -7123.4, "q_var": 512.25, "v_pu": 1.0123, "f_hz": 49.987, "age_s": 0.21}
    record = {
        "seq": seq,
        "t": "2025-01-01T12:00:00.000Z",
        "state": "running",
        "mode": "v2g",
        "dispatch_source": "aggregator",
        "p_cmd_w": -7200.0,
        "q_cmd_var": 500.0,
        "binding": ["dispatch", "sop_charge"],
        "reasons": [],
        "meter": point,
        "inverter": point,
        "soc": 0.6123,
        "soh": 0.9421,
        "sop_charge_w": 11000.0,
        "sop_discharge_w": 10500.0,
        "energy_wh": {"e_charge_ac_wh": 123456.7, "e_discharge_ac_wh": 23456.7},
        "departure": "07:30",
        "session": {"start": "2025-01-01T08:00:00Z", "e_charge_ac_wh": 12345.6, "soc_start": 0.2},
        "output_mismatch": None,
        "links": {
            "devices": [
                {"name": n, "ok": True, "error": None, "rtt_ms": 12.3, "last_success_age_s": 0.4}
                for n in ("inverter", "meter")
            ],
            "spool_backlog": 86400,
            "dropped_telemetry": 0,
            "dropped_events": 0,
        },
    }
    return json.dumps(record).encode()


async def _measure(state_dir: Path, period_s: float, duration_s: float, body: bytes | None) -> float:
    now = [0.0]
    spool = Spool.open(state_dir, max_bytes=SPOOL_MAX_BYTES, clock=lambda: now[0])
    try:
        if spool.problem is not None:
            raise RuntimeError(f"spool benchmark: {spool.problem}")
        start = spool.stats.bytes_written  # creating the file is not part of the rate
        for i in range(max(1, round(duration_s / period_s))):
            now[0] += period_s
            spool.append("telemetry", body if body is not None else telemetry_body(i), 1.7e9 + now[0])
            # One commit per record: the writer wakes on each append, a period apart.
            if not await spool.flush():
                raise RuntimeError("spool benchmark: a write failed")
        written = spool.stats.bytes_written - start
    finally:
        await spool.aclose()
    return written * 3600.0 / now[0]


def measure_offline_bytes(period_s: float, duration_s: float, body: bytes | None = None) -> float:
    """Bytes per hour written while offline, appending ``body`` (default: ``telemetry_body``) every
    ``period_s`` for ``duration_s`` of simulated time."""
    if not (period_s > 0.0 and duration_s >= period_s):
        raise ValueError(
            f"period_s = {period_s!r}, duration_s = {duration_s!r}: need 0 < period_s <= duration_s"
        )
    with tempfile.TemporaryDirectory(prefix="spool-bench-") as tmp:
        return asyncio.run(_measure(Path(tmp), period_s, duration_s, body))
