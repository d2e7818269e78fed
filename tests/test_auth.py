"""Login, JWT validation, session cookie, switch-account, settings and logout (spec §2, §4.1)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from email.utils import parsedate_to_datetime

import httpx
import jwt
import pytest

from tests import support
from tests.conftest import ADMIN_PASSWORD, ADMIN_USER, Tenant

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

JWT_SECRET = "test-secret"  # support.base_env
SESSION_USER_KEYS = {
    "id", "username", "email", "display_name", "is_admin", "is_super_admin", "role", "account_id", "account_name",
}
MEMBERSHIP_KEYS = {"account_id", "account_name", "account_slug", "role", "is_default"}


def _claims(tenant: Tenant, **overrides: object) -> dict[str, object]:
    """Claims of a hand-signed token for the tenant's user, in the tenant's real login session."""
    now = int(time.time())
    session = jwt.decode(tenant.token, JWT_SECRET, algorithms=["HS256"])["sid"] if tenant.token else str(uuid.uuid4())
    claims: dict[str, object] = {
        "user_id": tenant.user_id, "account_id": tenant.account_id, "username": tenant.username,
        "is_admin": True, "is_super_admin": False, "role": "admin", "exp": now + 3600, "iat": now, "iss": "clarin",
        "tv": 0, "sid": session,
    }
    claims.update(overrides)
    return claims


def _assert_error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"success": False, "error": message}


def _cookie_attributes(set_cookie: str) -> dict[str, str]:
    parts = [p.strip() for p in set_cookie.split(";")]
    attrs = {}
    for part in parts[1:]:
        key, _, value = part.partition("=")
        attrs[key.lower()] = value
    return attrs


# -- login ----------------------------------------------------------------------------------------
def test_login_returns_token_user_accounts_and_cookie(client: httpx.Client, tenant: Tenant) -> None:
    response = client.post("/api/auth/login", json={"username": tenant.username, "password": tenant.password})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"success", "token", "user", "accounts"}
    assert body["success"] is True
    user = body["user"]
    assert set(user) == SESSION_USER_KEYS
    assert user["id"] == tenant.user_id
    assert user["username"] == tenant.username
    assert user["account_id"] == tenant.account_id
    assert user["role"] == "admin"
    assert user["is_admin"] is True
    assert user["is_super_admin"] is False
    assert user["account_name"].startswith("Tenant ")
    assert isinstance(body["accounts"], list) and len(body["accounts"]) == 1
    membership = body["accounts"][0]
    assert set(membership) == MEMBERSHIP_KEYS
    assert membership["account_id"] == tenant.account_id
    assert membership["is_default"] is True

    claims = jwt.decode(body["token"], JWT_SECRET, algorithms=["HS256"])
    assert claims["user_id"] == tenant.user_id
    assert claims["account_id"] == tenant.account_id
    assert claims["iss"] == "clarin"
    assert claims["exp"] - claims["iat"] == 7 * 24 * 3600

    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith(f"auth-token={body['token']};")
    attrs = _cookie_attributes(set_cookie)
    assert "httponly" in attrs
    assert attrs["samesite"] == "Lax"
    assert attrs["path"] == "/"
    assert "secure" not in attrs  # not production
    expires = parsedate_to_datetime(attrs["expires"]).timestamp()
    assert abs(expires - (time.time() + 7 * 24 * 3600)) < 120


def test_seeded_super_admin_logs_in(client: httpx.Client) -> None:
    response = client.post("/api/auth/login", json={"username": ADMIN_USER, "password": ADMIN_PASSWORD})
    assert response.status_code == 200, response.text
    user = response.json()["user"]
    assert user["is_super_admin"] is True
    assert user["role"] == "super_admin"
    assert user["account_name"] == "Default Account"


@pytest.mark.parametrize("field", ["password", "username"])
def test_wrong_credentials_are_401(client: httpx.Client, tenant: Tenant, field: str) -> None:
    payload = {"username": tenant.username, "password": tenant.password}
    payload[field] = payload[field] + "-wrong"
    response = client.post("/api/auth/login", json=payload)
    _assert_error(response, 401, "invalid credentials")
    assert "set-cookie" not in response.headers


def test_empty_or_impossible_credentials_are_401(client: httpx.Client) -> None:
    _assert_error(client.post("/api/auth/login", json={}), 401, "invalid credentials")
    # A NUL character is refused by the body decoder for every JSON body (400), never a database error.
    nul = client.post("/api/auth/login", json={"username": "ad\u0000min", "password": "x\u0000"})
    assert (nul.status_code, nul.json()["error"]) == (400, "Request contains invalid characters")
    _assert_error(client.post("/api/auth/login", json={"username": "u" * 5000, "password": "p" * 5000}), 401,
                  "invalid credentials")


def test_inactive_user_cannot_log_in(client: httpx.Client, tenant: Tenant, admin_token: str) -> None:
    admin = support.auth(admin_token)
    credentials = {"username": tenant.username, "password": tenant.password}
    toggled = client.patch(f"/api/admin/users/{tenant.user_id}/toggle", headers=admin)
    assert toggled.status_code == 200, toggled.text
    _assert_error(client.post("/api/auth/login", json=credentials), 401, "invalid credentials")
    assert client.patch(f"/api/admin/users/{tenant.user_id}/toggle", headers=admin).status_code == 200
    assert client.post("/api/auth/login", json=credentials).status_code == 200


# -- token transport --------------------------------------------------------------------------------
def test_me_works_with_the_cookie_only(server: support.ServerProcess, tenant: Tenant) -> None:
    with httpx.Client(base_url=server.url, timeout=15) as fresh:
        login = fresh.post("/api/auth/login", json={"username": tenant.username, "password": tenant.password})
        assert login.status_code == 200
        # The jar now holds the auth-token cookie; no Authorization header is sent.
        me = fresh.get("/api/me")
        assert "authorization" not in {k.lower() for k in me.request.headers}
        assert me.status_code == 200, me.text
        assert me.json()["user"]["id"] == tenant.user_id
    explicit = httpx.get(server.url + "/api/me", headers={"Cookie": f"auth-token={tenant.token}"})
    assert explicit.status_code == 200, explicit.text
    assert explicit.json()["user"]["account_id"] == tenant.account_id


def test_me_shape(client: httpx.Client, tenant: Tenant) -> None:
    response = client.get("/api/me", headers=tenant.headers)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"success", "user", "accounts"}
    assert set(body["user"]) == SESSION_USER_KEYS
    assert [set(a) for a in body["accounts"]] == [MEMBERSHIP_KEYS]
    accounts = client.get("/api/me/accounts", headers=tenant.headers)
    assert accounts.status_code == 200
    assert accounts.json() == {"success": True, "accounts": body["accounts"]}


def test_header_token_without_bearer_prefix_is_accepted(client: httpx.Client, tenant: Tenant) -> None:
    assert client.get("/api/me", headers={"Authorization": tenant.token}).status_code == 200
    assert client.get("/api/me", headers={"Authorization": f"bearer {tenant.token}"}).status_code == 200


def test_header_wins_over_cookie(client: httpx.Client, tenant: Tenant) -> None:
    other = Tenant(str(uuid.uuid4()), str(uuid.uuid4()), "", "", "")
    bad = jwt.encode(_claims(other), "wrong-secret", algorithm="HS256")
    response = client.get("/api/me", headers={"Authorization": f"Bearer {bad}",
                                              "Cookie": f"auth-token={tenant.token}"})
    _assert_error(response, 401, "Invalid token")


def test_missing_token_is_unauthorized(client: httpx.Client) -> None:
    _assert_error(client.get("/api/me"), 401, "Unauthorized")
    _assert_error(client.get("/api/me", headers={"Cookie": "auth-token="}), 401, "Unauthorized")
    _assert_error(client.post("/api/auth/logout"), 401, "Unauthorized")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _bad_tokens(tenant: Tenant) -> dict[str, str]:
    good = jwt.encode(_claims(tenant), JWT_SECRET, algorithm="HS256")
    header, payload, signature = good.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    forged_payload = _b64(json.dumps(_claims(tenant, is_super_admin=True)).encode())
    none_header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return {
        "expired": jwt.encode(_claims(tenant, exp=int(time.time()) - 10, iat=int(time.time()) - 3600),
                              JWT_SECRET, algorithm="HS256"),
        "tampered_signature": f"{header}.{payload}.{flipped}",
        "tampered_payload": f"{header}.{forged_payload}.{signature}",
        "alg_none": jwt.encode(_claims(tenant), None, algorithm="none"),
        "alg_none_unsigned_dot": f"{none_header}.{payload}.",
        "hs512_right_secret": jwt.encode(_claims(tenant), JWT_SECRET, algorithm="HS512"),
        "hs384_right_secret": jwt.encode(_claims(tenant), JWT_SECRET, algorithm="HS384"),
        "wrong_secret": jwt.encode(_claims(tenant), "not-the-secret", algorithm="HS256"),
        "no_exp": jwt.encode({k: v for k, v in _claims(tenant).items() if k != "exp"}, JWT_SECRET,
                             algorithm="HS256"),
        "no_user_id": jwt.encode({k: v for k, v in _claims(tenant).items() if k != "user_id"}, JWT_SECRET,
                                 algorithm="HS256"),
        "account_not_uuid": jwt.encode(_claims(tenant, account_id="acme"), JWT_SECRET, algorithm="HS256"),
        "garbage": "not.a.jwt",
    }


def test_invalid_tokens_are_rejected(client: httpx.Client, tenant: Tenant) -> None:
    # Sanity: the same claims signed correctly are accepted.
    good = jwt.encode(_claims(tenant), JWT_SECRET, algorithm="HS256")
    assert client.get("/api/me", headers=support.auth(good)).status_code == 200
    for name, token in _bad_tokens(tenant).items():
        for headers in (support.auth(token), {"Cookie": f"auth-token={token}"}):
            response = client.get("/api/me", headers=headers)
            assert response.status_code == 401, (name, response.text)
            assert response.json() == {"success": False, "error": "Invalid token"}, name


def test_forged_super_admin_claim_cannot_reach_admin_routes(client: httpx.Client, tenant: Tenant) -> None:
    forged = jwt.encode(_claims(tenant, is_super_admin=True), "guessed-secret", algorithm="HS256")
    _assert_error(client.get("/api/admin/accounts", headers=support.auth(forged)), 401, "Invalid token")
    stringly = jwt.encode(_claims(tenant, is_super_admin="true"), JWT_SECRET, algorithm="HS256")
    _assert_error(client.get("/api/admin/accounts", headers=support.auth(stringly)), 403,
                  "Forbidden: super admin access required")


# -- switch account ---------------------------------------------------------------------------------
def test_switch_to_an_account_without_membership_is_forbidden(client: httpx.Client, make_tenant) -> None:  # type: ignore[no-untyped-def]
    first, second = make_tenant(), make_tenant()
    response = client.post("/api/auth/switch-account", json={"account_id": first.account_id},
                           headers=second.headers)
    _assert_error(response, 403, "no tiene acceso a esta cuenta")
    assert "set-cookie" not in response.headers
    unknown = client.post("/api/auth/switch-account", json={"account_id": str(uuid.uuid4())},
                          headers=second.headers)
    _assert_error(unknown, 403, "no tiene acceso a esta cuenta")


def test_switch_account_invalid_id(client: httpx.Client, tenant: Tenant) -> None:
    for body in ({"account_id": "nope"}, {}):
        response = client.post("/api/auth/switch-account", json=body, headers=tenant.headers)
        _assert_error(response, 400, "Invalid account_id")


def test_switch_to_a_linked_account(client: httpx.Client, make_tenant, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    home, other = make_tenant(), make_tenant()
    linked = client.post(f"/api/admin/users/{home.user_id}/accounts",
                         json={"account_id": other.account_id, "role": "agent"}, headers=support.auth(admin_token))
    assert linked.status_code == 200, linked.text

    response = client.post("/api/auth/switch-account", json={"account_id": other.account_id},
                           headers=home.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"success", "token", "user"}  # no "accounts" key
    assert set(body["user"]) == SESSION_USER_KEYS
    assert body["user"]["account_id"] == other.account_id
    assert body["user"]["role"] == "agent"
    assert body["user"]["id"] == home.user_id
    assert response.headers["set-cookie"].startswith(f"auth-token={body['token']};")
    claims = jwt.decode(body["token"], JWT_SECRET, algorithms=["HS256"])
    assert (claims["account_id"], claims["role"]) == (other.account_id, "agent")

    me = client.get("/api/me", headers=support.auth(body["token"]))
    assert me.status_code == 200
    assert me.json()["user"]["account_id"] == other.account_id
    assert me.json()["user"]["account_name"] == body["user"]["account_name"]
    assert {a["account_id"] for a in me.json()["accounts"]} == {home.account_id, other.account_id}
    # The old token still points at the home account.
    assert client.get("/api/me", headers=home.headers).json()["user"]["account_id"] == home.account_id


# -- settings ---------------------------------------------------------------------------------------
def test_settings_view_profile_and_account(client: httpx.Client, tenant: Tenant) -> None:
    view = client.get("/api/settings", headers=tenant.headers)
    assert view.status_code == 200, view.text
    body = view.json()
    assert set(body) == {"success", "user", "account"}
    assert body["user"] == {"id": tenant.user_id, "name": f"User {tenant.username[5:]}",
                           "email": f"{tenant.username}@example.test", "role": "admin"}
    assert set(body["account"]) == {"id", "name", "slug", "plan", "created_at"}
    assert body["account"]["id"] == tenant.account_id

    new_email = f"renamed-{uuid.uuid4().hex[:6]}@example.test"
    ok = client.put("/api/settings/profile", json={"name": "Renamed", "email": new_email}, headers=tenant.headers)
    assert ok.status_code == 200 and ok.json() == {"success": True}
    # Empty strings are ignored.
    assert client.put("/api/settings/profile", json={"name": "", "email": ""}, headers=tenant.headers).status_code \
        == 200
    renamed = client.put("/api/settings/account", json={"name": "Renamed Co"}, headers=tenant.headers)
    assert renamed.status_code == 200 and renamed.json() == {"success": True}
    assert client.put("/api/settings/account", json={"name": ""}, headers=tenant.headers).status_code == 200

    after = client.get("/api/settings", headers=tenant.headers).json()
    assert after["user"]["name"] == "Renamed"
    assert after["user"]["email"] == new_email
    assert after["account"]["name"] == "Renamed Co"
    me = client.get("/api/me", headers=tenant.headers).json()
    assert me["user"]["display_name"] == "Renamed"
    assert me["user"]["account_name"] == "Renamed Co"


def test_profile_email_taken_by_another_user_is_409(client: httpx.Client, make_tenant) -> None:  # type: ignore[no-untyped-def]
    first, second = make_tenant(), make_tenant()
    response = client.put("/api/settings/profile", json={"email": f"{first.username}@example.test"},
                          headers=second.headers)
    _assert_error(response, 409, "Email already in use")


def test_settings_bodies_with_wrong_types_are_400(client: httpx.Client, tenant: Tenant) -> None:
    for path, body in [("/api/settings/profile", {"name": 5}), ("/api/settings/account", {"name": ["x"]}),
                       ("/api/settings/password", {"currentPassword": 1, "newPassword": "long-enough"})]:
        response = client.put(path, json=body, headers=tenant.headers)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"] == "Invalid request"


def test_change_password(client: httpx.Client, tenant: Tenant) -> None:
    short = client.put("/api/settings/password", json={"currentPassword": "whatever", "newPassword": "short"},
                       headers=tenant.headers)
    _assert_error(short, 400, "La contraseña debe tener al menos 8 caracteres")
    wrong = client.put("/api/settings/password",
                       json={"currentPassword": "not-my-password", "newPassword": "a-new-password"},
                       headers=tenant.headers)
    _assert_error(wrong, 400, "Contraseña actual incorrecta")
    # snake_case keys are not the contract: they are ignored, so newPassword is empty → too short.
    snake = client.put("/api/settings/password",
                       json={"current_password": tenant.password, "new_password": "a-new-password"},
                       headers=tenant.headers)
    _assert_error(snake, 400, "La contraseña debe tener al menos 8 caracteres")

    ok = client.put("/api/settings/password",
                    json={"currentPassword": tenant.password, "newPassword": "a-new-password"},
                    headers=tenant.headers)
    assert ok.status_code == 200 and ok.json() == {"success": True}
    assert client.post("/api/auth/login", json={"username": tenant.username, "password": "a-new-password"}) \
        .status_code == 200
    _assert_error(client.post("/api/auth/login", json={"username": tenant.username, "password": tenant.password}),
                  401, "invalid credentials")


# -- logout -----------------------------------------------------------------------------------------
def test_logout_clears_the_cookie(client: httpx.Client, tenant: Tenant) -> None:
    response = client.post("/api/auth/logout", headers=tenant.headers)
    assert response.status_code == 200
    assert response.json() == {"success": True}
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith("auth-token=;")
    attrs = _cookie_attributes(set_cookie)
    assert parsedate_to_datetime(attrs["expires"]).timestamp() < time.time()
    assert attrs["path"] == "/"
    assert attrs["samesite"] == "Lax"
    assert "httponly" not in attrs

    # A browser applying that header is logged out: the cookie jar no longer sends a token.
    with httpx.Client(base_url=client.base_url, timeout=15) as browser:
        browser.post("/api/auth/login", json={"username": tenant.username, "password": tenant.password})
        assert browser.get("/api/me").status_code == 200
        assert browser.post("/api/auth/logout").status_code == 200
        _assert_error(browser.get("/api/me"), 401, "Unauthorized")
