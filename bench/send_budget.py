"""What the per-number send budget costs a send (docs/NUMBER_HEALTH.md): the budget's own statements, timed
against a device whose ledger already holds ``--rows`` sends of the last day (a busy number).

    python bench/send_budget.py                 # 0, 2,000 and 20,000 ledger rows, 500 reservations each
    python bench/send_budget.py --rows 5000 -n 1000

Per reservation: ``budget.reserve`` as outbound calls it (the context read — chat + inbound probe + "opened
today" probe —, then one transaction: the device's advisory lock, the three window counts and the insert), each
to a new chat, with the limits off so none is refused. Reported: mean and p95 milliseconds, and the buffers one
``budget_reserve`` reads (EXPLAIN ANALYZE). A scratch database is created, migrated and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clarin.db.pool import Database  # noqa: E402
from clarin.db.queries import Query, parse_query_file  # noqa: E402
from clarin.whatsapp import budget  # noqa: E402

_SQL = ROOT / "bench" / "sql" / "send_budget.sql"
_QUERIES = parse_query_file(_SQL.read_text(encoding="utf-8"), _SQL.name)


def query(name: str) -> Query:
    return _QUERIES[name]

HIGH = {f"{kind}_per_{window}": 1_000_000 for kind in ("cold", "reply") for window in ("minute", "hour", "day")}
PG_ADMIN_DSN = os.environ.get("BENCH_PG_ADMIN", "postgres://postgres@127.0.0.1:5432/postgres")


async def run(dsn: str, rows: list[int], n: int) -> None:
    db = Database(dsn, 4)
    try:
        label = f"bench-{uuid.uuid4().hex[:6]}"
        account = uuid.UUID(str(await db.fetch_val(query("bench_budget_account"), [label, label])))
        for count in rows:
            device = uuid.UUID(str(await db.fetch_val(query("bench_budget_device"), [account])))
            await db.execute(query("bench_budget_fill"), [device, account, count])
            for label, limits in (("no limits (record only)", {}), ("limits 1,000,000 (every row counted)", HIGH)):
                await budget.set_budget(db, account, device, limits)
                timings = []
                for i in range(n):
                    started = time.perf_counter()
                    slot = await budget.reserve(db, account, device, f"519{i:08d}@s.whatsapp.net", defaults=False)
                    timings.append((time.perf_counter() - started) * 1000)
                    assert slot is not None
                timings.sort()
                print(f"ledger rows {count:>6}, {label}: reserve mean {statistics.mean(timings):.2f} ms, "
                      f"p95 {timings[int(len(timings) * 0.95)]:.2f} ms ({n} sends)")
            plan = await db.fetch(query("bench_budget_explain"), [device, account])
            print("    the day's cold count:", " / ".join(r["QUERY PLAN"].strip() for r in plan
                                                    if "Buffers" in r["QUERY PLAN"] or "Index" in r["QUERY PLAN"]))
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, action="append", help="ledger rows of the device (repeatable)")
    parser.add_argument("-n", type=int, default=500, help="reservations per size")
    args = parser.parse_args()
    from tests import support

    name, dsn = support.create_database()
    try:
        done = support.clarin_cli("migrate", env=support.base_env(dsn))
        assert done.returncode == 0, done.stderr
        asyncio.run(run(dsn, args.rows or [0, 2000, 20_000], args.n))
    finally:
        support.drop_database(name)


if __name__ == "__main__":
    main()
