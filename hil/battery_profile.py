"""``v2g-hil battery-profile``: build a battery profile from a datasheet and, optionally, a replay.

    v2g-hil battery-profile config/batteries/datasheets/lfp-a123-26650.toml \\
        --replay lfp_day.csv.gz --window-s 120:3720 -o config/batteries/lfp-a123-26650.toml

The datasheet file holds the OCV table (or a few OCV points), nominal capacity, voltage and current
limits with their temperature windows, chemistry and pack layout. A replay (``TRACE.csv.gz`` in the
format of the ground-truth sets) contributes its measured columns only: the R0 / RC fit. The written
profile says in its header where each value came from (``edge.estimation.datasheet``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.estimation.datasheet import Replay, build_profile, load_datasheet, render
from edge.estimation.profile import ProfileError
from hil.estimate import load_trace


def _window(text: str) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in text.split(":"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--window-s {text!r}: expected START:END in seconds") from exc
    if not b > a:
        raise argparse.ArgumentTypeError(f"--window-s {text!r}: END must be after START")
    return a, b


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("datasheet", type=Path, help="datasheet TOML (see config/batteries/datasheets)")
    parser.add_argument("--replay", type=Path, default=None, help="characterisation trace (.csv.gz)")
    parser.add_argument("--window-s", type=_window, default=None, help="fit window START:END (s)")
    parser.add_argument("-o", "--output", type=Path, default=None, help="write here (default stdout)")


def main(args: argparse.Namespace) -> int:
    try:
        sheet = load_datasheet(args.datasheet)
        replay = None
        if args.replay is not None:
            trace = load_trace(args.replay)
            replay = Replay(trace.name, trace.t_s, trace.i_a, trace.v_v, trace.temp_c, args.window_s)
        built = build_profile(sheet, str(args.datasheet), replay)
    except (ProfileError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    origin = args.datasheet.name + ("" if args.replay is None else f" and replay {args.replay.name}")
    text = render(built, origin)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0
