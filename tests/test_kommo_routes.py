"""Kommo routes R105–R112 on a real server process whose KOMMO_* environment points at the fake Kommo server."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from tests import support
from tests.fake_kommo import MAIN_PIPELINE, SECOND_PIPELINE, FakeKommo, generate

DATA = generate(600, seed=23)
MAIN_LEADS = sum(1 for lead in DATA.leads.values() if lead["pipeline_id"] == MAIN_PIPELINE)
NOT_CONFIGURED = {"success": False, "error": "Kommo not configured"}


@dataclass
class Session:
    account_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return support.auth(self.token)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeKommo]:
    with FakeKommo(DATA) as server:
        yield server


@pytest.fixture(scope="module")
def kommo_server(services: None, fake: FakeKommo, log_dir: Path) -> Iterator[support.ServerProcess]:
    name, dsn = support.create_database()
    env = support.base_env(
        dsn, KOMMO_SUBDOMAIN="x", KOMMO_ACCESS_TOKEN="t", KOMMO_BASE_URL=fake.url, KOMMO_POLL_INTERVAL="0.5",
        KOMMO_RATE_LIMIT="100", KOMMO_RETRY_BASE_DELAY="0.01", KOMMO_RETRY_MAX_DELAY="0.1", KOMMO_TIMEOUT="5",
        KOMMO_BACKOFF_MAX="2", DB_POOL_SIZE="5",
    )
    try:
        with support.running_server(env, log_dir, "kommo") as server:
            yield server
    finally:
        support.drop_database(name)


@pytest.fixture(scope="module")
def new_session(kommo_server: support.ServerProcess) -> Callable[[], Session]:
    admin = support.auth(support.login(kommo_server.url, "admin", "admin-pass-123"))

    def make() -> Session:
        suffix = uuid.uuid4().hex[:8]
        account = httpx.post(kommo_server.url + "/api/admin/accounts", json={"name": f"K {suffix}"}, headers=admin)
        assert account.status_code == 201, account.text
        account_id = account.json()["account"]["id"]
        user = httpx.post(kommo_server.url + "/api/admin/users", headers=admin, json={
            "account_id": account_id, "username": f"k_{suffix}", "email": f"k_{suffix}@example.test",
            "password": f"pw-{suffix}-secret", "role": "admin"})
        assert user.status_code == 201, user.text
        return Session(account_id, support.login(kommo_server.url, f"k_{suffix}", f"pw-{suffix}-secret"))

    return make


@pytest.fixture
def api(kommo_server: support.ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=kommo_server.url, timeout=15) as client:
        yield client


def wait_for(check: Callable[[], Any], timeout: float = 15.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s (last value {value!r})")
        time.sleep(every)


# -- not configured (the session server has no KOMMO_* variables) ------------------------------------------
def test_without_kommo_only_status_answers(client: httpx.Client, tenant: Any) -> None:
    status = client.get("/api/kommo/status", headers=tenant.headers)
    assert status.status_code == 200
    assert status.json() == {"success": True, "configured": False, "subdomain": ""}
    for method, path in [("POST", "/api/kommo/sync"), ("GET", "/api/kommo/pipelines"),
                         ("GET", "/api/kommo/connected"), ("POST", "/api/kommo/pipelines/1/connect"),
                         ("DELETE", "/api/kommo/pipelines/1/connect"), ("GET", "/api/kommo/sync/status"),
                         ("GET", "/api/kommo/sync/full-status")]:
        response = client.request(method, path, headers=tenant.headers)
        assert (response.status_code, response.json()) == (503, NOT_CONFIGURED), (method, path)


# -- configured -----------------------------------------------------------------------------------------------
def test_status_calls_kommo_live(api: httpx.Client, new_session: Callable[[], Session]) -> None:
    session = new_session()
    assert api.get("/api/kommo/status").status_code == 401
    response = api.get("/api/kommo/status", headers=session.headers)
    assert response.json() == {"success": True, "configured": True, "subdomain": "x", "connected": True,
                               "account": {"id": 31337, "name": "Fake Kommo", "currency": "PEN", "country": "PE"}}


def test_connect_syncs_in_the_background_and_reports(
    api: httpx.Client, kommo_server: support.ServerProcess, new_session: Callable[[], Session]
) -> None:
    session = new_session()
    h = session.headers
    assert api.get("/api/kommo/sync/full-status", headers=h).json() == {"success": True, "status": None}
    assert api.get("/api/kommo/connected", headers=h).json() == {"success": True, "connected": []}
    assert api.get("/api/kommo/pipelines", headers=h).json() == {"success": True, "pipelines": [
        {"id": MAIN_PIPELINE, "name": "Ventas", "is_main": True, "stages": 7, "connected": False},
        {"id": SECOND_PIPELINE, "name": "Postventa", "is_main": False, "stages": 5, "connected": False},
    ]}
    for bad in ("abc", "12x", "-5", "0", "1_000", "99999999999999999999"):
        response = api.post(f"/api/kommo/pipelines/{bad}/connect", headers=h)
        assert (response.status_code, response.json()) == (400, {"success": False, "error": "Invalid pipeline ID"})
    missing = api.post("/api/kommo/pipelines/999/connect", headers=h)
    assert (missing.status_code, missing.json()) == (
        500, {"success": False, "error": "failed to sync pipeline metadata: pipeline 999 not found in Kommo"})

    with ws_connect(f"{kommo_server.ws_url}?token={session.token}") as ws:
        response = api.post(f"/api/kommo/pipelines/{MAIN_PIPELINE}/connect", headers=h)
        assert response.status_code == 200, response.text
        body = response.json()
        connected = body["connected_pipeline"]
        assert set(body) == {"success", "connected_pipeline"} and body["success"] is True
        assert set(connected) == {"id", "account_id", "kommo_pipeline_id", "pipeline_id", "enabled", "created_at"}
        assert (connected["account_id"], connected["kommo_pipeline_id"], connected["enabled"]) == (
            session.account_id, MAIN_PIPELINE, True)
        event = wait_for(lambda: _lead_update(ws))
    # the spec's Kommo payload plus the action every CRM lead_update carries (docs/EVENTS.md)
    assert event == {"action": "kommo_synced", "pipeline_id": MAIN_PIPELINE, "count": MAIN_LEADS}

    leads = api.get("/api/leads", headers=h).json()["leads"]
    assert len(leads) == MAIN_LEADS
    assert {lead["source"] for lead in leads} == {"kommo"}
    rows = wait_for(lambda: api.get("/api/kommo/connected", headers=h).json()["connected"])
    assert len(rows) == 1
    row = rows[0]
    assert row["pipeline_name"] == "Ventas" and row["pipeline_id"] == connected["pipeline_id"]
    assert row["enabled"] is True and "last_synced_at" in row
    flags = {p["id"]: p["connected"] for p in api.get("/api/kommo/pipelines", headers=h).json()["pipelines"]}
    assert flags == {MAIN_PIPELINE: True, SECOND_PIPELINE: False}
    worker = wait_for(lambda: _worker(api, h, lambda st: st["connected_count"] >= 1))  # the poller's next tick
    assert worker["success"] is True
    status = worker["status"]
    assert set(status) == {"running", "queue_length", "last_check", "last_synced_pipeline", "connected_count"}
    assert status["running"] is True
    assert isinstance(status["queue_length"], int) and status["last_synced_pipeline"].isdigit()
    pipelines = api.get("/api/pipelines", headers=h).json()["pipelines"]
    kommo = [p for p in pipelines if p.get("kommo_id") == MAIN_PIPELINE]
    assert len(kommo) == 1 and kommo[0]["is_default"] is True and len(kommo[0]["stages"]) == 5
    assert sum(p["is_default"] for p in pipelines) == 1


def _worker(api: httpx.Client, headers: dict[str, str], check: Callable[[dict[str, Any]], bool]) -> Any:
    body = api.get("/api/kommo/sync/status", headers=headers).json()
    return body if check(body["status"]) else None


def _lead_update(ws: Any) -> dict[str, Any] | None:
    try:
        frame = json.loads(ws.recv(timeout=0.5))
    except TimeoutError:
        return None
    return frame["data"] if frame.get("event") == "lead_update" else None


def test_full_sync_runs_once_per_account_with_progress(
    api: httpx.Client, fake: FakeKommo, new_session: Callable[[], Session]
) -> None:
    session = new_session()
    h = session.headers
    for pipeline in (MAIN_PIPELINE, SECOND_PIPELINE):
        assert api.post(f"/api/kommo/pipelines/{pipeline}/connect", headers=h).status_code == 200
    fake.slow_next(3.0, path="/leads/pipelines")  # the full sync's first Kommo call: keeps it running a while
    started = api.post("/api/kommo/sync", headers=h)
    assert (started.status_code, started.json()) == (
        200, {"success": True, "message": "Sincronización iniciada en segundo plano"})
    again = api.post("/api/kommo/sync", headers=h)
    assert (again.status_code, again.json()) == (
        409, {"success": False, "error": "Ya hay una sincronización en curso para esta cuenta"})
    running = api.get("/api/kommo/sync/full-status", headers=h).json()["status"]
    assert running["running"] is True and set(running) == {"running", "progress", "started_at"}
    assert running["progress"].startswith(("Iniciando", "Sincronizando"))
    done = wait_for(lambda: _finished(api, h))
    assert set(done) == {"running", "progress", "result", "started_at", "done_at"}
    assert done["progress"] == "Completado"
    result = done["result"]
    assert set(result) == {"pipelines", "stages", "tags", "leads", "contacts", "duration", "synced_at"}
    assert (result["pipelines"], result["stages"], result["tags"], result["leads"]) == (2, 0, 30, len(DATA.leads))
    assert result["contacts"] > 0 and result["duration"].endswith("s")
    assert len(api.get("/api/leads", headers=h).json()["leads"]) == len(DATA.leads)
    # The worker may be mid-way through its own pass of these pipelines: a new full sync is accepted again.
    assert api.post("/api/kommo/sync", headers=h).status_code == 200
    wait_for(lambda: _finished(api, h))


def _finished(api: httpx.Client, headers: dict[str, str]) -> dict[str, Any] | None:
    status = api.get("/api/kommo/sync/full-status", headers=headers).json()["status"]
    return status if status and not status["running"] else None


def test_disconnect_and_tenant_isolation(api: httpx.Client, new_session: Callable[[], Session]) -> None:
    first, second = new_session(), new_session()
    a = api.post(f"/api/kommo/pipelines/{MAIN_PIPELINE}/connect", headers=first.headers).json()["connected_pipeline"]
    assert api.get("/api/kommo/connected", headers=second.headers).json()["connected"] == []
    flags = api.get("/api/kommo/pipelines", headers=second.headers).json()["pipelines"]
    assert all(p["connected"] is False for p in flags)
    b = api.post(f"/api/kommo/pipelines/{MAIN_PIPELINE}/connect", headers=second.headers).json()["connected_pipeline"]
    assert a["pipeline_id"] != b["pipeline_id"] and a["account_id"] != b["account_id"]
    for session in (first, second):
        wait_for(lambda s=session: len(api.get("/api/leads", headers=s.headers).json()["leads"]) == MAIN_LEADS)
    second_stages = {s["id"] for p in api.get("/api/pipelines", headers=second.headers).json()["pipelines"]
                     if p.get("kommo_id") for s in p["stages"]}
    first_stages = {s["id"] for p in api.get("/api/pipelines", headers=first.headers).json()["pipelines"]
                    if p.get("kommo_id") for s in p["stages"]}
    assert len(first_stages) == len(second_stages) == 5 and not first_stages & second_stages

    gone = api.delete(f"/api/kommo/pipelines/{MAIN_PIPELINE}/connect", headers=first.headers)
    assert (gone.status_code, gone.json()) == (200, {"success": True})
    assert api.delete("/api/kommo/pipelines/123456/connect", headers=first.headers).json() == {"success": True}
    bad = api.delete("/api/kommo/pipelines/x/connect", headers=first.headers)
    assert (bad.status_code, bad.json()["error"]) == (400, "Invalid pipeline ID")
    rows = api.get("/api/kommo/connected", headers=first.headers).json()["connected"]
    assert [(r["kommo_pipeline_id"], r["enabled"]) for r in rows] == [(MAIN_PIPELINE, False)]
    assert not [p for p in api.get("/api/pipelines", headers=first.headers).json()["pipelines"] if p.get("kommo_id")]
    assert len(api.get("/api/leads", headers=first.headers).json()["leads"]) == MAIN_LEADS  # data stays
    rows = api.get("/api/kommo/connected", headers=second.headers).json()["connected"]
    assert [(r["kommo_pipeline_id"], r["enabled"]) for r in rows] == [(MAIN_PIPELINE, True)]


def test_a_refused_token_shows_in_both_statuses(api: httpx.Client, fake: FakeKommo,
                                                new_session: Callable[[], Session]) -> None:
    session = new_session()
    h = session.headers
    assert api.post(f"/api/kommo/pipelines/{MAIN_PIPELINE}/connect", headers=h).status_code == 200
    wait_for(lambda: len(api.get("/api/leads", headers=h).json()["leads"]) == MAIN_LEADS)
    fake.token = "rotated"  # Kommo now refuses the configured token
    try:
        status = api.get("/api/kommo/status", headers=h).json()
        assert status["success"] is True and status["connected"] is False and "account" not in status
        assert status["error"].startswith("kommo API /account returned 401")
        worker = wait_for(lambda: _worker_error(api, h, "returned 401"))
        assert worker["running"] is True
        assert len(api.get("/api/leads", headers=h).json()["leads"]) == MAIN_LEADS
    finally:
        fake.token = "t"
    wait_for(lambda: "last_error" not in api.get("/api/kommo/sync/status", headers=h).json()["status"])
    assert api.get("/api/kommo/status", headers=h).json()["connected"] is True


def _worker_error(api: httpx.Client, headers: dict[str, str], text: str) -> dict[str, Any] | None:
    status = api.get("/api/kommo/sync/status", headers=headers).json()["status"]
    return status if text in status.get("last_error", "") else None
