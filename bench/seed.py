"""Deterministic, realistic benchmark data, fast (``python -m bench.seed`` or ``clarin bench-seed``).

50 accounts. Account 0 ("Bench Large", user ``bench_large``) has 100k leads in 2 pipelines / 12 stages,
30k contacts, 200 tags with ~3 per lead, 5k chats, 1M messages (skewed: the busiest chat holds ~14k), 500
events with 50k participants and 200k interactions. The 49 others are small tenants (2k leads, 1k
contacts, 300 chats, 5k messages, ...) so every query has to pick its tenant out of a shared table. Each account has
one admin user, plus the super admin ``bench_admin``; all share the password ``bench-pass-123`` (hashed
once). Ids and values derive from ``--seed`` only (hashes of seed + kind + account + index; md5 for the accounts,
users and devices; times relative to a fixed anchor), so two runs with the same seed produce identical rows.

Everything is set-based SQL (``bench/sql/seed.sql``: INSERT … SELECT over generate_series) in ONE
transaction, so a failure leaves nothing behind, then VACUUM ANALYZE. The load goes the pg_restore way: triggers
off (the foreign keys' too; ``account_counters`` is then filled set-based with what the triggers would have
added) and the big tables' indexes dropped, rebuilt afterwards from their catalog definitions (sorted, parallel
workers). ``--scale 10`` (1M leads in the large account, 12M messages) takes ~4.6 minutes on 2 cores instead of ~21.
Re-running on a seeded database does nothing unless ``--force``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import astuple, dataclass, replace
from datetime import UTC, datetime
from typing import Any, TextIO

if __package__ in (None, ""):  # ``python bench/seed.py``
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import BENCH_PASSWORD, DEFAULT_SEED, LARGE_USER, SUPER_ADMIN, Timer, bench_dsn, load_sql
from clarin.progress import Progress

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)  # "now" of the data set: every timestamp hangs off it
ACCOUNTS = 50
VACUUM_TABLES = ("accounts", "users", "user_accounts", "devices", "pipelines", "pipeline_stages", "tags",
                 "contacts", "contact_tags", "leads", "lead_tags", "chats", "messages", "events",
                 "event_participants", "interactions")


@dataclass(frozen=True)
class Sizes:
    leads: int
    contacts: int
    tags: int
    chats: int
    messages: int
    events: int
    participants_per_event: int
    interactions: int

    def scaled(self, factor: float) -> Sizes:
        if factor == 1.0:
            return self
        return replace(self, **{k: max(1, int(v * factor)) if v else 0 for k, v in self.__dict__.items()
                                if k not in ("tags", "participants_per_event")})


LARGE = Sizes(leads=100_000, contacts=30_000, tags=200, chats=5_000, messages=1_000_000, events=500,
              participants_per_event=100, interactions=200_000)
# The other tenants are small but not empty: the large account is ~half of leads, a third of contacts, a quarter
# of chats and 80 % of messages, so every query has to pick its tenant out of a shared table.
SMALL = Sizes(leads=2_000, contacts=1_000, tags=20, chats=300, messages=5_000, events=5, participants_per_event=20,
              interactions=2_000)

STEPS = ("accounts", "users", "memberships", "devices", "pipelines", "stages", "tags", "contacts", "contact_tags",
         "leads", "lead_tags", "chats")
STEPS_AFTER = ("events", "participants", "interactions")
# The big tables: loaded without their indexes (rebuilt after, messages' first: chat_last_msg reads one).
BULK_TABLES = ("messages", "contacts", "contact_tags", "leads", "lead_tags", "chats", "event_participants",
               "interactions")


def step_names(accounts: int = ACCOUNTS, vacuum: bool = True) -> list[str]:
    """The progress steps, in order (one line each in logs)."""
    messages = ["messages[0]"] + ([f"messages[1-{accounts - 1}]"] if accounts > 1 else [])
    return ["drop_indexes", *STEPS, *messages, "index[messages]", "chat_last_msg", *STEPS_AFTER,
            *(f"index[{t}]" for t in BULK_TABLES[1:]), "counters", "commit", *(["vacuum+analyze"] if vacuum else []),
            "count"]


def _log(msg: str) -> None:
    print(msg, flush=True)


async def seed(dsn: str, *, seed_value: int = DEFAULT_SEED, scale: float = 1.0, accounts: int = ACCOUNTS,
               force: bool = False, vacuum: bool = True, log: Any = _log,
               progress_stream: TextIO | None = None) -> dict[str, int]:
    """Seed ``dsn`` (already migrated). Returns the row counts of the seed's accounts."""
    import psqlpy

    from clarin.auth.passwords import hash_password_sync

    sql = load_sql("seed")
    large, small = LARGE.scaled(scale), SMALL.scaled(scale)
    pool = psqlpy.ConnectionPool(dsn=dsn, max_db_pool_size=2)
    conn = await pool.connection()
    try:
        existing = (await conn.execute(sql["bench_seeded_leads"], [seed_value])).result()[0]["n"]
        if existing and not force:
            log(f"bench-seed: {dsn.rsplit('/', 1)[1]} already holds seed {seed_value} "
                f"({existing} leads in the large account); --force to rebuild")
            return {}
        total = Timer()
        if existing:
            gone = (await conn.execute(sql["bench_delete_accounts"], [seed_value, accounts])).result()[0]["n"]
            log(f"bench-seed: removed {gone} accounts of seed {seed_value} (--force)")
        password_hash = hash_password_sync(BENCH_PASSWORD)
        # One step per statement; on a terminal a redrawn bar, in logs a line per step with its duration.
        progress = Progress("bench-seed", len(step_names(accounts, vacuum)), unit="steps", stream=progress_stream,
                            every_percent=0)
        tx = conn.transaction()
        await tx.begin()
        try:
            # Index builds sort in memory with two parallel workers (the machine has the RAM; the session only).
            await tx.execute_batch("SET LOCAL synchronous_commit = off; SET LOCAL work_mem = '256MB'; "
                                   "SET LOCAL maintenance_work_mem = '1GB'; "
                                   "SET LOCAL max_parallel_maintenance_workers = 2")
            await tx.execute_batch(sql["bench_helpers"])
            await tx.execute(sql["bench_plan_create"],
                             [seed_value, accounts, ANCHOR, *astuple(large), *astuple(small)])
            step = Timer()
            # Triggers off (recomputed by bench_account_counters) and the bulk tables' indexes dropped until the
            # index[...] steps: the bulk load only appends rows.
            await tx.execute(sql["bench_bulk_begin"], [list(VACUUM_TABLES), list(BULK_TABLES)])
            progress.advance(1, f"drop_indexes {step.lap():.1f} s")
            for name in STEPS:
                params = [password_hash] if name == "users" else None
                await tx.execute(sql[f"bench_{name}"], params)
                progress.advance(1, f"{name} {step.lap():.1f} s")
            # Messages: the large account alone, then the small ones (80 % of the rows: progress you can watch).
            for lo, hi in ((0, 0), (1, accounts - 1)):
                if lo > hi:
                    continue
                await tx.execute(sql["bench_messages"], [lo, hi])
                label = "messages[0]" if lo == 0 else f"messages[{lo}-{hi}]"
                progress.advance(1, f"{label} {step.lap():.1f} s")
            await tx.execute(sql["bench_bulk_index"], [BULK_TABLES[0]])
            progress.advance(1, f"index[{BULK_TABLES[0]}] {step.lap():.1f} s")
            await tx.execute(sql["bench_chat_last_message"])
            await tx.execute(sql["bench_chat_contact_search"])  # the 0014 trigger's column (triggers are off)
            progress.advance(1, f"chat_last_msg {step.lap():.1f} s")
            for name in STEPS_AFTER:
                await tx.execute(sql[f"bench_{name}"])
                progress.advance(1, f"{name} {step.lap():.1f} s")
            for table in BULK_TABLES[1:]:
                await tx.execute(sql["bench_bulk_index"], [table])
                progress.advance(1, f"index[{table}] {step.lap():.1f} s")
            await tx.execute(sql["bench_bulk_index"], [None])  # not a superuser: the triggers back on
            await tx.execute(sql["bench_account_counters"])
            progress.advance(1, f"counters {step.lap():.1f} s")
            await tx.commit()
        except BaseException:
            await tx.rollback()
            progress.close("failed")
            raise
        progress.advance(1, f"commit {step.lap():.1f} s")
        if vacuum:
            # VACUUM sets the visibility map (index-only scans for counts), ANALYZE the planner statistics.
            # Two connections: messages (most of the pages) on one, the other tables on the other.
            conn2 = await pool.connection()
            try:
                await asyncio.gather(
                    conn.execute_batch("VACUUM (ANALYZE) messages"),
                    conn2.execute_batch("VACUUM (ANALYZE) " + ", ".join(t for t in VACUUM_TABLES if t != "messages")))
            finally:
                conn2.close()
            progress.advance(1, f"vacuum+analyze {step.lap():.1f} s")
        counts = (await conn.execute(sql["bench_counts"], [seed_value, accounts])).result()[0]
        progress.advance(1, f"count {step.lap():.1f} s")
        progress.close()
        counts = {k: int(v) for k, v in counts.items()}
        log(f"bench-seed: seed {seed_value}, scale {scale}: "
            + ", ".join(f"{v:,} {k}" for k, v in counts.items())
            + f" in {total.lap():.1f} s")
        log(f"bench-seed: log in as {LARGE_USER!r} (large account) or {SUPER_ADMIN!r} (super admin), "
            f"password {BENCH_PASSWORD!r}")
        return counts
    finally:
        conn.close()
        pool.close()
        await asyncio.sleep(0.1)  # let psqlpy's runtime finish closing before the loop goes away


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clarin bench-seed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None,
                        help="target database (default: BENCH_DATABASE_URL, else the clarin_bench database; "
                             "created and migrated when missing)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed value (default %(default)s)")
    parser.add_argument("--scale", type=float, default=float(os.environ.get("BENCH_SCALE", "1") or 1),
                        help="multiply every row count (default 1 = the full data set)")
    parser.add_argument("--accounts", type=int, default=ACCOUNTS, help="number of accounts (default %(default)s)")
    parser.add_argument("--force", action="store_true", help="delete this seed's accounts first and re-seed")
    parser.add_argument("--no-vacuum", action="store_true", help="skip VACUUM ANALYZE at the end")
    return parser


def main(argv: list[str] | None = None) -> int:
    from bench import common

    args = build_parser().parse_args(argv)
    dsn = args.database_url or bench_dsn()
    started = time.perf_counter()
    if not common.database_exists(dsn):
        print(f"bench-seed: creating database {common.database_name(dsn)}", flush=True)
        common.create_database(dsn)
    common.migrate(dsn)
    asyncio.run(seed(dsn, seed_value=args.seed, scale=args.scale, accounts=args.accounts, force=args.force,
                     vacuum=not args.no_vacuum))
    print(f"bench-seed: done in {time.perf_counter() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    common_exit = __import__("bench.common", fromlist=["exit_now"]).exit_now
    common_exit(main())
