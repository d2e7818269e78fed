"""Migrations against real PostgreSQL: apply-once, concurrency under the advisory lock, checksums, indexes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from clarin.db.migrate import Migration, MigrationError, discover, migrate
from clarin.db.pool import Database
from tests import support


@pytest.fixture
def scratch_db() -> Iterator[str]:
    name, dsn = support.create_database()
    try:
        yield dsn
    finally:
        support.drop_database(name)


def _migrate(dsn: str, migrations: list[Migration] | None = None) -> list[str]:
    async def run() -> list[str]:
        db = Database(dsn, pool_size=2)
        try:
            return await migrate(db, migrations)
        finally:
            db.close()

    return asyncio.run(run())


def _recorded(dsn: str) -> list[dict[str, str]]:
    return support.run_sql(dsn, "SELECT version, name, checksum FROM schema_migrations ORDER BY version")


def _expected_records() -> list[dict[str, str]]:
    return [{"version": m.version, "name": m.name, "checksum": m.checksum} for m in discover()]


def test_cli_migrate_twice_applies_everything_once(scratch_db: str) -> None:
    env = support.base_env(scratch_db, LOG_LEVEL="INFO")
    first = support.clarin_cli("migrate", env=env)
    assert first.returncode == 0, first.stderr
    versions = [m.version for m in discover()]
    assert f"migrations applied: {', '.join(versions)}" in first.stderr
    assert _recorded(scratch_db) == _expected_records()

    second = support.clarin_cli("migrate", env=env)
    assert second.returncode == 0, second.stderr
    assert "migrations applied: none pending" in second.stderr
    assert _recorded(scratch_db) == _expected_records()
    # And through the library: nothing left to apply.
    assert _migrate(scratch_db) == []


def _parallel_cli_migrations(env: dict[str, str], count: int) -> list[tuple[int, str]]:
    procs = [
        subprocess.Popen([sys.executable, "-m", "clarin", "migrate"], env=env, cwd=support.ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    results = []
    try:
        for proc in procs:
            _out, err = proc.communicate(timeout=120)
            results.append((proc.returncode, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    return results


def test_concurrent_cli_migrations_both_succeed_with_one_record_each(scratch_db: str) -> None:
    for code, err in _parallel_cli_migrations(support.base_env(scratch_db), 2):
        assert code == 0, err
    rows = support.run_sql(scratch_db, "SELECT version, count(*) AS n FROM schema_migrations GROUP BY version")
    assert sorted(r["version"] for r in rows) == [m.version for m in discover()]
    assert all(r["n"] == 1 for r in rows)
    # The schema itself is there once (a second CREATE TABLE would have failed one of the processes).
    tables = support.run_sql(
        scratch_db, "SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public' AND tablename = 'leads'"
    )
    assert tables == [{"n": 1}]


def test_cli_migrate_always_exits_cleanly(scratch_db: str) -> None:
    """Regression: the driver's runtime threads used to abort the process at interpreter exit now and
    then (SIGABRT, exit -6) although the migration had succeeded."""
    env = support.base_env(scratch_db, LOG_LEVEL="INFO")
    assert support.clarin_cli("migrate", env=env).returncode == 0
    for code, err in _parallel_cli_migrations(env, 10):
        assert code == 0, err
        assert "migrations applied: none pending" in err


def test_edited_applied_migration_is_rejected(scratch_db: str) -> None:
    original = [Migration("0001", "widgets", "CREATE TABLE widgets (id int PRIMARY KEY);")]
    assert _migrate(scratch_db, original) == ["0001"]
    assert _migrate(scratch_db, original) == []

    edited = [Migration("0001", "widgets", "CREATE TABLE widgets (id int PRIMARY KEY, name text);")]
    with pytest.raises(MigrationError, match="0001_widgets changed after it was applied"):
        _migrate(scratch_db, [*edited, Migration("0002", "more", "CREATE TABLE more_widgets (id int);")])
    # Nothing after the rejected migration ran.
    assert [r["version"] for r in _recorded(scratch_db)] == ["0001"]
    assert support.run_sql(scratch_db, "SELECT to_regclass('more_widgets')::text AS t") == [{"t": None}]


def test_failed_migration_leaves_neither_changes_nor_record_and_releases_the_lock(scratch_db: str) -> None:
    good = Migration("0001", "base", "CREATE TABLE base_t (id int);")
    bad = Migration("0002", "broken", "CREATE TABLE half_done (id int);\nSELECT no_such_column FROM base_t;")
    with pytest.raises(Exception, match="no_such_column"):
        _migrate(scratch_db, [good, bad])
    assert [r["version"] for r in _recorded(scratch_db)] == ["0001"]
    assert support.run_sql(scratch_db, "SELECT to_regclass('half_done')::text AS t") == [{"t": None}]
    # The advisory lock was released: a corrected migration applies right away.
    fixed = Migration("0002", "broken", "CREATE TABLE half_done (id int);")
    assert _migrate(scratch_db, [good, fixed]) == ["0002"]
    locks = support.run_sql(
        scratch_db,
        "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    assert locks == [{"n": 0}]


def test_discover_rejects_bad_file_names_and_duplicate_versions(tmp_path: Path) -> None:
    (tmp_path / "0001_ok.sql").write_text("SELECT 1;")
    (tmp_path / "0002_also_ok.sql").write_text("SELECT 2;")
    found = discover(tmp_path)
    assert [(m.version, m.name) for m in found] == [("0001", "ok"), ("0002", "also_ok")]
    assert found[0].checksum != found[1].checksum

    (tmp_path / "0002_clash.sql").write_text("SELECT 3;")
    with pytest.raises(MigrationError, match="share a version"):
        discover(tmp_path)
    (tmp_path / "0002_clash.sql").unlink()
    (tmp_path / "3_Bad-Name.sql").write_text("SELECT 4;")
    with pytest.raises(MigrationError, match="bad migration file name"):
        discover(tmp_path)


def test_server_database_has_one_record_per_migration_file(server: support.ServerProcess, database: str) -> None:
    assert _recorded(database) == _expected_records()


PROMISED_INDEXES = {
    "leads": ["idx_leads_account_created_incl", "idx_leads_account_stage_created",
              "idx_leads_account_pipeline_created",
              "idx_leads_kommo_id", "idx_leads_contact"],
    "messages": ["idx_messages_chat_ts", "idx_messages_device", "idx_messages_account_sticker"],
    "chats": ["idx_chats_order", "idx_chats_account_last_message", "idx_chats_contact"],
    "contacts": ["idx_contacts_keyset", "idx_contacts_account_phone", "idx_contacts_kommo_id"],
    "user_accounts": ["idx_user_accounts_unique"],
}


def test_promised_indexes_exist(server: support.ServerProcess, database: str) -> None:
    rows = support.run_sql(
        database,
        "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
        "AND tablename = ANY($1)",
        [list(PROMISED_INDEXES)],
    )
    present = {(r["tablename"], r["indexname"]): r["indexdef"] for r in rows}
    for table, names in PROMISED_INDEXES.items():
        for name in names:
            assert (table, name) in present, f"missing index {name} on {table}"
    # Spot-check definitions, not just names.
    assert 'ON public.messages USING btree (chat_id, "timestamp" DESC, id DESC)' in present[
        ("messages", "idx_messages_chat_ts")]
    assert "is_pinned DESC, COALESCE(last_message_at, '-infinity'" in present[("chats", "idx_chats_order")]
    assert "INCLUDE (name, last_name" in present[("contacts", "idx_contacts_keyset")]
    assert present[("leads", "idx_leads_account_created_incl")].endswith(
        "(account_id, created_at DESC, id DESC) INCLUDE (name, last_name, phone, email, company, jid, pipeline_id, "
        "stage_id)")
    assert "CREATE UNIQUE INDEX" in present[("user_accounts", "idx_user_accounts_unique")]
    # pg_trgm ships with the test PostgreSQL: the optional search indexes were created too.
    trgm = {name for (_, name) in present if name.endswith("_search_trgm")}
    assert trgm == {"idx_leads_account_search_trgm"}
    # 0012: contacts' and chats' search indexes start from the account (btree_gin); the old ones are gone
    assert {name for (_, name) in present if name.endswith("_search_acct")} >= {"idx_contacts_search_acct",
                                                                                 "idx_chats_search_acct"}
    assert "USING gin (account_id," in present[("chats", "idx_chats_search_acct")]


NO_TX_INDEX = """-- migrate: no-transaction
-- A comment line that ends with a semicolon does not end a statement;
CREATE TABLE IF NOT EXISTS nt_widgets (id int PRIMARY KEY, name text);
DO $$
BEGIN
    -- a body with its own semicolons;
    IF NOT EXISTS (SELECT 1 FROM nt_widgets) THEN
        INSERT INTO nt_widgets SELECT g, 'w' || g FROM generate_series(1, 100) g;
    END IF;
END
$$;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_nt_widgets_name ON nt_widgets (name);
"""


def test_no_transaction_migration_builds_an_index_concurrently(scratch_db: str) -> None:
    migration = Migration("0001", "concurrent", NO_TX_INDEX)
    assert not migration.transactional
    assert len(migration.statements()) == 3
    # CREATE INDEX CONCURRENTLY fails inside a transaction block: applying at all proves the mode.
    assert _migrate(scratch_db, [migration]) == ["0001"]
    index = support.run_sql(scratch_db, "SELECT indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                        "WHERE c.relname = 'idx_nt_widgets_name'")
    assert index == [{"indisvalid": True}]
    assert support.run_sql(scratch_db, "SELECT count(*) AS n FROM nt_widgets") == [{"n": 100}]
    assert _migrate(scratch_db, [migration]) == []


def test_failed_no_transaction_migration_is_not_recorded_and_reruns(scratch_db: str) -> None:
    broken = Migration("0001", "idem", "-- migrate: no-transaction\nCREATE TABLE IF NOT EXISTS idem_t (id int);\n"
                                       "SELECT no_such_column FROM idem_t;\n")
    with pytest.raises(Exception, match="no_such_column"):
        _migrate(scratch_db, [broken])
    assert _recorded(scratch_db) == []
    fixed = Migration("0001", "idem", "-- migrate: no-transaction\nCREATE TABLE IF NOT EXISTS idem_t (id int);\n")
    assert _migrate(scratch_db, [fixed]) == ["0001"]


def test_migration_needing_a_missing_extension_is_skipped_and_recorded(scratch_db: str) -> None:
    migration = Migration("0001", "needs_ext", "-- migrate: requires-extensions plpgsql, no_such_extension_xyz\n"
                                               "CREATE TABLE should_not_exist (id int);\n")
    assert migration.required_extensions == ["plpgsql", "no_such_extension_xyz"]
    assert _migrate(scratch_db, [migration]) == ["0001"]
    assert support.run_sql(scratch_db, "SELECT to_regclass('should_not_exist') IS NULL AS gone") == [{"gone": True}]
    assert [r["version"] for r in _recorded(scratch_db)] == ["0001"]
