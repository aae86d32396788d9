"""``v2g-edged``: load and check the settings, then run the daemon until SIGTERM or SIGINT.

Signals: SIGTERM / SIGINT stop (ramp down, then the stage's stop command); SIGHUP reloads the
configuration file (a file that does not validate, or changes that need a restart, are refused and
the daemon runs on); SIGUSR1 dumps the recent cycles into the runtime directory.

Exit codes: 0 after a clean stop, 78 (EX_CONFIG) for a configuration that cannot run (the unit file
does not restart on it: a broken file does not mend itself), 77 (EX_NOPERM) when started as root
without ``--allow-root``, 1 for anything else.

The daemon refuses to run as root: on a charger it runs as the user ``v2g-edge`` (the unit file), so
a root start is a mistake that would leave root-owned state behind. A bench or a test harness that
runs as root says so with ``--allow-root``, or with ``V2G_EDGE_ALLOW_ROOT=1`` in the environment
when it starts the daemon through a runner. ``--check`` only reads the configuration and runs as root;
so does ``--migrate-config``, which the unit runs privileged before each start to rewrite an older
configuration file at the current schema, keeping a backup (edge/settings/migrate.py).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import drivers
from edge import __version__
from edge.daemon import logs
from edge.estimation.profile import ProfileError
from edge.link.config import check_files
from edge.settings import Settings, SettingsError, energize_lock, load_default, load_file
from edge.settings.migrate import SCHEMA_VERSION, migrate_file
from edge.settings.overlaps import trip_ride_through_overlaps

log = logging.getLogger("v2g-edged")

EX_CONFIG = 78
EX_NOPERM = 77
ENV_ALLOW_ROOT = "V2G_EDGE_ALLOW_ROOT"


def runtime_dir(explicit: str | None = None) -> Path:
    """Where the status file goes: the option, systemd's RUNTIME_DIRECTORY, or a per-user temp folder."""
    if explicit:
        return Path(explicit)
    from_systemd = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if from_systemd:
        return Path(from_systemd)
    return Path(tempfile.gettempdir()) / f"v2g-edge-{os.getuid()}"


def state_dir(explicit: str | None, settings: Settings) -> Path:
    """Where the audit log and battery state live: the option, systemd's STATE_DIRECTORY, or the setting."""
    if explicit:
        return Path(explicit)
    from_systemd = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(from_systemd or settings.daemon.state_dir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="v2g-edged",
        description="v2g-edge daemon: controls a bidirectional EV charger (IEEE 1547 grid support, V2H export cap).",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="configuration file (default: the embedded bench configuration)"
    )
    parser.add_argument("--runtime-dir", metavar="DIR", help="where to write status.json (default: see docs)")
    parser.add_argument(
        "--state-dir", metavar="DIR", help="where battery state is kept (default: daemon.state_dir)"
    )
    parser.add_argument(
        "--check", action="store_true", help="validate the configuration, say whether it may energize, exit"
    )
    parser.add_argument(
        "--migrate-config",
        action="store_true",
        help="rewrite an older --config FILE at the current schema (backup beside it), exit",
    )
    parser.add_argument(
        "--allow-root",
        action="store_true",
        help=f"run even as root (a bench; the service runs as v2g-edge; also {ENV_ALLOW_ROOT}=1)",
    )
    parser.add_argument(
        "--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="override daemon.log_level"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def root_refusal(euid: int, allow_root: bool) -> str | None:
    """Why the daemon will not start as this user, or None when it may."""
    if euid != 0 or allow_root:
        return None
    return (
        "refusing to run as root: the service runs as the user v2g-edge (systemctl start v2g-edged); "
        f"on a bench, pass --allow-root (or set {ENV_ALLOW_ROOT}=1)"
    )


def migrate(path: str | None) -> int:
    """``--migrate-config``: bring the file to the current schema, or say why it cannot be."""
    logs.setup("INFO")
    if path is None:
        log.error("--migrate-config needs --config FILE")
        return EX_CONFIG
    try:
        backup = migrate_file(Path(path))
    except SettingsError as exc:
        log.error("configuration %s: %s", path, exc)
        return EX_CONFIG
    except OSError as exc:
        log.error("configuration %s: cannot migrate: %s", path, exc.strerror or exc)
        return EX_CONFIG
    if backup is not None:
        print(f"configuration {path}: migrated to schema {SCHEMA_VERSION} (the old file: {backup})")
    return 0


def load(path: str | None) -> Settings:
    return load_file(Path(path)) if path else load_default()


async def _serve(settings: Settings, config: Path | None, run_dir: Path, keep_dir: Path) -> int:
    from edge.daemon.app import Daemon

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    daemon = Daemon(settings, runtime_dir=run_dir, state_dir=keep_dir, config_path=config)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, daemon.request_reload)
    loop.add_signal_handler(signal.SIGUSR1, daemon.request_dump)
    return await daemon.run(stop)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.migrate_config:
        return migrate(args.config)
    if not args.check:
        refusal = root_refusal(os.geteuid(), args.allow_root or os.environ.get(ENV_ALLOW_ROOT) == "1")
        if refusal is not None:
            logs.setup("INFO")
            log.error("%s", refusal)
            return EX_NOPERM
    try:
        settings = load(args.config)
    except SettingsError as exc:
        logs.setup("INFO")
        log.error("configuration %s: %s", args.config or "(embedded)", exc)
        return EX_CONFIG
    logs.setup(args.log_level or settings.daemon.log_level)
    hold = energize_lock(settings)
    try:
        # The link's files (certificates, key, password) are checked before anything runs.
        link_warnings = check_files(settings.mqtt, now_unix_s=time.time())
    except SettingsError as exc:
        log.error("configuration %s: %s", args.config or "(embedded)", exc)
        return EX_CONFIG
    fn = settings.functions
    overlaps = (
        []
        if settings.grid is None
        else trip_ride_through_overlaps(
            settings.grid, fn.voltage_trip, fn.frequency_trip, settings.daemon.actuation_latency_s
        )
    )
    if args.check:
        if hold is None:
            # Settings that load but that the kernels cannot run would hold the charger at start.
            from edge.daemon.controllers import functions_unsupported, kernel_settings_problem

            problems = [p for p in (kernel_settings_problem(settings),) if p is not None]
            problems += functions_unsupported(settings)
            for problem in problems:
                log.error("configuration %s: %s", args.config or "(embedded)", problem)
            if problems:
                return EX_CONFIG
        for warning in link_warnings:
            print(f"warning: mqtt: {warning}")
        for overlap in overlaps:
            print(f"note: {overlap}")
        print(f"configuration {args.config or '(embedded)'}: valid")
        print("energize: allowed" if hold is None else f"energize: held at P = Q = 0: {hold}")
        return 0
    run_dir = runtime_dir(args.runtime_dir)
    log.info(
        "v2g-edged %s starting (config %s, status in %s)", __version__, args.config or "embedded", run_dir
    )
    for overlap in overlaps:
        log.warning("%s", overlap)
    try:
        # Absolute: v2gctl finds the daemon serving a file by this path, whatever its working directory.
        config = Path(args.config).resolve() if args.config else None
        return asyncio.run(_serve(settings, config, run_dir, state_dir(args.state_dir, settings)))
    except drivers.DriverError as exc:
        log.error("cannot start: %s", exc)
        return EX_CONFIG if exc.kind == "config" else 1
    except ProfileError as exc:
        log.error("cannot start: battery profile: %s", exc)
        return EX_CONFIG
    except SettingsError as exc:  # a link file that changed between the check and the start
        log.error("cannot start: %s", exc)
        return EX_CONFIG


if __name__ == "__main__":
    sys.exit(main())
