"""Outgoing webhooks against a real server, real PostgreSQL/Redis and a real local HTTP receiver
(tests/webhook_support.py): CRUD and validation, signatures, every event family, retries, ordering, a hanging
receiver, the private-address rule, redelivery and test pings, giving up after the (scaled) 24 h."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from clarin.webhooks import signing
from clarin.webhooks.events import WEBHOOK_EVENTS
from tests import support
from tests.inbox_support import connected_device, new_phone
from tests.webhook_support import Receiver, receiver

PASSWORD = "admin-pass-123"
# Retries 1 ms, 6 ms, 30 ms, 180 ms, 0.7 s, 2.2 s …; "24 h" = 8.6 s.
FAST = {"WEBHOOK_ALLOW_PRIVATE": "true", "WEBHOOK_RETRY_SCALE": "0.0001", "WEBHOOK_POLL_INTERVAL": "0.05",
        "WEBHOOK_TIMEOUT": "4", "CAMPAIGN_DELAY_SCALE": "0.001", "CAMPAIGN_TICK": "0.2"}


@pytest.fixture(scope="module")
def hook_server(services: None, log_dir: Path) -> Iterator[support.ServerProcess]:
    name, dsn = support.create_database()
    try:
        with support.running_server(support.base_env(dsn, **FAST), log_dir, "webhooks") as srv:
            srv.dsn = dsn  # type: ignore[attr-defined]
            yield srv
    finally:
        support.drop_database(name)


@pytest.fixture(scope="module")
def rx() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


@pytest.fixture
def hc(hook_server: support.ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hook_server.url, timeout=20) as c:
        yield c


def tenant(server: support.ServerProcess) -> support.ServerTenant:
    return support.new_tenant(server.url, PASSWORD, "Hooks")


def subscribe(client: httpx.Client, headers: dict[str, str], url: str, events: list[str] | None = None,
              **extra: Any) -> dict[str, Any]:
    response = client.post("/api/webhooks", json={"url": url, "events": events or ["*"], **extra}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["webhook"]


def lead(client: httpx.Client, headers: dict[str, str], **extra: Any) -> dict[str, Any]:
    response = client.post("/api/leads", json={"phone": "+" + new_phone(), "name": "Hook lead", **extra},
                           headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["lead"]


def test_subscription_crud_and_validation(hc: httpx.Client, hook_server: support.ServerProcess, rx: Receiver) -> None:
    t = tenant(hook_server)
    created = subscribe(hc, t.headers, rx.url("/crud"), ["lead_update", "lead_update", "tag_update"],
                        description="n8n")
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 30  # generated, shown once
    assert created["events"] == ["lead_update", "tag_update"] and created["enabled"] is True
    got = hc.get(f"/api/webhooks/{created['id']}", headers=t.headers)
    assert got.status_code == 200 and "secret" not in got.json()["webhook"], got.text
    listed = hc.get("/api/webhooks", headers=t.headers).json()
    assert listed["success"] is True and [w["id"] for w in listed["webhooks"]] == [created["id"]]
    assert (listed["limit"], listed["offset"]) == (100, 0) and "secret" not in listed["webhooks"][0]
    mine = subscribe(hc, t.headers, rx.url("/crud2"), secret="my-own-secret-1234567")
    assert mine["secret"] == "my-own-secret-1234567"
    updated = hc.put(f"/api/webhooks/{created['id']}", json={"enabled": False}, headers=t.headers).json()["webhook"]
    assert updated["enabled"] is False and updated["description"] == "n8n" and updated["url"] == rx.url("/crud")
    for body, error in [
        ({"url": rx.url("/x"), "events": ["lead_update", "nope"]}, "unknown event: nope"),
        ({"url": rx.url("/x"), "events": []}, None),
        ({"url": "ftp://example.com/x", "events": ["*"]}, None),
        ({"url": "http://user:pw@127.0.0.1/x", "events": ["*"]}, None),
        ({"url": rx.url("/x"), "events": ["*"], "secret": "short"}, None),
    ]:
        response = hc.post("/api/webhooks", json=body, headers=t.headers)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["success"] is False and (error is None or response.json()["error"] == error)
    assert hc.put(f"/api/webhooks/{created['id']}", json={"events": ["typing"]}, headers=t.headers).status_code == 400
    assert hc.delete(f"/api/webhooks/{created['id']}", headers=t.headers).status_code == 200
    for method in ("GET", "PUT", "DELETE"):
        assert hc.request(method, f"/api/webhooks/{created['id']}", json={}, headers=t.headers).status_code == 404


def test_agents_are_refused(hc: httpx.Client, hook_server: support.ServerProcess) -> None:
    t = tenant(hook_server)
    admin = support.auth(support.login(hook_server.url, "admin", PASSWORD))
    suffix = uuid.uuid4().hex[:8]
    made = hc.post("/api/admin/users", json={"account_id": t.account_id, "username": f"agent_{suffix}",
                                             "email": f"agent_{suffix}@example.test", "password": "agent-pass-123",
                                             "role": "agent"}, headers=admin)
    assert made.status_code == 201, made.text
    agent = support.auth(support.login(hook_server.url, f"agent_{suffix}", "agent-pass-123"))
    for method, path in [("GET", "/api/webhooks"), ("POST", "/api/webhooks"),
                         ("GET", f"/api/webhooks/{uuid.uuid4()}")]:
        response = hc.request(method, path, json={"url": "https://example.com", "events": ["*"]}, headers=agent)
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "Forbidden: admin role required"


def test_signed_payload_and_every_event_family(hc: httpx.Client, hook_server: support.ServerProcess,
                                               rx: Receiver) -> None:
    t = tenant(hook_server)
    sub = subscribe(hc, t.headers, rx.url("/all"))
    device = connected_device(hc, t.headers, "Hook phone")
    phone = new_phone()
    assert hc.post(f"/api/dev/whatsapp/{device['id']}/inbound", json={"from": phone, "body": "hola"},
                   headers=t.headers).status_code == 200
    the_lead = lead(hc, t.headers)
    assert hc.post("/api/pipelines", json={"name": "Hook pipe"}, headers=t.headers).status_code == 201
    tag = hc.post("/api/tags", json={"name": f"hook {uuid.uuid4().hex[:6]}"}, headers=t.headers).json()["tag"]
    assert hc.post("/api/tags/assign", json={"entity_type": "lead", "entity_id": the_lead["id"], "tag_id": tag["id"]},
                   headers=t.headers).status_code == 200
    event = hc.post("/api/events", json={"name": "Hook event"}, headers=t.headers).json()
    event_id = (event.get("event") or event)["id"]
    assert hc.post(f"/api/events/{event_id}/participants", json={"name": "Guest", "phone": new_phone()},
                   headers=t.headers).status_code == 201
    assert hc.post("/api/quick-replies", json={"shortcut": "/hook", "title": "t", "body": "b"},
                   headers=t.headers).status_code == 201
    chat = rx.wait("the inbound chat", lambda: [c for c in hc.get("/api/chats", headers=t.headers).json()["chats"]
                                                 if c["jid"].startswith(phone)])[0]
    sent = hc.post("/api/messages/send", json={"device_id": device["id"], "to": chat["jid"], "body": "out"},
                   headers=t.headers)
    assert sent.status_code in (200, 201), sent.text
    assert hc.post(f"/api/chats/{chat['id']}/read", headers=t.headers).status_code == 200
    contact = hc.get("/api/contacts", params={"search": phone}, headers=t.headers).json()["contacts"][0]
    assert hc.put(f"/api/contacts/{contact['id']}", json={"notes": "vip"}, headers=t.headers).status_code == 200
    assert hc.post("/api/interactions", json={"type": "note", "contact_id": contact["id"], "notes": "n"},
                   headers=t.headers).status_code == 201
    campaign = hc.post("/api/campaigns", json={"name": "Hook camp", "device_id": device["id"],
                                               "message_template": "hola",
                                               "settings": {"min_delay_seconds": 0, "max_delay_seconds": 0}},
                        headers=t.headers).json()["campaign"]
    assert hc.post(f"/api/campaigns/{campaign['id']}/recipients", json={"recipients": [{"jid": chat["jid"]}]},
                   headers=t.headers).status_code == 200
    assert hc.post(f"/api/campaigns/{campaign['id']}/start", headers=t.headers).status_code == 200
    families = {"device_status", "new_message", "lead_update", "pipeline_update", "tag_update", "tag_assignment",
                "event_update", "participant_update", "quick_reply_update", "message_sent", "chat_update",
                "contact_update", "interaction_update", "campaign_status", "campaign_progress"}
    assert families <= WEBHOOK_EVENTS

    def seen() -> set[str]:
        return {h.headers["x-clarin-event"] for h in rx.of("/all")}

    deadline = time.monotonic() + 20
    while not families <= seen() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert families <= seen(), f"event families never delivered: {sorted(families - seen())}"
    hits = rx.of("/all")
    for hit in hits:
        assert signing.verify(sub["secret"], hit.body, hit.headers["x-clarin-signature"]), hit.headers
        assert not signing.verify("wrong-secret-0000000", hit.body, hit.headers["x-clarin-signature"])
        payload = hit.json
        assert set(payload) == {"id", "event", "account_id", "occurred_at", "data"}
        assert payload["id"] == hit.delivery and payload["event"] == hit.headers["x-clarin-event"]
        assert payload["account_id"] == t.account_id and payload["occurred_at"].endswith("Z")
    assert len({h.delivery for h in hits}) == len(hits), "an event was delivered twice"
    created = [h.json["data"] for h in hits if h.json["event"] == "lead_update"]
    assert {"action": "created", "lead_id": the_lead["id"]} in created  # the WebSocket's data, verbatim


def deliveries(client: httpx.Client, headers: dict[str, str], webhook_id: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"/api/webhooks/{webhook_id}/deliveries", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["deliveries"]


def test_500_then_200_is_delivered_twice_and_logged(hc: httpx.Client, hook_server: support.ServerProcess,
                                                    rx: Receiver) -> None:
    t = tenant(hook_server)
    rx.statuses["/flaky"] = [500]
    sub = subscribe(hc, t.headers, rx.url("/flaky"), ["lead_update"])
    made = lead(hc, t.headers)
    rx.wait("the retried event", lambda: len(rx.of("/flaky")) >= 2)
    time.sleep(0.3)  # nothing more may come
    hits = rx.of("/flaky")
    assert len(hits) == 2 and hits[0].delivery == hits[1].delivery, [h.delivery for h in hits]
    assert hits[0].json["data"] == {"action": "created", "lead_id": made["id"]}
    log = rx.wait("the delivered log row", lambda: [d for d in deliveries(hc, t.headers, sub["id"])
                                                   if d["status"] == "delivered"])
    assert len(log) == 1 and log[0]["attempts"] == 2 and log[0]["status_code"] == 200, log
    assert log[0]["event"] == "lead_update" and log[0]["event_id"] == hits[0].delivery
    assert log[0]["duration_ms"] is not None and log[0]["last_error"] == ""


def test_order_is_kept_per_subscription_through_retries(hc: httpx.Client, hook_server: support.ServerProcess,
                                                        rx: Receiver) -> None:
    t = tenant(hook_server)
    rx.statuses["/ordered"] = [503, 503, 500]
    subscribe(hc, t.headers, rx.url("/ordered"), ["lead_update"])
    made = [lead(hc, t.headers)["id"] for _ in range(5)]
    rx.wait("five events", lambda: len({h.delivery for h in rx.of("/ordered")}) == 5)
    first_seen: list[str] = []
    for hit in rx.of("/ordered"):
        if hit.json["data"]["lead_id"] not in first_seen:
            first_seen.append(hit.json["data"]["lead_id"])
    assert first_seen == made  # the failing head held the others back, then all went in order


def test_a_hanging_receiver_does_not_delay_another_subscription(hc: httpx.Client, hook_server: support.ServerProcess,
                                                                rx: Receiver) -> None:
    t = tenant(hook_server)
    rx.hang["/slow"] = 3.5
    subscribe(hc, t.headers, rx.url("/slow"), ["lead_update"])
    subscribe(hc, t.headers, rx.url("/fast"), ["lead_update"])
    started = time.monotonic()
    for _ in range(10):
        lead(hc, t.headers)
    rx.wait("ten events at the fast receiver", lambda: len(rx.of("/fast")) >= 10, timeout=10)
    fast_done = max(h.at for h in rx.of("/fast")) - started
    print(f"\nhanging receiver: fast subscription got 10 events {fast_done:.2f}s after the first write; "
          f"slow one has {len(rx.of('/slow'))} request(s) in flight")
    assert fast_done < 2.0, fast_done
    assert len(rx.of("/slow")) == 1  # still stuck on its first event: the rest waits behind it, in order


def test_ping_and_redeliver(hc: httpx.Client, hook_server: support.ServerProcess, rx: Receiver) -> None:
    t = tenant(hook_server)
    sub = subscribe(hc, t.headers, rx.url("/ping"), ["tag_update"])
    queued = hc.post(f"/api/webhooks/{sub['id']}/test", headers=t.headers)
    assert queued.status_code == 200, queued.text
    ping = rx.wait("the ping", lambda: rx.of("/ping"))[0]
    assert ping.json["event"] == "ping" and ping.json["data"] == {"webhook_id": sub["id"]}
    assert ping.delivery == queued.json()["delivery"]["event_id"]
    assert signing.verify(sub["secret"], ping.body, ping.headers["x-clarin-signature"])
    delivered = rx.wait("the ping logged", lambda: [d for d in deliveries(hc, t.headers, sub["id"])
                                                    if d["status"] == "delivered"])[0]
    again = hc.post(f"/api/webhooks/{sub['id']}/deliveries/{delivered['id']}/redeliver", headers=t.headers)
    assert again.status_code == 200 and again.json()["delivery"]["status"] == "pending", again.text
    rx.wait("the redelivery", lambda: len(rx.of("/ping")) == 2)
    assert rx.of("/ping")[1].delivery == ping.delivery  # same event id: receivers de-duplicate
    assert hc.post(f"/api/webhooks/{sub['id']}/deliveries/{uuid.uuid4()}/redeliver",
                   headers=t.headers).status_code == 404
    page = deliveries(hc, t.headers, sub["id"], limit=100000)
    assert len(page) == 1
    capped = hc.get(f"/api/webhooks/{sub['id']}/deliveries", params={"limit": 100000}, headers=t.headers).json()
    assert capped["limit"] == 200


def test_a_subscription_failing_24h_is_disabled(hc: httpx.Client, hook_server: support.ServerProcess,
                                                rx: Receiver) -> None:
    """Scale 0.0001: "24 h" is 8.6 s. The give-up disables the subscription with a reason and a WebSocket event."""
    from websockets.sync.client import connect

    t = tenant(hook_server)
    rx.statuses["/down"] = [500] * 1000
    sub = subscribe(hc, t.headers, rx.url("/down"), ["lead_update"])
    with connect(f"{hook_server.ws_url}?token={t.token}", open_timeout=10) as ws:
        lead(hc, t.headers)
        deadline = time.monotonic() + 20
        disabled = None
        while disabled is None and time.monotonic() < deadline:
            try:
                message = ws.recv(timeout=1)
            except TimeoutError:
                continue
            if '"webhook_disabled"' in str(message):
                disabled = message
    assert disabled is not None, "no webhook_disabled event"
    got = hc.get(f"/api/webhooks/{sub['id']}", headers=t.headers).json()["webhook"]
    assert got["enabled"] is False and got["disabled_reason"].startswith("failing for 24 h"), got
    log = deliveries(hc, t.headers, sub["id"])
    assert log[0]["status"] == "failed" and log[0]["attempts"] == len(rx.of("/down")) >= 5, log
    assert log[0]["last_error"] == "HTTP 500"
    lead(hc, t.headers)  # a disabled subscription gets no outbox rows
    time.sleep(0.5)
    assert len(deliveries(hc, t.headers, sub["id"])) == 1


def test_private_targets_are_refused_without_the_development_switch(
        client: httpx.Client, make_tenant: Any, database: str, rx: Receiver) -> None:
    """The session server runs without WEBHOOK_ALLOW_PRIVATE: loopback/private URLs are refused at creation,
    and a row that points there anyway (a DNS answer that changed) is refused again at delivery."""
    t = make_tenant("admin")
    for url in (rx.url("/private"), "http://localhost:9/x", "http://10.1.2.3/x", "http://169.254.169.254/latest",
                "http://[::1]:8080/x"):
        response = client.post("/api/webhooks", json={"url": url, "events": ["*"]}, headers=t.headers)
        assert response.status_code == 400, (url, response.text)
        assert "address not allowed" in response.json()["error"], response.text
    row = support.run_sql(database, "INSERT INTO webhooks (account_id, url, events, secret) VALUES "
                                    "($1, $2, ARRAY['lead_update'], 'whsec_0123456789abcdef') RETURNING id",
                          [uuid.UUID(t.account_id), rx.url("/private")])[0]
    deadline = time.monotonic() + 15
    log: list[dict[str, Any]] = []
    while not log and time.monotonic() < deadline:
        client.post("/api/leads", json={"phone": "+" + new_phone()}, headers=t.headers)  # cache TTL: try again
        time.sleep(0.5)
        log = [d for d in deliveries(client, t.headers, str(row["id"])) if d["attempts"]]
    assert log and log[-1]["last_error"].startswith("address not allowed"), log
    assert rx.of("/private") == []


def test_outbox_queries_have_indexes(hook_server: support.ServerProcess) -> None:
    """Every WHERE/ORDER BY of the outbox is served by an index (sequential scans off: a plan that still scans
    the table has no index to use)."""
    import asyncio

    import psqlpy

    from clarin.db.queries import query

    dsn = hook_server.dsn  # type: ignore[attr-defined]
    some = uuid.uuid4()
    cases = {
        "webhook_head": [some, some, 50],
        "webhook_due": [500],
        "webhook_deliveries_list": [some, some, 50, 0],
        "webhook_queue_stats": None,
        "webhook_prune": [datetime(2020, 1, 1, tzinfo=UTC), 1000],
        "webhooks_account_enabled": [some],
        "webhooks_list": [some, 100, 0],
    }

    async def plans() -> dict[str, str]:
        pool = psqlpy.ConnectionPool(dsn=dsn, max_db_pool_size=2)
        conn = await pool.connection()
        out = {}
        try:
            await conn.execute("SET enable_seqscan = off")
            for name, params in cases.items():
                rows = (await conn.execute("EXPLAIN " + query(name), params)).result()
                out[name] = "\n".join(str(next(iter(r.values()))) for r in rows)
        finally:
            conn.close()
            pool.close()
        return out

    for name, plan in asyncio.run(plans()).items():
        assert "Seq Scan on webhook" not in plan, f"{name}:\n{plan}"
        assert "Index" in plan, f"{name}:\n{plan}"


def test_production_refuses_the_private_address_switch(database: str) -> None:
    import subprocess
    import sys

    env = support.base_env(database, ENV="production", JWT_SECRET="s3cret-" + "x" * 40, WEBHOOK_ALLOW_PRIVATE="true",
                           PORT=str(support.free_port()), HOST="127.0.0.1")
    proc = subprocess.run([sys.executable, "-m", "clarin", "serve"], cwd=support.ROOT, env=env, text=True,
                          capture_output=True, timeout=60)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "clarin: configuration error: WEBHOOK_ALLOW_PRIVATE=true is for development and tests only" in output
