"""One conformance test in a process of its own, for ``v2g-hil run --suite ieee1547 --jobs N``.

The suite starts ``python -m hil.conformance.worker TEST_ID --owner OWNER [--quick] --fingerprint F
--folder DIR -- DAEMON_CMD...`` per test: the test is rebuilt from the registry by its id (a judge is a
closure, which does not cross processes), checked against the suite's (a tree edited during a long run
would run another test), run, and its result pickled into the test's folder for the suite's report.
SIGTERM, or the suite's end (this process's stdin closes), ends the run the way its own end does
(daemon stopped, plant closed) and leaves no result.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import pickle
import signal
import stat
import sys
from pathlib import Path

from hil.conformance import suite
from hil.conformance.base import ConformanceTest


async def _run(test: ConformanceTest, folder: Path, daemon_cmd: list[str]) -> suite.TestResult:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()

    loop.add_signal_handler(signal.SIGTERM, lambda: task.cancelling() or task.cancel())

    def suite_gone() -> None:  # the suite never writes: EOF means it died (SIGKILL, OOM)
        if not os.read(0, 4096):
            loop.remove_reader(0)
            print("the suite's process is gone: stopping", file=sys.stderr)
            if not task.cancelling():  # a second cancel would cut the run's own cleanup short
                task.cancel()

    if stat.S_ISFIFO(os.fstat(0).st_mode):  # the suite's pipe; run by hand, stdin is not watched
        loop.add_reader(0, suite_gone)
    return await suite.run_test(test, folder, daemon_cmd, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.conformance.worker")
    parser.add_argument("test_id")
    parser.add_argument("--owner", choices=("daemon", "inverter"), required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--fingerprint", required=True, help="suite.fingerprint() of the suite's test")
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
    if suite.fingerprint(found[0], suite.code_digest()) != args.fingerprint:
        print(
            f"test {args.test_id!r} is not the one the suite started with: the tree at "
            f"{suite.CODE_ROOT} changed during the run, or is not the suite's",
            file=sys.stderr,
        )
        return 2
    folder = Path(args.folder)
    try:
        res = asyncio.run(_run(found[0], folder, args.daemon_cmd))
    except asyncio.CancelledError:
        print("stopped", file=sys.stderr)
        return 143
    fields = {f.name: getattr(res, f.name) for f in dataclasses.fields(res) if f.name != "test"}
    tmp = folder / (suite.WORKER_RESULT + ".tmp")
    tmp.write_bytes(pickle.dumps(fields))
    tmp.replace(folder / suite.WORKER_RESULT)  # whole or absent: a killed worker leaves no half result
    return 0


if __name__ == "__main__":
    sys.exit(main())
