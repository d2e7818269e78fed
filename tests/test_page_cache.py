"""The account page cache (clarin.cache.pages + @cached_read): hits, validators, gzip, invalidation by
every change (including across worker processes), and bypass while Redis is away."""

from __future__ import annotations

import asyncio
import gzip
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from clarin.cache.pages import PageCache
from clarin.cache.redis_client import RedisHandle
from tests import support
from tests.leads_support import create_lead, forget_cached_reads, random_phone


def _page(client: httpx.Client, tenant: Any, path: str, **headers: str) -> httpx.Response:
    response = client.get(path, headers={**tenant.headers, **headers})
    assert response.status_code in (200, 304), response.text
    return response


def test_cached_page_is_a_hit_until_the_account_changes(client: httpx.Client, tenant: Any, database: str) -> None:
    lead = create_lead(client, tenant, random_phone(), name="Before")
    first = _page(client, tenant, "/api/leads?limit=10")
    # A change written behind the API's back is invisible while the cached body is current: proof of a hit.
    support.run_sql(database, "UPDATE leads SET name = 'Behind' WHERE id = $1", [uuid.UUID(lead["id"])])
    assert _page(client, tenant, "/api/leads?limit=10").content == first.content
    # A change through the API retires it at once.
    response = client.put(f"/api/leads/{lead['id']}", json={"name": "After"}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    names = [x["name"] for x in _page(client, tenant, "/api/leads?limit=10").json()["leads"]]
    assert names == ["After"]


def test_any_broadcast_change_retires_every_cached_list(client: httpx.Client, tenant: Any, database: str) -> None:
    assert _page(client, tenant, "/api/contacts?limit=10").json()["contacts"] == []
    support.run_sql(
        database, "INSERT INTO contacts (account_id, jid, phone, name) VALUES ($1, '51911@s.whatsapp.net', '51911', 'X')",
        [uuid.UUID(tenant.account_id)],
    )
    assert _page(client, tenant, "/api/contacts?limit=10").json()["contacts"] == []  # still the cached body
    # A tag creation (tag_update event) retires the contacts pages too (clarin.cache.scopes: a tag change can
    # cascade to contact links): the next contacts page is rebuilt and shows the row as stored.
    assert client.post("/api/tags", json={"name": f"t-{uuid.uuid4().hex[:6]}"}, headers=tenant.headers).status_code == 201
    assert [c["name"] for c in _page(client, tenant, "/api/contacts?limit=10").json()["contacts"]] == ["X"]


def test_etag_revalidation_and_gzip(client: httpx.Client, tenant: Any) -> None:
    for n in range(30):  # a body big enough to be worth compressing
        create_lead(client, tenant, random_phone(), name=f"Lead {n}")
    plain = _page(client, tenant, "/api/leads?limit=50", **{"accept-encoding": "identity"})
    etag = plain.headers["etag"]
    assert plain.headers["cache-control"] == "private, no-cache"
    assert "content-encoding" not in plain.headers
    not_modified = _page(client, tenant, "/api/leads?limit=50", **{"if-none-match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b"" and not_modified.headers["etag"] == etag
    raw = client.get("/api/leads?limit=50", headers={**tenant.headers, "accept-encoding": "gzip"})
    # httpx decodes transparently; the wire form is gzip and inflates to the identical body.
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.content == plain.content
    with client.stream("GET", "/api/leads?limit=50", headers={**tenant.headers, "accept-encoding": "gzip"}) as s:
        wire = b"".join(s.iter_raw())
    assert gzip.decompress(wire) == plain.content and len(wire) < len(plain.content)
    # After a change the old validator no longer matches.
    create_lead(client, tenant, random_phone(), name="New")
    fresh = _page(client, tenant, "/api/leads?limit=50", **{"if-none-match": etag})
    assert fresh.status_code == 200 and fresh.headers["etag"] != etag


def test_errors_are_not_cached(client: httpx.Client, tenant: Any) -> None:
    for _ in range(2):
        response = client.get("/api/leads?stage_id=not-a-uuid", headers=tenant.headers)
        assert response.status_code == 400 and "etag" not in response.headers


def test_tenants_never_share_cached_pages(client: httpx.Client, make_tenant: Any) -> None:
    one, two = make_tenant(), make_tenant()
    create_lead(client, one, random_phone(), name="Only One")
    assert [x["name"] for x in _page(client, one, "/api/leads?limit=5").json()["leads"]] == ["Only One"]
    assert _page(client, two, "/api/leads?limit=5").json()["leads"] == []


@pytest.fixture(scope="module")
def two_workers(server_env: dict[str, str], log_dir: Path) -> Any:
    with support.running_server({**server_env, "WORKERS": "2"}, log_dir, "two-workers") as srv:
        yield srv


def test_read_your_writes_across_worker_processes(two_workers: Any, make_tenant: Any) -> None:
    tenant = make_tenant()
    token = support.login(two_workers.url, tenant.username, tenant.password)
    headers = support.auth(token)
    with httpx.Client(base_url=two_workers.url, timeout=15) as warm:
        lead = warm.post("/api/leads", json={"phone": random_phone(), "name": "v0"}, headers=headers).json()["lead"]
    for version in range(1, 16):
        # Fresh connections land on either worker: each warms its cache, then one writes, then a read on a
        # new connection (possibly the other worker) must show the write.
        for _ in range(2):
            with httpx.Client(base_url=two_workers.url, timeout=15) as c:
                c.get("/api/leads?limit=5", headers=headers)
        with httpx.Client(base_url=two_workers.url, timeout=15) as c:
            response = c.put(f"/api/leads/{lead['id']}", json={"name": f"v{version}"}, headers=headers)
            assert response.status_code == 200, response.text
        with httpx.Client(base_url=two_workers.url, timeout=15) as c:
            names = [x["name"] for x in c.get("/api/leads?limit=5", headers=headers).json()["leads"]]
        assert names == [f"v{version}"]


def test_forget_helper_retires_pages(client: httpx.Client, tenant: Any, database: str) -> None:
    lead = create_lead(client, tenant, random_phone(), name="Kept")
    _page(client, tenant, "/api/leads?limit=3")
    support.run_sql(database, "UPDATE leads SET name = 'Changed' WHERE id = $1", [uuid.UUID(lead["id"])])
    forget_cached_reads(tenant.account_id)
    assert [x["name"] for x in _page(client, tenant, "/api/leads?limit=3").json()["leads"]] == ["Changed"]


# -- the cache object itself, on a real Redis ---------------------------------------------------------
def test_page_cache_builds_once_and_recovers_from_redis_outage() -> None:
    async def scenario() -> None:
        handle = RedisHandle(support.REDIS_URL)
        await handle.start()
        cache = PageCache(handle, f"pc-test-{uuid.uuid4().hex[:8]}", ttl=30)
        builds = 0

        async def build() -> bytes:
            nonlocal builds
            builds += 1
            await asyncio.sleep(0.01)
            return b'{"n":%d}' % builds

        try:
            account = uuid.uuid4()
            bodies = await asyncio.gather(*(cache.fetch(account, "k", build) for _ in range(20)))
            assert builds == 1 and {b.body for b in bodies if b is not None} == {b'{"n":1}'}  # single flight
            await cache.invalidate(account)
            assert (await cache.fetch(account, "k", build)).body == b'{"n":2}'  # type: ignore[union-attr]
            # Redis goes away: nothing is served from the cache (writes could not retire it) ...
            handle._set_up(False)
            assert await cache.fetch(account, "k", build) is None
            # ... and when it is back, a new epoch retires everything built before the outage.
            handle._set_up(True)
            assert (await cache.fetch(account, "k", build)).body == b'{"n":3}'  # type: ignore[union-attr]
            assert (await cache.fetch(account, "k", build)).body == b'{"n":3}'  # type: ignore[union-attr]
            assert cache.lookups["built"] == builds == 3 and cache.lookups["bypass"] == 1
            assert cache.lookups["local"] >= 1  # the last read: this worker's copy
        finally:
            await handle.close()

    asyncio.run(scenario())
