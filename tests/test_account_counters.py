"""Per-account counters (0009_account_counters.sql, issue 17): the unfiltered totals read counter slots kept by
triggers in the writing transaction. Their sums must equal count(*) with the same predicates after every kind of
write, under concurrent writers, after the migration's back-fill of existing rows, and on the API (real PostgreSQL,
Redis and server)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psqlpy
import pytest

from clarin.db.migrate import discover, migrate
from clarin.db.pool import Database
from tests import support
from tests.leads_support import create_lead, random_phone, sql

# Per account: the counters summed and count(*) with the predicates of the totals they replace (chats_page_inbox,
# contacts_page's is_group, stats_account_counts). No counter row may outlive its account.
COMPARE = """
SELECT a.id::text AS account_id,
       (SELECT coalesce(sum(c.leads), 0) FROM account_counters c WHERE c.account_id = a.id)::bigint AS c_leads,
       (SELECT count(*) FROM leads l WHERE l.account_id = a.id) AS leads,
       (SELECT coalesce(sum(c.contacts), 0) FROM account_counters c WHERE c.account_id = a.id)::bigint AS c_contacts,
       (SELECT count(*) FROM contacts k WHERE k.account_id = a.id) AS contacts,
       (SELECT coalesce(sum(c.group_contacts), 0) FROM account_counters c WHERE c.account_id = a.id)::bigint
           AS c_group_contacts,
       (SELECT count(*) FROM contacts k WHERE k.account_id = a.id AND k.is_group) AS group_contacts,
       (SELECT coalesce(sum(c.inbox_chats), 0) FROM account_counters c WHERE c.account_id = a.id)::bigint
           AS c_inbox_chats,
       (SELECT count(*) FROM chats c WHERE c.account_id = a.id AND NOT c.is_archived
          AND c.jid NOT LIKE '%@g.us' AND c.jid NOT LIKE '%@newsletter' AND c.jid NOT LIKE '%@broadcast'
          AND c.jid NOT LIKE '%@lid') AS inbox_chats
FROM accounts a
ORDER BY a.id
"""
KINDS = ("leads", "contacts", "group_contacts", "inbox_chats")


def totals(dsn: str) -> dict[str, dict[str, int]]:
    """account → {kind: count(*)}, after asserting every counter sum equals its count(*)."""
    out: dict[str, dict[str, int]] = {}
    for row in support.run_sql(dsn, COMPARE):
        for kind in KINDS:
            assert row["c_" + kind] == row[kind], (kind, row)
        out[row["account_id"]] = {kind: int(row[kind]) for kind in KINDS}
    orphans = support.run_sql(dsn, "SELECT count(*) AS n FROM account_counters c "
                                   "WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = c.account_id)")
    assert orphans[0]["n"] == 0
    return out


def new_account(dsn: str, name: str = "counted") -> uuid.UUID:
    return uuid.UUID(str(sql(dsn, "INSERT INTO accounts (name) VALUES ($1) RETURNING id", name)[0]["id"]))


def jid(suffix: str = "@s.whatsapp.net") -> str:
    return random_phone() + suffix


@pytest.fixture(scope="module")
def dsn() -> Iterator[str]:
    with support.migrated_database() as fresh:
        yield fresh


def test_counters_follow_every_write(dsn: str) -> None:
    a, b = new_account(dsn, "a"), new_account(dsn, "b")
    # single-row inserts
    sql(dsn, "INSERT INTO leads (account_id, jid) VALUES ($1, $2)", a, jid())
    sql(dsn, "INSERT INTO contacts (account_id, jid) VALUES ($1, $2)", a, jid())
    sql(dsn, "INSERT INTO chats (account_id, jid) VALUES ($1, $2)", a, jid())
    assert totals(dsn)[str(a)] == {"leads": 1, "contacts": 1, "group_contacts": 0, "inbox_chats": 1}
    # multi-row inserts (unnest), one statement spanning both accounts, with every excluded chat kind
    accounts = [a, a, a, b, b, a, b, a, b]
    suffixes = ["@s.whatsapp.net", "@g.us", "@newsletter", "@broadcast", "@lid", "@s.whatsapp.net",
                "@s.whatsapp.net", "@g.us", "@s.whatsapp.net"]
    jids = [jid(s) for s in suffixes]
    archived = [False, False, False, False, False, True, False, False, True]
    sql(dsn, "INSERT INTO chats (account_id, jid, is_archived) "
             "SELECT * FROM unnest($1::uuid[], $2::text[], $3::bool[])", accounts, jids, archived)
    sql(dsn, "INSERT INTO contacts (account_id, jid, is_group) "
             "SELECT * FROM unnest($1::uuid[], $2::text[], $3::bool[])",
        accounts, jids, [s == "@g.us" for s in suffixes])
    sql(dsn, "INSERT INTO leads (account_id, jid) SELECT * FROM unnest($1::uuid[], $2::text[])", accounts, jids)
    assert totals(dsn)[str(a)] == {"leads": 6, "contacts": 6, "group_contacts": 2, "inbox_chats": 2}
    assert totals(dsn)[str(b)] == {"leads": 4, "contacts": 4, "group_contacts": 0, "inbox_chats": 1}
    # an upsert that only updates (the ingestion shape) changes nothing
    sql(dsn, "INSERT INTO chats AS c (account_id, jid) VALUES ($1, $2) ON CONFLICT (account_id, jid) "
             "DO UPDATE SET updated_at = now()", a, jids[0])
    assert totals(dsn)[str(a)]["inbox_chats"] == 2
    # archive / unarchive, jid changes into and out of the excluded kinds, is_group flips
    sql(dsn, "UPDATE chats SET is_archived = true WHERE account_id = $1 AND jid = $2", a, jids[0])
    assert totals(dsn)[str(a)]["inbox_chats"] == 1
    sql(dsn, "UPDATE chats SET is_archived = false WHERE account_id = $1 AND jid = ANY($2)", a, jids)
    assert totals(dsn)[str(a)]["inbox_chats"] == 3
    sql(dsn, "UPDATE chats SET jid = $3 WHERE account_id = $1 AND jid = $2", a, jids[0], jid("@lid"))
    assert totals(dsn)[str(a)]["inbox_chats"] == 2
    sql(dsn, "UPDATE chats SET jid = $3 WHERE account_id = $1 AND jid = $2", b, jids[4], jid())
    sql(dsn, "UPDATE chats SET is_archived = NOT is_archived, is_pinned = true WHERE account_id = $1", b)
    sql(dsn, "UPDATE contacts SET is_group = NOT is_group WHERE account_id = $1 AND jid = ANY($2)", a, jids[:3])
    assert totals(dsn)[str(a)] == {"leads": 6, "contacts": 6, "group_contacts": 3, "inbox_chats": 2}
    assert totals(dsn)[str(b)]["inbox_chats"] == 1
    # deletes, single and multi-row
    sql(dsn, "DELETE FROM leads WHERE account_id = $1 AND jid = $2", a, jids[0])
    sql(dsn, "DELETE FROM contacts WHERE account_id = $1 AND is_group", a)
    sql(dsn, "DELETE FROM chats WHERE jid = ANY($1)", jids)
    sql(dsn, "DELETE FROM leads WHERE account_id = ANY($1)", [a, b])
    assert totals(dsn)[str(a)] == {"leads": 0, "contacts": 3, "group_contacts": 0, "inbox_chats": 1}
    assert totals(dsn)[str(b)] == {"leads": 0, "contacts": 4, "group_contacts": 0, "inbox_chats": 0}


def test_a_rolled_back_write_counts_nothing(dsn: str) -> None:
    a = new_account(dsn)

    async def run() -> None:
        conn = await psqlpy.connect(dsn=dsn)
        try:
            async with conn.transaction() as tx:
                await tx.execute("INSERT INTO leads (account_id, jid) VALUES ($1, $2)", [a, jid()])
                await tx.execute("INSERT INTO chats (account_id, jid) VALUES ($1, $2)", [a, jid()])
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        finally:
            conn.close()

    asyncio.run(run())
    assert totals(dsn)[str(a)] == {"leads": 0, "contacts": 0, "group_contacts": 0, "inbox_chats": 0}


def test_account_delete_cascades_without_error_or_garbage(dsn: str) -> None:
    gone, kept = new_account(dsn, "gone"), new_account(dsn, "kept")
    for account in (gone, kept):
        jids = [jid() for _ in range(5)]
        sql(dsn, "INSERT INTO leads (account_id, jid) SELECT $1, j FROM unnest($2::text[]) j", account, jids)
        sql(dsn, "INSERT INTO contacts (account_id, jid) SELECT $1, j FROM unnest($2::text[]) j", account, jids)
        sql(dsn, "INSERT INTO chats (account_id, jid) SELECT $1, j FROM unnest($2::text[]) j", account, jids)
    sql(dsn, "DELETE FROM accounts WHERE id = $1", gone)
    after = totals(dsn)  # also: no counter row left without its account
    assert str(gone) not in after
    assert after[str(kept)] == {"leads": 5, "contacts": 5, "group_contacts": 0, "inbox_chats": 5}


def test_concurrent_creates_on_one_account_are_exact(dsn: str) -> None:
    """8 connections create a contact, a chat and a lead per transaction in one account at once, each transaction
    holding its counter slot for a while: no error, no wait on one row, exact totals."""
    account = new_account(dsn, "busy")
    workers, rounds = 8, 25

    async def worker(pool: psqlpy.ConnectionPool) -> None:
        conn = await pool.connection()
        try:
            for _ in range(rounds):
                phone = jid()
                async with conn.transaction() as tx:
                    await tx.execute("INSERT INTO contacts (account_id, jid) VALUES ($1, $2)", [account, phone])
                    await tx.execute("INSERT INTO chats (account_id, jid) VALUES ($1, $2)", [account, phone])
                    await tx.execute("INSERT INTO leads (account_id, jid) SELECT $1, j FROM unnest($2::text[]) j",
                                     [account, [phone, jid()]])
                    await tx.execute("SELECT pg_sleep(0.002)")  # overlap the transactions that hold slots
        finally:
            conn.close()

    async def run() -> None:
        pool = psqlpy.ConnectionPool(dsn=dsn, max_db_pool_size=workers)
        try:
            await asyncio.gather(*(worker(pool) for _ in range(workers)))
        finally:
            pool.close()

    asyncio.run(run())
    n = workers * rounds
    assert totals(dsn)[str(account)] == {"leads": 2 * n, "contacts": n, "group_contacts": 0, "inbox_chats": n}
    slots = sql(dsn, "SELECT count(*) AS n FROM account_counters WHERE account_id = $1", account)[0]["n"]
    assert 2 <= slots <= 16  # spread over slots (at most 16), not one row


def _migrate(dsn: str, count: int | None = None) -> list[str]:
    async def run() -> list[str]:
        db = Database(dsn, pool_size=2)
        try:
            return await migrate(db, discover()[:count] if count else None)
        finally:
            db.close()

    return asyncio.run(run())


def test_migration_backfills_existing_rows() -> None:
    name, fresh = support.create_database()
    try:
        assert _migrate(fresh, 8)[-1] == "0008"
        a, b, empty = new_account(fresh, "a"), new_account(fresh, "b"), new_account(fresh, "empty")
        suffixes = ["@s.whatsapp.net", "@g.us", "@newsletter", "@broadcast", "@lid", "@s.whatsapp.net"]
        for account, archived in ((a, False), (b, True)):
            jids = [jid(s) for s in suffixes]
            sql(fresh, "INSERT INTO leads (account_id, jid) SELECT $1, j FROM unnest($2::text[]) j", account, jids)
            sql(fresh, "INSERT INTO contacts (account_id, jid, is_group) "
                       "SELECT $1, j, j LIKE '%@g.us' FROM unnest($2::text[]) j", account, jids)
            sql(fresh, "INSERT INTO chats (account_id, jid, is_archived) "
                       "SELECT $1, j, $3 AND j = $4 FROM unnest($2::text[]) j", account, jids, archived, jids[0])
        assert _migrate(fresh) == [m.version for m in discover()[8:]]
        before = totals(fresh)
        assert before[str(a)] == {"leads": 6, "contacts": 6, "group_contacts": 1, "inbox_chats": 2}
        assert before[str(b)] == {"leads": 6, "contacts": 6, "group_contacts": 1, "inbox_chats": 1}
        assert before[str(empty)] == {"leads": 0, "contacts": 0, "group_contacts": 0, "inbox_chats": 0}
        # the triggers carry on from the back-filled rows
        sql(fresh, "INSERT INTO leads (account_id, jid) VALUES ($1, $2)", b, jid())
        sql(fresh, "DELETE FROM chats WHERE account_id = $1", a)
        after = totals(fresh)
        assert (after[str(b)]["leads"], after[str(a)]["inbox_chats"]) == (7, 0)
        # TRUNCATE (not used by the service) leaves no stale count behind
        sql(fresh, "TRUNCATE leads CASCADE")
        assert all(t["leads"] == 0 for t in totals(fresh).values())
    finally:
        support.drop_database(name)


def api_total(client: httpx.Client, tenant: Any, path: str, **params: Any) -> int:
    response = client.get(path, params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


def test_api_totals_equal_count(client: httpx.Client, make_tenant: Any, database: str) -> None:
    tenant, other = make_tenant(), make_tenant()
    for owner in (tenant, other):
        for _ in range(3):
            create_lead(client, owner, random_phone())
    account = uuid.UUID(tenant.account_id)
    jids = [jid() for _ in range(4)] + [jid("@g.us"), jid("@lid")]
    sql(database, "INSERT INTO leads (account_id, jid) SELECT $1, j FROM unnest($2::text[]) j", account, jids)
    sql(database, "INSERT INTO contacts (account_id, jid, is_group) "
                  "SELECT $1, j, j LIKE '%@g.us' FROM unnest($2::text[]) j", account, jids)
    sql(database, "INSERT INTO chats (account_id, jid, is_archived) "
                  "SELECT $1, j, j = $3 FROM unnest($2::text[]) j", account, jids, jids[0])
    expected = totals(database)[tenant.account_id]  # asserts the counters equal count(*)
    assert expected["leads"] == 9 and expected["group_contacts"] == 1 and expected["inbox_chats"] == 3

    stats = client.get("/api/stats", headers=tenant.headers)
    assert stats.status_code == 200, stats.text
    assert (stats.json()["stats"]["leads"], stats.json()["stats"]["contacts"]) == (9, expected["contacts"])
    people = expected["contacts"] - expected["group_contacts"]
    assert api_total(client, tenant, "/api/contacts", limit=1) == people
    assert api_total(client, tenant, "/api/contacts", limit=1, is_group="true") == 1
    assert api_total(client, tenant, "/api/chats", limit=1) == 3
    assert api_total(client, tenant, "/api/leads", limit=1) == 9
    assert api_total(client, tenant, "/api/leads", limit=2, offset=4) == 9
    assert api_total(client, other, "/api/leads", limit=1) == 3
    # filtered totals keep their exact count
    archived_too = sql(database, "SELECT count(*) AS n FROM chats WHERE account_id = $1 AND jid NOT LIKE '%@g.us' "
                                 "AND jid NOT LIKE '%@lid'", account)[0]["n"]
    assert api_total(client, tenant, "/api/chats", limit=1, archived="true") == archived_too == 4
    assert api_total(client, tenant, "/api/contacts", limit=1, search=jids[1]) == 1
