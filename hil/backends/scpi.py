"""SCPI over TCP: a client, a programmable AC source driver, and a simulated AC source for tests.

Lab AC sources (grid simulators) take SCPI text commands over a raw socket (port 5025 by convention),
one per line. Dialects differ in the details; :class:`AcSourceDialect` holds the command templates, and
the default is the common subset (``SOUR:VOLT``, ``SOUR:FREQ``, ``SOUR:PHAS``, ``INST:NSEL`` for one
phase, ``OUTP``, ``MEAS:...?``). After every setting the driver asks ``SYST:ERR?`` and raises
:class:`ScpiError` with the instrument's error text, so a refused value never passes silently.

:class:`SimulatedAcSource` is a small instrument that speaks that dialect (with short and long command
forms, range checks and an error queue); the SCPI tests and the lab backend's tests run against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field


class ScpiError(RuntimeError):
    """The instrument refused a command, or did not answer."""


class ScpiClient:
    """Line-based SCPI over TCP: ``write`` sends, ``query`` sends and reads one reply line."""

    def __init__(self, host: str, port: int = 5025, timeout_s: float = 2.0) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise ScpiError(f"SCPI instrument at {self.host}:{self.port} unreachable: {exc}") from None

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
            self._writer = self._reader = None

    async def write(self, command: str) -> None:
        if self._writer is None:
            raise ScpiError("SCPI client is not connected")
        self._writer.write(command.encode("ascii") + b"\n")
        await self._writer.drain()

    async def query(self, command: str) -> str:
        async with self._lock:
            await self.write(command)
            assert self._reader is not None
            try:
                # Not asyncio.wait_for: on 3.11 a reply arriving as the caller is cancelled makes it
                # return the reply and drop the cancellation, and the lab's recorder then never
                # stopped (a CI run hung 300 s in LabBackend.stop).
                async with asyncio.timeout(self.timeout_s):
                    line = await self._reader.readline()
            except TimeoutError:
                raise ScpiError(f"no answer to {command!r} within {self.timeout_s} s") from None
            if not line:
                raise ScpiError(f"connection closed while waiting for the answer to {command!r}")
            return line.decode("ascii", errors="replace").strip()

    async def checked(self, command: str) -> None:
        """Send a setting and raise ScpiError if the instrument's error queue reports a problem."""
        async with self._lock:
            await self.write(command)
        err = await self.query("SYST:ERR?")
        code = err.split(",", 1)[0].strip()
        if code not in ("0", "+0"):
            raise ScpiError(f"instrument refused {command!r}: {err}")


@dataclass(frozen=True)
class AcSourceDialect:
    """Command templates of a programmable AC source (``{v}``, ``{f}``, ``{deg}``, ``{n}`` 1-based phase)."""

    select_phase: str = "INST:NSEL {n}"
    select_all: str = "INST:NSEL ALL"
    voltage: str = "SOUR:VOLT {v:.3f}"
    frequency: str = "SOUR:FREQ {f:.4f}"
    phase_angle: str = "SOUR:PHAS {deg:.2f}"
    output: str = "OUTP {state}"
    meas_voltage: str = "MEAS:VOLT?"
    meas_frequency: str = "MEAS:FREQ?"
    meas_power: str = "MEAS:POW?"


class ScpiAcSource:
    """A programmable AC source as the bench's grid: voltage (per phase), frequency, angle, output."""

    def __init__(self, client: ScpiClient, dialect: AcSourceDialect | None = None) -> None:
        self.c = client
        self.d = dialect or AcSourceDialect()

    async def identify(self) -> str:
        return await self.c.query("*IDN?")

    async def _phase(self, phase: int | None) -> None:
        await self.c.checked(self.d.select_all if phase is None else self.d.select_phase.format(n=phase + 1))

    async def set_voltage(self, v_v: float, phase: int | None = None) -> None:
        await self._phase(phase)
        await self.c.checked(self.d.voltage.format(v=v_v))

    async def set_frequency(self, f_hz: float) -> None:
        await self.c.checked(self.d.frequency.format(f=f_hz))

    async def set_phase_angle(self, deg: float, phase: int | None = None) -> None:
        await self._phase(phase)
        await self.c.checked(self.d.phase_angle.format(deg=deg))

    async def set_output(self, on: bool) -> None:
        await self.c.checked(self.d.output.format(state="ON" if on else "OFF"))

    async def measure(self) -> tuple[float, float, float]:
        """(V, Hz, W) at the source terminals; W > 0 is power the source delivers (site import)."""
        v = float(await self.c.query(self.d.meas_voltage))
        f = float(await self.c.query(self.d.meas_frequency))
        p = float(await self.c.query(self.d.meas_power))
        return v, f, p


# --- the simulated instrument -----------------------------------------------------------------------


def _match(header: str, long_form: str) -> bool:
    """SCPI header matching: each node in its short (upper-case part) or long form; optional ``SOUR:``."""
    want = long_form.split(":")
    got = header.upper().lstrip(":").split(":")
    if len(got) == len(want) - 1 and want[0] == "SOURce":
        want = want[1:]
    if len(got) != len(want):
        return False
    for g, w in zip(got, want, strict=True):
        short = "".join(ch for ch in w if ch.isupper() or ch == "?")
        if g not in (short.upper(), w.upper()):
            return False
    return True


@dataclass
class SimulatedAcSource:
    """A three-phase AC source speaking SCPI on a TCP port (``await start()``, ``port``, ``await stop()``).

    Ranges: 0-300 V, 40-70 Hz, -360..360 degrees. ``load_w`` gives what the source would measure as
    delivered power (the site's import), from its present state; by default 0.
    """

    v_v: list[float] = field(default_factory=lambda: [120.0, 120.0, 120.0])
    f_hz: float = 60.0
    phase_deg: list[float] = field(default_factory=lambda: [0.0, -120.0, 120.0])
    output: bool = False
    load_w: Callable[[SimulatedAcSource], float] = lambda s: 0.0
    log: list[str] = field(default_factory=list)
    port: int = 0
    _errors: list[str] = field(default_factory=list)
    _sel: list[int] = field(default_factory=lambda: [0, 1, 2])
    _server: asyncio.Server | None = None

    async def start(self, host: str = "127.0.0.1") -> None:
        self._server = await asyncio.start_server(self._client, host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                for cmd in line.decode("ascii", errors="replace").strip().split(";"):
                    if cmd.strip():
                        reply = self.handle(cmd.strip())
                        if reply is not None:
                            writer.write(reply.encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def _num(self, arg: str, lo: float, hi: float) -> float | None:
        try:
            x = float(arg)
        except ValueError:
            self._errors.append('-104,"Data type error"')
            return None
        if not lo <= x <= hi:
            self._errors.append(f'-222,"Data out of range; {x:g} not in {lo:g}..{hi:g}"')
            return None
        return x

    def handle(self, cmd: str) -> str | None:
        """One command; returns the reply line for queries."""
        self.log.append(cmd)
        header, _, arg = cmd.partition(" ")
        arg = arg.strip()
        if header.upper() == "*IDN?":
            return "v2g-edge,SimulatedAcSource,0001,1.0"
        if header.upper() == "*RST":
            self.v_v, self.f_hz, self.output = [120.0] * 3, 60.0, False
            return None
        if _match(header, "SYSTem:ERRor?"):
            return self._errors.pop(0) if self._errors else '+0,"No error"'
        if _match(header, "INSTrument:NSELect"):
            if arg.upper() == "ALL":
                self._sel = [0, 1, 2]
            elif arg in ("1", "2", "3"):
                self._sel = [int(arg) - 1]
            else:
                self._errors.append(f'-224,"Illegal parameter value {arg}"')
            return None
        if _match(header, "SOURce:VOLTage"):
            if (x := self._num(arg, 0.0, 300.0)) is not None:
                for k in self._sel:
                    self.v_v[k] = x
            return None
        if _match(header, "SOURce:FREQuency"):
            if (x := self._num(arg, 40.0, 70.0)) is not None:
                self.f_hz = x
            return None
        if _match(header, "SOURce:PHASe"):
            if (x := self._num(arg, -360.0, 360.0)) is not None:
                base = [0.0, -120.0, 120.0]
                for k in self._sel:
                    self.phase_deg[k] = base[k] + x
            return None
        if _match(header, "OUTPut"):
            if arg.upper() in ("ON", "1", "OFF", "0"):
                self.output = arg.upper() in ("ON", "1")
            else:
                self._errors.append(f'-224,"Illegal parameter value {arg}"')
            return None
        if _match(header, "OUTPut?"):
            return "1" if self.output else "0"
        if _match(header, "MEASure:VOLTage?"):
            return f"{self.v_v[self._sel[0]] if self.output else 0.0:.3f}"
        if _match(header, "MEASure:FREQuency?"):
            return f"{self.f_hz:.4f}"
        if _match(header, "MEASure:POWer?"):
            return f"{self.load_w(self) if self.output else 0.0:.1f}"
        if re.fullmatch(r"[A-Za-z:*?0-9]+", header):
            self._errors.append(f'-113,"Undefined header {header}"')
        else:
            self._errors.append(f'-100,"Command error {cmd}"')
        return None
