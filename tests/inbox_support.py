"""Helpers for the chat / message tests: simulated devices through the API, recorded sends, row inserts."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.crm_helpers import U, one
from tests.support import run_sql


def simulated_jid(device_id: str) -> str:
    return f"{int(uuid.UUID(device_id).hex[:10], 16) % 10**11:011d}@s.whatsapp.net"


def create_device(client: httpx.Client, headers: dict[str, str], name: str = "Inbox phone") -> dict[str, Any]:
    response = client.post("/api/devices", json={"name": name}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["device"]


def connected_device(client: httpx.Client, headers: dict[str, str], name: str = "Inbox phone") -> dict[str, Any]:
    """Create a device and connect it (the simulated driver pairs it at once); wait for ``connected``."""
    device = create_device(client, headers, name)
    assert client.post(f"/api/devices/{device['id']}/connect", headers=headers).status_code == 200
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        got = client.get(f"/api/devices/{device['id']}", headers=headers).json()["device"]
        if got["status"] == "connected" and got.get("jid"):  # the pairing's JID is stored with/after the status
            return got
        time.sleep(0.05)
    raise AssertionError(f"device {device['id']} never connected")


def sent_calls(client: httpx.Client, headers: dict[str, str], device_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/dev/whatsapp/{device_id}/sent", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["sent"]


def upload(client: httpx.Client, headers: dict[str, str], name: str, data: bytes,
           content_type: str = "application/octet-stream") -> str:
    response = client.post("/api/media/upload", headers=headers, files={"file": (name, data, content_type)})
    assert response.status_code == 200, response.text
    return response.json()["proxy_url"]


def new_phone() -> str:
    return f"519{uuid.uuid4().int % 10**8:08d}"


def insert_full_message(dsn: str, account_id: str, chat_id: str, message_id: str, ts: datetime, **fields: Any) -> str:
    columns = ["account_id", "chat_id", "message_id", '"timestamp"', *fields]
    params: list[Any] = [U(account_id), U(chat_id), message_id, ts, *fields.values()]
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    sql = f"INSERT INTO messages ({', '.join(columns)}) VALUES ({placeholders}) RETURNING id"
    return str(one(dsn, sql, params)["id"])


def insert_reaction(dsn: str, account_id: str, chat_id: str, target: str, sender: str, emoji: str,
                    ts: datetime) -> str:
    row = one(
        dsn,
        "INSERT INTO message_reactions (account_id, chat_id, target_message_id, sender_jid, sender_name, emoji, "
        '"timestamp") VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id',
        [U(account_id), U(chat_id), target, sender, "Someone", emoji, ts],
    )
    return str(row["id"])


def ago(seconds: float) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=seconds)


def explain(dsn: str, sql: str, params: list[Any]) -> str:
    """The plan of ``sql`` (a registry query) as text, after fresh statistics."""
    rows = run_sql(dsn, "EXPLAIN (COSTS OFF) " + sql, params)
    return "\n".join(str(next(iter(row.values()))) for row in rows)
