"""Import in granian's parent, before it forks the workers, the modules every worker imports anyway.

A worker starts by importing the app: ~1.5 s of CPU, ~1.2 s of it third-party packages (redis alone ~0.35 s).
On a machine busy with the load that killed a worker, that start-up is what keeps its replacement from serving
(tests/test_worker_crash.py: a new worker within 5 s). A forked worker inherits what its parent imported.

Only packages that start no thread and no foreign runtime on import are taken: neonize loads a Go runtime and
psqlpy/obstore a tokio runtime at first use, none of which survives fork(), so they (and clarin itself, which
imports them) are left to each worker. ``preload`` checks afterwards that the parent still has a single thread.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

log = logging.getLogger("clarin.preload")

# Third-party top-level packages that are plain Python or C extensions without threads at import.
FORK_SAFE_PACKAGES = frozenset({
    "anyio", "bcrypt", "bs4", "certifi", "charset_normalizer", "click", "cryptography", "dotenv", "google",
    "h11", "hiredis", "httpcore", "httpx", "idna", "jwt", "linkpreview", "magic", "markdown_it", "mdurl",
    "msgspec", "PIL", "phonenumbers", "prometheus_client", "pygments", "python_multipart", "redis", "requests",
    "rich", "segno", "sniffio", "soupsieve", "tqdm", "typing_extensions", "urllib3", "uvloop",
})


def _fork_safe(name: str) -> bool:
    top = name.partition(".")[0]
    return top in FORK_SAFE_PACKAGES or (top in sys.stdlib_module_names and not top.startswith("_"))


def worker_modules() -> list[str]:
    """What importing the app loads that may be loaded before fork, in import order. Run it in a spawned
    process (importing the app loads neonize), and hand the list to :func:`preload` in the parent."""
    import clarin.app  # noqa: F401  (imported for its side effect: sys.modules)

    return [name for name in list(sys.modules) if _fork_safe(name)]


def preload(names: list[str]) -> int:
    """Import ``names`` here; returns how many are loaded. A module that fails to import is left to the worker."""
    loaded = 0
    for name in names:
        if not _fork_safe(name):
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # an optional backend missing, an alias that is not importable by name
            log.debug("preload of %s skipped: %s", name, exc)
            continue
        loaded += 1
    threads = thread_count()
    if threads != 1:
        log.warning("after preloading, the serving parent runs %d threads: a preloaded module started one "
                    "(workers fork from here; see clarin/preload.py)", threads)
    return loaded


def thread_count() -> int:
    """OS threads of this process (Python's own count misses threads started by native code)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()
