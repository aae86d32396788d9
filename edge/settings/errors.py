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
_INDEX = re.compile(r"\[\d+\]")
# A key naming a secret; one ending in _file/_path/_dir names where a secret is (a path, kept).
_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|api_?key|private_?key|^key$|psk|credential", re.I
)
_PATH_KEY = re.compile(r"_(file|path|dir)$", re.I)
REDACTED = "<redacted>"


def is_secret_key(key: str) -> bool:
    """Whether a setting's name says its value is a secret (never shown in an error, a log, an archive)."""
    return bool(_SECRET_KEY.search(key)) and not _PATH_KEY.search(key)


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
        # A secret typed into the wrong key (``password`` for ``password_file``) must not reach the
        # log, the events, the aggregator or a diagnostics archive through this message.
        shown = REDACTED if is_secret_key(path.rsplit(".", 1)[-1]) else repr(value)
        message = f"{path} = {shown}: {reason}"
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


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _numeric_at(typ: Any, path: str) -> msgspec.inspect.FloatType | msgspec.inspect.IntType | None:
    """The numeric type (with its Meta bounds) of the field at a dotted path of ``typ``, if it is one."""
    info: Any = msgspec.inspect.type_info(typ)
    for key in [k for k in _INDEX.sub(".[]", path).split(".") if k]:
        if isinstance(info, msgspec.inspect.UnionType):  # Optional[...]: the non-None member
            members = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
            info = members[0] if len(members) == 1 else None
        if key == "[]" and isinstance(info, msgspec.inspect.ListType):
            info = info.item_type
        elif isinstance(info, msgspec.inspect.StructType):
            info = next((f.type for f in info.fields if f.encode_name == key), None)
        elif isinstance(info, msgspec.inspect.DictType):
            info = info.value_type
        else:
            return None
    if isinstance(info, msgspec.inspect.UnionType):
        members = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        info = members[0] if len(members) == 1 else None
    return info if isinstance(info, msgspec.inspect.FloatType | msgspec.inspect.IntType) else None


def allowed_range(typ: Any, path: str) -> str | None:
    """The model's range of the numeric setting at ``path`` (``0 … 1``, ``> 0, <= 60``, ``>= 0``)."""
    num = _numeric_at(typ, path)
    if num is None:
        return None
    lo = f">= {_fmt(num.ge)}" if num.ge is not None else f"> {_fmt(num.gt)}" if num.gt is not None else None
    hi = f"<= {_fmt(num.le)}" if num.le is not None else f"< {_fmt(num.lt)}" if num.lt is not None else None
    if num.ge is not None and num.le is not None:
        return f"{_fmt(num.ge)} … {_fmt(num.le)}"
    parts = [b for b in (lo, hi) if b is not None]
    return ", ".join(parts) if parts else None


def validation_error(
    exc: msgspec.ValidationError, raw: Any, prefix: str = "", typ: Any = None
) -> SettingsError:
    """Turn msgspec's ``Expected ... - at `$.a.b``` into a SettingsError on ``prefix.a.b`` with its value.

    With ``typ`` (the type ``raw`` was converted to), a value outside a numeric field's bounds also
    gets the field's whole allowed range, as the profile's range checks give it.
    """
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
    allowed = None
    if "unknown field" in msg:
        msg = "unknown setting"
    elif "missing required field" in msg:
        msg = "required setting missing"
    elif typ is not None and path and re.match(r"Expected `(float|int)` [<>]=? ", msg):
        allowed = allowed_range(typ, path)
    return SettingsError(full or "<settings>", value, msg, allowed)
