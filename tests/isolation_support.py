"""Helpers for tests/test_tenant_isolation.py: whole-account database snapshots (tables discovered from the
catalog, so a new table joins by itself) and a tenant populated with one real row of every kind, made through
the HTTP API and the simulated WhatsApp driver."""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.inbox_support import connected_device, new_phone, upload
from tests.support import run_sql

# Tables that hold no tenant data, so no row of them belongs to an account. Any other table must reach
# ``accounts`` (an ``account_id`` column or a foreign-key chain); otherwise the snapshot fails loudly.
GLOBAL_TABLES = frozenset({"schema_migrations"})

# One tiny valid PNG (1x1, transparent).
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_scopes(dsn: str) -> dict[str, str]:
    """``{table: WHERE clause with $1 = account id}`` for every table of the public schema.

    ``accounts`` is ``id = $1``; a table with ``account_id`` is ``account_id = $1``; any other table is
    scoped through its single-column foreign keys to already-scoped tables (a row belongs to the account
    when any of its parents does), repeated until nothing new resolves."""
    tables = {r["table_name"] for r in run_sql(
        dsn, "SELECT table_name::text FROM information_schema.tables "
             "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")}
    with_account = {r["table_name"] for r in run_sql(
        dsn, "SELECT table_name::text FROM information_schema.columns "
             "WHERE table_schema = 'public' AND column_name = 'account_id'")}
    fks = run_sql(dsn, """
        SELECT c.conrelid::regclass::text AS child, a.attname::text AS col,
               c.confrelid::regclass::text AS parent, pa.attname::text AS pcol
        FROM pg_constraint c
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
        JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = c.confkey[1]
        WHERE c.contype = 'f' AND cardinality(c.conkey) = 1 AND c.connamespace = 'public'::regnamespace""")
    scopes: dict[str, str] = {"accounts": "id = $1"}
    scopes.update({t: "account_id = $1" for t in with_account & tables})
    changed = True
    while changed:
        changed = False
        for table in sorted(tables - scopes.keys()):
            links = [fk for fk in fks if fk["child"].strip('"') == table and fk["parent"].strip('"') in scopes]
            if links:
                scopes[table] = "(" + " OR ".join(
                    f"{_q(fk['col'])} IN (SELECT {_q(fk['pcol'])} FROM {_q(fk['parent'].strip(chr(34)))} "
                    f"WHERE {scopes[fk['parent'].strip(chr(34))]})"
                    for fk in links
                ) + ")"
                changed = True
    unscoped = tables - scopes.keys() - GLOBAL_TABLES
    assert not unscoped, (
        f"tables {sorted(unscoped)} reach no account (no account_id, no foreign key to a tenant table): "
        "scope them, or add them to GLOBAL_TABLES in tests/isolation_support.py if they hold no tenant data"
    )
    return scopes


def snapshot(dsn: str, scopes: dict[str, str], account_id: str) -> dict[str, tuple[int, str]]:
    """``{table: (row count, md5 of every row's text)}`` of one account, in one statement."""
    parts = [
        f"SELECT '{table}'::text AS t, count(*)::bigint AS n, "
        f"md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) AS h FROM {_q(table)} x WHERE {where}"
        for table, where in sorted(scopes.items())
    ]
    rows = run_sql(dsn, " UNION ALL ".join(parts), [uuid.UUID(account_id)])
    return {r["t"]: (int(r["n"]), r["h"]) for r in rows}


def account_text(dsn: str, scopes: dict[str, str], account_id: str) -> dict[str, str]:
    """``{table: every row of the account as text}`` (to look for another tenant's identifiers in it)."""
    parts = [
        f"SELECT '{table}'::text AS t, coalesce(string_agg(x::text, E'\\n'), '') AS body "
        f"FROM {_q(table)} x WHERE {where}"
        for table, where in sorted(scopes.items())
    ]
    rows = run_sql(dsn, " UNION ALL ".join(parts), [uuid.UUID(account_id)])
    return {r["t"]: r["body"] for r in rows}


def settled(dsn: str, scopes: dict[str, str], account_id: str, timeout: float = 10) -> dict[str, tuple[int, str]]:
    """The account's snapshot once background work (contact sync after connect, ingestion) has stopped."""
    deadline = time.monotonic() + timeout
    last = snapshot(dsn, scopes, account_id)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = snapshot(dsn, scopes, account_id)
        if now == last:
            return now
        last = now
    raise AssertionError(f"account {account_id} kept changing for {timeout}s")


@dataclass
class Rows:
    """Real IDs of one tenant's rows, by kind; ``marker`` is in every text the tenant wrote."""

    marker: str
    ids: dict[str, str] = field(default_factory=dict)


def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, (response.request.method, str(response.request.url), response.text)
    return response.json()


def wait_for(fetch: Any, what: str, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fetch()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"{what} never appeared")


def populate(client: httpx.Client, headers: dict[str, str], full: bool = True) -> Rows:
    """One real row of every kind for the tenant behind ``headers``, made the way the dashboard makes them.

    ``full=False`` makes only what an attacker needs of its own (a connected device, a lead, a pipeline with
    a stage, an event and a campaign) for the "own path, foreign body" cases."""
    marker = f"iso{uuid.uuid4().hex[:10]}"
    rows = Rows(marker)
    ids = rows.ids
    device = connected_device(client, headers, f"{marker} phone")
    ids["device"] = device["id"]
    pipeline = _ok(client.post("/api/pipelines", json={"name": f"{marker} pipe", "description": marker},
                               headers=headers), 201)["pipeline"]
    ids["pipeline"] = pipeline["id"]
    stages = [_ok(client.post(f"/api/pipelines/{pipeline['id']}/stages",
                              json={"name": f"{marker} st{i}", "color": "#123456"}, headers=headers), 201)
              for i in range(2)]
    ids["stage"] = (stages[0].get("stage") or stages[0])["id"]
    ids["stage2"] = (stages[1].get("stage") or stages[1])["id"]
    lead = _ok(client.post("/api/leads", json={"name": f"{marker} lead", "phone": "+" + new_phone(),
                                               "notes": marker, "stage_id": ids["stage"]}, headers=headers), 201)
    ids["lead"] = lead["lead"]["id"]
    event = _ok(client.post("/api/events", json={"name": f"{marker} event", "description": marker},
                            headers=headers), 201)
    ids["event"] = (event.get("event") or event)["id"]
    campaign = _ok(client.post("/api/campaigns", json={"name": f"{marker} camp", "device_id": ids["device"],
                                                      "message_template": f"{marker} hola"}, headers=headers), 201)
    ids["campaign"] = campaign["campaign"]["id"]
    guest = _ok(client.post(f"/api/events/{ids['event']}/participants",
                            json={"name": f"{marker} guest", "phone": new_phone()}, headers=headers), 201)
    ids["guest"] = (guest.get("participant") or guest)["id"]
    later = (datetime.now(UTC) + timedelta(days=30)).isoformat()  # stays pending for the whole walk
    scheduled = _ok(client.post("/api/messages/schedule", json={"device_id": ids["device"], "to": new_phone(),
                                                               "body": f"{marker} later", "send_at": later},
                                headers=headers), 201)
    ids["scheduled"] = scheduled["scheduled_message"]["id"]
    if not full:
        return rows

    # WhatsApp traffic through the simulated driver: a chat, its contact, a text and an image (stored media).
    phone = new_phone()
    inbound = f"/api/dev/whatsapp/{ids['device']}/inbound"
    text = _ok(client.post(inbound, json={"from": phone, "push_name": f"{marker} sender",
                                          "body": f"{marker} hello"}, headers=headers))
    ids["stanza"] = text["message_id"]
    _ok(client.post(inbound, json={"from": phone, "type": "image", "body": f"{marker} pic", "mimetype": "image/png",
                                   "media_base64": base64.b64encode(PNG).decode()}, headers=headers))
    chat = wait_for(lambda: [c for c in _ok(client.get("/api/chats", headers=headers))["chats"]
                          if c["jid"].startswith(phone)], "the inbound chat")[0]
    ids["chat"], ids["jid"] = chat["id"], chat["jid"]

    def _messages() -> list[dict[str, Any]]:
        got = _ok(client.get(f"/api/chats/{chat['id']}/messages", headers=headers))["messages"]
        return got if len(got) >= 2 and any(m.get("media_url") for m in got) else []

    messages = wait_for(_messages, "the inbound messages")
    ids["message"] = next(m["id"] for m in messages if m.get("message_id") == ids["stanza"])
    ids["chat_media"] = next(m["media_url"] for m in messages if m.get("media_url"))
    contacts = _ok(client.get("/api/contacts", params={"search": phone}, headers=headers))["contacts"]
    ids["contact"] = next(c["id"] for c in contacts if (c.get("jid") or "").startswith(phone))

    ids["media"] = upload(client, headers, f"{marker}.png", PNG, "image/png")
    tag = _ok(client.post("/api/tags", json={"name": f"{marker} tag", "color": "#abcdef"}, headers=headers), 201)
    ids["tag"] = (tag.get("tag") or tag)["id"]
    for kind in ("lead", "contact", "chat"):
        _ok(client.post("/api/tags/assign", json={"entity_type": kind, "entity_id": ids[kind], "tag_id": ids["tag"]},
                        headers=headers))
    participant = _ok(client.post(f"/api/events/{ids['event']}/participants",
                                  json={"name": f"{marker} guest", "contact_id": ids["contact"]}, headers=headers), 201)
    ids["participant"] = (participant.get("participant") or participant)["id"]
    _ok(client.post("/api/tags/assign", json={"entity_type": "participant", "entity_id": ids["participant"],
                                              "tag_id": ids["tag"]}, headers=headers))
    interaction = _ok(client.post("/api/interactions", json={"type": "note", "contact_id": ids["contact"],
                                                             "lead_id": ids["lead"], "notes": marker},
                                  headers=headers), 201)
    ids["interaction"] = (interaction.get("interaction") or interaction)["id"]
    reply = _ok(client.post("/api/quick-replies", json={"shortcut": f"/{marker}", "title": marker, "body": marker},
                            headers=headers), 201)
    ids["quick_reply"] = (reply.get("quick_reply") or reply)["id"]
    _ok(client.post(f"/api/campaigns/{ids['campaign']}/recipients",
                    json={"recipients": [{"jid": ids["jid"], "contact_id": ids["contact"], "name": marker}]},
                    headers=headers))
    recipients = _ok(client.get(f"/api/campaigns/{ids['campaign']}/recipients", headers=headers))["recipients"]
    ids["recipient"] = recipients[0]["id"]
    _ok(client.put(f"/api/campaigns/{ids['campaign']}/attachments",
                   json={"attachments": [{"media_url": ids["media"], "media_type": "image", "caption": marker}]},
                   headers=headers))
    _ok(client.post("/api/stickers/saved", json={"media_url": ids["media"]}, headers=headers))
    return rows


def webhook_rows(dsn: str, account_id: str, marker: str) -> tuple[str, str]:
    """A disabled webhook subscription of the account and one delivered event of it: (webhook id, delivery id)."""
    hook = run_sql(dsn, "INSERT INTO webhooks (account_id, url, events, secret, enabled, description) "
                        "VALUES ($1, 'https://hooks.example.com/' || $2, ARRAY['*'], 'whsec_' || $2, false, $2) "
                        "RETURNING id", [uuid.UUID(account_id), marker])[0]["id"]
    delivery = run_sql(dsn, "INSERT INTO webhook_deliveries (account_id, webhook_id, event_id, event, data, status, "
                            "attempts, status_code, delivered_at) VALUES ($1, $2, gen_random_uuid(), 'lead_update', "
                            "'{}', 'delivered', 1, 200, now()) RETURNING id",
                       [uuid.UUID(account_id), uuid.UUID(str(hook))])[0]["id"]
    return str(hook), str(delivery)
