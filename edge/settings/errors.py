"""The one exception every settings problem raises, naming the field, the value and what is allowed."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import msgspec

from edge.settings.paths import lookup

_AT_LINE = re.compile(r"\s*\(at line (\d+), column \d+\)\s*$")
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_FIELD = re.compile(r"(?:missing required|unknown) field `([^`]+)`")


class SettingsError(ValueError):
    """A setting was refused.

    ``path`` is the dotted field path (``grid.volt_var.v1_pu``) or, for a file that does not parse,
    ``<file>:<line>``; ``value`` the value refused; ``allowed`` the allowed range or values, when known.
    """

    def __init__(self, path: str, value: object, reason: str, allowed: str | None = None) -> None:
        self.path = path
        self.value = value
        self.reason = reason
        self.allowed = allowed
        message = f"{path} = {value!r}: {reason}"
        if allowed is not None:
            message += f" (allowed: {allowed})"
        super().__init__(message)


class SettingsFileError(SettingsError):
    """A config or profile file that is not valid TOML: names the file, the line and what is wrong."""

    def __init__(self, file: str, line: int | None, what: str) -> None:
        self.file = file
        self.line = line
        where = f"{file}:{line}" if line is not None else file
        ValueError.__init__(self, f"{where}: {what}")
        self.path = where
        self.value = None
        self.reason = what
        self.allowed = None

    @classmethod
    def from_toml(cls, file: str, exc: tomllib.TOMLDecodeError) -> SettingsFileError:
        """Name the line of a tomllib error (3.11 has it only in the message text)."""
        text = str(exc)
        match = _AT_LINE.search(text)
        if match is None:
            return cls(file, None, text)
        return cls(file, int(match.group(1)), text[: match.start()])


def validation_error(exc: msgspec.ValidationError, raw: Any, prefix: str = "") -> SettingsError:
    """Turn msgspec's ``Expected ... - at `$.a.b``` into a SettingsError on ``prefix.a.b`` with its value."""
    match = _AT.match(str(exc))
    msg = match.group("msg") if match else str(exc)
    path = (match.group("path") or "").lstrip(".") if match else ""
    field = _FIELD.search(msg)
    if field:
        path = f"{path}.{field.group(1)}" if path else field.group(1)
    full = ".".join(p for p in (prefix, path) if p)
    try:
        value = lookup(raw, path) if path and isinstance(raw, dict) else None
    except KeyError:
        value = None
    if "unknown field" in msg:
        msg = "unknown setting"
    elif "missing required field" in msg:
        msg = "required setting missing"
    return SettingsError(full or "<settings>", value, msg)
