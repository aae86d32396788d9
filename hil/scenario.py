"""Scenarios as data: a TOML file with a timeline of events and the checks that judge the run.

::

    name = "v2h-export-cap-load-drop"
    description = "..."
    duration_s = 30.0
    needs = []                       # "mqtt": the runner starts a broker and enables MQTT in the daemon

    [plant]                          # overrides of the plant config (hil/plant/config.py)
    site.house_load_w = 3000

    [daemon]                         # overrides of the generated daemon config (v2g-edge.toml sections)
    operation.mode = "v2h"

    [[events]]                       # plant events (hil/plant/events.py) and runner events (below)
    at_s = 10.0
    kind = "house_load"
    w = 500

    [[checks]]
    name = "no export after the load drop"
    kind = "bound"                   # bound | settle | energy | mean
    signal = "p_site_export_w"       # a plant signal (hil/plant/recorder.py SIGNALS)
    from_s = 12.0
    to_s = 30.0
    max = 100.0

Check kinds:

- ``bound``: ``min <= signal <= max`` over ``[from_s, to_s]``; ``allow_s`` tolerates that much time
  outside in total (a transient the requirement permits).
- ``settle``: from ``from_s``, the signal enters ``[min, max]`` within ``within_s`` and stays there to
  ``to_s``.
- ``energy``: the time integral of the signal over the window, in Wh, within ``[min_wh, max_wh]``.
- ``mean``: the mean over the window within ``[min, max]``.
- ``excursion``: every episode above ``above`` lasts at most ``max_s`` and carries at most ``max_wh``
  (the export cap's "per excursion" targets).
- ``tv_ratio``: total variation of the signal over that of ``reference`` at most ``max`` (oscillation:
  1 is pure tracking).
- ``std``: standard deviation over the window at most ``max`` (settled).

Runner events: ``daemon_kill`` (``signal`` "KILL" or "TERM"), ``daemon_start``, ``mqtt_publish``
(``topic``, ``payload``, ``qos``, ``retain``; needs "mqtt"). New kinds of events or checks are a struct
here plus their handling in :mod:`hil.runner` and :mod:`hil.plant`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from hil.plant import config as plant_config
from hil.plant.config import PlantConfigError
from hil.plant.events import PLANT_EVENT_KINDS, PlantEvent, kind_of
from hil.plant.events import _Event as _EventBase
from hil.plant.recorder import SIGNALS

NonNeg = Annotated[float, Meta(ge=0.0)]


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message names the file, the entry and the field."""


# --- runner events -------------------------------------------------------------------------------------


class DaemonKill(_EventBase, tag="daemon_kill", kw_only=True):
    """Kill the daemon (a crash when ``signal = "KILL"``, a clean stop with "TERM")."""

    signal: Literal["KILL", "TERM"] = "KILL"


class DaemonStart(_EventBase, tag="daemon_start", kw_only=True):
    """Start the daemon again (after ``daemon_kill``), same config."""


class MqttPublish(_EventBase, tag="mqtt_publish", kw_only=True):
    """Publish on the bench broker (aggregator messages)."""

    topic: str
    payload: str = ""
    qos: Literal[0, 1, 2] = 1
    retain: bool = False


RunnerEvent = DaemonKill | DaemonStart | MqttPublish
Event = PlantEvent | RunnerEvent
RUNNER_EVENT_KINDS = ("daemon_kill", "daemon_start", "mqtt_publish")

# --- checks ----------------------------------------------------------------------------------------------


class _Check(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, tag_field="kind"):
    signal: str
    name: str = ""
    from_s: NonNeg = 0.0
    to_s: NonNeg | None = None  # None: the end of the run

    def title(self) -> str:
        return self.name or f"{kind_of(self)} {self.signal}"


class Bound(_Check, tag="bound", kw_only=True):
    min: float | None = None
    max: float | None = None
    allow_s: NonNeg = 0.0


class Settle(_Check, tag="settle", kw_only=True):
    min: float | None = None
    max: float | None = None
    within_s: NonNeg


class Energy(_Check, tag="energy", kw_only=True):
    min_wh: float | None = None
    max_wh: float | None = None


class Mean(_Check, tag="mean", kw_only=True):
    min: float | None = None
    max: float | None = None


class Excursion(_Check, tag="excursion", kw_only=True):
    """Every episode of the signal above ``above`` lasts at most ``max_s`` and carries at most ``max_wh``."""

    above: float = 0.0
    max_s: NonNeg | None = None
    max_wh: NonNeg | None = None


class TvRatio(_Check, tag="tv_ratio", kw_only=True):
    """Total variation of the signal over that of ``reference`` (1 = pure tracking), at most ``max``."""

    reference: str
    max: Annotated[float, Meta(gt=0.0)]


class Std(_Check, tag="std", kw_only=True):
    """Standard deviation over the window at most ``max`` (a settled signal)."""

    max: NonNeg


Check = Bound | Settle | Energy | Mean | Excursion | TvRatio | Std
CHECK_KINDS = ("bound", "settle", "energy", "mean", "excursion", "tv_ratio", "std")


class Scenario(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    description: str = ""
    duration_s: Annotated[float, Meta(gt=0.0, le=3600.0)]
    needs: list[Literal["mqtt"]] = msgspec.field(default_factory=list)
    tags: list[str] = msgspec.field(default_factory=list)
    plant: dict[str, Any] = msgspec.field(default_factory=dict)
    daemon: dict[str, Any] = msgspec.field(default_factory=dict)
    events: list[Event] = msgspec.field(default_factory=list)
    checks: list[Check] = msgspec.field(default_factory=list)
    path: str = ""  # where it was read from (set by load)

    def plant_events(self) -> list[PlantEvent]:
        return [e for e in self.events if not isinstance(e, DaemonKill | DaemonStart | MqttPublish)]

    def runner_events(self) -> list[RunnerEvent]:
        return [e for e in self.events if isinstance(e, DaemonKill | DaemonStart | MqttPublish)]


def _explain(exc: msgspec.ValidationError, data: dict[str, Any]) -> str:
    """msgspec's message, with the entry's kind named and the valid kinds listed where that helps."""
    msg = str(exc)
    if "Invalid value" in msg and "kind" in msg:
        if "$.events" in msg:
            msg += f" (event kinds: {', '.join(PLANT_EVENT_KINDS + RUNNER_EVENT_KINDS)})"
        elif "$.checks" in msg:
            msg += f" (check kinds: {', '.join(CHECK_KINDS)})"
    return msg


def parse(data: dict[str, Any], source: str = "<scenario>") -> Scenario:
    """A validated scenario from parsed TOML; raises ScenarioError naming ``source`` and the field."""
    try:
        sc = msgspec.convert(data, Scenario)
    except msgspec.ValidationError as exc:
        raise ScenarioError(f"{source}: {_explain(exc, data)}") from None
    problems = []
    for i, e in enumerate(sc.events):
        if e.at_s > sc.duration_s:
            problems.append(f"events[{i}] ({kind_of(e)}) at_s={e.at_s} is after duration_s={sc.duration_s}")
        if isinstance(e, MqttPublish) and "mqtt" not in sc.needs:
            problems.append(f'events[{i}] (mqtt_publish) needs `needs = ["mqtt"]`')
    for i, c in enumerate(sc.checks):
        where = f"checks[{i}] ({c.title()})"
        if c.signal not in SIGNALS:
            problems.append(f"{where}: unknown signal {c.signal!r}; signals: {', '.join(SIGNALS)}")
        to_s = sc.duration_s if c.to_s is None else c.to_s
        if not c.from_s < to_s <= sc.duration_s:
            problems.append(
                f"{where}: window from_s={c.from_s} to_s={to_s} must satisfy from_s < to_s <= {sc.duration_s}"
            )
        if isinstance(c, Bound | Settle | Mean) and c.min is None and c.max is None:
            problems.append(f"{where}: give min, max or both")
        if isinstance(c, Bound | Settle | Mean) and c.min is not None and c.max is not None and c.min > c.max:
            problems.append(f"{where}: min={c.min} is above max={c.max}")
        if isinstance(c, Energy) and c.min_wh is None and c.max_wh is None:
            problems.append(f"{where}: give min_wh, max_wh or both")
        if isinstance(c, Excursion) and c.max_s is None and c.max_wh is None:
            problems.append(f"{where}: give max_s, max_wh or both")
        if isinstance(c, TvRatio) and c.reference not in SIGNALS:
            problems.append(f"{where}: unknown reference signal {c.reference!r}")
    try:
        plant_config.from_dict(dict(sc.plant), "[plant]")
    except PlantConfigError as exc:
        problems.append(str(exc))
    if not sc.checks:
        problems.append("no [[checks]]: a scenario must judge something")
    names = [c.title() for c in sc.checks]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        problems.append(f"check names must be unique, repeated: {dups}")
    if problems:
        raise ScenarioError(f"{source}: " + "; ".join(problems))
    return sc


def load(path: str | Path) -> Scenario:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{p}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{p}: not valid TOML: {exc}") from None
    sc = parse(data, str(p))
    sc.path = str(p)
    return sc


def builtin_dir() -> Path:
    """The product scenarios shipped with the bench."""
    return Path(__file__).parent / "scenarios"


def resolve(name: str) -> Path:
    """A scenario path: a file, or the name of a built-in one (``v2h-export-cap``)."""
    p = Path(name)
    if p.exists():
        return p
    cand = builtin_dir() / (name if name.endswith(".toml") else f"{name}.toml")
    if cand.exists():
        return cand
    known = sorted(x.stem for x in builtin_dir().glob("*.toml"))
    raise ScenarioError(
        f"{name}: no such file, and no built-in scenario of that name (built-in: {', '.join(known)})"
    )
