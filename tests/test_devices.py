"""Devices R12–R19 and the device pool against real servers (WHATSAPP_DRIVER=simulated), PostgreSQL and Redis.

These tests run on their OWN database: the session-wide test server uses the default (neonize) driver,
and its take-over scan must never see the simulated devices paired here (it would try to reach WhatsApp).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from websockets.sync.client import ClientConnection, connect

from tests import support

ADMIN_PASSWORD = "admin-pass-123"
DEVICE_KEYS = {"id", "account_id", "name", "status", "created_at", "updated_at"}
LEASE_ENV = {"WHATSAPP_DRIVER": "simulated", "WHATSAPP_LEASE_RENEW": "1", "WHATSAPP_LEASE_TTL": "3"}


Tenant = support.ServerTenant


# -- fixtures -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wa_database(services: None) -> Iterator[str]:
    name, dsn = support.create_database()
    try:
        yield dsn
    finally:
        support.drop_database(name)


@pytest.fixture(scope="module")
def pool_database(services: None) -> Iterator[str]:
    with support.migrated_database() as dsn:
        yield dsn


@pytest.fixture(scope="module")
def wa_env(wa_database: str) -> dict[str, str]:
    return support.base_env(wa_database, **LEASE_ENV)


@pytest.fixture(scope="module")
def wa_server(wa_env: dict[str, str], log_dir: Path) -> Iterator[support.ServerProcess]:
    with support.running_server(wa_env, log_dir, "whatsapp") as srv:
        yield srv


def make_tenant(url: str) -> Tenant:
    return support.new_tenant(url, ADMIN_PASSWORD, "WA")


@pytest.fixture(scope="module")
def new_tenant(wa_server: support.ServerProcess):  # type: ignore[no-untyped-def]
    return lambda: make_tenant(wa_server.url)


@pytest.fixture
def tenant(new_tenant) -> Tenant:  # type: ignore[no-untyped-def]
    return new_tenant()


@pytest.fixture
def api(wa_server: support.ServerProcess, tenant: Tenant) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=wa_server.url, headers=tenant.headers, timeout=15) as c:
        yield c


# -- helpers ------------------------------------------------------------------------------------------
@contextmanager
def socket(server: support.ServerProcess, tenant: Tenant) -> Iterator[ClientConnection]:
    with connect(f"{server.ws_url}?token={tenant.token}", close_timeout=0.2) as ws:
        ws.send('{"event":"ping"}')  # the pong proves the socket is registered before we trigger anything
        deadline = time.monotonic() + 5
        while (frame := json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))) != {"event": "pong"}:
            assert "event" in frame and frame["event"] != "pong", frame  # an earlier change's event may come first
        yield ws


def events_until(ws: ClientConnection, name: str, predicate: Any = None, timeout: float = 10) -> list[dict[str, Any]]:
    """Every event received up to and including the first ``name`` event matching ``predicate``."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        seen.append(message)
        if message.get("event") == name and (predicate is None or predicate(message["data"])):
            return seen


def simulated_jid(device_id: str) -> str:
    return f"{int(uuid.UUID(device_id).hex[:10], 16) % 10**11:011d}@s.whatsapp.net"


def create_device(api: httpx.Client, name: str = "Sales phone") -> dict[str, Any]:
    response = api.post("/api/devices", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["device"]


def wait_status(api: httpx.Client, device_id: str, status: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    device: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = api.get(f"/api/devices/{device_id}")
        assert response.status_code == 200, response.text
        device = response.json()["device"]
        if device["status"] == status:
            return device
        time.sleep(0.1)
    raise AssertionError(f"device {device_id} never became {status}: {device}")


def connected_device(api: httpx.Client, name: str = "Sales phone") -> dict[str, Any]:
    device = create_device(api, name)
    assert api.post(f"/api/devices/{device['id']}/connect").status_code == 200
    return wait_status(api, device["id"], "connected")


def db_row(dsn: str, device_id: str) -> dict[str, Any] | None:
    rows = support.run_sql(dsn, "SELECT status, jid, phone, qr_code, last_seen_at FROM devices WHERE id = $1",
                           [uuid.UUID(device_id)])
    return rows[0] if rows else None


def kill_tree(server: support.ServerProcess) -> None:
    """SIGKILL the server and its granian workers: the owner dies without any clean-up."""
    parent = psutil.Process(server.proc.pid)
    for proc in [*parent.children(recursive=True), parent]:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    server.proc.wait(10)


# -- create / read ------------------------------------------------------------------------------------
def test_create_and_read(api: httpx.Client, tenant: Tenant) -> None:
    device = create_device(api, "Front desk")
    assert set(device) == DEVICE_KEYS  # phone/jid/qr_code/last_seen_at omitted while null
    assert device["status"] == "disconnected" and device["name"] == "Front desk"
    assert device["account_id"] == tenant.account_id

    unnamed = create_device(api, "")  # R13: no validation
    assert unnamed["name"] == ""

    got = api.get(f"/api/devices/{device['id']}")
    assert got.status_code == 200 and got.json()["success"] is True
    # R14's fields exactly, plus the number-health fields it alone adds (docs/NUMBER_HEALTH.md)
    read = got.json()["device"]
    assert {key: read[key] for key in device} == device
    assert set(read) - set(device) == {"health", "send_budget", "pauses"} and read["health"]["state"] == "ok"
    listed = api.get("/api/devices").json()
    assert listed["success"] is True
    assert [d["id"] for d in listed["devices"]] == [unnamed["id"], device["id"]]  # newest first

    assert api.get("/api/devices/not-a-uuid").json() == {"success": False, "error": "Invalid device ID"}
    missing = api.get(f"/api/devices/{uuid.uuid4()}")
    assert missing.status_code == 404 and missing.json()["error"] == "Device not found"
    assert api.post("/api/devices", content=b"{not json").status_code == 400


def test_rename(api: httpx.Client) -> None:
    device = create_device(api)
    renamed = api.put(f"/api/devices/{device['id']}", json={"name": "  Renamed  "})
    assert renamed.status_code == 200
    assert renamed.json()["device"]["name"] == "Renamed"
    assert renamed.json()["device"]["updated_at"] >= device["updated_at"]
    empty = api.put(f"/api/devices/{device['id']}", json={"name": "  "})
    assert (empty.status_code, empty.json()["error"]) == (400, "Name is required")
    assert api.put("/api/devices/x", json={"name": "a"}).json()["error"] == "Invalid device ID"
    assert api.put(f"/api/devices/{uuid.uuid4()}", json={"name": "a"}).status_code == 404
    assert api.put(f"/api/devices/{device['id']}", json={"name": "x" * 256}).status_code == 400


# -- connect / pairing --------------------------------------------------------------------------------
def test_connect_pairs_with_qr_then_connected(
    wa_server: support.ServerProcess, api: httpx.Client, tenant: Tenant, wa_database: str
) -> None:
    device = create_device(api)
    device_id = device["id"]
    with socket(wa_server, tenant) as ws:
        response = api.post(f"/api/devices/{device_id}/connect")
        assert response.status_code == 200
        assert response.json() == {"success": True, "message": "Connecting device..."}
        seen = events_until(ws, "device_status", lambda d: d["status"] == "connected")
        names = [(m["event"], m["data"].get("status")) for m in seen]
        assert names == [("device_status", "connecting"), ("qr_code", None), ("device_status", "connected")]
        qr = seen[1]
        assert qr["account_id"] == tenant.account_id
        assert qr["data"]["device_id"] == device_id
        assert qr["data"]["qr_code"].startswith("data:image/png;base64,")
        assert seen[2]["data"] == {"device_id": device_id, "status": "connected", "qr_code": ""}
        synced = events_until(ws, "contacts_synced")[-1]
        assert synced["data"] == {"device_id": device_id, "count": 0}

    got = api.get(f"/api/devices/{device_id}").json()["device"]
    jid = simulated_jid(device_id)
    assert got["status"] == "connected" and got["jid"] == jid and got["phone"] == jid.split("@")[0]
    assert "qr_code" not in got and got["last_seen_at"]
    row = db_row(wa_database, device_id)
    assert row is not None and (row["status"], row["jid"], row["qr_code"]) == ("connected", jid, None)

    # connecting a connected device is a no-op success
    with socket(wa_server, tenant) as ws:
        assert api.post(f"/api/devices/{device_id}/connect").status_code == 200
        with pytest.raises(TimeoutError):
            events_until(ws, "device_status", timeout=0.7)


def test_disconnect_then_reconnect_resumes_without_qr(
    wa_server: support.ServerProcess, api: httpx.Client, tenant: Tenant, wa_database: str
) -> None:
    device = connected_device(api)
    device_id = device["id"]
    with socket(wa_server, tenant) as ws:
        response = api.post(f"/api/devices/{device_id}/disconnect")
        assert response.json() == {"success": True, "message": "Device disconnected"}
        events_until(ws, "device_status", lambda d: d["status"] == "disconnected")
    got = api.get(f"/api/devices/{device_id}").json()["device"]
    assert got["status"] == "disconnected" and got["jid"] == device["jid"]  # session kept
    assert db_row(wa_database, device_id)["status"] == "disconnected"  # type: ignore[index]
    # a second disconnect (device not running) is still a success
    assert api.post(f"/api/devices/{device_id}/disconnect").status_code == 200

    with socket(wa_server, tenant) as ws:
        assert api.post(f"/api/devices/{device_id}/connect").status_code == 200
        seen = events_until(ws, "device_status", lambda d: d["status"] == "connected")
        assert "qr_code" not in [m["event"] for m in seen]


def test_delete_logs_out_and_removes(api: httpx.Client, wa_database: str) -> None:
    device = connected_device(api)
    response = api.delete(f"/api/devices/{device['id']}")
    assert response.json() == {"success": True, "message": "Device deleted"}
    assert api.get(f"/api/devices/{device['id']}").status_code == 404
    assert db_row(wa_database, device["id"]) is None
    assert api.delete(f"/api/devices/{device['id']}").status_code == 404

    idle = create_device(api)  # never connected
    assert api.delete(f"/api/devices/{idle['id']}").status_code == 200
    assert api.delete("/api/devices/nope").json()["error"] == "Invalid device ID"


# -- contact sync ---------------------------------------------------------------------------------------
def test_sync_contacts_upserts_contacts_and_device_names(
    wa_server: support.ServerProcess, api: httpx.Client, tenant: Tenant, wa_database: str
) -> None:
    idle = create_device(api)
    not_connected = api.post(f"/api/devices/{idle['id']}/sync-contacts")
    assert (not_connected.status_code, not_connected.json()["error"]) == (409, "device not connected")
    assert api.post("/api/devices/x/sync-contacts").json()["error"] == "invalid device id"

    device = connected_device(api)
    device_id = device["id"]
    # an existing contact keeps its name when the device has none for it, gets it when it has one
    support.run_sql(wa_database, "INSERT INTO contacts (account_id, jid, name, phone) VALUES ($1, $2, 'Kommo Name', '51911111111')",
                    [uuid.UUID(tenant.account_id), "51911111111@s.whatsapp.net"])
    book = [
        {"jid": "51911111111", "name": "", "push_name": "Ana P"},
        {"jid": "+51 922 222 222", "name": "Bruno", "push_name": "Bru", "business_name": "Bruno SAC"},
        {"jid": "51933333333@s.whatsapp.net", "push_name": "Carla"},
        {"jid": "51933333333:4@s.whatsapp.net", "push_name": "Carla"},  # same contact, AD form
    ]
    assert api.put(f"/api/dev/whatsapp/{device_id}/contacts", json={"contacts": book}).status_code == 200
    with socket(wa_server, tenant) as ws:
        response = api.post(f"/api/devices/{device_id}/sync-contacts")
        assert response.json() == {"success": True, "message": "sync started"}
        synced = events_until(ws, "contacts_synced")[-1]
    assert synced["data"] == {"device_id": device_id, "count": 3}

    contacts = support.run_sql(
        wa_database,
        "SELECT c.jid, c.phone, c.name, c.push_name, c.device_id::text AS device_id, n.name AS dn_name, "
        "n.push_name AS dn_push, n.business_name AS dn_business "
        "FROM contacts c JOIN contact_device_names n ON n.contact_id = c.id AND n.device_id = $2 "
        "WHERE c.account_id = $1 ORDER BY c.jid",
        [uuid.UUID(tenant.account_id), uuid.UUID(device_id)],
    )
    by_jid = {c["jid"]: c for c in contacts}
    assert set(by_jid) == {"51911111111@s.whatsapp.net", "51922222222@s.whatsapp.net", "51933333333@s.whatsapp.net"}
    ana = by_jid["51911111111@s.whatsapp.net"]
    assert (ana["name"], ana["push_name"], ana["device_id"]) == ("Kommo Name", "Ana P", None)  # device_id kept
    bruno = by_jid["51922222222@s.whatsapp.net"]
    assert (bruno["name"], bruno["phone"], bruno["device_id"]) == ("Bruno", "51922222222", device_id)
    assert (bruno["dn_name"], bruno["dn_push"], bruno["dn_business"]) == ("Bruno", "Bru", "Bruno SAC")

    # inbound senders are learned by the device's contact store, as whatsmeow does with push names
    sent = api.post(f"/api/dev/whatsapp/{device_id}/inbound", json={"from": "51944444444", "push_name": "Dora"})
    assert sent.status_code == 200
    with socket(wa_server, tenant) as ws:
        api.post(f"/api/devices/{device_id}/sync-contacts")
        assert events_until(ws, "contacts_synced")[-1]["data"]["count"] == 4


# -- dev inbound route ------------------------------------------------------------------------------------
def test_dev_inbound_route(api: httpx.Client) -> None:
    device = connected_device(api)
    url = f"/api/dev/whatsapp/{device['id']}/inbound"
    text = api.post(url, json={"from": "+51 987 654 321", "push_name": "Ana", "type": "text", "body": "hola",
                               "message_id": "WAMID1"})
    assert text.status_code == 200, text.text
    assert text.json() == {"success": True, "event": "Message", "message_id": "WAMID1"}
    image = api.post(url, json={"from": "51987654321", "type": "image", "media_base64": "aGVsbG8=",
                                "mimetype": "image/png", "body": "pic"})
    assert image.json()["event"] == "Message" and image.json()["message_id"]
    receipt = api.post(url, json={"from": "51987654321", "type": "receipt", "target_message_id": "WAMID1",
                                  "status": "read"})
    assert receipt.json() == {"success": True, "event": "Receipt", "message_id": "WAMID1"}
    presence = api.post(url, json={"from": "51987654321", "type": "presence"})
    assert presence.json()["event"] == "Presence"
    for bad in ({"from": "nobody", "type": "text"}, {"from": "51987654321", "type": "reaction"},
                {"from": "51987654321", "type": "teleport"}, {"type": "text"}):
        assert api.post(url, json=bad).status_code == 400, bad

    idle = create_device(api)
    down = api.post(f"/api/dev/whatsapp/{idle['id']}/inbound", json={"from": "51987654321"})
    assert (down.status_code, down.json()["error"]) == (409, "device not connected")
    assert api.post(f"/api/dev/whatsapp/{uuid.uuid4()}/inbound", json={"from": "51987654321"}).status_code == 404
    assert api.get(f"/api/dev/whatsapp/{device['id']}/sent").json() == {"success": True, "sent": []}


# -- tenant isolation -------------------------------------------------------------------------------------
def test_other_tenant_gets_404_everywhere(
    wa_server: support.ServerProcess, api: httpx.Client, new_tenant, wa_database: str  # type: ignore[no-untyped-def]
) -> None:
    device = connected_device(api)
    device_id = device["id"]
    other = new_tenant()
    with httpx.Client(base_url=wa_server.url, headers=other.headers, timeout=15) as intruder:
        calls = [
            ("GET", f"/api/devices/{device_id}", None),
            ("PUT", f"/api/devices/{device_id}", {"name": "mine now"}),
            ("POST", f"/api/devices/{device_id}/connect", None),
            ("POST", f"/api/devices/{device_id}/disconnect", None),
            ("POST", f"/api/devices/{device_id}/sync-contacts", None),
            ("DELETE", f"/api/devices/{device_id}", None),
            ("POST", f"/api/dev/whatsapp/{device_id}/inbound", {"from": "51987654321"}),
            ("GET", f"/api/dev/whatsapp/{device_id}/sent", None),
            ("PUT", f"/api/dev/whatsapp/{device_id}/contacts", {"contacts": []}),
        ]
        for method, path, body in calls:
            response = intruder.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["error"] == "Device not found", (method, path)
        assert device_id not in [d["id"] for d in intruder.get("/api/devices").json()["devices"]]
    after = api.get(f"/api/devices/{device_id}").json()["device"]
    assert (after["status"], after["name"]) == ("connected", device["name"])
    assert db_row(wa_database, device_id)["status"] == "connected"  # type: ignore[index]


def test_neonize_server_starts_and_hides_dev_routes(services: None, log_dir: Path) -> None:
    """A server on the default (neonize) driver, on an empty database of its own (so it has no paired
    device to reconnect: no WhatsApp traffic): it serves devices, and the dev routes do not exist."""
    name, dsn = support.create_database()
    try:
        env = support.base_env(dsn, WHATSAPP_DRIVER="neonize")
        with support.running_server(env, log_dir, "neonize") as srv:
            headers = support.auth(support.login(srv.url, "admin", ADMIN_PASSWORD))
            response = httpx.post(f"{srv.url}/api/dev/whatsapp/{uuid.uuid4()}/inbound", json={}, headers=headers)
            assert response.status_code == 404
            assert response.json()["error"].startswith("Cannot POST /api/dev/whatsapp/")
            assert httpx.get(f"{srv.url}/api/dev/whatsapp/{uuid.uuid4()}/sent", headers=headers).status_code == 404
            assert httpx.get(f"{srv.url}/api/devices", headers=headers).json() == {"success": True, "devices": []}
            created = httpx.post(f"{srv.url}/api/devices", json={"name": "real phone"}, headers=headers)
            assert created.status_code == 201 and created.json()["device"]["status"] == "disconnected"
            assert "Traceback" not in srv.logs()
    finally:
        support.drop_database(name)


# -- one owner per device -----------------------------------------------------------------------------------
def test_device_lease_in_process(pool_database: str) -> None:
    """Two pools (as two processes would) on one database: only the lease holder runs the device; sends
    elsewhere are 503, sends to a stopped device 409."""
    from clarin.cache import RedisHandle
    from clarin.db.pool import Database
    from clarin.http.errors import HTTPError
    from clarin.realtime.broadcaster import Broadcaster
    from clarin.realtime.hub import Hub
    from clarin.whatsapp.lease import DeviceLeases
    from clarin.whatsapp.pool import DevicePool
    from clarin.whatsapp.simulated_driver import SimulatedDriver

    account = support.run_sql(pool_database, "INSERT INTO accounts (name) VALUES ('lease test') RETURNING id::text AS id")
    account_id = uuid.UUID(account[0]["id"])
    row = support.run_sql(pool_database, "INSERT INTO devices (account_id, name) VALUES ($1, 'x') RETURNING id::text AS id",
                          [account_id])
    device_id = uuid.UUID(row[0]["id"])

    async def run() -> None:
        def make_pool() -> tuple[DevicePool, Database]:
            db = Database(pool_database, 2)
            pool = DevicePool(SimulatedDriver(pair_delay=0), db, Broadcaster(Hub(), RedisHandle(None)),
                              DeviceLeases(pool_database, 3), renew_interval=3600)
            return pool, db

        one, db1 = make_pool()
        two, db2 = make_pool()
        try:
            await one.leases.open()
            await two.leases.open()
            await one.connect(device_id, account_id, "", "disconnected")
            for _ in range(100):
                if one.live_view(device_id, "", None, False)[0] == "connected":
                    break
                await asyncio.sleep(0.02)
            ref = await one.sender(device_id, account_id)
            assert ref.jid.endswith("@s.whatsapp.net")
            assert await two.leased_elsewhere(device_id) is True
            for call in (two.sender(device_id, account_id), two.connect(device_id, account_id, ref.jid, "connected"),
                         two.sync_contacts(device_id, account_id), two.disconnect(device_id, account_id)):
                with pytest.raises(HTTPError) as err:
                    await call
                assert (err.value.status, err.value.message) == (503, "device is connected on another server, retry")
            await one.disconnect(device_id, account_id)
            with pytest.raises(HTTPError) as err:
                await one.sender(device_id, account_id)
            assert (err.value.status, err.value.message) == (409, "device not connected")
            # released: the other process may run it now
            await two.connect(device_id, account_id, ref.jid, "disconnected")
            assert two.owns(device_id) and not one.owns(device_id)
        finally:
            for pool, db in ((one, db1), (two, db2)):
                await pool.stop()
                db.close()

    asyncio.run(run())


def test_a_send_refused_by_a_resuming_client_is_a_retry(pool_database: str) -> None:
    """A send that took the device before a lost lease session stopped its client, and reached the driver after
    the take-over restarted it, is refused as not connected: 503 retry while the paired session comes back and
    once it is connected again (tests/test_send_faults.py saw both), the 409 only for a device nobody runs."""
    from clarin.cache import RedisHandle
    from clarin.db.pool import Database
    from clarin.http.errors import HTTPError
    from clarin.realtime.broadcaster import Broadcaster
    from clarin.realtime.hub import Hub
    from clarin.whatsapp.lease import DeviceLeases
    from clarin.whatsapp.live import NOT_CONNECTED, RESUMING
    from clarin.whatsapp.pool import DevicePool
    from clarin.whatsapp.simulated_driver import SimulatedDriver

    class StalledDriver(SimulatedDriver):
        stalled = True

        async def _run(self, session: Any) -> None:
            if self.stalled:  # a paired session that has not come back yet
                await asyncio.Event().wait()
            await super()._run(session)

    account = support.run_sql(pool_database, "INSERT INTO accounts (name) VALUES ('refused') RETURNING id::text AS id")
    account_id = uuid.UUID(account[0]["id"])
    jid = "5511999990000@s.whatsapp.net"
    row = support.run_sql(pool_database, "INSERT INTO devices (account_id, name, jid, status) "
                          "VALUES ($1, 'x', $2, 'connected') RETURNING id::text AS id", [account_id, jid])
    device_id = uuid.UUID(row[0]["id"])
    nobody = HTTPError(409, NOT_CONNECTED)

    async def run() -> None:
        db = Database(pool_database, 2)
        driver = StalledDriver()
        pool = DevicePool(driver, db, Broadcaster(Hub(), RedisHandle(None)),
                          DeviceLeases(pool_database, 3), renew_interval=3600)
        try:
            await pool.leases.open()
            await pool.connect(device_id, account_id, jid, "connected")
            assert pool.resuming(device_id)
            refused = await pool.refused(device_id, account_id, nobody)
            assert (refused.status, refused.message) == (503, RESUMING)
            await pool.disconnect(device_id, account_id)
            driver.stalled = False
            await pool.connect(device_id, account_id, jid, "connected")  # the take-over's new client comes up
            for _ in range(100):
                if pool.live_view(device_id, "", None, False)[0] == "connected":
                    break
                await asyncio.sleep(0.02)
            assert not pool.resuming(device_id) and pool.live_view(device_id, "", None, False)[0] == "connected"
            refused = await pool.refused(device_id, account_id, nobody)  # the old client refused the send
            assert (refused.status, refused.message) == (503, RESUMING)
            await pool.disconnect(device_id, account_id)  # stopped on purpose: nobody will resume it
            assert await pool.refused(device_id, account_id, nobody) is nobody
        finally:
            await pool.stop()
            db.close()

    asyncio.run(run())


def test_lease_moves_to_second_server_when_owner_is_killed(services: None, log_dir: Path) -> None:
    """Two servers on a database of their own (no third server may race them for the device)."""
    name, dsn = support.create_database()
    env = support.base_env(dsn, **LEASE_ENV)
    try:
        with support.running_server(env, log_dir, "owner") as owner, \
                support.running_server(env, log_dir, "standby") as standby:
            check_take_over(owner, standby, make_tenant(owner.url))
    finally:
        support.drop_database(name)


def check_take_over(owner: support.ServerProcess, standby: support.ServerProcess, tenant: Tenant) -> None:
    with httpx.Client(base_url=owner.url, headers=tenant.headers, timeout=15) as on_owner:
        device = connected_device(on_owner, "Leased")
    device_id = device["id"]
    with httpx.Client(base_url=standby.url, headers=tenant.headers, timeout=15) as on_standby:
        # the standby sees the owner's status; its calls for the device are run by the owner (routed through
        # Redis, clarin/whatsapp/remote.py), which keeps running it
        assert on_standby.get(f"/api/devices/{device_id}").json()["device"]["status"] == "connected"
        assert on_standby.post(f"/api/devices/{device_id}/connect").status_code == 200  # a no-op on the owner
        synced = on_standby.post(f"/api/devices/{device_id}/sync-contacts")
        assert synced.json() == {"success": True, "message": "sync started"}, synced.text

        with socket(standby, tenant) as ws:
            kill_tree(owner)
            started = time.monotonic()
            # only the process that runs a device emits its status: these come from the standby's take-over
            seen = events_until(ws, "device_status",
                                lambda d: d["device_id"] == device_id and d["status"] == "connected", timeout=30)
            elapsed = time.monotonic() - started
        assert ("device_status", "connecting") in [(m["event"], m["data"].get("status")) for m in seen]
        assert elapsed < 30
        got = on_standby.get(f"/api/devices/{device_id}").json()["device"]
        assert (got["status"], got["jid"]) == ("connected", device["jid"])  # resumed, no new pairing
        # the standby runs it now: it can deliver on it and disconnect it
        inbound = on_standby.post(f"/api/dev/whatsapp/{device_id}/inbound", json={"from": "51987654321"})
        assert inbound.status_code == 200, inbound.text
        assert on_standby.post(f"/api/devices/{device_id}/disconnect").status_code == 200
        assert on_standby.get(f"/api/devices/{device_id}").json()["device"]["status"] == "disconnected"


def test_inbound_events_reach_the_handler_in_order_and_batched(pool_database: str) -> None:
    """Non-lifecycle events go to the pluggable inbound handler, per device in arrival order; a burst is
    handed over as batches; the driver's sink returns once its event was handled."""
    from clarin.cache import RedisHandle
    from clarin.db.pool import Database
    from clarin.realtime.broadcaster import Broadcaster
    from clarin.realtime.hub import Hub
    from clarin.whatsapp.lease import DeviceLeases
    from clarin.whatsapp.pool import DevicePool, DeviceRef
    from clarin.whatsapp.simulated_driver import SimulatedDriver
    from clarin.wire.devices import InboundSpec

    account = support.run_sql(pool_database, "INSERT INTO accounts (name) VALUES ('inbound') RETURNING id::text AS id")
    account_id = uuid.UUID(account[0]["id"])
    row = support.run_sql(pool_database, "INSERT INTO devices (account_id, name) VALUES ($1, 'x') RETURNING id::text AS id",
                          [account_id])
    device_id = uuid.UUID(row[0]["id"])

    class Recorder:
        def __init__(self) -> None:
            self.batches: list[list[str]] = []
            self.device: DeviceRef | None = None

        async def handle_batch(self, device: DeviceRef, events: list[Any]) -> None:
            self.device = device
            await asyncio.sleep(0.01)  # slow enough for a burst to queue up
            self.batches.append([e.Info.ID if type(e).__name__ == "Message" else type(e).__name__ for e in events])

        async def handle(self, device: DeviceRef, event: Any) -> None:  # pragma: no cover - batch wins
            raise AssertionError("handle_batch should be used")

    async def run() -> None:
        db = Database(pool_database, 2)
        driver = SimulatedDriver(pair_delay=0)
        pool = DevicePool(driver, db, Broadcaster(Hub(), RedisHandle(None)), DeviceLeases(pool_database, 3),
                          renew_interval=3600)
        recorder = Recorder()
        pool.inbound = recorder
        try:
            await pool.leases.open()
            await pool.connect(device_id, account_id, "", "disconnected")
            for _ in range(100):
                if await driver.is_connected(device_id):
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.05)
            event = await driver.deliver_inbound(device_id, InboundSpec(from_="51987654321", message_id="FIRST"))
            assert recorder.batches == [["FIRST"]]  # handled before deliver_inbound returned
            assert recorder.device is not None and recorder.device.id == device_id
            assert event.Info.ID == "FIRST"
            specs = [InboundSpec(from_="51987654321", message_id=f"M{i:03d}") for i in range(50)]
            await asyncio.gather(*(driver.deliver_inbound(device_id, spec) for spec in specs))
            flat = [mid for batch in recorder.batches[1:] for mid in batch]
            assert flat == [f"M{i:03d}" for i in range(50)]  # arrival order kept
            assert len(recorder.batches) - 1 < 50  # and batched
            await driver.deliver_inbound(device_id, InboundSpec(from_="51987654321", type="presence"))
            assert recorder.batches[-1] == ["Presence"]
        finally:
            await pool.stop()
            db.close()

    asyncio.run(run())
