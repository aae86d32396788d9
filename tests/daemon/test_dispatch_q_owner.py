"""A reactive set point asked while the inverter owns reactive power is refused at dispatch.

With a reactive mode (volt-var, watt-var, constant PF, constant var) owned by the inverter, the power
stage writes no Q set point: a dispatch carrying ``q_var`` (even 0) would be followed for P and
silently not for Q. It is refused whole instead, naming ``q_var`` and the function that owns Q, and
nothing of it is applied (the dispatch in force stays). A dispatch without ``q_var`` is taken.

Checked on the dispatcher's validation, through the command handler and the local dispatch file, and
end to end: the real daemon and the plant's inverter, the aggregator's command over a real Mosquitto
and the local file in the daemon's state directory.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from edge.daemon.dispatch import Dispatch, Dispatcher, DispatchError, SchedulePoint
from edge.daemon.dispatch_file import DispatchFile, write
from edge.link.commands import CommandHandler
from edge.settings import Settings
from edge.settings.model import REACTIVE_MODES
from hil.broker import Mosquitto
from tests.daemon.bench_support import running_daemon, running_plant, settings_for, until
from tests.link import test_commands as commands
from tests.link.test_commands import T0, U0, DictMeta
from tests.link.test_link_daemon import aggregator, command_result, dispatch_body, link_sections
from tests.settings.conftest import settings_with


def owned_by_inverter(mode: str) -> Settings:
    """``mode`` the inverter's, the other reactive modes off (one at a time)."""
    return settings_with(**{f"functions__{m}": "inverter" if m == mode else "off" for m in REACTIVE_MODES})


def dispatcher(s: Settings) -> Dispatcher:
    return Dispatcher(s.operation, s.inverter, s.functions)


def dispatch(**kw: Any) -> Dispatch:
    fields: dict[str, Any] = {"id": "d1", "start": T0, "expiry": T0 + timedelta(hours=1), "p_w": -3000.0}
    fields.update(kw)
    return Dispatch(**fields)


# --- the dispatcher's validation ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", REACTIVE_MODES)
@pytest.mark.parametrize("q_var", [500.0, 0.0, -800.0])
def test_q_var_is_refused_while_the_inverter_owns_q(mode: str, q_var: float) -> None:
    d = dispatcher(owned_by_inverter(mode))
    with pytest.raises(DispatchError) as err:
        d.offer(dispatch(q_var=q_var, mode="v2g"), "aggregator", U0, 0.0)
    assert err.value.field == "q_var"
    assert f"reactive power is owned by the inverter (functions.{mode} = inverter)" in str(err.value)
    assert d.current("aggregator") is None


@pytest.mark.parametrize("mode", REACTIVE_MODES)
def test_a_dispatch_without_q_var_is_taken_while_the_inverter_owns_q(mode: str) -> None:
    d = dispatcher(owned_by_inverter(mode))
    taken = d.offer(dispatch(mode="v2g"), "aggregator", U0, 0.0)
    assert taken.q_var is None
    basis = d.basis(U0 + 10.0, 1.0)
    assert (basis.p_w, basis.q_var, basis.source) == (-3000.0, 0.0, "aggregator dispatch d1")


def test_q_var_is_taken_where_the_daemon_owns_q_or_no_mode_runs() -> None:
    for s in (settings_with(functions__volt_var="daemon"), settings_with()):
        d = dispatcher(s)
        d.offer(dispatch(q_var=500.0, mode="v2g"), "aggregator", U0, 0.0)
        assert d.basis(U0 + 10.0, 1.0).q_var == 500.0


def test_a_schedule_point_with_q_var_is_refused_naming_the_point() -> None:
    d = dispatcher(owned_by_inverter("constant_pf"))
    points = [
        SchedulePoint(at=T0, p_w=-2000.0),
        SchedulePoint(at=T0 + timedelta(minutes=10), p_w=-1000.0, q_var=0.0),
    ]
    with pytest.raises(DispatchError) as err:
        d.offer(dispatch(p_w=None, schedule=points, mode="schedule"), "aggregator", U0, 0.0)
    assert err.value.field == "schedule[1].q_var"
    assert "functions.constant_pf = inverter" in str(err.value)


def test_a_refused_request_leaves_the_dispatch_in_force() -> None:
    d = dispatcher(owned_by_inverter("volt_var"))
    d.offer(dispatch(mode="v2g"), "aggregator", U0, 0.0)
    with pytest.raises(DispatchError):
        d.offer(dispatch(id="d2", p_w=2000.0, q_var=300.0, mode="v2g"), "aggregator", U0, 0.0)
    held = d.current("aggregator")
    assert held is not None and held.id == "d1"
    assert d.basis(U0 + 10.0, 1.0).p_w == -3000.0


def test_a_reload_that_gives_q_to_the_inverter_withdraws_a_held_dispatch_asking_for_q() -> None:
    d = dispatcher(settings_with(functions__volt_var="daemon"))
    d.offer(dispatch(q_var=500.0, mode="v2g"), "aggregator", U0, 0.0)
    d.offer(dispatch(id="local-1", mode="v2g"), "local", U0, 0.0)  # no Q: stays
    assert d.withdraw_reactive() == []  # the daemon still owns Q
    d.functions = owned_by_inverter("volt_var").functions
    (why,) = d.withdraw_reactive()
    assert "aggregator dispatch 'd1' withdrawn" in why and "functions.volt_var = inverter" in why
    assert d.current("aggregator") is None
    local = d.current("local")
    assert local is not None and local.id == "local-1"


# --- the command handler and the local file -----------------------------------------------------------


def test_the_aggregators_command_is_rejected_with_field_value_and_reason() -> None:
    s = owned_by_inverter("watt_var")
    d = dispatcher(s)
    handler = CommandHandler(
        dispatcher=d,
        meta=DictMeta(),
        settings=lambda: s,
        apply=lambda _: None,
        rand=lambda: 0.0,
        allow_grid=False,
    )
    body = commands.dispatch("c-1", p_w=2000.0, q_var=0.0, mode="v2g")
    r = handler.handle("dispatch", msgspec.json.encode(body), t_unix_s=U0, t_s=1.0)
    assert (r.status, r.field, r.value) == ("rejected", "q_var", 0.0), r
    assert (
        r.reason is not None
        and "reactive power is owned by the inverter (functions.watt_var = inverter)" in r.reason
    )
    assert d.current("aggregator") is None
    # The same request without Q is taken (the replay guard did not move on the rejection).
    del body["q_var"]
    assert handler.handle("dispatch", msgspec.json.encode(body), t_unix_s=U0, t_s=1.0).status == "accepted"


async def test_the_local_file_is_refused_and_the_dispatch_before_stays(tmp_path: Path) -> None:
    d = dispatcher(owned_by_inverter("constant_var"))
    path = tmp_path / "dispatch.json"
    file = DispatchFile(path, d, wall_clock=lambda: U0, clock=lambda: 1.0)
    write(path, dispatch(mode="v2g"))
    assert await file.check() is not None
    write(path, dispatch(id="d2", p_w=1500.0, q_var=200.0, mode="v2g"))
    assert await file.check() is None
    assert file.last_error is not None
    assert "q_var" in file.last_error and "functions.constant_var = inverter" in file.last_error
    held = d.current("local")
    assert held is not None and held.id == "d1"


# --- end to end -----------------------------------------------------------------------------------------


async def test_the_daemon_rejects_q_from_the_aggregator_and_the_file_and_keeps_following_p(
    tmp_path: Path,
) -> None:
    with Mosquitto() as broker:
        async with running_plant() as plant, aggregator(broker) as agg:
            settings = settings_for(
                plant, operation={"mode": "v2g"}, functions={"volt_var": "inverter"}, **link_sections(broker)
            )
            async with running_daemon(settings, tmp_path) as daemon:
                await until(lambda: bool(agg.records("telemetry")), 20, "the link is up")
                now = datetime.now(UTC)
                first = dispatch_body("d-1", now, p_w=-3000.0)
                assert (await command_result(broker, agg, "dispatch", first, b"c-1"))["status"] == "accepted"
                await until(lambda: plant.snapshot()["p_ev_w"] < -2500.0, 20, "the inverter charges at d-1")
                # A discharge with Q: rejected whole, the discharge included.
                with_q = dispatch_body("d-2", datetime.now(UTC), p_w=2000.0, q_var=500.0)
                res = await command_result(broker, agg, "dispatch", with_q, b"c-2")
                assert (res["status"], res["field"], res["value"]) == ("rejected", "q_var", 500.0), res
                assert (
                    "reactive power is owned by the inverter (functions.volt_var = inverter)" in res["reason"]
                )
                # The local file, the same: refused with the reason, nothing taken from it.
                file = daemon.dispatch_file
                assert file is not None
                local = Dispatch(
                    id="l-1",
                    start=now - timedelta(seconds=1),
                    expiry=now + timedelta(minutes=10),
                    p_w=2000.0,
                    q_var=0.0,
                )
                write(file.path, local)
                await until(lambda: file.last_error is not None, 5, "the local dispatch refused")
                assert "q_var" in (file.last_error or "")
                assert "functions.volt_var = inverter" in (file.last_error or "")
                assert daemon.dispatcher.current("local") is None
                held = daemon.dispatcher.current("aggregator")
                assert held is not None and held.id == "d-1"
                await asyncio.sleep(1.0)
                assert plant.snapshot()["p_ev_w"] < -2500.0  # still d-1: nothing of the refused ones applied
