"""Lasting settings changes made over the link (the mode, the owner's wishes, grid-support curves),
kept on the charger and laid over the file's settings: the *effective* settings.

The config file stays the installer's: an override is not written into it. Overrides are kept in the
spool's durable key/value store under ``OVERRIDES_KEY`` as JSON ``{path: {"value": ..., "file": ...}}``
where ``file`` is the file's value at that path when the override was made. Precedence
(docs/mqtt.md): an override holds until another command replaces it; when the file's value at its
path is no longer the one it overrode (the installer edited the file, then SIGHUP or a restart), the
file wins and the override is dropped. The effective settings go through ``from_builtins``, the same
validation as a file, so an override can never produce settings a file could not.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

import msgspec

from edge.settings.changes import _put, get_value, is_remote_editable
from edge.settings.errors import SettingsError
from edge.settings.load import from_builtins
from edge.settings.model import Settings

log = logging.getLogger(__name__)

OVERRIDES_KEY = "link.overrides"
# operation.mode is not an aggregator *setting* change (edge.settings.changes) but the link's mode
# command; every other path must be one the aggregator may edit.
MODE_PATH = "operation.mode"


class MetaStore(Protocol):
    """The durable key/value store (``edge.link.spool.Spool``)."""

    def get_meta(self, name: str) -> str | None: ...

    def put_meta(self, name: str, value: str) -> None: ...


class Override(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One path's value, and the file's value it replaced (to tell when the file changed under it)."""

    value: Any
    file: Any


Overrides = dict[str, Override]


def allowed(path: str) -> bool:
    """Paths an override may set."""
    return path == MODE_PATH or is_remote_editable(path)


def load(meta: MetaStore) -> Overrides:
    """The kept overrides; unreadable ones are dropped with a warning (the file's settings apply)."""
    text = meta.get_meta(OVERRIDES_KEY)
    if not text:
        return {}
    try:
        return msgspec.json.decode(text, type=Overrides)
    except msgspec.DecodeError as exc:
        log.warning("link overrides in the state store are unreadable (%s): the file's settings apply", exc)
        return {}


def save(meta: MetaStore, overrides: Mapping[str, Override]) -> None:
    meta.put_meta(OVERRIDES_KEY, msgspec.json.encode(dict(sorted(overrides.items()))).decode())


def compose(file_settings: Settings, overrides: Mapping[str, Override]) -> Settings:
    """The file's settings with ``overrides`` on top, validated as a whole; raises SettingsError."""
    if not overrides:
        return file_settings
    tree = msgspec.to_builtins(file_settings)
    for path, override in overrides.items():
        _put(tree, path, override.value)
    return from_builtins(tree)


def _group(path: str) -> str:
    return path.split(".", 1)[0]


def effective(
    file_settings: Settings, overrides: Mapping[str, Override]
) -> tuple[Settings, Overrides, list[str]]:
    """The effective settings, the overrides kept and why the others were dropped.

    Dropped: a path no override may set (a damaged store), a path whose file value changed since the
    override was made (the file wins), and a section (``operation``, ``owner``, ``grid``) whose
    overrides no longer validate over the new file (e.g. a departure SoC below a raised reserve)."""
    kept: Overrides = {}
    dropped: list[str] = []
    for path, override in overrides.items():
        if not allowed(path):
            dropped.append(f"{path}: not settable over the link")
        elif get_value(file_settings, path) != override.file:
            dropped.append(f"{path}: the file changed it (the file wins)")
        else:
            kept[path] = override
    try:
        return compose(file_settings, kept), kept, dropped
    except SettingsError:
        pass
    survivors: Overrides = {}
    for group in sorted({_group(p) for p in kept}):
        part = {p: o for p, o in kept.items() if _group(p) == group}
        try:
            compose(file_settings, {**survivors, **part})
        except SettingsError as exc:
            dropped.extend(f"{p}: no longer valid over the file ({exc})" for p in part)
        else:
            survivors.update(part)
    return compose(file_settings, survivors), survivors, dropped
