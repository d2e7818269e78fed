"""Private PostgreSQL and Redis instances for fault tests: own ports, own data directories.

The shared services (127.0.0.1:5432 / 6379) are never touched: every instance here is started from the
machine's binaries on a free port, stopped and restarted at will by the test, and always torn down (process
stopped, directory removed) when its context manager exits, failed test or not.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support import free_port

PG_BIN = Path(os.environ.get("CLARIN_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_OS_USER = "postgres"  # initdb refuses to run as root
# Instances not torn down yet: a last resort at interpreter exit (fixture teardown normally does it).
_LIVE: set[PrivatePostgres | PrivateRedis] = set()


def missing_binaries() -> str | None:
    """Why the fault tests cannot run here (None: they can)."""
    if not (PG_BIN / "initdb").exists():
        return f"PostgreSQL binaries not found in {PG_BIN} (set CLARIN_TEST_PG_BIN)"
    if shutil.which("redis-server") is None:
        return "redis-server is not on PATH"
    return None


@atexit.register
def _destroy_leftovers() -> None:
    for instance in list(_LIVE):
        instance.destroy()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_port(port: int, up: bool, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _port_open(port) == up:
            return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} still {'closed' if up else 'open'} after {timeout}s")


class PrivatePostgres:
    """``initdb`` + ``pg_ctl`` on a free port, trust auth on 127.0.0.1, data in a temp dir."""

    def __init__(self) -> None:
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="clarin-fault-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        if self._as_postgres:
            pw = pwd.getpwnam(PG_OS_USER)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.dsn = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        _LIVE.add(self)

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [str(a) for a in args]
        if self._as_postgres:
            cmd = ["runuser", "-u", PG_OS_USER, "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n"
                               f"{self.server_log()[-2000:]}")
        return result

    def init(self) -> None:
        self._run(PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "--no-sync",
                  "-E", "UTF8", "--locale=C.UTF-8")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\nmax_connections = 80\nshared_buffers = 32MB\n"
                # Durability settings stay at their defaults (fsync, synchronous_commit): an acknowledged
                # commit must survive an immediate stop exactly as on a real server.
                "logging_collector = off\n"
            )

    def start(self) -> None:
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "30", "start")
        _wait_port(self.port, True, 10)

    def stop(self, mode: str = "fast") -> None:
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "stop")
        _wait_port(self.port, False, 10)

    def restart(self, mode: str = "fast") -> None:
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "-l", self.log, "restart")
        _wait_port(self.port, True, 10)

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def server_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def destroy(self) -> None:
        """Stop (immediate, then SIGKILL as a last resort) and remove the data directory."""
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            try:
                self.stop("immediate")
            except Exception:
                try:
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
                except (OSError, ValueError, IndexError):
                    pass
        shutil.rmtree(self.root, ignore_errors=True)
        _LIVE.discard(self)


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        pg.destroy()


class PrivateRedis:
    """``redis-server`` as a child process on a free port, no persistence; restarts on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.root = Path(tempfile.mkdtemp(prefix="clarin-fault-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        _LIVE.add(self)

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._log = open(self.root / "redis.log", "ab")  # closed in stop()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(self.root)],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=self.root,
        )
        _wait_port(self.port, True, 10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None
        _wait_port(self.port, False, 10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            _LIVE.discard(self)


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    redis = PrivateRedis()
    try:
        redis.start()
        yield redis
    finally:
        redis.destroy()
