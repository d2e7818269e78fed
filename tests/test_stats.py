"""R114 GET /api/stats against a real server, PostgreSQL and Redis."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.leads_support import create_lead, random_phone, socket, sql


def stats(client: httpx.Client, tenant: Any) -> dict[str, Any]:
    response = client.get("/api/stats", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"success", "stats"} and body["success"] is True
    assert set(body["stats"]) == {"connected_devices", "ws_clients", "leads", "contacts"}
    return body["stats"]


def add_device(dsn: str, account_id: str, status: str) -> None:
    sql(dsn, "INSERT INTO devices (account_id, name, status) VALUES ($1, 'phone', $2)", uuid.UUID(account_id), status)


def add_contact(dsn: str, account_id: str) -> None:
    sql(dsn, "INSERT INTO contacts (account_id, jid) VALUES ($1, $2)", uuid.UUID(account_id),
        f"{random_phone()}@s.whatsapp.net")


def test_stats_are_per_account(client: httpx.Client, server: Any, make_tenant: Any, database: str) -> None:
    tenant, other = make_tenant(), make_tenant()
    assert stats(client, tenant) == {"connected_devices": 0, "ws_clients": 0, "leads": 0, "contacts": 0}
    for status in ("connected", "connected", "disconnected", "connecting"):
        add_device(database, tenant.account_id, status)
    add_device(database, other.account_id, "connected")
    for _ in range(3):
        create_lead(client, tenant, random_phone())
    create_lead(client, other, random_phone())
    for _ in range(2):
        add_contact(database, tenant.account_id)
    with socket(server, tenant), socket(server, tenant), socket(server, other):
        assert stats(client, tenant) == {"connected_devices": 2, "ws_clients": 2, "leads": 3, "contacts": 2}
        assert stats(client, other) == {"connected_devices": 1, "ws_clients": 1, "leads": 1, "contacts": 0}


def test_stats_requires_auth(client: httpx.Client) -> None:
    response = client.get("/api/stats")
    assert (response.status_code, response.json()) == (401, {"success": False, "error": "Unauthorized"})
