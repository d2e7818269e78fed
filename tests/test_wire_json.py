"""PostgreSQL-built JSON (sql/migrations/0008_wire_json.sql) is byte-for-byte what msgspec encodes from the wire
structs, on every field shape a row can have.

The hot reads (R37 pages and board, R40, R38's answer, R24's message pages, R75's contact pages) pass PostgreSQL's text through unchanged (issue 13); the
writes that answer with a lead (R41) still encode the ``Lead`` struct. Both must agree to the byte: the dashboard
and the peers' comparison read either. Each case here goes through the real server and is compared with the
struct path (``lead_reads.get_lead`` + ``msgspec``) on the same rows.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec

from clarin.crm import lead_reads
from clarin.db.pool import Database
from clarin.http.cursor import encode_cursor
from clarin.http.json import encode
from clarin.wire.contacts import Contact
from clarin.wire.leads import LeadResponse, LeadsResponse
from clarin.wire.messages import ChatMessagesResponse, Message
from tests.crm_helpers import insert_chat
from tests.inbox_support import insert_full_message, insert_reaction
from tests.leads_support import default_stages, forget_cached_reads, random_phone, sql

NASTY = "quote\" back\\slash /slash \x01\x1f tab\t nl\n é ñ 😀 \u2028 <b>&amp;</b>"


def struct_bodies(dsn: str, account_id: str, lead_ids: list[str]) -> list[bytes]:
    """The leads as the struct path encodes them (one ``Lead`` each, tags included)."""

    async def run() -> list[bytes]:
        db = Database(dsn, 2)
        try:
            leads = [await lead_reads.get_lead(db, uuid.UUID(account_id), uuid.UUID(i)) for i in lead_ids]
        finally:
            db.close()
        return [encode(lead) for lead in leads]

    return asyncio.run(run())


def same(found: bytes, expected: bytes) -> None:
    """Equal bytes; on a difference, the assertion shows where (pytest truncates long byte strings)."""
    if found != expected:
        pairs = zip(found, expected, strict=False)
        at = next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(found), len(expected)))
        assert found[max(0, at - 80):at + 80] == expected[max(0, at - 80):at + 80], f"first difference at {at}"


def insert_lead(dsn: str, account_id: str, **columns: Any) -> str:
    names = ["account_id", "jid", *columns]
    values = [uuid.UUID(account_id), random_phone() + "@s.whatsapp.net", *columns.values()]
    marks = ", ".join(f"${i + 1}" + ("::text::jsonb" if name == "custom_fields" else "") for i, name in enumerate(names))
    row = sql(dsn, f"INSERT INTO leads ({', '.join(names)}) VALUES ({marks}) RETURNING id", *values)
    return str(row[0]["id"])


def shapes(dsn: str, account_id: str) -> list[str]:
    """Leads covering every optional key absent and present, escapes, numbers, timestamps, tags and stages."""
    stage = default_stages(dsn, account_id)[1]
    ids = [
        insert_lead(dsn, account_id),  # every optional column NULL (custom_fields '{}' by default)
        insert_lead(dsn, account_id, name="", last_name="", short_name="", phone="", email="", company="",
                    status="", source="", notes="", tags=[], custom_fields=json.dumps({})),  # empty strings
    ]
    ids.append(insert_lead(
        dsn, account_id, name=NASTY, last_name="Pérez", short_name="Ana", phone="+51 987 654 321", email="a@b.test",
        company="Ñandú S.A.C.", age=0, status="won", source="web", notes=NASTY, tags=["vip", NASTY, ""],
        # keys whose jsonb order (length, then bytes) is also their sorted order: see test_jsonb_key_order
        custom_fields=json.dumps({"a": "Lima", "bb": 4186, "ccc": 51999111222, "dddd": -3,
                                  "eeeee": {"x": [1, "x", True, False, 0.5]}, "ffffff": NASTY}),
        pipeline_id=uuid.UUID(stage["pipeline_id"]), stage_id=uuid.UUID(stage["id"]),
    ))
    ids.append(insert_lead(dsn, account_id, name="Micro", age=2_147_483_647, custom_fields=json.dumps([1, 2])))
    # timestamps with and without a fraction, and one whose fraction ends in zeros
    sql(dsn, "UPDATE leads SET created_at = '2024-02-29 23:59:59.5+00', updated_at = '2025-01-01 00:00:00+00' "
             "WHERE id = $1", uuid.UUID(ids[-1]))
    sql(dsn, "UPDATE leads SET created_at = '2024-03-01 05:06:07.000001-05', updated_at = now() WHERE id = $1",
        uuid.UUID(ids[0]))
    # tags: two on one lead (order by name), one with characters to escape
    for lead_id in ids[-2:]:
        for name in ("zeta", "Alfa \"1\"", NASTY[:40]):
            tag = sql(dsn, "INSERT INTO tags (account_id, name, color) VALUES ($1, $2, '#123abc') "
                           "ON CONFLICT (account_id, name) DO UPDATE SET color = EXCLUDED.color RETURNING id",
                      uuid.UUID(account_id), name)[0]["id"]
            sql(dsn, "INSERT INTO lead_tags (lead_id, tag_id) VALUES ($1, $2)", uuid.UUID(lead_id), uuid.UUID(str(tag)))
    return ids


def test_lead_get_is_the_struct_encoding(client: httpx.Client, tenant: Any, database: str) -> None:
    ids = shapes(database, tenant.account_id)
    expected = struct_bodies(database, tenant.account_id, ids)
    forget_cached_reads(tenant.account_id)
    for lead_id, lead in zip(ids, expected, strict=True):
        response = client.get(f"/api/leads/{lead_id}", headers=tenant.headers)
        assert response.status_code == 200, response.text
        same(response.content, b'{"lead":' + lead + b',"success":true}')
        assert msgspec.json.decode(response.content, type=LeadResponse)  # and it is a valid Lead


def test_leads_page_and_board_are_the_struct_encoding(client: httpx.Client, make_tenant: Any, database: str) -> None:
    tenant = make_tenant()
    ids = shapes(database, tenant.account_id)
    rows = sql(database, "SELECT id, created_at FROM leads WHERE account_id = $1 ORDER BY created_at DESC, id DESC",
               uuid.UUID(tenant.account_id))
    order = [str(row["id"]) for row in rows]
    assert sorted(order) == sorted(ids)
    expected = struct_bodies(database, tenant.account_id, order)
    forget_cached_reads(tenant.account_id)
    page = client.get("/api/leads", params={"limit": 2, "offset": 1}, headers=tenant.headers)
    assert page.status_code == 200, page.text
    cursor = encode_cursor(rows[2]["created_at"], rows[2]["id"]).encode() if len(ids) > 3 else None
    more = b'"next_cursor":"' + cursor + b'"' if cursor else b'"next_cursor":null'
    same(page.content, b'{"leads":[' + b",".join(expected[1:3]) + b'],"total":%d,"limit":2,"offset":1,'
                       b'"total_capped":false,' % len(ids) + more + b',"success":true}')
    board = client.get("/api/leads", headers=tenant.headers)
    assert board.status_code == 200, board.text
    same(board.content, b'{"leads":[' + b",".join(expected) + b'],"success":true}')
    assert len(msgspec.json.decode(board.content, type=LeadsResponse).leads) == len(ids)
    empty = client.get("/api/leads", params={"limit": 5, "search": "no-such-lead-zzqx"}, headers=tenant.headers)
    assert empty.content == (b'{"leads":[],"total":0,"limit":5,"offset":0,"total_capped":false,"next_cursor":null,'
                             b'"success":true}')


def test_created_lead_is_the_struct_encoding(client: httpx.Client, tenant: Any, database: str) -> None:
    third = default_stages(database, tenant.account_id)[2]
    for fields in ({"name": NASTY, "notes": NASTY}, {"stage_id": third["id"], "email": "x@y.test"}, {}):
        response = client.post("/api/leads", json={"phone": random_phone(), **fields}, headers=tenant.headers)
        assert response.status_code == 201, response.text
        lead_id = response.json()["lead"]["id"]
        (expected,) = struct_bodies(database, tenant.account_id, [lead_id])
        same(response.content, b'{"lead":' + expected + b',"success":true}')


def test_jsonb_with_null_members_keeps_them(client: httpx.Client, tenant: Any, database: str) -> None:
    """A null inside custom_fields is data: it is kept (jsonb's own spacing then; the same JSON value)."""
    lead_id = insert_lead(database, tenant.account_id, custom_fields=json.dumps({"a": None, "b": {"c": None}}))
    (expected,) = struct_bodies(database, tenant.account_id, [lead_id])
    response = client.get(f"/api/leads/{lead_id}", headers=tenant.headers)
    assert response.json()["lead"] == json.loads(expected)
    assert response.json()["lead"]["custom_fields"] == {"a": None, "b": {"c": None}}


def test_jsonb_key_order(client: httpx.Client, tenant: Any, database: str) -> None:
    """custom_fields keys come in jsonb's order (shorter keys first), as the Go peer sends them; the struct path
    sorted them (the driver decodes jsonb into a sorted map). JSON objects are unordered: same value."""
    fields = {"ciudad": "Lima", "n": 4186, "big": 51999111222, "nested": {"zz": 1, "a": [1, 2]}}
    lead_id = insert_lead(database, tenant.account_id, custom_fields=json.dumps(fields))
    (expected,) = struct_bodies(database, tenant.account_id, [lead_id])
    response = client.get(f"/api/leads/{lead_id}", headers=tenant.headers)
    assert response.json()["lead"] == json.loads(expected)
    assert list(response.json()["lead"]["custom_fields"]) == ["n", "big", "ciudad", "nested"]


def test_unknown_and_foreign_leads_are_404(client: httpx.Client, make_tenant: Any, database: str) -> None:
    tenant, other = make_tenant(), make_tenant()
    foreign = insert_lead(database, other.account_id, name="not yours")
    for lead_id in (foreign, str(uuid.uuid4())):
        response = client.get(f"/api/leads/{lead_id}", headers=tenant.headers)
        assert response.status_code == 404 and response.json() == {"success": False, "error": "Lead not found"}


# -- R24 messages ------------------------------------------------------------------------------------------------
MESSAGE_COLUMNS = (
    'id, account_id, device_id, chat_id, message_id, from_jid, from_name, body, message_type, media_url, '
    'media_mimetype, media_filename, media_size, is_from_me, is_read, status, "timestamp", created_at, '
    'quoted_message_id, quoted_body, quoted_sender, poll_question, poll_max_selections'
)


def struct_messages(dsn: str, chat_id: str) -> list[bytes]:
    """The chat's messages as the struct path encoded them (rows → ``Message`` with reactions and polls)."""
    chat = uuid.UUID(chat_id)
    rows = sql(dsn, f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id = $1 "
                    'ORDER BY "timestamp" DESC, id DESC', chat)
    reactions = sql(dsn, "SELECT id, account_id, chat_id, target_message_id, sender_jid, sender_name, emoji, "
                         'is_from_me, "timestamp", created_at FROM message_reactions WHERE chat_id = $1 '
                         'ORDER BY "timestamp", id', chat)
    options = sql(dsn, "SELECT o.id, o.message_id, o.name, o.vote_count FROM poll_options o JOIN messages m "
                       "ON m.id = o.message_id WHERE m.chat_id = $1 ORDER BY o.position, o.id", chat)
    votes = sql(dsn, 'SELECT v.id, v.message_id, v.voter_jid, v.selected_names, v."timestamp" FROM poll_votes v '
                     'JOIN messages m ON m.id = v.message_id WHERE m.chat_id = $1 ORDER BY v."timestamp", v.id', chat)
    out = []
    for row in rows:
        own = [r for r in reactions if r["target_message_id"] == row["message_id"]]
        if own:
            row["reactions"] = own
        if row["message_type"] == "poll":
            row["poll_options"] = [o for o in options if str(o["message_id"]) == str(row["id"])] or None
            row["poll_votes"] = [v for v in votes if str(v["message_id"]) == str(row["id"])] or None
        else:
            row["poll_question"] = row["poll_max_selections"] = None
        out.append(encode(msgspec.convert(row, Message)))
    return out


def test_message_page_is_the_struct_encoding(client: httpx.Client, tenant: Any, database: str) -> None:
    chat_id = insert_chat(database, tenant.account_id, f"{random_phone()}@s.whatsapp.net")
    base = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    plain = insert_full_message(database, tenant.account_id, chat_id, "S1", base)  # every optional column default
    insert_full_message(database, tenant.account_id, chat_id, "S2", base - timedelta(seconds=1, microseconds=7),
                        from_jid="51999@s.whatsapp.net", from_name=NASTY, body=NASTY, message_type="image",
                        media_url="/media/x.jpg", media_mimetype="image/jpeg", media_filename="a \"b\".jpg",
                        media_size=5_000_000_000, is_from_me=True, is_read=True, status="read",
                        quoted_message_id="Q1", quoted_body=NASTY, quoted_sender="51888@s.whatsapp.net")
    poll = insert_full_message(database, tenant.account_id, chat_id, "S3", base - timedelta(seconds=2),
                               message_type="poll", poll_question=NASTY, poll_max_selections=2, body="📊")
    insert_full_message(database, tenant.account_id, chat_id, "S4", base - timedelta(seconds=3),
                        message_type="poll", poll_question="no options yet")
    insert_full_message(database, tenant.account_id, chat_id, "S5", base - timedelta(seconds=4), body="",
                        poll_question="not a poll: not sent", poll_max_selections=3)
    sql(database, "UPDATE messages SET device_id = NULL, status = 'sent' WHERE id = $1", uuid.UUID(plain))
    insert_reaction(database, tenant.account_id, chat_id, "S1", "51900000001@s.whatsapp.net", "😂", base)
    insert_reaction(database, tenant.account_id, chat_id, "S1", "51900000002@s.whatsapp.net", "👍",
                    base - timedelta(microseconds=5))
    sql(database, "UPDATE message_reactions SET sender_name = NULL WHERE emoji = '👍' AND chat_id = $1",
        uuid.UUID(chat_id))
    sql(database, "INSERT INTO poll_options (message_id, name, vote_count, position) VALUES "
                  "($1, $2, 1, 1), ($1, 'Rojo', 0, 0)", uuid.UUID(poll), NASTY)
    sql(database, 'INSERT INTO poll_votes (message_id, voter_jid, selected_names, "timestamp") VALUES '
                  "($1, 'v1@s.whatsapp.net', ARRAY['Rojo', $2], $3), ($1, 'v2@s.whatsapp.net', '{}', $3)",
        uuid.UUID(poll), NASTY, base)
    expected = struct_messages(database, chat_id)
    forget_cached_reads(tenant.account_id)
    url = f"/api/chats/{chat_id}/messages"
    response = client.get(url, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert [m["id"] for m in response.json()["messages"]] == [json.loads(e)["id"] for e in expected]
    same(response.content, b'{"messages":[' + b",".join(expected) + b'],"success":true}')
    assert len(msgspec.json.decode(response.content, type=ChatMessagesResponse).messages) == 5
    second = client.get(url, params={"limit": 2, "offset": 1}, headers=tenant.headers)
    same(second.content, b'{"messages":[' + b",".join(expected[1:3]) + b'],"success":true}')
    keyset = client.get(url, params={"before": "2026-01-02T03:04:03Z"}, headers=tenant.headers)
    same(keyset.content, b'{"messages":[' + b",".join(expected[3:]) + b'],"success":true}')  # strictly older
    past = client.get(url, params={"offset": 50}, headers=tenant.headers)
    assert past.content == b'{"messages":[],"success":true}'


# -- R75 contacts ------------------------------------------------------------------------------------------------
CONTACT_COLUMNS = ("id, account_id, device_id, jid, phone, name, last_name, short_name, custom_name, push_name, "
                   "avatar_url, email, company, age, NULLIF(array_remove(tags, NULL), '{}') AS tags, notes, source, "
                   "is_group, created_at, updated_at")


def struct_contacts(dsn: str, account_id: str) -> list[bytes]:
    """The account's (non-group) contacts as the struct path encoded them, in the page order."""
    account = uuid.UUID(account_id)
    rows = sql(dsn, f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE account_id = $1 AND NOT is_group "
                    "ORDER BY COALESCE(custom_name, name, push_name, phone) ASC NULLS LAST, id", account)
    tags = sql(dsn, "SELECT ct.contact_id, t.id, t.account_id, t.name, t.color, t.created_at, t.updated_at "
                    "FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id WHERE t.account_id = $1 "
                    "ORDER BY t.name, t.id", account)
    out = []
    for row in rows:
        own = [{k: v for k, v in t.items() if k != "contact_id"} for t in tags if str(t["contact_id"]) == str(row["id"])]
        out.append(encode(msgspec.convert({**row, "structured_tags": own} if own else row, Contact)))
    return out


def test_contacts_page_is_the_struct_encoding(client: httpx.Client, make_tenant: Any, database: str) -> None:
    tenant = make_tenant()
    account = uuid.UUID(tenant.account_id)
    phone = random_phone()
    sql(database, "INSERT INTO contacts (account_id, jid) VALUES ($1, $2)", account, phone + "1@s.whatsapp.net")
    sql(database, "INSERT INTO contacts (account_id, jid, phone, name, last_name, short_name, custom_name, push_name, "
                  "avatar_url, email, company, age, tags, notes, source) VALUES ($1, $2, $3, $4, $5, '', $6, $7, "
                  "'/media/a.jpg', 'c@d.test', $8, 0, $9, $10, 'import')",
        account, phone + "2@s.whatsapp.net", "+51 " + phone, NASTY, "Pérez", "Zoe " + NASTY, "push", "Ñandú",
        ["a", NASTY], NASTY)
    sql(database, "INSERT INTO contacts (account_id, jid, name, tags, source, created_at) "
                  "VALUES ($1, $2, 'Ana', '{}', NULL, '2024-01-01 00:00:00.25+00')", account, phone + "3@s.whatsapp.net")
    sql(database, "INSERT INTO contacts (account_id, jid, name, is_group) VALUES ($1, $2, 'group', true)",
        account, phone + "4@g.us")
    for name in ("beta", NASTY[:30]):
        tag = sql(database, "INSERT INTO tags (account_id, name) VALUES ($1, $2) RETURNING id", account, name)[0]["id"]
        sql(database, "INSERT INTO contact_tags (contact_id, tag_id) SELECT id, $2 FROM contacts "
                      "WHERE account_id = $1 AND name = 'Ana'", account, uuid.UUID(str(tag)))
    expected = struct_contacts(database, tenant.account_id)
    forget_cached_reads(tenant.account_id)
    page = client.get("/api/contacts", headers=tenant.headers)
    assert page.status_code == 200, page.text
    same(page.content, b'{"contacts":[' + b",".join(expected) + b'],"total":3,"total_capped":false,"limit":50,'
                       b'"offset":0,"next_cursor":null,"success":true}')
    second = client.get("/api/contacts", params={"limit": 1, "offset": 1}, headers=tenant.headers)
    key = sql(database, "SELECT (COALESCE(custom_name, name, push_name, phone) IS NULL) AS k_null, "
                        "COALESCE(custom_name, name, push_name, phone, '') AS k_text, id FROM contacts "
                        "WHERE account_id = $1 AND NOT is_group "
                        "ORDER BY COALESCE(custom_name, name, push_name, phone) ASC NULLS LAST, id", account)[1]
    cursor = encode_cursor(key["k_null"], key["k_text"], uuid.UUID(str(key["id"]))).encode()
    same(second.content, b'{"contacts":[' + expected[1] + b'],"total":3,"total_capped":false,"limit":1,"offset":1,'
                         b'"next_cursor":"' + cursor + b'","success":true}')
    past = client.get("/api/contacts", params={"offset": 10}, headers=tenant.headers)
    assert past.content == (b'{"contacts":[],"total":3,"total_capped":false,"limit":50,"offset":10,'
                            b'"next_cursor":null,"success":true}')
    found = client.get("/api/contacts", params={"search": "ñandú"}, headers=tenant.headers)
    assert [c["company"] for c in found.json()["contacts"]] == ["Ñandú"] and found.json()["total"] == 1
