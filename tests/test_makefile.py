"""The Makefile's install steps: `make run` installs the runtime only; `make test` adds the test extras on
top; `make run` after `make test` installs nothing; `make distclean` deletes data only when told to.

Checked with `make -n` (prints the commands, runs none) on a scratch copy whose stamps the test sets, so
nothing is installed: the real install is measured in README ("First run")."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.support import ROOT

INSTALL_MARKERS = ("pip install", "-m pip", "setup.py")


def _make(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The caller's CLARIN_DATA_DIR must never reach `make clean/distclean` here: it names real data.
    # No terminal on stdin: distclean must not wait for an answer.
    env = {k: v for k, v in os.environ.items() if k not in ("LOG_LEVEL", "CLARIN_DATA_DIR", "MAKEFLAGS")}
    return subprocess.run(["make", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60)


def _scratch(tmp_path: Path) -> Path:
    """The files the Makefile's rules depend on, plus a stand-in venv interpreter (never run by -n)."""
    for name in ("Makefile", "pyproject.toml", "setup.py", "clarin/__init__.py", "clarin/db/__init__.py",
                 "clarin/db/embedded.py", *(str(p.relative_to(ROOT)) for p in ROOT.glob("clarin/_speedups/*.pyx"))):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\nexit 1\n")
    python.chmod(0o755)
    return tmp_path


def _touch(path: Path) -> None:
    path.touch()
    later = time.time() + 5  # newer than every source, whatever the file system's time resolution
    os.utime(path, (later, later))


def test_fresh_make_run_installs_the_runtime_only(tmp_path: Path) -> None:
    out = _make(ROOT, "-n", "-B", "run")  # -B: as on a fresh clone, whatever this checkout's stamps say
    assert out.returncode == 0, out.stderr
    assert "CLARIN_NO_CYTHON=1" in out.stdout and "-e ." in out.stdout and "build_ext" in out.stdout
    for extra in ("requirements-test", "requirements-bench", "[test", "[bench", "pytest"):
        assert extra not in out.stdout, f"`make run` would install {extra}:\n{out.stdout}"


def test_stamps_add_extras_once_and_run_after_test_installs_nothing(tmp_path: Path) -> None:
    work = _scratch(tmp_path)
    _touch(work / ".venv" / ".installed-run")
    test = _make(work, "-n", "test")
    assert test.returncode == 0, test.stderr
    assert "requirements-test" in test.stdout  # the test extras come on top of the runtime
    assert "-e ." not in test.stdout and "build_ext" not in test.stdout  # the runtime is not re-installed

    _touch(work / ".venv" / ".installed-test")
    run = _make(work, "-n", "run")
    assert run.returncode == 0, run.stderr
    assert not any(m in run.stdout for m in INSTALL_MARKERS), run.stdout
    assert "clarin serve" in run.stdout
    again = _make(work, "-n", "test")
    assert not any(m in again.stdout for m in INSTALL_MARKERS), again.stdout

    # A changed project definition re-installs the runtime, then the extras.
    time.sleep(0.01)
    os.utime(work / "pyproject.toml", (time.time() + 10, time.time() + 10))
    changed = _make(work, "-n", "test")
    assert "-e ." in changed.stdout and "requirements-test" in changed.stdout


def test_clean_keeps_the_data_and_distclean_deletes_it_only_when_confirmed(tmp_path: Path) -> None:
    work = _scratch(tmp_path)
    data = work / ".clarin-data"
    (data / "media").mkdir(parents=True)
    clean = _make(work, "clean")
    assert clean.returncode == 0, clean.stderr
    assert "kept .clarin-data" in clean.stdout and "make distclean" in clean.stdout
    assert data.is_dir() and not (work / ".venv").exists()

    refused = _make(work, "distclean")
    assert refused.returncode != 0 and data.is_dir(), refused.stdout + refused.stderr
    assert "CONFIRM=yes" in refused.stdout

    confirmed = _make(work, "distclean", "CONFIRM=yes")
    assert confirmed.returncode == 0, confirmed.stderr
    assert not data.exists() and "deleted .clarin-data" in confirmed.stdout
