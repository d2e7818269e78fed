"""One number's budget holds across servers (docs/NUMBER_HEALTH.md): two `clarin serve` processes on one database
and one Redis; the device runs on A, sends land on A and B at the same time. B's sends are routed to A (the
owner) and counted there, in PostgreSQL, under the device's budget lock: together they never exceed it."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from clarin.whatsapp.budget import OverBudget
from clarin.whatsapp.remote import OwnedElsewhere, routed
from tests import support
from tests.crm_helpers import U
from tests.test_campaign_worker import jid, wait_for
from tests.test_device_routing import router_devices, routing_ready, run_device, two_processes
from tests.test_devices import kill_tree

ADMIN_PASSWORD = "admin-pass-123"
ENV = {"WHATSAPP_LEASE_RENEW": "1", "WHATSAPP_LEASE_TTL": "3", "DB_POOL_SIZE": "8"}
SENDS_PER_SERVER = 6
BUDGET = 4


@pytest.fixture(scope="module")
def two_servers(services: None, log_dir: Path) -> Iterator[tuple[support.ServerProcess, support.ServerProcess, str]]:
    name, dsn = support.create_database()
    env = support.base_env(dsn, **ENV)  # one REDIS_PREFIX: the servers route device calls to each other
    try:
        with support.running_server(env, log_dir, "nh-a") as a, support.running_server(env, log_dir, "nh-b") as b:
            yield a, b, dsn
    finally:
        support.drop_database(name)


def test_two_servers_never_exceed_one_numbers_budget(
    two_servers: tuple[support.ServerProcess, support.ServerProcess, str],
) -> None:
    a, b, dsn = two_servers
    tenant = support.new_tenant(a.url, ADMIN_PASSWORD, "NN")
    h = tenant.headers
    device_id = httpx.post(a.url + "/api/devices", json={"name": "Shared"}, headers=h).json()["device"]["id"]
    assert httpx.post(f"{a.url}/api/devices/{device_id}/connect", headers=h).status_code == 200
    wait_for(lambda: httpx.get(f"{b.url}/api/devices/{device_id}", headers=h).json()["device"]["status"] == "connected",
             what="device connected")
    # the budget is written through B: it lives in PostgreSQL, the owner reads it at every send
    r = httpx.put(f"{b.url}/api/devices/{device_id}/budget", json={"cold_per_hour": BUDGET}, headers=h)
    assert r.status_code == 200, r.text

    def call_status(server: support.ServerProcess, device: str) -> str:
        return httpx.get(f"{server.url}/api/devices/{device}", headers=h).json()["device"]["status"]

    def send(server: support.ServerProcess, n: int) -> httpx.Response:
        return httpx.post(server.url + "/api/messages/send", headers=h, timeout=30,
                          json={"device_id": device_id, "to": jid(n), "body": f"hola {n}"})

    jobs = [(a if i % 2 == 0 else b, i) for i in range(2 * SENDS_PER_SERVER)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(lambda job: (job[0] is a, send(*job)), jobs))

    assert Counter(r.status_code for _, r in answers) == {200: BUDGET, 429: 2 * SENDS_PER_SERVER - BUDGET}, [
        (r.status_code, r.text) for _, r in answers]
    for _, r in answers:
        if r.status_code == 429:
            assert 1 <= int(r.headers["retry-after"]) <= 3600 and "new conversations" in r.json()["error"]
    assert any(not on_a and r.status_code == 429 for on_a, r in answers)  # B's sends were counted at the owner

    # only the owner's driver sent, exactly the budget; the ledger agrees
    on_b = httpx.get(f"{b.url}/api/dev/whatsapp/{device_id}/sent?here=true", headers=h).json()["sent"]
    on_a = httpx.get(f"{a.url}/api/dev/whatsapp/{device_id}/sent?here=true", headers=h).json()["sent"]
    assert (len(on_a), len(on_b)) in ((BUDGET, 0), (0, BUDGET))
    rows = support.run_sql(dsn, "SELECT kind, count(*) AS n FROM device_sends WHERE device_id = $1 GROUP BY kind",
                           [U(device_id)])
    assert [(r["kind"], r["n"]) for r in rows] == [("cold", BUDGET)]
    view = httpx.get(f"{b.url}/api/devices/{device_id}", headers=h).json()["device"]["send_budget"]
    assert view["used"]["cold"]["hour"] == BUDGET and view["remaining"]["cold"]["hour"] == 0

    # the owner dies: the survivor takes the device over and inherits the spent budget (it is in PostgreSQL)
    owner, survivor = (a, b) if on_a else (b, a)
    kill_tree(owner)
    wait_for(lambda: call_status(survivor, device_id) == "connected" and send(survivor, 99).status_code != 503,
             timeout=30, what="device taken over by the survivor")
    late = send(survivor, 100)
    assert late.status_code == 429 and "new conversations" in late.json()["error"], late.text
    sent_after = httpx.get(f"{survivor.url}/api/dev/whatsapp/{device_id}/sent?here=true", headers=h).json()["sent"]
    assert sent_after == []  # the new owner sent nothing: the budget was already spent


# -- OverBudget crosses the routing as OverBudget (a background sender on any node waits retry_after) -------------
@routed
async def spent(state: Any, account_id: uuid.UUID, device_id: uuid.UUID, seconds: float) -> str:
    """A routed operation that answers like a send over the number's budget, only where the device runs."""
    if not state.whatsapp.owns(device_id):
        raise OwnedElsewhere()
    raise OverBudget(seconds, "cold", "hour")


def test_over_budget_is_re_raised_as_over_budget_on_the_requesting_node(
    two_servers: tuple[support.ServerProcess, support.ServerProcess, str],
) -> None:
    _, _, dsn = two_servers
    account_id, (device_id,) = router_devices(dsn, 1)

    async def run() -> None:
        async with two_processes(dsn, support.REDIS_URL) as (one, two):
            await run_device(one, account_id, device_id)
            await routing_ready([one, two])
            for state in (one, two):  # the owner raises it; the other node gets it back through Redis
                with pytest.raises(OverBudget) as err:
                    await spent(state, account_id, device_id, 61.5)
                assert (err.value.kind, err.value.retry_after, err.value.window) == ("cold", 61.5, "hour")
                assert (err.value.status, err.value.headers) == (429, [("retry-after", "62")])

    asyncio.run(run())
