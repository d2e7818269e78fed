"""A Kommo sync killed midway loses no webhook (issue 15, docs/WEBHOOKS.md "Durability"; 0007_kommo_unannounced).

One ``kommo_synced`` summary covers a sync of many page transactions. For an account with a webhook subscription
each page counts its changed leads in the database in its own transaction; the summary's outbox rows are written
where that count is taken. Killing the sync after some pages and re-running it: the summaries in the outbox add
up to every lead of the pipeline (the killed run's pages are announced by the re-run, which finds those leads
unchanged), and nothing is left counted. Real PostgreSQL/Redis and the fake Kommo server.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from clarin.kommo.poller import KommoService, TaskKey
from clarin.webhooks.outbox import Outbox
from tests import kommo_support as ks
from tests import support
from tests.fake_kommo import MAIN_PIPELINE, FakeKommo, generate


@pytest.fixture(scope="module")
def dsn(services: None) -> Iterator[str]:
    with ks.migrated_database() as url:
        yield url


def with_outbox(service: KommoService) -> KommoService:
    state = service.state
    state.broadcaster.outbox = Outbox(state.db, state.redis, f"kommo-hooks-{uuid.uuid4().hex[:8]}")
    return service


def test_a_killed_sync_leaves_its_count_to_the_next_summary(dsn: str) -> None:
    data = generate(3000, seed=23)
    account = ks.create_account(dsn, "Kommo hooks")
    support.run_sql(dsn, "INSERT INTO webhooks (account_id, url, events, secret) VALUES ($1, $2, $3, $4)",
                    [account, "http://127.0.0.1:9/hook", ["*"], "whsec_kommo_test_0123456789"])
    key = TaskKey(account, MAIN_PIPELINE)
    with FakeKommo(data) as fake:
        async def main() -> tuple[int, Any]:
            async with ks.kommo_service(dsn, fake.url, KOMMO_RATE_LIMIT="20") as first, \
                    ks.kommo_service(dsn, fake.url) as second:
                with_outbox(first)
                with_outbox(second)
                await ks.connect(first, account, MAIN_PIPELINE)
                task = asyncio.create_task(first.run_task(key, full=True))
                for _ in range(2000):
                    if fake.count("/leads") >= 5:
                        break
                    await asyncio.sleep(0.01)
                task.cancel()  # killed midway: no summary of its own
                await asyncio.wait([task])
                partial = (await second.state.db.fetch_row(
                    "SELECT count(*)::int AS n FROM leads WHERE account_id = $1 AND kommo_id IS NOT NULL",
                    [account]))["n"]
                return partial, await second.run_task(key)

        partial, restarted = asyncio.run(main())
    total = sum(1 for lead in data.leads.values() if lead["pipeline_id"] == MAIN_PIPELINE)
    assert 0 < partial < total and restarted is not None and restarted.changed == total - partial
    rows = support.run_sql(dsn, "SELECT data FROM webhook_deliveries WHERE account_id = $1 AND event = 'lead_update' "
                                "ORDER BY seq", [account])
    summaries = [json.loads(row["data"]) for row in rows]
    assert summaries and all(s["action"] == "kommo_synced" and s["pipeline_id"] == MAIN_PIPELINE for s in summaries)
    assert sum(s["count"] for s in summaries) == total  # the killed run's pages included
    left = support.run_sql(dsn, "SELECT unannounced FROM kommo_connected_pipelines WHERE account_id = $1", [account])
    assert left == [{"unannounced": 0}]
