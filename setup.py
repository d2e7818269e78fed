"""Build hook for the optional Cython speed-ups (metadata lives in pyproject.toml).

Every ``clarin/_speedups/*.pyx`` is compiled. Set ``CLARIN_NO_CYTHON=1`` to build no
extensions; the package then runs on its pure-Python twins (``*_pure.py``).

Compiled modules are kept in a per-user cache (``$XDG_CACHE_HOME/clarin/speedups``, or
``CLARIN_BUILD_CACHE=<dir>``; ``CLARIN_BUILD_CACHE=off`` disables it), keyed by everything that
shapes the binary: the source, this file, the Cython and Python versions. A fresh clone on a machine
that built the same sources before copies them instead of compiling (about 10 s of ``make run``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import sysconfig
from glob import glob
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OFF_WORDS = {"0", "off", "no", "false"}


def _cache_root() -> Path | None:
    configured = os.environ.get("CLARIN_BUILD_CACHE", "").strip()
    if configured.lower() in OFF_WORDS:
        return None
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "clarin" / "speedups"


def _cache_key(source: str, cython_version: str) -> str:
    digest = hashlib.sha256()
    for part in (Path(source).read_bytes(), Path(__file__).read_bytes(), cython_version.encode(),
                 sys.version.encode(), str(sysconfig.get_config_var("EXT_SUFFIX")).encode()):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:32]


def _cached(ext: Extension) -> Path | None:
    key = getattr(ext, "clarin_cache_key", None)
    root = _cache_root()
    if key is None or root is None:
        return None
    return root / f"{ext.name}-{key}{sysconfig.get_config_var('EXT_SUFFIX')}"


class CachedBuildExt(build_ext):
    """``build_ext`` that copies a module from the cache when it has it, and stores what it compiles."""

    def build_extension(self, ext: Extension) -> None:
        target = Path(self.get_ext_fullpath(ext.name))
        cached = _cached(ext)
        if cached is not None and cached.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(cached, target)
            return
        super().build_extension(ext)
        if cached is None:
            return
        try:  # best effort: a read-only or full cache only costs the next build its compile
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_suffix(f".{os.getpid()}.tmp")
            shutil.copy2(target, partial)
            os.replace(partial, cached)  # atomic: a concurrent build never copies half a module
        except OSError:
            pass


def _ext_modules() -> list[Extension]:
    if os.environ.get("CLARIN_NO_CYTHON", "").strip().lower() in {"1", "true", "yes", "on"}:
        return []
    import Cython  # only needed when we actually compile
    from Cython.Build import cythonize

    extra = [] if sys.platform == "win32" else ["-O3"]
    exts = []
    for src in sorted(glob("clarin/_speedups/*.pyx")):
        ext = Extension(f"clarin._speedups.{os.path.basename(src)[:-4]}", [src], extra_compile_args=extra)
        ext.clarin_cache_key = _cache_key(src, Cython.__version__)  # type: ignore[attr-defined]
        exts.append(ext)
    if all((c := _cached(ext)) is not None and c.is_file() for ext in exts):
        return exts  # every module comes from the cache: nothing to translate to C
    compiled = cythonize(
        exts, compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
        # `make run` prints its own progress line; the per-file lines come back with LOG_LEVEL=DEBUG.
        quiet=os.environ.get("LOG_LEVEL", "").strip().upper() != "DEBUG",
    )
    keys = {ext.name: ext.clarin_cache_key for ext in exts}  # type: ignore[attr-defined]
    for ext in compiled:
        ext.clarin_cache_key = keys[ext.name]  # type: ignore[attr-defined]
    return compiled


setup(ext_modules=_ext_modules(), cmdclass={"build_ext": CachedBuildExt})
