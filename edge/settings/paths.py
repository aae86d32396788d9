"""Dotted setting paths (``grid.volt_var.v1_pu``) into nested builtins trees."""

from __future__ import annotations

import re
from typing import Any

_INDEX = re.compile(r"\[\d+\]")


def lookup(tree: dict[str, Any], path: str) -> Any:
    """The value at a dotted path (list indices such as ``[2]`` skipped); KeyError names the path."""
    node: Any = tree
    for key in _INDEX.sub("", path).split("."):
        if not isinstance(node, dict) or key not in node:
            raise KeyError(path)
        node = node[key]
    return node
