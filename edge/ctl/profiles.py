"""``v2gctl profiles``: the grid-code profiles shipped, and what one sets (``profiles NAME``): each
grid setting's default and allowed range for the chosen categories, and where the configuration
differs from it."""

from __future__ import annotations

import argparse
import tomllib

from edge.ctl.common import OK, CtlError, config_file, print_json
from edge.settings import SettingsError, available_profiles, load_profile
from edge.settings.paths import lookup


def cmd_profiles(args: argparse.Namespace) -> int:
    if args.name is None:
        rows: list[dict[str, object]] = []
        for name in available_profiles():
            p = load_profile(name)
            rows.append(
                {
                    "id": name,
                    "title": p.title,
                    "f_nominal_hz": p.f_nominal_hz,
                    "normal_categories": p.normal_categories,
                    "abnormal_categories": p.abnormal_categories,
                }
            )
        if args.json:
            print_json(rows)
            return OK
        for r in rows:
            p = load_profile(r["id"])
            cats = "/".join(",".join(c) for c in (p.normal_categories, p.abnormal_categories) if c)
            print(f"{r['id']}: {r['title']} ({r['f_nominal_hz']} Hz{'; categories ' + cats if cats else ''})")
        return OK
    try:
        profile = load_profile(args.name).resolve(args.normal, args.abnormal)
    except SettingsError as exc:
        raise CtlError(f"{exc} (profiles: {', '.join(available_profiles())})") from None
    overrides: dict[str, object] = {}
    path = config_file(args.file)
    if path.exists():
        try:
            overrides = tomllib.loads(path.read_text(encoding="utf-8")).get("grid", {})
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            overrides = {}  # the profile is shown all the same; config check says what is wrong
    rows = []
    for key, spec in sorted(profile.specs.items()):
        try:
            mine = lookup({"grid": overrides}, key)
        except KeyError:
            mine = None
        rows.append(
            {
                "path": key,
                "default": spec.default,
                "min": spec.min,
                "max": spec.max,
                "allowed": spec.allowed,
                "fixed": spec.fixed,
                "configured": mine,
            }
        )
    if args.json:
        print_json({"profile": profile.label, "title": profile.title, "settings": rows})
        return OK
    print(f"{profile.label}: {profile.title}")
    for r in rows:
        rng = (
            "fixed"
            if r["fixed"]
            else f"allowed {r['allowed']}"
            if r["allowed"]
            else f"{r['min']} … {r['max']}"
            if r["min"] is not None or r["max"] is not None
            else ""
        )
        mine = f"   (this site: {r['configured']})" if r["configured"] is not None else ""
        print(f"  {r['path']} = {r['default']}   {rng}{mine}")
    return OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("profiles", help="list the grid-code profiles, or show what one sets")
    p.add_argument("name", nargs="?", help="a profile to show (its defaults and ranges)")
    p.add_argument("--normal", metavar="CAT", help="normal-performance category (A, B)")
    p.add_argument("--abnormal", metavar="CAT", help="abnormal-performance category (I, II, III)")
    p.add_argument("--file", metavar="FILE", help="configuration whose overrides to show alongside")
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(fn=cmd_profiles)
