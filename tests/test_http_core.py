"""The request pipeline (spec §0–§1): body decoding and limits, routing errors, CORS, security headers,
request ids, rate limiting, health/readiness, and database-down behaviour."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from clarin.http.headers import HSTS, SECURITY_HEADERS
from tests import support
from tests.conftest import Tenant

ALLOWED_ORIGIN = "http://localhost:3000"
INVALID_REQUEST = "Invalid request"


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS:
        assert response.headers.get(name) == value, (name, response.status_code, dict(response.headers))
    assert HSTS[0] not in response.headers  # not production


def assert_error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"success": False, "error": message}
    assert response.headers["content-type"] == "application/json"
    assert_security_headers(response)


def assert_invalid_request(response: httpx.Response) -> None:
    """400 envelope for body-decode failures; an optional ``detail`` key names the problem."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"] == INVALID_REQUEST
    assert set(body) <= {"success", "error", "detail"}
    assert_security_headers(response)


# -- body decoding ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw", [b'{"username": ', b"not json", b'{"username": "a",}', b"\xff\xfe", b'["a", "b"]', b'"text"', b"42"]
)
def test_malformed_json_is_400(client: httpx.Client, raw: bytes) -> None:
    response = client.post("/api/auth/login", content=raw, headers={"content-type": "application/json"})
    assert_invalid_request(response)


@pytest.mark.parametrize(
    "body", [{"username": 123, "password": "x"}, {"username": "a", "password": None}, {"username": ["a"]}]
)
def test_wrong_types_are_400(client: httpx.Client, body: dict[str, object]) -> None:
    assert_invalid_request(client.post("/api/auth/login", json=body))


def test_wrong_types_on_authenticated_routes_are_400(client: httpx.Client, tenant: Tenant) -> None:
    response = client.post("/api/auth/switch-account", json={"account_id": 5}, headers=tenant.headers)
    assert_invalid_request(response)


def test_unknown_fields_are_ignored(client: httpx.Client, tenant: Tenant) -> None:
    response = client.post("/api/auth/login", json={"username": tenant.username, "password": tenant.password,
                                                    "remember_me": True, "extra": {"nested": [1, 2]}})
    assert response.status_code == 200, response.text


def test_empty_body_counts_as_an_empty_object(client: httpx.Client) -> None:
    assert_error(client.post("/api/auth/login", content=b""), 401, "invalid credentials")
    assert_error(client.post("/api/auth/login", content=b"  \n"), 401, "invalid credentials")


@pytest.fixture(scope="module")
def small_body_server(database: str, server: support.ServerProcess, log_dir: Path) -> Iterator[support.ServerProcess]:
    # Depends on ``server`` so the shared database is migrated before this one starts.
    with support.running_server(support.base_env(database, BODY_LIMIT="2048"), log_dir, "body-limit") as srv:
        yield srv


def test_body_over_the_limit_with_content_length_is_413(small_body_server: support.ServerProcess) -> None:
    payload = b'{"username": "' + b"a" * 4000 + b'", "password": "x"}'
    response = httpx.post(small_body_server.url + "/api/auth/login", content=payload,
                          headers={"content-type": "application/json"}, timeout=15)
    assert response.request.headers["content-length"] == str(len(payload))
    assert_error(response, 413, "Request Entity Too Large")
    # Just under the limit is decoded normally.
    fits = b'{"username": "' + b"a" * 1900 + b'", "password": "x"}'
    assert_error(httpx.post(small_body_server.url + "/api/auth/login", content=fits, timeout=15), 401,
                 "invalid credentials")


def test_body_over_the_limit_streamed_chunked_is_413(small_body_server: support.ServerProcess) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"username": "'
        for _ in range(10):
            yield b"b" * 512
        yield b'", "password": "x"}'

    response = httpx.post(small_body_server.url + "/api/auth/login", content=chunks(), timeout=15)
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "Request Entity Too Large")

    def small_chunks() -> Iterator[bytes]:
        yield b'{"username": "nobody", '
        yield b'"password": "x"}'

    streamed_ok = httpx.post(small_body_server.url + "/api/auth/login", content=small_chunks(), timeout=15)
    assert_error(streamed_ok, 401, "invalid credentials")
    # The server is still healthy after rejecting bodies.
    assert httpx.get(small_body_server.url + "/health", timeout=5).status_code == 200


# -- routing errors ---------------------------------------------------------------------------------
def test_unknown_route_outside_api_is_404(client: httpx.Client) -> None:
    assert_error(client.get("/x"), 404, "Cannot GET /x")
    assert_error(client.post("/nothing/here"), 404, "Cannot POST /nothing/here")


def test_unknown_api_route_is_401_without_token_and_404_with_one(client: httpx.Client, tenant: Tenant) -> None:
    assert_error(client.get("/api/no-such-thing"), 401, "Unauthorized")
    assert_error(client.get("/api/no-such-thing", headers={"Authorization": "Bearer junk"}), 401, "Invalid token")
    assert_error(client.get("/api/no-such-thing", headers=tenant.headers), 404, "Cannot GET /api/no-such-thing")
    assert_error(client.delete("/api/leads/1/2/3/4", headers=tenant.headers), 404,
                 "Cannot DELETE /api/leads/1/2/3/4")


def test_wrong_method_is_405_with_allow(client: httpx.Client, tenant: Tenant) -> None:
    response = client.delete("/health")
    assert_error(response, 405, "Method Not Allowed")
    assert response.headers["allow"] == "GET"
    response = client.get("/api/auth/login")
    assert_error(response, 405, "Method Not Allowed")
    assert response.headers["allow"] == "POST"
    response = client.patch("/api/me", headers=tenant.headers)
    assert_error(response, 405, "Method Not Allowed")
    assert response.headers["allow"] == "GET"


def test_paths_are_case_insensitive_with_optional_trailing_slash(client: httpx.Client, tenant: Tenant) -> None:
    for path in ("/API/ME", "/api/me/", "/Api/Me/"):
        response = client.get(path, headers=tenant.headers)
        assert response.status_code == 200, path
        assert response.json()["user"]["id"] == tenant.user_id


# -- CORS -------------------------------------------------------------------------------------------
def test_cors_preflight_from_allowed_origin(client: httpx.Client) -> None:
    response = client.options("/api/leads", headers={
        "Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    methods = set(response.headers["access-control-allow-methods"].split(","))
    assert {"GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"} <= methods
    allowed_headers = {h.lower() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed_headers
    assert_security_headers(response)


def test_cors_preflight_from_foreign_origin_gets_no_allow_origin(client: httpx.Client) -> None:
    response = client.options("/api/leads", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert response.status_code == 204
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-credentials" not in response.headers
    assert_security_headers(response)


def test_cors_headers_on_simple_requests(client: httpx.Client) -> None:
    allowed = client.get("/health", headers={"Origin": "http://localhost:8080"})
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:8080"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "Origin" in allowed.headers["vary"]
    # Errors carry CORS headers too, so the browser can read them.
    error = client.get("/api/me", headers={"Origin": ALLOWED_ORIGIN})
    assert error.status_code == 401
    assert error.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    foreign = client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in foreign.headers
    assert "access-control-allow-origin" not in client.get("/health").headers


# -- security headers and request ids ---------------------------------------------------------------
def test_security_headers_on_every_kind_of_response(client: httpx.Client, tenant: Tenant) -> None:
    responses = [
        client.get("/health"),
        client.get("/ready"),
        client.get("/api/me", headers=tenant.headers),
        client.get("/api/me"),
        client.get("/x"),
        client.delete("/health"),
        client.post("/api/auth/login", content=b"{"),
        client.get("/ws"),
        client.get(f"/api/admin/accounts/{uuid.uuid4()}", headers=tenant.headers),
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 401, 404, 405, 400, 426, 403]
    for response in responses:
        assert_security_headers(response)


def test_request_id_is_echoed_or_generated(client: httpx.Client) -> None:
    echoed = client.get("/health", headers={"X-Request-ID": "trace-abc.123_X"})
    assert echoed.headers["x-request-id"] == "trace-abc.123_X"
    error = client.get("/x", headers={"X-Request-ID": "err-1"})
    assert error.headers["x-request-id"] == "err-1"

    generated = [client.get("/health").headers["x-request-id"] for _ in range(2)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in generated)
    assert generated[0] != generated[1]
    # Unsafe or oversized ids are replaced, never reflected.
    for bad in ("has spaces", "x" * 65, "<script>", "a;b"):
        rid = client.get("/health", headers={"X-Request-ID": bad}).headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", rid), bad


# -- rate limiting ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def limited_server(database: str, server: support.ServerProcess, log_dir: Path) -> Iterator[support.ServerProcess]:
    # TRUST_PROXY lets each test use its own X-Forwarded-For address, so readiness probes of the
    # fixture (from 127.0.0.1) do not count against the client under test.
    env = support.base_env(database, RATE_LIMIT="5", RATE_LIMIT_WINDOW="60", TRUST_PROXY="1")
    with support.running_server(env, log_dir, "rate-limit") as srv:
        yield srv


def _random_ip() -> str:
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


def _unused_client_ip(base_url: str) -> str:
    """A never-seen client address, handed out at least 3 s before the fixed window ends (so a short
    burst of requests stays inside one window)."""
    probe = httpx.get(base_url + "/health", headers={"X-Forwarded-For": _random_ip()}, timeout=5)
    reset_in = int(probe.headers["x-ratelimit-reset"])
    if reset_in < 3:
        time.sleep(reset_in + 0.2)
    return _random_ip()


def test_rate_limit_answers_429_on_the_sixth_request(limited_server: support.ServerProcess) -> None:
    ip = _unused_client_ip(limited_server.url)
    # Only the first X-Forwarded-For address (the client) counts.
    with httpx.Client(base_url=limited_server.url, headers={"X-Forwarded-For": f"{ip}, 192.0.2.1"},
                      timeout=10) as c:
        responses = [c.get(path) for path in ("/health", "/health", "/x", "/api/me", "/health")]
        assert [r.status_code for r in responses] == [200, 200, 404, 401, 200]
        assert [r.headers["x-ratelimit-limit"] for r in responses] == ["5"] * 5
        assert [r.headers["x-ratelimit-remaining"] for r in responses] == ["4", "3", "2", "1", "0"]
        for r in responses:
            assert 1 <= int(r.headers["x-ratelimit-reset"]) <= 60

        limited = c.get("/health")
        assert_error(limited, 429, "too many requests, please slow down")
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.headers["x-ratelimit-remaining"] == "0"
        assert_error(c.post("/api/auth/login", json={}), 429, "too many requests, please slow down")
        # /ws is exempt from the limiter.
        assert c.get("/ws").status_code == 426

    # Other clients have their own budget.
    other = httpx.get(limited_server.url + "/health", headers={"X-Forwarded-For": _random_ip()}, timeout=10)
    assert other.status_code == 200
    assert other.headers["x-ratelimit-remaining"] == "4"


def test_rate_limit_headers_absent_when_disabled(client: httpx.Client) -> None:
    response = client.get("/health")
    assert "x-ratelimit-limit" not in response.headers


# -- health and readiness ---------------------------------------------------------------------------
def test_health_shape(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "time"}
    assert body["status"] == "ok"
    when = datetime.fromisoformat(body["time"].replace("Z", "+00:00"))
    assert when.tzinfo is not None
    assert abs((datetime.now(UTC) - when).total_seconds()) < 60
    assert_security_headers(response)


def test_ready_reports_database_and_redis(client: httpx.Client) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "redis": "ok"}


def test_plain_get_on_ws_is_426(client: httpx.Client) -> None:
    assert_error(client.get("/ws"), 426, "Upgrade Required")


# -- database down ----------------------------------------------------------------------------------
def test_database_gone_gives_503_without_driver_text(log_dir: Path) -> None:
    """A server whose database disappears (dropped on the shared PostgreSQL, which keeps running)."""
    name, dsn = support.create_database()
    try:
        with support.running_server(support.base_env(dsn), log_dir, "db-gone") as srv:
            token = support.login(srv.url, "admin", "admin-pass-123")
            assert httpx.get(srv.url + "/api/me", headers=support.auth(token), timeout=10).status_code == 200
            support.drop_database(name)

            ready = httpx.get(srv.url + "/ready", timeout=20)
            assert ready.status_code == 503
            assert ready.json() == {"status": "unavailable", "database": "unavailable", "redis": "ok"}
            for response in (
                httpx.get(srv.url + "/api/me", headers=support.auth(token), timeout=20),
                httpx.post(srv.url + "/api/auth/login", json={"username": "admin", "password": "x"}, timeout=20),
            ):
                assert response.status_code == 503, response.text
                assert response.json() == {"success": False, "error": "Service temporarily unavailable, please retry"}
                assert response.headers["retry-after"] == "2"
                assert_security_headers(response)
            # Endpoints that do not need the database keep answering.
            assert httpx.get(srv.url + "/health", timeout=5).status_code == 200
    finally:
        support.drop_database(name)
