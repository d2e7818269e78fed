"""Super-admin API (spec §4.18–4.19): guard, accounts, users, memberships, error hygiene."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from tests import support
from tests.conftest import Tenant

FORBIDDEN = "Forbidden: super admin access required"
LEAK_MARKERS = ("ERROR:", "SQLSTATE", "violates", "psqlpy", "varchar", "character varying", "Traceback")


@pytest.fixture
def admin(client: httpx.Client, admin_token: str) -> httpx.Client:
    client.headers.update(support.auth(admin_token))
    return client


def _assert_error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"success": False, "error": message}


def _assert_no_leak(response: httpx.Response) -> None:
    for marker in LEAK_MARKERS:
        assert marker not in response.text, response.text
    if response.status_code >= 500:
        assert response.json() == {"success": False, "error": "Internal server error"}


def _new_account(admin: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"name": f"Acct {uuid.uuid4().hex[:8]}", **fields}
    response = admin.post("/api/admin/accounts", json=body)
    assert response.status_code == 201, response.text
    return response.json()["account"]


def _new_user(admin: httpx.Client, account_id: str, **fields: Any) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    body = {"account_id": account_id, "username": f"u_{suffix}", "email": f"u_{suffix}@example.test",
            "password": "initial-pass", **fields}
    response = admin.post("/api/admin/users", json=body)
    assert response.status_code == 201, response.text
    return response.json()["user"]


def _admin_route_requests() -> list[tuple[str, str]]:
    from clarin.app import app

    out = []
    for route in app.router.routes:
        if route.path.lower().startswith("/api/admin"):
            path = re.sub(r"[:*][A-Za-z_]+", lambda _: str(uuid.uuid4()), route.path)
            out.append((route.method, path))
    return out


# -- the guard --------------------------------------------------------------------------------------
def test_every_admin_route_is_forbidden_to_tenant_users(client: httpx.Client, make_tenant) -> None:  # type: ignore[no-untyped-def]
    requests = _admin_route_requests()
    assert len(requests) >= 15
    methods = {m for m, _ in requests}
    assert methods == {"GET", "POST", "PUT", "PATCH", "DELETE"}
    tenant_admin, tenant_agent = make_tenant("admin"), make_tenant("agent")
    for who in (tenant_admin, tenant_agent):
        for method, path in requests:
            response = client.request(method, path, json={}, headers=who.headers)
            assert response.status_code == 403, (method, path, response.text)
            assert response.json() == {"success": False, "error": FORBIDDEN}
        # Without a token it is 401 first.
    for method, path in requests:
        response = client.request(method, path, json={})
        assert response.status_code == 401, (method, path)


def test_role_string_super_admin_grants_nothing(client: httpx.Client, admin: httpx.Client, make_tenant) -> None:  # type: ignore[no-untyped-def]
    tenant = make_tenant("super_admin")
    me = client.get("/api/me", headers=tenant.headers).json()["user"]
    assert me["role"] == "super_admin" and me["is_super_admin"] is False
    _assert_error(client.get("/api/admin/accounts", headers=tenant.headers), 403, FORBIDDEN)


def test_tenant_cannot_touch_the_first_tenant_via_admin_or_switch(client: httpx.Client, make_tenant) -> None:  # type: ignore[no-untyped-def]
    first, second = make_tenant(), make_tenant()
    _assert_error(client.get(f"/api/admin/accounts/{first.account_id}", headers=second.headers), 403, FORBIDDEN)
    _assert_error(client.delete(f"/api/admin/users/{first.user_id}", headers=second.headers), 403, FORBIDDEN)
    _assert_error(client.post("/api/auth/switch-account", json={"account_id": first.account_id},
                              headers=second.headers), 403, "no tiene acceso a esta cuenta")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/admin/accounts/not-a-uuid"),
        ("PUT", "/api/admin/accounts/123"),
        ("PATCH", "/api/admin/accounts/xyz/toggle"),
        ("DELETE", "/api/admin/accounts/xyz"),
        ("PUT", "/api/admin/users/xyz"),
        ("PATCH", "/api/admin/users/xyz/toggle"),
        ("PATCH", "/api/admin/users/xyz/password"),
        ("DELETE", "/api/admin/users/xyz"),
    ],
)
def test_invalid_uuid_in_path_is_400(admin: httpx.Client, method: str, path: str) -> None:
    _assert_error(admin.request(method, path, json={"password": "x"}), 400, "Invalid ID")


def test_invalid_user_id_on_membership_routes(admin: httpx.Client) -> None:
    _assert_error(admin.get("/api/admin/users/xyz/accounts"), 400, "Invalid user ID")
    _assert_error(admin.post("/api/admin/users/xyz/accounts", json={"account_id": str(uuid.uuid4())}), 400,
                  "Invalid user ID")
    _assert_error(admin.delete(f"/api/admin/users/xyz/accounts/{uuid.uuid4()}"), 400, "Invalid user ID")
    _assert_error(admin.delete(f"/api/admin/users/{uuid.uuid4()}/accounts/xyz"), 400, "Invalid account_id")


# -- accounts ---------------------------------------------------------------------------------------
def test_account_lifecycle(admin: httpx.Client) -> None:
    created = admin.post("/api/admin/accounts", json={"name": "  Acme Corp  ", "slug": "acme"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["success"] is True
    account = body["account"]
    assert account["name"] == "Acme Corp"
    assert account["slug"] == "acme"
    assert account["plan"] == "basic"
    assert account["max_devices"] == 5
    assert account["is_active"] is True
    # Counts are omitted when zero.
    assert {"user_count", "device_count", "chat_count"}.isdisjoint(account)
    account_id = account["id"]

    listed = admin.get("/api/admin/accounts")
    assert listed.status_code == 200
    accounts = listed.json()["accounts"]
    assert accounts[0]["id"] == account_id  # newest first
    assert admin.get("/api/admin/accounts", params={"limit": 1}).json()["accounts"] == [accounts[0]]
    assert admin.get("/api/admin/accounts", params={"limit": 1, "offset": 1}).json()["accounts"] == [accounts[1]]

    got = admin.get(f"/api/admin/accounts/{account_id}")
    assert got.status_code == 200
    assert got.json()["account"] == account

    # Partial update: only the sent fields change.
    updated = admin.put(f"/api/admin/accounts/{account_id}", json={"plan": "pro"})
    assert updated.status_code == 200, updated.text
    after = updated.json()["account"]
    assert after["plan"] == "pro"
    assert (after["name"], after["slug"], after["max_devices"]) == ("Acme Corp", "acme", 5)
    assert after["created_at"] == account["created_at"]
    updated = admin.put(f"/api/admin/accounts/{account_id}", json={"max_devices": 12, "name": "Acme 2"})
    assert updated.status_code == 200
    got = admin.get(f"/api/admin/accounts/{account_id}").json()["account"]
    assert (got["name"], got["slug"], got["plan"], got["max_devices"]) == ("Acme 2", "acme", "pro", 12)

    _assert_error(admin.put(f"/api/admin/accounts/{account_id}", json={"name": "  "}), 400, "Name is required")
    _assert_error(admin.put(f"/api/admin/accounts/{account_id}", json={"max_devices": 0}), 400,
                  "max_devices must be positive")
    _assert_error(admin.put(f"/api/admin/accounts/{uuid.uuid4()}", json={"plan": "x"}), 404, "Account not found")

    toggled = admin.patch(f"/api/admin/accounts/{account_id}/toggle")
    assert toggled.status_code == 200 and toggled.json() == {"success": True}
    assert admin.get(f"/api/admin/accounts/{account_id}").json()["account"]["is_active"] is False
    admin.patch(f"/api/admin/accounts/{account_id}/toggle")
    assert admin.get(f"/api/admin/accounts/{account_id}").json()["account"]["is_active"] is True
    _assert_error(admin.patch(f"/api/admin/accounts/{uuid.uuid4()}/toggle"), 404, "Account not found")

    deleted = admin.delete(f"/api/admin/accounts/{account_id}")
    assert deleted.status_code == 200 and deleted.json() == {"success": True}
    _assert_error(admin.get(f"/api/admin/accounts/{account_id}"), 404, "Account not found")
    _assert_error(admin.delete(f"/api/admin/accounts/{account_id}"), 404, "Account not found")


def test_create_account_validation(admin: httpx.Client) -> None:
    _assert_error(admin.post("/api/admin/accounts", json={"name": "   "}), 400, "Name is required")
    _assert_error(admin.post("/api/admin/accounts", json={}), 400, "Name is required")
    wrong_type = admin.post("/api/admin/accounts", json={"name": "X", "max_devices": "many"})
    assert wrong_type.status_code == 400
    assert wrong_type.json()["error"] == "Invalid request"
    custom = _new_account(admin, plan="enterprise", max_devices=50)
    assert (custom["plan"], custom["max_devices"]) == ("enterprise", 50)
    defaulted = _new_account(admin, max_devices=-3)
    assert defaulted["max_devices"] == 5


def test_new_account_gets_the_default_pipeline(admin: httpx.Client, database: str) -> None:
    account = _new_account(admin)
    rows = support.run_sql(
        database,
        "SELECT p.name, count(s.id) AS stages FROM pipelines p JOIN pipeline_stages s ON s.pipeline_id = p.id "
        "WHERE p.account_id = $1 AND p.is_default GROUP BY p.name",
        [uuid.UUID(account["id"])],
    )
    assert rows == [{"name": "Pipeline Principal", "stages": 6}]


def test_account_with_users_cannot_be_deleted(admin: httpx.Client, tenant: Tenant) -> None:
    _assert_error(admin.delete(f"/api/admin/accounts/{tenant.account_id}"), 400,
                  "No se puede eliminar una cuenta que tiene usuarios. Elimine primero los usuarios.")
    got = admin.get(f"/api/admin/accounts/{tenant.account_id}").json()["account"]
    assert got["user_count"] == 1


def test_account_with_devices_or_chats_cannot_be_deleted(admin: httpx.Client, database: str) -> None:
    account = _new_account(admin)
    support.run_sql(database, "INSERT INTO devices (account_id, name) VALUES ($1, 'Phone')",
                    [uuid.UUID(account["id"])])
    assert admin.get(f"/api/admin/accounts/{account['id']}").json()["account"]["device_count"] == 1
    _assert_error(admin.delete(f"/api/admin/accounts/{account['id']}"), 400,
                  "No se puede eliminar una cuenta que tiene dispositivos o chats. Elimine primero los dispositivos.")


def test_deleting_an_account_cascades_its_data(admin: httpx.Client, database: str) -> None:
    account = _new_account(admin)
    account_uuid = uuid.UUID(account["id"])
    assert support.run_sql(database, "SELECT count(*) AS n FROM pipelines WHERE account_id = $1",
                           [account_uuid]) == [{"n": 1}]
    assert admin.delete(f"/api/admin/accounts/{account['id']}").status_code == 200
    assert support.run_sql(database, "SELECT count(*) AS n FROM pipelines WHERE account_id = $1",
                           [account_uuid]) == [{"n": 0}]


# -- users ------------------------------------------------------------------------------------------
def test_user_create_shape_and_duplicates(admin: httpx.Client) -> None:
    account = _new_account(admin)
    suffix = uuid.uuid4().hex[:8]
    body = {"account_id": account["id"], "username": f"ana_{suffix}", "email": f"ana_{suffix}@example.test",
            "password": "pw", "display_name": "Ana"}
    created = admin.post("/api/admin/users", json=body)
    assert created.status_code == 201, created.text
    user = created.json()["user"]
    assert user["account_id"] == account["id"]
    assert user["username"] == f"ana_{suffix}"
    assert user["display_name"] == "Ana"
    assert user["role"] == "agent"  # default
    assert user["is_admin"] is False
    assert user["is_super_admin"] is False
    assert user["is_active"] is True
    assert user["account_name"] == account["name"]
    for key in ("id", "created_at", "updated_at"):
        assert user[key]

    _assert_error(admin.post("/api/admin/users", json={**body, "email": f"other_{suffix}@example.test"}), 409,
                  "A user with this username already exists")
    _assert_error(admin.post("/api/admin/users", json={**body, "username": f"other_{suffix}"}), 409,
                  "A user with this email already exists")

    admin_user = _new_user(admin, account["id"], role="admin")
    assert (admin_user["role"], admin_user["is_admin"]) == ("admin", True)

    # Login works with the short password (no length rule for admin-created users).
    assert support.login(str(admin.base_url), f"ana_{suffix}", "pw")


@pytest.mark.parametrize("missing", ["username", "email", "password", "account_id"])
def test_user_create_requires_fields(admin: httpx.Client, missing: str) -> None:
    body = {"account_id": str(uuid.uuid4()), "username": "x_user", "email": "x@example.test", "password": "pw"}
    body[missing] = ""
    _assert_error(admin.post("/api/admin/users", json=body), 400,
                  "username, email, password, and account_id are required")


def test_user_create_rejects_bad_account_and_role(admin: httpx.Client) -> None:
    base = {"username": "y_user", "email": "y@example.test", "password": "pw"}
    _assert_error(admin.post("/api/admin/users", json={**base, "account_id": "nope"}), 400, "Invalid account_id")
    _assert_error(admin.post("/api/admin/users", json={**base, "account_id": str(uuid.uuid4())}), 404,
                  "Account not found")
    account = _new_account(admin)
    _assert_error(admin.post("/api/admin/users", json={**base, "account_id": account["id"], "role": "owner"}), 400,
                  "role must be one of super_admin, admin, agent")


def test_user_list_filter_update_toggle_and_password(admin: httpx.Client, client: httpx.Client) -> None:
    account = _new_account(admin)
    first = _new_user(admin, account["id"], display_name="First")
    second = _new_user(admin, account["id"], display_name="Second")

    listed = admin.get("/api/admin/users", params={"account_id": account["id"]})
    assert listed.status_code == 200
    users = listed.json()["users"]
    assert [u["id"] for u in users] == [second["id"], first["id"]]  # newest first
    assert all(u["account_name"] == account["name"] for u in users)
    _assert_error(admin.get("/api/admin/users", params={"account_id": "bad"}), 400, "Invalid account_id")
    assert admin.get("/api/admin/users", params={"account_id": str(uuid.uuid4())}).json() == {
        "success": True, "users": []}

    # Partial update: only display_name changes.
    ok = admin.put(f"/api/admin/users/{first['id']}", json={"display_name": "Renamed"})
    assert ok.status_code == 200 and ok.json() == {"success": True}
    users = {u["id"]: u for u in admin.get("/api/admin/users", params={"account_id": account["id"]}).json()["users"]}
    assert users[first["id"]]["display_name"] == "Renamed"
    assert (users[first["id"]]["username"], users[first["id"]]["email"], users[first["id"]]["role"]) == (
        first["username"], first["email"], "agent")
    assert users[second["id"]]["display_name"] == "Second"

    assert admin.put(f"/api/admin/users/{first['id']}", json={"role": "admin"}).status_code == 200
    users = {u["id"]: u for u in admin.get("/api/admin/users", params={"account_id": account["id"]}).json()["users"]}
    assert (users[first["id"]]["role"], users[first["id"]]["is_admin"]) == ("admin", True)
    assert users[first["id"]]["display_name"] == "Renamed"

    _assert_error(admin.put(f"/api/admin/users/{first['id']}", json={"username": second["username"]}), 409,
                  "A user with this username already exists")
    _assert_error(admin.put(f"/api/admin/users/{first['id']}", json={"email": second["email"]}), 409,
                  "A user with this email already exists")
    _assert_error(admin.put(f"/api/admin/users/{first['id']}", json={"username": " "}), 400,
                  "username cannot be empty")
    _assert_error(admin.put(f"/api/admin/users/{uuid.uuid4()}", json={"display_name": "x"}), 404, "User not found")

    # Toggle: inactive users cannot log in.
    assert admin.patch(f"/api/admin/users/{first['id']}/toggle").status_code == 200
    users = {u["id"]: u for u in admin.get("/api/admin/users", params={"account_id": account["id"]}).json()["users"]}
    assert users[first["id"]]["is_active"] is False
    _assert_error(client.post("/api/auth/login", json={"username": first["username"], "password": "initial-pass"}),
                  401, "invalid credentials")
    assert admin.patch(f"/api/admin/users/{first['id']}/toggle").status_code == 200
    _assert_error(admin.patch(f"/api/admin/users/{uuid.uuid4()}/toggle"), 404, "User not found")

    # Password reset.
    _assert_error(admin.patch(f"/api/admin/users/{first['id']}/password", json={"password": ""}), 400,
                  "Password is required")
    _assert_error(admin.patch(f"/api/admin/users/{uuid.uuid4()}/password", json={"password": "whatever1"}), 404,
                  "User not found")
    assert admin.patch(f"/api/admin/users/{first['id']}/password", json={"password": "brand-new-pw"}).json() == {
        "success": True}
    assert client.post("/api/auth/login", json={"username": first["username"], "password": "brand-new-pw"}) \
        .status_code == 200
    _assert_error(client.post("/api/auth/login", json={"username": first["username"], "password": "initial-pass"}),
                  401, "invalid credentials")


def test_user_delete_guards(admin: httpx.Client, admin_token: str, database: str) -> None:
    import jwt

    me = jwt.decode(admin_token, options={"verify_signature": False})
    _assert_error(admin.delete(f"/api/admin/users/{me['user_id']}"), 400,
                  "No puedes eliminar tu propia cuenta de usuario")

    account = _new_account(admin)
    other_super = _new_user(admin, account["id"])
    support.run_sql(database, "UPDATE users SET is_super_admin = TRUE WHERE id = $1", [uuid.UUID(other_super["id"])])
    _assert_error(admin.delete(f"/api/admin/users/{other_super['id']}"), 400,
                  "No se puede eliminar un super administrador")

    _assert_error(admin.delete(f"/api/admin/users/{uuid.uuid4()}"), 404, "User not found")

    victim = _new_user(admin, account["id"])
    deleted = admin.delete(f"/api/admin/users/{victim['id']}")
    assert deleted.status_code == 200 and deleted.json() == {"success": True}
    _assert_error(admin.get(f"/api/admin/users/{victim['id']}/accounts"), 404, "User not found")
    _assert_error(admin.delete(f"/api/admin/users/{victim['id']}"), 404, "User not found")


# -- memberships ------------------------------------------------------------------------------------
def test_memberships_link_default_and_unlink(admin: httpx.Client, client: httpx.Client) -> None:
    home, second, third = _new_account(admin, name="A home"), _new_account(admin, name="B second"), \
        _new_account(admin, name="C third")
    user = _new_user(admin, home["id"], role="admin")

    links = admin.get(f"/api/admin/users/{user['id']}/accounts")
    assert links.status_code == 200
    [only] = links.json()["accounts"]
    assert set(only) == {"id", "account_id", "account_name", "role", "is_default"}
    assert (only["account_id"], only["role"], only["is_default"]) == (home["id"], "admin", True)

    ok = admin.post(f"/api/admin/users/{user['id']}/accounts", json={"account_id": third["id"]})
    assert ok.status_code == 200 and ok.json() == {"success": True}
    # is_default moves the default: exactly one default afterwards.
    ok = admin.post(f"/api/admin/users/{user['id']}/accounts",
                    json={"account_id": second["id"], "role": "admin", "is_default": True})
    assert ok.status_code == 200
    links = admin.get(f"/api/admin/users/{user['id']}/accounts").json()["accounts"]
    assert [(link["account_id"], link["role"], link["is_default"]) for link in links] == [
        (second["id"], "admin", True), (home["id"], "admin", False), (third["id"], "agent", False)]

    # Login now lands in the default account.
    login = client.post("/api/auth/login", json={"username": user["username"], "password": "initial-pass"})
    assert login.status_code == 200
    assert login.json()["user"]["account_id"] == second["id"]
    assert login.json()["user"]["account_name"] == "B second"
    assert len(login.json()["accounts"]) == 3

    # Re-linking only updates the role.
    assert admin.post(f"/api/admin/users/{user['id']}/accounts",
                      json={"account_id": third["id"], "role": "admin"}).status_code == 200
    links = {link["account_id"]: link for link in admin.get(f"/api/admin/users/{user['id']}/accounts").json()[
        "accounts"]}
    assert (links[third["id"]]["role"], links[third["id"]]["is_default"]) == ("admin", False)
    assert len(links) == 3

    unlinked = admin.delete(f"/api/admin/users/{user['id']}/accounts/{third['id']}")
    assert unlinked.status_code == 200 and unlinked.json() == {"success": True}
    assert {link["account_id"] for link in admin.get(f"/api/admin/users/{user['id']}/accounts").json()[
        "accounts"]} == {home["id"], second["id"]}
    _assert_error(admin.delete(f"/api/admin/users/{user['id']}/accounts/{third['id']}"), 404, "Membership not found")


def test_membership_errors(admin: httpx.Client) -> None:
    account = _new_account(admin)
    user = _new_user(admin, account["id"])
    _assert_error(admin.post(f"/api/admin/users/{user['id']}/accounts", json={"account_id": "bad"}), 400,
                  "Invalid account_id")
    _assert_error(admin.post(f"/api/admin/users/{user['id']}/accounts", json={"account_id": str(uuid.uuid4())}),
                  404, "Account not found")
    _assert_error(admin.post(f"/api/admin/users/{uuid.uuid4()}/accounts", json={"account_id": account["id"]}),
                  404, "User not found")
    _assert_error(admin.post(f"/api/admin/users/{user['id']}/accounts",
                             json={"account_id": account["id"], "role": "boss"}), 400,
                  "role must be one of super_admin, admin, agent")
    _assert_error(admin.get(f"/api/admin/users/{uuid.uuid4()}/accounts"), 404, "User not found")
    bad_type = admin.post(f"/api/admin/users/{user['id']}/accounts",
                          json={"account_id": account["id"], "is_default": "yes"})
    assert bad_type.status_code == 400 and bad_type.json()["error"] == "Invalid request"


# -- error hygiene ----------------------------------------------------------------------------------
def test_over_long_user_fields_are_rejected_without_driver_text(admin: httpx.Client) -> None:
    account = _new_account(admin)
    suffix = uuid.uuid4().hex[:8]
    base = {"account_id": account["id"], "username": f"long_{suffix}", "email": f"long_{suffix}@example.test",
            "password": "pw"}
    for field in ("username", "email", "display_name"):
        response = admin.post("/api/admin/users", json={**base, field: "x" * 300})
        _assert_no_leak(response)
        assert 400 <= response.status_code < 500, (field, response.text)
    user = _new_user(admin, account["id"])
    for field in ("username", "email", "display_name"):
        response = admin.put(f"/api/admin/users/{user['id']}", json={field: "y" * 300})
        _assert_no_leak(response)
        assert 400 <= response.status_code < 500, (field, response.text)


def test_over_long_account_fields_are_rejected_without_driver_text(admin: httpx.Client) -> None:
    for body in ({"name": "n" * 300}, {"name": "ok", "slug": "s" * 300}, {"name": "ok", "plan": "p" * 60}):
        response = admin.post("/api/admin/accounts", json=body)
        _assert_no_leak(response)
        assert 400 <= response.status_code < 500, (body, response.text)
    account = _new_account(admin)
    for body in ({"name": "n" * 300}, {"slug": "s" * 300}, {"plan": "p" * 60}):
        response = admin.put(f"/api/admin/accounts/{account['id']}", json=body)
        _assert_no_leak(response)
        assert 400 <= response.status_code < 500, (body, response.text)
    # Nothing was changed by the rejected updates.
    assert admin.get(f"/api/admin/accounts/{account['id']}").json()["account"]["name"] == account["name"]


def test_over_long_settings_fields_are_rejected_without_driver_text(client: httpx.Client, tenant: Tenant) -> None:
    for path, body in [("/api/settings/profile", {"name": "x" * 300}),
                       ("/api/settings/profile", {"email": "x" * 300}),
                       ("/api/settings/account", {"name": "x" * 300})]:
        response = client.put(path, json=body, headers=tenant.headers)
        _assert_no_leak(response)
        assert 400 <= response.status_code < 500, (path, body, response.text)


def test_nul_characters_and_out_of_range_numbers_are_400(admin: httpx.Client) -> None:
    account = _new_account(admin)
    suffix = uuid.uuid4().hex[:8]
    cases = [
        ("POST", "/api/admin/accounts", {"name": "a\x00b"}),
        ("POST", "/api/admin/accounts", {"name": "ok", "max_devices": 2**40}),
        ("PUT", f"/api/admin/accounts/{account['id']}", {"slug": "s\x00"}),
        ("PUT", f"/api/admin/accounts/{account['id']}", {"max_devices": 2**31}),
        ("POST", "/api/admin/users", {"account_id": account["id"], "username": f"nul\x00{suffix}",
                                      "email": f"nul_{suffix}@example.test", "password": "pw"}),
    ]
    for method, path, body in cases:
        response = admin.request(method, path, json=body)
        _assert_no_leak(response)
        assert response.status_code == 400, (method, path, response.text)
    message = admin.post("/api/admin/accounts", json={"name": "n" * 256}).json()["error"]
    assert message == "name is too long (max 255 characters)"
    # The limits are inclusive: exactly 255 characters is fine.
    assert admin.post("/api/admin/accounts", json={"name": "n" * 255}).status_code == 201


def test_out_of_range_paging_numbers_fall_back_to_defaults(admin: httpx.Client) -> None:
    for params in ({"offset": str(10**20)}, {"limit": str(10**20)}, {"offset": str(-(10**20))},
                   {"limit": "abc", "offset": "x"}):
        response = admin.get("/api/admin/accounts", params=params)
        _assert_no_leak(response)
        assert response.status_code == 200, (params, response.text)
        assert response.json()["accounts"], params
