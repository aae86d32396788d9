"""Events named from the cycle's changes: trips and islanding, entering service, the fail-safe, device
links, plug-in sessions; each named once, when it happens."""

from __future__ import annotations

from edge.daemon.events import DeviceState, EventDeriver
from edge.daemon.sessions import SessionStatus
from edge.daemon.snapshot import Command


def cmd(state: str, *reasons: str, p_w: float = 0.0) -> Command:
    return Command(p_w, 0.0, state not in ("tripped", "waiting"), state, reasons=list(reasons))


def session(start: float, soc: float = 0.5) -> SessionStatus:
    return SessionStatus(
        vehicle_key="k",
        start_unix_s=start,
        e_charge_ac_wh=100.0,
        e_discharge_ac_wh=50.0,
        e_charge_dc_wh=95.0,
        e_discharge_dc_wh=52.0,
        soc_start=soc,
        soc_now=soc + 0.1,
        limits=[],
    )


def kinds(events: list[tuple[str, dict[str, object]]]) -> list[str]:
    return [k for k, _ in events]


def test_trip_island_and_enter_service_are_named_once() -> None:
    d = EventDeriver()
    assert kinds(d.update(cmd("normal"), None)) == []
    trip = d.update(cmd("tripped", "ov2"), None)
    assert kinds(trip) == ["trip"] and trip[0][1]["reasons"] == ["ov2"]
    assert kinds(d.update(cmd("tripped", "ov2"), None)) == []  # still tripped: nothing new
    assert kinds(d.update(cmd("waiting"), None)) == []
    assert kinds(d.update(cmd("ramping"), None)) == ["enter_service"]
    assert kinds(d.update(cmd("normal"), None)) == []
    assert kinds(d.update(cmd("tripped", "island_rocof"), None)) == ["island"]
    assert kinds(d.update(cmd("normal"), None)) == []
    assert kinds(d.update(cmd("tripped", "island_active"), None)) == ["island"]  # the reactive dither's


def test_fail_safe_entered_and_left() -> None:
    d = EventDeriver()
    d.update(cmd("normal", p_w=2000.0), None)
    entered = d.update(cmd("normal", "meter_stale"), None)
    assert kinds(entered) == ["fail_safe_entered"] and entered[0][1]["reasons"] == ["meter_stale"]
    assert kinds(d.update(cmd("normal", "meter_stale", "meter_frozen"), None)) == []
    assert kinds(d.update(cmd("normal"), None)) == ["fail_safe_left"]
    assert kinds(d.update(cmd("no_power_stage", "power stage data stale"), None)) == ["fail_safe_entered"]


def test_device_links_lost_and_restored() -> None:
    d = EventDeriver()
    assert kinds(d.devices({"meter": DeviceState(False)})) == []
    lost = d.devices({"meter": DeviceState(True, "timeout after 0.5 s")})
    assert kinds(lost) == ["comm_lost"] and lost[0][1] == {"device": "meter", "error": "timeout after 0.5 s"}
    assert kinds(d.devices({"meter": DeviceState(True, "timeout after 0.5 s")})) == []
    assert kinds(d.devices({"meter": DeviceState(False)})) == ["comm_restored"]
    # A device failing from the first look is lost too.
    assert kinds(EventDeriver().devices({"inverter": DeviceState(True, "refused")})) == ["comm_lost"]


def test_sessions_start_and_end_with_their_energy() -> None:
    d = EventDeriver()
    d.update(cmd("normal"), None)
    assert kinds(d.update(cmd("normal"), session(100.0))) == ["session_start"]
    assert kinds(d.update(cmd("normal"), session(100.0))) == []
    ended = d.update(cmd("normal"), None)
    assert kinds(ended) == ["session_end"] and ended[0][1]["e_charge_ac_wh"] == 100.0
    # A new car without a gap: the old session ends and the new one starts.
    d.update(cmd("normal"), session(200.0))
    assert sorted(kinds(d.update(cmd("normal"), session(300.0)))) == ["session_end", "session_start"]
