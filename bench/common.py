"""Shared plumbing of the benchmark scripts: DSNs, bench SQL files, the bench database, a psqlpy session.

The bench scripts keep their own SQL in ``bench/sql/*.sql`` (same ``-- name:`` format as
``sql/queries``, parsed by the same parser); the server's statements come from
``clarin.db.queries.REGISTRY`` so EXPLAIN sees exactly what the server runs.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
SQL_DIR = BENCH_DIR / "sql"
RESULTS_DIR = BENCH_DIR / "results"

PG_ADMIN_DSN = os.environ.get("BENCH_PG_ADMIN", "postgres://postgres@127.0.0.1:5432/postgres")
DEFAULT_DB = "clarin_bench"
BENCH_PASSWORD = "bench-pass-123"
LARGE_USER = "bench_large"
SUPER_ADMIN = "bench_admin"
DEFAULT_SEED = 42

T = TypeVar("T")


def bench_dsn() -> str:
    """``BENCH_DATABASE_URL``, else the ``clarin_bench`` database next to the admin DSN."""
    explicit = os.environ.get("BENCH_DATABASE_URL", "").strip()
    return explicit or PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + DEFAULT_DB


def database_name(dsn: str) -> str:
    return dsn.rsplit("/", 1)[1].split("?", 1)[0]


def admin_dsn_for(dsn: str) -> str:
    return dsn.rsplit("/", 1)[0] + "/postgres"


def load_sql(name: str) -> dict[str, str]:
    """The named statements of ``bench/sql/<name>.sql``."""
    from clarin.db.queries import parse_query_file

    path = SQL_DIR / f"{name}.sql"
    return {k: str(v) for k, v in parse_query_file(path.read_text(encoding="utf-8"), path.name).items()}


def run_async(fn: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(fn())  # type: ignore[arg-type]


async def run_script(dsn: str, sql: str) -> None:
    """A statement the extended protocol refuses (VACUUM), on a short-lived connection."""
    import psqlpy

    pool = psqlpy.ConnectionPool(dsn=dsn, max_db_pool_size=2)
    try:
        conn = await pool.connection()
        try:
            await conn.execute_batch(sql)
        finally:
            conn.close()
    finally:
        pool.close()


async def fetch(dsn: str, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    """One statement on a short-lived connection."""
    import psqlpy

    pool = psqlpy.ConnectionPool(dsn=dsn, max_db_pool_size=2)
    try:
        conn = await pool.connection()
        try:
            return (await conn.execute(sql, params)).result()
        finally:
            conn.close()
    finally:
        pool.close()


def database_exists(dsn: str) -> bool:
    sql = load_sql("admin")
    rows = asyncio.run(fetch(admin_dsn_for(dsn), sql["bench_database_exists"], [database_name(dsn)]))
    return bool(rows and rows[0]["exists"])


def create_database(dsn: str) -> None:
    """CREATE DATABASE cannot take a bind parameter; the name is checked to be a plain identifier."""
    name = database_name(dsn)
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"refusing to create a database named {name!r}")
    asyncio.run(fetch(admin_dsn_for(dsn), f"CREATE DATABASE {name}"))


def migrate(dsn: str) -> None:
    env = {**os.environ, "DATABASE_URL": dsn, "LOG_LEVEL": "WARNING", "REDIS_URL": "off"}
    done = subprocess.run([sys.executable, "-m", "clarin", "migrate"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"clarin migrate failed:\n{done.stdout}\n{done.stderr}")


def ensure_database(dsn: str, *, seed_value: int = DEFAULT_SEED, scale: float = 1.0) -> None:
    """Create + migrate + seed the bench database when it is missing or not seeded (idempotent)."""
    from bench import seed as bench_seed

    if not database_exists(dsn):
        print(f"bench: creating database {database_name(dsn)}", flush=True)
        create_database(dsn)
    migrate(dsn)
    asyncio.run(bench_seed.seed(dsn, seed_value=seed_value, scale=scale))


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        elapsed, self.start = now - self.start, now
        return elapsed


def exit_now(code: int) -> None:
    """Leave without interpreter finalization (psqlpy's runtime threads may abort it; see clarin.cli)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
