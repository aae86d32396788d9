"""Build the Cython kernels in ext/ into the packages that use them.

Each kernel's compiled module sits beside its pure-Python reference; the selector module of that
package picks one (see edge/accel.py).
"""

from Cython.Build import cythonize
from setuptools import Extension, find_namespace_packages, setup

# Fused multiply-add would move threshold crossings between x86-64 and arm64.
CFLAGS = ["-O2", "-ffp-contract=off", "-fno-fast-math"]

# module name -> source in ext/
KERNELS = {
    "edge.control._lag_c": "ext/lag.pyx",
    "edge.estimation._ecm_c": "ext/ecm.pyx",
    "edge.control._protect_c": "ext/protect.pyx",
    "edge.control._pq_c": "ext/pq.pyx",
}

setup(
    # Namespace discovery lists the data-only folders too (edge._config*, drivers.sunspec.models), so
    # their package data is installed as declared rather than with a warning per folder.
    packages=find_namespace_packages(include=["edge*", "drivers*", "hil*"], exclude=["*.__pycache__"]),
    ext_modules=cythonize(
        [Extension(name, [src], extra_compile_args=CFLAGS) for name, src in KERNELS.items()],
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
)
