"""``v2gctl config``: check, show, get, set, diff, apply and roll back the daemon's configuration.

The file is ``/etc/v2g-edge/v2g-edge.toml`` unless ``--file`` (or V2G_EDGE_CONFIG) says otherwise.
Everything is judged with the daemon's own model (``edge.settings``), and every problem of a file is
listed at once (``edge.settings.problems``): field, value, allowed range or choices, did-you-mean.
A change is validated before anything is written, audited, written atomically after keeping the
previous file as ``<file>.bak``, and the daemon serving that file is asked to reload (SIGHUP) and
watched for its answer. ``rollback`` puts ``<file>.bak`` back the same way.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
import tomllib
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any

import msgspec

from edge.ctl.common import (
    OK,
    PROBLEM,
    CtlError,
    ask_reload,
    config_file,
    give_to_service,
    os_error,
    print_json,
    read_status,
    running_daemon_for,
    runtime_dir,
)
from edge.fileio import write_atomic
from edge.settings import (
    Settings,
    SettingsError,
    apply_local_change,
    energize_lock,
    get_value,
    grid_profile,
    load_text,
)
from edge.settings.audit import AUDIT_FILE, AuditRecord, append_audit
from edge.settings.edit import set_value
from edge.settings.load import default_config_text
from edge.settings.problems import allowed_values, problems_in_text
from edge.settings.schema import render as render_schema

RELOAD_WAIT_S = 5.0


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CtlError(f"no configuration file {path} (give one with --file)") from None
    except UnicodeDecodeError as exc:
        raise CtlError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise os_error(exc, path, "read") from None


def _source(args: argparse.Namespace) -> tuple[str, str]:
    """The text to work on and its name: the file, or with --embedded the bench configuration."""
    if getattr(args, "embedded", False):
        return default_config_text(), "(embedded bench configuration)"
    path = config_file(args.file)
    return _read(path), str(path)


def _problem_dict(e: SettingsError) -> dict[str, Any]:
    return {"path": e.path, "value": _jsonable(e.value), "reason": e.reason, "allowed": e.allowed}


def _jsonable(value: Any) -> Any:
    return json.loads(msgspec.json.encode(value, enc_hook=str))


def _print_problems(problems: list[SettingsError], source: str) -> None:
    print(f"{source}: {len(problems)} problem{'s' if len(problems) > 1 else ''}")
    for e in problems:
        print(f"  {e}")


def _settings(text: str, source: str) -> Settings:
    problems = problems_in_text(text, source)
    if problems:
        _print_problems(problems, source)
        raise CtlError(f"{source} is not valid: nothing done")
    return load_text(text, source)


def cmd_check(args: argparse.Namespace) -> int:
    text, source = (_read(Path(args.path)), args.path) if args.path else _source(args)
    problems = problems_in_text(text, source)
    hold = None if problems else energize_lock(load_text(text, source))
    if args.json:
        print_json(
            {
                "file": source,
                "valid": not problems,
                "problems": [_problem_dict(e) for e in problems],
                "energize": None if problems else hold is None,
                "hold": hold,
            }
        )
        return PROBLEM if problems else OK
    if problems:
        _print_problems(problems, source)
        return PROBLEM
    print(f"{source}: valid")
    print("energize: allowed" if hold is None else f"energize: {hold}")
    return OK


def cmd_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(render_schema())
    return OK


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, datetime | date | dtime):
        return value.isoformat()
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items() if v is not None) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted path -> value of every leaf (a list of tables is one value)."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else key))
        return out
    return {prefix: tree}


def cmd_show(args: argparse.Namespace) -> int:
    text, source = _source(args)
    if not args.effective:
        sys.stdout.write(text)
        return OK
    settings = _settings(text, source)
    tree = msgspec.to_builtins(settings)
    if args.json:
        print_json(tree)
        return OK
    print(f"# {source}, with the profile's defaults and every default filled in")
    for path, value in _flatten(tree).items():
        if value is not None:
            print(f"{path} = {_toml_value(value)}")
    return OK


def _suggest(path: str, settings: Settings) -> str:
    import difflib

    known = list(_flatten(msgspec.to_builtins(settings)))
    close = difflib.get_close_matches(path, known, n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(close)}?" if close else ""


def cmd_get(args: argparse.Namespace) -> int:
    text, source = _source(args)
    settings = _settings(text, source)
    value = get_value(settings, args.setting)
    flat = _flatten(msgspec.to_builtins(settings))
    if value is None and args.setting not in flat and not any(k.startswith(args.setting + ".") for k in flat):
        raise CtlError(f"{args.setting}: no such setting{_suggest(args.setting, settings)}")
    try:
        in_file = get_value_raw(tomllib.loads(text), args.setting)
    except KeyError:
        in_file = None
    where = "set in the file" if in_file is not None else "default (profile or model)"
    profile = grid_profile(settings)
    spec = profile.specs.get(args.setting) if profile is not None else None
    allowed = (
        _spec_range(spec.min, spec.max, spec.allowed, spec.fixed)
        if spec is not None
        else _allowed_at(args.setting)
    )
    if args.json:
        print_json({"path": args.setting, "value": _jsonable(value), "from": where, "allowed": allowed})
        return OK
    print(
        f"{args.setting} = {_toml_value(value) if value is not None else '(not set)'}   # {where}"
        + (f"; allowed: {allowed}" if allowed else "")
    )
    return OK


def _spec_range(lo: object, hi: object, allowed: list[Any] | None, fixed: bool) -> str | None:
    """A grid setting's range in the commissioned profile (bounds may name other settings)."""
    if fixed:
        return "fixed by the grid profile"
    if allowed:
        return ", ".join(str(a) for a in allowed)
    if lo is None and hi is None:
        return None
    return f"{lo if lo is not None else '-inf'} … {hi if hi is not None else 'inf'} (grid profile)"


def get_value_raw(tree: dict[str, Any], path: str) -> Any:
    node: Any = tree
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            raise KeyError(path)
        node = node[key]
    return node


def _allowed_at(path: str) -> str | None:
    """The allowed values of the field at a dotted path of the model (None for a table or a string)."""
    tp: Any = Settings
    for key in path.split("."):
        tp = _field_type(tp, key)
        if tp is None:
            return None
    return allowed_values(tp)


def _field_type(tp: Any, key: str) -> Any:
    import types
    from typing import Union, get_args, get_origin

    if get_origin(tp) in (Union, types.UnionType):
        members = [a for a in get_args(tp) if a is not type(None)]
        tp = members[0] if len(members) == 1 else None
    if get_origin(tp) is dict:
        return get_args(tp)[1]
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return next((f.type for f in msgspec.structs.fields(tp) if f.encode_name == key), None)
    return None


def _parse_value(text: str) -> Any:
    """A TOML value (``1.05``, ``"daemon"``, ``true``, ``{v1_pu = 0.92}``); a bare word is a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _backup(path: Path, text: str) -> Path:
    bak = path.with_name(path.name + ".bak")
    try:
        write_atomic(bak, text.encode("utf-8"))
    except OSError as exc:
        raise os_error(exc, bak, "write the backup") from None
    return bak


def _reload(path: Path, args: argparse.Namespace) -> None:
    """Have the daemon serving ``path`` take it, and say whether it did."""
    if args.no_reload:
        print("the daemon was not asked to reload (--no-reload): systemctl reload v2g-edged takes it")
        return
    run_dir = runtime_dir(args.runtime_dir)
    pid = running_daemon_for(path, run_dir)
    if pid is None:
        print(f"no running daemon serves {path}: it takes the file when it starts")
        return
    t0 = time.time()
    print(ask_reload(pid))
    deadline = time.monotonic() + RELOAD_WAIT_S
    while time.monotonic() < deadline:
        try:
            events = read_status(run_dir).status.events
        except CtlError:
            events = []
        for e in events:
            if e.t_unix_s >= t0 - 0.5 and e.kind == "config_reloaded":
                print("the daemon runs on the new configuration")
                return
            if e.t_unix_s >= t0 - 0.5 and e.kind == "config_reload_refused":
                print(f"the daemon REFUSED it and runs on the previous one: {e.detail.get('why')}")
                return
        time.sleep(0.2)
    print(f"no answer from the daemon within {RELOAD_WAIT_S:g} s: see journalctl -u v2g-edged")


def cmd_set(args: argparse.Namespace) -> int:
    path = config_file(args.file)
    text = _read(path)
    value = None if args.unset else _parse_value(args.value)
    if value is None and not args.unset:
        raise CtlError("give a value, or --unset")
    try:
        new_text = set_value(text, args.setting, value, str(path))
    except SettingsError as exc:
        raise CtlError(f"refused, nothing written: {exc}") from None
    problems = problems_in_text(new_text, str(path))
    if problems:
        print(
            f"refused, nothing written: {args.setting} = {_toml_value(value) if value is not None else '(unset)'}"
        )
        _print_problems(problems, str(path))
        return PROBLEM
    settings = load_text(new_text, str(path))
    audit = Path(args.audit) if args.audit else Path(settings.daemon.state_dir) / AUDIT_FILE
    bak = _backup(path, text)
    try:
        apply_local_change(path, args.setting, value, who=args.who, audit_path=audit)
    except SettingsError as exc:
        raise CtlError(f"refused, nothing written: {exc}") from None
    except OSError as exc:
        raise os_error(exc, exc.filename or path, "write") from None
    give_to_service(audit)
    shown = _toml_value(value) if value is not None else "(unset: the default)"
    print(
        f"{args.setting} = {shown} written to {path} (previous file kept as {bak}; audited as {args.who} in {audit})"
    )
    _reload(path, args)
    return OK


def _replace(path: Path, new_text: str, what: str, args: argparse.Namespace) -> int:
    """Validate, audit, back up and write a whole file (apply, rollback)."""
    old_text = _read(path) if path.exists() else ""
    settings = _settings(new_text, str(path))
    audit = Path(args.audit) if args.audit else Path(settings.daemon.state_dir) / AUDIT_FILE
    changed = _changes(old_text, new_text)
    try:
        append_audit(
            audit,
            AuditRecord(
                at=datetime.now().astimezone(),
                who=args.who,
                source="local",
                path=what,
                old=None,
                new=sorted(changed),
                protected=any(
                    p.split(".")[0] in ("commissioning", "functions", "site", "inverter")
                    or p.startswith("grid.")
                    for p in changed
                ),
            ),
        )
        give_to_service(audit)
        bak = _backup(path, old_text) if old_text else None
        write_atomic(path, new_text.encode("utf-8"))
    except OSError as exc:
        raise os_error(exc, exc.filename or path, "write") from None
    print(
        f"{path}: {what}: {len(changed)} setting(s) changed"
        + (f" (previous file kept as {bak})" if bak else "")
    )
    for p in sorted(changed):
        print(f"  {p}")
    _reload(path, args)
    return OK


def _changes(old_text: str, new_text: str) -> dict[str, tuple[Any, Any]]:
    old = _flatten(tomllib.loads(old_text)) if old_text else {}
    new = _flatten(tomllib.loads(new_text))
    return {k: (old.get(k), new.get(k)) for k in old.keys() | new.keys() if old.get(k) != new.get(k)}


def cmd_apply(args: argparse.Namespace) -> int:
    return _replace(config_file(args.file), _read(Path(args.new)), f"applied {args.new}", args)


def cmd_rollback(args: argparse.Namespace) -> int:
    path = config_file(args.file)
    bak = path.with_name(path.name + ".bak")
    return _replace(path, _read(bak), f"rolled back to {bak}", args)


def cmd_diff(args: argparse.Namespace) -> int:
    path = config_file(args.file)
    other = Path(args.other) if args.other else path.with_name(path.name + ".bak")
    a, b = _read(other), _read(path)
    for text, src in ((a, str(other)), (b, str(path))):
        problems = problems_in_text(text, src)
        if any(e.path.startswith(src) for e in problems):  # a file that does not parse cannot be compared
            _print_problems(problems, src)
            return PROBLEM
    changes = _changes(a, b)
    if args.json:
        print_json({k: {"from": _jsonable(v[0]), "to": _jsonable(v[1])} for k, v in sorted(changes.items())})
        return OK
    if not changes:
        print(f"{other} and {path}: no difference in settings")
        return OK
    print(f"--- {other}\n+++ {path}")
    for k, (old, new) in sorted(changes.items()):
        print(
            f"  {k}: {_toml_value(old) if old is not None else '(not set)'} -> {_toml_value(new) if new is not None else '(not set)'}"
        )
    return OK


def _file_option(p: argparse.ArgumentParser, embedded: bool = True) -> None:
    p.add_argument("--file", metavar="FILE", help="configuration file (default: /etc/v2g-edge/v2g-edge.toml)")
    if embedded:
        p.add_argument("--embedded", action="store_true", help="the embedded bench configuration instead")


def _change_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--who", default=getpass.getuser(), help="who makes the change (for the audit record)")
    p.add_argument("--audit", metavar="FILE", help="audit log (default: <daemon.state_dir>/audit.jsonl)")
    p.add_argument("--no-reload", action="store_true", help="do not ask the running daemon to reload")
    p.add_argument(
        "--runtime-dir", metavar="DIR", help="the daemon's runtime directory (default: /run/v2g-edge)"
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cfg = sub.add_parser("config", help="check, show, change, compare or roll back the configuration")
    acts = cfg.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    p = acts.add_parser("check", help="list every problem of a configuration and say whether it may energize")
    p.add_argument("path", nargs="?", metavar="FILE", help="file to check (default: the --file one)")
    _file_option(p)
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(fn=cmd_check)
    p = acts.add_parser("show", help="print the file, or (--effective) every setting in force")
    _file_option(p)
    p.add_argument("--effective", action="store_true", help="with the profile's and the model's defaults")
    p.add_argument("--json", action="store_true", help="with --effective: as JSON")
    p.set_defaults(fn=cmd_show)
    p = acts.add_parser("get", help="one setting: its value, where it comes from, what is allowed")
    p.add_argument("setting", help="dotted path, e.g. grid.volt_var.olrt_s")
    _file_option(p)
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(fn=cmd_get)
    p = acts.add_parser("set", help="change one setting (validated, audited, backed up, reloaded)")
    p.add_argument("setting", help="dotted path, e.g. grid.volt_var.olrt_s")
    p.add_argument("value", nargs="?", help='TOML value, e.g. 5.0, "daemon", true')
    p.add_argument("--unset", action="store_true", help="remove the setting (back to its default)")
    _file_option(p, embedded=False)
    _change_options(p)
    p.set_defaults(fn=cmd_set)
    p = acts.add_parser("diff", help="settings that differ between the file and its backup (or OTHER)")
    p.add_argument("other", nargs="?", metavar="OTHER", help="file to compare with (default: <file>.bak)")
    _file_option(p, embedded=False)
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(fn=cmd_diff)
    p = acts.add_parser(
        "apply", help="replace the configuration with a new file (validated, audited, reloaded)"
    )
    p.add_argument("new", metavar="NEW", help="the new configuration file")
    _file_option(p, embedded=False)
    _change_options(p)
    p.set_defaults(fn=cmd_apply)
    p = acts.add_parser("rollback", help="put <file>.bak back (validated, audited, reloaded)")
    _file_option(p, embedded=False)
    _change_options(p)
    p.set_defaults(fn=cmd_rollback)
    p = acts.add_parser("schema", help="print the configuration's JSON Schema")
    p.set_defaults(fn=cmd_schema)
