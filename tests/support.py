"""Test helpers: real PostgreSQL databases, real server processes, real Redis. No mocks of services."""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_DSN = os.environ.get("CLARIN_TEST_PG", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("CLARIN_TEST_REDIS", "redis://127.0.0.1:6379/0")
# REDIS_PREFIX of the session's shared server (conftest.server_env), so tests can name its keys; every other
# server gets a fresh one (base_env).
SESSION_REDIS_PREFIX = f"clarin-test-{uuid.uuid4().hex[:8]}"


# psqlpy's runtime threads finish closing a pool shortly after ``close()``; a process that finalizes
# meanwhile aborts (SIGABRT, "PyGILState_Release ... must be current"), failing a green test run.
# run_sql is often the last thing a session does (dropping its database): give the driver a moment.
atexit.register(time.sleep, 0.25)


def ensure_services() -> None:
    """Start PostgreSQL/Redis with the machine's commands when they do not answer."""
    if not (_port_open(5432) and _port_open(6379)):
        subprocess.run(["bash", str(ROOT / ".ci" / "services.sh")], check=False)
    assert _port_open(5432), "PostgreSQL is not reachable on 127.0.0.1:5432"
    assert _port_open(6379), "Redis is not reachable on 127.0.0.1:6379"


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dsn_for(name: str) -> str:
    return PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name


def run_sql(dsn: str, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    """Direct database access for assertions, in a fresh event loop."""
    import psqlpy

    async def _run() -> list[dict[str, Any]]:
        pool = psqlpy.ConnectionPool(dsn=dsn, max_db_pool_size=2)
        try:
            conn = await pool.connection()
            try:
                return (await conn.execute(sql, params)).result()
            finally:
                conn.close()
        finally:
            pool.close()

    return asyncio.run(_run())


def create_database() -> tuple[str, str]:
    name = f"clarin_test_{uuid.uuid4().hex[:12]}"
    run_sql(PG_ADMIN_DSN, f"CREATE DATABASE {name}")
    return name, dsn_for(name)


def drop_database(name: str) -> None:
    run_sql(PG_ADMIN_DSN, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def clarin_cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clarin", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@contextmanager
def migrated_database() -> Iterator[str]:
    """A fresh database with every migration applied and no server on it (in-process pool tests: a server's
    take-over scan would otherwise race them for their devices); dropped afterwards."""
    name, dsn = create_database()
    try:
        result = clarin_cli("migrate", env=base_env(dsn))
        assert result.returncode == 0, result.stderr
        yield dsn
    finally:
        drop_database(name)


_DATA_ROOT = tempfile.mkdtemp(prefix="clarin-test-data-")
atexit.register(shutil.rmtree, _DATA_ROOT, True)


def base_env(database_url: str | None, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "PORT"}}
    env.update(
        {
            # Media and other server files go to a temp dir, never into the working tree.
            "CLARIN_DATA_DIR": tempfile.mkdtemp(dir=_DATA_ROOT),
            "REDIS_URL": REDIS_URL,
            "REDIS_PREFIX": f"clarin-test-{uuid.uuid4().hex[:8]}",
            "RATE_LIMIT": "0",
            # Every test client is 127.0.0.1: a per-IP failed-login budget would let one test (or the fuzzer)
            # lock out the logins of all the others. The per-username limit stays on (tests/test_auth_hardening).
            "LOGIN_MAX_FAILURES_IP": "0",
            "ACCESS_LOG": "0",
            "LOG_LEVEL": "WARNING",
            "JWT_SECRET": "test-secret",
            "ADMIN_PASSWORD": "admin-pass-123",
            # Tests never reach WhatsApp: the simulated driver speaks the same neonize event types.
            "WHATSAPP_DRIVER": "simulated",
            # One worker unless a test asks for more: WORKERS defaults to the machine's CPUs (clarin.config), and
            # tests that read one process's state (sockets per account, in-process counters) expect one.
            "WORKERS": "1",
        }
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    env.update(overrides)
    return env


class ServerProcess:
    def __init__(self, env: dict[str, str], port: int, log_path: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/ws"
        self.log_path = log_path
        self._log = open(log_path, "w")  # closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clarin", "serve"], env={**env, "PORT": str(port), "HOST": "127.0.0.1"},
            cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()[-4000:]}")
            try:
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready in {timeout}s:\n{self.log_path.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()

    def logs(self) -> str:
        return self.log_path.read_text()


@contextmanager
def running_server(env: dict[str, str], log_dir: Path, name: str = "server") -> Iterator[ServerProcess]:
    server = ServerProcess(env, free_port(), log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def login(url: str, username: str, password: str) -> str:
    response = httpx.post(url + "/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["token"]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class ServerTenant:
    """An account with one admin user, on a server a test started itself (not the session server)."""

    account_id: str
    token: str
    username: str  # the admin user's (tests that log in again, or look for it in Redis keys)

    @property
    def headers(self) -> dict[str, str]:
        return auth(self.token)


def new_tenant(url: str, admin_password: str, label: str) -> ServerTenant:
    """A fresh account with one admin user, through the super-admin API of the server at ``url``."""
    headers = auth(login(url, "admin", admin_password))
    suffix = uuid.uuid4().hex[:8]
    account = httpx.post(url + "/api/admin/accounts", json={"name": f"{label} {suffix}"}, headers=headers)
    assert account.status_code == 201, account.text
    account_id = account.json()["account"]["id"]
    username, password = f"{label.lower()}_{suffix}", f"pw-{suffix}-secret"
    user = httpx.post(url + "/api/admin/users", json={
        "account_id": account_id, "username": username, "email": f"{username}@example.test", "password": password,
        "role": "admin"}, headers=headers)
    assert user.status_code == 201, user.text
    return ServerTenant(account_id, login(url, username, password), username)
