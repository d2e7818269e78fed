"""Kommo HTTP client and shared rate limiter against the fake Kommo server (real HTTP, real Redis)."""

from __future__ import annotations

import asyncio
import email.utils
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from clarin.cache import RedisHandle
from clarin.kommo.client import KommoAuthError, KommoClient, KommoError, _retry_after
from clarin.kommo.limiter import HEADROOM, RateLimiter
from clarin.kommo.poller import go_duration
from tests import support
from tests.fake_kommo import MAIN_PIPELINE, FakeKommo, generate


@pytest.fixture
def fake() -> Iterator[FakeKommo]:
    with FakeKommo(generate(600, seed=3)) as server:
        yield server


def make_client(fake: FakeKommo, *, token: str = "t", limiter: RateLimiter | None = None, **options: Any) -> KommoClient:
    settings: dict[str, Any] = {"timeout": 5.0, "max_retries": 5, "retry_base": 0.01, "retry_max": 0.05}
    settings.update(options)
    return KommoClient(fake.url, token, limiter or RateLimiter(1000), **settings)


async def _with_client(fake: FakeKommo, work: Any, **options: Any) -> Any:
    client = make_client(fake, **options)
    try:
        return await work(client)
    finally:
        await client.aclose()


def run(fake: FakeKommo, work: Any, **options: Any) -> Any:
    return asyncio.run(_with_client(fake, work, **options))


# -- endpoints and paging -----------------------------------------------------------------------------------
def test_lead_pages_follow_links_with_the_spec_query(fake: FakeKommo) -> None:
    async def work(client: KommoClient) -> list[Any]:
        return [item async for page in client.lead_pages(MAIN_PIPELINE, None) for item in page]

    leads = run(fake, work)
    expected = sorted(k for k, v in fake.data.leads.items() if v["pipeline_id"] == MAIN_PIPELINE)
    assert [lead["id"] for lead in leads] == expected
    calls = [h for h in fake.hits if h.path == "/leads"]
    assert len(calls) == -(-len(expected) // 250)  # pages of 250, the last one without _links.next
    for page, hit in enumerate(calls, start=1):
        assert hit.query["page"] == [str(page)]
        assert hit.query["limit"] == ["250"]
        assert hit.query["with"] == ["contacts"]
        assert hit.query["filter[pipeline_id][]"] == [str(MAIN_PIPELINE)]
        assert "filter[updated_at][from]" not in hit.query


def test_incremental_filter_returns_only_changed_leads(fake: FakeKommo) -> None:
    changed = sorted(k for k, v in fake.data.leads.items() if v["pipeline_id"] == MAIN_PIPELINE)[:3]
    for lead_id in changed:
        fake.touch_lead(lead_id, name="changed")
    since = int(time.time()) - 60

    async def work(client: KommoClient) -> list[Any]:
        return [item async for page in client.lead_pages(MAIN_PIPELINE, since) for item in page]

    assert sorted(lead["id"] for lead in run(fake, work)) == changed
    assert fake.hits[-1].query["filter[updated_at][from]"] == [str(since)]


def test_204_no_content_is_an_empty_page(fake: FakeKommo) -> None:
    async def work(client: KommoClient) -> tuple[list[Any], Any]:
        pages = [page async for page in client.lead_pages(999_999, None)]
        return pages, await client.get("/leads", [("filter[pipeline_id][]", 999_999)])

    pages, raw = run(fake, work)
    assert pages == [] and raw is None
    assert [h.status for h in fake.hits] == [204, 204]


def test_account_pipelines_tags_and_contacts(fake: FakeKommo) -> None:
    async def work(client: KommoClient) -> tuple[Any, ...]:
        ids = [*sorted(fake.data.contacts)[:250], 1]  # 1 does not exist
        return (await client.account(), await client.pipelines(), await client.lead_tags(),
                await client.contacts_by_ids(ids), await client.contact(ids[0]))

    account, pipelines, tags, contacts, one = run(fake, work)
    assert account["name"] == "Fake Kommo" and account["currency"] == "PEN"
    assert [p["id"] for p in pipelines] == list(fake.data.pipelines)
    assert all("statuses" in p["_embedded"] for p in pipelines)
    assert {t["id"] for t in tags} == set(fake.data.tags)
    assert len(contacts) == 250 and one["id"] == contacts[0]["id"]
    assert fake.count("/contacts") == 3  # 251 ids in chunks of 100
    assert all(len(h.query["filter[id][]"]) <= 100 for h in fake.hits if h.path == "/contacts")
    assert all("Bearer" not in str(h.query) for h in fake.hits)


# -- failures ------------------------------------------------------------------------------------------------
def test_401_raises_a_typed_error_at_once(fake: FakeKommo) -> None:
    async def work(client: KommoClient) -> None:
        await client.account()

    with pytest.raises(KommoAuthError) as info:
        run(fake, work, token="wrong")
    assert info.value.status == 401
    assert str(info.value).startswith("kommo API /account returned 401")
    assert fake.count("/account") == 1  # no retry


def test_429_honours_retry_after_for_every_caller(fake: FakeKommo) -> None:
    fake.fail_next(429, 1, retry_after=1, path="/account")

    async def work(client: KommoClient) -> tuple[float, float]:
        started = time.monotonic()

        async def other() -> float:
            await asyncio.sleep(0.2)  # starts after the 429 was seen: must wait out the same pause
            await client.pipelines()
            return time.monotonic() - started

        other_task = asyncio.create_task(other())
        await client.account()
        return time.monotonic() - started, await other_task

    first, second = run(fake, work)
    assert first >= 1.0 and second >= 1.0
    assert [h.status for h in fake.hits if h.path == "/account"] == [429, 200]


def test_retry_after_http_date_and_garbage() -> None:
    future = email.utils.formatdate(time.time() + 3, usegmt=True)
    assert 1.5 <= (_retry_after(future) or 0) <= 3.5
    assert _retry_after("2") == 2.0
    assert _retry_after("soon") is None and _retry_after(None) is None
    assert _retry_after("100000") == 300.0  # capped


def test_5xx_are_retried_then_reported(fake: FakeKommo) -> None:
    fake.fail_next(500, 2, path="/account")

    async def ok(client: KommoClient) -> Any:
        return await client.account()

    assert run(fake, ok)["id"] == 31337
    assert [h.status for h in fake.hits] == [500, 500, 200]
    fake.reset()
    fake.fail_next(503, 10, path="/account")
    with pytest.raises(KommoError) as info:
        run(fake, ok, max_retries=3)
    assert info.value.status == 503 and "returned 503" in str(info.value)
    assert fake.count("/account") == 4


def test_other_4xx_are_not_retried(fake: FakeKommo) -> None:
    fake.fail_next(404, 1)

    async def work(client: KommoClient) -> Any:
        return await client.pipelines()

    with pytest.raises(KommoError) as info:
        run(fake, work)
    assert info.value.status == 404 and not isinstance(info.value, KommoAuthError)
    assert len(fake.hits) == 1


def test_timeouts_and_malformed_json_are_retried(fake: FakeKommo) -> None:
    fake.slow_next(3.0)
    fake.malformed_next(1)

    async def work(client: KommoClient) -> tuple[Any, float]:
        started = time.monotonic()
        account = await client.account()  # slow → timeout → retry
        pipelines = await client.pipelines()  # malformed body → retry
        return (account, pipelines), time.monotonic() - started

    (account, pipelines), elapsed = run(fake, work, timeout=0.4)
    assert account["id"] == 31337 and len(pipelines) == 2
    assert elapsed < 2.5  # did not wait for the slow answer
    assert fake.count("/account") == 2 and fake.count("/leads/pipelines") == 2


def test_a_storm_of_429_and_500_converges(fake: FakeKommo) -> None:
    fake.storm(0.4, (429, 500, 502, 503))

    async def work(client: KommoClient) -> list[Any]:
        return [item async for page in client.lead_pages(MAIN_PIPELINE, None) for item in page]

    leads = run(fake, work, max_retries=12)
    expected = sorted(k for k, v in fake.data.leads.items() if v["pipeline_id"] == MAIN_PIPELINE)
    assert [lead["id"] for lead in leads] == expected
    statuses = [h.status for h in fake.hits]
    assert statuses.count(200) == 2 and len(statuses) > 2


# -- the shared rate limiter ---------------------------------------------------------------------------------
# The fake shares this process (and, on CI, an oversubscribed CPU) with the client, so arrivals can lag their
# send times by much more than real network jitter: the tests pace with a wider margin than the default 5 %.
TEST_HEADROOM = 0.2


def test_default_pacing_is_the_spec_spacing() -> None:
    assert RateLimiter(5).interval == pytest.approx(0.2 * (1 + HEADROOM))
    assert 0.2 <= RateLimiter(5).interval <= 0.25  # ≥ 200 ms between request starts (A.2)


def _max_per_second(fake: FakeKommo) -> int:
    return max(fake.per_second().values())


def test_rate_limiter_budget_is_shared_across_processes_through_redis(fake: FakeKommo) -> None:
    """Two limiters with their own Redis connections stand for two worker processes."""
    rate, per_client = 20, 20
    key = f"kommo-test-{uuid.uuid4().hex[:8]}:kommo:ratelimit"

    async def worker() -> None:
        redis = RedisHandle(support.REDIS_URL)
        await redis.start()
        limiter = RateLimiter(rate, redis, key, TEST_HEADROOM)
        assert limiter.shared
        client = make_client(fake, limiter=limiter)
        try:
            async def burst(n: int) -> None:
                for _ in range(n):
                    await client.account()

            await asyncio.gather(*(burst(per_client // 4) for _ in range(4)))
        finally:
            await client.aclose()
            await redis.close()

    async def main() -> float:
        started = time.monotonic()
        await asyncio.gather(worker(), worker())
        return time.monotonic() - started

    elapsed = asyncio.run(main())
    assert len(fake.hits) == 2 * per_client
    assert _max_per_second(fake) <= rate
    assert elapsed >= (2 * per_client - 1) * (1 + TEST_HEADROOM) / rate * 0.95


def test_rate_limiter_in_process_without_redis(fake: FakeKommo) -> None:
    rate = 20
    limiter = RateLimiter(rate, headroom=TEST_HEADROOM)
    assert not limiter.shared

    async def work(client: KommoClient) -> float:
        started = time.monotonic()
        await asyncio.gather(*(client.account() for _ in range(25)))
        return time.monotonic() - started

    elapsed = run(fake, work, limiter=limiter)
    assert _max_per_second(fake) <= rate
    assert elapsed >= 24 * (1 + TEST_HEADROOM) / rate * 0.95  # paced from the first request: no burst


def test_go_duration_strings() -> None:
    assert go_duration(0) == "0s"
    assert go_duration(0.5) == "500ms"
    assert go_duration(2.345) == "2.345s"
    assert go_duration(62.345) == "1m2.345s"
    assert go_duration(120) == "2m0s"
    assert go_duration(3600.5) == "1h0m0.5s"
