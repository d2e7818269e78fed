"""The scheduled-message statements on a large table (docs/SCHEDULED_MESSAGES.md): plans and buffers.

    python bench/scheduled.py                      # 200,000 rows over 50 devices, 500 due now
    python bench/scheduled.py --rows 1000000 --devices 200

A scratch database is created, migrated, filled (90 % history: sent / failed / cancelled; 10 % pending over the
next 30 days; ``--due`` rows due now) and dropped. Each statement of sql/queries/scheduled_messages.sql the sender
and the routes run is executed under ``EXPLAIN (ANALYZE, BUFFERS)`` (writes inside a rolled-back transaction), as
the sender runs it for 10 of the devices (a process running 10 numbers). Reported: execution ms, shared blocks,
and whether a Seq Scan appears.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psqlpy  # noqa: E402

from clarin.config import Settings  # noqa: E402
from clarin.db.queries import parse_query_file, query  # noqa: E402

_SQL = ROOT / "bench" / "sql" / "scheduled.sql"
_BENCH = parse_query_file(_SQL.read_text(encoding="utf-8"), _SQL.name)


def _blocks(plan: dict[str, Any]) -> int:
    return int(plan.get("Shared Hit Blocks", 0)) + int(plan.get("Shared Read Blocks", 0))


def _seq_scans(plan: dict[str, Any]) -> list[str]:
    found = [plan.get("Relation Name", "?")] if plan.get("Node Type") == "Seq Scan" else []
    for child in plan.get("Plans", []):
        found += _seq_scans(child)
    return found


async def explain(conn: Any, name: str, params: list[Any]) -> None:
    sql = str(query(name))
    await conn.execute("BEGIN")
    try:
        rows = (await conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params)).result()
    finally:
        await conn.execute("ROLLBACK")
    doc = rows[0]["QUERY PLAN"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    top = doc[0]
    seq = _seq_scans(top["Plan"])
    print(f"  {name:<28} {top['Execution Time']:8.2f} ms  {_blocks(top['Plan']):6d} blocks  "
          f"rows {top['Plan'].get('Actual Rows', 0):>5}  {'seq scan of ' + ','.join(seq) if seq else 'no seq scan'}")


async def run(dsn: str, rows: int, devices: int, due: int) -> None:
    pool = psqlpy.ConnectionPool(dsn=dsn, max_db_pool_size=2)
    conn = await pool.connection()
    try:
        label = f"bench-{uuid.uuid4().hex[:6]}"
        account = (await conn.execute(_BENCH["bench_scheduled_account"], [label, label])).result()[0]["id"]
        account = uuid.UUID(str(account))
        ids = [uuid.UUID(str(r["id"])) for r in
               (await conn.execute(_BENCH["bench_scheduled_devices"], [account, devices])).result()]
        await conn.execute(_BENCH["bench_scheduled_fill"], [account, ids, rows, due])
        await conn.execute(_BENCH["bench_scheduled_analyze"])
        owned = ids[:10]
        print(f"{rows:,} scheduled rows + {due} due now over {devices} devices; the sender runs {len(owned)} of them")
        await explain(conn, "scheduled_claim_due", [owned, 50])
        await explain(conn, "scheduled_next_due", [owned])
        await explain(conn, "scheduled_sending_on_device", [owned[0]])
        await explain(conn, "scheduled_page", [account, 100, 0])
        await explain(conn, "scheduled_page_status", [account, "pending", 100, 0])
        cap = Settings().total_count_cap + 1  # as the server counts a list's total
        await explain(conn, "scheduled_count", [account, cap])
        await explain(conn, "scheduled_count_status", [account, "pending", cap])
    finally:
        conn.close()
        pool.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--due", type=int, default=500)
    args = parser.parse_args()
    from tests import support

    name, dsn = support.create_database()
    try:
        done = support.clarin_cli("migrate", env=support.base_env(dsn))
        assert done.returncode == 0, done.stderr
        asyncio.run(run(dsn, args.rows, args.devices, args.due))
    finally:
        support.drop_database(name)


if __name__ == "__main__":
    main()
