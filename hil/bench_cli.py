"""``v2g-hil bench [NAME ...]``: run benchmarks and print one ``BENCH`` line per figure."""

from __future__ import annotations

import argparse

from hil import bench


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run (default: all of {bench.available()})"
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer iterations (a smoke run; figures are less precise)"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")


def main(args: argparse.Namespace) -> int:
    if args.list:
        for name in bench.available():
            print(name)
        return 0
    names = args.names or bench.available()
    unknown = [n for n in names if n not in bench.available()]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(bench.available())}")
        return 2
    for name in names:
        for figure in bench.load(name)(args.quick):
            print(figure.line(), flush=True)
    return 0
