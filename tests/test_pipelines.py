"""Pipelines and stages R46–R53 against a real server, PostgreSQL and Redis."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest
import redis
from websockets.sync.client import ClientConnection, connect

from tests import support
from tests.leads_support import board_key

PIPELINE_KEYS = {"id", "account_id", "name", "description", "is_default", "stages", "created_at", "updated_at"}
STAGE_KEYS = {"id", "pipeline_id", "name", "color", "position", "created_at"}
DEFAULT_STAGES = ["Nuevo", "Contactado", "En Negociación", "Propuesta", "Cerrado", "Perdido"]


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


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(support.REDIS_URL)


def seed_leads_cache(account_id: str) -> redis.Redis:
    r = redis_client()
    r.set(board_key(account_id), b'{"success":true,"leads":[]}', ex=60)
    return r


def insert_leads(dsn: str, account_id: str, pipeline_id: str | None, stage_id: str | None, n: int = 1) -> list[str]:
    rows = support.run_sql(
        dsn,
        "INSERT INTO leads (account_id, jid, pipeline_id, stage_id, updated_at) "
        "SELECT $1, 'lead-' || gen_random_uuid() || '@s.whatsapp.net', $2, $3, now() - interval '1 day' "
        "FROM generate_series(1, $4::int) RETURNING id",
        [uuid.UUID(account_id), _uuid(pipeline_id), _uuid(stage_id), n],
    )
    return [str(row["id"]) for row in rows]


def lead_rows(dsn: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = support.run_sql(
        dsn,
        "SELECT id, pipeline_id, stage_id, updated_at > now() - interval '1 hour' AS bumped "
        "FROM leads WHERE id = ANY($1::uuid[])",
        [[uuid.UUID(i) for i in ids]],
    )
    return {str(row["id"]): row for row in rows}


def _uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


def pipelines(client: httpx.Client, tenant: Any) -> list[dict[str, Any]]:
    response = client.get("/api/pipelines", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    return body["pipelines"]


def default_pipeline(client: httpx.Client, tenant: Any) -> dict[str, Any]:
    return next(p for p in pipelines(client, tenant) if p["is_default"])


def create_pipeline(client: httpx.Client, tenant: Any, name: str = "Ventas", **extra: Any) -> dict[str, Any]:
    response = client.post("/api/pipelines", json={"name": name, **extra}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()["pipeline"]


def add_stage(client: httpx.Client, tenant: Any, pipeline_id: str, name: str, **extra: Any) -> dict[str, Any]:
    response = client.post(
        f"/api/pipelines/{pipeline_id}/stages", json={"name": name, **extra}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    return response.json()["stage"]


def error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["error"] == message, body


# -- R46 list -----------------------------------------------------------------------------------------
def test_list_shows_default_pipeline_with_ordered_stages(client: httpx.Client, tenant: Any) -> None:
    listed = pipelines(client, tenant)
    assert len(listed) == 1
    pipeline = listed[0]
    assert set(pipeline) == PIPELINE_KEYS
    assert pipeline["account_id"] == tenant.account_id
    assert pipeline["name"] == "Pipeline Principal"
    assert pipeline["is_default"] is True
    assert [s["name"] for s in pipeline["stages"]] == DEFAULT_STAGES
    assert [s["position"] for s in pipeline["stages"]] == list(range(6))
    for stage in pipeline["stages"]:
        assert set(stage) == STAGE_KEYS  # lead_count omitted when 0
        assert stage["pipeline_id"] == pipeline["id"]


def test_list_counts_leads_per_stage_of_this_account_only(
    client: httpx.Client, make_tenant: Any, database: str
) -> None:
    a, b = make_tenant(), make_tenant()
    pipeline = default_pipeline(client, a)
    first, third = pipeline["stages"][0], pipeline["stages"][2]
    insert_leads(database, a.account_id, pipeline["id"], first["id"], 3)
    insert_leads(database, a.account_id, pipeline["id"], third["id"], 1)
    insert_leads(database, a.account_id, pipeline["id"], None, 2)  # no stage: counted nowhere
    # A corrupt cross-tenant reference must not leak into A's counts.
    insert_leads(database, b.account_id, None, first["id"], 5)

    stages = default_pipeline(client, a)["stages"]
    assert [s.get("lead_count") for s in stages] == [3, None, 1, None, None, None]
    assert "lead_count" not in stages[1]


def test_list_orders_pipelines_by_creation_and_keeps_empty_ones(client: httpx.Client, tenant: Any) -> None:
    second = create_pipeline(client, tenant, "Segundo")
    third = create_pipeline(client, tenant, "Tercero", description="desc")
    listed = pipelines(client, tenant)
    assert [p["name"] for p in listed] == ["Pipeline Principal", "Segundo", "Tercero"]
    assert "stages" not in listed[1]  # no stages: key omitted (omitempty)
    assert listed[2]["description"] == "desc"
    assert {second["id"], third["id"]} <= {p["id"] for p in listed}


def test_list_hides_kommo_pipelines_unless_connected_and_enabled(
    client: httpx.Client, tenant: Any, database: str
) -> None:
    account = uuid.UUID(tenant.account_id)
    support.run_sql(
        database,
        "INSERT INTO pipelines (account_id, name, kommo_id) VALUES ($1, 'Kommo A', 111), ($1, 'Kommo B', 222)",
        [account],
    )
    assert [p["name"] for p in pipelines(client, tenant)] == ["Pipeline Principal"]

    support.run_sql(
        database,
        "INSERT INTO kommo_connected_pipelines (account_id, kommo_pipeline_id, enabled) VALUES ($1, 111, TRUE), "
        "($1, 222, FALSE)",
        [account],
    )
    listed = pipelines(client, tenant)
    assert [p["name"] for p in listed] == ["Pipeline Principal", "Kommo A"]
    assert listed[1]["kommo_id"] == 111


# -- R47 create ---------------------------------------------------------------------------------------
def test_create_pipeline(client: httpx.Client, tenant: Any) -> None:
    response = client.post(
        "/api/pipelines", json={"name": "  Ventas  ", "description": "B2B"}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"success", "pipeline"}
    pipeline = body["pipeline"]
    assert set(pipeline) == {"id", "account_id", "name", "description", "is_default", "created_at", "updated_at"}
    assert pipeline["name"] == "Ventas"
    assert pipeline["description"] == "B2B"
    assert pipeline["is_default"] is False
    assert pipeline["account_id"] == tenant.account_id
    # Without description the key is omitted.
    assert "description" not in create_pipeline(client, tenant, "Otro")


@pytest.mark.parametrize(
    "payload",
    [b'{"name": ""}', b'{"name": "   "}', b"{}", b"not json", b'{"name": 5}', b""],
)
def test_create_pipeline_requires_name(client: httpx.Client, tenant: Any, payload: bytes) -> None:
    response = client.post(
        "/api/pipelines", content=payload, headers={**tenant.headers, "content-type": "application/json"}
    )
    error(response, 400, "Name is required")


def test_create_pipeline_rejects_overlong_and_nul_names(client: httpx.Client, tenant: Any) -> None:
    response = client.post("/api/pipelines", json={"name": "x" * 256}, headers=tenant.headers)
    error(response, 400, "Name is too long (max 255 characters)")
    response = client.post("/api/pipelines", json={"name": "a\u0000b"}, headers=tenant.headers)
    error(response, 400, "Request contains invalid characters")  # the body decoder's rule for every JSON string


# -- R48 update ---------------------------------------------------------------------------------------
def test_update_pipeline_is_partial_and_returns_stages(client: httpx.Client, tenant: Any, database: str) -> None:
    pipeline = default_pipeline(client, tenant)
    stage = pipeline["stages"][0]
    insert_leads(database, tenant.account_id, pipeline["id"], stage["id"], 2)

    response = client.put(
        f"/api/pipelines/{pipeline['id']}", json={"description": "nueva"}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    updated = response.json()["pipeline"]
    assert set(updated) == PIPELINE_KEYS
    assert updated["name"] == "Pipeline Principal"
    assert updated["description"] == "nueva"
    assert updated["is_default"] is True
    assert [s["name"] for s in updated["stages"]] == DEFAULT_STAGES
    assert updated["stages"][0]["lead_count"] == 2
    assert datetime.fromisoformat(updated["updated_at"]) > datetime.fromisoformat(pipeline["updated_at"])

    updated = client.put(
        f"/api/pipelines/{pipeline['id']}", json={"name": "Renombrado"}, headers=tenant.headers
    ).json()["pipeline"]
    assert (updated["name"], updated["description"]) == ("Renombrado", "nueva")

    updated = client.put(
        f"/api/pipelines/{pipeline['id']}", json={"description": ""}, headers=tenant.headers
    ).json()["pipeline"]
    assert "description" not in updated
    assert updated["name"] == "Renombrado"


def test_update_pipeline_errors(client: httpx.Client, tenant: Any) -> None:
    pipeline = default_pipeline(client, tenant)
    error(client.put(f"/api/pipelines/{pipeline['id']}", json={"name": " "}, headers=tenant.headers),
          400, "Name is required")
    error(client.put("/api/pipelines/not-a-uuid", json={"name": "x"}, headers=tenant.headers),
          400, "Invalid pipeline ID")
    error(client.put(f"/api/pipelines/{uuid.uuid4()}", json={"name": "x"}, headers=tenant.headers),
          404, "Pipeline not found")
    error(client.put(f"/api/pipelines/{pipeline['id']}", content=b"[1", headers=tenant.headers),
          400, "Invalid request")
    assert default_pipeline(client, tenant)["name"] == "Pipeline Principal"


# -- R49 delete ---------------------------------------------------------------------------------------
def test_delete_default_pipeline_detaches_leads_in_one_go(
    client: httpx.Client, make_tenant: Any, server: Any, database: str
) -> None:
    tenant, other = make_tenant(), make_tenant()
    pipeline = default_pipeline(client, tenant)
    staged = insert_leads(database, tenant.account_id, pipeline["id"], pipeline["stages"][1]["id"], 2)
    unstaged = insert_leads(database, tenant.account_id, pipeline["id"], None, 1)
    elsewhere = create_pipeline(client, tenant, "Otro")
    kept = insert_leads(database, tenant.account_id, elsewhere["id"], None, 1)
    cache = seed_leads_cache(tenant.account_id)

    with socket(server, tenant) as ws, socket(server, other) as other_ws:
        response = client.delete(f"/api/pipelines/{pipeline['id']}", headers=tenant.headers)
        assert response.status_code == 200, response.text
        assert response.json() == {"success": True}
        event = next_event(ws, "pipeline_update")
        assert event["account_id"] == tenant.account_id
        assert event["data"] == {"action": "deleted", "pipeline_id": pipeline["id"]}
        leads_event = next_event(ws, "lead_update")
        assert leads_event["data"]["action"] == "stage_changed"
        assert sorted(leads_event["data"]["ids"]) == sorted(staged + unstaged)
        assert_silent(other_ws)

    assert cache.get(board_key(tenant.account_id)) is None
    rows = lead_rows(database, staged + unstaged + kept)
    for lead_id in staged + unstaged:
        assert rows[lead_id]["pipeline_id"] is None and rows[lead_id]["stage_id"] is None
        assert rows[lead_id]["bumped"] is True
    assert str(rows[kept[0]]["pipeline_id"]) == elsewhere["id"]
    assert rows[kept[0]]["bumped"] is False
    left = support.run_sql(
        database, "SELECT count(*) AS n FROM pipeline_stages WHERE pipeline_id = $1", [uuid.UUID(pipeline["id"])]
    )
    assert left[0]["n"] == 0
    assert [p["id"] for p in pipelines(client, tenant)] == [elsewhere["id"]]
    error(client.delete(f"/api/pipelines/{pipeline['id']}", headers=tenant.headers), 404, "Pipeline not found")
    error(client.delete("/api/pipelines/xyz", headers=tenant.headers), 400, "Invalid pipeline ID")


def test_delete_pipeline_without_leads_sends_no_lead_event(client: httpx.Client, tenant: Any, server: Any) -> None:
    pipeline = create_pipeline(client, tenant, "Vacío")
    with socket(server, tenant) as ws:
        assert client.delete(f"/api/pipelines/{pipeline['id']}", headers=tenant.headers).status_code == 200
        assert next_event(ws, "pipeline_update")["data"]["action"] == "deleted"
        assert_silent(ws)


# -- R50 add stage ------------------------------------------------------------------------------------
def test_add_stage_appends_with_default_color(client: httpx.Client, tenant: Any) -> None:
    pipeline = default_pipeline(client, tenant)
    response = client.post(
        f"/api/pipelines/{pipeline['id']}/stages", json={"name": "Seguimiento"}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"success", "stage"} and body["success"] is True
    stage = body["stage"]
    assert set(stage) == STAGE_KEYS
    assert stage["position"] == 6
    assert stage["color"] == "#6366f1"
    assert stage["pipeline_id"] == pipeline["id"]

    custom = add_stage(client, tenant, pipeline["id"], "Extra", color="#123456")
    assert (custom["position"], custom["color"]) == (7, "#123456")
    assert [s["name"] for s in default_pipeline(client, tenant)["stages"]][-2:] == ["Seguimiento", "Extra"]

    empty = create_pipeline(client, tenant, "Nuevo pipeline")
    assert add_stage(client, tenant, empty["id"], "Primera")["position"] == 0


def test_add_stage_errors(client: httpx.Client, tenant: Any) -> None:
    pipeline = default_pipeline(client, tenant)
    url = f"/api/pipelines/{pipeline['id']}/stages"
    error(client.post(url, json={"name": ""}, headers=tenant.headers), 400, "Name is required")
    error(client.post(url, content=b"{", headers=tenant.headers), 400, "Name is required")
    error(client.post(url, json={"name": "x", "color": "#" * 51}, headers=tenant.headers),
          400, "Color is too long (max 50 characters)")
    error(client.post("/api/pipelines/nope/stages", json={"name": "x"}, headers=tenant.headers),
          400, "Invalid pipeline ID")
    error(client.post(f"/api/pipelines/{uuid.uuid4()}/stages", json={"name": "x"}, headers=tenant.headers),
          404, "Pipeline not found")
    assert len(default_pipeline(client, tenant)["stages"]) == 6


# -- R51 reorder --------------------------------------------------------------------------------------
def test_reorder_stages(client: httpx.Client, make_tenant: Any, server: Any) -> None:
    tenant, other = make_tenant(), make_tenant()
    pipeline = default_pipeline(client, tenant)
    foreign = create_pipeline(client, tenant, "Otro")
    foreign_stage = add_stage(client, tenant, foreign["id"], "Ajena")
    ids = [s["id"] for s in pipeline["stages"]]
    new_order = list(reversed(ids))
    cache = seed_leads_cache(tenant.account_id)

    with socket(server, tenant) as ws, socket(server, other) as other_ws:
        response = client.put(
            f"/api/pipelines/{pipeline['id']}/stages/reorder",
            json={"stage_ids": [new_order[0], "garbage", foreign_stage["id"], *new_order[1:]]},
            headers=tenant.headers,
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"success": True}
        event = next_event(ws, "pipeline_update")
        assert event["data"] == {"action": "stages_reordered", "pipeline_id": pipeline["id"]}
        assert_silent(other_ws)

    assert cache.get(board_key(tenant.account_id)) is None
    stages = default_pipeline(client, tenant)["stages"]
    # Invalid ids are skipped; the other pipeline's stage keeps its place but counts in the index (original rule:
    # the index among the valid UUIDs).
    assert [s["id"] for s in stages] == new_order
    assert [s["position"] for s in stages] == [0, 2, 3, 4, 5, 6]
    assert next(p for p in pipelines(client, tenant) if p["id"] == foreign["id"])["stages"][0]["position"] == 0


def test_reorder_errors(client: httpx.Client, tenant: Any) -> None:
    pipeline = default_pipeline(client, tenant)
    error(client.put("/api/pipelines/bad/stages/reorder", json={"stage_ids": []}, headers=tenant.headers),
          400, "Invalid pipeline ID")
    error(client.put(f"/api/pipelines/{uuid.uuid4()}/stages/reorder", json={"stage_ids": []},
                     headers=tenant.headers), 404, "Pipeline not found")
    error(client.put(f"/api/pipelines/{pipeline['id']}/stages/reorder", json={"stage_ids": "x"},
                     headers=tenant.headers), 400, "Invalid request")
    ok = client.put(f"/api/pipelines/{pipeline['id']}/stages/reorder", json={}, headers=tenant.headers)
    assert ok.status_code == 200
    assert [s["position"] for s in default_pipeline(client, tenant)["stages"]] == list(range(6))


# -- R52 update stage ---------------------------------------------------------------------------------
def test_update_stage_is_partial_and_returns_stored_row(
    client: httpx.Client, make_tenant: Any, server: Any, database: str
) -> None:
    tenant, other = make_tenant(), make_tenant()
    pipeline = default_pipeline(client, tenant)
    stage = pipeline["stages"][1]
    insert_leads(database, tenant.account_id, pipeline["id"], stage["id"], 4)
    cache = seed_leads_cache(tenant.account_id)
    url = f"/api/pipelines/{pipeline['id']}/stages/{stage['id']}"

    with socket(server, tenant) as ws, socket(server, other) as other_ws:
        response = client.put(url, json={"color": "#000000"}, headers=tenant.headers)
        assert response.status_code == 200, response.text
        event = next_event(ws, "pipeline_update")
        assert event["data"] == {"action": "stage_updated", "pipeline_id": pipeline["id"], "stage_id": stage["id"]}
        assert_silent(other_ws)
    assert cache.get(board_key(tenant.account_id)) is None

    body = response.json()
    assert set(body) == {"success", "stage"}
    updated = body["stage"]
    assert updated == {**stage, "color": "#000000", "lead_count": 4}

    updated = client.put(url, json={"name": "Llamado", "position": 9}, headers=tenant.headers).json()["stage"]
    assert (updated["name"], updated["color"], updated["position"]) == ("Llamado", "#000000", 9)
    assert updated["created_at"] == stage["created_at"]
    stored = default_pipeline(client, tenant)["stages"][-1]
    assert stored["id"] == stage["id"] and stored["name"] == "Llamado"


def test_update_stage_errors(client: httpx.Client, tenant: Any) -> None:
    pipeline = default_pipeline(client, tenant)
    stage = pipeline["stages"][0]
    other_pipeline = create_pipeline(client, tenant, "Otro")
    url = f"/api/pipelines/{pipeline['id']}/stages/{stage['id']}"
    error(client.put(url, json={"name": ""}, headers=tenant.headers), 400, "Name is required")
    error(client.put(url, json={"color": " "}, headers=tenant.headers), 400, "Color cannot be empty")
    error(client.put(url, json={"position": -1}, headers=tenant.headers), 400,
          "Position must be a non-negative integer")
    error(client.put(url, json={"position": 2**40}, headers=tenant.headers), 400,
          "Position must be a non-negative integer")
    error(client.put(f"/api/pipelines/{pipeline['id']}/stages/bad", json={}, headers=tenant.headers),
          400, "Invalid stage ID")
    error(client.put(f"/api/pipelines/bad/stages/{stage['id']}", json={}, headers=tenant.headers),
          400, "Invalid pipeline ID")
    # The stage exists, but not in the pipeline of the path.
    error(client.put(f"/api/pipelines/{other_pipeline['id']}/stages/{stage['id']}", json={"name": "x"},
                     headers=tenant.headers), 404, "Stage not found")
    error(client.put(f"/api/pipelines/{pipeline['id']}/stages/{uuid.uuid4()}", json={"name": "x"},
                     headers=tenant.headers), 404, "Stage not found")
    assert default_pipeline(client, tenant)["stages"][0] == stage


# -- R53 delete stage ---------------------------------------------------------------------------------
def test_delete_stage_keeps_pipeline_on_leads(client: httpx.Client, tenant: Any, server: Any, database: str) -> None:
    pipeline = default_pipeline(client, tenant)
    stage, neighbour = pipeline["stages"][2], pipeline["stages"][3]
    moved = insert_leads(database, tenant.account_id, pipeline["id"], stage["id"], 2)
    kept = insert_leads(database, tenant.account_id, pipeline["id"], neighbour["id"], 1)
    cache = seed_leads_cache(tenant.account_id)
    other_pipeline = create_pipeline(client, tenant, "Otro")
    error(client.delete(f"/api/pipelines/{other_pipeline['id']}/stages/{stage['id']}", headers=tenant.headers),
          404, "Stage not found")

    with socket(server, tenant) as ws:
        response = client.delete(f"/api/pipelines/{pipeline['id']}/stages/{stage['id']}", headers=tenant.headers)
        assert response.status_code == 200, response.text
        assert response.json() == {"success": True}
        assert next_event(ws, "pipeline_update")["data"] == {
            "action": "stage_deleted", "pipeline_id": pipeline["id"], "stage_id": stage["id"],
        }
        leads_event = next_event(ws, "lead_update")["data"]
        assert leads_event["action"] == "stage_changed"
        assert sorted(leads_event["ids"]) == sorted(moved)

    assert cache.get(board_key(tenant.account_id)) is None
    rows = lead_rows(database, moved + kept)
    for lead_id in moved:
        assert str(rows[lead_id]["pipeline_id"]) == pipeline["id"]
        assert rows[lead_id]["stage_id"] is None and rows[lead_id]["bumped"] is True
    assert str(rows[kept[0]]["stage_id"]) == neighbour["id"] and rows[kept[0]]["bumped"] is False
    assert stage["id"] not in [s["id"] for s in default_pipeline(client, tenant)["stages"]]
    error(client.delete(f"/api/pipelines/{pipeline['id']}/stages/{stage['id']}", headers=tenant.headers),
          404, "Stage not found")
    error(client.delete(f"/api/pipelines/{pipeline['id']}/stages/nope", headers=tenant.headers),
          400, "Invalid stage ID")


def test_delete_stage_with_many_leads_sends_bulk_event(
    client: httpx.Client, tenant: Any, server: Any, database: str
) -> None:
    pipeline = default_pipeline(client, tenant)
    stage = pipeline["stages"][0]
    insert_leads(database, tenant.account_id, pipeline["id"], stage["id"], 501)
    with socket(server, tenant) as ws:
        response = client.delete(f"/api/pipelines/{pipeline['id']}/stages/{stage['id']}", headers=tenant.headers)
        assert response.status_code == 200
        assert next_event(ws, "lead_update")["data"] == {"action": "bulk_changed"}
    left = support.run_sql(
        database, "SELECT count(*) AS n FROM leads WHERE account_id = $1 AND stage_id IS NULL",
        [uuid.UUID(tenant.account_id)],
    )
    assert left[0]["n"] == 501


# -- events and tenant isolation ----------------------------------------------------------------------
def test_create_events_reach_only_the_same_account(client: httpx.Client, make_tenant: Any, server: Any) -> None:
    tenant, other = make_tenant(), make_tenant()
    with socket(server, tenant) as ws, socket(server, other) as other_ws:
        pipeline = create_pipeline(client, tenant, "Eventos")
        event = next_event(ws, "pipeline_update")
        assert event == {"event": "pipeline_update", "account_id": tenant.account_id,
                         "data": {"action": "created", "pipeline_id": pipeline["id"]}}
        stage = add_stage(client, tenant, pipeline["id"], "Uno")
        assert next_event(ws, "pipeline_update")["data"] == {
            "action": "stage_created", "pipeline_id": pipeline["id"], "stage_id": stage["id"],
        }
        client.put(f"/api/pipelines/{pipeline['id']}", json={"name": "Eventos 2"}, headers=tenant.headers)
        assert next_event(ws, "pipeline_update")["data"] == {"action": "updated", "pipeline_id": pipeline["id"]}
        assert_silent(other_ws)


def test_other_tenant_cannot_see_or_touch_pipelines(
    client: httpx.Client, make_tenant: Any, database: str
) -> None:
    owner, intruder = make_tenant(), make_tenant()
    extra = create_pipeline(client, owner, "Privado", description="secreto")
    add_stage(client, owner, extra["id"], "Solo mío")
    insert_leads(database, owner.account_id, extra["id"], None, 1)
    before = pipelines(client, owner)
    pipeline = before[0]
    stage = pipeline["stages"][0]
    h = intruder.headers

    error(client.put(f"/api/pipelines/{pipeline['id']}", json={"name": "hack"}, headers=h), 404, "Pipeline not found")
    error(client.delete(f"/api/pipelines/{extra['id']}", headers=h), 404, "Pipeline not found")
    error(client.post(f"/api/pipelines/{pipeline['id']}/stages", json={"name": "x"}, headers=h),
          404, "Pipeline not found")
    error(client.put(f"/api/pipelines/{pipeline['id']}/stages/reorder",
                     json={"stage_ids": [s["id"] for s in reversed(pipeline["stages"])]}, headers=h),
          404, "Pipeline not found")
    error(client.put(f"/api/pipelines/{pipeline['id']}/stages/{stage['id']}", json={"name": "x"}, headers=h),
          404, "Stage not found")
    error(client.delete(f"/api/pipelines/{pipeline['id']}/stages/{stage['id']}", headers=h), 404, "Stage not found")
    # Their own pipeline id with the owner's stage id is still not theirs.
    own = default_pipeline(client, intruder)
    error(client.put(f"/api/pipelines/{own['id']}/stages/{stage['id']}", json={"name": "x"}, headers=h),
          404, "Stage not found")
    client.put(f"/api/pipelines/{own['id']}/stages/reorder", json={"stage_ids": [stage["id"]]}, headers=h)

    listed = pipelines(client, intruder)
    assert {p["account_id"] for p in listed} == {intruder.account_id}
    assert not {p["id"] for p in listed} & {p["id"] for p in before}
    assert pipelines(client, owner) == before
    leads = support.run_sql(
        database, "SELECT count(*) AS n FROM leads WHERE pipeline_id = $1", [uuid.UUID(extra["id"])]
    )
    assert leads[0]["n"] == 1
