"""Observability: Prometheus /metrics (multi-process merge), structured JSON logs with request ids, and
the production-only headers (HSTS)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from clarin.http.headers import HSTS
from clarin.observability import metrics
from tests import support
from tests.conftest import Tenant

METRICS_TOKEN = "metrics-" + uuid.uuid4().hex
PROD_JWT_SECRET = "production-test-secret-" + uuid.uuid4().hex  # production refuses short secrets


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def _value(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(v for n, lbl, v in samples if n == name and all(lbl.get(k) == val for k, val in labels.items()))


# -- the shared (development) server --------------------------------------------------------------------
def test_metrics_count_requests_by_route_template(client: httpx.Client, tenant: Tenant) -> None:
    lead_id = uuid.uuid4()
    before = _samples(client.get("/metrics").text)
    for _ in range(3):
        assert client.get("/api/me", headers=tenant.headers).status_code == 200
    assert client.get(f"/api/leads/{lead_id}", headers=tenant.headers).status_code == 404
    assert client.get(f"/no/such/{lead_id}").status_code == 404

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    after = _samples(text)

    def delta(**labels: str) -> float:
        return (_value(after, "clarin_http_requests_total", **labels)
                - _value(before, "clarin_http_requests_total", **labels))

    assert delta(method="GET", route="/api/me", status="200") == 3
    assert delta(method="GET", route="/api/leads/:id", status="404") == 1
    assert delta(method="GET", route="<unmatched>", status="404") >= 1
    assert str(lead_id) not in text  # route templates, never raw paths
    assert _value(after, "clarin_http_request_duration_seconds_count", route="/api/me", status="200") >= 3
    assert _value(after, "clarin_http_request_duration_seconds_bucket", route="/api/me", le="+Inf") >= 3
    # Database pool and query latency.
    assert _value(after, "clarin_db_pool_connections", state="max") >= 2
    assert {"in_use", "idle", "waiting"} <= {lbl["state"] for n, lbl, _ in after if n == "clarin_db_pool_connections"}
    assert _value(after, "clarin_db_query_duration_seconds_count", query="get_user_by_id") >= 3
    assert "# TYPE clarin_whatsapp_devices gauge" in text
    assert _value(after, "clarin_background_worker_running", worker="whatsapp") >= 1


def test_metrics_carry_no_account_ids_by_default(server: support.ServerProcess, make_tenant) -> None:  # type: ignore[no-untyped-def]
    """Item 12: /metrics is public in development, so no tenant identifier may appear in it: sockets of two
    tenants show up only in the aggregate gauge unless METRICS_PER_ACCOUNT=true."""
    first, second = make_tenant(), make_tenant()

    def scrape() -> str:
        return httpx.get(server.url + "/metrics", timeout=10).text

    with connect(f"{server.ws_url}?token={first.token}") as one, connect(f"{server.ws_url}?token={second.token}") as two:
        for ws in (one, two):
            ws.send('{"event":"ping"}')
            assert ws.recv(timeout=5) == '{"event":"pong"}'
        text = scrape()
        assert _value(_samples(text), "clarin_ws_connections") >= 2
        assert first.account_id not in text and second.account_id not in text
        assert not [s for s in _samples(text) if s[0] == "clarin_ws_account_connections"]
    deadline = time.monotonic() + 5
    while _value(_samples(scrape()), "clarin_ws_connections") >= 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    text = scrape()
    assert first.account_id not in text and second.account_id not in text


# -- a production server with two workers -----------------------------------------------------------------
@pytest.fixture(scope="module")
def prod_server(database: str, server: support.ServerProcess, log_dir: Path) -> Iterator[support.ServerProcess]:
    # ENV=production: HSTS, Secure cookie, and JSON logs by default (LOG_FORMAT is deliberately not set).
    env = support.base_env(database, ENV="production", WORKERS="2", ACCESS_LOG="1", LOG_LEVEL="INFO",
                           METRICS_TOKEN=METRICS_TOKEN, DB_POOL_SIZE="4", METRICS_PER_ACCOUNT="true",
                           JWT_SECRET=PROD_JWT_SECRET)
    env.pop("LOG_FORMAT", None)
    with support.running_server(env, log_dir, "production") as srv:
        yield srv


def test_metrics_merge_every_worker(prod_server: support.ServerProcess) -> None:
    url = prod_server.url
    scrape = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    path = f"/api/merge-check-{uuid.uuid4().hex[:6]}"  # unmatched, unauthenticated: 401, cheap

    def samples() -> list[tuple[str, dict[str, str], float]]:
        return _samples(httpx.get(url + "/metrics", headers=scrape, timeout=10).text)

    def count(current: list[tuple[str, dict[str, str], float]]) -> float:
        return _value(current, "clarin_http_requests_total", method="GET", route="<unmatched>", status="401")

    before = count(samples())
    requests = 40
    for _ in range(requests):  # a new connection each time, whichever worker accepts it
        assert httpx.get(url + path, timeout=10).status_code == 401
    after = samples()
    assert count(after) - before == requests
    # Live gauges are summed over the workers: both pools (DB_POOL_SIZE=4 each) are in the scrape.
    assert _value(after, "clarin_db_pool_connections", state="max") == 2 * 4


def test_metrics_token_is_required_when_set(prod_server: support.ServerProcess) -> None:
    url = prod_server.url + "/metrics"
    assert httpx.get(url, timeout=10).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
    ok = httpx.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10)
    assert ok.status_code == 200
    assert "clarin_http_requests_total" in ok.text


def test_per_account_socket_gauge_is_an_explicit_opt_in(prod_server: support.ServerProcess) -> None:
    """METRICS_PER_ACCOUNT=true (this server) labels sockets by account, counted over both workers."""
    url = prod_server.url
    me = support.new_tenant(url, "admin-pass-123", "Socket")

    def mine() -> float:
        text = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10).text
        return _value(_samples(text), "clarin_ws_account_connections", account_id=me.account_id)

    def wait_for(expected: float) -> None:
        # The socket lives on one worker; the other one's gauges refresh every few seconds.
        deadline = time.monotonic() + 2 * metrics.REFRESH_SECONDS + 2
        while mine() != expected:
            assert time.monotonic() < deadline, f"clarin_ws_account_connections never reached {expected}"
            time.sleep(0.2)

    ws_url = prod_server.ws_url
    with connect(f"{ws_url}?token={me.token}") as one, connect(f"{ws_url}?token={me.token}"):
        one.send('{"event":"ping"}')
        assert one.recv(timeout=5) == '{"event":"pong"}'
        wait_for(2)
    wait_for(0)


@pytest.mark.parametrize(("extra", "expected"), [({}, 404), ({"METRICS_PUBLIC": "true"}, 200)])
def test_production_metrics_need_a_token_or_an_explicit_opt_in(
    database: str, server: support.ServerProcess, log_dir: Path, extra: dict[str, str], expected: int,
) -> None:
    """Item 12: with ENV=production and no METRICS_TOKEN, /metrics answers like an unknown path unless
    METRICS_PUBLIC=true says it is meant to be open (with a token: test_metrics_token_is_required_when_set)."""
    env = support.base_env(database, ENV="production", JWT_SECRET=PROD_JWT_SECRET, **extra)
    env.pop("METRICS_TOKEN", None)
    with support.running_server(env, log_dir, "production-metrics") as srv:
        response = httpx.get(srv.url + "/metrics", timeout=10)
        assert response.status_code == expected, response.text
        if expected == 404:
            assert response.json()["error"] == "Cannot GET /metrics"  # as for any unknown path
            assert "clarin_" not in response.text
        else:
            assert "clarin_http_requests_total" in response.text


def test_hsts_only_in_production(prod_server: support.ServerProcess, client: httpx.Client) -> None:
    production = httpx.get(prod_server.url + "/health", timeout=10)
    assert production.headers[HSTS[0]] == HSTS[1]
    error = httpx.get(prod_server.url + "/api/me", timeout=10)
    assert error.status_code == 401 and error.headers[HSTS[0]] == HSTS[1]
    assert HSTS[0] not in client.get("/health").headers  # the development server


def test_json_logs_carry_the_request_id(prod_server: support.ServerProcess) -> None:
    token = support.login(prod_server.url, "admin", "admin-pass-123")
    request_ids = {f"trace-{uuid.uuid4().hex[:12]}": path for path in ("/api/me", "/health", "/nope")}
    statuses = {}
    for request_id, path in request_ids.items():
        response = httpx.get(prod_server.url + path, headers={**support.auth(token), "X-Request-ID": request_id},
                             timeout=10)
        assert response.headers["x-request-id"] == request_id
        statuses[request_id] = response.status_code

    deadline = time.monotonic() + 5
    while True:
        lines = [line for line in prod_server.logs().splitlines() if line.strip()]
        docs = [json.loads(line) for line in lines]  # every line of the process is one JSON object
        access = {d.get("request_id"): d for d in docs if d.get("logger") == "clarin.access"}
        if all(rid in access for rid in request_ids) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for doc in docs:
        assert {"ts", "level", "logger", "msg"} <= set(doc), doc
    assert any(d["logger"] == "_granian" for d in docs)  # granian's own lines are JSON too
    for request_id, path in request_ids.items():
        line = access[request_id]
        assert line["method"] == "GET"
        assert line["path"] == path
        assert line["status"] == statuses[request_id]
        assert isinstance(line["duration_ms"], float | int)
        assert line["level"] == "INFO"
    me = access[next(rid for rid, p in request_ids.items() if p == "/api/me")]
    assert me["route"] == "/api/me"
    assert len(me["account_id"]) == 36
    assert "account_id" not in access[next(rid for rid, p in request_ids.items() if p == "/health")]


def test_json_formatter_uses_the_request_context_and_formats_exceptions() -> None:
    import io
    import logging

    from clarin.observability.logging import JsonFormatter, request_id_var

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"clarin.test.{uuid.uuid4().hex[:6]}")
    logger.addHandler(handler)
    logger.propagate = False
    token = request_id_var.set("req-42")
    try:
        logger.warning("inside a request: %s", "multi\nline")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        request_id_var.reset(token)
    logger.error("outside", extra={"status": 503, "route": "/api/x"})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3  # one object per line, newlines escaped
    first, second, third = (json.loads(line) for line in lines)
    assert first["request_id"] == "req-42" and first["msg"] == "inside a request: multi\nline"
    assert first["level"] == "WARNING" and first["ts"].endswith("Z")
    assert second["request_id"] == "req-42" and "ValueError: boom" in second["exc"]
    assert "request_id" not in third and third["status"] == 503 and third["route"] == "/api/x"
