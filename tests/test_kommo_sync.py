"""Kommo → Clarin sync against the fake Kommo server, real PostgreSQL and real Redis (in-process service)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from clarin.cache import leads_key
from clarin.kommo.locks import pipeline_key
from clarin.kommo.poller import TaskKey
from tests import kommo_support as ks
from tests import support
from tests.fake_kommo import MAIN_PIPELINE, SECOND_PIPELINE, Dataset, FakeKommo, generate


@pytest.fixture(scope="module")
def dsn(services: None) -> Iterator[str]:
    with ks.migrated_database() as url:
        yield url


def sql(dsn: str, statement: str, *params: Any) -> list[dict[str, Any]]:
    return support.run_sql(dsn, statement, list(params) or None)


def lead_count(dsn: str, account: uuid.UUID) -> int:
    return sql(dsn, "SELECT count(*)::int AS n FROM leads WHERE account_id = $1", account)[0]["n"]


def cursor(dsn: str, account: uuid.UUID, kommo_pipeline_id: int) -> Any:
    rows = sql(dsn, "SELECT last_synced_at FROM kommo_connected_pipelines WHERE account_id = $1 "
                    "AND kommo_pipeline_id = $2", account, kommo_pipeline_id)
    return rows[0]["last_synced_at"] if rows else None


async def acursor(service: Any, account: uuid.UUID, kommo_pipeline_id: int) -> Any:
    return await service.state.db.fetch_val(
        "SELECT last_synced_at FROM kommo_connected_pipelines WHERE account_id = $1 AND kommo_pipeline_id = $2",
        [account, kommo_pipeline_id])


def pipeline_leads(data: Dataset, kommo_pipeline_id: int) -> int:
    return sum(1 for lead in data.leads.values() if lead["pipeline_id"] == kommo_pipeline_id)


# -- full sync -----------------------------------------------------------------------------------------------
def test_full_sync_of_10k_leads_matches_kommo_exactly(dsn: str) -> None:
    data = generate(10_000, seed=1)
    account = ks.create_account(dsn)
    with FakeKommo(data) as fake:
        async def main() -> tuple[dict[str, Any], ks.EventSink, Any]:
            async with ks.kommo_service(dsn, fake.url) as service:
                sink = ks.listen(service, account)
                await ks.connect(service, account, MAIN_PIPELINE)
                await ks.connect(service, account, SECOND_PIPELINE)
                await service.state.cache.set(leads_key(service.state.settings.redis_prefix, account), b"stale", 30)
                status = await ks.full_sync(service, account)
                cached = await service.state.cache.get(leads_key(service.state.settings.redis_prefix, account))
                await asyncio.sleep(0.05)
                return status, sink, cached

        status, sink, cached = asyncio.run(main())
    _, want_contacts = ks.expected(data, [MAIN_PIPELINE, SECOND_PIPELINE])
    assert status["progress"] == "Completado" and "error" not in status
    result = status["result"]
    assert {k: result[k] for k in ("pipelines", "stages", "tags", "leads", "contacts")} == {
        "pipelines": 2, "stages": 0, "tags": 30, "leads": 10_000, "contacts": len(want_contacts)}
    assert "errors" not in result and result["duration"].endswith("s")
    ks.assert_matches(dsn, account, data, [MAIN_PIPELINE, SECOND_PIPELINE])
    assert cached is None  # the leads cache was dropped
    assert sorted(sink.events("lead_update"), key=lambda e: e["pipeline_id"]) == [
        {"action": "kommo_synced", "pipeline_id": MAIN_PIPELINE, "count": pipeline_leads(data, MAIN_PIPELINE)},
        {"action": "kommo_synced", "pipeline_id": SECOND_PIPELINE, "count": pipeline_leads(data, SECOND_PIPELINE)},
    ]
    # Pipelines and stages (A.8): one default per account — the Kommo main pipeline; 142/143 skipped;
    # position = index in Kommo's array; a colour without '#' becomes the default.
    pipelines = sql(dsn, "SELECT name, is_default, kommo_id FROM pipelines WHERE account_id = $1 ORDER BY name",
                    account)
    assert [(p["name"], p["is_default"], p["kommo_id"]) for p in pipelines] == [
        ("Pipeline Principal", False, None), ("Postventa", False, SECOND_PIPELINE), ("Ventas", True, MAIN_PIPELINE)]
    stages = sql(dsn, "SELECT ps.kommo_id, ps.name, ps.color, ps.position FROM pipeline_stages ps "
                      "JOIN pipelines p ON p.id = ps.pipeline_id WHERE p.account_id = $1 AND p.kommo_id = $2 "
                      "ORDER BY ps.position", account, MAIN_PIPELINE)
    kommo_statuses = data.pipelines[MAIN_PIPELINE]["statuses"]
    assert [(s["kommo_id"], s["name"], s["color"], s["position"]) for s in stages] == [
        (st["id"], st["name"], st["color"] if st["color"].startswith("#") else "#6366f1", i)
        for i, st in enumerate(kommo_statuses) if st["id"] not in (142, 143)]
    tags = sql(dsn, "SELECT name, kommo_id, color FROM tags WHERE account_id = $1", account)
    assert {t["kommo_id"]: t["name"] for t in tags} == data.tags
    assert {t["color"] for t in tags} == {"#6366f1"}


def test_incremental_sync_picks_up_only_changes(dsn: str) -> None:
    data = generate(1000, seed=5)
    account = ks.create_account(dsn)
    main_ids = sorted(k for k, v in data.leads.items() if v["pipeline_id"] == MAIN_PIPELINE)
    renamed, moved, retagged, untagged = main_ids[1], main_ids[2], main_ids[3], main_ids[4]
    new_status = next(s["id"] for s in data.pipelines[MAIN_PIPELINE]["statuses"]
                      if s["id"] not in (142, 143, data.leads[moved]["status_id"]))
    key = TaskKey(account, MAIN_PIPELINE)
    with FakeKommo(data) as fake:
        async def main() -> tuple[Any, ...]:
            async with ks.kommo_service(dsn, fake.url) as service:
                sink = ks.listen(service, account)
                await ks.connect(service, account, MAIN_PIPELINE)
                first = await service.run_task(key, full=True)
                synced_at = await acursor(service, account, MAIN_PIPELINE)
                fake.touch_lead(renamed, name="Renombrado")
                fake.touch_lead(moved, status_id=new_status)
                fake.data.tags[5999] = "nueva-etiqueta"
                fake.touch_lead(retagged, tags=[5999, 5001])
                old_tags = sorted(data.tags[t] for t in data.leads[untagged]["tags"])
                fake.touch_lead(untagged, tags=[])
                fake.add_lead({"id": 999_001, "name": "Nuevo lead", "pipeline_id": MAIN_PIPELINE,
                               "status_id": new_status, "tags": [5002], "contacts": []})
                fake.reset()
                second = await service.run_task(key)
                query = fake.hits[0].query
                third = await service.run_task(key)
                await asyncio.sleep(0.05)
                return first, second, third, synced_at, query, sink, old_tags

        first, second, third, synced_at, query, sink, old_tags = asyncio.run(main())
    assert first.processed == pipeline_leads(data, MAIN_PIPELINE) - 1 and synced_at is not None
    assert query["filter[updated_at][from]"] == [str(int(synced_at.timestamp()) - 60)]
    assert (second.processed, second.changed) == (5, 4)  # the untagged lead changed nothing locally (A.17)
    assert (third.processed, third.changed) == (5, 0)  # the overlap re-read changes and announces nothing
    assert sink.events("lead_update") == [
        {"action": "kommo_synced", "pipeline_id": MAIN_PIPELINE, "count": pipeline_leads(data, MAIN_PIPELINE) - 1},
        {"action": "kommo_synced", "pipeline_id": MAIN_PIPELINE, "count": 4},
    ]
    got = ks.stored_leads(dsn, account)
    assert got[renamed]["name"] == "Renombrado"
    assert got[moved]["ks"] == new_status
    assert got[retagged]["links"] == sorted(["nueva-etiqueta", data.tags[5001]])
    assert got[retagged]["tags"] == ["nueva-etiqueta", data.tags[5001]]
    assert got[untagged]["links"] == old_tags  # last tag removed in Kommo: local tags stay
    assert got[999_001]["name"] == "Nuevo lead" and got[999_001]["jid"] == "kommo_999001@kommo.lead"
    assert len(got) == pipeline_leads(data, MAIN_PIPELINE)
    assert cursor(dsn, account, MAIN_PIPELINE) > synced_at


def test_storm_of_429_and_500_converges_without_duplicates_or_losses(dsn: str) -> None:
    data = generate(1500, seed=9)
    account = ks.create_account(dsn)
    with FakeKommo(data) as fake:
        fake.storm(0.3, (429, 500, 502, 503))

        async def sync(connect: bool) -> dict[str, Any]:
            async with ks.kommo_service(dsn, fake.url, KOMMO_MAX_RETRIES="12") as service:
                if connect:
                    await ks.connect(service, account, MAIN_PIPELINE)
                    await ks.connect(service, account, SECOND_PIPELINE)
                return await ks.full_sync(service, account)

        first = asyncio.run(sync(True))
        ks.assert_matches(dsn, account, data, [MAIN_PIPELINE, SECOND_PIPELINE])
        second = asyncio.run(sync(False))  # again, through the storm: nothing duplicated
        statuses = [h.status for h in fake.hits]
    assert statuses.count(429) > 5 and statuses.count(500) + statuses.count(502) + statuses.count(503) > 5
    for status in (first, second):
        assert "errors" not in status["result"], status["result"].get("errors")
        assert status["result"]["leads"] == 1500
    ks.assert_matches(dsn, account, data, [MAIN_PIPELINE, SECOND_PIPELINE])


def test_a_sync_killed_midway_and_restarted_converges(dsn: str) -> None:
    data = generate(3000, seed=11)
    account = ks.create_account(dsn)
    key = TaskKey(account, MAIN_PIPELINE)
    with FakeKommo(data) as fake:
        async def main() -> tuple[Any, ...]:
            async with ks.kommo_service(dsn, fake.url, KOMMO_RATE_LIMIT="20") as first, \
                    ks.kommo_service(dsn, fake.url) as second:  # two worker processes
                await ks.connect(first, account, MAIN_PIPELINE)
                task = asyncio.create_task(first.run_task(key, full=True))
                for _ in range(2000):
                    if fake.count("/leads") >= 5:
                        break
                    await asyncio.sleep(0.01)
                busy = await second.run_task(key)  # the other process skips: the pipeline is being synced
                task.cancel()
                await asyncio.wait([task])
                partial = (await second.state.db.fetch_row(
                    "SELECT count(*)::int AS n FROM leads WHERE account_id = $1", [account]))["n"]
                after_kill = await acursor(second, account, MAIN_PIPELINE)
                restarted = await second.run_task(key)
                return busy, partial, after_kill, restarted

        busy, partial, after_kill, restarted = asyncio.run(main())
    total = pipeline_leads(data, MAIN_PIPELINE)
    assert busy is None
    assert 0 < partial < total
    assert after_kill is None  # the cursor never advances for a cut-short sync
    assert restarted is not None and restarted.processed == total
    ks.assert_matches(dsn, account, data, [MAIN_PIPELINE])


def test_locks_die_with_their_process_and_one_poller_leads(dsn: str) -> None:
    account = uuid.uuid4()
    lock = pipeline_key(account, 1)
    with FakeKommo(generate(10)) as fake:
        async def main() -> list[Any]:
            async with ks.kommo_service(dsn, fake.url) as first, ks.kommo_service(dsn, fake.url) as second:
                seen = [await first.locks.try_acquire(lock), await second.locks.try_acquire(lock),
                        await first.locks.try_acquire(lock)]  # a process never takes its own lock twice
                first.locks._broken(RuntimeError("process killed"))  # its PostgreSQL session ends
                seen.append(await second.locks.acquire(lock, timeout=10))  # as soon as PostgreSQL notices
                await second.locks.release(lock)
                seen.append(await first.poll_once() >= 0 and first.leader)
                seen.append(await second.poll_once() == 0 and not second.leader)
                await first.stop()  # leader gone: the other takes over on a following tick
                for _ in range(100):
                    await second.poll_once()
                    if second.leader:
                        break
                    await asyncio.sleep(0.1)
                seen.append(second.leader)
                return seen

        assert asyncio.run(main()) == [True, False, False, True, True, True, True]


# -- bad input -----------------------------------------------------------------------------------------------
def test_wrong_token_is_reported_writes_nothing_and_backs_off(dsn: str) -> None:
    account = ks.create_account(dsn)
    sql(dsn, "INSERT INTO kommo_connected_pipelines (account_id, kommo_pipeline_id) VALUES ($1, $2)",
        account, MAIN_PIPELINE)
    with FakeKommo(generate(300)) as fake:
        async def main() -> dict[str, Any]:
            async with ks.kommo_service(dsn, fake.url, token="wrong", KOMMO_POLL_INTERVAL="0.2") as service:
                await service.start()
                await asyncio.sleep(2.2)
                return await service.worker_status()

        status = asyncio.run(main())
        attempts = fake.count("/leads")
    assert status["running"] is True and status["connected_count"] >= 1  # all tenants of this database
    assert "returned 401" in (status["last_error"] or "")
    assert 1 <= attempts <= 4, f"{attempts} attempts in 2.2 s: no back-off (a 0.2 s poll would make ~10)"
    assert lead_count(dsn, account) == 0
    assert sql(dsn, "SELECT count(*)::int AS n FROM contacts WHERE account_id = $1", account)[0]["n"] == 0
    assert sql(dsn, "SELECT count(*)::int AS n FROM pipelines WHERE account_id = $1 AND kommo_id IS NOT NULL",
               account)[0]["n"] == 0
    assert cursor(dsn, account, MAIN_PIPELINE) is None


def test_malformed_items_are_skipped_and_reported_the_rest_synced(dsn: str) -> None:
    data = generate(600, seed=13)
    bad_contact = data.leads[sorted(k for k, v in data.leads.items()
                                    if v["pipeline_id"] == MAIN_PIPELINE and v["contacts"])[0]]["contacts"][0]
    data.contacts[bad_contact]["custom_fields_values"] = "not a list"
    data.raw_leads[MAIN_PIPELINE] = [
        {"id": "abc", "name": "id is a string"}, {"name": "no id"}, "not an object",
        {"id": 424_242, "status_id": "x"}, {"id": 434_343, "_embedded": []},
    ]
    account = ks.create_account(dsn)
    with FakeKommo(data) as fake:
        fake.malformed_next(1)  # one whole response is not JSON: retried

        async def main() -> dict[str, Any]:
            async with ks.kommo_service(dsn, fake.url) as service:
                await ks.connect(service, account, MAIN_PIPELINE)
                return await ks.full_sync(service, account)

        status = asyncio.run(main())
    errors = status["result"]["errors"]
    assert len(errors) == 6, errors
    assert all(e.startswith("leads pipeline 7001: ") for e in errors)
    assert sum("lead " in e and "skipped" in e for e in errors) == 5
    assert any(f"contact id {bad_contact} skipped" in e for e in errors)
    assert status["result"]["leads"] == pipeline_leads(data, MAIN_PIPELINE)
    got = ks.stored_leads(dsn, account)
    assert set(got) == {k for k, v in data.leads.items() if v["pipeline_id"] == MAIN_PIPELINE}


def test_pipeline_deleted_in_kommo(dsn: str) -> None:
    data = generate(600, seed=17)
    second_count = pipeline_leads(data, SECOND_PIPELINE)
    account = ks.create_account(dsn)
    with FakeKommo(data) as fake:
        async def main() -> tuple[Any, ...]:
            async with ks.kommo_service(dsn, fake.url) as service:
                await ks.connect(service, account, MAIN_PIPELINE)
                await ks.connect(service, account, SECOND_PIPELINE)
                await ks.full_sync(service, account)
                fake.delete_pipeline(SECOND_PIPELINE)
                status = await ks.full_sync(service, account)
                task = await service.run_task(TaskKey(account, SECOND_PIPELINE))
                return status, task

        status, task = asyncio.run(main())
    result = status["result"]
    assert result["pipelines"] == 1
    assert result["errors"] == [f"pipeline {SECOND_PIPELINE}: pipeline {SECOND_PIPELINE} not found in Kommo"]
    assert task is not None and task.processed == 0 and not task.errors
    # Nothing is deleted locally (A.17): the pipeline, its stages and its leads stay.
    rows = sql(dsn, "SELECT p.id, (SELECT count(*)::int FROM pipeline_stages s WHERE s.pipeline_id = p.id) AS stages, "
                    "(SELECT count(*)::int FROM leads l WHERE l.pipeline_id = p.id) AS leads "
                    "FROM pipelines p WHERE p.account_id = $1 AND p.kommo_id = $2", account, SECOND_PIPELINE)
    assert len(rows) == 1 and rows[0]["stages"] == 3 and rows[0]["leads"] == second_count


def _contact(cid: int, phone: Any, name: str = "", first: str = "") -> dict[str, Any]:
    fields = None if phone is None else [{"field_code": "PHONE", "values": [{"value": phone}]}]
    return {"id": cid, "name": name, "first_name": first, "last_name": "", "custom_fields_values": fields,
            "_embedded": {"tags": []}}


def test_phones_in_every_shape_and_jid_adoption(dsn: str) -> None:
    data = generate(0)
    phones: list[tuple[Any, str]] = [
        ("+51 987-654-321", "Uno"), ("'987654322", "Dos"), ("", "Ana"), ("abc", "Letras"),
        ("''987654323", "Comillas"), (51987654324, "Numero"), ("+51 987 654 321", "Duplicado"), (None, ""),
    ]
    for n, (phone, name) in enumerate(phones, start=1):
        data.contacts[600 + n] = _contact(600 + n, phone, name)
        data.leads[900 + n] = {"id": 900 + n, "name": "  'Juan  " if n == 1 else ("''Ana" if n == 2 else ""),
                               "pipeline_id": MAIN_PIPELINE, "status_id": 142, "tags": [],
                               "contacts": [600 + n], "updated_at": 1}
    data.leads[999] = {"id": 999, "name": "Sin contacto", "pipeline_id": MAIN_PIPELINE, "status_id": 80001,
                       "tags": [], "contacts": [], "updated_at": 1}
    account = ks.create_account(dsn)
    # A lead and a contact created earlier from WhatsApp own the first phone's JID: both are adopted.
    jid = "51987654321@s.whatsapp.net"
    contact_id = sql(dsn, "INSERT INTO contacts (account_id, jid, phone, push_name) VALUES ($1, $2, '51987654321', "
                          "'WA') RETURNING id", account, jid)[0]["id"]
    lead_id = sql(dsn, "INSERT INTO leads (account_id, jid, name, source, status) VALUES ($1, $2, 'WA lead', "
                       "'whatsapp', 'contacted') RETURNING id", account, jid)[0]["id"]
    with FakeKommo(data) as fake:
        async def main() -> None:
            async with ks.kommo_service(dsn, fake.url) as service:
                await ks.connect(service, account, MAIN_PIPELINE)
                await ks.full_sync(service, account)

        asyncio.run(main())
    leads = {r["kommo_id"]: r for r in sql(
        dsn, "SELECT id, kommo_id, name, phone, jid, source, status, stage_id FROM leads WHERE account_id = $1",
        account)}
    contacts = {r["kommo_id"]: r for r in sql(
        dsn, "SELECT id, kommo_id, name, phone, jid FROM contacts WHERE account_id = $1", account)}
    assert len(leads) == 9 and len(contacts) == 7  # contact 608 (no phone, no name) is skipped (A.11)
    assert [(leads[900 + n]["phone"], leads[900 + n]["jid"]) for n in range(1, 9)] == [
        ("51987654321", jid),
        ("51987654322", "51987654322@s.whatsapp.net"),
        (None, "kommo_903@kommo.lead"),
        ("abc", "kommo_904@kommo.lead"),
        ("'987654323", "51987654323@s.whatsapp.net"),  # normalised twice (A.13 table)
        (None, "kommo_906@kommo.lead"),  # a number is not a string value (A.12)
        ("51987654321", "kommo_907@kommo.lead"),  # same phone as 901, whose lead owns the JID
        (None, "kommo_908@kommo.lead"),
    ]
    assert [(contacts[600 + n]["phone"], contacts[600 + n]["jid"]) for n in range(1, 8)] == [
        ("51987654321", jid),
        ("51987654322", "51987654322@s.whatsapp.net"),
        (None, "kommo_603@kommo.contact"),
        ("abc", "kommo_604@kommo.contact"),
        ("'987654323", "kommo_605@kommo.contact"),
        (None, "kommo_606@kommo.contact"),
        ("51987654321", "kommo_607@kommo.contact"),
    ]
    adopted = leads[901]
    assert str(adopted["id"]) == str(lead_id) and adopted["name"] == "Juan"
    assert (adopted["source"], adopted["status"]) == ("whatsapp", "contacted")  # untouched on update
    assert str(contacts[601]["id"]) == str(contact_id)
    assert leads[902]["name"] == "'Ana" and leads[903]["name"] is None
    assert leads[901]["stage_id"] is None  # closed-won (142) has no stage
    assert leads[999]["stage_id"] is not None and leads[999]["jid"] == "kommo_999@kommo.lead"


def test_tenants_connecting_the_same_pipeline_stay_isolated(dsn: str) -> None:
    data = generate(400, seed=21)
    first, second = ks.create_account(dsn, "A"), ks.create_account(dsn, "B")
    with FakeKommo(data) as fake:
        async def main() -> None:
            async with ks.kommo_service(dsn, fake.url) as service:
                for account in (first, second):
                    await ks.connect(service, account, MAIN_PIPELINE)
                    await ks.full_sync(service, account)

        asyncio.run(main())
    for account in (first, second):
        ks.assert_matches(dsn, account, data, [MAIN_PIPELINE])
        rows = sql(dsn, "SELECT count(*)::int AS n FROM pipeline_stages ps JOIN pipelines p ON p.id = ps.pipeline_id "
                        "WHERE p.account_id = $1 AND p.kommo_id = $2", account, MAIN_PIPELINE)
        assert rows[0]["n"] == 5  # every tenant gets its own stages (the original's global lookup did not)
    cross = sql(dsn, "SELECT count(*)::int AS n FROM leads l JOIN pipeline_stages ps ON ps.id = l.stage_id "
                     "JOIN pipelines p ON p.id = ps.pipeline_id WHERE l.account_id <> p.account_id")
    assert cross[0]["n"] == 0
