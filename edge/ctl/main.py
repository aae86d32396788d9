"""``v2gctl``: the technician's command line on the device.

One module per command group, each with a ``register(subparsers)``; a new group is a new module and
one line in ``GROUPS``. Human-readable output by default, ``--json`` for scripts; the exit codes are
in ``edge.ctl.common`` and docs/ctl.md. A failure is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from edge import __version__
from edge.ctl import completion, config, diagnostics, dispatch, history, plan, probe, profiles, scan, status
from edge.ctl.common import PROBLEM, CtlError

GROUPS = (status, config, history, profiles, dispatch, plan, diagnostics, scan, probe, completion)

EXIT_CODES = """exit codes: 0 all well; 1 a problem (invalid input or configuration, or for status: a device,
the aggregator link or the output failing); 2 wrong usage; 3 no daemon running; 4 permission denied"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="v2gctl",
        description="v2g-edge technician command line (docs/ctl.md)",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rc: int = args.fn(args)
    except CtlError as exc:
        sys.stdout.flush()
        print(f"v2gctl: {exc}", file=sys.stderr)
        return exc.code
    except BrokenPipeError:
        # `v2gctl events | head`: the reader left; say nothing more (stdout is gone with it).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return PROBLEM
    except KeyboardInterrupt:
        return 130
    return rc


if __name__ == "__main__":
    sys.exit(main())
