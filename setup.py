"""Build hook for the optional Cython speed-ups (metadata lives in pyproject.toml).

Every ``clarin/_speedups/*.pyx`` is compiled. Set ``CLARIN_NO_CYTHON=1`` to build no
extensions; the package then runs on its pure-Python twins (``*_pure.py``).
"""

from __future__ import annotations

import os
import sys
from glob import glob

from setuptools import Extension, setup


def _ext_modules() -> list[Extension]:
    if os.environ.get("CLARIN_NO_CYTHON", "").strip().lower() in {"1", "true", "yes", "on"}:
        return []
    from Cython.Build import cythonize  # only needed when we actually compile

    extra = [] if sys.platform == "win32" else ["-O3"]
    exts = [
        Extension(f"clarin._speedups.{os.path.basename(src)[:-4]}", [src], extra_compile_args=extra)
        for src in sorted(glob("clarin/_speedups/*.pyx"))
    ]
    return cythonize(
        exts, compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False}
    )


setup(ext_modules=_ext_modules())
