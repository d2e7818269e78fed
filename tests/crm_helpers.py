"""Fixture rows and WebSocket helpers for the contacts / events / interactions tests.

Contacts, chats, messages, leads, tags and devices have no create route in these modules (or it belongs
to another feature), so tests insert them directly with ``run_sql``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests.support import run_sql


def U(value: str | uuid.UUID) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def new_jid() -> str:
    return f"519{uuid.uuid4().int % 10**8:08d}@s.whatsapp.net"


def one(dsn: str, sql: str, params: list[Any] | None = None) -> dict[str, Any]:
    rows = run_sql(dsn, sql, params)
    assert len(rows) == 1, rows
    return rows[0]


def insert_contact(dsn: str, account_id: str, jid: str | None = None, **fields: Any) -> str:
    jid = jid or new_jid()
    values = {"phone": jid.split("@", 1)[0], **fields}
    columns = ["account_id", "jid", *values]
    params: list[Any] = [U(account_id), jid, *values.values()]
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    row = one(dsn, f"INSERT INTO contacts ({', '.join(columns)}) VALUES ({placeholders}) RETURNING id", params)
    return str(row["id"])


def insert_device(dsn: str, account_id: str, name: str = "Phone") -> str:
    return str(one(dsn, "INSERT INTO devices (account_id, name) VALUES ($1, $2) RETURNING id", [U(account_id), name])["id"])


def insert_device_name(dsn: str, contact_id: str, device_id: str, name: str | None, push_name: str | None,
                       synced_at: datetime | None = None) -> None:
    run_sql(
        dsn,
        "INSERT INTO contact_device_names (contact_id, device_id, name, push_name, synced_at) VALUES ($1, $2, $3, $4, $5)",
        [U(contact_id), U(device_id), name, push_name, synced_at or datetime.now(UTC)],
    )


def insert_chat(dsn: str, account_id: str, jid: str, **fields: Any) -> str:
    columns = ["account_id", "jid", *fields]
    params: list[Any] = [U(account_id), jid, *fields.values()]
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    return str(one(dsn, f"INSERT INTO chats ({', '.join(columns)}) VALUES ({placeholders}) RETURNING id", params)["id"])


def insert_message(dsn: str, account_id: str, chat_id: str, message_id: str, body: str = "hi",
                   ts: datetime | None = None) -> str:
    row = one(
        dsn,
        'INSERT INTO messages (account_id, chat_id, message_id, body, "timestamp") VALUES ($1, $2, $3, $4, $5) RETURNING id',
        [U(account_id), U(chat_id), message_id, body, ts or datetime.now(UTC)],
    )
    return str(row["id"])


def insert_lead(dsn: str, account_id: str, jid: str, **fields: Any) -> str:
    columns = ["account_id", "jid", *fields]
    params: list[Any] = [U(account_id), jid, *fields.values()]
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    return str(one(dsn, f"INSERT INTO leads ({', '.join(columns)}) VALUES ({placeholders}) RETURNING id", params)["id"])


def insert_tag(dsn: str, account_id: str, name: str | None = None, color: str = "#112233") -> str:
    row = one(
        dsn, "INSERT INTO tags (account_id, name, color) VALUES ($1, $2, $3) RETURNING id",
        [U(account_id), name or f"tag-{uuid.uuid4().hex[:6]}", color],
    )
    return str(row["id"])


def tag_contact(dsn: str, contact_id: str, tag_id: str) -> None:
    run_sql(dsn, "INSERT INTO contact_tags (contact_id, tag_id) VALUES ($1, $2)", [U(contact_id), U(tag_id)])


def tag_lead(dsn: str, lead_id: str, tag_id: str) -> None:
    run_sql(dsn, "INSERT INTO lead_tags (lead_id, tag_id) VALUES ($1, $2)", [U(lead_id), U(tag_id)])


def tag_participant(dsn: str, participant_id: str, tag_id: str) -> None:
    run_sql(dsn, "INSERT INTO participant_tags (participant_id, tag_id) VALUES ($1, $2)", [U(participant_id), U(tag_id)])


def insert_event(dsn: str, account_id: str, name: str = "Evento") -> str:
    return str(one(dsn, "INSERT INTO events (account_id, name) VALUES ($1, $2) RETURNING id", [U(account_id), name])["id"])


def insert_participant(dsn: str, event_id: str, name: str = "P", contact_id: str | None = None,
                       phone: str | None = None, email: str | None = None, status: str = "invited") -> str:
    row = one(
        dsn,
        "INSERT INTO event_participants (event_id, contact_id, name, phone, email, status) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        [U(event_id), U(contact_id) if contact_id else None, name, phone, email, status],
    )
    return str(row["id"])


def insert_interaction(dsn: str, account_id: str, *, contact_id: str | None = None, lead_id: str | None = None,
                       event_id: str | None = None, participant_id: str | None = None, kind: str = "note") -> str:
    row = one(
        dsn,
        "INSERT INTO interactions (account_id, contact_id, lead_id, event_id, participant_id, type) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        [U(account_id), *(U(v) if v else None for v in (contact_id, lead_id, event_id, participant_id)), kind],
    )
    return str(row["id"])


def count(dsn: str, sql: str, params: list[Any] | None = None) -> int:
    return int(next(iter(one(dsn, sql, params).values())))


# -- WebSocket ---------------------------------------------------------------------------------------------
@contextmanager
def socket(server: Any, token: str) -> Iterator[ClientConnection]:
    """A dashboard socket, registered with the hub before it is handed out (ping → pong round trip)."""
    with connect(f"{server.ws_url}?token={token}", open_timeout=10) as ws:
        ws.send(json.dumps({"event": "ping"}))
        deadline = time.monotonic() + 5
        while True:
            frame = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if frame.get("event") == "pong":
                break
        yield ws


def expect_event(ws: ClientConnection, event: str, timeout: float = 5, **match: Any) -> dict[str, Any]:
    """The next ``event`` frame (others are skipped) whose data contains ``match``; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {event} {match} within {timeout}s")
        frame = json.loads(ws.recv(timeout=remaining))
        if frame.get("event") != event:
            continue
        data = frame.get("data") or {}
        if all(data.get(key) == value for key, value in match.items()):
            return frame


def expect_silence(ws: ClientConnection, timeout: float = 0.5) -> None:
    """Nothing at all arrives within ``timeout`` (the negative WebSocket case)."""
    try:
        frame = ws.recv(timeout=timeout)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected frame: {frame}")
