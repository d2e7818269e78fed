"""GET /api/contacts and /api/chats at scale (issue 17, goals 2-5): per-account trigram search with the same matches
as a plain ILIKE, the 3-character minimum, capped filtered totals (``total_capped``), keyset cursors
(``cursor`` / ``next_cursor``) and the indexes that serve them (real server, PostgreSQL, Redis)."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from clarin.crm.contact_reads import FIRST_KEY
from clarin.db.queries import query
from clarin.http.cursor import encode_cursor
from tests import support
from tests.crm_helpers import (
    U,
    insert_chat,
    insert_contact,
    insert_device,
    insert_tag,
    new_jid,
    one,
    tag_contact,
)

NOW = datetime.now(UTC)
SEARCHED = ["María José", "MARÍA", "maria sin tilde", "100% real", "100 plain", "a_b", "axb", "back\\slash",
            "José Carmen", "Ñandú", "carmencita"]
TERMS = ["maría", "MARÍA", "ría", "0% r", "a_b", "k\\s", "carmen", "ñan", "100", "zzz", "  carmen  "]


def get(client: httpx.Client, tenant: Any, path: str, **params: Any) -> httpx.Response:
    return client.get(path, params=params, headers=tenant.headers)


def ok(client: httpx.Client, tenant: Any, path: str, **params: Any) -> dict[str, Any]:
    response = get(client, tenant, path, **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def walk(client: httpx.Client, tenant: Any, path: str, key: str, limit: int, **params: Any) -> list[str]:
    """Every id of a list, page by page through ``next_cursor``; each page's total is the same."""
    seen: list[str] = []
    cursor = ""
    for _ in range(1000):
        body = ok(client, tenant, path, limit=limit, cursor=cursor, **params)
        seen += [row["id"] for row in body[key]]
        assert len(body[key]) <= limit
        if body["next_cursor"] is None:
            return seen
        assert len(body[key]) == limit
        cursor = body["next_cursor"]
    raise AssertionError("the walk did not end")


def contains(haystack: str, term: str) -> bool:
    return term.strip().lower() in haystack.lower()


# -- search --------------------------------------------------------------------------------------------------
def test_contact_search_matches_plain_ilike(client: httpx.Client, tenant: Any, database: str) -> None:
    # fixed JIDs: the JID is searched too, and a random one could contain a term ("100")
    jids = [f"5198{index:07d}@s.whatsapp.net" for index in range(len(SEARCHED) + 1)]
    searched = {insert_contact(database, tenant.account_id, jid, name=name, phone=None): f"{name} {jid}"
                for name, jid in zip(SEARCHED, jids, strict=False)}
    searched[insert_contact(database, tenant.account_id, jids[-1], name="Otro", email="carmen@corp.test",
                            phone=None)] = f"Otro carmen@corp.test {jids[-1]}"
    for term in TERMS:
        expected = sorted(cid for cid, text in searched.items() if contains(text, term))
        found = sorted(row["id"] for row in ok(client, tenant, "/api/contacts", search=term, limit=0)["contacts"])
        assert found == expected, term


def test_chat_search_matches_the_chat_or_its_contact(client: httpx.Client, tenant: Any, database: str) -> None:
    acct = tenant.account_id
    expected_by_term: dict[str, set[str]] = {term: set() for term in TERMS}
    for index, name in enumerate(SEARCHED):
        jid = f"5199{index:07d}@s.whatsapp.net"
        on_chat = index % 2 == 0  # the name on the chat itself or only on its contact
        chat = insert_chat(database, acct, jid, name=name if on_chat else "", last_message_at=NOW)
        if not on_chat:
            insert_contact(database, acct, jid, push_name=name)
        for term in TERMS:
            if contains(name, term) or contains(jid, term):
                expected_by_term[term].add(chat)
    for term, expected in expected_by_term.items():
        found = {row["id"] for row in ok(client, tenant, "/api/chats", search=term, limit=0)["chats"]}
        assert found == expected, term


@pytest.mark.parametrize("path", ["/api/contacts", "/api/chats"])
def test_search_needs_three_characters(client: httpx.Client, tenant: Any, path: str) -> None:
    for term in ("a", "ab", " ab ", "%_"):
        response = get(client, tenant, path, search=term)
        assert response.status_code == 400, term
        assert response.json()["error"] == "search must be at least 3 characters"
    assert get(client, tenant, path, search="   ").status_code == 200  # blank = no search
    assert get(client, tenant, path, search="abc").status_code == 200


# -- cursors -------------------------------------------------------------------------------------------------
@pytest.fixture
def contacts_with_ties(tenant: Any, database: str) -> dict[str, Any]:
    acct = tenant.account_id
    device = insert_device(database, acct)
    ids = [insert_contact(database, acct, name=f"Tie {i % 3}", phone=None,
                          device_id=U(device) if i % 2 else None) for i in range(14)]
    ids += [insert_contact(database, acct, phone=None) for _ in range(4)]  # no display name: sorted last
    ids += [insert_contact(database, acct, custom_name="", phone=None, name="Zeta") for _ in range(2)]
    return {"device": device, "ids": ids}


def test_contact_cursor_walk_visits_every_contact_once_in_order(
    client: httpx.Client, tenant: Any, contacts_with_ties: dict[str, Any]
) -> None:
    everything = [row["id"] for row in ok(client, tenant, "/api/contacts", limit=0)["contacts"]]
    assert sorted(everything) == sorted(contacts_with_ties["ids"])
    for limit in (1, 3, 7, 20, 50):
        assert walk(client, tenant, "/api/contacts", "contacts", limit) == everything
    # with a filter and with search, the cursor keeps the filter's order
    on_device = [row["id"] for row in ok(client, tenant, "/api/contacts", limit=0,
                                         device_id=contacts_with_ties["device"])["contacts"]]
    assert len(on_device) == 7
    assert walk(client, tenant, "/api/contacts", "contacts", 2, device_id=contacts_with_ties["device"]) == on_device
    ties = [row["id"] for row in ok(client, tenant, "/api/contacts", limit=0, search="tie")["contacts"]]
    assert len(ties) == 14 and walk(client, tenant, "/api/contacts", "contacts", 4, search="tie") == ties
    both = walk(client, tenant, "/api/contacts", "contacts", 2, search="tie", device_id=contacts_with_ties["device"])
    assert both == on_device
    # offset applies after the cursor; the last page's next_cursor is null
    first = ok(client, tenant, "/api/contacts", limit=5)
    after = ok(client, tenant, "/api/contacts", limit=5, offset=2, cursor=first["next_cursor"])
    assert [row["id"] for row in after["contacts"]] == everything[7:12]
    assert after["total"] == len(everything) and after["total_capped"] is False
    last = ok(client, tenant, "/api/contacts", limit=len(everything))
    assert last["next_cursor"] is None


def test_contact_tag_filter_pages_by_cursor(client: httpx.Client, tenant: Any, database: str) -> None:
    acct = tenant.account_id
    tag = insert_tag(database, acct)
    tagged = [insert_contact(database, acct, name=f"T {i % 2}") for i in range(5)]
    insert_contact(database, acct, name="T 0")
    for contact in tagged:
        tag_contact(database, contact, tag)
    expected = [row["id"] for row in ok(client, tenant, "/api/contacts", limit=0, tag_ids=tag)["contacts"]]
    assert sorted(expected) == sorted(tagged)
    assert walk(client, tenant, "/api/contacts", "contacts", 2, tag_ids=tag) == expected
    with_phone = [row["id"] for row in ok(client, tenant, "/api/contacts", limit=0, tag_ids=tag,
                                          has_phone="true")["contacts"]]
    assert with_phone == expected  # every one has a phone: the tag + filter shape, same order
    assert walk(client, tenant, "/api/contacts", "contacts", 3, tag_ids=tag, has_phone="true") == expected


@pytest.fixture
def chats_with_ties(tenant: Any, database: str) -> list[str]:
    acct = tenant.account_id
    at = NOW - timedelta(minutes=5)
    ids = [insert_chat(database, acct, f"5198{i:07d}@s.whatsapp.net", name=f"Empate {i}", last_message_at=at,
                       unread_count=i % 2, is_pinned=i in (3, 9)) for i in range(12)]
    ids += [insert_chat(database, acct, f"5197{i:07d}@s.whatsapp.net", name=f"Empate mudo {i}") for i in range(4)]
    ids += [insert_chat(database, acct, f"5196{i:07d}@s.whatsapp.net", name="Viejo",
                        last_message_at=at - timedelta(days=i), is_archived=i == 1) for i in range(4)]
    return ids


def test_chat_cursor_walk_visits_every_chat_once_in_order(
    client: httpx.Client, tenant: Any, chats_with_ties: list[str]
) -> None:
    inbox = [row["id"] for row in ok(client, tenant, "/api/chats", limit=0)["chats"]]
    assert len(inbox) == len(chats_with_ties) - 1  # one is archived
    for limit in (1, 4, 6, 50):
        assert walk(client, tenant, "/api/chats", "chats", limit) == inbox
    for params in ({"archived": "true"}, {"unread_only": "true"}, {"search": "empate"},
                   {"search": "empate", "unread_only": "true"}):
        expected = [row["id"] for row in ok(client, tenant, "/api/chats", limit=0, **params)["chats"]]
        assert expected and walk(client, tenant, "/api/chats", "chats", 3, **params) == expected, params
    first = ok(client, tenant, "/api/chats", limit=4)
    after = ok(client, tenant, "/api/chats", limit=3, offset=1, cursor=first["next_cursor"])
    assert [row["id"] for row in after["chats"]] == inbox[5:8]
    assert ok(client, tenant, "/api/chats", limit=len(inbox))["next_cursor"] is None


def test_chat_tag_filter_pages_by_cursor(client: httpx.Client, tenant: Any, database: str) -> None:
    acct = tenant.account_id
    tag, other = insert_tag(database, acct), insert_tag(database, acct)
    at = NOW - timedelta(minutes=1)
    tagged = []
    for i in range(7):
        jid = f"5193{i:07d}@s.whatsapp.net"
        chat = insert_chat(database, acct, jid, name=f"Tag {i}", last_message_at=at if i % 3 else None,
                           is_archived=i == 5, unread_count=i % 2)
        tag_contact(database, insert_contact(database, acct, jid), tag if i != 6 else other)
        tagged.append(chat)
    insert_chat(database, acct, "51930000099@s.whatsapp.net", name="Sin contacto", last_message_at=at)
    inbox = [row["id"] for row in ok(client, tenant, "/api/chats", limit=0)["chats"]]
    expected = [chat for chat in inbox if chat in tagged[:5]]  # not the archived one, not the other tag's
    body = ok(client, tenant, "/api/chats", limit=0, tag_ids=tag)
    assert [row["id"] for row in body["chats"]] == expected and (body["total"], body["total_capped"]) == (5, False)
    assert walk(client, tenant, "/api/chats", "chats", 2, tag_ids=tag) == expected
    both = [row["id"] for row in ok(client, tenant, "/api/chats", limit=0, tag_ids=f"{tag},{other}",
                                    archived="true")["chats"]]
    assert sorted(both) == sorted(tagged)
    unread = [row["id"] for row in ok(client, tenant, "/api/chats", limit=0, tag_ids=tag, unread_only="true")["chats"]]
    assert unread == [chat for chat in expected if tagged.index(chat) % 2]


@pytest.mark.parametrize("path", ["/api/contacts", "/api/chats"])
def test_bad_cursor_is_400(client: httpx.Client, tenant: Any, path: str) -> None:
    import base64

    def b64(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    nul = b64([False, "a\u0000b", str(uuid.uuid4())]) if path == "/api/contacts" else b64([True, None, "x"])
    for bad in ("garbage!", "e30", b64([1, 2]), b64(["x", "y", "not-a-uuid"]), "A" * 600, b64([True]), nul):
        response = get(client, tenant, path, cursor=bad)
        assert response.status_code == 400, bad
        assert response.json()["error"] == "Invalid cursor"


def test_cursors_are_tenant_scoped(client: httpx.Client, make_tenant: Any, database: str) -> None:
    a, b = make_tenant(), make_tenant()
    for i in range(3):
        insert_contact(database, a.account_id, name=f"Ana {i}")
        insert_chat(database, a.account_id, f"5195{i:07d}@s.whatsapp.net", name=f"Ana {i}", last_message_at=NOW)
    mine = insert_contact(database, b.account_id, name="Beto")
    for path, key in (("/api/contacts", "contacts"), ("/api/chats", "chats")):
        cursor = ok(client, a, path, limit=1)["next_cursor"]
        assert cursor is not None
        body = ok(client, b, path, cursor=cursor)  # another account's cursor only positions in b's own rows
        assert all(row["account_id"] == b.account_id for row in body[key])
    assert [row["id"] for row in ok(client, b, "/api/contacts", cursor=encode_cursor(*FIRST_KEY))["contacts"]] == [mine]
    assert ok(client, b, "/api/contacts", search="ana")["total"] == 0
    assert ok(client, b, "/api/chats", search="ana", archived="true")["total"] == 0


# -- capped totals ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def capped_server(server_env: dict[str, str], log_dir: Path) -> Iterator[support.ServerProcess]:
    env = {**server_env, "TOTAL_COUNT_CAP": "3", "PAGE_CACHE_TTL": "0",
           "REDIS_PREFIX": f"clarin-test-cap-{uuid.uuid4().hex[:6]}"}
    with support.running_server(env, log_dir, "capped") as srv:
        yield srv


def test_filtered_totals_are_capped(capped_server: support.ServerProcess, tenant: Any, database: str) -> None:
    acct = tenant.account_id
    for i in range(5):
        insert_contact(database, acct, name=f"Capped {i}")
        insert_chat(database, acct, f"5194{i:07d}@s.whatsapp.net", name=f"Capped {i}", last_message_at=NOW,
                    unread_count=1)
    insert_contact(database, acct, name="Solo")
    with httpx.Client(base_url=capped_server.url, timeout=15) as client:
        searched = ok(client, tenant, "/api/contacts", search="capped", limit=2)
        assert (searched["total"], searched["total_capped"], len(searched["contacts"])) == (3, True, 2)
        # the page is not capped: the cursor walks all 5
        assert len(walk(client, tenant, "/api/contacts", "contacts", 2, search="capped")) == 5
        exact = ok(client, tenant, "/api/contacts", search="solo")
        assert (exact["total"], exact["total_capped"]) == (1, False)
        has_phone = ok(client, tenant, "/api/contacts", has_phone="true")
        assert (has_phone["total"], has_phone["total_capped"]) == (3, True)
        # unfiltered totals are the account's counters: exact, never capped
        everything = ok(client, tenant, "/api/contacts")
        assert (everything["total"], everything["total_capped"]) == (6, False)
        inbox = ok(client, tenant, "/api/chats")
        assert (inbox["total"], inbox["total_capped"]) == (5, False)
        for params in ({"search": "capped"}, {"unread_only": "true"}, {"archived": "true"}):
            body = ok(client, tenant, "/api/chats", **params)
            assert (body["total"], body["total_capped"], len(body["chats"])) == (3, True, 5), params
        one = ok(client, tenant, "/api/chats", search="capped 4")
        assert (one["total"], one["total_capped"]) == (1, False)


# -- plans ---------------------------------------------------------------------------------------------------
def _explain(dsn: str, statement: str, settings: tuple[str, ...]) -> str:
    """EXPLAIN ``statement`` on one connection after ``SET``ting ``settings`` (tiny tables favour seq scans)."""
    import asyncio

    import psqlpy

    async def _run() -> str:
        pool = psqlpy.ConnectionPool(dsn=dsn, max_db_pool_size=2)
        try:
            conn = await pool.connection()
            try:
                for setting in settings:
                    await conn.execute(f"SET {setting}")
                rows = (await conn.execute("EXPLAIN (COSTS OFF) " + statement)).result()
                return "\n".join(str(next(iter(row.values()))) for row in rows)
            finally:
                conn.close()
        finally:
            pool.close()

    return asyncio.run(_run())


def _plan(dsn: str, name: str, params: list[Any], *settings: str) -> str:
    def literal(value: Any) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, list):
            return "ARRAY[" + ",".join(f"'{v}'" for v in value) + "]::uuid[]"
        return "'" + str(value).replace("'", "''") + "'"

    sql = str(query(name))
    for index in range(len(params), 0, -1):  # $10 before $1
        sql = sql.replace(f"${index}", literal(params[index - 1]))
    return _explain(dsn, sql, ("enable_seqscan = off", *settings))


def test_indexes_serve_the_page_search_and_cursor_shapes(make_tenant: Any, database: str) -> None:
    tenant = make_tenant()
    acct = uuid.UUID(tenant.account_id)
    support.run_sql(database, "INSERT INTO contacts (account_id, jid, name, phone) SELECT $1, "
                              "(51930000000 + g)::text || '@s.whatsapp.net', 'Persona ' || g, (51930000000 + g)::text "
                              "FROM generate_series(1, 3000) g", [acct])
    support.run_sql(database, "INSERT INTO chats (account_id, jid, name, last_message_at) SELECT $1, "
                              "(51930000000 + g)::text || '@s.whatsapp.net', 'Chat ' || g, "
                              "now() - g * interval '1 minute' FROM generate_series(1, 3000) g", [acct])
    rare = "5199888777@s.whatsapp.net"
    insert_contact(database, tenant.account_id, rare, name="Xiomara Quintanilla")
    insert_chat(database, tenant.account_id, rare, name="Quintanilla", last_message_at=NOW)
    # VACUUM: a GIN index built on an empty table has its entry statistics (the planner's cost of a trigram
    # lookup) from the next vacuum on; production tables get them from autovacuum
    support.run_sql(database, "VACUUM ANALYZE contacts")
    support.run_sql(database, "VACUUM ANALYZE chats")
    first = [*FIRST_KEY]
    plan = _plan(database, "contacts_page_unfiltered", [acct, False, 50, 0, *first])
    assert "idx_contacts_keyset" in plan and "ROW(" in plan, plan
    plan = _plan(database, "contacts_page_search", [acct, False, 50, 0, *first, "%persona 12%", 300])
    assert "idx_contacts_keyset" in plan or "idx_contacts_search_acct" in plan, plan
    assert "idx_contacts_search_trgm" not in plan
    # a rare term: the per-account trigram index answers it (bitmap scans only: the planner's choice between it
    # and the keyset walk depends on statistics a 3,000-row table does not have)
    bitmaps = ("enable_indexscan = off", "enable_indexonlyscan = off")
    plan = _plan(database, "contacts_page_search", [acct, False, 50, 0, *first, "%quintanilla%", 300], *bitmaps)
    assert "Bitmap Index Scan on idx_contacts_search_acct" in plan, plan
    assert "Index Cond: ((account_id = " in plan.split("idx_contacts_search_acct", 1)[1], plan
    chat_first = [True, "9999-12-31T00:00:00Z", str(uuid.UUID(int=(1 << 128) - 1))]
    search = [acct, 51, 0, *chat_first, False, None, None, False, 300, "%quintanilla%"]
    plan = _plan(database, "chats_page_search", search, *bitmaps)
    assert "Bitmap Index Scan on idx_chats_search_acct" in plan, plan
    assert "Bitmap Index Scan on idx_chats_contact_search_acct" in plan, plan  # the chat's copy (0014/0015)
    assert "contacts_account_id_jid_key" not in plan.split("Nested Loop Left Join", 1)[0]  # no contact probed
    assert "idx_contacts_search_acct" not in plan, plan
    plan = _plan(database, "chats_page_search", search)  # a common one may walk the order index instead
    assert "idx_chats_search_acct" in plan or "idx_chats_order" in plan, plan
    plan = _plan(database, "chats_page_search", [*search[:-1], "%chat 1%"], "enable_bitmapscan = off")
    assert "Index Only Scan using idx_chats_order" in plan, plan
    plan = _plan(database, "chats_page_tagged", [acct, 51, 0, *chat_first, False, None, [str(uuid.uuid4())], False, 300])
    assert "idx_contact_tags_tag" in plan and "chats_account_id_jid_key" in plan, plan
    plan = _plan(database, "chats_page", [acct, 51, 0, *chat_first, True, None, None, False, 300])
    assert "Index Scan using idx_chats_order" in plan and "ROW(is_pinned" in plan, plan
    plan = _plan(database, "contacts_page_tagged", [acct, False, 50, 0, *first, [str(uuid.uuid4())], 300])
    assert "Index Only Scan using idx_contacts_keyset" in plan and "idx_contact_tags_tag" in plan, plan
    plan = _plan(database, "contacts_page_tagged_filtered",
                 [acct, False, 50, 0, *first, None, True, None, [str(uuid.uuid4())], 300])
    assert "idx_contact_tags_tag" in plan, plan


# -- chats search by the chat's contact: chats.contact_search, kept by triggers (0014) -------------------------
CONTACT_TEXT = ("contact_search_text(k.name, k.last_name, k.short_name, k.custom_name, k.push_name, k.phone, k.jid, "
                "k.email, k.company)")


_LIMITS = itertools.count(1000)


def chat_hits(client: httpx.Client, tenant: Any, term: str) -> set[str]:
    """The chats a search finds; a new limit each time: the rows change under the page cache (writes made in SQL)."""
    return {row["id"] for row in ok(client, tenant, "/api/chats", search=term, limit=next(_LIMITS))["chats"]}


def assert_contact_search_current(database: str, account_id: str) -> None:
    """Every chat of the account holds its contact's (same account + JID) search text and card (0018), NULL
    without one."""
    stale = support.run_sql(database, "SELECT c.id, c.contact_search FROM chats c "
                                      "LEFT JOIN contacts k ON k.account_id = c.account_id AND k.jid = c.jid "
                                      "WHERE c.account_id = $1 AND (c.contact_search, c.contact_phone, "
                                      "c.contact_avatar_url, c.contact_custom_name, c.contact_name) IS DISTINCT FROM "
                                      f"({CONTACT_TEXT}, k.phone, k.avatar_url, k.custom_name, k.name)",
                            [U(account_id)])
    assert stale == []


def test_chat_pages_show_the_contacts_current_card(client: httpx.Client, tenant: Any, database: str) -> None:
    """The page reads the contact's phone, avatar, custom name and name from the chat's copy (0018): every page
    shape shows them as the contact has them now, and nothing without a contact."""
    acct = tenant.account_id
    jid = new_jid()
    chat = insert_chat(database, acct, jid, name="Cardchat", last_message_at=NOW)
    bare = insert_chat(database, acct, new_jid(), name="Cardchat bare", last_message_at=NOW)
    contact = insert_contact(database, acct, jid, name="Carla", custom_name="Carlita", avatar_url="/a/1.jpg")

    def card(**params: Any) -> dict[str, dict[str, Any]]:
        rows = ok(client, tenant, "/api/chats", limit=next(_LIMITS), **params)["chats"]
        return {row["id"]: {k: row.get(k) for k in ("contact_phone", "contact_avatar_url", "contact_custom_name",
                                                     "contact_name")} for row in rows}

    phone = jid.split("@", 1)[0]
    want = {"contact_phone": phone, "contact_avatar_url": "/a/1.jpg", "contact_custom_name": "Carlita",
            "contact_name": "Carla"}
    empty = dict.fromkeys(want)
    for shape in ({}, {"search": "cardchat"}, {"unread_only": "false", "archived": "true"}):
        assert card(**shape)[chat] == want, shape
        assert card(**shape)[bare] == empty, shape
    # only shown, never searched: the avatar has its own trigger column
    support.run_sql(database, "UPDATE contacts SET avatar_url = '/a/2.jpg' WHERE id = $1", [U(contact)])
    assert card()[chat]["contact_avatar_url"] == "/a/2.jpg"
    assert client.delete(f"/api/contacts/{contact}", headers=tenant.headers).status_code == 200
    assert card()[chat] == empty
    assert_contact_search_current(database, acct)


def test_chat_search_follows_its_contacts_writes(client: httpx.Client, tenant: Any, database: str) -> None:
    acct = tenant.account_id
    jid = new_jid()
    chat = insert_chat(database, acct, jid, name="", last_message_at=NOW)
    assert chat_hits(client, tenant, "zorbalina") == set()
    contact = insert_contact(database, acct, jid, push_name="Zorbalina")  # the contact comes after the chat
    assert chat_hits(client, tenant, "zorbalina") == {chat}
    response = client.put(f"/api/contacts/{contact}", json={"custom_name": "Quetzalia", "company": "Acme Ñu"},
                          headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert chat_hits(client, tenant, "quetzalia") == chat_hits(client, tenant, "acme ñu") == {chat}
    assert chat_hits(client, tenant, "zorbalina") == {chat}  # push_name unchanged
    support.run_sql(database, "UPDATE contacts SET push_name = 'Otra', last_name = 'Del Río' WHERE id = $1",
                    [U(contact)])
    assert chat_hits(client, tenant, "zorbalina") == set()
    assert chat_hits(client, tenant, "del río") == {chat}
    assert_contact_search_current(database, acct)
    assert client.delete(f"/api/contacts/{contact}", headers=tenant.headers).status_code == 200
    assert chat_hits(client, tenant, "del río") == set()
    assert one(database, "SELECT contact_search FROM chats WHERE id = $1", [U(chat)])["contact_search"] is None
    # a chat created for a contact that already exists
    jid2 = new_jid()
    insert_contact(database, acct, jid2, name="Wumpelina", email="wump@corp.test")
    chat2 = insert_chat(database, acct, jid2, last_message_at=NOW)
    assert chat_hits(client, tenant, "wumpelina") == chat_hits(client, tenant, "wump@corp") == {chat2}
    # the contact moves to another JID: the old JID's chat loses the text, the new JID's chat gets it
    jid3 = new_jid()
    chat3 = insert_chat(database, acct, jid3, last_message_at=NOW)
    support.run_sql(database, "UPDATE contacts SET jid = $2 WHERE account_id = $1 AND jid = $3", [U(acct), jid3, jid2])
    assert chat_hits(client, tenant, "wumpelina") == {chat3}
    # a chat that changes JID reads its new contact
    jid4 = new_jid()
    insert_contact(database, acct, jid4, name="Brontolina")
    assert chat_hits(client, tenant, "brontolina") == set()
    support.run_sql(database, "UPDATE chats SET jid = $2 WHERE id = $1", [U(chat), jid4])
    assert chat_hits(client, tenant, "brontolina") == {chat}
    support.run_sql(database, "UPDATE chats SET jid = $2 WHERE id = $1", [U(chat), new_jid()])
    assert chat_hits(client, tenant, "brontolina") == set()
    assert_contact_search_current(database, acct)


def test_chat_search_by_contact_after_merge(client: httpx.Client, tenant: Any, database: str) -> None:
    acct = tenant.account_id
    keep_jid, dup_jid = new_jid(), new_jid()
    keep = insert_contact(database, acct, keep_jid, name="Keepalina")
    dup = insert_contact(database, acct, dup_jid, name="Dupalina")
    chat = insert_chat(database, acct, dup_jid, last_message_at=NOW)  # the kept JID has no chat: it takes this one
    assert chat_hits(client, tenant, "dupalina") == {chat}
    response = client.post("/api/contacts/merge", json={"keep_id": keep, "merge_ids": [dup]}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert chat_hits(client, tenant, "keepalina") == {chat}
    assert chat_hits(client, tenant, "dupalina") == set()
    assert_contact_search_current(database, acct)


def test_chat_search_by_contact_is_tenant_scoped(client: httpx.Client, make_tenant: Any, database: str) -> None:
    mine, theirs = make_tenant(), make_tenant()
    jid = new_jid()
    my_chat = insert_chat(database, mine.account_id, jid, last_message_at=NOW)  # no contact of mine
    their_chat = insert_chat(database, theirs.account_id, jid, last_message_at=NOW)
    insert_contact(database, theirs.account_id, jid, custom_name="Pernambuca")
    assert chat_hits(client, mine, "pernambuca") == set()
    assert chat_hits(client, theirs, "pernambuca") == {their_chat}
    insert_contact(database, mine.account_id, jid, name="Mía Propia")
    assert chat_hits(client, mine, "mía propia") == {my_chat}
    assert chat_hits(client, theirs, "mía propia") == set()
    support.run_sql(database, "DELETE FROM contacts WHERE account_id = $1 AND jid = $2", [U(theirs.account_id), jid])
    assert chat_hits(client, mine, "mía propia") == {my_chat}
    assert chat_hits(client, theirs, "pernambuca") == set()
    assert_contact_search_current(database, mine.account_id)
    assert_contact_search_current(database, theirs.account_id)
