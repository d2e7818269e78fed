"""Device calls routed to the process that runs the device (clarin/whatsapp/remote.py), against a real server
with two granian workers (WORKERS=2), the simulated WhatsApp driver, PostgreSQL and Redis. No mocks.

Every request goes over a fresh connection, so both workers receive them; only one worker runs the device.
The servers run on a database of their own (no other server's take-over scan may claim these devices).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import ClientConnection, connect

from clarin.http.errors import HTTPError
from clarin.whatsapp.remote import OWNER_GONE, OwnedElsewhere, routed
from tests import support

ADMIN_PASSWORD = "admin-pass-123"
ROUTING_ENV = {"WORKERS": "2", "WHATSAPP_LEASE_RENEW": "1", "WHATSAPP_LEASE_TTL": "3"}
OWNED_ELSEWHERE = "device is connected on another server, retry"
SENDS = 40


Tenant = support.ServerTenant


@pytest.fixture(scope="module")
def routing_db(services: None) -> Iterator[str]:
    name, dsn = support.create_database()
    try:
        yield dsn
    finally:
        support.drop_database(name)


@pytest.fixture(scope="module")
def cluster(routing_db: str, log_dir: Path) -> Iterator[support.ServerProcess]:
    env = support.base_env(routing_db, **ROUTING_ENV)
    with support.running_server(env, log_dir, "routing") as srv:
        yield srv


@pytest.fixture(scope="module")
def tenant(cluster: support.ServerProcess) -> Tenant:
    return make_tenant(cluster.url)


# -- helpers (fresh connection per request: httpx.<method> without a shared client) ------------------------
def make_tenant(url: str) -> Tenant:
    return support.new_tenant(url, ADMIN_PASSWORD, "RT")


def call(server: support.ServerProcess, tenant: Tenant, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, server.url + path, json=body, headers=tenant.headers, timeout=20)


def wait_status(server: support.ServerProcess, tenant: Tenant, device_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    device: dict[str, Any] = {}
    while time.monotonic() < deadline:
        device = call(server, tenant, "GET", f"/api/devices/{device_id}").json()["device"]
        if device["status"] == status:
            return device
        time.sleep(0.1)
    raise AssertionError(f"device {device_id} never became {status}: {device}")


def connected_device(server: support.ServerProcess, tenant: Tenant, name: str) -> str:
    created = call(server, tenant, "POST", "/api/devices", {"name": name})
    assert created.status_code == 201, created.text
    device_id = created.json()["device"]["id"]
    connected = call(server, tenant, "POST", f"/api/devices/{device_id}/connect")
    assert connected.status_code == 200, connected.text
    wait_status(server, tenant, device_id, "connected")
    return device_id


@contextmanager
def socket(server: support.ServerProcess, tenant: Tenant) -> Iterator[ClientConnection]:
    with connect(f"{server.ws_url}?token={tenant.token}", open_timeout=10, close_timeout=0.2) as ws:
        ws.send('{"event":"ping"}')  # the pong proves the socket is registered before anything is triggered
        deadline = time.monotonic() + 5
        while json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic()))).get("event") != "pong":
            pass
        yield ws


def collect(ws: ClientConnection, event: str, want: int, timeout: float = 15) -> list[dict[str, Any]]:
    """The data of ``want`` ``event`` frames (others skipped)."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(seen) < want:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {len(seen)} of {want} {event} events within {timeout}s"
        frame = json.loads(ws.recv(timeout=remaining))
        if frame.get("event") == event:
            seen.append(frame["data"])
    return seen


@contextmanager
def server_up(env: dict[str, str], log_dir: Path, name: str) -> Iterator[support.ServerProcess]:
    """A server that answers, even though ``/ready`` reports a configured Redis that is down as not ready."""
    server = support.ServerProcess(env, support.free_port(), log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log")
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.proc.poll() is None, server.logs()[-4000:]
            assert time.monotonic() < deadline, server.logs()[-4000:]
            try:
                if httpx.get(server.url + "/ready", timeout=2).json().get("database") == "ok":
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        yield server
    finally:
        server.stop()


def routed_ok(server: support.ServerProcess) -> float:
    """``clarin_whatsapp_routed_calls_total{outcome="ok"}`` summed over ops and workers (multi-process merge)."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "clarin_whatsapp_routed_calls_total" and sample.labels.get("outcome") == "ok")


def message_keys(message: dict[str, Any]) -> None:
    assert {"id", "chat_id", "message_id", "body", "message_type", "is_from_me", "status"} <= set(message), message
    assert message["is_from_me"] is True and message["status"] == "sent"


# -- tests ------------------------------------------------------------------------------------------------------
def test_sends_from_every_worker_reach_the_owner(cluster: support.ServerProcess, tenant: Tenant, routing_db: str) -> None:
    device_id = connected_device(cluster, tenant, "Routed sends")
    routed_before = routed_ok(cluster)
    run = uuid.uuid4().hex[:8]
    phones = [f"5199{i:07d}" for i in range(4)]
    bodies = [f"routed {run} #{i}" for i in range(SENDS - 4)]

    def send(i: int) -> httpx.Response:
        return call(cluster, tenant, "POST", "/api/messages/send",
                    {"device_id": device_id, "to": phones[i % len(phones)], "body": bodies[i]})

    with socket(cluster, tenant) as ws:
        with ThreadPoolExecutor(8) as executor:
            responses = list(executor.map(send, range(len(bodies))))
        for response in responses:
            assert response.status_code == 200, response.text
            assert response.json()["success"] is True
            message_keys(response.json()["message"])
        sent = {r.json()["message"]["id"]: r.json()["message"] for r in responses}
        assert len(sent) == len(bodies)

        # R30 poll, R28 forward, R29 react: the other routed sends, also over fresh connections
        polls = [call(cluster, tenant, "POST", "/api/messages/poll",
                      {"device_id": device_id, "to": phones[0], "question": f"Poll {run} {i}?",
                       "options": ["yes", "no"], "max_selections": 1}) for i in range(2)]
        for poll in polls:
            assert poll.status_code == 200, poll.text
            assert poll.json()["message"]["message_type"] == "poll"
            sent[poll.json()["message"]["id"]] = poll.json()["message"]
        first = responses[0].json()["message"]
        forwarded = call(cluster, tenant, "POST", "/api/messages/forward",
                         {"device_id": device_id, "to": phones[3], "chat_id": first["chat_id"],
                          "message_id": first["message_id"]})
        assert forwarded.status_code == 200, forwarded.text
        assert forwarded.json()["message"]["body"] == first["body"]
        sent[forwarded.json()["message"]["id"]] = forwarded.json()["message"]
        reacted = call(cluster, tenant, "POST", "/api/messages/react",
                       {"device_id": device_id, "to": phones[0], "target_message_id": first["message_id"],
                        "emoji": "👍"})
        assert reacted.status_code == 200 and reacted.json() == {"success": True}, reacted.text
        assert len(sent) == SENDS - 1

        # every message_sent event reaches the dashboard socket, whichever worker it is connected to
        events = collect(ws, "message_sent", len(sent))
        assert {e["message"]["id"] for e in events} == set(sent)

    # stored once each, by the device; the driver sent each exactly once
    rows = support.run_sql(
        routing_db, "SELECT id::text AS id, body, message_id FROM messages WHERE account_id = $1 AND device_id = $2",
        [uuid.UUID(tenant.account_id), uuid.UUID(device_id)])
    assert sorted(r["id"] for r in rows) == sorted(sent)
    assert len({r["message_id"] for r in rows}) == len(rows)
    for body in bodies:
        assert sum(1 for r in rows if r["body"] == body) == 1 + (body == first["body"])  # + the forward
    reactions = support.run_sql(routing_db, "SELECT emoji FROM message_reactions WHERE account_id = $1 "
                                "AND target_message_id = $2", [uuid.UUID(tenant.account_id), first["message_id"]])
    assert [r["emoji"] for r in reactions] == ["👍"]
    calls = call(cluster, tenant, "GET", f"/api/dev/whatsapp/{device_id}/sent")  # the owner's record (routed)
    assert calls.status_code == 200, calls.text
    kinds = [c["kind"] for c in calls.json()["sent"]]
    assert len(kinds) == SENDS and len({c["id"] for c in calls.json()["sent"]}) == SENDS, kinds
    # both workers answered: the non-owner's requests were run by the owner
    assert routed_ok(cluster) - routed_before >= 5


def test_lifecycle_calls_are_routed(cluster: support.ServerProcess, tenant: Tenant, routing_db: str) -> None:
    device_id = connected_device(cluster, tenant, "Routed lifecycle")
    book = {"contacts": [{"jid": "51911111111", "push_name": "Ana"}, {"jid": "51922222222", "name": "Bruno"}]}
    for _ in range(4):  # whichever worker gets them: the owner's driver holds the book and syncs it
        assert call(cluster, tenant, "PUT", f"/api/dev/whatsapp/{device_id}/contacts", book).status_code == 200
        assert call(cluster, tenant, "POST", f"/api/devices/{device_id}/connect").status_code == 200  # no-op
    with socket(cluster, tenant) as ws:
        for _ in range(4):
            synced = call(cluster, tenant, "POST", f"/api/devices/{device_id}/sync-contacts")
            assert synced.json() == {"success": True, "message": "sync started"}, synced.text
        counts = [e["count"] for e in collect(ws, "contacts_synced", 4)]
    assert counts == [2, 2, 2, 2]
    for _ in range(4):
        inbound = call(cluster, tenant, "POST", f"/api/dev/whatsapp/{device_id}/inbound",
                       {"from": "51933333333", "body": "hola"})
        assert inbound.status_code == 200 and inbound.json()["event"] == "Message", inbound.text

    disconnected = call(cluster, tenant, "POST", f"/api/devices/{device_id}/disconnect")
    assert disconnected.json() == {"success": True, "message": "Device disconnected"}, disconnected.text
    row = support.run_sql(routing_db, "SELECT status FROM devices WHERE id = $1", [uuid.UUID(device_id)])
    assert row == [{"status": "disconnected"}]

    other = connected_device(cluster, tenant, "Routed delete")
    deleted = call(cluster, tenant, "DELETE", f"/api/devices/{other}")
    assert deleted.json() == {"success": True, "message": "Device deleted"}, deleted.text
    assert support.run_sql(routing_db, "SELECT id FROM devices WHERE id = $1", [uuid.UUID(other)]) == []
    assert call(cluster, tenant, "GET", f"/api/devices/{other}").status_code == 404


def test_device_nobody_runs_answers_409_at_once(cluster: support.ServerProcess, tenant: Tenant) -> None:
    """No process holds the lease (never connected, or disconnected): every worker answers 409 quickly."""
    idle = call(cluster, tenant, "POST", "/api/devices", {"name": "Idle"}).json()["device"]["id"]
    stopped = connected_device(cluster, tenant, "Stopped")
    assert call(cluster, tenant, "POST", f"/api/devices/{stopped}/disconnect").status_code == 200
    for device_id in [idle, stopped] * 4:
        started = time.monotonic()
        response = call(cluster, tenant, "POST", "/api/messages/send",
                        {"device_id": device_id, "to": "51987654321", "body": "hola"})
        assert time.monotonic() - started < 2
        assert (response.status_code, response.json()) == (409, {"success": False, "error": "device not connected"})
        synced = call(cluster, tenant, "POST", f"/api/devices/{device_id}/sync-contacts")
        assert (synced.status_code, synced.json()["error"]) == (409, "device not connected")


@pytest.mark.parametrize(("redis_url", "logged"), [
    ("off", "REDIS_URL is not set"),
    (f"redis://127.0.0.1:{support.free_port()}/0", "Redis is unavailable"),  # configured, nobody listening
], ids=["unset", "down"])
def test_without_redis_the_non_owner_answers_503(services: None, log_dir: Path, redis_url: str, logged: str) -> None:
    """No Redis: nothing is routed; the worker that does not run the device answers the documented 503 with
    Retry-After (the condition logged once), the owner sends."""
    name, dsn = support.create_database()
    try:
        env = support.base_env(dsn, **ROUTING_ENV, REDIS_URL=redis_url)
        with server_up(env, log_dir, "no-redis") as srv:
            tenant = make_tenant(srv.url)
            device_id = connected_device(srv, tenant, "No Redis")
            statuses: dict[int, int] = {}
            for i in range(16):
                response = call(srv, tenant, "POST", "/api/messages/send",
                                {"device_id": device_id, "to": "51987654321", "body": f"no redis {i}"})
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code == 503:
                    assert response.json() == {"success": False, "error": OWNED_ELSEWHERE}
                    assert response.headers["retry-after"] == "2"
                else:
                    assert response.status_code == 200, response.text
            # 16 fresh connections over 2 workers: both answer (all on one worker: p = 2^-15)
            assert set(statuses) == {200, 503}, statuses
            assert srv.logs().count(logged) == 1  # only by the worker that does not run it, once
    finally:
        support.drop_database(name)


# -- the router in-process: two pools (as two processes), real PostgreSQL leases and real Redis ------------
PROBE_RUNS: list[tuple[str, float]] = []


@routed
async def probe(state: Any, account_id: uuid.UUID, device_id: uuid.UUID, delay: float, fail: int = 0) -> str:
    """A routed operation for the test: runs only where the device is run, records each run."""
    pool = state.whatsapp
    if not pool.owns(device_id):
        raise OwnedElsewhere()
    PROBE_RUNS.append((pool.remote.instance_id, delay))
    await asyncio.sleep(delay)
    if fail:
        raise HTTPError(fail, "probe failed", headers=[("x-probe", "1")], detail="on purpose")
    return pool.remote.instance_id


def router_devices(dsn: str, count: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    account = support.run_sql(dsn, "INSERT INTO accounts (name) VALUES ('router') RETURNING id::text AS id")
    account_id = uuid.UUID(account[0]["id"])
    return account_id, [uuid.UUID(support.run_sql(
        dsn, "INSERT INTO devices (account_id, name) VALUES ($1, 'r') RETURNING id::text AS id",
        [account_id])[0]["id"]) for _ in range(count)]


@asynccontextmanager
async def two_processes(dsn: str, redis_url: str) -> AsyncIterator[list[SimpleNamespace]]:
    """Two pools with their routers, as two processes would have them (own DB pools, leases, Redis handles)."""
    from clarin.cache import RedisHandle
    from clarin.db.pool import Database
    from clarin.realtime.broadcaster import Broadcaster
    from clarin.realtime.hub import Hub
    from clarin.whatsapp.lease import DeviceLeases
    from clarin.whatsapp.pool import DevicePool
    from clarin.whatsapp.simulated_driver import SimulatedDriver

    prefix = f"clarin-test-{uuid.uuid4().hex[:8]}"
    states = []
    for _ in range(2):
        redis = RedisHandle(redis_url)
        db = Database(dsn, 2)
        pool = DevicePool(SimulatedDriver(pair_delay=0), db, Broadcaster(Hub(), redis), DeviceLeases(dsn, 3),
                          renew_interval=3600)
        states.append(SimpleNamespace(redis=redis, db=db, whatsapp=pool, settings=SimpleNamespace(redis_prefix=prefix)))
    try:
        for state in states:
            await state.redis.start()
            await state.whatsapp.leases.open()
            await state.whatsapp.remote.start(state)
        yield states
    finally:
        for state in states:
            await state.whatsapp.stop()
            await state.redis.close()
            state.db.close()


async def routing_ready(states: list[SimpleNamespace], timeout: float = 10) -> None:
    """Both routers subscribed, and the owners' device channels too."""
    deadline = time.monotonic() + timeout
    while not all(state.whatsapp.remote.available for state in states):
        assert time.monotonic() < deadline, "routers not subscribed"
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)


async def run_device(state: SimpleNamespace, account_id: uuid.UUID, device_id: uuid.UUID) -> None:
    await state.whatsapp.connect(device_id, account_id, "", "disconnected")


def test_router_timeout_late_replies_and_exactly_once(cluster: support.ServerProcess, routing_db: str) -> None:
    from clarin.whatsapp.remote import RouteRequest

    account_id, (owned, idle) = router_devices(routing_db, 2)

    async def run() -> None:
        async with two_processes(routing_db, support.REDIS_URL) as (one, two):
            await run_device(one, account_id, owned)
            await routing_ready([one, two])
            owner_id = one.whatsapp.remote.instance_id

            # routed from the non-owner, run once on the owner
            before = len(PROBE_RUNS)
            assert await probe(two, account_id, owned, 0.0) == owner_id
            assert await probe(one, account_id, owned, 0.0) == owner_id  # local
            assert PROBE_RUNS[before:] == [(owner_id, 0.0), (owner_id, 0.0)]

            # the owner's error comes back as the same HTTPError
            with pytest.raises(HTTPError) as err:
                await probe(two, account_id, owned, 0.0, fail=418)
            assert (err.value.status, err.value.message, err.value.detail, err.value.headers) == (
                418, "probe failed", "on purpose", [("x-probe", "1")])

            # no answer in time: 504 at the timeout, never a hang; the late reply is dropped
            two.whatsapp.remote.timeout = 0.3
            started = time.monotonic()
            with pytest.raises(HTTPError) as err:
                await probe(two, account_id, owned, 1.0)
            assert err.value.status == 504 and time.monotonic() - started < 0.9
            await asyncio.sleep(1.0)
            assert two.whatsapp.remote._pending == {}
            two.whatsapp.remote.timeout = 15

            # the same request delivered twice runs once
            runs = len(PROBE_RUNS)
            request = RouteRequest(id=uuid.uuid4().hex, reply_to=two.whatsapp.remote.reply_channel,
                                   op=f"{__name__}.probe", account_id=str(account_id), device_id=str(owned),
                                   payload=msgspec.msgpack.encode({"delay": 0.0, "fail": 0}))
            channel = one.whatsapp.remote.device_channel(owned)
            for _ in range(2):
                assert await two.redis.client.publish(channel, msgspec.msgpack.encode(request)) == 1
            await asyncio.sleep(0.3)
            assert len(PROBE_RUNS) == runs + 1

            # a device nobody runs: nobody subscribed, the 503 at once
            started = time.monotonic()
            with pytest.raises(OwnedElsewhere):
                await probe(two, account_id, idle, 0.0)
            assert time.monotonic() - started < 0.5

            # counted as a receiver but gone (a process killed as the request was published, before Redis saw
            # its connection close) and nobody holds the lease: 503 + Retry-After after the owner check, not a 504
            # at the 15 s timeout
            ghost = two.redis.client.pubsub()
            await ghost.subscribe(one.whatsapp.remote.device_channel(idle))
            try:
                started = time.monotonic()
                with pytest.raises(HTTPError) as err:
                    await probe(two, account_id, idle, 0.0)
                assert err.value.status == 503 and time.monotonic() - started < 2.5
                assert err.value.message == OWNER_GONE and ("retry-after", "1") in err.value.headers
            finally:
                await ghost.aclose()

            # the owner stops running it: unsubscribed, not routed any more
            await one.whatsapp.disconnect(owned, account_id)
            await asyncio.sleep(0.2)
            with pytest.raises(OwnedElsewhere):
                await probe(two, account_id, owned, 0.0)

    asyncio.run(run())


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not on PATH")
def test_router_survives_a_redis_restart(cluster: support.ServerProcess, routing_db: str) -> None:
    """Redis stops: routed calls answer the 503 at once (no hang); Redis is back: the routers resubscribe
    (device channels included) and calls are routed again."""
    from tests.fault_support import private_redis

    account_id, (owned,) = router_devices(routing_db, 1)

    async def run(redis_url: str, restart: Any) -> None:
        async with two_processes(routing_db, redis_url) as (one, two):
            await run_device(one, account_id, owned)
            await routing_ready([one, two])
            owner_id = one.whatsapp.remote.instance_id
            assert await probe(two, account_id, owned, 0.0) == owner_id
            await asyncio.to_thread(restart.stop)
            for _ in range(3):
                started = time.monotonic()
                with pytest.raises(OwnedElsewhere):
                    await probe(two, account_id, owned, 0.0)
                assert time.monotonic() - started < 3
            await asyncio.to_thread(restart.start)
            await routing_ready([one, two], timeout=15)
            assert await probe(two, account_id, owned, 0.0) == owner_id

    with private_redis() as redis:
        asyncio.run(run(redis.url, redis))
