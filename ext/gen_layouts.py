"""Write the Cython include files that give each compiled kernel its record layout from the Python side.

Each kernel's layout is declared once, in Python: the index constants of its flat float64 arrays
(``edge.control.protect_types``, ``edge.estimation._ecm_ref``; each module's ``LAYOUT`` lists them) or
the attributes of its typed records (``edge.control.pq_types``), together with the enum values and
numeric constants the compiled kernel needs at compile time. This module renders them as
``ext/<kernel>_layout.pxi``, which ``ext/<kernel>.pyx`` includes; an index kernel's include also
defines ``layout()``, so the compiled module reports the layout it was built with.

``python -m ext.gen_layouts --write`` (from the project root) rewrites the files; ``--check`` exits 1
naming every file that differs from what the Python declarations give (a test runs the same comparison).
Rebuild the kernels afterwards (``./dev.sh ext``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from enum import Enum
from pathlib import Path
from types import ModuleType

from edge.control import pq_types, protect_types
from edge.estimation import _ecm_ref

EXT_DIR = Path(__file__).resolve().parent
COMMAND = "python -m ext.gen_layouts --write"


def _header(source: ModuleType) -> list[str]:
    return [f"# Generated from {source.__name__} by `{COMMAND}`; do not edit.", ""]


def _enum(items: Iterable[tuple[str, int]]) -> list[str]:
    return ["cdef enum:", *(f"    {name} = {int(value)}" for name, value in items), ""]


def _double(name: str, value: float) -> str:
    # repr is the shortest text that reads back as the same double, so both sides hold one value.
    return f"cdef double {name} = {float(value)!r}"


def _members(enum: type[Enum], prefix: str = "") -> list[tuple[str, int]]:
    return [(prefix + member.name, int(member.value)) for member in enum]


def _bits(enum: type[Enum], prefix: str) -> list[str]:
    lines = []
    for member in enum:
        value = int(member.value)
        if value <= 0 or value & (value - 1):
            raise ValueError(f"{enum.__name__}.{member.name} = {value} is not one bit")
        # long long, as the kernel accumulates these masks in a long long
        lines.append(f"cdef long long {prefix}{member.name} = 1 << {value.bit_length() - 1}")
    return [*lines, ""]


def _layout_function(source: ModuleType, layout: dict[str, int]) -> list[str]:
    return [
        "",
        "def layout():",
        f'    """The index constants this module was compiled with; {source.__name__}.LAYOUT is the source."""',
        "    return {",
        *(f'        "{name}": {name},' for name in layout),
        "    }",
    ]


def _protect() -> list[str]:
    pt = protect_types
    return [
        *_header(pt),
        *_enum(pt.LAYOUT.items()),
        # states, band modes and frozen-meter checks as the kernel names them
        *_enum(_members(pt.State) + _members(pt.Mode, "MODE_") + _members(pt.FrozenCheck, "FROZEN_")),
        _double("COUNTER_STALL_STEPS", pt.COUNTER_STALL_STEPS),
        _double("DITHER_CONSISTENCY", pt.DITHER_CONSISTENCY),
        "",
        *_bits(pt.Reason, "R_"),
        *_layout_function(pt, pt.LAYOUT),
    ]


def _ecm() -> list[str]:
    k = _ecm_ref
    return [
        *_header(k),
        *_enum([*k.LAYOUT.items(), ("NEWTON_ITERATIONS", k.NEWTON_ITERATIONS)]),
        _double("NEWTON_TOL_V", k.NEWTON_TOL_V),
        _double("SLOPE_SPAN_MIN", k.SLOPE_SPAN_MIN),
        # _C: the module also exports the Python names (KELVIN, TWO_R_OVER_F) as the reference does
        _double("KELVIN_C", k.KELVIN),
        _double("TWO_R_OVER_F_C", k.TWO_R_OVER_F),
        *_layout_function(k, k.LAYOUT),
    ]


def _c_type(owner: str, name: str, value: object) -> str:
    if isinstance(value, bool):
        raise TypeError(f"{owner}.{name}: a bool default; use 0/1 so the record field is a C int")
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    raise TypeError(f"{owner}.{name}: default {value!r} is neither int nor float")


def _pq() -> list[str]:
    lines = [
        *_header(pq_types),
        "# The typed records of the P/Q kernel: the fields of each edge.control.pq_types record, the C type",
        "# from its default (int or float). Needs cython, _types (edge.control.pq_types) and copy_fields from",
        "# the including module.",
    ]
    for record in (pq_types.PqParams, pq_types.PqInputs, pq_types.PqState, pq_types.PqOutputs):
        name = record.__name__
        defaults = record()
        lines += [
            "",
            "",
            "@cython.final",
            f"cdef class {name}:",
            f'    """Typed copy of edge.control.pq_types.{name} (units and defaults there)."""',
            "",
            *(
                f"    cdef public {_c_type(name, field, getattr(defaults, field))} {field}"
                for field in record.__slots__
            ),
            "",
            "    def __init__(self):",
            f"        copy_fields(_types.{name}(), self, _types.{name}.__slots__)",
        ]
    return lines


# include file name -> its text's lines
FILES: dict[str, Callable[[], list[str]]] = {
    "protect_layout.pxi": _protect,
    "ecm_layout.pxi": _ecm,
    "pq_layout.pxi": _pq,
}


def render(name: str) -> str:
    """The text ``ext/<name>`` must have."""
    return "\n".join(FILES[name]()) + "\n"


def stale(directory: Path = EXT_DIR) -> list[str]:
    """The include files in ``directory`` that are missing or differ from what the declarations give."""
    return [
        name
        for name in FILES
        if not (directory / name).is_file() or (directory / name).read_text(encoding="utf-8") != render(name)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ext.gen_layouts", description=__doc__)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="rewrite the include files")
    action.add_argument("--check", action="store_true", help="exit 1 when an include file is stale")
    parser.add_argument(
        "--dir", type=Path, default=EXT_DIR, help="where the include files are (default: ext/)"
    )
    args = parser.parse_args(argv)
    if args.write:
        for name in FILES:
            (args.dir / name).write_text(render(name), encoding="utf-8")
        return 0
    bad = stale(args.dir)
    for name in bad:
        sys.stderr.write(f"{args.dir / name}: out of date; run {COMMAND}\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
