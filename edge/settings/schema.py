"""JSON Schema of the config file, generated from the model and shipped as config/schema/.

``python -m edge.settings.schema > config/schema/v2g-edge.schema.json`` regenerates it; a test fails when
the shipped file is out of date. In the file every ``grid`` value is optional (the profile supplies the
rest), so the grid structs lose their ``required`` lists here; the loader still demands a full grid
after merging the profile.
"""

from __future__ import annotations

import inspect
import json
import sys
from typing import Any

import msgspec

from edge.settings import migrate
from edge.settings.model import Grid, Settings

SCHEMA_ID = "https://github.com/v2g-edge/v2g-edge/config/schema/v2g-edge.schema.json"


def _grid_defs() -> set[str]:
    """Names of the struct definitions reachable from Grid."""
    names: set[str] = set()
    todo: list[Any] = [msgspec.inspect.type_info(Grid)]
    while todo:
        info = todo.pop()
        if isinstance(info, msgspec.inspect.StructType):
            if info.cls.__name__ in names:
                continue
            names.add(info.cls.__name__)
            todo.extend(f.type for f in info.fields)
        elif isinstance(info, msgspec.inspect.ListType):
            todo.append(info.item_type)
        elif isinstance(info, msgspec.inspect.UnionType):
            todo.extend(info.types)
    return names


def _clean_descriptions(node: Any) -> None:
    """Dedent every description in place.

    msgspec's handling of docstrings has changed between releases (before 0.23 it kept the
    indentation of a docstring's later lines); cleaning here keeps the shipped file the same whichever
    is installed.
    """
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                node[key] = inspect.cleandoc(value)
            else:
                _clean_descriptions(value)
    elif isinstance(node, list):
        for item in node:
            _clean_descriptions(item)


def json_schema() -> dict[str, Any]:
    """The config-file schema as a dict."""
    schema = msgspec.json.schema(Settings)
    _clean_descriptions(schema)
    band_defs = {"VoltageBand", "FrequencyBand"}  # list items: complete when given
    for name in _grid_defs() - band_defs:
        definition = schema["$defs"][name]
        definition.pop("required", None)
        definition["description"] = (
            definition.get("description", "") + "\n\nValues not given come from the commissioned profile."
        ).strip()
    # The file's own schema version (edge.settings.migrate): read and removed before the typed decode.
    root = schema["$defs"]["Settings"]
    root["properties"][migrate.KEY] = {
        "type": "integer",
        "minimum": 1,
        "maximum": migrate.SCHEMA_VERSION,
        "description": "The schema this file was written for (absent: 1); older files are migrated on start.",
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "v2g-edge configuration",
        **schema,
    }


def render() -> str:
    """The schema as the shipped file's text."""
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> None:
    """Write the schema to stdout."""
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
