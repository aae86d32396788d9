"""``v2g-hil``: the bench's command line (benchmarks, scenario runs, estimator replays, the demo).

Each sub-command lives in its own module with ``add_arguments(parser)`` and ``main(args) -> int``;
they are imported only when chosen, so a benchmark does not pay for the plant's imports.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# sub-command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "bench": ("hil.bench_cli", "run benchmarks and print BENCH lines"),
    "demo": ("hil.demo", "run the simulated plant and the daemon, showing live values"),
    "plant": ("hil.plant_cli", "serve the simulated plant over Modbus until stopped"),
    "run": ("hil.runner", "run scenarios against the real daemon and judge them"),
    "estimate": ("hil.estimate", "replay a battery trace through the estimators"),
    "battery-profile": ("hil.battery_profile", "build a battery profile from a datasheet (and a replay)"),
    "replay": ("hil.replay", "replay a daemon's cycle dump through the controllers"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="v2g-hil", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            # A sub-command whose module is not installed (an optional part) is left out of --help.
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rc: int = args._module.main(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
