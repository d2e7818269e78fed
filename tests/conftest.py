"""Session fixtures: one fresh database per test run, one shared server, tenants on demand."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests import support

ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin-pass-123"


@dataclass
class Tenant:
    account_id: str
    user_id: str
    username: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return support.auth(self.token)


@pytest.fixture(scope="session", autouse=True)
def services() -> None:
    support.ensure_services()


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def database(services: None) -> Iterator[str]:
    name, dsn = support.create_database()
    try:
        yield dsn
    finally:
        support.drop_database(name)


@pytest.fixture(scope="session")
def server_env(database: str) -> dict[str, str]:
    return support.base_env(database, REDIS_PREFIX=support.SESSION_REDIS_PREFIX)


@pytest.fixture(scope="session")
def server(server_env: dict[str, str], log_dir: Path) -> Iterator[support.ServerProcess]:
    with support.running_server(server_env, log_dir, "main") as srv:
        yield srv


@pytest.fixture
def client(server: support.ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=15) as c:
        yield c


@pytest.fixture(scope="session")
def admin_token(server: support.ServerProcess) -> str:
    return support.login(server.url, ADMIN_USER, ADMIN_PASSWORD)


@pytest.fixture(scope="session")
def make_tenant(server: support.ServerProcess, admin_token: str):  # type: ignore[no-untyped-def]
    """Create a fresh account with one admin user through the super-admin API; return its session."""

    def _make(role: str = "admin") -> Tenant:
        suffix = uuid.uuid4().hex[:8]
        headers = support.auth(admin_token)
        account = httpx.post(server.url + "/api/admin/accounts", json={"name": f"Tenant {suffix}"}, headers=headers)
        assert account.status_code == 201, account.text
        account_id = account.json()["account"]["id"]
        username, password = f"user_{suffix}", f"pw-{suffix}-secret"
        user = httpx.post(
            server.url + "/api/admin/users",
            json={"account_id": account_id, "username": username, "email": f"{username}@example.test",
                  "password": password, "display_name": f"User {suffix}", "role": role},
            headers=headers,
        )
        assert user.status_code == 201, user.text
        token = support.login(server.url, username, password)
        return Tenant(account_id, user.json()["user"]["id"], username, password, token)

    return _make


@pytest.fixture
def tenant(make_tenant) -> Tenant:  # type: ignore[no-untyped-def]
    return make_tenant()
