"""The daemon's side of the aggregator link: what it reports (state, telemetry, events) built from the
cycle's snapshot and command, and the link's parts (spool, command handler, MQTT session) put together.

Built only with ``[mqtt] enabled``. The payloads follow ``edge.link.payloads`` (their JSON Schemas
ship in ``config/schema/mqtt``); every record gets the spool's next sequence number, so the aggregator
can order and deduplicate what it receives across reconnects and restarts.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from edge import __version__
from edge.daemon.dispatch import Dispatcher
from edge.link import payloads as pl
from edge.link.client import AggregatorLink
from edge.link.commands import CommandHandler
from edge.link.config import check_files, fingerprint, read_password, tls_context
from edge.link.homeassistant import discovery_messages
from edge.link.spool import Spool
from edge.link.topics import COMMANDS, Topics
from edge.settings import Settings

log = logging.getLogger(__name__)


FUNCTIONS = (
    "frequency_droop",
    "volt_var",
    "volt_watt",
    "constant_pf",
    "constant_var",
    "watt_var",
    "voltage_trip",
    "frequency_trip",
    "anti_islanding",
    "enter_service",
    "export_cap",
)
# The settings of each function in [grid] (trip and ride-through settings are reported, never taken).
GRID_SECTION = {
    "frequency_droop": "freq_droop",
    "volt_var": "volt_var",
    "volt_watt": "volt_watt",
    "constant_pf": "constant_pf",
    "constant_var": "constant_var",
    "watt_var": "watt_var",
    "voltage_trip": "voltage_trip",
    "frequency_trip": "frequency_trip",
    "enter_service": "enter_service",
}


class Uplink:
    """The spool, the command handler and the MQTT session of one daemon; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        state_dir: Path | None,
        dispatcher: Dispatcher,
        file_settings: Callable[[], Settings],
        current_settings: Callable[[], Settings],
        apply: Callable[[Settings], str | None],
        devices: Callable[[], list[pl.DeviceIdentity]],
        rand: Callable[[], float],
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        mq = settings.mqtt
        self.mq = mq
        self.wall_clock = wall_clock
        check_files(mq, now_unix_s=wall_clock())  # raises for a missing or bad file; the link warns
        self._fingerprint = fingerprint(mq)
        self.spool = Spool.open(state_dir, max_bytes=int(mq.spool_max_mb * 1_000_000), wall_clock=wall_clock)
        self.topics = Topics(mq.topic_prefix, mq.site_id, mq.evse_id)
        self.handler = CommandHandler(
            dispatcher=dispatcher,
            meta=self.spool,
            settings=file_settings,
            apply=apply,
            rand=rand,
            allow_grid=mq.allow_grid_settings,
        )
        self._current = current_settings
        self._devices = devices
        self.link = AggregatorLink(
            mq,
            spool=self.spool,
            topics=self.topics,
            handler=self.handler,
            state=self.state_bytes,
            discovery=(lambda: discovery_messages(self.topics, self._current()))
            if mq.home_assistant
            else None,
            on_result=self._on_result,
            clock=clock,
            wall_clock=wall_clock,
            rand=rand,
            replay_start_jitter_s=mq.replay_start_jitter_s,
        )
        self.on_event: Callable[[str, dict[str, Any]], None] | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self.link.start()

    async def stop(self) -> None:
        try:
            await self.link.stop()
        finally:
            await self.spool.aclose()

    def prepare_reload(self, new: Settings) -> tuple[str | None, Callable[[], None] | None]:
        """SIGHUP: check renewed certificates or password (same paths, new contents) and build them,
        without using them yet. Returns (why not, None) when they fail their checks (the link goes on
        with the old ones), else (None, a function that switches the link to them, or None when
        nothing changed), called once the whole reload is accepted."""
        mq = new.mqtt
        printed = fingerprint(mq)
        if printed == self._fingerprint:
            return None, None
        try:
            check_files(mq, now_unix_s=self.wall_clock())
            tls, password = tls_context(mq), read_password(mq)
        except (ValueError, OSError, ssl.SSLError) as exc:
            return f"MQTT credentials not taken: {exc}", None

        def switch() -> None:
            self._fingerprint = printed
            self.link.reload_credentials(tls, password)

        return None, switch

    # --- what goes out -------------------------------------------------------------------------

    def state_bytes(self, online: bool) -> bytes:
        s = self._current()
        inv = s.inverter
        functions = {}
        for name in FUNCTIONS:
            owner = getattr(s.functions, name)
            section = GRID_SECTION.get(name)
            values = msgspec.to_builtins(getattr(s.grid, section)) if section and s.grid is not None else None
            functions[name] = pl.FunctionState(owner=owner, settings=values)
        payload = pl.StatePayload(
            online=online,
            t=pl.utc(self.wall_clock()),
            software_version=__version__,
            site_id=self.mq.site_id,
            evse_id=self.mq.evse_id,
            mode=s.operation.mode,
            devices=self._devices(),
            ratings=None
            if inv is None
            else pl.Ratings(
                p_rated_w=inv.p_rated_w,
                p_rated_charge_w=inv.p_rated_charge_w,
                q_max_inj_var=inv.q_max_inj_var,
                q_max_abs_var=inv.q_max_abs_var,
            ),
            functions=functions,
            commands=[n for n in COMMANDS if n != "grid" or self.mq.allow_grid_settings],
            owner=pl.OwnerPrefs.of(s.owner),
        )
        return msgspec.json.encode(payload)

    def telemetry(self, build: Callable[[int], pl.Telemetry], t_unix_s: float) -> None:
        self.link.submit("telemetry", msgspec.json.encode(build(self.spool.next_seq)), t_unix_s)

    def event(self, kind: str, detail: Mapping[str, Any], t_unix_s: float) -> None:
        body = pl.Event(seq=self.spool.next_seq, t=pl.utc(t_unix_s), kind=kind, detail=dict(detail))
        self.link.submit("event", msgspec.json.encode(body), t_unix_s)

    def links(self) -> dict[str, Any]:
        st = self.spool.stats
        return {
            "spool_backlog": st.backlog,
            "dropped_telemetry": st.dropped_telemetry,
            "dropped_events": st.dropped_events,
        }

    async def publish_plan(self, body: bytes) -> None:
        """The local planner's plan, retained on ``<base>/plan`` (``edge.daemon.plan_task``); kept by
        the link and published again at every connect, so a plan made offline goes out on return."""
        self.link.set_retained(self.topics.plan, body)

    def _on_result(self, name: str, result: pl.Result) -> None:
        if self.on_event is None:
            return
        if result.status == "accepted":
            self.on_event("command_applied", {"command": name, "id": result.id})
            self.link.state_changed()
        else:
            log.info("MQTT %s command %s rejected: %s", name, result.id, result.reason)
