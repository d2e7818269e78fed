"""Start-up resume (integrations.md B.4) with the claim grace of clarin.whatsapp.pool: every paired device that
is not logged out reconnects when a server starts — also one that was manually disconnected (as in the
original) and so is not a take-over candidate. Its own database: no other server's scan may claim it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import support

ADMIN_PASSWORD = "admin-pass-123"


@pytest.fixture
def own_db(services: None) -> Iterator[str]:
    name, dsn = support.create_database()
    try:
        yield dsn
    finally:
        support.drop_database(name)


def status(url: str, tenant: support.ServerTenant, device_id: str) -> str:
    return httpx.get(f"{url}/api/devices/{device_id}", headers=tenant.headers, timeout=10).json()["device"]["status"]


def wait_status(url: str, tenant: support.ServerTenant, device_id: str, want: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (got := status(url, tenant, device_id)) != want:
        assert time.monotonic() < deadline, f"device {device_id} is {got}, not {want}, after {timeout}s"
        time.sleep(0.1)


def test_a_manually_disconnected_paired_device_reconnects_at_start_up(own_db: str, log_dir: Path) -> None:
    env = support.base_env(own_db)
    with support.running_server(env, log_dir, "startup-1") as first:
        tenant = support.new_tenant(first.url, ADMIN_PASSWORD, "Startup")
        created = httpx.post(first.url + "/api/devices", json={"name": "Boot"}, headers=tenant.headers, timeout=10)
        device_id = created.json()["device"]["id"]
        assert httpx.post(f"{first.url}/api/devices/{device_id}/connect", headers=tenant.headers,
                          timeout=10).status_code == 200
        wait_status(first.url, tenant, device_id, "connected", 15)
        assert httpx.post(f"{first.url}/api/devices/{device_id}/disconnect", headers=tenant.headers,
                          timeout=10).status_code == 200
        wait_status(first.url, tenant, device_id, "disconnected", 5)
    with support.running_server(env, log_dir, "startup-2") as second:
        # claim grace (1.5 s) + connect; the take-over scans (every 10 s) would never pick a disconnected device
        wait_status(second.url, tenant, device_id, "connected", 8)
