"""Choose between a kernel's compiled (Cython) module and its pure-Python reference.

Every kernel in ext/ has a readable reference beside it. ``V2G_EDGE_PURE_PYTHON=1`` forces the
reference everywhere (for debugging, for platforms without a compiler, and for the agreement
tests). A missing compiled module falls back to the reference with a warning, never silently.
"""

from __future__ import annotations

import importlib
import logging
import os
from types import ModuleType

log = logging.getLogger(__name__)

ENV_PURE = "V2G_EDGE_PURE_PYTHON"


def pure_python_forced() -> bool:
    """True when the environment asks for the pure-Python references."""
    return os.environ.get(ENV_PURE, "").strip().lower() in {"1", "true", "yes", "on"}


def select(compiled: str, reference: ModuleType) -> ModuleType:
    """Return the compiled module named ``compiled``, or ``reference`` when forced or unavailable."""
    if pure_python_forced():
        return reference
    try:
        return importlib.import_module(compiled)
    except ImportError as exc:
        log.warning("compiled kernel %s unavailable (%s); using the pure-Python reference", compiled, exc)
        return reference


def is_compiled(module: ModuleType) -> bool:
    """True when ``module`` is an extension module rather than Python source."""
    path = getattr(module, "__file__", "") or ""
    return path.endswith((".so", ".pyd"))
