"""Chats R20–R23, R25, R26 against the session server (simulated WhatsApp driver), real PostgreSQL and Redis."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from clarin.db.queries import query
from tests.crm_helpers import (
    U,
    count,
    expect_event,
    expect_silence,
    insert_chat,
    insert_contact,
    insert_device,
    insert_lead,
    insert_message,
    insert_tag,
    one,
    socket,
    tag_contact,
    tag_lead,
)
from tests.inbox_support import (
    ago,
    connected_device,
    create_device,
    explain,
    insert_reaction,
    new_phone,
    sent_calls,
)
from tests.support import run_sql


def jid() -> str:
    return f"{new_phone()}@s.whatsapp.net"


def chats(client: httpx.Client, tenant: Any, **params: Any) -> dict[str, Any]:
    response = client.get("/api/chats", params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    return body


@pytest.fixture
def inbox(tenant: Any, database: str) -> dict[str, Any]:
    """A tenant's chats covering every list rule (ids by role)."""
    acct = tenant.account_id
    sales = insert_device(database, acct, "Ventas")
    run_sql(database, "UPDATE devices SET phone = '51900000000' WHERE id = $1", [U(sales)])
    support = insert_device(database, acct, "Soporte")
    ids: dict[str, Any] = {"sales": sales, "support": support}
    ids["ana_jid"], ids["gomez_jid"] = jid(), jid()
    # One instant for the three tied chats: ago() per insert could straddle a second on a busy machine.
    tie_at = ago(600)
    ids["ana"] = insert_chat(database, acct, ids["ana_jid"], name="Ana", last_message="hola",
                             last_message_at=tie_at, unread_count=2, device_id=U(sales))
    ids["gomez"] = insert_chat(database, acct, ids["gomez_jid"], name="", last_message_at=ago(300),
                               device_id=U(support))
    ids["pinned"] = insert_chat(database, acct, jid(), name="Fijado", is_pinned=True, last_message_at=ago(9000),
                                device_id=U(sales))
    ids["silent"] = insert_chat(database, acct, jid(), name="Sin mensajes")
    ids["archived"] = insert_chat(database, acct, jid(), name="Archivado", is_archived=True, last_message_at=ago(60))
    # equal keys are ordered by id, descending (the keyset order of idx_chats_order)
    ids["tie"] = sorted([insert_chat(database, acct, jid(), name=f"Empate {i}", last_message_at=tie_at)
                         for i in range(2)] + [ids["ana"]], reverse=True)
    for hidden in ("120363000000000001@g.us", "120363000000000002@newsletter", "status@broadcast", "123456@lid"):
        insert_chat(database, acct, hidden, name="oculto", last_message_at=ago(1))
    gomez = insert_contact(database, acct, ids["gomez_jid"], custom_name="Señora Gómez", name="Rosa",
                           avatar_url="/api/media/file/x.jpg")
    insert_contact(database, acct, ids["ana_jid"], name="Ana Contacto")
    ids["tag"] = insert_tag(database, acct, "VIP")
    tag_contact(database, gomez, ids["tag"])
    return ids


# -- R20 -------------------------------------------------------------------------------------------------
def test_list_order_exclusions_and_join_fields(client: httpx.Client, tenant: Any, inbox: dict[str, Any]) -> None:
    body = chats(client, tenant)
    listed = [c["id"] for c in body["chats"]]
    assert listed == [inbox["pinned"], inbox["gomez"], *inbox["tie"], inbox["silent"]]
    assert (body["total"], body["limit"], body["offset"]) == (6, 50, 0)
    by_id = {c["id"]: c for c in body["chats"]}
    ana = by_id[inbox["ana"]]
    assert ana["device_name"] == "Ventas" and ana["device_phone"] == "51900000000"
    assert ana["contact_name"] == "Ana Contacto" and ana["unread_count"] == 2 and ana["last_message"] == "hola"
    gomez = by_id[inbox["gomez"]]
    assert "name" not in gomez  # '' is omitted like Go's omitempty
    assert gomez["contact_custom_name"] == "Señora Gómez" and gomez["contact_name"] == "Rosa"
    assert gomez["contact_avatar_url"] == "/api/media/file/x.jpg" and gomez["contact_phone"] == inbox["gomez_jid"][:11]
    assert "last_message_at" not in by_id[inbox["silent"]]


def test_list_filters(client: httpx.Client, tenant: Any, inbox: dict[str, Any]) -> None:
    def ids(**params: Any) -> list[str]:
        return [c["id"] for c in chats(client, tenant, **params)["chats"]]

    with_archived = ids(archived="true")
    assert with_archived[:3] == [inbox["pinned"], inbox["archived"], inbox["gomez"]] and len(with_archived) == 7
    assert ids(unread_only="true") == [inbox["ana"]]
    assert ids(device_ids=f"{inbox['sales']},not-a-uuid") == [inbox["pinned"], inbox["ana"]]
    assert ids(device_ids=[inbox["support"], inbox["sales"]]) == [inbox["pinned"], inbox["gomez"], inbox["ana"]]
    assert ids(tag_ids=inbox["tag"]) == [inbox["gomez"]]
    assert ids(tag_ids="garbage") == ids()  # invalid entries are ignored
    assert ids(search="gómez") == [inbox["gomez"]]  # contact custom_name
    assert ids(search="ROSA") == [inbox["gomez"]]  # contact name
    assert ids(search="ana") == [inbox["ana"]]  # chat name and contact name: listed once
    assert ids(search=inbox["gomez_jid"][3:9]) == [inbox["gomez"]]  # JID / phone digits
    assert ids(search="archivado") == []
    assert ids(search="archivado", archived="true") == [inbox["archived"]]
    assert ids(search="empate", unread_only="true") == []
    assert chats(client, tenant, search="%%%")["total"] == 0  # wildcards are literal
    assert ids(search="oculto") == []  # groups, newsletters, broadcasts and LIDs never listed


def test_list_paging(client: httpx.Client, tenant: Any, inbox: dict[str, Any]) -> None:
    full = [c["id"] for c in chats(client, tenant)["chats"]]
    page = chats(client, tenant, limit=2, offset=1)
    assert [c["id"] for c in page["chats"]] == full[1:3]
    assert (page["total"], page["limit"], page["offset"]) == (6, 2, 1)
    past = chats(client, tenant, limit=2, offset=50)
    assert (past["chats"], past["total"]) == ([], 6)
    searched = chats(client, tenant, search="empate", limit=1)
    assert (len(searched["chats"]), searched["total"]) == (1, 2)
    assert chats(client, tenant, limit=0)["limit"] == 1000  # the dashboard's "everything", capped
    assert chats(client, tenant, limit=5000)["limit"] == 1000
    assert chats(client, tenant, limit="x")["limit"] == 50


def test_list_is_tenant_scoped(client: httpx.Client, make_tenant: Any, inbox: dict[str, Any]) -> None:
    other = make_tenant()
    assert chats(client, other) == {"chats": [], "total": 0, "total_capped": False, "limit": 50, "offset": 0,
                                    "next_cursor": None, "success": True}
    assert chats(client, other, search="ana", archived="true")["total"] == 0


def test_chat_list_uses_the_inbox_index(make_tenant: Any, database: str) -> None:
    tenant = make_tenant()
    run_sql(database, "INSERT INTO chats (account_id, jid, name, last_message_at, is_pinned, is_archived) "
                      "SELECT $1, (51900000000 + g)::text || '@s.whatsapp.net', 'c' || g, "
                      "now() - g * interval '1 minute', g % 97 = 0, g % 11 = 0 FROM generate_series(1, 4000) g",
            [U(tenant.account_id)])
    run_sql(database, "ANALYZE chats")
    first = [True, datetime(9999, 12, 31, tzinfo=UTC), uuid.UUID(int=(1 << 128) - 1)]
    plan = explain(database, query("chats_page_inbox_unfiltered"), [U(tenant.account_id), 51, 0, *first])
    # the page is read in index order straight under its LIMIT (no sort of the tenant's chats), the cursor bound
    # being an index condition
    assert re.search(r"Limit\n\s+->  Index Scan using idx_chats_order on chats", plan), plan
    assert re.search(r"Index Cond: .*ROW\(is_pinned, COALESCE\(last_message_at", plan), plan


# -- R21 -------------------------------------------------------------------------------------------------
def new_chat(client: httpx.Client, tenant: Any, **body: Any) -> httpx.Response:
    return client.post("/api/chats/new", json=body, headers=tenant.headers)


def test_new_chat(server: Any, client: httpx.Client, make_tenant: Any, database: str) -> None:
    tenant, other = make_tenant(), make_tenant()
    device = connected_device(client, tenant.headers)
    with socket(server, tenant.token) as ws, socket(server, other.token) as foreign:
        response = new_chat(client, tenant, device_id=device["id"], phone="987 654 321")
        assert response.status_code == 201, response.text
        chat = response.json()["chat"]
        assert expect_event(ws, "chat_update")["data"] == {"action": "created", "chat_id": chat["id"]}
        expect_silence(foreign, 0.4)
    assert response.json() == {"chat": chat, "success": True}
    assert chat["jid"] == "51987654321@s.whatsapp.net" and chat["device_id"] == device["id"]
    assert chat["unread_count"] == 0 and "device_name" not in chat and "last_message" not in chat
    assert sent_calls(client, tenant.headers, device["id"]) == []

    again = new_chat(client, tenant, device_id=device["id"], phone="51987654321@s.whatsapp.net",
                     initial_message="Bienvenido")
    assert again.status_code == 201 and "warning" not in again.json()
    chat2 = again.json()["chat"]
    assert chat2["id"] == chat["id"] and chat2["last_message"] == "Bienvenido"
    assert chat2["device_name"] == device["name"]
    [call] = sent_calls(client, tenant.headers, device["id"])
    assert (call["kind"], call["to"], call["message"]) == ("text", chat["jid"], {"conversation": "Bienvenido"})
    assert count(database, "SELECT count(*) FROM messages WHERE chat_id = $1", [U(chat["id"])]) == 1


def test_new_chat_initial_message_failure_and_bad_input(
    client: httpx.Client, make_tenant: Any, database: str
) -> None:
    tenant, other = make_tenant(), make_tenant()
    idle = create_device(client, tenant.headers)
    response = new_chat(client, tenant, device_id=idle["id"], phone="51911112222", initial_message="hola")
    assert response.status_code == 201
    assert response.json()["warning"] == "Chat created but initial message failed to send"
    assert response.json()["chat"]["jid"] == "51911112222@s.whatsapp.net"
    assert count(database, "SELECT count(*) FROM chats WHERE account_id = $1", [U(tenant.account_id)]) == 1

    for body, status, error in (
        ({"device_id": "nope", "phone": "51911112222"}, 400, "Invalid device ID"),
        ({"device_id": idle["id"], "phone": "  "}, 400, "Phone number is required"),
        ({"device_id": idle["id"], "phone": "abc"}, 400, "invalid phone"),
        ({"device_id": create_device(client, other.headers)["id"], "phone": "51911113333"}, 404, "Device not found"),
        ({"device_id": str(uuid.uuid4()), "phone": "51911113333"}, 404, "Device not found"),
    ):
        bad = new_chat(client, tenant, **body)
        assert (bad.status_code, bad.json()["error"]) == (status, error), body
    assert count(database, "SELECT count(*) FROM chats WHERE account_id = $1", [U(tenant.account_id)]) == 1
    assert count(database, "SELECT count(*) FROM chats WHERE account_id = $1", [U(other.account_id)]) == 0


# -- R23 -------------------------------------------------------------------------------------------------
def test_chat_detail(client: httpx.Client, make_tenant: Any, inbox: dict[str, Any], tenant: Any, database: str) -> None:
    acct = tenant.account_id
    pipeline = one(database, "INSERT INTO pipelines (account_id, name) VALUES ($1, 'P') RETURNING id", [U(acct)])["id"]
    stage = one(database, "INSERT INTO pipeline_stages (pipeline_id, name, color, position) "
                          "VALUES ($1, 'Nuevo', '#ff0000', 3) RETURNING id", [U(pipeline)])["id"]
    lead = insert_lead(database, acct, inbox["gomez_jid"], name="Rosa lead", pipeline_id=U(pipeline),
                       stage_id=U(stage))
    lead_tag = insert_tag(database, acct, "Caliente")
    tag_lead(database, lead, lead_tag)

    response = client.get(f"/api/chats/{inbox['gomez']}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["chat"]["id"] == inbox["gomez"]
    assert body["chat"]["contact_custom_name"] == "Señora Gómez" and body["chat"]["device_name"] == "Soporte"
    contact = body["contact"]
    assert contact["jid"] == inbox["gomez_jid"] and contact["custom_name"] == "Señora Gómez"
    assert [t["name"] for t in contact["structured_tags"]] == ["VIP"]
    assert body["lead"]["id"] == lead and body["lead"]["name"] == "Rosa lead"
    assert (body["lead"]["stage_name"], body["lead"]["stage_color"], body["lead"]["stage_position"]) == (
        "Nuevo", "#ff0000", 3)
    assert [t["name"] for t in body["lead"]["structured_tags"]] == ["Caliente"]

    bare = client.get(f"/api/chats/{inbox['silent']}", headers=tenant.headers).json()
    assert bare["contact"] is None and bare["lead"] is None
    ana = client.get(f"/api/chats/{inbox['ana']}", headers=tenant.headers).json()
    assert ana["contact"]["name"] == "Ana Contacto" and "structured_tags" not in ana["contact"]

    other = make_tenant()
    for path in (f"/api/chats/{inbox['gomez']}", f"/api/chats/{uuid.uuid4()}"):
        missing = client.get(path, headers=other.headers)
        assert (missing.status_code, missing.json()["error"]) == (404, "Chat not found")
    assert client.get("/api/chats/xyz", headers=tenant.headers).json()["error"] == "Invalid chat ID"


# -- R25 / R26 / R22 -------------------------------------------------------------------------------------
def test_mark_read(server: Any, client: httpx.Client, make_tenant: Any, inbox: dict[str, Any], tenant: Any,
                   database: str) -> None:
    other = make_tenant()
    denied = client.post(f"/api/chats/{inbox['ana']}/read", headers=other.headers)
    assert (denied.status_code, denied.json()["error"]) == (404, "Chat not found")
    assert one(database, "SELECT unread_count FROM chats WHERE id = $1", [U(inbox["ana"])])["unread_count"] == 2
    with socket(server, tenant.token) as ws:
        response = client.post(f"/api/chats/{inbox['ana']}/read", headers=tenant.headers)
        assert response.json() == {"success": True}
        event = expect_event(ws, "chat_update")
    assert event["data"] == {"action": "read", "chat_id": inbox["ana"], "unread_count": 0}
    assert one(database, "SELECT unread_count FROM chats WHERE id = $1", [U(inbox["ana"])])["unread_count"] == 0
    assert client.post("/api/chats/bad/read", headers=tenant.headers).json()["error"] == "Invalid chat ID"


def test_delete_chat(server: Any, client: httpx.Client, make_tenant: Any, inbox: dict[str, Any], tenant: Any,
                     database: str) -> None:
    chat = inbox["ana"]
    insert_message(database, tenant.account_id, chat, "M1")
    insert_reaction(database, tenant.account_id, chat, "M1", "x@s.whatsapp.net", "👍", ago(5))
    other = make_tenant()
    denied = client.delete(f"/api/chats/{chat}", headers=other.headers)
    assert (denied.status_code, denied.json()["error"]) == (404, "Chat not found")
    assert count(database, "SELECT count(*) FROM messages WHERE chat_id = $1", [U(chat)]) == 1
    with socket(server, tenant.token) as ws:
        response = client.delete(f"/api/chats/{chat}", headers=tenant.headers)
        assert response.json() == {"message": "Chat deleted", "deleted": 1, "success": True}
        assert expect_event(ws, "chat_update")["data"] == {"action": "deleted", "chat_id": chat}
    for table in ("chats WHERE id", "messages WHERE chat_id", "message_reactions WHERE chat_id"):
        assert count(database, f"SELECT count(*) FROM {table} = $1", [U(chat)]) == 0
    again = client.delete(f"/api/chats/{chat}", headers=tenant.headers)
    assert (again.status_code, again.json()["error"]) == (404, "Chat not found")


def test_batch_delete(client: httpx.Client, make_tenant: Any, inbox: dict[str, Any], tenant: Any,
                      database: str) -> None:
    other = make_tenant()
    theirs = insert_chat(database, other.account_id, jid(), name="ajeno")
    insert_message(database, other.account_id, theirs, "T1")

    def batch(who: Any, body: Any) -> httpx.Response:
        return client.request("DELETE", "/api/chats/batch", json=body, headers=who.headers)

    for body, error in (({}, "No IDs provided"), ({"ids": []}, "No IDs provided"),
                        ({"ids": ["x", "y"]}, "No valid IDs provided")):
        bad = batch(tenant, body)
        assert (bad.status_code, bad.json()["error"]) == (400, error)
    response = batch(tenant, {"ids": [inbox["ana"], inbox["gomez"], theirs, "garbage", inbox["ana"]]})
    assert response.json() == {"message": "2 chats deleted", "deleted": 2, "success": True}
    assert count(database, "SELECT count(*) FROM chats WHERE id = ANY($1)", [[U(inbox["ana"]), U(inbox["gomez"])]]) == 0
    assert count(database, "SELECT count(*) FROM messages WHERE chat_id = $1", [U(theirs)]) == 1

    remaining = count(database, "SELECT count(*) FROM chats WHERE account_id = $1", [U(tenant.account_id)])
    everything = batch(tenant, {"delete_all": True})
    assert everything.json() == {"message": "All chats deleted", "deleted": remaining, "success": True}
    assert count(database, "SELECT count(*) FROM chats WHERE account_id = $1", [U(tenant.account_id)]) == 0
    assert count(database, "SELECT count(*) FROM chats WHERE id = $1", [U(theirs)]) == 1


def test_preview_after_message_and_read_flow(client: httpx.Client, tenant: Any, database: str) -> None:
    """A send updates the listed chat: preview, time, device; it moves to the top of the inbox."""
    device = connected_device(client, tenant.headers)
    old = insert_chat(database, tenant.account_id, jid(), name="viejo", last_message_at=ago(5000))
    newer = insert_chat(database, tenant.account_id, jid(), name="nuevo", last_message_at=ago(100))
    target = one(database, "SELECT jid FROM chats WHERE id = $1", [U(old)])["jid"]
    assert [c["id"] for c in chats(client, tenant)["chats"]] == [newer, old]
    sent = client.post("/api/messages/send", headers=tenant.headers,
                       json={"device_id": device["id"], "to": target, "body": "¡arriba!"})
    assert sent.status_code == 200
    listed = chats(client, tenant)["chats"]
    assert [c["id"] for c in listed] == [old, newer]
    assert listed[0]["last_message"] == "¡arriba!" and listed[0]["device_id"] == device["id"]
    assert listed[0]["last_message_at"] == sent.json()["message"]["timestamp"]
