"""Unfiltered totals: count(*) vs the account counters (issue 17), side by side on the largest bench account.

``python -m bench.totals_explain [DSN]`` (default: the bench database) runs each pair of statements seven times
under ``EXPLAIN (ANALYZE, BUFFERS)`` and prints the blocks of the last run and the median execution time. The
count(*) side is the statement the server used before 0009_account_counters.sql: the filtered shapes with every
filter NULL (they still serve filtered lists) and, for /api/stats, the old statement, kept here verbatim.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import uuid
from typing import Any

import psqlpy

from bench.common import bench_dsn
from clarin.db.queries import query

STATS_BEFORE = """
SELECT (SELECT count(*) FROM leads WHERE account_id = $1) AS leads,
       (SELECT count(*) FROM contacts WHERE account_id = $1) AS contacts,
       (SELECT count(*) FROM devices WHERE account_id = $1 AND status = 'connected') AS connected_devices
"""
# leads_count as it was before the counters (the catch-all statement was split per filter shape since)
LEADS_COUNT_BEFORE = "SELECT count(*) AS total FROM leads l WHERE l.account_id = $1"
# the count(*) the contacts page and the chats inbox ran before the counters (their statements were split per filter
# shape since, and their filtered totals are capped: clarin/http/totals.py)
CONTACTS_COUNT_BEFORE = "SELECT count(*) AS total FROM contacts c WHERE c.account_id = $1 AND c.is_group = $2"
CHATS_COUNT_BEFORE = """
SELECT count(*) AS total
FROM chats c
WHERE c.account_id = $1 AND NOT c.is_archived
  AND c.jid NOT LIKE '%@g.us' AND c.jid NOT LIKE '%@newsletter' AND c.jid NOT LIKE '%@broadcast'
  AND c.jid NOT LIKE '%@lid'
"""
# what the pages read instead (the total's sub-select of contacts_page_unfiltered / chats_page_inbox_unfiltered)
CONTACTS_COUNTER = """
SELECT coalesce(sum(CASE WHEN $2::bool THEN a.group_contacts ELSE a.contacts - a.group_contacts END), 0)::bigint
FROM account_counters a WHERE a.account_id = $1
"""
CHATS_COUNTER = "SELECT coalesce(sum(a.inbox_chats), 0)::bigint AS total FROM account_counters a WHERE a.account_id = $1"
RUNS = 7


async def measure(conn: Any, sql: str, params: list[Any]) -> tuple[int, float]:
    times: list[float] = []
    blocks = 0
    for _ in range(RUNS):
        result = (await conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params)).result()[0]
        plan = next(iter(result.values()))
        top = (json.loads(plan) if isinstance(plan, str) else plan)[0]
        times.append(top["Execution Time"])
        blocks = top["Plan"].get("Shared Hit Blocks", 0) + top["Plan"].get("Shared Read Blocks", 0)
    return blocks, statistics.median(times)


async def main(dsn: str) -> None:
    conn = await psqlpy.connect(dsn=dsn)
    try:
        rows = (await conn.execute("SELECT l.account_id::text AS id FROM leads l GROUP BY l.account_id "
                                   "ORDER BY count(*) DESC LIMIT 1")).result()
        account = uuid.UUID(rows[0]["id"])
        cases: list[tuple[str, str, list[Any], str, list[Any]]] = [
            ("GET /api/stats", STATS_BEFORE, [account], query("stats_account_counts"), [account]),
            ("GET /api/contacts?limit=50 (its total)", CONTACTS_COUNT_BEFORE, [account, False],
             CONTACTS_COUNTER, [account, False]),
            ("GET /api/chats (inbox total)", CHATS_COUNT_BEFORE, [account], CHATS_COUNTER, [account]),
            ("leads total (GET /api/leads?limit=50)", LEADS_COUNT_BEFORE, [account],
             query("leads_count_all"), [account]),
        ]
        print(f"account {account}")
        print("| statement | count(*) blocks | count(*) ms | counters blocks | counters ms |")
        print("|---|---:|---:|---:|---:|")
        for label, before, p_before, after, p_after in cases:
            b_blocks, b_ms = await measure(conn, before, p_before)
            a_blocks, a_ms = await measure(conn, after, p_after)
            print(f"| {label} | {b_blocks:,} | {b_ms:.3f} | {a_blocks:,} | {a_ms:.3f} |")
    finally:
        conn.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else bench_dsn()))
