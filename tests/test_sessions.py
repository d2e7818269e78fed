"""Issue 12 items 3 and 6: privilege claims checked against the database, per-session revocation, the
session table's clean-up.

Real server, real PostgreSQL and Redis (the session server of tests/conftest.py, AUTH_CACHE_TTL 2 s)."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import jwt
import pytest

from clarin.auth import revocation
from clarin.auth.revocation import TokenGuard
from clarin.cache.redis_client import RedisHandle
from clarin.db.pool import Database
from tests import support
from tests.conftest import Tenant

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

JWT_SECRET = "test-secret"  # support.base_env
INVALID = {"success": False, "error": "Invalid token"}
TTL_MARGIN = 8.0  # AUTH_CACHE_TTL is 2 s on the session server; generous for a loaded CI machine


def _me(url: str, token: str) -> httpx.Response:
    return httpx.get(url + "/api/me", headers=support.auth(token), timeout=15)


def _signed(tenant: Tenant, **claims: object) -> str:
    """A token signed with the server's secret, in the tenant's real session, with some claims changed."""
    base = jwt.decode(tenant.token, JWT_SECRET, algorithms=["HS256"])
    return jwt.encode({**base, **claims}, JWT_SECRET, algorithm="HS256")


def _until_refused(url: str, token: str, path: str = "/api/me") -> float:
    start = time.monotonic()
    while True:
        response = httpx.get(url + path, headers=support.auth(token), timeout=15)
        if response.status_code == 401:
            assert response.json() == INVALID
            return time.monotonic() - start
        assert time.monotonic() - start < TTL_MARGIN, f"still {response.status_code} on {path}"
        time.sleep(0.1)


def _sessions(dsn: str, user_id: str) -> list[dict[str, object]]:
    return support.run_sql(dsn, "SELECT id::text AS id, revoked_at IS NOT NULL AS revoked, expires_at < now() "
                                "AS expired FROM user_sessions WHERE user_id = $1 ORDER BY created_at",
                           [uuid.UUID(user_id)])


# -- item 3: privilege claims are checked against the database -------------------------------------------
def test_a_super_admin_claim_the_database_does_not_back_is_refused(
    server: support.ServerProcess, tenant: Tenant
) -> None:
    # Signed with the right secret (a leaked or old secret, or yesterday's truth): the claim alone is not enough.
    forged = _signed(tenant, is_super_admin=True)
    response = httpx.get(server.url + "/api/admin/accounts", headers=support.auth(forged), timeout=15)
    assert response.status_code == 401 and response.json() == INVALID


def test_a_token_for_an_account_the_user_does_not_belong_to_is_refused(
    server: support.ServerProcess, make_tenant  # type: ignore[no-untyped-def]
) -> None:
    mine, theirs = make_tenant(), make_tenant()
    forged = _signed(mine, account_id=theirs.account_id)
    for path in ("/api/me", "/api/leads", "/api/contacts"):
        response = httpx.get(server.url + path, headers=support.auth(forged), timeout=15)
        assert response.status_code == 401 and response.json() == INVALID, path


def test_super_admin_and_membership_lost_in_the_database_end_the_token(
    server: support.ServerProcess, database: str, make_tenant, admin_token: str  # type: ignore[no-untyped-def]
) -> None:
    promoted, other = make_tenant(), make_tenant()
    support.run_sql(database, "UPDATE users SET is_super_admin = TRUE WHERE id = $1", [uuid.UUID(promoted.user_id)])
    token = support.login(server.url, promoted.username, promoted.password)
    assert jwt.decode(token, JWT_SECRET, algorithms=["HS256"])["is_super_admin"] is True
    assert httpx.get(server.url + "/api/admin/accounts", headers=support.auth(token), timeout=15).status_code == 200
    # Yesterday's truth is not today's: demoted directly in the database (no API call, no invalidation).
    support.run_sql(database, "UPDATE users SET is_super_admin = FALSE WHERE id = $1", [uuid.UUID(promoted.user_id)])
    print(f"\nsuper-admin claim refused {_until_refused(server.url, token, '/api/admin/accounts'):.2f}s after "
          "the database change")

    linked = httpx.post(f"{server.url}/api/admin/users/{other.user_id}/accounts", timeout=15,
                        json={"account_id": promoted.account_id, "role": "agent"}, headers=support.auth(admin_token))
    assert linked.status_code == 200
    switched = httpx.post(server.url + "/api/auth/switch-account", json={"account_id": promoted.account_id},
                          headers=other.headers, timeout=15)
    assert switched.status_code == 200
    in_foreign = switched.json()["token"]
    assert _me(server.url, in_foreign).status_code == 200
    support.run_sql(database, "DELETE FROM user_accounts WHERE user_id = $1 AND account_id = $2",
                    [uuid.UUID(other.user_id), uuid.UUID(promoted.account_id)])
    print(f"membership refused {_until_refused(server.url, in_foreign):.2f}s after the database change")
    assert _me(server.url, other.token).status_code == 200  # the home membership is untouched


# -- item 6: sessions ------------------------------------------------------------------------------------
def test_login_creates_a_session_and_switch_account_keeps_it(
    server: support.ServerProcess, database: str, make_tenant, admin_token: str  # type: ignore[no-untyped-def]
) -> None:
    home, other = make_tenant(), make_tenant()
    rows = _sessions(database, home.user_id)
    assert [r["id"] for r in rows] == [jwt.decode(home.token, JWT_SECRET, algorithms=["HS256"])["sid"]]
    assert httpx.post(f"{server.url}/api/admin/users/{home.user_id}/accounts", headers=support.auth(admin_token),
                      json={"account_id": other.account_id, "role": "agent"}, timeout=15).status_code == 200
    switched = httpx.post(server.url + "/api/auth/switch-account", json={"account_id": other.account_id},
                          headers=home.headers, timeout=15).json()["token"]
    original = jwt.decode(home.token, JWT_SECRET, algorithms=["HS256"])
    claims = jwt.decode(switched, JWT_SECRET, algorithms=["HS256"])
    assert claims["sid"] == original["sid"] and claims["exp"] == original["exp"]
    # Logging out in the other account ends the session in both.
    assert httpx.post(server.url + "/api/auth/logout", headers=support.auth(switched), timeout=15).status_code == 200
    for token in (switched, home.token):
        assert _me(server.url, token).json() == INVALID
    assert [r["revoked"] for r in _sessions(database, home.user_id)] == [True]


def test_password_change_with_three_sessions(server: support.ServerProcess, database: str, tenant: Tenant) -> None:
    laptop, phone = (support.login(server.url, tenant.username, tenant.password) for _ in range(2))
    for token in (tenant.token, laptop, phone):
        assert _me(server.url, token).status_code == 200
    changed = httpx.put(server.url + "/api/settings/password", headers=support.auth(laptop), timeout=15,
                        json={"currentPassword": tenant.password, "newPassword": "laptop-new-pass"})
    assert changed.status_code == 200 and changed.json() == {"success": True}
    assert "set-cookie" not in changed.headers  # nothing to replace: the token in use stays valid
    assert _me(server.url, laptop).status_code == 200
    for token in (tenant.token, phone):
        assert _me(server.url, token).json() == INVALID
    laptop_sid = jwt.decode(laptop, JWT_SECRET, algorithms=["HS256"])["sid"]
    assert {r["id"]: r["revoked"] for r in _sessions(database, tenant.user_id)}[laptop_sid] is False
    assert sum(1 for r in _sessions(database, tenant.user_id) if not r["revoked"]) == 1


@pytest.mark.parametrize("action", ["toggle", "delete", "reset", "role"])
def test_admin_actions_end_every_session(
    server: support.ServerProcess, make_tenant, admin_token: str, action: str  # type: ignore[no-untyped-def]
) -> None:
    victim = make_tenant()
    second = support.login(server.url, victim.username, victim.password)
    admin, url = support.auth(admin_token), f"{server.url}/api/admin/users/{victim.user_id}"
    response = {
        "toggle": lambda: httpx.patch(url + "/toggle", headers=admin, timeout=15),
        "delete": lambda: httpx.delete(url, headers=admin, timeout=15),
        "reset": lambda: httpx.patch(url + "/password", json={"password": "reset-by-admin"}, headers=admin, timeout=15),
        "role": lambda: httpx.put(url, json={"role": "agent"}, headers=admin, timeout=15),
    }[action]()
    assert response.status_code == 200, response.text
    for token in (victim.token, second):
        assert _me(server.url, token).json() == INVALID


def test_login_removes_the_users_expired_sessions(server: support.ServerProcess, database: str, tenant: Tenant) -> None:
    stale = support.login(server.url, tenant.username, tenant.password)
    stale_sid = jwt.decode(stale, JWT_SECRET, algorithms=["HS256"])["sid"]
    support.run_sql(database, "UPDATE user_sessions SET expires_at = now() - interval '1 minute' WHERE id = $1",
                    [uuid.UUID(stale_sid)])
    assert _until_refused(server.url, stale) >= 0  # an expired session ends even if its JWT says otherwise
    support.login(server.url, tenant.username, tenant.password)
    ids = [r["id"] for r in _sessions(database, tenant.user_id)]
    assert stale_sid not in ids and len(ids) == 2


def test_expired_sessions_are_swept_in_bounded_batches(
    server: support.ServerProcess, database: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = uuid.UUID(tenant.user_id)
    support.run_sql(database, "INSERT INTO user_sessions (user_id, expires_at) "
                              "SELECT $1, now() - interval '1 hour' FROM generate_series(1, 7)", [user])
    monkeypatch.setattr(revocation, "SWEEP_BATCH", 2)
    monkeypatch.setattr(revocation, "SWEEP_MAX_BATCHES", 3)

    async def sweep() -> tuple[int, int]:
        db = Database(database, 2)
        try:
            guard = TokenGuard(db, RedisHandle(None), "unused", ttl=2.0)
            return await guard.sweep_expired(), await guard.sweep_expired()
        finally:
            db.close()

    first, second = asyncio.run(sweep())
    assert first == 6  # bounded: at most 3 batches of 2 rows per sweep, though 7 were due
    assert second >= 1  # the rest goes on the next sweep
    rows = _sessions(database, tenant.user_id)
    assert not any(r["expired"] for r in rows)
    assert _me(server.url, tenant.token).status_code == 200  # live sessions untouched
