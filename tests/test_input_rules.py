"""Issue 12 items 8-11, through the real HTTP stack (PostgreSQL, Redis, simulated WhatsApp, no mocks):

- JSON nested deeper than 64 levels is a 400 for every body (was a 500: RecursionError in the decoder);
- U+0000 anywhere in a JSON string, a query parameter or a form field is a 400 (was a 500 from PostgreSQL, or
  silently stripped);
- integers out of their range are a 400 on every worker (was a 500 on the worker routing a device call);
- one phone rule everywhere: normalised (A.13, D.5 for import files), then 7-15 ASCII digits, else
  ``400 invalid phone`` (emoji, fullwidth / Arabic-Indic digits, direction marks... were stored as JIDs).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests import support
from tests.inbox_support import connected_device

TOO_DEEP = "JSON nested too deeply (max 64 levels)"
NUL = "Request contains invalid characters"
INVALID_PHONE = "invalid phone"
HOSTILE_PHONES = [
    "📞5491155551234", "５４９１１５５５５１２３４", "٥٤٩١١٥٥٥٥١٢٣٤", "۵۴۹۱۱۵۵۵۵۱۲۳۴", "\u200f5491155551234",
    "5491155551234\u200e", "+-+-+-", "1e10", "../../etc/passwd", "123456", "1234567890123456", "549 1155 ext 12",
    "٣٣", "+", "''",
]


def _error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json().get("error", "")


def _nested(depth: int) -> str:
    """A JSON object ``depth`` levels deep: ``{"a":{"a":...1...}}``."""
    return '{"a":' * depth + "1" + "}" * depth


def _lead(client: httpx.Client, tenant: Any, phone: str = "") -> dict[str, Any]:
    phone = phone or f"51{uuid.uuid4().int % 10**9:09d}"
    created = client.post("/api/leads", json={"name": "Rules", "phone": phone}, headers=tenant.headers)
    assert created.status_code == 201, created.text
    return created.json()["lead"]


def _campaign(client: httpx.Client, tenant: Any) -> str:
    device = client.post("/api/devices", json={"name": "Rules"}, headers=tenant.headers).json()["device"]["id"]
    created = client.post("/api/campaigns", json={"name": "Rules", "device_id": device, "message_template": "x"},
                          headers=tenant.headers)
    assert created.status_code == 201, created.text
    return created.json()["campaign"]["id"]


def _count(dsn: str, sql: str, *params: Any) -> int:
    return int(support.run_sql(dsn, sql, list(params))[0]["n"])


# -- item 8: nesting depth -----------------------------------------------------------------------------------
def test_json_nested_deeper_than_64_levels_is_400(client: httpx.Client, tenant: Any, server: Any) -> None:
    lead = _lead(client, tenant)
    url = f"/api/leads/{lead['id']}"
    json_headers = {**tenant.headers, "content-type": "application/json"}
    for inner in (1000, 64):  # the body is level 1: custom_fields + 64 more levels = 65 + 1
        deep = client.put(url, content=f'{{"custom_fields": {{"k": {_nested(inner)}}}}}', headers=json_headers)
        assert (deep.status_code, deep.json()) == (400, {"success": False, "error": TOO_DEEP}), inner
    # exactly 64 levels is accepted and stored as sent; brackets inside strings do not nest
    ok = client.put(url, content=f'{{"custom_fields": {{"k": {_nested(62)}, "s": "{"[" * 500}"}}}}',
                    headers=json_headers)
    assert ok.status_code == 200, ok.text
    stored = client.get(url, headers=tenant.headers).json()["lead"]["custom_fields"]
    assert stored["s"] == "[" * 500 and json.dumps(stored["k"], separators=(",", ":")) == _nested(62)
    # recipients[].metadata, and any other body (even one whose route ignores the field)
    campaign = _campaign(client, tenant)
    recipients = client.post(
        f"/api/campaigns/{campaign}/recipients", headers=json_headers,
        content=f'{{"recipients": [{{"jid": "51911122233", "metadata": {_nested(1000)}}}]}}')
    assert _error(recipients) == (400, TOO_DEEP)
    for path in ("/api/tags", "/api/pipelines", "/api/auth/login"):
        assert _error(client.post(path, content="[" * 1000 + "]" * 1000, headers=json_headers)) == (400, TOO_DEEP)
    assert client.get(f"/api/campaigns/{campaign}/recipients", headers=tenant.headers).json()["recipients"] == []
    # a WebSocket message is decoded by the same rule: the socket ignores it and keeps answering
    with connect(f"{server.ws_url}?token={tenant.token}", close_timeout=0.2) as ws:
        ws.send("[" * 1000 + "]" * 1000)
        ws.send('{"event":"ping"}')
        assert json.loads(ws.recv(timeout=5)) == {"event": "pong"}


# -- item 9: NUL ---------------------------------------------------------------------------------------------
def test_nul_in_any_json_string_is_400(client: httpx.Client, tenant: Any, database: str) -> None:
    saved = client.post("/api/stickers/saved", json={"media_url": "/api/media/file/x\u0000"}, headers=tenant.headers)
    assert (saved.status_code, saved.json()) == (400, {"success": False, "error": NUL,
                                                       "detail": "NUL character (\\u0000) in a string"})
    assert client.get("/api/stickers/saved", headers=tenant.headers).json()["stickers"] == []
    lead = _lead(client, tenant)
    campaign = _campaign(client, tenant)
    for method, path, body in [
        ("PUT", f"/api/leads/{lead['id']}", {"custom_fields": {"deep": [{"x": ["a\u0000"]}]}}),
        ("PUT", f"/api/leads/{lead['id']}", {"custom_fields": {"k\u0000": 1}}),
        ("PUT", f"/api/leads/{lead['id']}", {"notes": "\u0000"}),
        ("POST", f"/api/campaigns/{campaign}/recipients",
         {"recipients": [{"jid": "51911122233", "metadata": {"k": {"n": "a\u0000b"}}}]}),
        ("POST", "/api/tags", {"name": "t\u0000"}),
        ("POST", "/api/contacts/merge", {"keep_id": "\u0000", "merge_ids": []}),
    ]:
        response = client.request(method, path, json=body, headers=tenant.headers)
        assert _error(response) == (400, NUL), (method, path, response.text)
    assert client.get(f"/api/leads/{lead['id']}", headers=tenant.headers).json()["lead"].get("notes", "") == ""
    # an escaped backslash before "u0000" is six harmless characters, not a NUL
    literal = client.put(f"/api/leads/{lead['id']}", json={"notes": "\\u0000"}, headers=tenant.headers)
    assert literal.status_code == 200 and literal.json()["lead"]["notes"] == "\\u0000"
    assert _count(database, "SELECT count(*) AS n FROM campaign_recipients WHERE campaign_id = $1",
                  uuid.UUID(campaign)) == 0
    # an optional body the route decodes itself (a bad one is ignored) still follows the decoder's rules
    duplicate = f"/api/campaigns/{campaign}/duplicate"
    campaigns = _count(database, "SELECT count(*) AS n FROM campaigns WHERE account_id = $1", uuid.UUID(tenant.account_id))
    assert _error(client.post(duplicate, json={"message_template": "a\u0000"}, headers=tenant.headers)) == (400, NUL)
    assert _error(client.post(duplicate, content=_nested(100), headers=tenant.headers)) == (400, TOO_DEEP)
    assert client.post(duplicate, content=b"{not json", headers=tenant.headers).status_code == 201
    assert _count(database, "SELECT count(*) AS n FROM campaigns WHERE account_id = $1",
                  uuid.UUID(tenant.account_id)) == campaigns + 1


def test_nul_in_query_parameters_and_form_fields_is_400(client: httpx.Client, tenant: Any) -> None:
    for path in ("/api/contacts?tags=a%00b", "/api/leads?search=%00", "/api/events?status=%00",
                 "/api/chats?search=x%00", "/api/contacts?search=ok&x%00=1"):
        response = client.get(path, headers=tenant.headers)
        assert _error(response) == (400, NUL), (path, response.text)
    form = client.post("/api/import/csv", files={"file": ("l.csv", b"phone\n51911122233\n", "text/csv")},
                       data={"import_type": "leads\u0000"}, headers=tenant.headers)
    assert _error(form) == (400, NUL), form.text


# -- item 10: integer ranges, on the worker that owns the device and on the one that routes ---------------------
@pytest.fixture(scope="module")
def cluster(services: None, log_dir: Path) -> Iterator[support.ServerProcess]:
    name, dsn = support.create_database()
    try:
        env = support.base_env(dsn, WORKERS="2", WHATSAPP_LEASE_RENEW="1", WHATSAPP_LEASE_TTL="3")
        with support.running_server(env, log_dir, "input-rules") as srv:
            yield srv
    finally:
        support.drop_database(name)


def test_out_of_range_integers_are_400_on_every_worker(cluster: support.ServerProcess) -> None:
    tenant = support.new_tenant(cluster.url, "admin-pass-123", "IR")
    with httpx.Client(base_url=cluster.url, timeout=20) as c:
        device = connected_device(c, tenant.headers, "Range")["id"]
    poll = {"device_id": device, "to": "51987654321", "question": "Q?", "options": ["a", "b"]}
    statuses = []
    for _ in range(12):  # fresh connections: both workers answer some, only one of them runs the device
        response = httpx.post(cluster.url + "/api/messages/poll", json={**poll, "max_selections": 10**20},
                              headers=tenant.headers, timeout=20)
        statuses.append(response.status_code)
        assert response.status_code == 400 and "max_selections" in response.json()["detail"], response.text
    # in range (even far beyond the options, or <= 0) it is still clamped as R30 says, on both workers
    for selections, stored in ((2**31 - 1, 2), (-(2**31), 1)):
        for _ in range(4):
            ok = httpx.post(cluster.url + "/api/messages/poll", json={**poll, "max_selections": selections},
                            headers=tenant.headers, timeout=20)
            assert ok.status_code == 200, ok.text
            assert ok.json()["message"]["poll_max_selections"] == stored


def test_out_of_range_integers_never_reach_postgresql(client: httpx.Client, tenant: Any) -> None:
    device = client.post("/api/devices", json={"name": "Ints"}, headers=tenant.headers).json()["device"]["id"]
    attachment = {"media_url": "https://example.com/a.png", "media_type": "image"}
    for field, value in (("file_size", 10**20), ("file_size", 2**63), ("position", 2**31), ("position", 10**20)):
        response = client.post("/api/campaigns", headers=tenant.headers, json={
            "name": "ints", "device_id": device, "message_template": "x", "attachments": [{**attachment, field: value}]})
        assert response.status_code == 400 and field in response.json()["detail"], (field, value, response.text)
    for key in ("min_delay_seconds", "batch_size", "daily_limit"):
        response = client.post("/api/campaigns", headers=tenant.headers, json={
            "name": "ints", "device_id": device, "message_template": "x", "settings": {key: 10**20}})
        assert _error(response) == (400, f"settings.{key} is out of range (max 2147483647)"), response.text
    phone = connected_device(client, tenant.headers, "Ints inbound")["id"]
    for field, value in (("timestamp", 10**20), ("timestamp", -1), ("max_selections", 2**40)):
        response = client.post(f"/api/dev/whatsapp/{phone}/inbound", headers=tenant.headers,
                               json={"from": "51987654321", "body": "x", field: value})
        assert response.status_code == 400 and field in response.json()["detail"], (field, response.text)


# -- item 11: one phone rule ---------------------------------------------------------------------------------
def test_leads_take_only_phones(client: httpx.Client, tenant: Any, database: str) -> None:
    account = uuid.UUID(tenant.account_id)
    before = _count(database, "SELECT count(*) AS n FROM leads WHERE account_id = $1", account)
    for raw in HOSTILE_PHONES:
        response = client.post("/api/leads", json={"name": "x", "phone": raw}, headers=tenant.headers)
        assert (response.status_code, response.json()) == (400, {"success": False, "error": INVALID_PHONE}), raw
    assert _count(database, "SELECT count(*) AS n FROM leads WHERE account_id = $1", account) == before
    # what the original accepted as a phone keeps its JID, and the raw input stays the stored phone (A.13)
    suffix = f"{uuid.uuid4().int % 10**6:06d}"
    for raw, jid in ((f"+51 987-{suffix}", f"51987{suffix}"), (f"'9{suffix}12", f"519{suffix}12"),
                     (f"(54) 11 5555-{suffix[:4]}", f"54115555{suffix[:4]}"), (f"5555{suffix[:3]}", f"5555{suffix[:3]}")):
        lead = _lead(client, tenant, raw)
        assert (lead["jid"], lead["phone"]) == (f"{jid}@s.whatsapp.net", raw)
    lead = _lead(client, tenant)
    for raw in ("５４９１１５５５５１２３４", "1e10"):
        update = client.put(f"/api/leads/{lead['id']}", json={"phone": raw}, headers=tenant.headers)
        assert _error(update) == (400, INVALID_PHONE), raw
    assert client.put(f"/api/leads/{lead['id']}", json={"phone": ""}, headers=tenant.headers).status_code == 200
    contact = support.run_sql(database, "INSERT INTO contacts (account_id, jid, phone) VALUES ($1, $2, '51911110000') "
                              "RETURNING id::text AS id", [account, f"51{uuid.uuid4().int % 10**9:09d}@s.whatsapp.net"])
    url = f"/api/contacts/{contact[0]['id']}"
    for raw in ("５４９１１５５５５１２３４", "\u200f5491155551234"):
        assert _error(client.put(url, json={"phone": raw}, headers=tenant.headers)) == (400, INVALID_PHONE), raw
    assert client.put(url, json={"phone": "+54 9 11 5555-1234"}, headers=tenant.headers).status_code == 200


def test_sends_new_chats_and_recipients_take_only_phones(client: httpx.Client, tenant: Any, database: str) -> None:
    device = connected_device(client, tenant.headers, "Phones")["id"]
    account = uuid.UUID(tenant.account_id)
    for raw in ("５４９１１５５５５１２３４", "📞5491155551234", "\u200f5491155551234", "+-+-+-", "../../etc/passwd"):
        for path, body in (("/api/messages/send", {"device_id": device, "to": raw, "body": "hi"}),
                           ("/api/chats/new", {"device_id": device, "phone": raw})):
            response = client.post(path, json=body, headers=tenant.headers)
            assert _error(response) == (400, INVALID_PHONE), (path, raw, response.text)
    for jid in ("５４９１１５５５５１２３４@s.whatsapp.net", "١٢٣٤٥٦٧٨@lid", "1e10@s.whatsapp.net"):
        response = client.post("/api/messages/send", json={"device_id": device, "to": jid, "body": "hi"},
                               headers=tenant.headers)
        assert _error(response) == (400, f"invalid JID: {jid}"), jid
    assert _count(database, "SELECT count(*) AS n FROM chats WHERE account_id = $1", account) == 0
    sent = client.post("/api/messages/send", json={"device_id": device, "to": "+54 9 11 5555-1234", "body": "hi"},
                       headers=tenant.headers)
    assert sent.status_code == 200, sent.text
    assert support.run_sql(database, "SELECT jid FROM chats WHERE account_id = $1", [account]) == [
        {"jid": "5491155551234@s.whatsapp.net"}]
    campaign = _campaign(client, tenant)
    added = client.post(f"/api/campaigns/{campaign}/recipients", headers=tenant.headers, json={"recipients": [
        {"phone": "５４９１１５５５５１２３４"}, {"jid": "５４９１１５５５５１２３４@s.whatsapp.net"}, {"jid": "📞5491155551234"},
        {"phone": "+54 9 11 5555-1234"}, {"jid": "120363000000000000@g.us"},
    ]})
    assert added.status_code == 200, added.text
    assert (added.json()["count"], added.json()["invalid"]) == (2, 3)


def test_import_and_inbound_take_only_phones(
    client: httpx.Client, tenant: Any, database: str
) -> None:
    csv = "phone,name\n５４９１１５５５５１２３４,Wide\n\u200f5491155551234,Mark\n1e10,Exp\n5491155551234,Good\n".encode()
    response = client.post("/api/import/csv", files={"file": ("l.csv", csv, "text/csv")}, data={"import_type": "leads"},
                           headers=tenant.headers, timeout=60)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["imported"], report["skipped"]) == (1, 3)
    assert all(INVALID_PHONE in error for error in report["errors"]), report
    device = connected_device(client, tenant.headers, "Inbound phones")["id"]
    account = uuid.UUID(tenant.account_id)
    for sender in ("５４９１１５５５５１２３４@s.whatsapp.net", "٥٤٩١١٥٥٥٥١٢٣٤@s.whatsapp.net", "12@s.whatsapp.net"):
        response = client.post(f"/api/dev/whatsapp/{device}/inbound", headers=tenant.headers,
                               json={"from": sender, "body": "hi", "push_name": "Odd"})
        assert response.status_code == 200, response.text
    # a hidden user (@lid) still arrives, as before
    lid = client.post(f"/api/dev/whatsapp/{device}/inbound", headers=tenant.headers,
                      json={"from": "223456789012345@lid", "body": "hi", "message_id": "RULES-LID"})
    assert lid.status_code == 200, lid.text
    chats = support.run_sql(database, "SELECT jid FROM chats WHERE account_id = $1", [account])
    assert chats == [{"jid": "223456789012345@lid"}]
    leads = support.run_sql(database, "SELECT jid FROM leads WHERE account_id = $1 ORDER BY jid", [account])
    assert leads == [{"jid": "223456789012345@lid"}, {"jid": "5491155551234@s.whatsapp.net"}]


def test_kommo_sync_uses_the_same_phone_rule() -> None:
    """Kommo phones become chat JIDs only under the same rule (it took 6-20 digits)."""
    from clarin.kommo.records import phone_jid

    assert phone_jid("51987654321") == "51987654321@s.whatsapp.net"
    assert [phone_jid(p) for p in ("123456", "1" * 16, "1" * 20, "５４９１１５５５５１２３４", "")] == ["", "", "", "", ""]
