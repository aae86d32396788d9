"""Each compiled kernel's record layout comes from its one Python declaration (ext/gen_layouts.py).

The committed include files are what the generator writes now, the compiled modules were built with
them, and every index lies inside its array.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

from edge.control import _pq_c, pq_types, protect_types
from edge.estimation import _ecm_ref
from ext import gen_layouts
from ext.gen_layouts import EXT_DIR, FILES, main, render, stale

# include file -> the kernel source that includes it
INCLUDERS = {"protect_layout.pxi": "protect.pyx", "ecm_layout.pxi": "ecm.pyx", "pq_layout.pxi": "pq.pyx"}
# (compiled module, Python declaration, {index prefix: size constant})
INDEX_KERNELS = [
    pytest.param(
        "edge.control._protect_c",
        protect_types,
        {"P_": "N_PARAMS", "S_": "N_STATE", "I_": "N_INPUTS", "O_": "N_OUTPUTS"},
        id="protect",
    ),
    pytest.param(
        "edge.estimation._ecm_c", _ecm_ref, {"S_": "S_N", "P_": "P_N", "O_": "O_N", "C_": "C_N"}, id="ecm"
    ),
]


def test_committed_include_files_are_what_the_declarations_generate() -> None:
    assert set(FILES) == set(INCLUDERS)
    assert stale() == [], f"regenerate: {gen_layouts.COMMAND}"
    for name in FILES:
        text = (EXT_DIR / name).read_text(encoding="utf-8")
        assert text == render(name)
        assert text.startswith("# Generated from edge.")
        assert f'include "{name}"' in (EXT_DIR / INCLUDERS[name]).read_text(encoding="utf-8")


def test_check_finds_a_stale_or_missing_file(tmp_path: Path) -> None:
    assert main(["--write", "--dir", str(tmp_path)]) == 0
    assert main(["--check", "--dir", str(tmp_path)]) == 0
    protect = tmp_path / "protect_layout.pxi"
    protect.write_text(
        protect.read_text(encoding="utf-8").replace("N_PARAMS = ", "N_PARAMS = 1"), encoding="utf-8"
    )
    (tmp_path / "ecm_layout.pxi").unlink()
    assert stale(tmp_path) == ["protect_layout.pxi", "ecm_layout.pxi"]
    assert main(["--check", "--dir", str(tmp_path)]) == 1


def test_a_new_index_constant_reaches_the_include_file(monkeypatch: pytest.MonkeyPatch) -> None:
    size = protect_types.N_PARAMS
    monkeypatch.setitem(protect_types.LAYOUT, "P_EXTRA", size)
    monkeypatch.setitem(protect_types.LAYOUT, "N_PARAMS", size + 1)
    text = render("protect_layout.pxi")
    assert f"    P_EXTRA = {size}\n" in text
    assert f"    N_PARAMS = {size + 1}\n" in text
    assert '        "P_EXTRA": P_EXTRA,\n' in text


@pytest.mark.parametrize(("compiled", "declaration", "sizes"), INDEX_KERNELS)
def test_compiled_kernel_reports_the_declared_layout(
    compiled: str, declaration: ModuleType, sizes: dict[str, str]
) -> None:
    module = importlib.import_module(compiled)
    assert module.layout() == declaration.LAYOUT
    assert list(module.layout()) == list(declaration.LAYOUT)
    # the derived LAYOUT holds every index constant of the module and nothing else
    for name, value in vars(declaration).items():
        if name.startswith(tuple(sizes)) and isinstance(value, int):
            assert declaration.LAYOUT[name] == value, name
    for prefix, size_name in sizes.items():
        size = declaration.LAYOUT[size_name]
        members = {n: v for n, v in declaration.LAYOUT.items() if n.startswith(prefix) and n != size_name}
        assert members, prefix
        assert all(0 <= v < size for v in members.values()), (prefix, size, members)


def test_compiled_ecm_constants_are_the_reference_values() -> None:
    ecm_c = importlib.import_module("edge.estimation._ecm_c")
    assert ecm_c.KELVIN == _ecm_ref.KELVIN
    assert ecm_c.TWO_R_OVER_F == _ecm_ref.TWO_R_OVER_F  # exact: the include carries the double's repr


@pytest.mark.parametrize("record", ["PqParams", "PqInputs", "PqState", "PqOutputs"])
def test_compiled_pq_record_fields_take_the_declared_types(record: str) -> None:
    declared = getattr(pq_types, record)()
    compiled = getattr(_pq_c, record)()
    for field in getattr(pq_types, record).__slots__:
        setattr(compiled, field, 2.5)
        if isinstance(getattr(declared, field), int):
            assert getattr(compiled, field) == 2, field  # a C int field: the fraction is cut off
        else:
            assert getattr(compiled, field) == 2.5, field
