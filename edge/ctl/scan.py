"""``v2gctl scan``: find Modbus devices on a TCP host range or an RS-485 port, and say what they are.

Modelled on evcc's ``detect``. Every answering unit id gets the daemon's own SunSpec discovery (base
40000, 0 or 50000, the model chain, Common model 1's manufacturer, model and serial number); a unit
that answers but is not SunSpec is reported as such (the vendor maps in ``config/devices`` declare no
identification points, so none can be matched to it: the map is chosen by hand). The result is a
table (or ``--json``) and a ``[buses.*]`` + ``[devices.*]`` snippet the daemon's settings loader takes.

Requests go through the daemon's bus worker (``drivers.transport``) with no retries and a short
timeout, so a scan takes a bounded time: a silent unit costs one timeout (on RTU plus the quiet time
that keeps a late answer from being taken for the next one), an unreachable host one connect timeout
for all its units, and hosts are scanned a bounded number at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, TextIO

import msgspec

from drivers.config import BusConfig
from drivers.errors import DriverError
from drivers.maps import map_dir_default
from drivers.sunspec.device import SunSpecDevice
from drivers.sunspec.meter import METER_MODELS
from drivers.sunspec.models import BASE_ADDRESSES
from drivers.sunspec.power_stage import MEASURE_MODELS
from drivers.transport import BusWorker, DeviceLink
from edge.ctl.common import OK, PROBLEM, USAGE, CtlError, print_json

DEFAULT_BAUDS = (9600, 19200, 38400, 115200)
MAX_HOSTS = 1024
# Gateway exception codes that mean "nothing at this unit id behind me", not "a device is here".
NOBODY_BEHIND_GATEWAY = (10, 11)
DEVICE_NAMES = {"power_stage": "inverter", "site_meter": "site_meter"}


# --- arguments -------------------------------------------------------------------------------------


def parse_units(text: str, lowest: int = 1) -> list[int]:
    """``1-10``, ``1,3,7-9``: unit ids in ``lowest``..247, in order, each once (CtlError USAGE)."""
    units: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if m is None:
            raise CtlError(f"--units {text!r}: {part!r} is not a unit id or a range like 1-10", USAGE)
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if not lowest <= lo <= hi <= 247:
            raise CtlError(
                f"--units {text!r}: {part.strip()!r} is outside {lowest}..247 or runs backwards", USAGE
            )
        units.extend(u for u in range(lo, hi + 1) if u not in units)
    return units


def parse_hosts(text: str) -> list[str]:
    """A host, a comma list, or ``a.b.c.d-e`` ranges of the last octet (CtlError USAGE)."""
    hosts: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        m = re.fullmatch(r"(\d+\.\d+\.\d+\.)(\d+)-(\d+)", part)
        if m:
            first, last = int(m.group(2)), int(m.group(3))
            if not 0 <= first <= last <= 255:
                raise CtlError(f"host range {part!r}: the last octet must run upwards within 0..255", USAGE)
            try:
                ipaddress.IPv4Address(f"{m.group(1)}{first}")
            except ValueError:
                raise CtlError(
                    f"host range {part!r} is not an IPv4 range like 192.168.1.10-20", USAGE
                ) from None
            hosts.extend(f"{m.group(1)}{n}" for n in range(first, last + 1))
        elif re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[?[0-9A-Fa-f:]+\]?", part):
            if re.fullmatch(r"[\d.]+", part):
                try:
                    ipaddress.IPv4Address(part)
                except ValueError:
                    raise CtlError(f"host {part!r} is not an IPv4 address", USAGE) from None
            hosts.append(part.strip("[]"))
        else:
            raise CtlError(
                f"host {part!r}: give a host name, an address, or a range like 192.168.1.10-20", USAGE
            )
    if len(hosts) > MAX_HOSTS:
        raise CtlError(f"{len(hosts)} hosts: scan at most {MAX_HOSTS} at once", USAGE)
    return list(dict.fromkeys(hosts))


def parse_bauds(text: str) -> list[int]:
    try:
        bauds = [int(b) for b in text.split(",")]
    except ValueError:
        raise CtlError(f"--bauds {text!r}: a comma list of baud rates, e.g. 9600,19200", USAGE) from None
    for b in bauds:
        if not 1200 <= b <= 1_000_000:
            raise CtlError(f"--bauds: {b} is outside 1200..1000000", USAGE)
    return list(dict.fromkeys(bauds))


Parity = Literal["N", "E", "O"]
PARITIES: dict[str, Parity] = {"N": "N", "E": "E", "O": "O"}


def parse_parities(text: str) -> list[Parity]:
    parities: list[Parity] = []
    for p in (p.strip().upper() for p in text.split(",")):
        if p not in PARITIES:
            raise CtlError(f"--parity: {p!r} is not N, E or O", USAGE)
        parities.append(PARITIES[p])
    return list(dict.fromkeys(parities))


# --- what a unit is --------------------------------------------------------------------------------


def _printable(text: str | None) -> str | None:
    """A device's own strings (Mn, Md, SN, Vr) as they may be shown and pasted: control characters
    and non-printables escaped, so no newline can add a table to the snippet, no escape code reach
    the terminal."""
    if text is None:
        return None
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class Finding(msgspec.Struct, kw_only=True):
    """One answering unit: where it is, and what it turned out to be."""

    where: str  # "127.0.0.1:502" or "/dev/ttyUSB0 19200 8E1"
    bus: dict[str, Any]  # the [buses.*] table that reaches it
    unit_id: int
    sunspec: bool
    base: int | None = None
    models: list[int] = msgspec.field(default_factory=list)
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    version: str | None = None
    role: str | None = None
    note: str = ""
    also: list[str] = msgspec.field(default_factory=list)  # other line settings it answered at (RTU)

    def label(self) -> str:
        if not self.sunspec:
            return "Modbus, not SunSpec"
        return f"SunSpec @{self.base} models {','.join(map(str, self.models))}"

    def device(self) -> str:
        who = " ".join(x for x in (self.manufacturer, self.model) if x) or "-"
        if self.serial:
            who += f" SN {self.serial}"
        return who


def _role(models: list[int]) -> str | None:
    if set(models) & set(MEASURE_MODELS):
        return "power_stage"
    if set(models) & set(METER_MODELS):
        return "site_meter"
    return None


def _no_map_note() -> str:
    have = sorted(p.stem for p in map_dir_default().glob("*.toml"))
    return (
        f"answers, but has no SunSpec marker at {', '.join(map(str, BASE_ADDRESSES))}; no vendor map matched"
        f" (the maps {have} declare no identification points: choose one by hand, docs/drivers.md)"
    )


async def identify(link: DeviceLink, where: str, bus: dict[str, Any]) -> Finding | None:
    """What answers at ``link``'s unit id, or None when nothing does (silence, a gateway saying there is
    no such unit, or only garbled answers); a bus that cannot be reached raises DriverError."""
    dev = SunSpecDevice(link)
    try:
        smap = await dev.discover()
    except DriverError as e:
        if e.kind == "unsupported":
            return Finding(where=where, bus=bus, unit_id=link.unit_id, sunspec=False, note=_no_map_note())
        if e.kind == "exception" and e.exception_code not in NOBODY_BEHIND_GATEWAY:
            return Finding(where=where, bus=bus, unit_id=link.unit_id, sunspec=False, note=f"answers {e}")
        if e.kind == "garbage" and not e.retryable:  # 'SunS' found, the model chain broken
            return Finding(where=where, bus=bus, unit_id=link.unit_id, sunspec=True, note=str(e))
        if e.kind == "disconnected":
            raise
        return None
    found = Finding(
        where=where, bus=bus, unit_id=link.unit_id, sunspec=True, base=smap.base, models=list(smap.ids)
    )
    found.role = _role(found.models)
    if found.role is None:
        found.note = "no model the daemon drives (inverter 701/101-103, meter 201-204)"
    common = dev.instance(1)
    if common is not None:
        try:
            mv = await dev.read_model(common)
        except DriverError as e:
            found.note = f"common model unreadable: {e}"
        else:
            found.manufacturer, found.model = _printable(mv.text("Mn")), _printable(mv.text("Md"))
            found.serial, found.version = _printable(mv.text("SN")), _printable(mv.text("Vr"))
    return found


# --- progress --------------------------------------------------------------------------------------


class Progress:
    """A progress bar on stderr that redraws in a terminal; plain lines (every tenth and each note)
    when stderr is a file or a pipe."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = max(1, total)
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._last_tenth = -1

    def step(self, label: str, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        if self.tty:
            filled = self.WIDTH * self.done // self.total
            bar = "#" * filled + "." * (self.WIDTH - filled)
            self.stream.write(f"\r\x1b[K[{bar}] {self.done}/{self.total} {label}")
            self.stream.flush()
            return
        tenth = 10 * self.done // self.total
        if tenth != self._last_tenth:
            self._last_tenth = tenth
            self.stream.write(f"scan: {self.done}/{self.total} {label}\n")

    def note(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
        self.stream.write(f"scan: {text}\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


# --- scanning --------------------------------------------------------------------------------------


@dataclass
class ScanResult:
    found: list[Finding]
    silent: list[str]  # what was scanned and did not answer, with why
    scanned: str
    elapsed_s: float = 0.0


async def _scan_units(
    worker: BusWorker, units: list[int], where: str, bus: dict[str, Any], progress: Progress
) -> tuple[list[Finding], str | None]:
    """Each unit id on one bus, one after the other; stops at a bus that cannot be reached."""
    found: list[Finding] = []
    await worker.start()
    try:
        for k, unit in enumerate(units):
            try:
                finding = await identify(worker.device(f"unit {unit}", unit), where, bus)
            except DriverError:  # no connection: the other unit ids cannot answer either
                progress.step(where, len(units) - k)
                return found, f"{where}: cannot connect"
            progress.step(f"{where} unit {unit}")
            if finding is not None:
                found.append(finding)
                progress.note(f"{where} unit {unit}: {finding.label()} {finding.device()}")
    finally:
        await worker.stop()
    return found, None if found else f"{where}: no unit answered"


async def scan_tcp(
    hosts: list[str], *, port: int, units: list[int], timeout_s: float, concurrency: int, progress: Progress
) -> ScanResult:
    gate = asyncio.Semaphore(concurrency)
    results: dict[str, tuple[list[Finding], str | None]] = {}

    async def one(host: str) -> None:
        bus = {"transport": "tcp", "host": host, "port": port}
        cfg = BusConfig(transport="tcp", host=host, port=port, timeout_s=timeout_s, retries=0)
        async with gate:
            results[host] = await _scan_units(BusWorker(host, cfg), units, f"{host}:{port}", bus, progress)

    await asyncio.gather(*(one(h) for h in hosts))
    ordered = [results[h] for h in hosts]
    return ScanResult(
        found=[f for fs, _ in ordered for f in fs],
        silent=[s for _, s in ordered if s],
        scanned=f"{len(hosts)} host(s) port {port}, unit ids {_span(units)}",
    )


async def scan_rtu(
    port: str,
    *,
    bauds: list[int],
    parities: list[Parity],
    units: list[int],
    timeout_s: float,
    progress: Progress,
) -> ScanResult:
    by_unit: dict[int, Finding] = {}
    silent: list[str] = []
    for baud in bauds:
        for parity in parities:
            where = f"{port} {baud} 8{parity}1"
            bus = {"transport": "rtu", "serial_port": port, "baud": baud, "parity": parity}
            cfg = BusConfig(
                transport="rtu", serial_port=port, baud=baud, parity=parity, timeout_s=timeout_s, retries=0
            )
            found, why = await _scan_units(BusWorker("rs485", cfg), units, where, bus, progress)
            if why and "cannot connect" in why:
                raise CtlError(f"cannot open {port} at {baud} 8{parity}1")
            if why:
                silent.append(why)
            for f in found:
                first = by_unit.setdefault(f.unit_id, f)
                if first is not f:
                    first.also.append(where)
    return ScanResult(
        found=sorted(by_unit.values(), key=lambda f: f.unit_id),
        silent=silent,
        scanned=f"{port} at {_span(bauds)} baud, parity {','.join(parities)}, unit ids {_span(units)}",
    )


def _span(values: list[int]) -> str:
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    return ",".join(map(str, values))


# --- output ----------------------------------------------------------------------------------------


def _bus_name(f: Finding) -> str:
    if f.bus["transport"] == "rtu":
        return "rs485"
    name = re.sub(r"[^A-Za-z0-9]+", "_", f.bus["host"]).strip("_")
    return f"tcp_{name}" + (f"_{f.bus['port']}" if f.bus["port"] != 502 else "")


def _toml(value: Any) -> str:
    return msgspec.json.encode(value).decode() if isinstance(value, str) else str(value)


def snippet(found: list[Finding]) -> str:
    """``[buses.*]`` and ``[devices.*]`` for what was found: one device per role (the daemon drives one
    power stage and one site meter); the others are listed as comments."""
    lines = ["# v2gctl scan: paste into the configuration, then `v2gctl config check`"]
    buses: dict[str, dict[str, Any]] = {}
    devices: list[tuple[str, Finding]] = []
    roles: set[str] = set()
    for f in found:
        if f.role is None or f.role in roles:
            why = f.note or f"a second {f.role} (the daemon drives one)"
            lines.append(f"# also found: {f.where} unit {f.unit_id}: {f.label()} {f.device()} ({why})")
            continue
        roles.add(f.role)
        buses.setdefault(_bus_name(f), f.bus)
        devices.append((DEVICE_NAMES[f.role], f))
    if not devices:
        lines.append("# nothing the daemon can drive was found")
        return "\n".join(lines) + "\n"
    for name, bus in buses.items():
        lines += ["", f"[buses.{name}]"] + [f"{k} = {_toml(v)}" for k, v in bus.items()]
    for name, f in devices:
        lines += ["", f"# {f.device()}, models {f.models}", f"[devices.{name}]"]
        lines += [
            f"bus = {_toml(_bus_name(f))}",
            f"unit_id = {f.unit_id}",
            f"role = {_toml(f.role)}",
            'protocol = "sunspec"',
            f"sunspec_base = {f.base}",
        ]
    return "\n".join(lines) + "\n"


def _table(result: ScanResult) -> Iterator[str]:
    rows = [("WHERE", "UNIT", "FOUND", "DEVICE", "ROLE")]
    rows += [(f.where, str(f.unit_id), f.label(), f.device(), f.role or "-") for f in result.found]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        yield "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
    for f in result.found:
        if f.note:
            yield f"  {f.where} unit {f.unit_id}: {f.note}"
        if f.also:
            yield f"  {f.where} unit {f.unit_id} also answers at: {'; '.join(f.also)}"


def _report(result: ScanResult, as_json: bool) -> int:
    text = snippet(result.found)
    if as_json:
        print_json(
            {
                "scanned": result.scanned,
                "elapsed_s": round(result.elapsed_s, 2),
                "found": result.found,
                "silent": result.silent,
                "snippet": text,
            }
        )
    else:
        print(f"scanned {result.scanned} in {result.elapsed_s:.1f} s: {len(result.found)} unit(s) answered")
        if result.found:
            print()
            for line in _table(result):
                print(line)
        if result.silent:
            print()
            print("silent: " + "; ".join(result.silent))
        print()
        print(text, end="")
    return OK if result.found else PROBLEM


# --- commands --------------------------------------------------------------------------------------


def _quiet_drivers() -> None:
    # The bus worker logs every unit that fails; for a scan that is the normal case, reported in the table.
    logging.getLogger("drivers").setLevel(logging.CRITICAL)


def _run(coro: Any, progress: Progress, as_json: bool) -> int:
    _quiet_drivers()
    t0 = time.monotonic()
    try:
        result: ScanResult = asyncio.run(coro)
    finally:
        progress.finish()
    result.elapsed_s = time.monotonic() - t0
    return _report(result, as_json)


def cmd_tcp(args: argparse.Namespace) -> int:
    hosts = parse_hosts(args.hosts)
    units = parse_units(args.units, lowest=0)
    progress = Progress(len(hosts) * len(units))
    return _run(
        scan_tcp(
            hosts,
            port=args.port,
            units=units,
            timeout_s=args.timeout,
            concurrency=args.concurrency,
            progress=progress,
        ),
        progress,
        args.json,
    )


def cmd_rtu(args: argparse.Namespace) -> int:
    bauds, parities, units = parse_bauds(args.bauds), parse_parities(args.parity), parse_units(args.units)
    if not os.path.exists(args.port):
        raise CtlError(f"no serial port {args.port} (an RS-485 adapter is usually /dev/ttyUSB0)")
    progress = Progress(len(bauds) * len(parities) * len(units))
    return _run(
        scan_rtu(
            args.port, bauds=bauds, parities=parities, units=units, timeout_s=args.timeout, progress=progress
        ),
        progress,
        args.json,
    )


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.05 <= value <= 5.0:
        raise argparse.ArgumentTypeError(f"{value:g} s is outside 0.05..5")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1..65535)")
    return int(text)


def _concurrency(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 256:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hosts at once (1..256)")
    return int(text)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    scan = sub.add_parser("scan", help="find Modbus devices on a TCP host range or an RS-485 port")
    how = scan.add_subparsers(dest="scan_command", required=True, metavar="TRANSPORT")
    p = how.add_parser("tcp", help="Modbus TCP: HOSTS is a host, a comma list, or a range a.b.c.d-e")
    p.add_argument("hosts", metavar="HOSTS", help="e.g. 192.168.1.20, or 192.168.1.10-40,inverter.local")
    p.add_argument("--port", type=_port, default=502, help="TCP port (default 502)")
    p.add_argument("--units", default="1-10", help="unit ids, e.g. 1-10 or 1,3,100 (default 1-10)")
    p.add_argument("--timeout", type=_timeout, default=0.5, help="seconds per request and connect (0.5)")
    p.add_argument("--concurrency", type=_concurrency, default=32, help="hosts scanned at once (32)")
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(fn=cmd_tcp)
    p = how.add_parser("rtu", help="Modbus RTU on a serial port: every baud rate and parity given")
    p.add_argument("port", metavar="PORT", help="serial port, e.g. /dev/ttyUSB0")
    p.add_argument(
        "--bauds",
        default=",".join(map(str, DEFAULT_BAUDS)),
        help="baud rates (default 9600,19200,38400,115200)",
    )
    p.add_argument("--parity", default="N,E", help="parities to try: N, E, O (default N,E)")
    p.add_argument("--units", default="1-10", help="unit ids, e.g. 1-10 or 1,3,100 (default 1-10)")
    p.add_argument("--timeout", type=_timeout, default=0.3, help="seconds per request (0.3)")
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(fn=cmd_rtu)
