"""A granian worker stops when the serving process that spawned it is gone.

granian's main process stops its workers when it shuts down. When it dies instead (``kill -9``, an OOM kill) or
shuts down while a worker is still starting (a restart right after start-up: seen in CI, where the second of two
quick servers left a worker behind), the workers run on as orphans of init: still answering on the port, holding
their database sessions, advisory locks and WhatsApp device leases, so a restarted server cannot take those devices.

``clarin serve`` records its pid in ``CLARIN_SERVE_PID`` before granian forks; every worker then checks its parent
once a second and, once it has another one, stops the way granian stops it (SIGTERM: graceful, leases released),
or exits outright if that has not worked within ``FORCE_AFTER_S``. A polled check rather than ``PR_SET_PDEATHSIG``:
that signal follows the parent *thread* that forked, and granian respawns crashed workers from its own threads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

log = logging.getLogger("clarin.worker")

SERVE_PID_ENV = "CLARIN_SERVE_PID"
CHECK_S = 1.0
FORCE_AFTER_S = 15.0


def mark_serving_process() -> None:
    """In ``clarin serve``, before granian starts its workers (they inherit the environment)."""
    os.environ[SERVE_PID_ENV] = str(os.getpid())


def serving_parent() -> int | None:
    """The pid this worker's parent must have; ``None`` outside a ``clarin serve`` worker (in-process apps,
    the serving process itself)."""
    raw = os.environ.get(SERVE_PID_ENV, "")
    if not raw.isdigit() or int(raw) == os.getpid():
        return None
    return int(raw)


async def watch(parent: int, check_s: float = CHECK_S, force_after_s: float = FORCE_AFTER_S) -> None:
    while True:  # polled: no event tells a process its parent died (short of PR_SET_PDEATHSIG, above)
        if os.getppid() != parent:
            break
        await asyncio.sleep(check_s)
    log.error("the serving process %d is gone (parent now %d): this worker stops", parent, os.getppid())
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.sleep(force_after_s)
    log.error("still running %.0f s after SIGTERM without a parent: exiting", force_after_s)
    os._exit(1)


def start() -> asyncio.Task[None] | None:
    parent = serving_parent()
    if parent is None:
        return None
    return asyncio.get_running_loop().create_task(watch(parent), name="parent-watch")
