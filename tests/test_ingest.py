"""Inbound WhatsApp ingestion (integrations.md B.5–B.10) end to end: the simulated driver's dev route
``POST /api/dev/whatsapp/{device}/inbound`` → the device pool → clarin.messaging.ingest → PostgreSQL rows and
WebSocket events. Real server, PostgreSQL and Redis (session fixtures). The tests that drive a DevicePool
in-process on their own database are in tests/test_ingest_inprocess.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
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

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


# -- helpers ------------------------------------------------------------------------------------------
def sql(dsn: str, statement: str, *params: Any) -> list[dict[str, Any]]:
    return support.run_sql(dsn, statement, list(params) if params else None)


def phone() -> str:
    return "519" + str(uuid.uuid4().int)[:8]


@pytest.fixture
def device(client: httpx.Client, tenant: Any) -> dict[str, Any]:
    created = client.post("/api/devices", json={"name": "Inbox"}, headers=tenant.headers)
    assert created.status_code == 201, created.text
    device_id = created.json()["device"]["id"]
    assert client.post(f"/api/devices/{device_id}/connect", headers=tenant.headers).status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = client.get(f"/api/devices/{device_id}", headers=tenant.headers).json()["device"]
        if got["status"] == "connected":
            return got
        time.sleep(0.05)
    raise AssertionError("device never connected")


def deliver(client: httpx.Client, tenant: Any, device: dict[str, Any], **spec: Any) -> dict[str, Any]:
    response = client.post(f"/api/dev/whatsapp/{device['id']}/inbound", json=spec, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


@contextmanager
def socket(server: support.ServerProcess, tenant: Any) -> Iterator[ClientConnection]:
    with connect(f"{server.ws_url}?token={tenant.token}", close_timeout=0.2) as ws:
        ws.send('{"event":"ping"}')  # the pong proves the socket is registered before anything is sent
        assert json.loads(ws.recv(timeout=5)) == {"event": "pong"}
        yield ws


IGNORED_EVENTS = {"device_status", "contacts_synced", "qr_code"}


def next_event(ws: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    """The next ingestion event (lifecycle events of the device are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(ws.recv(timeout=max(0.05, deadline - time.monotonic())))
        if message.get("event") not in IGNORED_EVENTS:
            return message


def events(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    return [next_event(ws) for _ in range(count)]


def assert_quiet(ws: ClientConnection, timeout: float = 0.4) -> None:
    with pytest.raises(TimeoutError):
        next_event(ws, timeout)


def message_row(dsn: str, account_id: str, message_id: str) -> dict[str, Any]:
    rows = sql(dsn, "SELECT m.id::text AS id, m.chat_id::text AS chat_id, m.device_id::text AS device_id, "
               "m.message_id, m.from_jid, m.from_name, m.body, m.message_type, m.media_url, m.media_mimetype, "
               "m.media_filename, m.media_size, m.is_from_me, m.is_read, m.status, m.quoted_message_id, "
               "m.quoted_body, m.quoted_sender, m.poll_question, m.poll_max_selections, c.jid AS chat_jid "
               "FROM messages m JOIN chats c ON c.id = m.chat_id WHERE m.account_id = $1 AND m.message_id = $2",
               uuid.UUID(account_id), message_id)
    assert len(rows) == 1, rows
    return rows[0]


def chat_row(dsn: str, account_id: str, jid: str) -> dict[str, Any]:
    rows = sql(dsn, "SELECT id::text AS id, device_id::text AS device_id, name, last_message, last_message_at, "
               "unread_count FROM chats WHERE account_id = $1 AND jid = $2", uuid.UUID(account_id), jid)
    assert len(rows) == 1, rows
    return rows[0]


def count(dsn: str, statement: str, *params: Any) -> int:
    return int(sql(dsn, statement, *params)[0]["n"])


# -- text, chat, contact, lead ----------------------------------------------------------------------
def test_text_message_lands_everywhere_and_creates_contact_and_lead(
    server: support.ServerProcess, client: httpx.Client, tenant: Any, device: dict[str, Any], database: str
) -> None:
    number = phone()
    jid = f"{number}@s.whatsapp.net"
    cache = redis.Redis.from_url(support.REDIS_URL)
    cache.set(board_key(tenant.account_id), b'{"success":true,"leads":[]}', ex=60)
    with socket(server, tenant) as ws:
        deliver(client, tenant, device, **{"from": number, "push_name": "Ana", "body": "hola", "message_id": "T1",
                                           "timestamp": 1_700_000_000})
        new, lead_event = events(ws, 2)

    row = message_row(database, tenant.account_id, "T1")
    assert (row["chat_jid"], row["device_id"], row["from_jid"], row["from_name"], row["body"]) == (
        jid, device["id"], jid, "Ana", "hola")
    assert (row["message_type"], row["is_from_me"], row["is_read"], row["status"]) == ("text", False, False, "received")
    assert row["media_url"] is None and row["quoted_message_id"] is None and row["poll_question"] is None
    chat = chat_row(database, tenant.account_id, jid)
    assert (chat["device_id"], chat["name"], chat["last_message"], chat["unread_count"]) == (
        device["id"], "Ana", "hola", 1)
    assert chat["last_message_at"].timestamp() == 1_700_000_000

    assert new["event"] == "new_message" and new["account_id"] == tenant.account_id
    data = new["data"]
    assert {k: data[k] for k in ("chat_id", "chat_jid", "sender_name", "is_from_me", "unread_count")} == {
        "chat_id": chat["id"], "chat_jid": jid, "sender_name": "Ana", "is_from_me": False, "unread_count": 1}
    message = data["message"]
    assert message["id"] == row["id"] and message["message_id"] == "T1" and message["body"] == "hola"
    assert message["timestamp"] == "2023-11-14T22:13:20Z"
    assert {"from_jid", "from_name", "message_type", "status", "created_at", "device_id"} <= set(message)
    assert "media_url" not in message and "poll_options" not in message

    contact = sql(database, "SELECT name, push_name, phone, device_id::text AS device_id FROM contacts "
                  "WHERE account_id = $1 AND jid = $2", uuid.UUID(tenant.account_id), jid)
    assert contact == [{"name": "Ana", "push_name": "Ana", "phone": number, "device_id": device["id"]}]
    leads = sql(database, "SELECT l.id::text AS id, l.name, l.phone, l.status, l.source, l.contact_id IS NOT NULL "
                "AS linked, ps.position, p.is_default FROM leads l JOIN pipeline_stages ps ON ps.id = l.stage_id "
                "JOIN pipelines p ON p.id = l.pipeline_id WHERE l.account_id = $1 AND l.jid = $2",
                uuid.UUID(tenant.account_id), jid)
    assert len(leads) == 1
    lead = leads[0]
    assert (lead["name"], lead["phone"], lead["status"], lead["source"], lead["linked"]) == (
        "Ana", number, "new", "whatsapp", True)
    assert (lead["position"], lead["is_default"]) == (0, True)  # default pipeline, first stage (fix)
    assert lead_event["event"] == "lead_update"
    assert lead_event["data"] == {"action": "created", "ids": [lead["id"]]}
    assert cache.get(board_key(tenant.account_id)) is None  # invalidated

    # the same sender again: no new lead, unread grows, push name changes follow
    with socket(server, tenant) as ws:
        deliver(client, tenant, device, **{"from": number, "push_name": "Ana María", "body": "¿hay stock?"})
        second = next_event(ws)
        assert second["event"] == "new_message" and second["data"]["unread_count"] == 2
        assert_quiet(ws)  # no lead_update
    assert count(database, "SELECT count(*) AS n FROM leads WHERE account_id = $1", uuid.UUID(tenant.account_id)) == 1
    assert chat_row(database, tenant.account_id, jid)["name"] == "Ana María"


def test_duplicate_delivery_stores_one_row_and_one_event(
    server: support.ServerProcess, client: httpx.Client, tenant: Any, device: dict[str, Any], database: str
) -> None:
    number = phone()
    spec = {"from": number, "push_name": "Dup", "body": "once", "message_id": "DUP-1"}
    with socket(server, tenant) as ws:
        deliver(client, tenant, device, **spec)
        assert [e["event"] for e in events(ws, 2)] == ["new_message", "lead_update"]
        deliver(client, tenant, device, **spec)
        deliver(client, tenant, device, **{**spec, "body": "changed?"})  # same stanza id: still a duplicate
        assert_quiet(ws)
    assert count(database, "SELECT count(*) AS n FROM messages WHERE account_id = $1 AND message_id = 'DUP-1'",
                 uuid.UUID(tenant.account_id)) == 1
    assert message_row(database, tenant.account_id, "DUP-1")["body"] == "once"
    assert chat_row(database, tenant.account_id, f"{number}@s.whatsapp.net")["unread_count"] == 1


def test_from_me_message_is_not_unread_and_creates_no_lead(
    server: support.ServerProcess, client: httpx.Client, tenant: Any, device: dict[str, Any], database: str
) -> None:
    number = phone()
    jid = f"{number}@s.whatsapp.net"
    with socket(server, tenant) as ws:
        deliver(client, tenant, device, **{"from": number, "is_from_me": True, "body": "sent from the phone",
                                           "message_id": "ME-1", "push_name": "Me myself"})
        new = next_event(ws)
        assert_quiet(ws)
    assert new["data"]["is_from_me"] is True and new["data"]["unread_count"] == 0  # fix: no +1 for own messages
    row = message_row(database, tenant.account_id, "ME-1")
    assert row["is_from_me"] is True and row["from_jid"] == device["jid"] and row["status"] == "received"
    chat = chat_row(database, tenant.account_id, jid)
    assert (chat["unread_count"], chat["last_message"], chat["name"]) == (0, "sent from the phone", "")
    assert count(database, "SELECT count(*) AS n FROM leads WHERE account_id = $1", uuid.UUID(tenant.account_id)) == 0
    own = sql(database, "SELECT jid, phone FROM contacts WHERE account_id = $1", uuid.UUID(tenant.account_id))
    assert own == [{"jid": device["jid"], "phone": device["phone"]}]  # B.6: the device's own contact


def test_older_message_does_not_move_last_message_back(
    client: httpx.Client, tenant: Any, device: dict[str, Any], database: str
) -> None:
    number = phone()
    deliver(client, tenant, device, **{"from": number, "body": "new", "timestamp": 1_700_000_100})
    deliver(client, tenant, device, **{"from": number, "body": "old", "timestamp": 1_700_000_000})
    chat = chat_row(database, tenant.account_id, f"{number}@s.whatsapp.net")
    assert (chat["last_message"], chat["last_message_at"].timestamp(), chat["unread_count"]) == ("new", 1_700_000_100, 2)


def test_reply_keeps_quoted_fields(client: httpx.Client, tenant: Any, device: dict[str, Any], database: str) -> None:
    number = phone()
    deliver(client, tenant, device, **{"from": number, "body": "sí, claro", "message_id": "Q-1",
                                       "quoted_message_id": "ORIG-1", "quoted_body": "¿vienes?",
                                       "quoted_sender": "51999999999@s.whatsapp.net"})
    row = message_row(database, tenant.account_id, "Q-1")
    assert (row["quoted_message_id"], row["quoted_body"], row["quoted_sender"]) == (
        "ORIG-1", "¿vienes?", "51999999999@s.whatsapp.net")


# -- media ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "mimetype", "caption", "file_name", "ext", "body"), [
    ("image", "image/png", "a pic", "", ".jpg", "a pic"),
    ("video", "video/mp4", "a clip", "", ".mp4", "a clip"),
    ("audio", "audio/ogg; codecs=opus", "", "", ".ogg", ""),
    ("document", "application/pdf", "ignored caption", "report.pdf", ".pdf", "report.pdf"),
    ("sticker", "image/webp", "", "", ".webp", ""),
])
def test_media_is_downloaded_stored_and_served(
    server: support.ServerProcess, client: httpx.Client, tenant: Any, device: dict[str, Any], database: str,
    kind: str, mimetype: str, caption: str, file_name: str, ext: str, body: str,
) -> None:
    number = phone()
    jid = f"{number}@s.whatsapp.net"
    data = PNG + kind.encode()
    stanza = f"MEDIA-{kind.upper()}-{uuid.uuid4().hex[:6]}"
    with socket(server, tenant) as ws:
        deliver(client, tenant, device, **{"from": number, "type": kind, "message_id": stanza, "body": caption,
                                           "mimetype": mimetype, "file_name": file_name,
                                           "media_base64": base64.b64encode(data).decode()})
        new = next_event(ws)
    row = message_row(database, tenant.account_id, stanza)
    # Item 12: a random token after the stanza id, which every chat participant knows.
    guessable = f"/api/media/file/{tenant.account_id}/chats/{jid}/{stanza}{ext}"
    assert re.fullmatch(re.escape(guessable[:-len(ext)]) + r"-[0-9a-f]{32}" + re.escape(ext), row["media_url"])
    assert client.get(guessable).status_code == 404
    assert (row["message_type"], row["body"], row["media_mimetype"], row["media_size"]) == (kind, body, mimetype, len(data))
    assert row["media_filename"] == (file_name or None)
    assert chat_row(database, tenant.account_id, jid)["last_message"] == body
    message = new["data"]["message"]
    assert message["media_url"] == row["media_url"] and message["media_mimetype"] == mimetype
    served = client.get(row["media_url"])
    assert served.status_code == 200 and served.content == data


def test_location_and_contact_cards(client: httpx.Client, tenant: Any, device: dict[str, Any], database: str) -> None:
    number = phone()
    deliver(client, tenant, device, **{"from": number, "type": "location", "message_id": "LOC-1", "body": "Oficina",
                                       "latitude": -12.0464, "longitude": -77.0428})
    deliver(client, tenant, device, **{"from": number, "type": "contact", "message_id": "VC-1", "body": "Luis",
                                       "vcard": "BEGIN:VCARD\nVERSION:3.0\nFN:Luis\nTEL;type=CELL:+51 912 345 678\nEND:VCARD"})
    location = message_row(database, tenant.account_id, "LOC-1")
    assert (location["message_type"], location["body"]) == ("location", "📍 Oficina\n-12.0464,-77.0428")
    card = message_row(database, tenant.account_id, "VC-1")
    assert (card["message_type"], card["body"]) == ("contact", "👤 Luis\n+51 912 345 678")
    assert chat_row(database, tenant.account_id, f"{number}@s.whatsapp.net")["unread_count"] == 2


# -- reactions --------------------------------------------------------------------------------------
def test_reactions_upsert_and_remove(
    server: support.ServerProcess, client: httpx.Client, tenant: Any, device: dict[str, Any], database: str
) -> None:
    number = phone()
    jid = f"{number}@s.whatsapp.net"
    deliver(client, tenant, device, **{"from": number, "body": "target", "message_id": "R-T"})
    chat = chat_row(database, tenant.account_id, jid)
    react = {"from": number, "type": "reaction", "target_message_id": "R-T", "push_name": "Rita",
             "timestamp": 1_700_000_000}
    with socket(server, tenant) as ws:
        deliver(client, tenant, device, **{**react, "emoji": "👍"})
        added = next_event(ws)
        deliver(client, tenant, device, **{**react, "emoji": "👍"})  # the same reaction again: nothing
        assert_quiet(ws)
        deliver(client, tenant, device, **{**react, "emoji": "❤️", "timestamp": 1_700_000_001})
        changed = next_event(ws)
        deliver(client, tenant, device, **{**react, "emoji": "", "timestamp": 1_700_000_002})
        removed = next_event(ws)
    assert added == {"event": "message_reaction", "account_id": tenant.account_id, "data": {
        "chat_id": chat["id"], "target_message_id": "R-T", "sender_jid": jid, "sender_name": "Rita",
        "emoji": "👍", "is_from_me": False, "removed": False}}
    assert changed["data"]["emoji"] == "❤️" and changed["data"]["removed"] is False
    assert removed["data"]["emoji"] == "" and removed["data"]["removed"] is True
    assert count(database, "SELECT count(*) AS n FROM message_reactions WHERE chat_id = $1",
                 uuid.UUID(chat["id"])) == 0
    # reactions never touch the counters (and create no message row)
    assert chat_row(database, tenant.account_id, jid)["unread_count"] == 1
    assert count(database, "SELECT count(*) AS n FROM messages WHERE chat_id = $1", uuid.UUID(chat["id"])) == 1

    deliver(client, tenant, device, **{**react, "emoji": "🔥", "timestamp": 1_700_000_010})
    stored = sql(database, "SELECT target_message_id, sender_jid, sender_name, emoji, is_from_me FROM "
                 "message_reactions WHERE chat_id = $1", uuid.UUID(chat["id"]))
    assert stored == [{"target_message_id": "R-T", "sender_jid": jid, "sender_name": "Rita", "emoji": "🔥",
                       "is_from_me": False}]


# -- polls ------------------------------------------------------------------------------------------
def test_poll_creation_and_votes(
    server: support.ServerProcess, client: httpx.Client, tenant: Any, device: dict[str, Any], database: str
) -> None:
    number = phone()
    jid = f"{number}@s.whatsapp.net"
    with socket(server, tenant) as ws:
        deliver(client, tenant, device, **{"from": number, "type": "poll", "message_id": "POLL-1", "push_name": "Pia",
                                           "body": "¿Asistes?", "options": ["Sí", "No", "Tal vez"],
                                           "max_selections": 2})
        new = next_event(ws)
        assert_quiet(ws)  # polls create no lead
    row = message_row(database, tenant.account_id, "POLL-1")
    assert (row["message_type"], row["body"], row["poll_question"], row["poll_max_selections"]) == (
        "poll", "📊 ¿Asistes?\n1. Sí\n2. No\n3. Tal vez", "¿Asistes?", 2)
    options = sql(database, "SELECT id::text AS id, name, position, vote_count FROM poll_options "
                  "WHERE message_id = $1 ORDER BY position", uuid.UUID(row["id"]))
    assert [(o["name"], o["position"], o["vote_count"]) for o in options] == [("Sí", 0, 0), ("No", 1, 0),
                                                                               ("Tal vez", 2, 0)]
    chat = chat_row(database, tenant.account_id, jid)
    assert (chat["last_message"], chat["unread_count"]) == ("📊 ¿Asistes?", 1)
    message = new["data"]["message"]
    assert message["poll_question"] == "¿Asistes?" and message["poll_max_selections"] == 2
    assert [o["name"] for o in message["poll_options"]] == ["Sí", "No", "Tal vez"]
    assert [o["id"] for o in message["poll_options"]] == [o["id"] for o in options]
    assert count(database, "SELECT count(*) AS n FROM leads WHERE account_id = $1", uuid.UUID(tenant.account_id)) == 0

    vote = {"from": number, "type": "poll_vote", "target_message_id": "POLL-1", "timestamp": 1_700_000_000}
    with socket(server, tenant) as ws:
        deliver(client, tenant, device, **{**vote, "selected_options": ["Sí", "Tal vez"]})
        first = next_event(ws)
        deliver(client, tenant, device, **{**vote, "selected_options": ["Sí", "Tal vez"]})  # again: nothing
        assert_quiet(ws)
        deliver(client, tenant, device, **{**vote, "selected_options": ["No"], "timestamp": 1_700_000_005})
        second = next_event(ws)
    assert first["event"] == "poll_update"
    data = first["data"]
    assert (data["chat_id"], data["message_id"], data["voter_jid"]) == (chat["id"], "POLL-1", jid)
    assert [(o["name"], o["vote_count"]) for o in data["options"]] == [("Sí", 1), ("No", 0), ("Tal vez", 1)]
    assert [(v["voter_jid"], v["selected_names"], v["message_id"]) for v in data["votes"]] == [
        (jid, ["Sí", "Tal vez"], row["id"])]
    assert [(o["name"], o["vote_count"]) for o in second["data"]["options"]] == [("Sí", 0), ("No", 1), ("Tal vez", 0)]
    votes = sql(database, "SELECT voter_jid, selected_names FROM poll_votes WHERE message_id = $1", uuid.UUID(row["id"]))
    assert votes == [{"voter_jid": jid, "selected_names": ["No"]}]
    stored = sql(database, "SELECT name, vote_count FROM poll_options WHERE message_id = $1 ORDER BY position",
                 uuid.UUID(row["id"]))
    assert [(o["name"], o["vote_count"]) for o in stored] == [("Sí", 0), ("No", 1), ("Tal vez", 0)]
    assert chat_row(database, tenant.account_id, jid)["unread_count"] == 1  # votes are not messages

    # a vote for an unknown poll is ignored
    with socket(server, tenant) as ws:
        deliver(client, tenant, device, **{**vote, "target_message_id": "NO-SUCH-POLL", "selected_options": ["x"]})
        assert_quiet(ws)


# -- edits and revokes ------------------------------------------------------------------------------
def test_edit_and_revoke_change_the_target_in_place(
    server: support.ServerProcess, client: httpx.Client, tenant: Any, device: dict[str, Any], database: str
) -> None:
    number = phone()
    jid = f"{number}@s.whatsapp.net"
    deliver(client, tenant, device, **{"from": number, "body": "helo", "message_id": "E-1"})
    deliver(client, tenant, device, **{"from": number, "body": "bye", "message_id": "E-2"})
    with socket(server, tenant) as ws:
        deliver(client, tenant, device, **{"from": number, "type": "edit", "target_message_id": "E-1", "body": "hello"})
        edited = next_event(ws)
        deliver(client, tenant, device, **{"from": number, "type": "edit", "target_message_id": "E-1", "body": "hello"})
        assert_quiet(ws)  # the same edit again changes nothing
        deliver(client, tenant, device, **{"from": number, "type": "revoke", "target_message_id": "E-2"})
        revoked = next_event(ws)
        # someone else's message cannot be revoked by the peer: from-me flag must match
        deliver(client, tenant, device, **{"from": number, "is_from_me": True, "type": "revoke",
                                           "target_message_id": "E-1"})
        assert_quiet(ws)
    chat = chat_row(database, tenant.account_id, jid)
    assert edited == {"event": "message_update", "account_id": tenant.account_id, "data": {
        "action": "edited", "chat_id": chat["id"], "chat_jid": jid, "message_id": "E-1", "body": "hello",
        "message_type": "text"}}
    assert revoked["data"] == {"action": "revoked", "chat_id": chat["id"], "chat_jid": jid, "message_id": "E-2",
                               "body": "", "message_type": "revoked"}
    assert message_row(database, tenant.account_id, "E-1")["body"] == "hello"
    gone = message_row(database, tenant.account_id, "E-2")
    assert (gone["body"], gone["message_type"]) == ("", "revoked")
    # no extra rows, unread counts only the two real messages, the preview follows the revoked newest message
    assert count(database, "SELECT count(*) AS n FROM messages WHERE chat_id = $1", uuid.UUID(chat["id"])) == 2
    assert (chat["unread_count"], chat["last_message"]) == (2, "")


# -- receipts and presence --------------------------------------------------------------------------
def test_receipts_update_status_and_emit(
    server: support.ServerProcess, client: httpx.Client, tenant: Any, device: dict[str, Any], database: str
) -> None:
    number = phone()
    jid = f"{number}@s.whatsapp.net"
    deliver(client, tenant, device, **{"from": number, "is_from_me": True, "body": "one", "message_id": "S-1"})
    deliver(client, tenant, device, **{"from": number, "is_from_me": True, "body": "two", "message_id": "S-2"})
    sql(database, "UPDATE messages SET status = 'sent' WHERE account_id = $1 AND message_id IN ('S-1', 'S-2')",
        uuid.UUID(tenant.account_id))
    receipt = {"from": number, "type": "receipt", "message_ids": ["S-1", "S-2"], "timestamp": 1_700_000_000}

    def status(mid: str) -> str:
        return message_row(database, tenant.account_id, mid)["status"]

    with socket(server, tenant) as ws:
        deliver(client, tenant, device, **{**receipt, "status": "delivered"})
        delivered = next_event(ws)
        assert (status("S-1"), status("S-2")) == ("delivered", "delivered")
        deliver(client, tenant, device, **{**receipt, "message_ids": ["S-1"], "status": "read"})
        read = next_event(ws)
        assert (status("S-1"), status("S-2")) == ("read", "delivered")
        deliver(client, tenant, device, **{**receipt, "status": "delivered"})  # never downgrades read
        again = next_event(ws)
        assert (status("S-1"), status("S-2")) == ("read", "delivered")
        deliver(client, tenant, device, **{**receipt, "message_ids": ["S-2"], "status": "played"})
        played = next_event(ws)
        assert status("S-2") == "read"
        deliver(client, tenant, device, **{**receipt, "status": "retry"})  # not a delivery report: ignored
        assert_quiet(ws)
    assert delivered == {"event": "message_status", "account_id": tenant.account_id, "data": {
        "message_ids": ["S-1", "S-2"], "chat_jid": jid, "status": "delivered", "timestamp": "2023-11-14T22:13:20Z"}}
    assert read["data"]["status"] == "read" and read["data"]["message_ids"] == ["S-1"]
    assert again["data"]["status"] == "delivered" and played["data"]["status"] == "read"
    # incoming messages are never touched by receipts
    deliver(client, tenant, device, **{"from": number, "body": "in", "message_id": "S-IN"})
    deliver(client, tenant, device, **{**receipt, "message_ids": ["S-IN"], "status": "read"})
    assert status("S-IN") == "received"


def test_presence_is_broadcast_only(
    server: support.ServerProcess, client: httpx.Client, tenant: Any, device: dict[str, Any], database: str
) -> None:
    number = phone()
    with socket(server, tenant) as ws:
        deliver(client, tenant, device, **{"from": number, "type": "presence"})
        online = next_event(ws)
        deliver(client, tenant, device, **{"from": number, "type": "presence", "available": False,
                                           "timestamp": 1_700_000_000})
        offline = next_event(ws)
    # an unknown last-seen time is Go's zero time, as the original sent it (api.md §0, integrations.md B.10)
    assert online["data"] == {"jid": f"{number}@s.whatsapp.net", "available": True,
                              "last_seen_at": "0001-01-01T00:00:00Z"}
    assert offline["data"] == {"jid": f"{number}@s.whatsapp.net", "available": False,
                               "last_seen_at": "2023-11-14T22:13:20Z"}
    assert count(database, "SELECT count(*) AS n FROM chats WHERE account_id = $1", uuid.UUID(tenant.account_id)) == 0


# -- ignored and corrupt input ----------------------------------------------------------------------
def test_groups_broadcasts_and_newsletters_are_ignored(
    server: support.ServerProcess, client: httpx.Client, tenant: Any, device: dict[str, Any], database: str
) -> None:
    number = phone()
    with socket(server, tenant) as ws:
        for chat in ("120363025246125888@g.us", "status@broadcast", "120363144038483540@newsletter"):
            deliver(client, tenant, device, **{"from": number, "chat": chat, "body": "noise"})
            deliver(client, tenant, device, **{"from": number, "chat": chat, "type": "reaction",
                                               "target_message_id": "X", "emoji": "👍"})
        assert_quiet(ws)
    account = uuid.UUID(tenant.account_id)
    for table in ("chats", "messages", "contacts", "leads", "message_reactions"):
        assert count(database, f"SELECT count(*) AS n FROM {table} WHERE account_id = $1", account) == 0, table


def test_lid_chat_without_mapping_keeps_the_lid(
    client: httpx.Client, tenant: Any, device: dict[str, Any], database: str
) -> None:
    deliver(client, tenant, device, **{"from": "123456789012345@lid", "push_name": "Hidden", "body": "hi",
                                       "message_id": "LID-1"})
    row = message_row(database, tenant.account_id, "LID-1")
    assert row["chat_jid"] == "123456789012345@lid"
    lead = sql(database, "SELECT phone FROM leads WHERE account_id = $1 AND jid = '123456789012345@lid'",
               uuid.UUID(tenant.account_id))
    assert lead == [{"phone": "123456789012345"}]  # B.6: unresolved LID digits as phone


def test_corrupt_event_is_skipped_and_ingestion_continues(
    server: support.ServerProcess, client: httpx.Client, tenant: Any, device: dict[str, Any], database: str
) -> None:
    number = phone()
    with socket(server, tenant) as ws:
        # a timestamp no datetime can hold: the event cannot be parsed; the route still answers
        deliver(client, tenant, device, **{"from": number, "body": "broken", "message_id": "BAD-1",
                                           "timestamp": 9_000_000_000_000_000_000})
        deliver(client, tenant, device, **{"from": number, "body": "fine", "message_id": "GOOD-1"})
        assert next_event(ws)["data"]["message"]["message_id"] == "GOOD-1"
    assert count(database, "SELECT count(*) AS n FROM messages WHERE account_id = $1 AND message_id = 'BAD-1'",
                 uuid.UUID(tenant.account_id)) == 0
    message_row(database, tenant.account_id, "GOOD-1")
    assert "skipping corrupt Message event" in server.logs()


# -- bursts -----------------------------------------------------------------------------------------
async def _post_all(server: support.ServerProcess, path: str, token: str, bodies: list[bytes], concurrency: int) -> None:
    """POST every body on ``concurrency`` keep-alive connections (a bare HTTP/1.1 client: cheap enough that
    the server, not the test, is what gets measured on a small machine)."""
    todo = iter(bodies)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                "Content-Type: application/json\r\n").encode()
        try:
            for body in todo:
                writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
                status = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                answer = await reader.readexactly(length)
                assert status.split()[1] == b"200", (status, answer)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))


def test_concurrent_dev_route_deliveries_share_transactions(
    server: support.ServerProcess, tenant: Any, device: dict[str, Any], database: str
) -> None:
    """Through HTTP: events that queue up while a batch is written go into the next batch together."""
    senders = [phone() for _ in range(20)]
    total = 1500
    bodies = [json.dumps({"from": senders[i % 20], "push_name": f"S{i % 20}", "body": f"http burst {i}",
                          "message_id": f"HB-{i:05d}", "timestamp": 1_700_000_000 + i}).encode()
              for i in range(total)]
    started = time.monotonic()
    asyncio.run(_post_all(server, f"/api/dev/whatsapp/{device['id']}/inbound", tenant.token, bodies, 16))
    elapsed = time.monotonic() - started
    stored = sql(database, "SELECT count(*) AS n, count(DISTINCT xmin::text) AS transactions FROM messages "
                 "WHERE account_id = $1", uuid.UUID(tenant.account_id))[0]
    assert stored["n"] == total
    assert stored["transactions"] < total * 0.7, stored
    chats = sql(database, "SELECT count(*) AS n, sum(unread_count) AS unread FROM chats WHERE account_id = $1",
                uuid.UUID(tenant.account_id))[0]
    assert (chats["n"], chats["unread"]) == (20, total)
    print(f"\n{total} deliveries over HTTP: {total / elapsed:.0f}/s in {stored['transactions']} transactions")


def test_new_incoming_sender_gets_an_avatar_in_the_background(
    client: httpx.Client, tenant: Any, device: dict[str, Any], database: str
) -> None:
    """B.7 step 10 / B.16.5: the simulated driver's picture of a new sender is stored and linked on the
    contact, after the batch committed. Item 12: under ``<account>/avatars/<phone>-<128-bit token>.jpg``;
    the URL an outsider can derive from account id + phone answers 404 (no contact enumeration)."""
    from clarin.whatsapp.simulated_driver import simulated_picture

    number = phone()
    jid = f"{number}@s.whatsapp.net"
    deliver(client, tenant, device, **{"from": number, "push_name": "Avi", "body": "hola"})
    avatar = None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rows = sql(database, "SELECT avatar_url FROM contacts WHERE account_id = $1 AND jid = $2",
                   uuid.UUID(tenant.account_id), jid)
        avatar = rows[0]["avatar_url"] if rows else None
        if avatar:
            break
        time.sleep(0.05)
    assert avatar is not None
    assert re.fullmatch(rf"/api/media/file/{tenant.account_id}/avatars/{number}-[0-9a-f]{{32}}\.jpg", avatar), avatar
    served = client.get(avatar)
    assert served.status_code == 200, served.text
    assert served.headers["content-type"] == "image/jpeg"
    assert served.content == simulated_picture(jid) and served.content.startswith(b"\xff\xd8")
    guessed = client.get(f"/api/media/file/{tenant.account_id}/avatars/{number}.jpg")
    assert guessed.status_code == 404 and guessed.json()["error"] == "File not found"
