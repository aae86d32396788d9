"""Edit a config file's text in place with tomlkit, keeping its comments, order and formatting.

Only the edited key changes; new tables are appended where TOML allows. ``None`` removes a key (an
optional setting unset, or a grid override reverted to the profile's default). A dict value sets
several keys of one table at once (a whole volt-var curve, so that no half-edited curve is ever checked).
"""

from __future__ import annotations

from typing import Any

import tomlkit
from tomlkit.container import Container
from tomlkit.items import Table

from edge.settings.errors import SettingsError, SettingsFileError

_Node = Container | Table


def parse(text: str, source: str = "<config>") -> tomlkit.TOMLDocument:
    """Parse config text for editing; a syntax error names the source and line."""
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise SettingsFileError(source, exc.line, str(exc)) from exc


def _table(node: _Node, key: str, path: str, leaf_parent: bool) -> _Node:
    if key not in node:
        node.add(key, tomlkit.table(is_super_table=not leaf_parent))
    child = node[key]
    if not isinstance(child, Table | Container):
        raise SettingsError(path, child, "is a value, not a table")
    return child


def _set(node: _Node, keys: list[str], value: Any, path: str) -> None:
    *parents, leaf = keys
    for i, key in enumerate(parents):
        node = _table(node, key, path, leaf_parent=i == len(parents) - 1)
    if isinstance(value, dict):
        table = _table(node, leaf, path, leaf_parent=True)
        for key, item in value.items():
            _set(table, [key], item, f"{path}.{key}")
    elif value is None:
        if leaf in node:
            del node[leaf]
    else:
        node[leaf] = value


def set_value(text: str, path: str, value: Any, source: str = "<config>") -> str:
    """Return ``text`` with the setting at dotted ``path`` set to ``value`` (None removes it)."""
    if not path or "[" in path:
        raise SettingsError(path, value, "only named settings can be edited, not list entries")
    doc = parse(text, source)
    _set(doc, path.split("."), value, path)
    return tomlkit.dumps(doc)
