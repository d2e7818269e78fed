"""The campaign sender end to end: real servers (WHATSAPP_DRIVER=simulated), PostgreSQL and Redis.

Delays are compressed (CAMPAIGN_DELAY_SCALE=0.001: a "second" of pacing is a millisecond) and the worker
polls every 0.2 s. What each device sent is read from the simulated driver of the server that runs it
(``GET /api/dev/whatsapp/:id/sent``) and from the ``messages`` rows outbound stored.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psqlpy
import pytest

from tests import support
from tests.crm_helpers import U, socket
from tests.test_devices import kill_tree

ADMIN_PASSWORD = "admin-pass-123"
FAST = {"CAMPAIGN_DELAY_SCALE": "0.001", "CAMPAIGN_TICK": "0.2", "WHATSAPP_LEASE_RENEW": "1",
        "WHATSAPP_LEASE_TTL": "3", "DB_POOL_SIZE": "8"}
QUICK = {"min_delay_seconds": 0, "max_delay_seconds": 0, "batch_size": 1000, "batch_pause_minutes": 0}


Tenant = support.ServerTenant


def make_tenant(url: str) -> Tenant:
    return support.new_tenant(url, ADMIN_PASSWORD, "CW")


# -- fixtures --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cw_database(services: None) -> Iterator[str]:
    name, dsn = support.create_database()
    try:
        yield dsn
    finally:
        support.drop_database(name)


@pytest.fixture(scope="module")
def cw_server(cw_database: str, log_dir: Path) -> Iterator[support.ServerProcess]:
    with support.running_server(support.base_env(cw_database, **FAST), log_dir, "campaigns") as srv:
        yield srv


@pytest.fixture
def tenant(cw_server: support.ServerProcess) -> Tenant:
    return make_tenant(cw_server.url)


@pytest.fixture
def api(cw_server: support.ServerProcess, tenant: Tenant) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cw_server.url, headers=tenant.headers, timeout=30) as c:
        yield c


# -- helpers ---------------------------------------------------------------------------------------------------
def jid(n: int) -> str:
    return f"51911{n:06d}@s.whatsapp.net"


def connected_device(api: httpx.Client, name: str = "Phone") -> str:
    r = api.post("/api/devices", json={"name": name})
    assert r.status_code == 201, r.text
    device_id = r.json()["device"]["id"]
    assert api.post(f"/api/devices/{device_id}/connect").status_code == 200
    wait_for(lambda: api.get(f"/api/devices/{device_id}").json()["device"]["status"] == "connected",
             what=f"device {device_id} connected")
    return device_id


def wait_for(predicate: Any, timeout: float = 15, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def campaign_with(api: httpx.Client, device_id: str, n: int, *, start: bool = True, first: int = 0,
                  **fields: Any) -> str:
    body = {"name": "Promo", "device_id": device_id, "message_template": "Hola {{nombre}}", "settings": QUICK,
            **fields}
    r = api.post("/api/campaigns", json=body)
    assert r.status_code == 201, r.text
    cid = r.json()["campaign"]["id"]
    recipients = [{"jid": jid(first + i), "name": f"R{first + i}"} for i in range(n)]
    r = api.post(f"/api/campaigns/{cid}/recipients", json={"recipients": recipients})
    assert r.status_code == 200 and r.json()["count"] == n, r.text
    if start:
        assert api.post(f"/api/campaigns/{cid}/start").status_code == 200
    return cid


def campaign(api: httpx.Client, cid: str) -> dict[str, Any]:
    return api.get(f"/api/campaigns/{cid}").json()["campaign"]


def wait_status(api: httpx.Client, cid: str, status: str, timeout: float = 20) -> dict[str, Any]:
    return wait_for(lambda: (c := campaign(api, cid))["status"] == status and c, timeout, f"campaign {status}")


def recipients_of(dsn: str, cid: str) -> list[dict[str, Any]]:
    return support.run_sql(
        dsn, "SELECT id, jid, status, sent_at, error_message, wait_time_ms, updated_at FROM campaign_recipients "
             "WHERE campaign_id = $1 ORDER BY seq", [U(cid)])


def sent_calls(client: httpx.Client, device_id: str, *, here: bool = False) -> list[dict[str, Any]]:
    """What the simulated driver sent for the device: of the process running it, or (``here``) of the process
    that answers — its own record, whoever runs the device now."""
    r = client.get(f"/api/dev/whatsapp/{device_id}/sent", params={"here": "true"} if here else None)
    assert r.status_code == 200, r.text
    return r.json()["sent"]


def stored_per_jid(dsn: str, device_id: str) -> Counter[str]:
    rows = support.run_sql(
        dsn, "SELECT ch.jid FROM messages m JOIN chats ch ON ch.id = m.chat_id WHERE m.device_id = $1 AND m.is_from_me",
        [U(device_id)])
    return Counter(row["jid"] for row in rows)


def text_of(call: dict[str, Any]) -> str:
    message = call["message"]
    if "conversation" in message:
        return message["conversation"]
    media = next(iter(message.values()))
    return media.get("caption", "")


# -- sending, composition, progress events ---------------------------------------------------------------------
def test_sends_composed_messages_with_attachments_and_live_progress(cw_server, api, tenant, cw_database):
    device = connected_device(api)
    image = api.post("/api/media/upload", files={"file": ("promo.png", b"\x89PNG fake", "image/png")}).json()
    doc = api.post("/api/media/upload", files={"file": ("menu.pdf", b"%PDF fake", "application/pdf")}).json()
    r = api.post("/api/campaigns", json={
        "name": "Lanzamiento", "device_id": device, "message_template": "Hola {{nombre}} de {{empresa}} {{x}}",
        "settings": QUICK, "attachments": [
            {"media_url": doc["proxy_url"], "media_type": "document", "caption": "Menú para {{nombre}}", "position": 2},
            {"media_url": image["proxy_url"], "media_type": "image", "position": 1}]})
    cid = r.json()["campaign"]["id"]
    api.post(f"/api/campaigns/{cid}/recipients", json={"recipients": [
        {"jid": jid(1), "name": "Ana", "metadata": {"empresa": "ACME"}},
        {"jid": jid(2), "name": "Bob", "metadata": {"empresa": "Beta"}}]})
    with socket(cw_server, tenant.token) as ws:
        assert api.post(f"/api/campaigns/{cid}/start").status_code == 200
        events: list[tuple[str, dict[str, Any]]] = []
        deadline = time.monotonic() + 20
        while not any(e == "campaign_status" and d["status"] == "completed" for e, d in events):
            frame = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if frame["event"].startswith("campaign_"):
                events.append((frame["event"], frame["data"]))
    assert events[0] == ("campaign_status", {"campaign_id": cid, "status": "running"})
    progress = [d for e, d in events if e == "campaign_progress"]
    assert progress == [
        {"campaign_id": cid, "status": "running", "sent_count": 1, "failed_count": 0, "total_recipients": 2},
        {"campaign_id": cid, "status": "running", "sent_count": 2, "failed_count": 0, "total_recipients": 2},
    ]
    assert events[-1] == ("campaign_status", {"campaign_id": cid, "status": "completed"})

    calls = sent_calls(api, device)
    assert [(c["to"], c["kind"], text_of(c)) for c in calls] == [
        (jid(1), "text", "Hola Ana de ACME {{x}}"), (jid(1), "media", ""), (jid(1), "media", "Menú para Ana"),
        (jid(2), "text", "Hola Bob de Beta {{x}}"), (jid(2), "media", ""), (jid(2), "media", "Menú para Bob"),
    ]
    assert "imageMessage" in calls[1]["message"] and "documentMessage" in calls[2]["message"]  # position order
    done = campaign(api, cid)
    assert (done["sent_count"], done["failed_count"], done["status"]) == (2, 0, "completed")
    assert done["completed_at"] and done["started_at"]
    assert all(r["status"] == "sent" and r["sent_at"] for r in recipients_of(cw_database, cid))
    assert stored_per_jid(cw_database, device) == {jid(1): 3, jid(2): 3}  # each send stored by outbound


def test_failures_are_recorded_not_retried(api, cw_database):
    device = connected_device(api)
    cid = campaign_with(api, device, 0, start=False, attachments=[
        {"media_url": "/api/media/file/nope/missing.png", "media_type": "image", "caption": "c"}],
        message_template="Hola")
    api.post(f"/api/campaigns/{cid}/recipients", json={"recipients": [{"jid": jid(1)}, {"jid": "bad@bad.server"}]})
    assert api.post(f"/api/campaigns/{cid}/start").status_code == 200
    done = wait_status(api, cid, "completed")
    assert (done["sent_count"], done["failed_count"]) == (0, 2)
    rows = recipients_of(cw_database, cid)
    assert rows[0]["error_message"].startswith("Media not found (after 1 of 2 messages)")  # text went, image failed
    assert "invalid JID" in rows[1]["error_message"]
    assert [c["to"] for c in sent_calls(api, device)] == [jid(1)]  # only the text; nothing retried


# -- pacing ------------------------------------------------------------------------------------------------------
def test_batches_are_paced(api, cw_database):
    device = connected_device(api)
    # 40 "s" between messages (40 ms here), batches of 3, 15 "min" pause between batches (900 ms here)
    cid = campaign_with(api, device, 7, settings={"min_delay_seconds": 40, "max_delay_seconds": 40, "batch_size": 3,
                                                  "batch_pause_minutes": 15})
    wait_status(api, cid, "completed")
    rows = recipients_of(cw_database, cid)
    waits = [r["wait_time_ms"] for r in rows]
    assert [w is None for w in waits] == [True, False, False, True, False, False, True]  # first of each batch
    assert all(40 <= w < 900 for w in waits if w is not None), waits
    gaps = [(b["sent_at"] - a["sent_at"]).total_seconds() for a, b in itertools.pairwise(rows)]
    assert gaps[2] >= 0.9 and gaps[5] >= 0.9, gaps  # the batch pauses
    assert all(0.04 <= gaps[i] < 0.9 for i in (0, 1, 3, 4)), gaps
    assert [c["to"] for c in sent_calls(api, device)] == [jid(i) for i in range(7)]  # send order = insertion


def test_pause_takes_effect_before_the_next_message_and_resume_finishes(api, cw_database):
    device = connected_device(api)
    cid = campaign_with(api, device, 20, settings={**QUICK, "min_delay_seconds": 60, "max_delay_seconds": 60})
    wait_for(lambda: campaign(api, cid)["sent_count"] >= 3, what="3 sent")
    assert api.post(f"/api/campaigns/{cid}/pause").status_code == 200
    at_pause = len(sent_calls(api, device))
    time.sleep(0.5)  # ≈ 8 message slots
    assert len(sent_calls(api, device)) <= at_pause + 1  # at most the one already in flight
    frozen = len(sent_calls(api, device))
    time.sleep(0.3)
    assert len(sent_calls(api, device)) == frozen and campaign(api, cid)["status"] == "paused"
    statuses = Counter(r["status"] for r in recipients_of(cw_database, cid))
    assert statuses["sent"] == frozen and statuses["pending"] == 20 - frozen and "sending" not in statuses

    assert api.post(f"/api/campaigns/{cid}/start").status_code == 200
    done = wait_status(api, cid, "completed")
    assert done["sent_count"] == 20
    assert Counter(c["to"] for c in sent_calls(api, device)) == {jid(i): 1 for i in range(20)}


def test_devices_send_in_parallel(api, cw_database):
    first, second = connected_device(api, "A"), connected_device(api, "B")
    slow = {**QUICK, "min_delay_seconds": 80, "max_delay_seconds": 80}
    a = campaign_with(api, first, 6, settings=slow)
    b = campaign_with(api, second, 6, settings=slow, first=100)
    wait_status(api, a, "completed")
    wait_status(api, b, "completed")
    ra, rb = recipients_of(cw_database, a), recipients_of(cw_database, b)
    # one pacing loop per device: the two campaigns' sending windows overlap
    assert ra[0]["sent_at"] < rb[-1]["sent_at"] and rb[0]["sent_at"] < ra[-1]["sent_at"]


def test_scheduled_campaign_starts_at_its_time(api, cw_database):
    device = connected_device(api)
    cid = campaign_with(api, device, 2, start=False)
    when = datetime.now(UTC) + timedelta(seconds=1.5)
    r = api.put(f"/api/campaigns/{cid}", json={"status": "scheduled", "scheduled_at": when.isoformat()})
    assert r.status_code == 200 and r.json()["campaign"]["status"] == "scheduled"
    time.sleep(0.6)
    assert campaign(api, cid)["status"] == "scheduled" and sent_calls(api, device) == []
    done = wait_status(api, cid, "completed")
    assert datetime.fromisoformat(done["started_at"]) >= when - timedelta(milliseconds=50)
    assert done["sent_count"] == 2


def test_unavailable_device_waits_instead_of_failing_everyone(api, cw_database):
    r = api.post("/api/devices", json={"name": "Later"})
    device = r.json()["device"]["id"]
    cid = campaign_with(api, device, 3)  # its device is not connected yet
    time.sleep(0.8)
    got = campaign(api, cid)
    assert (got["status"], got["sent_count"], got["failed_count"]) == ("running", 0, 0)
    assert {r["status"] for r in recipients_of(cw_database, cid)} == {"pending"}
    assert api.post(f"/api/devices/{device}/connect").status_code == 200
    assert wait_status(api, cid, "completed")["sent_count"] == 3

    other = api.post("/api/devices", json={"name": "Unlinked"}).json()["device"]["id"]
    gone = campaign_with(api, other, 2)
    support.run_sql(cw_database, "UPDATE devices SET status = 'logged_out' WHERE id = $1", [U(other)])
    assert wait_status(api, gone, "paused")["sent_count"] == 0  # needs pairing again; /start resumes it


# -- daily limit and active hours -------------------------------------------------------------------------------
def test_daily_limit_and_active_hours_in_the_account_time_zone(api, tenant, cw_database):
    device = connected_device(api)
    limited = campaign_with(api, device, 5, settings={**QUICK, "daily_limit": 2})
    # a window open around "now" in UTC but closed in the account's zone (UTC+14): nothing may go out
    now = datetime.now(UTC)
    window = {"active_hours_start": (now - timedelta(hours=1)).strftime("%H:%M"),
              "active_hours_end": (now + timedelta(hours=1)).strftime("%H:%M")}
    support.run_sql(cw_database, "UPDATE accounts SET timezone = 'Pacific/Kiritimati' WHERE id = $1",
                    [U(tenant.account_id)])
    second = connected_device(api, "Other")
    closed = campaign_with(api, second, 3, settings={**QUICK, **window}, first=50)

    wait_for(lambda: campaign(api, limited)["sent_count"] == 2, what="daily limit reached")
    time.sleep(1.0)  # 5 worker ticks
    assert campaign(api, limited)["sent_count"] == 2 and campaign(api, limited)["status"] == "running"
    assert Counter(r["status"] for r in recipients_of(cw_database, limited)) == {"sent": 2, "pending": 3}
    assert campaign(api, closed)["sent_count"] == 0 and sent_calls(api, second) == []
    assert campaign(api, closed)["status"] == "running"

    # the same window in the account's zone once the account is on UTC: it opens
    support.run_sql(cw_database, "UPDATE accounts SET timezone = 'UTC' WHERE id = $1", [U(tenant.account_id)])
    assert wait_status(api, closed, "completed")["sent_count"] == 3
    # raising the limit lets the rest go today
    assert api.put(f"/api/campaigns/{limited}", json={"settings": {**QUICK, "daily_limit": 10}}).status_code == 200
    assert wait_status(api, limited, "completed")["sent_count"] == 5


@contextmanager
def campaign_lock_held(dsn: str, cid: str) -> Iterator[None]:
    """Another "process" (a session of its own, on a thread) holds the campaign's worker lock."""
    ready, release = threading.Event(), threading.Event()

    async def hold() -> None:
        pool = psqlpy.ConnectionPool(dsn=dsn, max_db_pool_size=2)
        try:
            conn = await pool.connection()
            await conn.execute("SELECT pg_advisory_lock(hashtextextended('clarin-campaign:' || $1::uuid::text, 0))",
                               [U(cid)])
            ready.set()
            await asyncio.to_thread(release.wait, 30)
            conn.close()
        finally:
            pool.close()

    thread = threading.Thread(target=lambda: asyncio.run(hold()))
    thread.start()
    assert ready.wait(10)
    try:
        yield
    finally:
        release.set()
        thread.join(10)


def test_a_campaign_another_process_works_is_left_alone(api, cw_database):
    device = connected_device(api)
    cid = campaign_with(api, device, 3, start=False)
    with campaign_lock_held(cw_database, cid):
        assert api.post(f"/api/campaigns/{cid}/start").status_code == 200
        time.sleep(0.8)  # 4 worker ticks
        assert sent_calls(api, device) == [] and campaign(api, cid)["sent_count"] == 0
        assert {r["status"] for r in recipients_of(cw_database, cid)} == {"pending"}
    assert wait_status(api, cid, "completed")["sent_count"] == 3  # the lock is free: this server takes it


# -- crash safety ----------------------------------------------------------------------------------------------
def test_interrupted_recipients_are_reconciled_never_resent(api, tenant, cw_database):
    """Recipients a dead worker left 'sending': sent when outbound stored their message, else failed."""
    device = connected_device(api)
    cid = campaign_with(api, device, 3, start=False)
    rows = recipients_of(cw_database, cid)
    claimed_at = datetime.now(UTC) - timedelta(seconds=5)
    support.run_sql(cw_database, "UPDATE campaign_recipients SET status = 'sending', updated_at = $2 WHERE id = ANY($1)",
                    [[U(rows[0]["id"]), U(rows[1]["id"])], claimed_at])
    # recipient 0's message was stored after the claim; recipient 1 only got somebody else's message
    for n, body in ((0, "Hola R0"), (1, "a reply from the inbox")):
        chat = support.run_sql(cw_database, "INSERT INTO chats (account_id, device_id, jid) VALUES ($1, $2, $3) RETURNING id",
                               [U(tenant.account_id), U(device), jid(n)])[0]["id"]
        support.run_sql(cw_database,
                        'INSERT INTO messages (account_id, device_id, chat_id, message_id, body, is_from_me, "timestamp") '
                        "VALUES ($1, $2, $3, $4, $5, true, now())",
                        [U(tenant.account_id), U(device), U(chat), f"X{n}", body])
    assert api.post(f"/api/campaigns/{cid}/start").status_code == 200
    done = wait_status(api, cid, "completed")
    assert (done["sent_count"], done["failed_count"]) == (2, 1)
    after = recipients_of(cw_database, cid)
    assert [r["status"] for r in after] == ["sent", "failed", "sent"]
    assert after[1]["error_message"] == "interrupted; not retried to avoid a double send"
    assert [c["to"] for c in sent_calls(api, device)] == [jid(2)]  # the interrupted ones were not sent again


def _settle(dsn: str, cid: str, device_id: str, before_restart: Counter[str], resent: list[str]) -> None:
    """Every recipient processed once: sent ones have exactly one stored message, interrupted ones at most one,
    and nothing the first process had sent was sent again."""
    rows = recipients_of(dsn, cid)
    assert {r["status"] for r in rows} <= {"sent", "failed"}, Counter(r["status"] for r in rows)
    stored = stored_per_jid(dsn, device_id)
    for row in rows:
        if row["status"] == "sent":
            assert stored[row["jid"]] == 1, row
        else:
            assert row["error_message"].startswith("interrupted"), row
            assert stored[row["jid"]] <= 1
    assert not set(resent) & set(before_restart), "a recipient was sent twice"
    assert Counter(resent) == Counter({j: 1 for j in resent})
    assert sum(stored.values()) == sum(before_restart.values()) + len(resent)


def test_killed_mid_campaign_and_restarted_sends_each_recipient_once(services, log_dir):
    name, dsn = support.create_database()
    env = support.base_env(dsn, **FAST)
    try:
        first = support.ServerProcess(env, support.free_port(), log_dir / "campaign-killed.log")
        try:
            first.wait_ready()
            tenant = make_tenant(first.url)
            with httpx.Client(base_url=first.url, headers=tenant.headers, timeout=30) as on_first:
                device = connected_device(on_first)
                cid = campaign_with(on_first, device, 40,
                                    settings={**QUICK, "min_delay_seconds": 25, "max_delay_seconds": 25})
                wait_for(lambda: campaign(on_first, cid)["sent_count"] >= 8, what="8 sent")
            kill_tree(first)
        finally:
            first.stop()
        before = stored_per_jid(dsn, device)
        assert 8 <= sum(before.values()) < 40
        with support.running_server(env, log_dir, "campaign-restarted") as second, \
                httpx.Client(base_url=second.url, headers=tenant.headers, timeout=30) as on_second:
            wait_status(on_second, cid, "completed", timeout=30)
            resent = [c["to"] for c in sent_calls(on_second, device)]
        _settle(dsn, cid, device, before, resent)
        assert len(resent) >= 40 - sum(before.values()) - 1  # the rest went from the restarted server
    finally:
        support.drop_database(name)


def test_two_servers_never_overlap_and_the_survivor_takes_over(cw_server, cw_database, log_dir):
    """A second server on the same database: only the device's owner sends; killed, the other one resumes."""
    owner = support.ServerProcess(support.base_env(cw_database, **FAST), support.free_port(),
                                  log_dir / "campaign-owner.log")
    try:
        owner.wait_ready()
        tenant = make_tenant(owner.url)
        with httpx.Client(base_url=owner.url, headers=tenant.headers, timeout=30) as on_owner, \
                httpx.Client(base_url=cw_server.url, headers=tenant.headers, timeout=30) as on_other:
            device = connected_device(on_owner)
            cid = campaign_with(on_other, device, 40,  # started through the server that does NOT run the device
                                settings={**QUICK, "min_delay_seconds": 25, "max_delay_seconds": 25})
            wait_for(lambda: campaign(on_other, cid)["sent_count"] >= 8, what="8 sent")
            assert sent_calls(on_other, device, here=True) == []  # the other server never sends for it
            kill_tree(owner)
            before = stored_per_jid(cw_database, device)
            wait_status(on_other, cid, "completed", timeout=30)
            resent = [c["to"] for c in sent_calls(on_other, device)]
        _settle(cw_database, cid, device, before, resent)
        assert resent, "the surviving server took the campaign over"
    finally:
        owner.stop()


def test_claims_never_overlap(cw_database, api):
    """The claim statement under concurrency: 6 connections race for 300 recipients; each is claimed once."""
    from clarin.db.queries import query

    r = api.post("/api/devices", json={"name": "never connected"})  # no process runs it: no loop serves it
    cid = campaign_with(api, r.json()["device"]["id"], 300, start=False)
    support.run_sql(cw_database, "UPDATE campaigns SET status = 'running' WHERE id = $1", [U(cid)])
    claim = query("campaign_claim_next")

    async def race() -> list[str]:
        pool = psqlpy.ConnectionPool(dsn=cw_database, max_db_pool_size=6)
        claimed: list[str] = []

        async def claimer() -> None:
            conn = await pool.connection()
            try:
                while rows := (await conn.execute(claim, [U(cid)])).result():
                    claimed.append(str(rows[0]["id"]))
            finally:
                conn.close()

        try:
            await asyncio.gather(*(claimer() for _ in range(6)))
        finally:
            pool.close()
        return claimed

    claimed = asyncio.run(race())
    assert len(claimed) == 300 and len(set(claimed)) == 300  # every recipient claimed, none twice
    assert {r["status"] for r in recipients_of(cw_database, cid)} == {"sending"}
