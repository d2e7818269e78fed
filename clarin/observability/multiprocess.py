"""The ``PROMETHEUS_MULTIPROC_DIR`` set-up done by ``clarin serve`` before granian forks its workers.

Kept apart from ``metrics``: prometheus_client decides at import time whether it writes to that
directory, so the serving parent must set the variable before anything imports prometheus_client
(and never needs to import it itself).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir() -> tuple[str, bool]:
    """Point ``PROMETHEUS_MULTIPROC_DIR`` at a directory with no samples of an earlier run.

    A configured directory is created if needed and emptied of ``*.db`` files; otherwise a fresh temp
    directory is made. Returns (path, created_here); the caller removes a directory it created."""
    configured = os.environ.get(MULTIPROC_ENV, "").strip()
    if configured:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            with contextlib.suppress(OSError):
                stale.unlink()
        path, created = str(directory), False
    else:
        path, created = tempfile.mkdtemp(prefix="clarin-metrics-"), True
    os.environ[MULTIPROC_ENV] = path
    return path, created


def remove_multiprocess_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
