"""A worker whose serving process died stops (clarin.http.parent_watch): kill -9 the `clarin serve` process of a
two-worker server and both workers let go of the port, their database sessions and their locks within seconds,
instead of serving on as orphans (real server, PostgreSQL, Redis)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from clarin.http.parent_watch import SERVE_PID_ENV, serving_parent
from tests import support
from tests.leads_support import descendants

STOP_WITHIN_S = 30.0  # a check a second, then granian's graceful stop of the worker


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # an exited child of init that is not reaped yet counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_workers_stop_when_the_serving_process_is_killed(database: str, log_dir: Path) -> None:
    env = support.base_env(database, WORKERS="2")
    with support.running_server(env, log_dir, "parent-watch") as server:
        main = server.proc.pid
        deadline = time.monotonic() + 30
        while len(workers := [p for p in descendants(main) if p != main]) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(workers) >= 2, workers
        os.kill(main, signal.SIGKILL)
        server.proc.wait(10)
        deadline = time.monotonic() + STOP_WITHIN_S
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [pid for pid in workers if _alive(pid)]
        for pid in left:  # never leave an orphan behind, even when the test fails
            os.kill(pid, signal.SIGKILL)
        assert left == [], f"workers still running {STOP_WITHIN_S} s after their parent died: {left}"
        try:
            httpx.get(server.url + "/health", timeout=2)
            answered = True
        except httpx.HTTPError:
            answered = False
        assert not answered, "the port still answers after the serving process and its workers are gone"
    assert "this worker stops" in server.logs()


def test_only_a_clarin_serve_worker_watches_its_parent(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv(SERVE_PID_ENV, raising=False)
    assert serving_parent() is None  # in-process apps (tests, tools)
    monkeypatch.setenv(SERVE_PID_ENV, str(os.getpid()))
    assert serving_parent() is None  # the serving process itself
    monkeypatch.setenv(SERVE_PID_ENV, str(os.getppid()))
    assert serving_parent() == os.getppid()
