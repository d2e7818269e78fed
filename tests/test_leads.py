"""Leads R37–R44 against a real server, PostgreSQL and Redis."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import support
from tests.leads_support import (
    assert_silent,
    board_key,
    create_lead,
    default_stages,
    forget_cached_reads,
    lead_rows,
    next_event,
    random_phone,
    redis_client,
    socket,
    sql,
)

REQUIRED_LEAD_KEYS = {"id", "account_id", "jid", "created_at", "updated_at"}


def link_tag(dsn: str, account_id: str, lead_id: str, name: str, color: str = "#111111") -> str:
    tag = sql(
        dsn,
        "INSERT INTO tags (account_id, name, color) VALUES ($1, $2, $3) "
        "ON CONFLICT (account_id, name) DO UPDATE SET color = EXCLUDED.color RETURNING id",
        uuid.UUID(account_id), name, color,
    )[0]["id"]
    sql(dsn, "INSERT INTO lead_tags (lead_id, tag_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        uuid.UUID(lead_id), uuid.UUID(tag))
    return str(tag)


def board(client: httpx.Client, tenant: Any, **params: Any) -> httpx.Response:
    response = client.get("/api/leads", params=params or None, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response


# -- R38 create ---------------------------------------------------------------------------------------
def test_create_lead_shape_and_default_stage(client: httpx.Client, tenant: Any, database: str) -> None:
    response = client.post(
        "/api/leads",
        json={"name": "Ana", "phone": "987 654 321", "email": "ana@example.test", "source": "web", "notes": "hi"},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"success", "lead"} and body["success"] is True
    lead = body["lead"]
    first = default_stages(database, tenant.account_id)[0]
    assert set(lead) == REQUIRED_LEAD_KEYS | {
        "name", "phone", "email", "status", "source", "notes", "pipeline_id", "stage_id",
        "stage_name", "stage_color", "stage_position",
    }
    assert lead["jid"] == "51987654321@s.whatsapp.net"  # normalised, Peru prefix
    assert lead["phone"] == "987 654 321"  # stored as given
    assert lead["account_id"] == tenant.account_id
    assert (lead["status"], lead["source"], lead["notes"]) == ("new", "web", "hi")
    assert lead["stage_id"] == first["id"] and lead["pipeline_id"] == first["pipeline_id"]
    assert (lead["stage_name"], lead["stage_position"]) == ("Nuevo", 0)


def test_create_lead_with_stage_and_errors(client: httpx.Client, make_tenant: Any, database: str) -> None:
    tenant, other = make_tenant(), make_tenant()
    third = default_stages(database, tenant.account_id)[2]
    lead = create_lead(client, tenant, random_phone(), name="Staged", stage_id=third["id"])
    assert lead["stage_id"] == third["id"] and lead["stage_name"] == third["name"]
    assert lead["pipeline_id"] == third["pipeline_id"]

    foreign = default_stages(database, other.account_id)[0]["id"]
    cases = [
        ({"phone": random_phone(), "stage_id": foreign}, 404, "Stage not found"),
        ({"phone": random_phone(), "stage_id": "not-a-uuid"}, 400, "Invalid request"),
        ({"name": "No phone", "phone": ""}, 400, "phone is required"),
        ({"name": "No phone"}, 400, "phone is required"),
        ({"phone": "  "}, 400, "phone is required"),
        ({"phone": 51999, "name": "x"}, 400, "Invalid request"),
        ({"phone": random_phone(), "name": "x" * 300}, 400, "name is too long (max 255 characters)"),
    ]
    for payload, status, message in cases:
        response = client.post("/api/leads", json=payload, headers=tenant.headers)
        assert response.status_code == status, (payload, response.text)
        assert response.json()["success"] is False and response.json()["error"] == message
    broken = client.post("/api/leads", content=b"{not json", headers=tenant.headers)
    assert broken.status_code == 400
    assert len(lead_rows(database, tenant.account_id)) == 1
    assert not any(r["jid"] == "@s.whatsapp.net" for r in lead_rows(database, tenant.account_id))


def test_create_is_an_upsert_on_jid(client: httpx.Client, tenant: Any, database: str) -> None:
    first = create_lead(client, tenant, "+51 911 222 333", name="First")
    again = create_lead(client, tenant, "51911222333", name="Second")
    assert again["id"] == first["id"] and again["name"] == "Second" and again["phone"] == "51911222333"
    unnamed = create_lead(client, tenant, "51911222333", name="")
    assert unnamed["id"] == first["id"] and unnamed["name"] == "Second"  # an empty name keeps the old one
    assert len(lead_rows(database, tenant.account_id)) == 1


def test_create_links_contact_with_same_jid(client: httpx.Client, tenant: Any, database: str) -> None:
    contact_id = sql(
        database,
        "INSERT INTO contacts (account_id, jid, phone, name, custom_name, email, last_name, short_name, company, age) "
        "VALUES ($1, '51922333444@s.whatsapp.net', '51922333444', 'Raw', 'Carla Custom', 'carla@example.test', "
        "'Lopez', 'Carly', 'ACME', 33) RETURNING id",
        uuid.UUID(tenant.account_id),
    )[0]["id"]
    lead = create_lead(client, tenant, "922 333 444")
    assert lead["contact_id"] == str(contact_id)
    assert (lead["name"], lead["email"]) == ("Carla Custom", "carla@example.test")
    assert (lead["last_name"], lead["short_name"], lead["company"], lead["age"]) == ("Lopez", "Carly", "ACME", 33)


# -- R37 list -----------------------------------------------------------------------------------------
def test_board_compat_shape_order_and_structured_tags(client: httpx.Client, tenant: Any, database: str) -> None:
    older = create_lead(client, tenant, random_phone(), name="Older")
    newer = create_lead(client, tenant, random_phone(), name="Newer")
    link_tag(database, tenant.account_id, newer["id"], "zeta")
    link_tag(database, tenant.account_id, newer["id"], "alpha")
    forget_cached_reads(tenant.account_id)  # tag links written behind the API's back
    body = board(client, tenant).json()
    assert set(body) == {"success", "leads"}
    assert [lead["id"] for lead in body["leads"]] == [newer["id"], older["id"]]
    tags = body["leads"][0]["structured_tags"]
    assert [t["name"] for t in tags] == ["alpha", "zeta"]
    assert set(tags[0]) == {"id", "account_id", "name", "color", "created_at", "updated_at"}
    assert "structured_tags" not in body["leads"][1]
    assert "custom_fields" not in body["leads"][1] and "tags" not in body["leads"][1]


def test_empty_board_is_a_list(client: httpx.Client, tenant: Any) -> None:
    assert board(client, tenant).json() == {"success": True, "leads": []}


def test_board_cache_lifecycle_and_byte_identity(client: httpx.Client, tenant: Any) -> None:
    r = redis_client()
    key = board_key(tenant.account_id)
    create_lead(client, tenant, random_phone(), name="Cached")
    first = board(client, tenant)
    assert r.get(key) == first.content
    assert 0 < r.ttl(key) <= 30
    assert board(client, tenant).content == first.content
    # Served from Redis byte for byte: a planted body comes back verbatim (once the process-level page
    # cache, which sits in front of it, has been retired).
    planted = b'{"success":true,"leads":[],"planted":1}'
    r.set(key, planted, ex=30)
    forget_cached_reads(tenant.account_id, board=False)
    assert board(client, tenant).content == planted
    forget_cached_reads(tenant.account_id)
    # Every write drops the key; the next read shows the change.
    board(client, tenant)
    assert r.exists(key)
    lead = create_lead(client, tenant, random_phone(), name="Fresh")
    assert not r.exists(key)
    assert lead["id"] in [x["id"] for x in board(client, tenant).json()["leads"]]
    for method, path, payload in [
        ("PUT", f"/api/leads/{lead['id']}", {"name": "Renamed"}),
        ("PATCH", f"/api/leads/{lead['id']}/status", {"status": "won"}),
        ("DELETE", f"/api/leads/{lead['id']}", None),
    ]:
        board(client, tenant)
        assert r.exists(key)
        response = client.request(method, path, json=payload, headers=tenant.headers)
        assert response.status_code == 200, response.text
        assert not r.exists(key), (method, path)
    assert lead["id"] not in [x["id"] for x in board(client, tenant).json()["leads"]]
    # Paged and filtered reads are never cached.
    r.delete(key)
    board(client, tenant, limit=5)
    assert not r.exists(key)


def test_paging_and_filters(client: httpx.Client, tenant: Any, database: str) -> None:
    stages = default_stages(database, tenant.account_id)
    alpha = create_lead(client, tenant, "51900000001", name="Alpha Perez", email="alpha@example.test")
    beta = create_lead(client, tenant, "51900000002", name="Beta 50% off", stage_id=stages[1]["id"])
    gamma = create_lead(client, tenant, "51900000003", name="gamma_x")
    delta = create_lead(client, tenant, "51900000004", name="Delta back\\slash")
    epsilon = create_lead(client, tenant, "51911111115", name="Epsilon")

    body = board(client, tenant, limit=2, offset=0).json()
    assert set(body) == {"success", "leads", "total", "limit", "offset", "total_capped", "next_cursor"}
    assert (body["total"], body["limit"], body["offset"], body["total_capped"]) == (5, 2, 0, False)
    assert [x["id"] for x in body["leads"]] == [epsilon["id"], delta["id"]]
    tail = board(client, tenant, limit=2, offset=4).json()
    assert [x["id"] for x in tail["leads"]] == [alpha["id"]] and tail["total"] == 5
    assert board(client, tenant, limit=5000).json()["limit"] == 1000
    assert board(client, tenant, offset=0).json()["limit"] == 50

    def ids(**params: Any) -> set[str]:
        return {x["id"] for x in board(client, tenant, **params).json()["leads"]}

    assert ids(search="ALPHA") == {alpha["id"]}
    assert ids(search="50%") == {beta["id"]}  # % is literal
    assert ids(search="a_x") == {gamma["id"]}  # _ is literal
    assert ids(search="k\\s") == {delta["id"]}  # \ is literal
    assert ids(search="5190000000") == {alpha["id"], beta["id"], gamma["id"], delta["id"]}
    assert ids(search="alpha@example") == {alpha["id"]}
    assert ids(stage_id=stages[1]["id"]) == {beta["id"]}
    assert ids(pipeline_id=stages[0]["pipeline_id"]) == {alpha["id"], beta["id"], gamma["id"], delta["id"],
                                                          epsilon["id"]}
    t1 = link_tag(database, tenant.account_id, alpha["id"], "vip")
    t2 = link_tag(database, tenant.account_id, gamma["id"], "cold")
    assert ids(tag_ids=f"{t1},{t2}") == {alpha["id"], gamma["id"]}
    assert ids(tag_ids=[t2]) == {gamma["id"]}
    filtered = board(client, tenant, search="alp", tag_ids=t1, limit=10).json()
    assert filtered["total"] == 1 and filtered["leads"][0]["structured_tags"][0]["name"] == "vip"
    for params, message in [
        ({"pipeline_id": "nope"}, "Invalid pipeline_id"),
        ({"stage_id": "nope"}, "Invalid stage_id"),
        ({"tag_ids": "nope"}, "Invalid tag_ids"),
    ]:
        response = client.get("/api/leads", params=params, headers=tenant.headers)
        assert response.status_code == 400 and response.json()["error"] == message


def test_search_uses_trigram_expression(database: str) -> None:
    """The search statements repeat the indexed expression verbatim, so idx_leads_account_search_trgm can serve
    them (the account and the pattern in one GIN index: no bitmap of the whole account)."""
    from clarin.db.queries import query

    if not sql(database, "SELECT 1 FROM pg_indexes WHERE indexname = 'idx_leads_account_search_trgm'"):
        pytest.skip("pg_trgm / btree_gin are not available on this PostgreSQL")
    expression = (
        "(coalesce(l.name,'') || ' ' || coalesce(l.last_name,'') || ' ' || coalesce(l.phone,'') || ' ' || "
        "coalesce(l.email,'') || ' ' || coalesce(l.company,'') || ' ' || l.jid)"
    )
    assert expression + " ILIKE $6" in query("leads_page_search_few")
    assert expression + " ILIKE $3" in query("leads_count_search")
    assert not sql(database, "SELECT 1 FROM pg_indexes WHERE indexname = 'idx_leads_search_trgm'")
    from tests.test_leads_paging import explain

    plan = explain(database, "SELECT l.id FROM leads l WHERE " + expression + " ILIKE '%zzqq%'", [], bitmap_only=True)
    assert "idx_leads_account_search_trgm" in plan


# -- R40 / R41 / R42 / R43 / R44 ----------------------------------------------------------------------
def test_get_lead(client: httpx.Client, tenant: Any) -> None:
    lead = create_lead(client, tenant, random_phone(), name="Getme")
    response = client.get(f"/api/leads/{lead['id']}", headers=tenant.headers)
    assert response.status_code == 200
    assert set(response.json()) == {"success", "lead"} and response.json()["lead"]["id"] == lead["id"]
    bad = client.get("/api/leads/not-a-uuid", headers=tenant.headers)
    assert (bad.status_code, bad.json()["error"]) == (400, "Invalid lead ID")
    missing = client.get(f"/api/leads/{uuid.uuid4()}", headers=tenant.headers)
    assert (missing.status_code, missing.json()["error"]) == (404, "Lead not found")


def test_partial_update(client: httpx.Client, make_tenant: Any, database: str) -> None:
    tenant, other = make_tenant(), make_tenant()
    stages = default_stages(database, tenant.account_id)
    lead = create_lead(client, tenant, random_phone(), name="Before", email="keep@example.test", notes="n")
    url = f"/api/leads/{lead['id']}"

    response = client.put(url, json={"name": "After", "email": None}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"success", "lead"}
    updated = response.json()["lead"]
    assert (updated["name"], updated["email"], updated["notes"]) == ("After", "keep@example.test", "n")

    moved = client.put(url, json={"stage_id": stages[3]["id"]}, headers=tenant.headers).json()["lead"]
    assert (moved["stage_id"], moved["stage_name"], moved["stage_position"]) == (stages[3]["id"], "Propuesta", 3)
    assert moved["pipeline_id"] == stages[3]["pipeline_id"]

    full = client.put(
        url,
        json={"last_name": "Diaz", "short_name": "Al", "company": "Co", "age": 41, "tags": ["a", "b"],
              "custom_fields": {"budget": 10, "city": "Lima"}, "assigned_to": tenant.user_id,
              "status": "qualified", "source": "ads", "phone": "51999888777"},
        headers=tenant.headers,
    ).json()["lead"]
    assert full["tags"] == ["a", "b"] and full["custom_fields"] == {"budget": 10, "city": "Lima"}
    assert (full["age"], full["assigned_to"], full["status"]) == (41, tenant.user_id, "qualified")
    assert full["stage_id"] == stages[3]["id"]  # untouched

    cleared = client.put(url, json={"stage_id": "", "assigned_to": ""}, headers=tenant.headers).json()["lead"]
    assert "stage_id" not in cleared and "stage_name" not in cleared and "assigned_to" not in cleared
    assert cleared["pipeline_id"] == stages[0]["pipeline_id"]

    foreign_stage = default_stages(database, other.account_id)[1]
    before = lead_rows(database, tenant.account_id)
    for payload, status, message in [
        ({"stage_id": foreign_stage["id"], "name": "Nope"}, 404, "Stage not found"),
        ({"pipeline_id": foreign_stage["pipeline_id"]}, 404, "Pipeline not found"),
        ({"assigned_to": other.user_id}, 404, "User not found"),
        ({"assigned_to": "not-a-uuid"}, 400, "Invalid assigned_to"),
        ({"stage_id": "bad"}, 400, "Invalid stage_id"),
        ({"age": "old"}, 400, "Invalid request"),
        ({"tags": "a,b"}, 400, "Invalid request"),
        ({"age": -1}, 400, "age must be a non-negative integer"),
        ({"short_name": "s" * 101}, 400, "short_name is too long (max 100 characters)"),
        ({"stage_id": stages[1]["id"], "pipeline_id": ""}, 400, "Stage does not belong to the pipeline"),
    ]:
        response = client.put(url, json=payload, headers=tenant.headers)
        assert (response.status_code, response.json()["error"]) == (status, message), payload
    assert lead_rows(database, tenant.account_id) == before
    missing = client.put(f"/api/leads/{uuid.uuid4()}", json={"name": "x"}, headers=tenant.headers)
    assert (missing.status_code, missing.json()["error"]) == (404, "Lead not found")


def test_update_syncs_linked_contact(client: httpx.Client, tenant: Any, database: str) -> None:
    contact_id = sql(
        database,
        "INSERT INTO contacts (account_id, jid, phone, name, email) "
        "VALUES ($1, '51933444555@s.whatsapp.net', '51933444555', 'Orig', 'old@example.test') RETURNING id",
        uuid.UUID(tenant.account_id),
    )[0]["id"]
    lead = create_lead(client, tenant, "51933444555")
    assert lead["contact_id"] == str(contact_id)
    response = client.put(
        f"/api/leads/{lead['id']}", json={"name": "Synced Name", "last_name": "Vega", "company": "NewCo"},
        headers=tenant.headers,
    )
    assert response.status_code == 200
    contact = sql(database, "SELECT custom_name, last_name, company, email, name FROM contacts WHERE id = $1",
                  uuid.UUID(str(contact_id)))[0]
    assert contact == {"custom_name": "Synced Name", "last_name": "Vega", "company": "NewCo",
                       "email": "old@example.test", "name": "Orig"}


def test_delete_status_stage(client: httpx.Client, make_tenant: Any, database: str) -> None:
    tenant, other = make_tenant(), make_tenant()
    stages = default_stages(database, tenant.account_id)
    lead = create_lead(client, tenant, random_phone())
    url = f"/api/leads/{lead['id']}"

    status = client.patch(f"{url}/status", json={"status": "contacted"}, headers=tenant.headers)
    assert (status.status_code, status.json()) == (200, {"success": True})
    assert client.get(url, headers=tenant.headers).json()["lead"]["status"] == "contacted"
    empty = client.patch(f"{url}/status", json={"status": ""}, headers=tenant.headers)
    assert (empty.status_code, empty.json()["error"]) == (400, "status is required")

    # A stage from another pipeline of the account moves the lead into that pipeline too.
    pipeline = sql(database, "INSERT INTO pipelines (account_id, name) VALUES ($1, 'Second') RETURNING id",
                   uuid.UUID(tenant.account_id))[0]["id"]
    stage = sql(database, "INSERT INTO pipeline_stages (pipeline_id, name, position) VALUES ($1, 'Other', 0) "
                "RETURNING id", uuid.UUID(str(pipeline)))[0]["id"]
    moved = client.patch(f"{url}/stage", json={"stage_id": str(stage)}, headers=tenant.headers)
    assert (moved.status_code, moved.json()) == (200, {"success": True})
    row = client.get(url, headers=tenant.headers).json()["lead"]
    assert (row["stage_id"], row["pipeline_id"], row["stage_name"]) == (str(stage), str(pipeline), "Other")
    foreign = default_stages(database, other.account_id)[0]["id"]
    for payload, code, message in [
        ({"stage_id": "bad"}, 400, "Invalid stage ID"),
        ({}, 400, "Invalid stage ID"),
        ({"stage_id": foreign}, 404, "Stage not found"),
        ({"stage_id": str(uuid.uuid4())}, 404, "Stage not found"),
    ]:
        response = client.patch(f"{url}/stage", json=payload, headers=tenant.headers)
        assert (response.status_code, response.json()["error"]) == (code, message)
    unknown = client.patch(f"/api/leads/{uuid.uuid4()}/stage", json={"stage_id": stages[0]["id"]},
                           headers=tenant.headers)
    assert (unknown.status_code, unknown.json()["error"]) == (404, "Lead not found")
    assert client.get(url, headers=tenant.headers).json()["lead"]["stage_id"] == str(stage)

    deleted = client.delete(url, headers=tenant.headers)
    assert (deleted.status_code, deleted.json()) == (200, {"success": True, "message": "Lead deleted"})
    again = client.delete(url, headers=tenant.headers)
    assert (again.status_code, again.json()["error"]) == (404, "Lead not found")
    assert client.delete("/api/leads/xyz", headers=tenant.headers).json()["error"] == "Invalid lead ID"


# -- R39 batch delete ---------------------------------------------------------------------------------
def test_batch_delete(client: httpx.Client, tenant: Any, database: str) -> None:
    leads = [create_lead(client, tenant, random_phone()) for _ in range(4)]
    response = client.request(
        "DELETE", "/api/leads/batch", json={"ids": [leads[0]["id"], leads[1]["id"], str(uuid.uuid4()), "junk"]},
        headers=tenant.headers,
    )
    assert (response.status_code, response.json()) == (200, {"success": True, "message": "2 leads deleted"})
    assert len(lead_rows(database, tenant.account_id)) == 2
    for payload, message in [({}, "No IDs provided"), ({"ids": []}, "No IDs provided"),
                             ({"ids": ["x", "y"]}, "No valid IDs provided")]:
        bad = client.request("DELETE", "/api/leads/batch", json=payload, headers=tenant.headers)
        assert (bad.status_code, bad.json()["error"]) == (400, message)
    wrong_type = client.request("DELETE", "/api/leads/batch", json={"ids": "abc"}, headers=tenant.headers)
    assert wrong_type.status_code == 400
    everything = client.request("DELETE", "/api/leads/batch", json={"all": True}, headers=tenant.headers)
    assert everything.json() == {"success": True, "message": "All leads deleted"}
    assert lead_rows(database, tenant.account_id) == []
    create_lead(client, tenant, random_phone())
    legacy = client.request("DELETE", "/api/leads/batch", json={"delete_all": True}, headers=tenant.headers)
    assert legacy.json() == {"success": True, "message": "All leads deleted"}
    assert lead_rows(database, tenant.account_id) == []


# -- tenant isolation ---------------------------------------------------------------------------------
def test_tenant_isolation(client: httpx.Client, make_tenant: Any, database: str) -> None:
    owner, intruder = make_tenant(), make_tenant()
    leads = [create_lead(client, owner, random_phone(), name=f"Secret {i}") for i in range(2)]
    create_lead(client, intruder, random_phone(), name="Mine")
    intruder_stage = default_stages(database, intruder.account_id)[0]["id"]
    target = leads[0]["id"]
    for method, path, payload in [
        ("GET", f"/api/leads/{target}", None),
        ("PUT", f"/api/leads/{target}", {"name": "hacked"}),
        ("PATCH", f"/api/leads/{target}/status", {"status": "lost"}),
        ("PATCH", f"/api/leads/{target}/stage", {"stage_id": intruder_stage}),
        ("DELETE", f"/api/leads/{target}", None),
    ]:
        response = client.request(method, path, json=payload, headers=intruder.headers)
        assert (response.status_code, response.json()["error"]) == (404, "Lead not found"), (method, path)
    seen = {x["id"] for x in board(client, intruder).json()["leads"]}
    assert not seen & {x["id"] for x in leads}
    paged = board(client, intruder, limit=100, search="Secret").json()
    assert paged["total"] == 0 and paged["leads"] == []
    batch = client.request("DELETE", "/api/leads/batch", json={"ids": [x["id"] for x in leads]},
                           headers=intruder.headers)
    assert batch.json() == {"success": True, "message": "0 leads deleted"}
    client.request("DELETE", "/api/leads/batch", json={"all": True}, headers=intruder.headers)
    rows = lead_rows(database, owner.account_id)
    assert {str(r["id"]) for r in rows} == {x["id"] for x in leads}
    assert all(r["name"].startswith("Secret") and r["status"] == "new" for r in rows)


# -- WebSocket ----------------------------------------------------------------------------------------
def test_lead_update_events(client: httpx.Client, server: Any, make_tenant: Any, database: str) -> None:
    tenant, other = make_tenant(), make_tenant()
    stages = default_stages(database, tenant.account_id)
    with socket(server, tenant) as ws, socket(server, other) as foreign:
        lead = create_lead(client, tenant, random_phone())
        event = next_event(ws, "lead_update")
        assert event == {"event": "lead_update", "account_id": tenant.account_id,
                         "data": {"action": "created", "lead_id": lead["id"]}}
        url = f"/api/leads/{lead['id']}"
        steps = [
            (lambda: client.put(url, json={"name": "x"}, headers=tenant.headers), "updated"),
            (lambda: client.patch(f"{url}/status", json={"status": "won"}, headers=tenant.headers), "status_changed"),
            (lambda: client.patch(f"{url}/stage", json={"stage_id": stages[2]["id"]}, headers=tenant.headers),
             "stage_changed"),
            (lambda: client.delete(url, headers=tenant.headers), "deleted"),
        ]
        for call, action in steps:
            assert call().status_code == 200
            assert next_event(ws, "lead_update")["data"] == {"action": action, "lead_id": lead["id"]}
        a, b = create_lead(client, tenant, random_phone()), create_lead(client, tenant, random_phone())
        next_event(ws, "lead_update")
        next_event(ws, "lead_update")
        client.request("DELETE", "/api/leads/batch", json={"ids": [a["id"], b["id"]]}, headers=tenant.headers)
        data = next_event(ws, "lead_update")["data"]
        assert data["action"] == "batch_deleted" and data["count"] == 2 and set(data["ids"]) == {a["id"], b["id"]}
        create_lead(client, tenant, random_phone())
        next_event(ws, "lead_update")
        client.request("DELETE", "/api/leads/batch", json={"all": True}, headers=tenant.headers)
        assert next_event(ws, "lead_update")["data"] == {"action": "batch_deleted", "count": 1}
        assert_silent(foreign)


# -- Redis down ---------------------------------------------------------------------------------------
def test_board_without_redis(tenant: Any, client: httpx.Client, database: str, log_dir: Path) -> None:
    lead = create_lead(client, tenant, random_phone(), name="No cache")
    env = support.base_env(database, REDIS_URL=f"redis://127.0.0.1:{support.free_port()}/0")
    # /ready answers 503 while Redis is down, so wait on /health instead of support.running_server.
    srv = support.ServerProcess(env, support.free_port(), log_dir / f"noredis-{uuid.uuid4().hex[:6]}.log")
    try:
        deadline = time.monotonic() + 60
        while True:
            assert srv.proc.poll() is None, srv.logs()
            try:
                if httpx.get(srv.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, srv.logs()
            time.sleep(0.2)
        response = httpx.get(srv.url + "/api/leads", headers=tenant.headers, timeout=15)
        assert response.status_code == 200
        assert [x["id"] for x in response.json()["leads"]] == [lead["id"]]
        created = httpx.post(srv.url + "/api/leads", json={"phone": random_phone()}, headers=tenant.headers,
                             timeout=15)
        assert created.status_code == 201
        assert len(httpx.get(srv.url + "/api/leads", headers=tenant.headers).json()["leads"]) == 2
    finally:
        srv.stop()
    assert json.loads(client.get("/api/leads", headers=tenant.headers).content)["success"] is True


def test_page_total_is_cached_and_invalidated_by_writes(client: httpx.Client, tenant: Any, database: str) -> None:
    for n in range(3):
        create_lead(client, tenant, f"5190000010{n}", name=f"Cached {n}")
    assert board(client, tenant, limit=1).json()["total"] == 3  # counted and cached (not the last page)
    assert board(client, tenant, limit=1).json()["total"] == 3  # served from the cached total
    extra = create_lead(client, tenant, "51900000199", name="Cached extra")
    assert board(client, tenant, limit=1).json()["total"] == 4  # the write dropped the cached total
    assert client.delete(f"/api/leads/{extra['id']}", headers=tenant.headers).status_code == 200
    assert board(client, tenant, limit=1).json()["total"] == 3
