"""The in-house systemd notifier against a real datagram socket."""

from __future__ import annotations

import os

from edge.daemon.notify import Notifier


def test_ready_status_watchdog_stopping_arrive(notify_socket) -> None:  # type: ignore[no-untyped-def]
    n = Notifier()
    assert n.enabled
    assert n.ready("cycling")
    assert n.watchdog()
    assert n.stopping("bye")
    notify_socket.wait_for(lambda m: m == "READY=1\nSTATUS=cycling")
    notify_socket.wait_for(lambda m: m == "WATCHDOG=1")
    notify_socket.wait_for(lambda m: m.startswith("STOPPING=1"))
    n.close()


def test_no_notify_socket_is_a_no_op() -> None:
    n = Notifier(environ={})
    assert not n.enabled
    assert not n.ready("x")
    assert n.watchdog_interval_s is None


def test_watchdog_interval_parsed_for_this_process_only() -> None:
    mine = Notifier(environ={"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())})
    assert mine.watchdog_interval_s == 10.0
    other = Notifier(environ={"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid() + 1)})
    assert other.watchdog_interval_s is None
    assert Notifier(environ={"WATCHDOG_USEC": "garbage"}).watchdog_interval_s is None


def test_vanished_socket_reports_false_and_does_not_raise(tmp_path) -> None:  # type: ignore[no-untyped-def]
    n = Notifier(environ={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert not n.ready("x")
    assert not n.watchdog()
    n.close()
