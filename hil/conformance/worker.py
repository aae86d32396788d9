"""One conformance test in a process of its own, for ``v2g-hil run --suite ieee1547 --jobs N``.

The suite starts ``python -m hil.conformance.worker TEST_ID --owner OWNER [--quick] --folder DIR --
DAEMON_CMD...`` per test: the test is rebuilt from the registry by its id (a judge is a closure, which
does not cross processes), run, and its result pickled into the test's folder for the suite's report.
SIGTERM ends the run the way its own end does (daemon stopped, plant closed) and leaves no result.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import pickle
import signal
import sys
from pathlib import Path

from hil.conformance import suite
from hil.conformance.base import ConformanceTest


async def _run(test: ConformanceTest, folder: Path, daemon_cmd: list[str]) -> suite.TestResult:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await suite.run_test(test, folder, daemon_cmd, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.conformance.worker")
    parser.add_argument("test_id")
    parser.add_argument("--owner", choices=("daemon", "inverter"), required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--folder", required=True)
    parser.add_argument("daemon_cmd", nargs="+", help="after --: the daemon command")
    args = parser.parse_args(argv)
    found = [t for t in suite.registry([args.owner], args.quick) if t.id == args.test_id]
    if not found:
        print(
            f"no test {args.test_id!r} for owner {args.owner} in the "
            f"{'quick' if args.quick else 'full'} registry",
            file=sys.stderr,
        )
        return 2
    folder = Path(args.folder)
    try:
        res = asyncio.run(_run(found[0], folder, args.daemon_cmd))
    except asyncio.CancelledError:
        print("stopped (SIGTERM)", file=sys.stderr)
        return 143
    fields = {f.name: getattr(res, f.name) for f in dataclasses.fields(res) if f.name != "test"}
    tmp = folder / (suite.WORKER_RESULT + ".tmp")
    tmp.write_bytes(pickle.dumps(fields))
    tmp.replace(folder / suite.WORKER_RESULT)  # whole or absent: a killed worker leaves no half result
    return 0


if __name__ == "__main__":
    sys.exit(main())
