"""Writing a file so that a reader (or a power cut) never sees half of it: a temporary file beside it,
flushed to the disk, then renamed over it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, durable: bool = True, new_mode: int | None = None) -> None:
    """Replace ``path`` with ``data``; its permissions are kept. ``durable``: fsync before the rename
    (a config or a dispatch); without it (a status rewritten every second) the rename alone keeps
    readers from seeing half a file, and an SD card from one sync per second. ``new_mode``: the mode
    of a file that did not exist (whatever the umask: the service's is 0077), e.g. 0640 for a file
    the operators' group reads; without it a new file is 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        elif new_mode is not None:
            os.chmod(tmp, new_mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
