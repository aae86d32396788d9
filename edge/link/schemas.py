"""JSON Schemas of the MQTT payloads, generated from ``edge.link.payloads`` and shipped in
``config/schema/mqtt/<name>.schema.json`` (inside the package as ``edge/_config/schema/mqtt``).

``python -m edge.link.schemas --write`` regenerates them; ``--check`` exits 1 naming every shipped file
that differs from what the payload definitions give (a test runs the same comparison).
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

import msgspec

from edge.link import payloads as pl
from edge.settings.schema import _clean_descriptions

SCHEMA_BASE = "https://github.com/v2g-edge/v2g-edge/config/schema/mqtt/"
# name -> (payload type, title); the name is the file's stem.
PAYLOADS: dict[str, tuple[type[msgspec.Struct], str]] = {
    "state": (pl.StatePayload, "v2g-edge state (retained)"),
    "telemetry": (pl.Telemetry, "v2g-edge telemetry"),
    "telemetry-replay": (pl.TelemetryReplay, "v2g-edge telemetry replay batch"),
    "event": (pl.Event, "v2g-edge event"),
    "event-replay": (pl.EventReplay, "v2g-edge event replay batch"),
    "cmd-dispatch": (pl.DispatchCommand, "v2g-edge dispatch command"),
    "cmd-mode": (pl.ModeCommand, "v2g-edge mode command"),
    "cmd-owner": (pl.OwnerCommand, "v2g-edge owner command"),
    "cmd-grid": (pl.GridCommand, "v2g-edge grid-support command"),
    "cmd-plan_inputs": (pl.PlanInputsCommand, "v2g-edge planner inputs command"),
    "plan": (pl.PlanPayload, "v2g-edge plan (retained)"),
    "result": (pl.Result, "v2g-edge command result"),
}


def schema_dir() -> Path:
    """Where the shipped schemas live (``edge/_config`` links to ``config/`` in a checkout)."""
    return Path(str(files("edge"))) / "_config" / "schema" / "mqtt"


def json_schema(name: str) -> dict[str, Any]:
    """The schema of one payload as a dict."""
    typ, title = PAYLOADS[name]
    schema = msgspec.json.schema(typ)
    _clean_descriptions(schema)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{SCHEMA_BASE}{name}.schema.json",
        "title": title,
        **schema,
    }


def render(name: str) -> str:
    """One schema as the shipped file's text."""
    return json.dumps(json_schema(name), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def stale(directory: Path) -> list[str]:
    """The shipped files that are missing or differ from the generated schemas, and stray ones."""
    out = []
    for name in PAYLOADS:
        path = directory / f"{name}.schema.json"
        if not path.is_file() or path.read_text(encoding="utf-8") != render(name):
            out.append(path.name)
    expected = {f"{name}.schema.json" for name in PAYLOADS}
    out.extend(p.name for p in sorted(directory.glob("*.schema.json")) if p.name not in expected)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.link.schemas", description=__doc__)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="regenerate the shipped schemas")
    action.add_argument("--check", action="store_true", help="exit 1 when a shipped schema is stale")
    parser.add_argument("--dir", type=Path, default=None, help="schema directory (default: the package's)")
    args = parser.parse_args(argv)
    directory = args.dir or schema_dir()
    if args.write:
        directory.mkdir(parents=True, exist_ok=True)
        for name in PAYLOADS:
            (directory / f"{name}.schema.json").write_text(render(name), encoding="utf-8")
        return 0
    bad = stale(directory)
    for name in bad:
        sys.stderr.write(f"{directory / name}: out of date; run python -m edge.link.schemas --write\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
