"""`clarin bench-seed` loads the big tables with their indexes dropped and triggers off (bench/sql/seed.sql,
bench_bulk_begin): afterwards the schema is exactly what the migrations made, the account counters the skipped
triggers would have kept equal count(*), the rows are the same for the same seed, and a trigger the seed does not
know makes it refuse, leaving nothing behind (tiny data set against real PostgreSQL)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from typing import Any

import pytest

from bench import seed as bench_seed
from tests import support
from tests.test_account_counters import totals

SCHEMA = """
SELECT 'index' AS kind, tablename || '.' || indexname AS name, indexdef AS def
FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'constraint', conrelid::regclass::text || '.' || conname,
       pg_get_constraintdef(oid) || CASE WHEN convalidated THEN '' ELSE ' (not valid)' END
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'trigger', tgrelid::regclass::text || '.' || tgname, tgenabled::text
FROM pg_trigger WHERE NOT tgisinternal
ORDER BY 1, 2
"""
# Every row of the seeded tables, as text, in a stable order: equal digests = the same data set.
DIGEST = "SELECT md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) AS h FROM {table} x"
TABLES = ("accounts", "contacts", "contact_tags", "leads", "lead_tags", "chats", "messages", "events",
          "event_participants", "interactions", "account_counters")


def _seed(dsn: str, *, force: bool = False) -> dict[str, int]:
    return asyncio.run(bench_seed.seed(dsn, scale=0.002, accounts=3, force=force, vacuum=False,
                                       log=lambda _msg: None, progress_stream=io.StringIO()))


def _schema(dsn: str) -> list[dict[str, Any]]:
    return support.run_sql(dsn, SCHEMA)


def _digests(dsn: str) -> dict[str, str]:
    # account_counters: the sums per account (the slot a trigger writes to depends on the backend).
    out = {t: support.run_sql(dsn, DIGEST.format(table=t))[0]["h"] for t in TABLES if t != "account_counters"}
    out["account_counters"] = str(totals(dsn))
    return out


@pytest.fixture
def migrated() -> Iterator[str]:
    with support.migrated_database() as dsn:
        yield dsn


def test_bulk_load_restores_the_schema_and_the_counters_the_triggers_would_have_kept(migrated: str) -> None:
    before = _schema(migrated)
    counts = _seed(migrated)
    assert counts["messages"] > 0 and counts["leads"] > 0
    # Every index, constraint (foreign keys of other tables on a dropped index included) and trigger is back.
    assert _schema(migrated) == before
    per_account = totals(migrated)  # asserts sum(counter slots) == count(*) for every account and kind
    assert sum(t["leads"] for t in per_account.values()) == counts["leads"]
    assert sum(t["contacts"] for t in per_account.values()) == counts["contacts"]
    assert sum(t["inbox_chats"] for t in per_account.values()) > 0
    # The chats carry their newest message.
    stale = support.run_sql(migrated, """
        SELECT count(*) AS n FROM chats ch
        WHERE ch.last_message_at IS DISTINCT FROM (SELECT max(m."timestamp") FROM messages m WHERE m.chat_id = ch.id)
    """)
    assert stale[0]["n"] == 0
    # The chats carry their contact's search text and card (0014/0018 triggers), NULL without a contact.
    unlike = support.run_sql(migrated, """
        SELECT count(*) AS n FROM chats ch LEFT JOIN contacts k ON k.account_id = ch.account_id AND k.jid = ch.jid
        WHERE (ch.contact_search, ch.contact_phone, ch.contact_avatar_url, ch.contact_custom_name, ch.contact_name)
              IS DISTINCT FROM (CASE WHEN k.id IS NULL THEN NULL ELSE contact_search_text(
                  k.name, k.last_name, k.short_name, k.custom_name, k.push_name, k.phone, k.jid, k.email, k.company)
                  END, k.phone, k.avatar_url, k.custom_name, k.name)
    """)
    assert unlike[0]["n"] == 0
    # Same seed, same rows: --force deletes the seed's accounts and loads them again.
    first = _digests(migrated)
    _seed(migrated, force=True)
    assert _digests(migrated) == first
    assert _schema(migrated) == before


def test_an_unknown_trigger_makes_the_seed_refuse_and_leaves_nothing(migrated: str) -> None:
    support.run_sql(migrated, "CREATE FUNCTION bench_probe() RETURNS trigger LANGUAGE plpgsql "
                              "AS $$ BEGIN RETURN NULL; END $$")
    support.run_sql(migrated, "CREATE TRIGGER bench_probe AFTER INSERT ON leads "
                              "FOR EACH ROW EXECUTE FUNCTION bench_probe()")
    before = _schema(migrated)
    with pytest.raises(Exception, match="bench_probe"):
        _seed(migrated)
    assert support.run_sql(migrated, "SELECT count(*) AS n FROM accounts")[0]["n"] == 0
    assert _schema(migrated) == before
