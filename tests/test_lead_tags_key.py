"""lead_tags.lead_created_at (0013_lead_tags_board_order.sql): every row carries its lead's created_at, whichever
path wrote it (the tag API, a contact merge moving tags, the Kommo sync, plain SQL, the bench seeder's bulk load),
and follows the lead when its created_at changes. ?tag_ids pages walk idx_lead_tags_tag_created on that key, so a
wrong key would hide or misplace a lead. Real server, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import io
import uuid
from typing import Any

import httpx

from bench import seed as bench_seed
from clarin.db.queries import query
from tests import support
from tests.leads_support import sql

STALE = """
SELECT count(*) AS n FROM lead_tags lt JOIN leads l ON l.id = lt.lead_id
WHERE lt.lead_created_at IS DISTINCT FROM l.created_at
"""


def _lead(dsn: str, account_id: str, created_at: str) -> uuid.UUID:
    return uuid.UUID(str(sql(dsn, "INSERT INTO leads (account_id, jid, created_at) VALUES ($1, $2, $3::text::timestamptz) "
                                  "RETURNING id", uuid.UUID(account_id), f"{uuid.uuid4().int % 10**11}@s.whatsapp.net",
                             created_at)[0]["id"]))


def _tag(dsn: str, account_id: str) -> uuid.UUID:
    return uuid.UUID(str(sql(dsn, "INSERT INTO tags (account_id, name, color) VALUES ($1, $2, '#000000') RETURNING id",
                             uuid.UUID(account_id), f"t-{uuid.uuid4().hex[:8]}")[0]["id"]))


def _keys(dsn: str, lead_id: uuid.UUID) -> set[str]:
    rows = sql(dsn, "SELECT lt.lead_created_at::text AS k FROM lead_tags lt WHERE lt.lead_id = $1", lead_id)
    return {r["k"] for r in rows}


def _created(dsn: str, lead_id: uuid.UUID) -> str:
    return sql(dsn, "SELECT created_at::text AS k FROM leads WHERE id = $1", lead_id)[0]["k"]


def test_every_lead_tags_writer_stores_the_leads_key(client: httpx.Client, make_tenant: Any, database: str) -> None:
    tenant = make_tenant()
    acct = uuid.UUID(tenant.account_id)
    leads = [_lead(database, tenant.account_id, f"2025-0{1 + n}-0{1 + n}T0{n}:00:00.12345{n}+00:00") for n in range(5)]
    tags = [_tag(database, tenant.account_id) for _ in range(3)]
    # plain SQL, even with a wrong key passed: the trigger reads it from the lead
    sql(database, "INSERT INTO lead_tags (lead_id, tag_id, lead_created_at) VALUES ($1, $2, '2000-01-01')",
        leads[0], tags[0])
    sql(database, "INSERT INTO lead_tags (lead_id, tag_id) VALUES ($1, $2)", leads[1], tags[0])
    # the tag API (tag_assign_lead)
    response = client.post("/api/tags/assign", headers=tenant.headers,
                           json={"tag_id": str(tags[1]), "entity_type": "lead", "entity_id": str(leads[2])})
    assert response.status_code == 200, response.text
    # a contact merge moving the duplicates' tags to the kept lead (contacts_merge_move_lead_tags)
    sql(database, str(query("contacts_merge_move_lead_tags")), acct, leads[3], [leads[0], leads[1]])
    # the Kommo sync (kommo_lead_tags_add)
    sql(database, str(query("kommo_lead_tags_add")), acct, [leads[4], leads[4]], [tags[1], tags[2]])
    for lead in leads:
        assert _keys(database, lead) == {_created(database, lead)}, lead
    assert len(sql(database, "SELECT 1 FROM lead_tags WHERE lead_id = ANY($1::uuid[])", leads)) == 6
    # a direct update of the key is undone; a lead whose created_at changes takes its rows along
    sql(database, "UPDATE lead_tags SET lead_created_at = '2001-01-01' WHERE lead_id = $1", leads[4])
    assert _keys(database, leads[4]) == {_created(database, leads[4])}
    sql(database, "UPDATE leads SET created_at = '2030-05-06T07:08:09.5+00:00' WHERE id = $1", leads[4])
    assert _keys(database, leads[4]) == {_created(database, leads[4])} == {"2030-05-06 07:08:09.5+00"}
    assert sql(database, STALE)[0]["n"] == 0
    # and the page finds the moved lead first
    page = client.get("/api/leads", params={"limit": 2, "tag_ids": str(tags[1])}, headers=tenant.headers).json()
    assert [x["id"] for x in page["leads"]] == [str(leads[4]), str(leads[2])]


def test_bench_seed_bulk_load_writes_the_key() -> None:
    """The seeder loads lead_tags with triggers off: it writes lead_created_at itself (bench_lead_tags)."""
    with support.migrated_database() as dsn:
        asyncio.run(bench_seed.seed(dsn, scale=0.002, accounts=2, vacuum=False, log=lambda _msg: None,
                                    progress_stream=io.StringIO()))
        assert sql(dsn, "SELECT count(*) AS n FROM lead_tags")[0]["n"] > 0
        assert sql(dsn, STALE)[0]["n"] == 0
