"""``v2g-hil replay DUMP``: run a daemon's cycle dump (SIGUSR1, ``cycles-*.msgpack``) through the
controllers again and say where the commands differ from the recorded ones.

With ``--config FILE`` the same snapshots go through other settings: "what would the charger have
done with a larger margin?". Replay starts the kernels afresh at the dump's first cycle, so filters
and timers running before it take a few seconds to agree (see ``edge.daemon.recorder``).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from edge.daemon.recorder import read_dump, replay
from edge.settings import SettingsError, load_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dump", type=Path, help="a cycle dump written by v2g-edged (cycles-*.msgpack)")
    parser.add_argument("--config", type=Path, help="replay with these settings instead of the dump's")
    parser.add_argument("--tolerance-w", type=float, default=1.0, help="P/Q difference counted as a change")


def main(args: argparse.Namespace) -> int:
    try:
        dump = read_dump(args.dump)
        settings = load_file(args.config) if args.config else dump.settings
    except (OSError, ValueError, SettingsError) as exc:
        print(f"cannot replay: {exc}")
        return 2
    pairs = dump.pairs
    if not pairs:
        print(f"{args.dump}: no cycles")
        return 2
    commands = replay(settings, [p.snapshot for p in pairs])
    t0 = pairs[0].snapshot.t_s
    span = pairs[-1].snapshot.t_s - t0
    print(f"{args.dump}: {len(pairs)} cycles over {span:.1f} s")
    print(
        "recorded states: "
        + ", ".join(f"{s} {n}" for s, n in Counter(p.command.state for p in pairs).items())
    )
    differ = 0
    for pair, cmd in zip(pairs, commands, strict=True):
        rec = pair.command
        if (
            abs(rec.p_w - cmd.p_w) > args.tolerance_w
            or abs(rec.q_var - cmd.q_var) > args.tolerance_w
            or (rec.state, rec.service) != (cmd.state, cmd.service)
        ):
            if differ < 20:
                print(
                    f"  t+{pair.snapshot.t_s - t0:7.2f} s  recorded {rec.state} P {rec.p_w:8.0f} W Q {rec.q_var:6.0f} var"
                    f"  replayed {cmd.state} P {cmd.p_w:8.0f} W Q {cmd.q_var:6.0f} var ({', '.join(cmd.binding)})"
                )
            differ += 1
    print(f"{differ} of {len(pairs)} cycles differ" + (" (first 20 shown)" if differ > 20 else ""))
    return 0 if differ == 0 else 1
