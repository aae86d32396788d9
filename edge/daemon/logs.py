"""Logging for the daemon: to the systemd journal with structured fields when systemd connected us
to it, to stderr otherwise (systemd also sends stderr to the journal, but without fields).

journald drops messages silently when it is not running, so the journal handler is used only when
``JOURNAL_STREAM`` says that our stderr is the journal, i.e. journald is there.
"""

from __future__ import annotations

import logging
import os
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _journal_handler() -> logging.Handler | None:
    if not os.environ.get("JOURNAL_STREAM"):
        return None
    try:
        from systemd.journal import JournalHandler
    except ImportError:
        return None
    handler: logging.Handler = JournalHandler(SYSLOG_IDENTIFIER="v2g-edged")
    return handler


def setup(level: str = "INFO") -> logging.Handler:
    """Configure the root logger once; returns the handler in use."""
    handler = _journal_handler()
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # pymodbus logs every retry and framing hiccup at its own levels; our drivers log once per state change.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    return handler
