"""Token revocation, deactivation, disabled accounts and login throttling (issue 8, auth hardening).

Real servers, real PostgreSQL and Redis. The cross-worker tests run two servers on one database and
one Redis prefix with a long revocation-cache TTL, so only the Redis invalidation can explain an
immediate 401 on the second server.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests import support
from tests.conftest import ADMIN_PASSWORD, ADMIN_USER, Tenant

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

JWT_SECRET = "test-secret"  # support.base_env
INVALID = {"success": False, "error": "Invalid token"}
DISABLED = {"success": False, "error": "account disabled"}
THROTTLED = {"success": False, "error": "too many login attempts, try again later"}


def _me(url: str, token: str) -> httpx.Response:
    return httpx.get(url + "/api/me", headers=support.auth(token), timeout=15)


def _assert_revoked(url: str, token: str) -> None:
    response = _me(url, token)
    assert response.status_code == 401, response.text
    assert response.json() == INVALID


def _ws_status(ws_url: str, token: str) -> int:
    """101 when the handshake is accepted, else the HTTP status of the refusal."""
    try:
        with connect(f"{ws_url}?token={token}", open_timeout=10) as ws:
            ws.send('{"event":"ping"}')
            assert ws.recv(timeout=5) == '{"event":"pong"}'
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


def _login(url: str, username: str, password: str, **headers: str) -> httpx.Response:
    return httpx.post(url + "/api/auth/login", json={"username": username, "password": password},
                      headers=headers, timeout=15)


def _claims(tenant: Tenant, **extra: object) -> dict[str, object]:
    """A hand-signed token's claims in the tenant's real login session (``sid``)."""
    now = int(time.time())
    session = jwt.decode(tenant.token, JWT_SECRET, algorithms=["HS256"])["sid"]
    return {"user_id": tenant.user_id, "account_id": tenant.account_id, "username": tenant.username,
            "is_admin": True, "is_super_admin": False, "role": "admin", "exp": now + 3600, "iat": now,
            "iss": "clarin", "sid": session, **extra}


# -- revocation on the shared server ------------------------------------------------------------------
def test_tokens_carry_the_token_version_and_their_session(server: support.ServerProcess, tenant: Tenant) -> None:
    claims = jwt.decode(tenant.token, JWT_SECRET, algorithms=["HS256"])
    assert claims["tv"] == 0
    assert uuid.UUID(claims["sid"])
    again = jwt.decode(support.login(server.url, tenant.username, tenant.password), JWT_SECRET,
                       algorithms=["HS256"])
    assert again["sid"] != claims["sid"]  # every login is its own session


def test_logout_ends_this_session_only(server: support.ServerProcess, tenant: Tenant) -> None:
    second_session = support.login(server.url, tenant.username, tenant.password)
    assert _me(server.url, tenant.token).status_code == 200
    assert _me(server.url, second_session).status_code == 200
    assert _ws_status(server.ws_url, tenant.token) == 101

    response = httpx.post(server.url + "/api/auth/logout", headers=tenant.headers, timeout=15)
    assert response.status_code == 200 and response.json() == {"success": True}
    _assert_revoked(server.url, tenant.token)
    assert _me(server.url, second_session).status_code == 200  # the user's other device stays logged in
    assert _ws_status(server.ws_url, tenant.token) == 401
    assert _ws_status(server.ws_url, second_session) == 101
    # Logging out again with the revoked token is just another 401.
    again = httpx.post(server.url + "/api/auth/logout", headers=tenant.headers, timeout=15)
    assert again.status_code == 401 and again.json() == INVALID

    fresh = support.login(server.url, tenant.username, tenant.password)
    assert jwt.decode(fresh, JWT_SECRET, algorithms=["HS256"])["tv"] == 0  # no per-user counter involved
    assert _me(server.url, fresh).status_code == 200


def test_password_change_keeps_this_session_and_ends_the_others(
    server: support.ServerProcess, tenant: Tenant
) -> None:
    other_session = support.login(server.url, tenant.username, tenant.password)
    response = httpx.put(server.url + "/api/settings/password", headers=tenant.headers, timeout=15,
                         json={"currentPassword": tenant.password, "newPassword": "brand-new-secret"})
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}
    # The dashboard keeps sending the token it has: its next GET /api/me still answers.
    assert _me(server.url, tenant.token).status_code == 200
    _assert_revoked(server.url, other_session)
    assert _ws_status(server.ws_url, other_session) == 401
    assert _ws_status(server.ws_url, tenant.token) == 101

    assert _login(server.url, tenant.username, tenant.password).status_code == 401
    assert _me(server.url, support.login(server.url, tenant.username, "brand-new-secret")).status_code == 200


def test_admin_password_reset_revokes(server: support.ServerProcess, tenant: Tenant, admin_token: str) -> None:
    reset = httpx.patch(f"{server.url}/api/admin/users/{tenant.user_id}/password", json={"password": "reset-pass-1"},
                      headers=support.auth(admin_token), timeout=15)
    assert reset.status_code == 200, reset.text
    _assert_revoked(server.url, tenant.token)
    assert _me(server.url, support.login(server.url, tenant.username, "reset-pass-1")).status_code == 200


def test_role_change_revokes_but_other_edits_do_not(
    server: support.ServerProcess, tenant: Tenant, admin_token: str
) -> None:
    admin = support.auth(admin_token)
    url = f"{server.url}/api/admin/users/{tenant.user_id}"
    assert httpx.put(url, json={"display_name": "Renamed"}, headers=admin, timeout=15).status_code == 200
    assert httpx.put(url, json={"role": "admin"}, headers=admin, timeout=15).status_code == 200  # unchanged
    assert _me(server.url, tenant.token).status_code == 200
    assert httpx.put(url, json={"role": "agent"}, headers=admin, timeout=15).status_code == 200
    _assert_revoked(server.url, tenant.token)


def test_deleted_user_and_removed_membership_revoke(
    server: support.ServerProcess, make_tenant, admin_token: str  # type: ignore[no-untyped-def]
) -> None:
    admin = support.auth(admin_token)
    home, other = make_tenant(), make_tenant()
    linked = httpx.post(f"{server.url}/api/admin/users/{home.user_id}/accounts",
                        json={"account_id": other.account_id, "role": "agent"}, headers=admin, timeout=15)
    assert linked.status_code == 200, linked.text
    switched = httpx.post(server.url + "/api/auth/switch-account", json={"account_id": other.account_id},
                          headers=home.headers, timeout=15)
    assert switched.status_code == 200, switched.text
    in_other = switched.json()["token"]
    assert _me(server.url, in_other).status_code == 200
    removed = httpx.delete(f"{server.url}/api/admin/users/{home.user_id}/accounts/{other.account_id}",
                           headers=admin, timeout=15)
    assert removed.status_code == 200, removed.text
    _assert_revoked(server.url, in_other)

    deleted = httpx.delete(f"{server.url}/api/admin/users/{other.user_id}", headers=admin, timeout=15)
    assert deleted.status_code == 200, deleted.text
    _assert_revoked(server.url, other.token)


def test_tokens_without_a_session_are_refused_and_tv_is_strict(server: support.ServerProcess, tenant: Tenant) -> None:
    # Without tv the version counts as 0 (as before sessions existed).
    no_tv = jwt.encode(_claims(tenant), JWT_SECRET, algorithm="HS256")
    assert "tv" not in jwt.decode(no_tv, JWT_SECRET, algorithms=["HS256"])
    assert _me(server.url, no_tv).status_code == 200
    for bad in (True, "0", 0.0, None, 1):
        forged = jwt.encode(_claims(tenant, tv=bad), JWT_SECRET, algorithm="HS256")
        _assert_revoked(server.url, forged)
    # Tokens issued before sessions existed (no sid) are refused: nothing but their expiry could end them.
    legacy = jwt.encode({k: v for k, v in _claims(tenant).items() if k != "sid"}, JWT_SECRET, algorithm="HS256")
    _assert_revoked(server.url, legacy)
    assert _ws_status(server.ws_url, legacy) == 401
    for bad_sid in (str(uuid.uuid4()), "not-a-uuid", 7):
        _assert_revoked(server.url, jwt.encode(_claims(tenant, sid=bad_sid), JWT_SECRET, algorithm="HS256"))
    assert httpx.post(server.url + "/api/auth/logout", headers=support.auth(no_tv), timeout=15).status_code == 200
    _assert_revoked(server.url, no_tv)
    _assert_revoked(server.url, tenant.token)  # the same session


def test_deactivated_user_is_refused_at_once_http_and_websocket(
    server: support.ServerProcess, tenant: Tenant, admin_token: str
) -> None:
    admin = support.auth(admin_token)
    assert _me(server.url, tenant.token).status_code == 200  # warm the cache
    toggled = httpx.patch(f"{server.url}/api/admin/users/{tenant.user_id}/toggle", headers=admin, timeout=15)
    assert toggled.status_code == 200
    _assert_revoked(server.url, tenant.token)
    assert _ws_status(server.ws_url, tenant.token) == 401
    assert httpx.patch(f"{server.url}/api/admin/users/{tenant.user_id}/toggle", headers=admin,
                       timeout=15).status_code == 200
    # Re-activation does not resurrect tokens issued before the deactivation.
    _assert_revoked(server.url, tenant.token)
    assert _me(server.url, support.login(server.url, tenant.username, tenant.password)).status_code == 200


# -- disabled accounts ---------------------------------------------------------------------------------
def test_disabled_account_loses_access_at_once(
    server: support.ServerProcess, make_tenant, admin_token: str  # type: ignore[no-untyped-def]
) -> None:
    admin = support.auth(admin_token)
    victim, elsewhere = make_tenant(), make_tenant()
    assert _me(server.url, victim.token).status_code == 200
    assert httpx.patch(f"{server.url}/api/admin/accounts/{victim.account_id}/toggle", headers=admin,
                       timeout=15).status_code == 200
    response = _me(server.url, victim.token)
    assert response.status_code == 403 and response.json() == DISABLED
    leads = httpx.get(server.url + "/api/leads", headers=victim.headers, timeout=15)
    assert leads.status_code == 403 and leads.json() == DISABLED
    assert _ws_status(server.ws_url, victim.token) == 403
    login = _login(server.url, victim.username, victim.password)
    assert login.status_code == 403 and login.json() == DISABLED
    assert "set-cookie" not in login.headers
    # Another tenant is untouched.
    assert _me(server.url, elsewhere.token).status_code == 200

    # A user with an active membership elsewhere logs into that one instead.
    linked = httpx.post(f"{server.url}/api/admin/users/{victim.user_id}/accounts",
                        json={"account_id": elsewhere.account_id, "role": "agent"}, headers=admin, timeout=15)
    assert linked.status_code == 200
    fallback = _login(server.url, victim.username, victim.password)
    assert fallback.status_code == 200, fallback.text
    assert fallback.json()["user"]["account_id"] == elsewhere.account_id
    assert fallback.json()["user"]["role"] == "agent"
    session = fallback.json()["token"]
    assert _me(server.url, session).status_code == 200
    switch = httpx.post(server.url + "/api/auth/switch-account", json={"account_id": victim.account_id},
                        headers=support.auth(session), timeout=15)
    assert switch.status_code == 403 and switch.json() == DISABLED

    # Enabling the account again restores its sessions (toggling an account does not revoke tokens).
    assert httpx.patch(f"{server.url}/api/admin/accounts/{victim.account_id}/toggle", headers=admin,
                       timeout=15).status_code == 200
    home = _login(server.url, victim.username, victim.password)
    assert home.status_code == 200 and home.json()["user"]["account_id"] == victim.account_id


# -- two servers sharing Redis ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def twin_servers(
    database: str, server: support.ServerProcess, log_dir: Path
) -> Iterator[tuple[support.ServerProcess, support.ServerProcess]]:
    """Two servers (think: two workers or two nodes) on one database and one Redis prefix. The cache TTL
    is long, so a revocation seen at once on the other server can only have come through Redis."""
    env = support.base_env(database, AUTH_CACHE_TTL="60", LOGIN_MAX_FAILURES="6", LOGIN_MAX_FAILURES_IP="0")
    with support.running_server(env, log_dir, "twin-a") as a, support.running_server(env, log_dir, "twin-b") as b:
        _wait_for_invalidation_channel(a, b)
        yield a, b


def _new_user(url: str, admin_token: str) -> Tenant:
    suffix = uuid.uuid4().hex[:8]
    headers = support.auth(admin_token)
    account = httpx.post(url + "/api/admin/accounts", json={"name": f"Twin {suffix}"}, headers=headers, timeout=15)
    assert account.status_code == 201, account.text
    account_id = account.json()["account"]["id"]
    username, password = f"twin_{suffix}", f"pw-{suffix}-secret"
    user = httpx.post(url + "/api/admin/users", headers=headers, timeout=15,
                      json={"account_id": account_id, "username": username, "email": f"{username}@example.test",
                            "password": password, "role": "admin"})
    assert user.status_code == 201, user.text
    return Tenant(account_id, user.json()["user"]["id"], username, password, support.login(url, username, password))


def _wait_for_invalidation_channel(a: support.ServerProcess, b: support.ServerProcess) -> None:
    """Both servers subscribe to the channel right after start-up; wait until a revocation published by
    A reaches B (bounded), so the real assertions below can demand 'at once'."""
    admin_token = support.login(a.url, ADMIN_USER, ADMIN_PASSWORD)
    deadline = time.monotonic() + 15
    while True:
        probe = _new_user(a.url, admin_token)
        assert _me(b.url, probe.token).status_code == 200
        httpx.post(a.url + "/api/auth/logout", headers=probe.headers, timeout=15)
        if _me(b.url, probe.token).status_code == 401:
            return
        assert time.monotonic() < deadline, "auth invalidations never reached the second server"
        time.sleep(0.2)


def test_deactivation_on_one_server_revokes_on_the_other_at_once(
    twin_servers: tuple[support.ServerProcess, support.ServerProcess], admin_token: str
) -> None:
    a, b = twin_servers
    victim = _new_user(a.url, admin_token)
    for srv in (a, b):  # both caches warm
        assert _me(srv.url, victim.token).status_code == 200
        assert _ws_status(srv.ws_url, victim.token) == 101
    toggled = httpx.patch(f"{a.url}/api/admin/users/{victim.user_id}/toggle", headers=support.auth(admin_token),
                          timeout=15)
    assert toggled.status_code == 200
    for srv in (b, a):
        _assert_revoked(srv.url, victim.token)
        assert _ws_status(srv.ws_url, victim.token) == 401


def test_account_disabled_on_one_server_is_refused_on_the_other_at_once(
    twin_servers: tuple[support.ServerProcess, support.ServerProcess], admin_token: str
) -> None:
    a, b = twin_servers
    victim = _new_user(a.url, admin_token)
    assert _me(b.url, victim.token).status_code == 200
    assert httpx.patch(f"{a.url}/api/admin/accounts/{victim.account_id}/toggle",
                       headers=support.auth(admin_token), timeout=15).status_code == 200
    response = _me(b.url, victim.token)
    assert response.status_code == 403 and response.json() == DISABLED


def test_password_change_on_one_server_revokes_on_the_other(
    twin_servers: tuple[support.ServerProcess, support.ServerProcess], admin_token: str
) -> None:
    a, b = twin_servers
    victim = _new_user(a.url, admin_token)
    elsewhere = support.login(b.url, victim.username, victim.password)
    for token in (victim.token, elsewhere):
        assert _me(b.url, token).status_code == 200  # B's cache is warm for both sessions
    changed = httpx.put(a.url + "/api/settings/password", headers=victim.headers, timeout=15,
                        json={"currentPassword": victim.password, "newPassword": "changed-on-a-123"})
    assert changed.status_code == 200
    _assert_revoked(b.url, elsewhere)
    assert _me(b.url, victim.token).status_code == 200  # the session that changed it, on either server
    assert _login(b.url, victim.username, "changed-on-a-123").status_code == 200


def test_failed_logins_are_counted_across_servers(
    twin_servers: tuple[support.ServerProcess, support.ServerProcess], admin_token: str
) -> None:
    a, b = twin_servers
    victim = _new_user(a.url, admin_token)
    # LOGIN_MAX_FAILURES=6, alternating servers: the shared Redis counter reaches 6.
    for attempt in range(6):
        srv = (a, b)[attempt % 2]
        assert _login(srv.url, victim.username, "wrong-password").status_code == 401
    for srv in (a, b):
        blocked = _login(srv.url, victim.username, victim.password)
        assert blocked.status_code == 429 and blocked.json() == THROTTLED


# -- without Redis: the cache TTL bounds staleness ---------------------------------------------------------
def test_without_redis_the_ttl_bounds_staleness_and_limits_are_per_process(
    database: str, server: support.ServerProcess, log_dir: Path, admin_token: str
) -> None:
    env = support.base_env(database, REDIS_URL="off", AUTH_CACHE_TTL="1", LOGIN_MAX_FAILURES="2")
    with support.running_server(env, log_dir, "noredis-a") as a, support.running_server(env, log_dir, "noredis-b") as b:
        victim = _new_user(a.url, admin_token)
        assert _me(b.url, victim.token).status_code == 200  # B caches "valid" for up to 1 s
        assert httpx.post(a.url + "/api/auth/logout", headers=victim.headers, timeout=15).status_code == 200
        _assert_revoked(a.url, victim.token)  # the server that made the change knows at once
        deadline = time.monotonic() + 1.5
        while _me(b.url, victim.token).status_code == 200:
            assert time.monotonic() < deadline, "B still accepts a revoked token after the TTL"
            time.sleep(0.05)
        _assert_revoked(b.url, victim.token)
        # Failed logins are counted per process without Redis.
        for _ in range(2):
            assert _login(a.url, victim.username, "wrong").status_code == 401
        assert _login(a.url, victim.username, victim.password).status_code == 429
        assert _login(b.url, victim.username, victim.password).status_code == 200


# -- login throttling --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def throttled_server(database: str, server: support.ServerProcess, log_dir: Path) -> Iterator[support.ServerProcess]:
    # TRUST_PROXY: each test picks its client address with X-Forwarded-For.
    env = support.base_env(database, LOGIN_MAX_FAILURES="3", LOGIN_MAX_FAILURES_IP="6",
                           LOGIN_FAILURE_WINDOW="60", TRUST_PROXY="1")
    with support.running_server(env, log_dir, "login-throttle") as srv:
        yield srv


def _ip() -> str:
    raw = uuid.uuid4().int
    return f"10.{raw % 250}.{(raw >> 8) % 250}.{(raw >> 16) % 250}"


def test_username_is_blocked_after_too_many_failures(throttled_server: support.ServerProcess, tenant: Tenant) -> None:
    url = throttled_server.url
    for _ in range(3):
        response = _login(url, tenant.username, "wrong", **{"X-Forwarded-For": _ip()})
        assert response.status_code == 401
    blocked = _login(url, tenant.username, tenant.password, **{"X-Forwarded-For": _ip()})  # right password too
    assert blocked.status_code == 429, blocked.text
    assert blocked.json() == THROTTLED
    assert 1 <= int(blocked.headers["retry-after"]) <= 60
    assert "set-cookie" not in blocked.headers
    # Other usernames from the same address are unaffected.
    ip = _ip()
    assert _login(url, ADMIN_USER, ADMIN_PASSWORD, **{"X-Forwarded-For": ip}).status_code == 200
    assert _login(url, "nobody-" + uuid.uuid4().hex[:6], "x", **{"X-Forwarded-For": ip}).status_code == 401


def test_successful_login_resets_the_username_counter(
    throttled_server: support.ServerProcess, tenant: Tenant
) -> None:
    url = throttled_server.url
    for _ in range(2):
        assert _login(url, tenant.username, "wrong", **{"X-Forwarded-For": _ip()}).status_code == 401
    assert _login(url, tenant.username, tenant.password, **{"X-Forwarded-For": _ip()}).status_code == 200
    for _ in range(2):
        assert _login(url, tenant.username, "wrong", **{"X-Forwarded-For": _ip()}).status_code == 401
    assert _login(url, tenant.username, tenant.password, **{"X-Forwarded-For": _ip()}).status_code == 200


def test_client_ip_is_blocked_after_too_many_failures(
    throttled_server: support.ServerProcess, tenant: Tenant
) -> None:
    url = throttled_server.url
    ip = _ip()
    for _ in range(6):  # six different (unknown) usernames: only the IP counter reaches its limit
        assert _login(url, "ghost-" + uuid.uuid4().hex[:8], "x", **{"X-Forwarded-For": ip}).status_code == 401
    blocked = _login(url, tenant.username, tenant.password, **{"X-Forwarded-For": ip})
    assert blocked.status_code == 429 and blocked.json() == THROTTLED
    assert int(blocked.headers["retry-after"]) >= 1
    # The same user from another address is fine, and the block did not count against the username.
    assert _login(url, tenant.username, tenant.password, **{"X-Forwarded-For": _ip()}).status_code == 200
