"""Two deployments on one Redis (issue 18 goal 4): every key and channel a server uses lives under its
``REDIS_PREFIX``, so two servers with different prefixes never read or retire each other's entries — even
with identical account ids (staging restored from production, two copies of one bench database).

The second database is a copy of the first (``CREATE DATABASE … TEMPLATE``), so both servers hold the same
account, user and session ids. Real servers, PostgreSQL and Redis; no mocks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from websockets.sync.client import connect

from tests import support

ADMIN_PASSWORD = "admin-pass-123"


@pytest.fixture(scope="module")
def twin_databases(services: None) -> Iterator[tuple[str, str, support.ServerTenant]]:
    """(dsn A, dsn B, the tenant present in both): B copied from A after the tenant was made."""
    name_a, dsn_a = support.create_database()
    name_b = f"{name_a}_twin"
    try:
        support.clarin_cli("migrate", env=support.base_env(dsn_a))
        with support.running_server(support.base_env(dsn_a), Path(support._DATA_ROOT), "prefix-setup") as srv:
            tenant = support.new_tenant(srv.url, ADMIN_PASSWORD, "Prefix")
        support.run_sql(support.dsn_for("postgres"), f'CREATE DATABASE "{name_b}" TEMPLATE "{name_a}"')
        yield dsn_a, support.dsn_for(name_b), tenant
    finally:
        support.drop_database(name_b)
        support.drop_database(name_a)


def _touch_everything(url: str, tenant: support.ServerTenant, ws_url: str) -> str:
    """Exercise every Redis user: login throttle, rate limit, auth cache, board cache, page cache, totals,
    device routing channels, the WS fan-out channel. Returns the device id it created."""
    wrong = {"username": tenant.username, "password": "wrong-pass"}
    assert httpx.post(url + "/api/auth/login", json=wrong).status_code == 401
    headers = tenant.headers
    for path in ("/api/leads", "/api/leads?limit=5", "/api/contacts?limit=5", "/api/chats?limit=5", "/api/stats"):
        assert httpx.get(url + path, headers=headers).status_code == 200, path
    device = httpx.post(url + "/api/devices", json={"name": "prefix phone"}, headers=headers)
    assert device.status_code in (200, 201), device.text
    device_id = device.json()["device"]["id"]
    assert httpx.post(url + f"/api/devices/{device_id}/connect", headers=headers).status_code == 200
    with connect(f"{ws_url}?token={tenant.token}", open_timeout=10) as ws:
        ws.send('{"type":"ping"}')
        ws.recv(timeout=10)
    return device_id


def test_two_prefixes_on_one_redis_never_share_keys_or_entries(
    twin_databases: tuple[str, str, support.ServerTenant], log_dir: Path
) -> None:
    dsn_a, dsn_b, tenant = twin_databases
    prefix_a, prefix_b = f"pa-{uuid.uuid4().hex[:8]}", f"pb-{uuid.uuid4().hex[:8]}"
    common = {"RATE_LIMIT": "1000", "LOGIN_MAX_FAILURES_IP": "50"}
    env_a = support.base_env(dsn_a, REDIS_PREFIX=prefix_a, **common)
    env_b = support.base_env(dsn_b, REDIS_PREFIX=prefix_b, **common)
    client = redis.Redis.from_url(support.REDIS_URL, decode_responses=True)
    with support.running_server(env_a, log_dir, "prefix-a") as a, support.running_server(env_b, log_dir, "prefix-b") as b:
        devices = [_touch_everything(a.url, tenant, a.ws_url), _touch_everything(b.url, tenant, b.ws_url)]
        # Same account id on both: cache entries must still be per deployment. A lead created on A only...
        created = httpx.post(a.url + "/api/leads", headers=tenant.headers, json={
            "name": "Only on A", "phone": "51911122233", "email": "", "source": "t", "notes": ""})
        assert created.status_code in (200, 201), created.text
        lead_id = created.json()["lead"]["id"]
        board_a = httpx.get(a.url + "/api/leads", headers=tenant.headers).json()["leads"] or []
        # ... is on A's (re-cached) board, and B, reading the same account's board, never sees A's entry.
        assert lead_id in {lead["id"] for lead in board_a}
        for path in ("/api/leads", "/api/leads?limit=5", "/api/stats"):
            body = httpx.get(b.url + path, headers=tenant.headers).text
            assert lead_id not in body, path
        assert httpx.get(b.url + "/api/stats", headers=tenant.headers).json()["stats"]["leads"] == 0

        keys = [k for k in client.scan_iter(match=f"*{tenant.account_id}*", count=1000)]
        channels = client.pubsub_channels()
    owned = {prefix: [k for k in keys if k.startswith(prefix + ":")] for prefix in (prefix_a, prefix_b)}
    assert owned[prefix_a] and owned[prefix_b], keys  # both wrote account-scoped entries, each under its own
    assert sorted(keys) == sorted(owned[prefix_a] + owned[prefix_b]), "a key with the account id outside a prefix"
    assert {k.removeprefix(prefix_a) for k in owned[prefix_a]} & {k.removeprefix(prefix_b) for k in owned[prefix_b]}
    for device_id in devices:
        on_device = [c for c in channels if device_id in c]
        assert on_device and all(c.startswith((prefix_a + ":", prefix_b + ":")) for c in on_device), on_device
    assert f"{prefix_a}:ws" in channels and f"{prefix_b}:ws" in channels
    # Rate-limit and login-throttle entries (keyed by IP / username, not account) are under a prefix as well.
    for prefix in (prefix_a, prefix_b):
        assert any(True for _ in client.scan_iter(match=f"{prefix}:*", count=1000))
    unprefixed = [k for k in client.scan_iter(match=f"*{tenant.username}*", count=1000)
                  if not k.startswith((prefix_a + ":", prefix_b + ":"))]
    assert unprefixed == []
