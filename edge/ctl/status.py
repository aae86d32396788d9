"""``v2gctl status`` and ``v2gctl watch``: what the daemon is doing and why, from its status file.

``status`` prints one screen (``--json``: the status file with its path, age and the problems found)
and exits non-zero when something ails, for monitoring: 1 when a device or the aggregator link is
failing, the output does not follow the command, or the status is stale; 3 when no daemon runs; 4
when the file may not be read. ``watch`` redraws the same screen in place until Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime

from edge.ctl import words
from edge.ctl.common import (
    NO_DAEMON,
    OK,
    PROBLEM,
    STALE_STATUS_S,
    CtlError,
    DaemonStatus,
    fmt,
    print_json,
    read_status,
    runtime_dir,
)


def problems(ds: DaemonStatus) -> list[str]:
    """What should page someone: each in one line."""
    st = ds.status
    out = []
    if ds.age_s > STALE_STATUS_S:
        out.append(f"status {ds.age_s:.0f} s old: the daemon may be stuck")
    out.extend(f"device {d.name}: {d.last_error or d.error or 'failing'}" for d in st.devices if not d.ok)
    agg = st.aggregator
    if agg is not None and not agg.connected:
        out.append(f"aggregator link: {agg.problem or 'not connected'}")
    if st.output_mismatch is not None:
        out.append(f"output mismatch: {st.output_mismatch}")
    if st.state_problem is not None:
        out.append(f"state store: {st.state_problem}")
    return out


def _when(t_unix_s: float) -> str:
    return datetime.fromtimestamp(t_unix_s).strftime("%Y-%m-%d %H:%M:%S")


def _duration(s: float) -> str:
    s = int(s)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}d {h}h {m}m" if d else f"{h}h {m}m {s}s" if h else f"{m}m {s}s"


def render(ds: DaemonStatus) -> list[str]:
    """The status screen as lines."""
    st = ds.status
    lines = []
    stale = f"  STALE ({ds.age_s:.0f} s old: the daemon may be stuck)" if ds.age_s > STALE_STATUS_S else ""
    up = f", up {_duration(st.written_at - st.started_at)}" if st.started_at is not None else ""
    lines.append(
        f"daemon     pid {st.pid}{up}, config {st.config_path or '(embedded bench configuration)'},"
        f" v{st.version or '?'}{stale}"
    )
    lines.append(f"           status file {ds.path}")
    lines.append(f"state      {st.state}, mode {st.mode or '-'} ({st.dispatch_source or '-'})")
    if st.commissioning_missing:
        lines.append(
            "energize   LOCKED at P = Q = 0: not commissioned: missing " + ", ".join(st.commissioning_missing)
        )
    else:
        lines.append("energize   allowed (commissioned)")
    # The commissioning lock is said above; other holds (a stage problem) are listed.
    lines.extend(f"  hold: {r}" for r in st.hold_reasons if "not commissioned" not in r)
    lines.append(
        "fail-safe  "
        + ("ACTIVE, no export: " + ", ".join(words.reason(r) for r in st.fail_safe) if st.fail_safe else "no")
    )
    lines.append(
        f"command    P {fmt(st.p_cmd_w, 'W')}   Q {fmt(st.q_cmd_var, 'var')}   (requested P {fmt(st.p_request_w, 'W')})"
    )
    lines.append(
        f"measured   P {fmt(st.p_meas_w, 'W')}   Q {fmt(st.q_meas_var, 'var')}   site import {fmt(st.p_site_import_w, 'W')}"
    )
    if st.binding:
        lines.extend(f"bound by   {words.binding(b)}" for b in st.binding)
    else:
        lines.append("bound by   nothing")
    lines.extend(f"  reason: {words.reason(r)}" for r in st.reasons)
    if st.stage_operation is not None:
        lines.append(
            f"stage      told to operate: {'yes' if st.stage_operation == 'started' else 'no (stopped)'}"
        )
    if st.output_mismatch is not None:
        lines.append(f"MISMATCH   {st.output_mismatch}")
    lines.append(f"grid       V {fmt(st.v_pu, 'p.u.', 3)}   f {fmt(st.f_hz, 'Hz', 3)}")
    if (di := st.island_dither) is not None:
        response = "none measured yet"
        if di.response_hz is not None:
            response = f"{di.response_hz:+.3f} Hz ({_duration(di.response_age_s or 0.0)} ago)"
        lines.append(
            f"islanding  active method: Q dither +/- {di.amplitude_var:.0f} var (now {di.q_var:+.0f} var);"
            f" last response {response}; trips after {di.halves} in a row above {di.threshold_hz:.3f} Hz"
        )
    lines.append(
        f"EV         SoC {fmt(None if st.soc is None else st.soc * 100, '%', 1)}"
        f"   SoH {fmt(None if st.soh is None else st.soh * 100, '%', 0)}"
        f"   SoP charge {fmt(st.sop_charge_w, 'W')} / discharge {fmt(st.sop_discharge_w, 'W')}"
    )
    if st.sop_basis is not None:
        lines.append(f"           SoP basis: {st.sop_basis}")
    if st.departure is not None:
        lines.append(f"departure  {st.departure}")
    if (se := st.session) is not None:
        lines.append(
            f"session    EV {(se.vehicle_key or 'unknown')[:8]} since {_when(se.start_unix_s)}:"
            f" charged {se.e_charge_ac_wh / 1e3:.2f} kWh, discharged {se.e_discharge_ac_wh / 1e3:.2f} kWh (AC)"
        )
    for d in st.devices:
        health = "ok" if d.ok else f"FAILING ({d.error or 'failing'})"
        lines.append(
            f"device     {d.name} [{d.role}] {health}; last success {fmt(d.last_success_age_s, 's ago', 1)};"
            f" rtt p50 {fmt(d.rtt_p50_ms, 'ms', 1)} p99 {fmt(d.rtt_p99_ms, 'ms', 1)};"
            f" errors {d.errors}, timeouts {d.timeouts}"
        )
        if d.last_error is not None:
            lines.append(f"           {'last error' if d.ok else 'error'}: {d.last_error}")
    agg = st.aggregator
    if agg is None:
        lines.append("aggregator off ([mqtt] enabled = false)")
    else:
        link = "connected" if agg.connected else f"NOT CONNECTED ({agg.problem or 'no reason given'})"
        lines.append(
            f"aggregator {link}; backlog {agg.backlog}, dropped {agg.dropped_telemetry} telemetry,"
            f" {agg.dropped_events} events"
        )
        if agg.spool_problem is not None:
            lines.append(f"           spool in memory only: {agg.spool_problem}")
    lines.append(f"cycles     {st.cycles} ({st.overruns} overruns, {st.write_errors} write errors)")
    if st.state_write_bytes_per_hour is not None:
        lines.append(f"storage    state store writes {st.state_write_bytes_per_hour / 1e3:.0f} kB/h")
    if st.state_problem is not None:
        lines.append(f"STORAGE    {st.state_problem}")
    if st.events:
        lines.append("events     (newest last)")
        lines.extend(f"  {_when(e.t_unix_s)}  {e.kind} {_detail(e.detail)}".rstrip() for e in st.events)
    return lines


def _detail(detail: dict[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in detail.items())


def _gone(ds: DaemonStatus) -> CtlError:
    return CtlError(
        f"v2g-edged is not running: pid {ds.status.pid} in {ds.path} has gone (its last status was"
        f" written {_when(ds.status.written_at)})",
        NO_DAEMON,
    )


def cmd_status(args: argparse.Namespace) -> int:
    ds = read_status(runtime_dir(args.runtime_dir))
    found = problems(ds)
    if args.json:
        print_json({"running": ds.running, "problems": found, **_as_dict(ds)})
        return NO_DAEMON if not ds.running else PROBLEM if found else OK
    if not ds.running:
        raise _gone(ds)
    print("\n".join(render(ds)))
    if found:
        print("PROBLEMS   " + "\n           ".join(found))
    return PROBLEM if found else OK


def _as_dict(ds: DaemonStatus) -> dict[str, object]:
    return {"path": ds.path, "age_s": ds.age_s, "status": ds.status}


def cmd_watch(args: argparse.Namespace) -> int:
    run_dir = runtime_dir(args.runtime_dir)
    tty = sys.stdout.isatty()
    try:
        while True:
            try:
                ds = read_status(run_dir)
                lines = render(ds) if ds.running else [str(_gone(ds))]
                found = problems(ds) if ds.running else []
                lines += [f"PROBLEMS   {p}" for p in found]
            except CtlError as exc:
                if exc.code != NO_DAEMON:
                    raise
                lines = [str(exc)]
            lines.append(f"({time.strftime('%H:%M:%S')}, every {args.interval:g} s; Ctrl-C to stop)")
            # Home, draw, clear what the last screen left below: no flicker, no scrolling.
            text = "\n".join(line + ("\x1b[K" if tty else "") for line in lines)
            sys.stdout.write(("\x1b[H" + text + "\n\x1b[J") if tty else text + "\n\n")
            sys.stdout.flush()
            if args.count is not None:
                args.count -= 1
                if args.count <= 0:
                    return OK
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status",
        help="what the daemon is doing and why (exit 1: something fails, 3: no daemon)",
        description="One screen from the daemon's status file. Exit codes: 0 all well, 1 a device,"
        " the aggregator link or the output fails (or the status is stale), 3 no daemon runs,"
        " 4 the status file may not be read.",
    )
    p.add_argument(
        "--runtime-dir", metavar="DIR", help="the daemon's runtime directory (default: /run/v2g-edge)"
    )
    p.add_argument("--json", action="store_true", help="the status file, its age and the problems, as JSON")
    p.set_defaults(fn=cmd_status)
    p = sub.add_parser("watch", help="the status screen, redrawn in place every second")
    p.add_argument(
        "--runtime-dir", metavar="DIR", help="the daemon's runtime directory (default: /run/v2g-edge)"
    )
    p.add_argument("--interval", type=float, default=1.0, help="seconds between redraws (default 1)")
    p.add_argument("--count", type=int, help="stop after this many screens")
    p.set_defaults(fn=cmd_watch)
