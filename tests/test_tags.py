"""Tags and tag links R54–R60 against a real server, PostgreSQL and Redis."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import redis
from websockets.sync.client import ClientConnection, connect

from tests import support
from tests.leads_support import board_key

TAG_KEYS = {"id", "account_id", "name", "color", "created_at", "updated_at"}
ENTITY_TYPES = ("contact", "lead", "chat", "participant")
NOT_FOUND = {"contact": "Contact not found", "lead": "Lead not found", "chat": "Chat not found",
             "participant": "Participant not found"}
JUNCTIONS = {"contact": "contact_tags", "lead": "lead_tags", "chat": "chat_tags", "participant": "participant_tags"}


# -- helpers ------------------------------------------------------------------------------------------
@contextmanager
def socket(server: Any, tenant: Any) -> Iterator[ClientConnection]:
    # close_timeout: the server does not answer a client's close frame (reported to the lead); don't wait 10 s.
    with connect(f"{server.ws_url}?token={tenant.token}", close_timeout=0.2) as ws:
        ws.send('{"event":"ping"}')  # the pong proves the socket is registered before we trigger anything
        assert json.loads(ws.recv(timeout=5)) == {"event": "pong"}
        yield ws


def next_event(ws: ClientConnection, name: str, timeout: float = 5) -> dict[str, Any]:
    while True:
        message = json.loads(ws.recv(timeout=timeout))
        if message.get("event") == name:
            return message


def assert_silent(ws: ClientConnection) -> None:
    with pytest.raises(TimeoutError):
        ws.recv(timeout=0.5)


def seed_leads_cache(account_id: str) -> redis.Redis:
    r = redis.Redis.from_url(support.REDIS_URL)
    r.set(board_key(account_id), b'{"success":true,"leads":[]}', ex=60)
    return r


def make_entity(dsn: str, account_id: str, entity_type: str) -> str:
    account = uuid.UUID(account_id)
    jid = f"{uuid.uuid4().hex[:12]}@s.whatsapp.net"
    if entity_type == "contact":
        sql, params = "INSERT INTO contacts (account_id, jid) VALUES ($1, $2) RETURNING id", [account, jid]
    elif entity_type == "lead":
        sql, params = "INSERT INTO leads (account_id, jid) VALUES ($1, $2) RETURNING id", [account, jid]
    elif entity_type == "chat":
        sql, params = "INSERT INTO chats (account_id, jid) VALUES ($1, $2) RETURNING id", [account, jid]
    else:
        sql = (
            "WITH e AS (INSERT INTO events (account_id, name) VALUES ($1, 'Evento') RETURNING id) "
            "INSERT INTO event_participants (event_id, name) SELECT e.id, 'Ana' FROM e RETURNING id"
        )
        params = [account]
    return str(support.run_sql(dsn, sql, params)[0]["id"])


def link_count(dsn: str, entity_type: str, entity_id: str, tag_id: str | None = None) -> int:
    table = JUNCTIONS[entity_type]
    sql = {
        ("contact_tags", False): "SELECT count(*) AS n FROM contact_tags WHERE contact_id = $1",
        ("contact_tags", True): "SELECT count(*) AS n FROM contact_tags WHERE contact_id = $1 AND tag_id = $2",
        ("lead_tags", False): "SELECT count(*) AS n FROM lead_tags WHERE lead_id = $1",
        ("lead_tags", True): "SELECT count(*) AS n FROM lead_tags WHERE lead_id = $1 AND tag_id = $2",
        ("chat_tags", False): "SELECT count(*) AS n FROM chat_tags WHERE chat_id = $1",
        ("chat_tags", True): "SELECT count(*) AS n FROM chat_tags WHERE chat_id = $1 AND tag_id = $2",
        ("participant_tags", False): "SELECT count(*) AS n FROM participant_tags WHERE participant_id = $1",
        ("participant_tags", True):
            "SELECT count(*) AS n FROM participant_tags WHERE participant_id = $1 AND tag_id = $2",
    }[(table, tag_id is not None)]
    params = [uuid.UUID(entity_id)] + ([uuid.UUID(tag_id)] if tag_id else [])
    return support.run_sql(dsn, sql, params)[0]["n"]


def create_tag(client: httpx.Client, tenant: Any, name: str, **extra: Any) -> dict[str, Any]:
    response = client.post("/api/tags", json={"name": name, **extra}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()["tag"]


def list_tags(client: httpx.Client, tenant: Any) -> list[dict[str, Any]]:
    response = client.get("/api/tags", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["tags"]


def entity_tags(client: httpx.Client, tenant: Any, entity_type: str, entity_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/tags/entity/{entity_type}/{entity_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"success", "tags"}
    return body["tags"]


def link(client: httpx.Client, tenant: Any, action: str, entity_type: str, entity_id: str, tag_id: str
         ) -> httpx.Response:
    return client.post(f"/api/tags/{action}", json={"entity_type": entity_type, "entity_id": entity_id,
                                                    "tag_id": tag_id}, headers=tenant.headers)


def error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["error"] == message, body


# -- R54/R55 list and create --------------------------------------------------------------------------
def test_list_is_empty_then_ordered_by_name(client: httpx.Client, tenant: Any) -> None:
    assert client.get("/api/tags", headers=tenant.headers).json() == {"success": True, "tags": []}
    for name in ("zeta", "Alfa", "beta"):
        create_tag(client, tenant, name)
    # Same order under the C and the ICU/glibc collations.
    assert [t["name"] for t in list_tags(client, tenant)] == ["Alfa", "beta", "zeta"]


def test_create_tag_shape_and_default_color(client: httpx.Client, tenant: Any) -> None:
    response = client.post("/api/tags", json={"name": " VIP "}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"success", "tag"} and body["success"] is True
    tag = body["tag"]
    assert set(tag) == TAG_KEYS
    assert (tag["name"], tag["color"], tag["account_id"]) == ("VIP", "#6366f1", tenant.account_id)
    assert create_tag(client, tenant, "Rojo", color="#ff0000")["color"] == "#ff0000"


def test_create_tag_errors(client: httpx.Client, make_tenant: Any) -> None:
    tenant, other = make_tenant(), make_tenant()
    create_tag(client, tenant, "Duplicado")
    error(client.post("/api/tags", json={"name": "Duplicado"}, headers=tenant.headers),
          409, "A tag with this name already exists")
    # Unique per account only.
    assert create_tag(client, other, "Duplicado")["account_id"] == other.account_id
    error(client.post("/api/tags", json={"name": ""}, headers=tenant.headers), 400, "Name is required")
    error(client.post("/api/tags", json={}, headers=tenant.headers), 400, "Name is required")
    error(client.post("/api/tags", content=b"{oops", headers=tenant.headers), 400, "Invalid request")
    error(client.post("/api/tags", json={"name": "x" * 101}, headers=tenant.headers),
          400, "Name is too long (max 100 characters)")
    error(client.post("/api/tags", json={"name": "x", "color": "#" * 21}, headers=tenant.headers),
          400, "Color is too long (max 20 characters)")
    assert [t["name"] for t in list_tags(client, tenant)] == ["Duplicado"]


# -- R56 update ---------------------------------------------------------------------------------------
def test_update_tag_is_partial_and_returns_stored_tag(client: httpx.Client, tenant: Any) -> None:
    tag = create_tag(client, tenant, "Original", color="#111111")
    cache = seed_leads_cache(tenant.account_id)
    response = client.put(f"/api/tags/{tag['id']}", json={"color": "#222222"}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"success", "tag"}
    updated = body["tag"]
    assert set(updated) == TAG_KEYS
    assert (updated["name"], updated["color"]) == ("Original", "#222222")
    assert (updated["id"], updated["account_id"], updated["created_at"]) == (
        tag["id"], tenant.account_id, tag["created_at"])
    assert cache.get(board_key(tenant.account_id)) is None

    updated = client.put(f"/api/tags/{tag['id']}", json={"name": "Nuevo"}, headers=tenant.headers).json()["tag"]
    assert (updated["name"], updated["color"]) == ("Nuevo", "#222222")
    assert list_tags(client, tenant) == [updated]


def test_update_tag_errors(client: httpx.Client, tenant: Any) -> None:
    tag = create_tag(client, tenant, "Uno")
    create_tag(client, tenant, "Dos")
    error(client.put(f"/api/tags/{tag['id']}", json={"name": "Dos"}, headers=tenant.headers),
          409, "A tag with this name already exists")
    error(client.put(f"/api/tags/{tag['id']}", json={"name": " "}, headers=tenant.headers), 400, "Name is required")
    error(client.put(f"/api/tags/{tag['id']}", json={"color": ""}, headers=tenant.headers),
          400, "Color cannot be empty")
    error(client.put("/api/tags/123", json={"name": "x"}, headers=tenant.headers), 400, "Invalid tag ID")
    error(client.put(f"/api/tags/{uuid.uuid4()}", json={"name": "x"}, headers=tenant.headers), 404, "Tag not found")
    assert {t["name"] for t in list_tags(client, tenant)} == {"Uno", "Dos"}


# -- R57 delete ---------------------------------------------------------------------------------------
def test_delete_tag_removes_every_link(client: httpx.Client, tenant: Any, database: str) -> None:
    tag = create_tag(client, tenant, "Borrar")
    keep = create_tag(client, tenant, "Queda")
    entities = {t: make_entity(database, tenant.account_id, t) for t in ENTITY_TYPES}
    for entity_type, entity_id in entities.items():
        for t in (tag, keep):
            assert link(client, tenant, "assign", entity_type, entity_id, t["id"]).status_code == 200
    cache = seed_leads_cache(tenant.account_id)

    response = client.delete(f"/api/tags/{tag['id']}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}
    assert cache.get(board_key(tenant.account_id)) is None
    for entity_type, entity_id in entities.items():
        assert link_count(database, entity_type, entity_id, tag["id"]) == 0
        assert [t["name"] for t in entity_tags(client, tenant, entity_type, entity_id)] == ["Queda"]
    assert [t["id"] for t in list_tags(client, tenant)] == [keep["id"]]
    error(client.delete(f"/api/tags/{tag['id']}", headers=tenant.headers), 404, "Tag not found")
    error(client.delete("/api/tags/zzz", headers=tenant.headers), 400, "Invalid tag ID")


# -- R58/R59/R60 links --------------------------------------------------------------------------------
@pytest.mark.parametrize("entity_type", ENTITY_TYPES)
def test_assign_list_remove_each_entity_type(
    client: httpx.Client, tenant: Any, database: str, entity_type: str
) -> None:
    entity_id = make_entity(database, tenant.account_id, entity_type)
    b, a = create_tag(client, tenant, "b-tag"), create_tag(client, tenant, "a-tag")
    assert entity_tags(client, tenant, entity_type, entity_id) == []

    for tag in (b, a, b):  # the repeat is a silent success
        response = link(client, tenant, "assign", entity_type, entity_id, tag["id"])
        assert response.status_code == 200, response.text
        assert response.json() == {"success": True}
    assert link_count(database, entity_type, entity_id) == 2
    tags = entity_tags(client, tenant, entity_type, entity_id)
    assert [t["name"] for t in tags] == ["a-tag", "b-tag"]
    assert all(set(t) == TAG_KEYS for t in tags)

    for _ in range(2):
        response = link(client, tenant, "remove", entity_type, entity_id, b["id"])
        assert response.status_code == 200 and response.json() == {"success": True}
    assert [t["name"] for t in entity_tags(client, tenant, entity_type, entity_id)] == ["a-tag"]


def test_link_errors(client: httpx.Client, make_tenant: Any, database: str) -> None:
    tenant, other = make_tenant(), make_tenant()
    tag = create_tag(client, tenant, "Mía")
    foreign_tag = create_tag(client, other, "Ajena")
    lead = make_entity(database, tenant.account_id, "lead")
    for action in ("assign", "remove"):
        error(link(client, tenant, action, "widget", lead, tag["id"]), 400, "invalid entity type: widget")
        error(link(client, tenant, action, "lead", "not-a-uuid", tag["id"]), 400, "Invalid entity ID")
        error(link(client, tenant, action, "lead", lead, "bad"), 400, "Invalid tag ID")
        error(link(client, tenant, action, "lead", lead, foreign_tag["id"]), 404, "Tag not found")
        error(link(client, tenant, action, "lead", lead, str(uuid.uuid4())), 404, "Tag not found")
        for entity_type in ENTITY_TYPES:
            error(link(client, tenant, action, entity_type, str(uuid.uuid4()), tag["id"]),
                  404, NOT_FOUND[entity_type])
        error(client.post(f"/api/tags/{action}", content=b"[", headers=tenant.headers), 400, "Invalid request")
    assert link_count(database, "lead", lead) == 0

    error(client.get(f"/api/tags/entity/widget/{lead}", headers=tenant.headers), 400, "invalid entity type: widget")
    error(client.get("/api/tags/entity/lead/nope", headers=tenant.headers), 400, "Invalid ID")
    error(client.get(f"/api/tags/entity/lead/{uuid.uuid4()}", headers=tenant.headers), 404, "Lead not found")


def test_lead_links_drop_cache_and_notify_only_this_account(
    client: httpx.Client, make_tenant: Any, server: Any, database: str
) -> None:
    tenant, other = make_tenant(), make_tenant()
    tag = create_tag(client, tenant, "Caliente")
    lead = make_entity(database, tenant.account_id, "lead")
    contact = make_entity(database, tenant.account_id, "contact")

    with socket(server, tenant) as ws, socket(server, other) as other_ws:
        for action, past in (("assign", "assigned"), ("remove", "removed")):
            cache = seed_leads_cache(tenant.account_id)
            assert link(client, tenant, action, "lead", lead, tag["id"]).status_code == 200
            assert cache.get(board_key(tenant.account_id)) is None
            event = next_event(ws, "tag_assignment")
            assert event == {"event": "tag_assignment", "account_id": tenant.account_id,
                             "data": {"action": past, "entity_type": "lead", "entity_id": lead, "tag_id": tag["id"]}}
            assert next_event(ws, "lead_update")["data"] == {"action": "tags_changed", "lead_id": lead}

        # A contact link is announced but does not touch the leads cache.
        cache = seed_leads_cache(tenant.account_id)
        assert link(client, tenant, "assign", "contact", contact, tag["id"]).status_code == 200
        assert next_event(ws, "tag_assignment")["data"]["entity_type"] == "contact"
        assert cache.get(board_key(tenant.account_id)) is not None
        # Repeating it changes nothing and announces nothing.
        assert link(client, tenant, "assign", "contact", contact, tag["id"]).status_code == 200
        assert_silent(ws)
        assert_silent(other_ws)
        cache.delete(board_key(tenant.account_id))


def test_tag_events_reach_only_the_same_account(client: httpx.Client, make_tenant: Any, server: Any) -> None:
    tenant, other = make_tenant(), make_tenant()
    with socket(server, tenant) as ws, socket(server, other) as other_ws:
        tag = create_tag(client, tenant, "Evento")
        assert next_event(ws, "tag_update") == {"event": "tag_update", "account_id": tenant.account_id,
                                                "data": {"action": "created", "tag_id": tag["id"]}}
        client.put(f"/api/tags/{tag['id']}", json={"name": "Evento 2"}, headers=tenant.headers)
        assert next_event(ws, "tag_update")["data"] == {"action": "updated", "tag_id": tag["id"]}
        client.delete(f"/api/tags/{tag['id']}", headers=tenant.headers)
        assert next_event(ws, "tag_update")["data"] == {"action": "deleted", "tag_id": tag["id"]}
        assert_silent(other_ws)


def test_other_tenant_cannot_see_or_touch_tags(client: httpx.Client, make_tenant: Any, database: str) -> None:
    owner, intruder = make_tenant(), make_tenant()
    tag = create_tag(client, owner, "Secreto", color="#abcdef")
    own_tag = create_tag(client, intruder, "Propio")
    entities = {t: make_entity(database, owner.account_id, t) for t in ENTITY_TYPES}
    intruder_entities = {t: make_entity(database, intruder.account_id, t) for t in ENTITY_TYPES}
    for entity_type, entity_id in entities.items():
        assert link(client, owner, "assign", entity_type, entity_id, tag["id"]).status_code == 200
    before = list_tags(client, owner)
    h = intruder.headers

    error(client.put(f"/api/tags/{tag['id']}", json={"name": "x"}, headers=h), 404, "Tag not found")
    error(client.delete(f"/api/tags/{tag['id']}", headers=h), 404, "Tag not found")
    for entity_type, entity_id in entities.items():
        missing = NOT_FOUND[entity_type]
        error(client.get(f"/api/tags/entity/{entity_type}/{entity_id}", headers=h), 404, missing)
        # The owner's entity with the intruder's tag, and the intruder's entity with the owner's tag.
        error(link(client, intruder, "assign", entity_type, entity_id, own_tag["id"]), 404, missing)
        error(link(client, intruder, "remove", entity_type, entity_id, tag["id"]), 404, missing)
        error(link(client, intruder, "assign", entity_type, intruder_entities[entity_type], tag["id"]),
              404, "Tag not found")
        assert link_count(database, entity_type, intruder_entities[entity_type]) == 0
    assert [t["id"] for t in list_tags(client, intruder)] == [own_tag["id"]]

    assert list_tags(client, owner) == before
    for entity_type, entity_id in entities.items():
        assert [t["id"] for t in entity_tags(client, owner, entity_type, entity_id)] == [tag["id"]]
