"""`clarin migrate` says what it applies: a line per migration with its position and duration, and a
heartbeat while a long one runs (against real PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator

import pytest

from clarin.db.migrate import Migration, discover, migrate
from clarin.db.pool import Database
from tests import support

APPLIED_RE = re.compile(r"applied migration (\d{4})_([a-z0-9_]+) \((\d+)/(\d+)\) in (\d+\.\d\d) s$")


@pytest.fixture
def scratch_db() -> Iterator[str]:
    name, dsn = support.create_database()
    try:
        yield dsn
    finally:
        support.drop_database(name)


def test_cli_migrate_prints_one_line_per_applied_migration_with_its_duration(scratch_db: str) -> None:
    env = support.base_env(scratch_db, LOG_LEVEL="INFO")
    first = support.clarin_cli("migrate", env=env)
    assert first.returncode == 0, first.stderr
    found = [m.groups() for line in first.stderr.splitlines() if (m := APPLIED_RE.search(line))]
    files = discover()
    assert [(v, n) for v, n, *_ in found] == [(m.version, m.name) for m in files], first.stderr
    assert [(int(i), int(n)) for _, _, i, n, _ in found] == [(i, len(files)) for i in range(1, len(files) + 1)]
    assert all(float(seconds) < 60 for *_, seconds in found)

    again = support.clarin_cli("migrate", env=env)
    assert again.returncode == 0, again.stderr
    assert "applied migration" not in again.stderr
    assert "migrations applied: none pending" in again.stderr


def test_a_long_migration_logs_that_it_is_still_running(scratch_db: str, caplog: pytest.LogCaptureFixture) -> None:
    slow = [Migration("0001", "slow", "CREATE TABLE t (x int); SELECT pg_sleep(1.3);")]

    async def run() -> list[str]:
        db = Database(scratch_db, pool_size=2)
        try:
            return await migrate(db, slow, heartbeat=0.4)
        finally:
            db.close()

    with caplog.at_level(logging.INFO, logger="clarin.migrate"):
        assert asyncio.run(run()) == ["0001"]
    messages = [r.getMessage() for r in caplog.records if r.name == "clarin.migrate"]
    still = [m for m in messages if m.startswith("migration 0001_slow (1/1) still running after ")]
    assert len(still) >= 2, messages
    assert APPLIED_RE.search(messages[-1]) and float(APPLIED_RE.search(messages[-1]).group(5)) >= 1.3  # type: ignore[union-attr]
    # The heartbeat stops with the migration: nothing is logged after the closing line.
    assert messages.index(still[-1]) < len(messages) - 1
