"""Fail unless every Cython kernel listed in setup.py imports as a compiled module.

The selectors fall back to the pure-Python reference with only a warning when a compiled module is
missing (edge/accel.py); a build must not, so ``./dev.sh ext`` and the Debian package build run this.
Usage: python deploy/check-kernels.py [SETUP_PY]
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

from edge.accel import is_compiled


def kernel_modules(setup_py: Path) -> list[str]:
    """The module names of the ``KERNELS`` table in setup.py (read, not executed)."""
    for node in ast.parse(setup_py.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "KERNELS" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise SystemExit(f"{setup_py}: no KERNELS table")


def main() -> int:
    setup_py = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[1] / "setup.py"
    bad = []
    for name in kernel_modules(setup_py):
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            bad.append(f"{name}: {exc}")
            continue
        if not is_compiled(module):
            bad.append(f"{name}: not compiled ({module.__file__})")
    for line in bad:
        sys.stderr.write(f"kernels: {line}\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
