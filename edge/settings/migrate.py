"""Configuration schema versions: migrate an older file on start (with a backup), refuse a newer one.

A file says which schema it was written for with a top-level ``schema_version``; a file without one
is read as version 1, so each migration leaves a file already in the newer form unchanged (only a
file that changed gets the key and a backup). Each migration takes a file from version N to N + 1 and works
on any mutable mapping, so the same code migrates a parsed tree in memory (every load: ``v2gctl``
and a daemon that cannot write its file read an old file correctly) and a tomlkit document on disk
(``v2g-edged --migrate-config``, which the unit runs before each start with the privileges to write
``/etc``), where the operator's comments and layout survive. A file from a newer version (after a
downgrade) is refused with what to do, never guessed at.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

from edge.settings.errors import SettingsError

log = logging.getLogger(__name__)

KEY = "schema_version"
SCHEMA_VERSION = 2

_Tree = MutableMapping[str, Any]


def _site_mode_to_operation_mode(tree: _Tree) -> None:
    """1 -> 2: ``site.mode`` became ``operation.mode``; both given and different is refused."""
    site = tree.get("site")
    if not isinstance(site, MutableMapping) or "mode" not in site:
        return
    mode = site["mode"]
    if "operation" not in tree:
        tree["operation"] = {}
    operation = tree["operation"]
    if operation.setdefault("mode", mode) != mode:
        raise SettingsError(
            "site.mode",
            mode,
            f"is the old name of operation.mode, which says {operation['mode']!r}",
            "remove it",
        )
    del site["mode"]


# version N -> the migration from N to N + 1
MIGRATIONS: dict[int, Callable[[_Tree], None]] = {1: _site_mode_to_operation_mode}


def file_version(tree: _Tree) -> int:
    """The schema version a parsed file says it was written for (1 when it says nothing)."""
    version = tree.get(KEY, 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SettingsError(KEY, version, "must be a whole number", f"1 to {SCHEMA_VERSION}")
    if version > SCHEMA_VERSION:
        raise SettingsError(
            KEY,
            version,
            f"the file was written for a newer v2g-edge (this one reads schema {SCHEMA_VERSION} and older); "
            "install that version again, or restore the backup the upgrade made "
            f"(the file's name + .schema-{SCHEMA_VERSION}.bak)",
            f"1 to {SCHEMA_VERSION}",
        )
    return int(version)


def _apply(tree: _Tree, version: int) -> None:
    for step in range(version, SCHEMA_VERSION):
        MIGRATIONS[step](tree)


def migrate_tree(raw: dict[str, Any]) -> dict[str, Any]:
    """A copy of a parsed file at the current schema, without the ``schema_version`` key."""
    version = file_version(raw)
    tree = copy.deepcopy(raw)
    tree.pop(KEY, None)
    before = copy.deepcopy(tree)
    _apply(tree, version)
    if tree != before:
        log.warning(
            "configuration is at schema %d, read as %d; `v2g-edged --migrate-config` (run by the unit "
            "before each start) rewrites the file",
            version,
            SCHEMA_VERSION,
        )
    return tree


def migrate_file(path: Path) -> Path | None:
    """Rewrite an older file at the current schema; returns the backup of the old file, or None when
    nothing needed to change (a file without ``schema_version`` already in the current form is left
    as it is). The result is validated before anything is written; the rewrite is atomic and keeps
    the file's owner and mode."""
    from edge.settings.edit import parse
    from edge.settings.load import load_text

    text = path.read_text(encoding="utf-8")
    doc = parse(text, str(path))
    version = file_version(doc)
    if version == SCHEMA_VERSION:
        return None
    _apply(doc, version)
    if doc.as_string() == text and KEY not in doc:
        return None
    if KEY in doc:
        doc[KEY] = SCHEMA_VERSION
        new_text = doc.as_string()
    else:
        # A top-level key goes before the first table: the top of the file, where a reader looks for it.
        new_text = (
            f"{KEY} = {SCHEMA_VERSION}  # the settings schema this file is written for\n" + doc.as_string()
        )
    load_text(new_text, f"{path} (migrated to schema {SCHEMA_VERSION})")
    backup = path.with_name(f"{path.name}.schema-{version}.bak")
    shutil.copy2(path, backup)
    st = path.stat()
    tmp = path.with_name(f".{path.name}.migrating")
    tmp.write_text(new_text, encoding="utf-8")
    os.chown(tmp, st.st_uid, st.st_gid)
    os.chmod(tmp, st.st_mode & 0o7777)
    os.replace(tmp, path)
    log.warning(
        "configuration %s migrated from schema %d to %d (backup: %s)", path, version, SCHEMA_VERSION, backup
    )
    return backup
