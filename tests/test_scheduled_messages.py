"""Scheduled single messages end to end (issue 20 goal 5, docs/SCHEDULED_MESSAGES.md): a real server
(WHATSAPP_DRIVER=simulated), PostgreSQL and Redis.

The server runs with SCHEDULED_TICK=30: a message sent within a few seconds of its send_at proves the sender
sleeps until the due time (or is nudged by the create), not until its next poll.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import support
from tests.crm_helpers import expect_event, socket
from tests.test_campaign_worker import connected_device, sent_calls, text_of, wait_for

ADMIN_PASSWORD = "admin-pass-123"
COUNT_CAP = 5
ENV = {"TOTAL_COUNT_CAP": str(COUNT_CAP), "SCHEDULED_TICK": "30", "WHATSAPP_LEASE_RENEW": "1", "WHATSAPP_LEASE_TTL": "3", "DB_POOL_SIZE": "8"}
LATE_BOUND = 8.0  # seconds after send_at (the tick is 30 s): generous for a loaded machine


def at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def phone_jid(n: int) -> str:
    return f"51922{n:06d}@s.whatsapp.net"


@pytest.fixture(scope="module")
def sm_server(services: None, log_dir: Path) -> Iterator[tuple[support.ServerProcess, str]]:
    name, dsn = support.create_database()
    try:
        with support.running_server(support.base_env(dsn, **ENV), log_dir, "scheduled") as srv:
            yield srv, dsn
    finally:
        support.drop_database(name)


@pytest.fixture
def tenant(sm_server: tuple[support.ServerProcess, str]) -> support.ServerTenant:
    return support.new_tenant(sm_server[0].url, ADMIN_PASSWORD, "SM")


@pytest.fixture
def api(sm_server: tuple[support.ServerProcess, str], tenant: support.ServerTenant) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sm_server[0].url, headers=tenant.headers, timeout=30) as c:
        yield c


def device(api: httpx.Client, name: str = "Phone") -> str:
    r = api.post("/api/devices", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["device"]["id"]


def schedule(api: httpx.Client, **body: Any) -> httpx.Response:
    return api.post("/api/messages/schedule", json=body)


def scheduled(api: httpx.Client, sid: str) -> dict[str, Any]:
    r = api.get(f"/api/messages/scheduled/{sid}")
    assert r.status_code == 200, r.text
    return r.json()["scheduled_message"]


def error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    return r.json()["error"]


# -- validation ------------------------------------------------------------------------------------------------
def test_create_validation(api: httpx.Client, sm_server: tuple[support.ServerProcess, str]) -> None:
    dev = device(api)
    ok = {"device_id": dev, "to": "51922000001", "body": "hola", "send_at": at(3600)}
    assert error(schedule(api, **{**ok, "device_id": "nope"}), 400) == "Invalid device ID"
    assert error(schedule(api, **{**ok, "device_id": str(uuid.uuid4())}), 404) == "Device not found"
    assert error(schedule(api, **{**ok, "to": ""}), 400) == "to or chat_id is required"
    assert error(schedule(api, **{**ok, "chat_id": str(uuid.uuid4())}), 400) == "give either to or chat_id, not both"
    assert error(schedule(api, **{**ok, "to": "", "chat_id": "x"}), 400) == "Invalid chat ID"
    assert error(schedule(api, **{**ok, "to": "", "chat_id": str(uuid.uuid4())}), 404) == "Chat not found"
    assert "invalid" in error(schedule(api, **{**ok, "to": "bad@bad.server"}), 400).lower()
    assert error(schedule(api, **{**ok, "body": "   "}), 400) == "Message body is required"
    assert error(schedule(api, **{**ok, "send_at": ""}), 400) == "send_at is required"
    assert "RFC 3339" in error(schedule(api, **{**ok, "send_at": "tomorrow"}), 400)
    assert "time zone" in error(schedule(api, **{**ok, "send_at": "2031-01-01T09:00:00"}), 400)
    assert error(schedule(api, **{**ok, "send_at": at(-300)}), 400) == "send_at must not be in the past"
    assert schedule(api, **{**ok, "send_at": at(-20)}).status_code == 201  # within the grace: sent at once
    other = support.new_tenant(sm_server[0].url, ADMIN_PASSWORD, "SMother")
    with httpx.Client(base_url=sm_server[0].url, headers=other.headers, timeout=30) as foreign:
        assert error(schedule(foreign, **ok), 404) == "Device not found"  # someone else's device
    assert api.post("/api/messages/schedule", content=b"{not json").status_code == 400


def test_create_list_edit_cancel(api: httpx.Client, tenant: support.ServerTenant,
                                 sm_server: tuple[support.ServerProcess, str]) -> None:
    server = sm_server[0]
    dev = device(api)
    with socket(server, tenant.token) as ws:
        r = schedule(api, device_id=dev, to="+51 922-000-002", body="tercero", send_at=at(7200))
        assert r.status_code == 201, r.text
        third = r.json()["scheduled_message"]
        assert (third["to"], third["status"], third["body"]) == (phone_jid(2), "pending", "tercero")
        event = expect_event(ws, "scheduled_message", action="created")["data"]
        assert event["scheduled_message"]["id"] == third["id"]
        first = schedule(api, device_id=dev, to=phone_jid(3), body="primero", send_at=at(3600)).json()
        second = schedule(api, device_id=dev, to=phone_jid(4), body="segundo", send_at=at(5400)).json()
        first, second = first["scheduled_message"], second["scheduled_message"]

        listed = api.get("/api/messages/scheduled").json()
        assert [m["id"] for m in listed["scheduled_messages"]] == [first["id"], second["id"], third["id"]]
        assert (listed["total"], listed["total_capped"], listed["limit"], listed["offset"]) == (3, False, 100, 0)
        page = api.get("/api/messages/scheduled", params={"limit": 1, "offset": 1}).json()
        assert [m["id"] for m in page["scheduled_messages"]] == [second["id"]] and page["total"] == 3
        assert api.get("/api/messages/scheduled", params={"limit": 100000}).json()["limit"] == 500  # capped
        assert error(api.get("/api/messages/scheduled", params={"status": "bogus"}), 400).startswith("status must")

        later = at(9000)
        r = api.put(f"/api/messages/scheduled/{first['id']}", json={"body": "primero (editado)", "send_at": later})
        assert r.status_code == 200, r.text
        edited = r.json()["scheduled_message"]
        assert edited["body"] == "primero (editado)" and edited["to"] == phone_jid(3)
        assert datetime.fromisoformat(edited["send_at"]) == datetime.fromisoformat(later)
        assert expect_event(ws, "scheduled_message", action="updated")["data"]["scheduled_message"]["id"] == first["id"]
        r = api.put(f"/api/messages/scheduled/{first['id']}", json={"to": "51922000005"})
        assert r.json()["scheduled_message"]["to"] == phone_jid(5) and r.json()["scheduled_message"]["body"] == \
            "primero (editado)"
        assert error(api.put(f"/api/messages/scheduled/{first['id']}", json={"send_at": at(-600)}), 400) == \
            "send_at must not be in the past"
        assert error(api.put(f"/api/messages/scheduled/{first['id']}", json={"body": ""}), 400) == \
            "Message body is required"

        r = api.delete(f"/api/messages/scheduled/{second['id']}")
        assert r.status_code == 200 and r.json()["scheduled_message"]["status"] == "cancelled"
        assert expect_event(ws, "scheduled_message", action="cancelled")["data"]["scheduled_message"]["id"] == \
            second["id"]
    assert error(api.delete(f"/api/messages/scheduled/{second['id']}"), 409) == "scheduled message is cancelled"
    assert error(api.put(f"/api/messages/scheduled/{second['id']}", json={"body": "x"}), 409) == \
        "scheduled message is cancelled"
    pending = api.get("/api/messages/scheduled", params={"status": "pending"}).json()
    assert {m["id"] for m in pending["scheduled_messages"]} == {first["id"], third["id"]} and pending["total"] == 2
    cancelled = api.get("/api/messages/scheduled", params={"status": "cancelled"}).json()
    assert [m["id"] for m in cancelled["scheduled_messages"]] == [second["id"]]

    unknown = str(uuid.uuid4())
    assert error(api.get(f"/api/messages/scheduled/{unknown}"), 404) == "Scheduled message not found"
    assert error(api.put(f"/api/messages/scheduled/{unknown}", json={"body": "x"}), 404) == \
        "Scheduled message not found"
    assert error(api.delete(f"/api/messages/scheduled/{unknown}"), 404) == "Scheduled message not found"
    assert error(api.get("/api/messages/scheduled/not-a-uuid"), 400) == "Invalid scheduled message ID"
    other = support.new_tenant(server.url, ADMIN_PASSWORD, "SMother")
    with httpx.Client(base_url=server.url, headers=other.headers, timeout=30) as foreign:
        assert foreign.get(f"/api/messages/scheduled/{first['id']}").status_code == 404
        assert foreign.put(f"/api/messages/scheduled/{first['id']}", json={"body": "x"}).status_code == 404
        assert foreign.delete(f"/api/messages/scheduled/{first['id']}").status_code == 404
        assert foreign.get("/api/messages/scheduled").json()["total"] == 0
    assert scheduled(api, first["id"])["status"] == "pending"  # untouched by the foreign tries


def test_totals_are_capped(api: httpx.Client) -> None:
    dev = device(api)
    for n in range(COUNT_CAP + 1):
        assert schedule(api, device_id=dev, to=phone_jid(50 + n), body=f"m{n}", send_at=at(3600 + n)).status_code == 201
    for params in ({}, {"status": "pending"}):
        listed = api.get("/api/messages/scheduled", params={**params, "limit": 2}).json()
        assert (listed["total"], listed["total_capped"], len(listed["scheduled_messages"])) == (COUNT_CAP, True, 2)
    assert api.get("/api/messages/scheduled", params={"status": "sent"}).json()["total_capped"] is False


# -- sending ---------------------------------------------------------------------------------------------------
def test_due_message_is_sent_once_on_time_with_events(api: httpx.Client, tenant: support.ServerTenant,
                                                      sm_server: tuple[support.ServerProcess, str]) -> None:
    server, dsn = sm_server
    dev = connected_device(api)
    to = phone_jid(10)
    with socket(server, tenant.token) as ws:
        due = datetime.now(UTC) + timedelta(seconds=3)
        r = schedule(api, device_id=dev, to=to, body="Recordatorio: cita mañana", send_at=due.isoformat())
        assert r.status_code == 201, r.text
        sid = r.json()["scheduled_message"]["id"]
        frames: list[dict[str, Any]] = []  # message_sent (outbound's) comes first, then scheduled_message sent
        deadline = time.monotonic() + 3 + LATE_BOUND + 10
        while not any(f["event"] == "scheduled_message" and f["data"]["action"] == "sent" for f in frames):
            frames.append(json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic()))))
        arrived = datetime.now(UTC)
    done = frames[-1]["data"]["scheduled_message"]
    message_sent = next((f["data"] for f in frames if f["event"] == "message_sent"), None)
    assert done["id"] == sid and done["status"] == "sent" and done["sent_message_id"] and done["chat_id"]
    lateness = (arrived - due).total_seconds()
    print(f"\nscheduled message sent {lateness:.2f} s after its send_at (SCHEDULED_TICK=30)")
    assert lateness < LATE_BOUND, lateness
    assert datetime.fromisoformat(done["sent_at"]) >= due
    assert message_sent is not None and message_sent["message"]["id"] == done["sent_message_id"]
    calls = [c for c in sent_calls(api, dev) if c["to"] == to]
    assert [text_of(c) for c in calls] == ["Recordatorio: cita mañana"]  # once
    page = api.get(f"/api/chats/{done['chat_id']}/messages").json()
    assert [m["body"] for m in page["messages"]] == ["Recordatorio: cita mañana"]
    assert page["messages"][0]["id"] == done["sent_message_id"] and page["messages"][0]["is_from_me"]
    assert error(api.put(f"/api/messages/scheduled/{sid}", json={"body": "x"}), 409) == "scheduled message is sent"
    assert error(api.delete(f"/api/messages/scheduled/{sid}"), 409) == "scheduled message is sent"
    time.sleep(1)
    assert len([c for c in sent_calls(api, dev) if c["to"] == to]) == 1  # never again
    rows = support.run_sql(dsn, "SELECT status, attempts FROM scheduled_messages WHERE id = $1", [uuid.UUID(sid)])
    assert rows == [{"status": "sent", "attempts": 1}]


def test_to_a_chat_and_edited_time(api: httpx.Client) -> None:
    dev = connected_device(api)
    chat = api.post("/api/chats/new", json={"device_id": dev, "phone": "51922000020", "initial_message": "hola"})
    assert chat.status_code == 201, chat.text
    chat_id = chat.json()["chat"]["id"]
    r = schedule(api, device_id=dev, chat_id=chat_id, body="seguimiento", send_at=at(3600))
    assert r.status_code == 201, r.text
    sid = r.json()["scheduled_message"]["id"]
    assert r.json()["scheduled_message"]["chat_id"] == chat_id
    assert r.json()["scheduled_message"]["to"] == phone_jid(20)
    time.sleep(1)
    assert scheduled(api, sid)["status"] == "pending"  # an hour early: not sent
    assert api.put(f"/api/messages/scheduled/{sid}", json={"send_at": at(1)}).status_code == 200  # now due soon
    done = wait_for(lambda: (m := scheduled(api, sid))["status"] == "sent" and m, timeout=1 + LATE_BOUND,
                    what="the edited message sent")
    assert done["chat_id"] == chat_id
    bodies = [m["body"] for m in api.get(f"/api/chats/{chat_id}/messages").json()["messages"]]
    assert sorted(bodies) == ["hola", "seguimiento"]


def test_disconnected_device_keeps_it_pending_until_connected(api: httpx.Client) -> None:
    dev = device(api)  # never connected
    sid = schedule(api, device_id=dev, to=phone_jid(30), body="cuando conecte", send_at=at(0)).json()[
        "scheduled_message"]["id"]
    time.sleep(2)
    current = scheduled(api, sid)
    assert current["status"] == "pending" and current["attempts"] == 0  # not claimed, not failed
    assert api.post(f"/api/devices/{dev}/connect").status_code == 200  # on_connected wakes the sender
    wait_for(lambda: scheduled(api, sid)["status"] == "sent", timeout=LATE_BOUND + 5, what="sent after connecting")
    assert [text_of(c) for c in sent_calls(api, dev)] == ["cuando conecte"]



def test_over_budget_waits_pending_then_sends(api: httpx.Client, sm_server: tuple[support.ServerProcess, str]) -> None:
    """The number's send budget (docs/NUMBER_HEALTH.md): the second new conversation in a minute goes back to
    pending with its send_at unchanged, is never failed, and goes once the window frees a slot."""
    dsn = sm_server[1]
    dev = connected_device(api)
    r = api.put(f"/api/devices/{dev}/budget", json={"cold_per_minute": 1})
    assert r.status_code == 200, r.text
    due = at(0)
    first = schedule(api, device_id=dev, to=phone_jid(40), body="uno", send_at=due).json()["scheduled_message"]
    second = schedule(api, device_id=dev, to=phone_jid(41), body="dos", send_at=due).json()["scheduled_message"]
    wait_for(lambda: scheduled(api, first["id"])["status"] == "sent", timeout=LATE_BOUND, what="the first sent")
    wait_for(lambda: scheduled(api, second["id"])["attempts"] >= 1, timeout=LATE_BOUND, what="the second tried")
    time.sleep(1)
    waiting = scheduled(api, second["id"])
    assert waiting["status"] == "pending" and "error_message" not in waiting, waiting  # waits, not failed
    assert waiting["send_at"] == second["send_at"]  # unchanged
    assert [text_of(c) for c in sent_calls(api, dev)] == ["uno"]
    done = wait_for(lambda: (m := scheduled(api, second["id"]))["status"] == "sent" and m, timeout=60 + 30,
                    what="the second sent once the minute's slot freed")
    attempts = support.run_sql(dsn, "SELECT attempts FROM scheduled_messages WHERE id = $1", [uuid.UUID(done["id"])])
    print(f"\nover budget: sent after {attempts[0]['attempts']} claim(s), "
          f"{(datetime.fromisoformat(done['sent_at']) - datetime.fromisoformat(due)).total_seconds():.1f} s late")
    assert sorted(text_of(c) for c in sent_calls(api, dev)) == ["dos", "uno"]  # each once
