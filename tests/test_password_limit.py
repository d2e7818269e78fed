"""Issue 12 item 13: bcrypt reads only 72 bytes of a password. Longer passwords are refused on every path
that sets one (400 / start-up error / CLI exit code 2) and are plain invalid credentials at login (401).

Real server processes, real PostgreSQL and Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import support
from tests.conftest import Tenant


def _me(url: str, token: str) -> httpx.Response:
    return httpx.get(url + "/api/me", headers=support.auth(token), timeout=15)


LONG = "p" * 73
MULTIBYTE_LONG = "ñ" * 37  # 37 characters, 74 bytes: the limit is in UTF-8 bytes
EXACT = "k" * 72


def test_passwords_over_72_bytes_are_refused_where_they_are_set(
    server: support.ServerProcess, tenant: Tenant, admin_token: str
) -> None:
    admin = support.auth(admin_token)
    suffix = uuid.uuid4().hex[:8]
    for password in (LONG, MULTIBYTE_LONG):
        created = httpx.post(server.url + "/api/admin/users", headers=admin, timeout=15, json={
            "account_id": tenant.account_id, "username": f"long_{suffix}", "email": f"long_{suffix}@example.test",
            "password": password})
        assert created.status_code == 400 and created.json() == {
            "success": False, "error": "Password must be at most 72 bytes"}, created.text
        reset = httpx.patch(f"{server.url}/api/admin/users/{tenant.user_id}/password", json={"password": password},
                            headers=admin, timeout=15)
        assert reset.status_code == 400 and reset.json()["error"] == "Password must be at most 72 bytes"
        own = httpx.put(server.url + "/api/settings/password", headers=tenant.headers, timeout=15,
                        json={"currentPassword": tenant.password, "newPassword": password})
        assert own.status_code == 400 and own.json() == {
            "success": False, "error": "La contraseña no puede tener más de 72 bytes"}
    assert _me(server.url, tenant.token).status_code == 200  # nothing was changed or revoked
    assert support.login(server.url, tenant.username, tenant.password)


def test_login_with_more_than_72_bytes_is_plain_invalid_credentials(
    server: support.ServerProcess, tenant: Tenant, admin_token: str
) -> None:
    set_exact = httpx.patch(f"{server.url}/api/admin/users/{tenant.user_id}/password", json={"password": EXACT},
                            headers=support.auth(admin_token), timeout=15)
    assert set_exact.status_code == 200
    assert support.login(server.url, tenant.username, EXACT)
    # bcrypt would have compared only the first 72 bytes: these used to log in.
    for attempt in (EXACT + "x", EXACT + "anything at all", EXACT + "ñ" * 100):
        response = httpx.post(server.url + "/api/auth/login", json={"username": tenant.username, "password": attempt},
                              timeout=15)
        assert response.status_code == 401 and response.json() == {"success": False, "error": "invalid credentials"}
    unknown = httpx.post(server.url + "/api/auth/login", json={"username": "nobody-" + uuid.uuid4().hex,
                                                                "password": LONG * 10}, timeout=15)
    assert unknown.status_code == 401


@pytest.fixture
def scratch_database() -> Iterator[str]:
    """Seeding other admins must not add accounts to the session database other tests look at."""
    name, dsn = support.create_database()
    try:
        yield dsn
    finally:
        support.drop_database(name)


def test_seeded_and_cli_admin_passwords_over_72_bytes_are_refused(scratch_database: str, log_dir: Path) -> None:
    database = scratch_database
    env = support.base_env(database, ADMIN_PASSWORD=LONG, ADMIN_USER="seed-" + uuid.uuid4().hex[:6])
    served = support.clarin_cli("serve", env={**env, "PORT": str(support.free_port())}, timeout=60)
    assert served.returncode == 2, served.stdout + served.stderr
    assert "clarin: configuration error: ADMIN_PASSWORD must be at most 72 bytes (UTF-8)" in served.stderr
    created = support.clarin_cli("create-admin", "--username", "cli-" + uuid.uuid4().hex[:6], "--email",
                                 f"cli-{uuid.uuid4().hex[:6]}@example.test", "--password", MULTIBYTE_LONG,
                                 env=support.base_env(database), timeout=60)
    assert created.returncode == 2, created.stdout + created.stderr
    assert "the password must be at most 72 bytes" in created.stderr
    ok_env = support.base_env(database, ADMIN_PASSWORD=EXACT, ADMIN_USER="seed-" + uuid.uuid4().hex[:6],
                              ADMIN_EMAIL=f"seed-{uuid.uuid4().hex[:6]}@example.test")
    with support.running_server(ok_env, log_dir, "seed-72") as server:
        assert support.login(server.url, ok_env["ADMIN_USER"], EXACT)
