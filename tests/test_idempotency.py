"""Idempotency-Key on the send routes and campaign starts (issue 12, item 4), against the session server.

The fault side (PostgreSQL restart, Redis kill with routed sends) is in tests/test_send_faults.py.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests import support
from tests.inbox_support import connected_device, new_phone, sent_calls

KEYED_ROUTES = {("post", "/api/messages/send"), ("post", "/api/messages/forward"), ("post", "/api/messages/react"),
                ("post", "/api/messages/poll"), ("post", "/api/campaigns/{id}/start")}


def keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


def sent_with(calls: list[dict[str, Any]], text: str) -> int:
    return sum(1 for call in calls if call["message"].get("conversation") == text)


def test_a_repeat_gets_the_first_answer_and_sends_nothing(client: httpx.Client, make_tenant: Any,
                                                          database: str) -> None:
    tenant = make_tenant()
    device = connected_device(client, tenant.headers)
    key, text = f"k-{uuid.uuid4()}", f"once {uuid.uuid4()}"
    body = {"device_id": device["id"], "to": new_phone(), "body": text}
    first = client.post("/api/messages/send", json=body, headers=keyed(tenant.headers, key))
    assert first.status_code == 200, first.text
    assert first.json()["message"]["status"] == "sent" and "idempotent-replayed" not in first.headers
    again = client.post("/api/messages/send", json=body, headers=keyed(tenant.headers, key))
    assert (again.status_code, again.content) == (200, first.content)
    assert again.headers["idempotent-replayed"] == "true"
    assert sent_with(sent_calls(client, tenant.headers, device["id"]), text) == 1
    rows = support.run_sql(database, "SELECT status, message_id FROM messages WHERE account_id = $1 AND body = $2",
                           [uuid.UUID(tenant.account_id), text])
    assert rows == [{"status": "sent", "message_id": first.json()["message"]["message_id"]}]
    # The same key elsewhere is refused; another account's identical key is its own.
    poll = client.post("/api/messages/poll", headers=keyed(tenant.headers, key),
                       json={"device_id": device["id"], "to": new_phone(), "question": "Q?", "options": ["a", "b"]})
    assert (poll.status_code, poll.json()["error"]) == (422, "Idempotency-Key was already used for another request")
    other = make_tenant()
    other_device = connected_device(client, other.headers)
    mine = client.post("/api/messages/send", headers=keyed(other.headers, key),
                       json={"device_id": other_device["id"], "to": new_phone(), "body": text})
    assert mine.status_code == 200 and mine.json()["message"]["id"] != first.json()["message"]["id"]


def test_invalid_keys_are_400(client: httpx.Client, make_tenant: Any) -> None:
    tenant = make_tenant()
    body = {"device_id": str(uuid.uuid4()), "to": new_phone(), "body": "x"}
    for bad in ("x" * 256, "caf\u00e9", "tab\there"):
        r = client.post("/api/messages/send", json=body,
                        headers=keyed(tenant.headers, bad) if bad.isascii() else
                        [*tenant.headers.items(), ("Idempotency-Key", bad.encode())])
        assert (r.status_code, r.json()["error"]) == (400, "Invalid Idempotency-Key"), (bad, r.text)
    ok = client.post("/api/messages/send", json=body, headers=keyed(tenant.headers, "x" * 255))
    assert (ok.status_code, ok.json()["error"]) == (404, "Device not found")  # a valid key; the 404 is not kept
    again = client.post("/api/messages/send", json=body, headers=keyed(tenant.headers, "x" * 255))
    assert "idempotent-replayed" not in again.headers  # released: nothing was sent, a retry runs afresh


def test_concurrent_duplicates_send_once(client: httpx.Client, make_tenant: Any) -> None:
    tenant = make_tenant()
    device = connected_device(client, tenant.headers)
    key, text = f"burst-{uuid.uuid4()}", f"burst {uuid.uuid4()}"
    body = {"device_id": device["id"], "to": new_phone(), "body": text}

    def send(_: int) -> httpx.Response:
        return httpx.post(client.base_url.join("/api/messages/send"), json=body, headers=keyed(tenant.headers, key),
                          timeout=15)

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(send, range(12)))
    statuses = sorted(r.status_code for r in answers)
    assert set(statuses) <= {200, 409}, statuses
    for r in answers:
        if r.status_code == 409:
            assert r.json()["error"] == "request with this Idempotency-Key is in progress"
            assert r.headers["retry-after"] == "1"
    assert len({r.json()["message"]["id"] for r in answers if r.status_code == 200}) == 1
    assert sent_with(sent_calls(client, tenant.headers, device["id"]), text) == 1


def test_a_key_in_flight_answers_409(client: httpx.Client, make_tenant: Any, database: str) -> None:
    """A key claimed by a request still running (here: a claim row a test wrote) is never run twice."""
    tenant = make_tenant()
    device = connected_device(client, tenant.headers)
    key, text = f"inflight-{uuid.uuid4()}", f"in flight {uuid.uuid4()}"
    support.run_sql(database, "INSERT INTO idempotency_keys (account_id, key, request, claim, message_id) "
                    "VALUES ($1, $2, 'POST /api/messages/send', $3, $4)",
                    [uuid.UUID(tenant.account_id), key, uuid.uuid4(), uuid.uuid4()])
    r = client.post("/api/messages/send", headers=keyed(tenant.headers, key),
                    json={"device_id": device["id"], "to": new_phone(), "body": text})
    assert (r.status_code, r.json()["error"]) == (409, "request with this Idempotency-Key is in progress")
    assert sent_with(sent_calls(client, tenant.headers, device["id"]), text) == 0


def test_campaign_start_repeat_answers_the_first_answer(client: httpx.Client, make_tenant: Any) -> None:
    tenant = make_tenant()
    device = connected_device(client, tenant.headers)
    created = client.post("/api/campaigns", headers=tenant.headers, json={
        "name": "Keyed", "device_id": device["id"], "message_template": "Hola",
        "settings": {"min_delay_seconds": 60, "max_delay_seconds": 60}})
    campaign_id = created.json()["campaign"]["id"]
    added = client.post(f"/api/campaigns/{campaign_id}/recipients", headers=tenant.headers,
                        json={"recipients": [{"jid": f"{new_phone()}@s.whatsapp.net"}]})
    assert added.status_code == 200, added.text
    key = f"start-{uuid.uuid4()}"
    first = client.post(f"/api/campaigns/{campaign_id}/start", headers=keyed(tenant.headers, key))
    assert first.status_code == 200, first.text
    again = client.post(f"/api/campaigns/{campaign_id}/start", headers=keyed(tenant.headers, key))
    assert (again.status_code, again.content) == (200, first.content)  # not 409 "campaign is already running"
    unkeyed = client.post(f"/api/campaigns/{campaign_id}/start", headers=tenant.headers)
    assert unkeyed.status_code == 409
    client.post(f"/api/campaigns/{campaign_id}/pause", headers=tenant.headers)


def test_the_header_is_documented(client: httpx.Client) -> None:
    document = client.get("/api/openapi.json").json()
    documented = {(method, path) for path, operations in document["paths"].items()
                  for method, operation in operations.items()
                  if any(p["in"] == "header" and p["name"] == "Idempotency-Key" for p in operation["parameters"])}
    assert documented == KEYED_ROUTES
