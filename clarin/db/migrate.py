"""Ordered, checksummed, apply-once migrations under a PostgreSQL advisory lock.

Files are ``sql/migrations/NNNN_name.sql``. Each runs in its own transaction together with the row
that records it in ``schema_migrations``, so a failure leaves neither half a migration nor a record.
The session-level advisory lock makes concurrent starters wait instead of racing; whoever gets the
lock second finds the work done and applies nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from clarin.db.pool import Database
from clarin.db.queries import SQL_ROOT, query

log = logging.getLogger("clarin.migrate")

MIGRATION_LOCK_KEY = 0x434C4152494E  # "CLARIN"
# A migration that rewrites a big table can run for minutes: a line this often says it is still going.
HEARTBEAT_SECONDS = 10.0
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

Q_CREATE_TABLE = query("create_schema_migrations")
Q_LOCK = query("migration_lock")
Q_UNLOCK = query("migration_unlock")
Q_APPLIED = query("list_applied_migrations")
Q_RECORD = query("record_migration")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = SQL_ROOT / "migrations") -> list[Migration]:
    migrations: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_RE.match(path.name)
        if not match:
            raise MigrationError(f"bad migration file name {path.name!r} (want NNNN_name.sql)")
        migrations.append(Migration(match.group(1), match.group(2), path.read_text(encoding="utf-8")))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return migrations


async def migrate(db: Database, migrations: list[Migration] | None = None, *,
                  heartbeat: float = HEARTBEAT_SECONDS) -> list[str]:
    """Apply pending migrations; return the versions applied by this call.

    Logs one line per migration applied, with its position and duration, and a line every ``heartbeat``
    seconds while one is still running (a long one on a big database must not look like a hang)."""
    pending_source = discover() if migrations is None else migrations
    applied_now: list[str] = []
    async with db.connection() as conn:
        await conn.fetch(Q_LOCK, [MIGRATION_LOCK_KEY])
        try:
            await conn.execute(Q_CREATE_TABLE)
            applied = {row["version"]: row for row in await conn.fetch(Q_APPLIED)}
            for migration in pending_source:
                done = applied.get(migration.version)
                if done is not None and done["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version}_{migration.name} changed after it was applied; "
                        "add a new migration instead of editing an applied one"
                    )
            pending = [m for m in pending_source if m.version not in applied]
            for position, migration in enumerate(pending, 1):
                label = f"{migration.version}_{migration.name} ({position}/{len(pending)})"
                started = time.monotonic()
                ticker = asyncio.create_task(_heartbeat(label, started, heartbeat))
                try:
                    async with conn.transaction() as tx:
                        await tx.execute_script(migration.sql)
                        await tx.execute(Q_RECORD, [migration.version, migration.name, migration.checksum])
                finally:
                    ticker.cancel()
                log.info("applied migration %s in %.2f s", label, time.monotonic() - started)
                applied_now.append(migration.version)
        finally:
            await conn.fetch(Q_UNLOCK, [MIGRATION_LOCK_KEY])
    return applied_now


async def _heartbeat(label: str, started: float, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        log.info("migration %s still running after %.0f s", label, time.monotonic() - started)
