"""Number health end to end (docs/NUMBER_HEALTH.md): one send budget per number shared by manual sends and
campaigns (429 + Retry-After, a campaign waits), warm-up, danger signals that pause every campaign of the number,
typing presence. Real servers (WHATSAPP_DRIVER=simulated, whose numbers answer like throttled ones on demand),
PostgreSQL and Redis; budgets are configured per device (the simulated driver has no default limits)."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from clarin.whatsapp.budget import DEFAULT_LIMITS, NO_LIMITS, Limits, OverBudget
from clarin.whatsapp.health import BANNED, THROTTLED, classify
from tests import support
from tests.crm_helpers import U, expect_event, socket
from tests.test_campaign_worker import QUICK, campaign, jid, recipients_of, wait_for, wait_status

ADMIN_PASSWORD = "admin-pass-123"
FAST = {"CAMPAIGN_DELAY_SCALE": "0.001", "CAMPAIGN_TICK": "0.2", "WHATSAPP_LEASE_RENEW": "1",
        "WHATSAPP_LEASE_TTL": "3", "DB_POOL_SIZE": "8", "HEALTH_MIN_SENDS": "4", "HEALTH_FAILURE_RATE": "0.5",
        "WEBHOOK_ALLOW_PRIVATE": "true"}  # the outbox test subscribes a local URL nobody answers


# -- fixtures --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nh_database(services: None) -> Iterator[str]:
    name, dsn = support.create_database()
    try:
        yield dsn
    finally:
        support.drop_database(name)


@pytest.fixture(scope="module")
def nh_server(nh_database: str, log_dir: Path) -> Iterator[support.ServerProcess]:
    with support.running_server(support.base_env(nh_database, **FAST), log_dir, "number-health") as srv:
        yield srv


@pytest.fixture
def tenant(nh_server: support.ServerProcess) -> support.ServerTenant:
    return support.new_tenant(nh_server.url, ADMIN_PASSWORD, "NH")


@pytest.fixture
def api(nh_server: support.ServerProcess, tenant: support.ServerTenant) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=nh_server.url, headers=tenant.headers, timeout=30) as c:
        yield c


# -- helpers ---------------------------------------------------------------------------------------------------
def connected_device(api: httpx.Client, name: str = "Phone") -> str:
    r = api.post("/api/devices", json={"name": name})
    assert r.status_code == 201, r.text
    device_id = r.json()["device"]["id"]
    assert api.post(f"/api/devices/{device_id}/connect").status_code == 200
    wait_for(lambda: api.get(f"/api/devices/{device_id}").json()["device"]["status"] == "connected",
             what=f"device {device_id} connected")
    return device_id


def set_budget(api: httpx.Client, device_id: str, **limits: Any) -> dict[str, Any]:
    r = api.put(f"/api/devices/{device_id}/budget", json=limits)
    assert r.status_code == 200, r.text
    return r.json()["device"]


def device(api: httpx.Client, device_id: str) -> dict[str, Any]:
    r = api.get(f"/api/devices/{device_id}")
    assert r.status_code == 200, r.text
    return r.json()["device"]


def send(api: httpx.Client, device_id: str, to: str, body: str = "hola") -> httpx.Response:
    return api.post("/api/messages/send", json={"device_id": device_id, "to": to, "body": body})


def inbound(api: httpx.Client, device_id: str, sender: str, body: str = "hi") -> None:
    r = api.post(f"/api/dev/whatsapp/{device_id}/inbound", json={"from": sender, "body": body})
    assert r.status_code == 200, r.text


def faults(api: httpx.Client, device_id: str, **spec: Any) -> None:
    r = api.put(f"/api/dev/whatsapp/{device_id}/faults", json=spec)
    assert r.status_code == 200, r.text


def texts_sent(api: httpx.Client, device_id: str) -> list[str]:
    return [call["to"] for call in api.get(f"/api/dev/whatsapp/{device_id}/sent").json()["sent"]]


def new_campaign(api: httpx.Client, device_id: str, n: int, first: int, *, start: bool = True,
                 settings: dict[str, Any] | None = None, **fields: Any) -> str:
    body = {"name": "Promo", "device_id": device_id, "message_template": "Hola {{nombre}}",
            "settings": settings or QUICK, **fields}
    r = api.post("/api/campaigns", json=body)
    assert r.status_code == 201, r.text
    cid = r.json()["campaign"]["id"]
    recipients = [{"jid": jid(first + i), "name": f"R{first + i}"} for i in range(n)]
    assert api.post(f"/api/campaigns/{cid}/recipients", json={"recipients": recipients}).status_code == 200
    if start:
        assert api.post(f"/api/campaigns/{cid}/start").status_code == 200
    return cid


def assert_429(r: httpx.Response, kind_words: str, most: float) -> int:
    assert r.status_code == 429, r.text
    assert kind_words in r.json()["error"], r.text
    retry = int(r.headers["retry-after"])
    assert 1 <= retry <= most, retry
    return retry


# -- pure rules ------------------------------------------------------------------------------------------------
def test_danger_signals_and_limits_rules() -> None:
    assert classify("failed to send message: server returned error 463") == (THROTTLED, "reach_out_timelock")
    assert classify("failed to send message: server returned error 429") == (THROTTLED, "rate_limit")
    assert classify("rate-overlimit") == (THROTTLED, "rate_limit")
    assert classify("server returned error not-allowed") == (THROTTLED, "not_allowed")
    assert classify("account banned") == (BANNED, "banned")
    assert classify("failed to send message: context deadline exceeded") is None

    paired = datetime(2026, 1, 1, tzinfo=UTC)
    limits = Limits.resolve({"cold_per_hour": 5, "reply_per_minute": None, "warmup": [1, 3]}, defaults=True)
    assert limits.cold[1] == 5 and limits.reply[0] is None and limits.reply[1] == DEFAULT_LIMITS.reply[1]
    assert limits.caps("cold", paired, paired + timedelta(hours=2))[2] == 1  # day 0 of the warm-up
    assert limits.caps("cold", paired, paired + timedelta(days=1, hours=1))[2] == 3
    assert limits.caps("cold", paired, paired + timedelta(days=3))[2] == DEFAULT_LIMITS.cold[2]  # warmed up
    assert limits.caps("reply", paired, paired)[2] == DEFAULT_LIMITS.reply[2]  # the warm-up is for cold only
    assert Limits.resolve(None, defaults=False) == NO_LIMITS
    e = OverBudget(12.2, "cold", "hour")
    assert (e.status, e.headers, e.kind, e.retry_after) == (429, [("retry-after", "13")], "cold", 12.2)


# -- one budget per number ---------------------------------------------------------------------------------------
def test_manual_sends_and_campaigns_share_the_numbers_budget(api: httpx.Client, nh_database: str) -> None:
    device_id = connected_device(api)
    view = set_budget(api, device_id, cold_per_minute=2, reply_per_minute=3)
    assert view["send_budget"]["limits"]["cold"] == {"minute": 2, "hour": None, "day": None}
    assert view["health"]["state"] == "ok"

    # cold: first messages to people who never wrote
    assert send(api, device_id, jid(1)).status_code == 200
    assert send(api, device_id, jid(2)).status_code == 200
    assert_429(send(api, device_id, jid(3)), "new conversations per minute", 60)
    # a follow-up in a chat this number opened is not a new conversation; a chat the contact wrote in is a reply
    assert send(api, device_id, jid(1), "again").status_code == 200
    inbound(api, device_id, jid(4).split("@")[0])
    assert send(api, device_id, jid(4), "thanks").status_code == 200
    got = device(api, device_id)["send_budget"]
    assert got["used"]["cold"]["minute"] == 2 and got["remaining"]["cold"]["minute"] == 0
    assert got["used"]["reply"]["minute"] == 2 and got["remaining"]["reply"]["minute"] == 1
    assert send(api, device_id, jid(4), "one more").status_code == 200
    assert_429(send(api, device_id, jid(4), "too many"), "replies per minute", 60)
    assert jid(3) not in texts_sent(api, device_id)  # a refused send never reached the driver

    # a campaign on the spent number waits (recipients stay pending, nothing fails) ...
    cid = new_campaign(api, device_id, 3, first=100)
    time.sleep(1.5)
    got_campaign = campaign(api, cid)
    assert (got_campaign["status"], got_campaign["sent_count"], got_campaign["failed_count"]) == ("running", 0, 0)
    assert {r["status"] for r in recipients_of(nh_database, cid)} == {"pending"}
    # ... and sends once the number's limit is raised
    set_budget(api, device_id, cold_per_minute=100, reply_per_minute=100)
    assert wait_status(api, cid, "completed")["sent_count"] == 3

    # the list and the device's old fields keep their shape; the health fields are additive, on GET :id only
    listed = next(d for d in api.get("/api/devices").json()["devices"] if d["id"] == device_id)
    assert "health" not in listed and "send_budget" not in listed
    assert {"id", "account_id", "name", "status", "jid", "phone"} <= set(device(api, device_id))
    assert api.put(f"/api/devices/{device_id}/budget", json={"cold_per_minute": -1}).status_code == 400
    assert api.put(f"/api/devices/{device_id}/budget", json={"nope": 1}).status_code == 400
    assert api.put(f"/api/devices/{uuid.uuid4()}/budget", json={}).status_code == 404


def test_warm_up_ramps_with_the_numbers_age(api: httpx.Client, nh_database: str) -> None:
    device_id = connected_device(api)
    paired_at = device(api, device_id)["send_budget"]["warmup"]["paired_at"]
    assert paired_at is not None  # set by the pairing (trigger on devices.jid)
    view = set_budget(api, device_id, cold_per_day=10, warmup=[1, 3])
    assert view["send_budget"]["warmup"] | {"paired_at": None} == {
        "paired_at": None, "day": 0, "schedule": [1, 3], "cold_per_day_cap": 1}
    assert send(api, device_id, jid(200)).status_code == 200
    retry = assert_429(send(api, device_id, jid(201)), "new conversations per day", 86_400)
    assert retry <= 24 * 3600  # at the latest when the next warm-up day starts

    support.run_sql(nh_database, "UPDATE devices SET paired_at = now() - interval '25 hours' WHERE id = $1",
                    [U(device_id)])
    assert device(api, device_id)["send_budget"]["warmup"]["cold_per_day_cap"] == 3
    assert send(api, device_id, jid(201)).status_code == 200
    assert send(api, device_id, jid(202)).status_code == 200
    assert_429(send(api, device_id, jid(203)), "new conversations per day", 86_400)

    support.run_sql(nh_database, "UPDATE devices SET paired_at = now() - interval '3 days' WHERE id = $1",
                    [U(device_id)])
    got = device(api, device_id)["send_budget"]
    assert got["warmup"]["day"] is None and got["limits"]["cold"]["day"] == 10
    assert got["used"]["cold"]["day"] == 3 and got["remaining"]["cold"]["day"] == 7
    assert send(api, device_id, jid(203)).status_code == 200


# -- danger signals ----------------------------------------------------------------------------------------------
def test_throttled_number_pauses_every_campaign_until_a_person_resumes(
    api: httpx.Client, tenant: support.ServerTenant, nh_server: support.ServerProcess, nh_database: str,
) -> None:
    device_id = connected_device(api)
    hook = api.post("/api/webhooks", json={"url": "http://127.0.0.1:9/clarin-hook",
                                           "events": ["device_health", "campaign_status"]})
    assert hook.status_code == 201, hook.text
    faults(api, device_id, error="463", after=2)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    scheduled = new_campaign(api, device_id, 2, first=400, start=False)
    assert api.put(f"/api/campaigns/{scheduled}", json={"status": "scheduled", "scheduled_at": later}).status_code == 200
    with socket(nh_server, tenant.token) as ws:
        cid = new_campaign(api, device_id, 5, first=300)
        event = expect_event(ws, "device_health", timeout=20, device_id=device_id)["data"]
        assert event["health"] == "throttled" and event["signal"] == "reach_out_timelock"
        assert set(event["paused_campaigns"]) == {cid, scheduled}
    got = wait_status(api, cid, "paused")
    assert (got["sent_count"], got["failed_count"]) == (2, 0)
    # the refused recipient goes back to pending (just after the pause commits), never failed
    wait_for(lambda: Counter(r["status"] for r in recipients_of(nh_database, cid)) == {"sent": 2, "pending": 3},
             what="refused recipient back to pending")
    assert campaign(api, scheduled)["status"] == "paused"
    view = device(api, device_id)
    assert view["health"]["state"] == "throttled" and "463" in view["health"]["evidence"]["error"]
    assert {p["campaign_id"] for p in view["pauses"]} == {cid, scheduled}
    assert all("throttled" in p["reason"] for p in view["pauses"])

    # the webhook outbox got the same events, written in the pause's transaction
    rows = support.run_sql(nh_database, "SELECT event, data FROM webhook_deliveries WHERE account_id = $1 "
                           "AND event IN ('device_health', 'campaign_status') ORDER BY seq",
                           [U(tenant.account_id)])
    health_rows = [json.loads(r["data"]) for r in rows if r["event"] == "device_health"]
    assert [(h["health"], h["signal"], set(h["paused_campaigns"])) for h in health_rows] == [
        ("throttled", "reach_out_timelock", {cid, scheduled})]
    assert {(json.loads(r["data"])["campaign_id"], json.loads(r["data"])["status"]) for r in rows
            if r["event"] == "campaign_status"} >= {(cid, "paused"), (scheduled, "paused")}

    time.sleep(1.0)  # never resumed automatically
    assert campaign(api, cid)["status"] == "paused" and device(api, device_id)["health"]["state"] == "throttled"

    faults(api, device_id)  # WhatsApp lets the number send again; a person resumes
    assert api.post(f"/api/campaigns/{cid}/start").status_code == 200
    assert wait_status(api, cid, "completed")["sent_count"] == 5
    view = device(api, device_id)
    assert view["health"]["state"] == "ok" and view["health"]["evidence"]["resumed_after"] == "throttled"
    assert [p["campaign_id"] for p in view["pauses"]] == [scheduled]
    assert campaign(api, scheduled)["status"] == "paused"

    metrics = httpx.get(nh_server.url + "/metrics").text
    assert 'clarin_campaign_auto_pauses_total{signal="reach_out_timelock"}' in metrics


def test_failure_rate_and_logout_pause_the_number(api: httpx.Client, nh_database: str) -> None:
    device_id = connected_device(api)
    for n in range(6):  # successful sends count in the rate's denominator
        assert send(api, device_id, jid(580 + n)).status_code == 200
    faults(api, device_id, failure_rate=1.0, error="context deadline exceeded")
    cid = new_campaign(api, device_id, 10, first=500)
    wait_status(api, cid, "paused")
    # an ordinary failure may have reached WhatsApp: those recipients fail (never re-sent); 6 failed of 12 sends
    # (HEALTH_FAILURE_RATE 0.5, HEALTH_MIN_SENDS 4) trips the guard. The pause commits before the worker records
    # the 6th recipient's failure, so wait for it; nothing is sent after the pause.
    wait_for(lambda: campaign(api, cid)["failed_count"] >= 6, what="6th failure recorded")
    time.sleep(0.6)  # three worker ticks
    got = campaign(api, cid)
    assert (got["status"], got["failed_count"], got["sent_count"]) == ("paused", 6, 0), got
    view = device(api, device_id)
    assert view["health"]["state"] == "paused"
    assert view["health"]["evidence"] | {"at": None} == {
        "signal": "failure_rate", "at": None, "error": "failed to send message: context deadline exceeded",
        "failed": 6, "sends": 12, "window_seconds": 600.0, "threshold": 0.5}
    # a manual send still works when the number answers again (health is a campaign guard, not a send ban)
    faults(api, device_id)
    assert send(api, device_id, jid(599)).status_code == 200

    other = connected_device(api, "Unlinked")
    gone = new_campaign(api, other, 2, first=600, start=False)
    later_one = new_campaign(api, other, 2, first=610, start=False)
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    assert api.put(f"/api/campaigns/{later_one}", json={"status": "scheduled", "scheduled_at": later}).status_code == 200
    support.run_sql(nh_database, "UPDATE devices SET status = 'logged_out' WHERE id = $1", [U(other)])
    assert api.post(f"/api/campaigns/{gone}/start").status_code == 200
    # a logged-out number pauses its running and scheduled campaigns, with the reason recorded
    wait_status(api, gone, "paused")
    wait_status(api, later_one, "paused")
    view = device(api, other)
    assert view["health"]["state"] == "paused" and view["health"]["evidence"] == {"signal": "logged_out"}
    assert {p["campaign_id"] for p in view["pauses"]} == {gone, later_one}
    assert all("logged out" in p["reason"] for p in view["pauses"])


# -- typing ------------------------------------------------------------------------------------------------------
def test_simulate_typing_sends_composing_then_paused_before_each_message(api: httpx.Client) -> None:
    device_id = connected_device(api)
    typed = new_campaign(api, device_id, 2, first=700, settings={**QUICK, "simulate_typing": True})
    wait_status(api, typed, "completed")
    presences = api.get(f"/api/dev/whatsapp/{device_id}/presences").json()["presences"]
    assert [(p["to"], p["state"]) for p in presences] == [
        (jid(700), "composing"), (jid(700), "paused"), (jid(701), "composing"), (jid(701), "paused")]
    sent = api.get(f"/api/dev/whatsapp/{device_id}/sent").json()["sent"]
    for index, recipient in enumerate((jid(700), jid(701))):
        at = datetime.fromisoformat(sent[index]["timestamp"]).timestamp()
        assert sent[index]["to"] == recipient and at >= int(presences[2 * index + 1]["at"])  # typed, then sent

    plain = new_campaign(api, device_id, 2, first=710, settings={**QUICK, "simulate_typing": False})
    wait_status(api, plain, "completed")
    assert len(api.get(f"/api/dev/whatsapp/{device_id}/presences").json()["presences"]) == 4


def test_neonize_driver_sends_chat_presence() -> None:
    """The real driver hands typing to neonize's ``send_chat_presence`` (composing / paused, text media) with a
    serializable JID; a client neonize never started answers not connected (goneonize would crash on it)."""
    import asyncio

    from neonize.utils.enum import ChatPresence, ChatPresenceMedia

    from clarin.whatsapp.driver import DeviceSession, NotConnected
    from clarin.whatsapp.neonize_driver import NeonizeDriver

    driver = NeonizeDriver("postgres://clarin@db.invalid/clarin")
    device = DeviceSession(uuid.uuid4(), uuid.uuid4())
    calls: list[tuple[str, ChatPresence, ChatPresenceMedia]] = []

    async def recorded(jid: Any, state: ChatPresence, media: ChatPresenceMedia) -> None:
        jid.SerializeToString()  # proto2 with required fields: must be complete
        calls.append((f"{jid.User}@{jid.Server}", state, media))

    async def run() -> None:
        client = driver.attach(device)
        with pytest.raises(NotConnected):
            await driver.send_presence(device.id, jid(1), "composing")
        client.connect_task = asyncio.get_running_loop().create_future()  # as if dialled
        client.send_chat_presence = recorded
        await driver.send_presence(device.id, jid(1), "composing")
        await driver.send_presence(device.id, jid(1), "paused")
        client.connect_task = None
        driver._clients.clear()

    asyncio.run(run())
    media = ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT
    assert calls == [(jid(1), ChatPresence.CHAT_PRESENCE_COMPOSING, media),
                     (jid(1), ChatPresence.CHAT_PRESENCE_PAUSED, media)]
