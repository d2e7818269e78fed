"""The webhook outbox rows of a change commit with the change itself (issue 15, docs/WEBHOOKS.md "Durability").

A trigger in the test database makes every outbox insert of a chosen account fail. Where the rows are written in
the change's own transaction (or statement) the change then rolls back with them and the request fails; had they
been written after the commit, as the broadcaster's fallback does, the change would stay and the event would wait
in memory. Lifting the refusal, the same write succeeds and its row is in ``webhook_deliveries``. Each path is a
real server, real PostgreSQL/Redis, the simulated WhatsApp driver and a real local receiver: lead update, contact
update, tag create, inbound ingestion, campaign status (API write and the supervisor's cluster-wide statement) and
a chat send's message row. An account without an enabled subscription writes nothing to the outbox at all.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import support
from tests.inbox_support import connected_device, new_phone
from tests.webhook_support import Receiver, receiver

PASSWORD = "admin-pass-123"
FAST = {"WEBHOOK_ALLOW_PRIVATE": "true", "WEBHOOK_RETRY_SCALE": "0.0001", "WEBHOOK_POLL_INTERVAL": "0.05",
        "CAMPAIGN_DELAY_SCALE": "0.001", "CAMPAIGN_TICK": "0.2"}
REFUSAL = [
    "CREATE TABLE test_outbox_refused (account_id uuid PRIMARY KEY)",
    # A sequence is not transactional: it counts the refused inserts even though each one is rolled back.
    "CREATE SEQUENCE test_outbox_refusals",
    """CREATE FUNCTION test_outbox_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM test_outbox_refused WHERE account_id = NEW.account_id) THEN
            PERFORM nextval('test_outbox_refusals');
            RAISE EXCEPTION 'webhook outbox refused by the test';
        END IF;
        RETURN NEW;
    END $$""",
    "CREATE TRIGGER test_outbox_refuse BEFORE INSERT ON webhook_deliveries FOR EACH ROW "
    "EXECUTE FUNCTION test_outbox_refuse()",
]


@dataclass(frozen=True)
class Srv:
    url: str
    dsn: str


@pytest.fixture(scope="module")
def srv(services: None, log_dir: Path) -> Iterator[Srv]:
    name, dsn = support.create_database()
    try:
        with support.running_server(support.base_env(dsn, **FAST), log_dir, "webhooks-atomic") as server:
            for statement in REFUSAL:
                support.run_sql(dsn, statement)
            yield Srv(server.url, dsn)
    finally:
        support.drop_database(name)


@pytest.fixture(scope="module")
def rx() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


@pytest.fixture
def hc(srv: Srv) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=srv.url, timeout=20) as c:
        yield c


class Refusal:
    def __init__(self, dsn: str, account_id: str) -> None:
        self.dsn, self.account_id = dsn, account_id

    def __enter__(self) -> Refusal:
        support.run_sql(self.dsn, "INSERT INTO test_outbox_refused VALUES ($1)", [uuid.UUID(self.account_id)])
        return self

    def __exit__(self, *exc: object) -> None:
        support.run_sql(self.dsn, "DELETE FROM test_outbox_refused WHERE account_id = $1", [uuid.UUID(self.account_id)])

    def attempts(self) -> int:
        rows = support.run_sql(self.dsn, "SELECT last_value, is_called FROM test_outbox_refusals")
        return int(rows[0]["last_value"]) if rows[0]["is_called"] else 0


def subscribed(hc: httpx.Client, srv: Srv, rx: Receiver) -> support.ServerTenant:
    t = support.new_tenant(srv.url, PASSWORD, "Atomic")
    made = hc.post("/api/webhooks", json={"url": rx.url(f"/{t.account_id}"), "events": ["*"]}, headers=t.headers)
    assert made.status_code == 201, made.text
    return t


def rows(srv: Srv, account_id: str, event: str) -> list[dict[str, Any]]:
    """The ``data`` of the account's outbox rows of ``event``, oldest first."""
    found = support.run_sql(srv.dsn, "SELECT data FROM webhook_deliveries WHERE account_id = $1 AND event = $2 "
                            "ORDER BY seq", [uuid.UUID(account_id), event])
    return [json.loads(row["data"]) for row in found]


def wait_for(what: str, check: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"{what} not seen in {timeout}s")


def test_crm_writes_roll_back_with_their_outbox_rows(hc: httpx.Client, srv: Srv,
                                                      rx: Receiver) -> None:
    t = subscribed(hc, srv, rx)
    device = connected_device(hc, t.headers, "Atomic phone")
    phone = new_phone()
    assert hc.post(f"/api/dev/whatsapp/{device['id']}/inbound", json={"from": phone, "body": "hola"},
                   headers=t.headers).status_code == 200
    contact = wait_for("the inbound contact", lambda: hc.get("/api/contacts", params={"search": phone},
                                                             headers=t.headers).json()["contacts"])[0]
    lead = hc.post("/api/leads", json={"phone": "+" + new_phone(), "name": "Before"}, headers=t.headers)
    assert lead.status_code == 201, lead.text
    lead_id = lead.json()["lead"]["id"]
    tag_name = f"atomic {uuid.uuid4().hex[:6]}"

    with Refusal(srv.dsn, t.account_id):
        assert hc.put(f"/api/leads/{lead_id}", json={"name": "After"}, headers=t.headers).status_code == 500
        assert hc.put(f"/api/contacts/{contact['id']}", json={"notes": "vip"}, headers=t.headers).status_code == 500
        assert hc.post("/api/tags", json={"name": tag_name}, headers=t.headers).status_code == 500
    # Nothing of the three changes stayed without its event.
    assert hc.get(f"/api/leads/{lead_id}", headers=t.headers).json()["lead"]["name"] == "Before"
    assert (hc.get(f"/api/contacts/{contact['id']}", headers=t.headers).json()["contact"].get("notes") or "") != "vip"
    assert tag_name not in [tag["name"] for tag in hc.get("/api/tags", headers=t.headers).json()["tags"]]
    assert {"action": "updated", "lead_id": lead_id} not in rows(srv, t.account_id, "lead_update")
    assert rows(srv, t.account_id, "tag_update") == []

    assert hc.put(f"/api/leads/{lead_id}", json={"name": "After"}, headers=t.headers).status_code == 200
    assert hc.put(f"/api/contacts/{contact['id']}", json={"notes": "vip"}, headers=t.headers).status_code == 200
    tag = hc.post("/api/tags", json={"name": tag_name}, headers=t.headers)
    assert tag.status_code == 201, tag.text
    assert {"action": "updated", "lead_id": lead_id} in rows(srv, t.account_id, "lead_update")
    assert {"action": "updated", "contact_id": contact["id"]} in rows(srv, t.account_id, "contact_update")
    assert rows(srv, t.account_id, "tag_update") == [{"action": "created", "tag_id": tag.json()["tag"]["id"]}]


def test_an_account_without_subscription_never_writes_the_outbox(hc: httpx.Client,
                                                                 srv: Srv) -> None:
    t = support.new_tenant(srv.url, PASSWORD, "Quiet")
    with Refusal(srv.dsn, t.account_id) as refusal:
        before = refusal.attempts()
        assert hc.post("/api/tags", json={"name": "no hooks"}, headers=t.headers).status_code == 201
        assert hc.post("/api/leads", json={"phone": "+" + new_phone()}, headers=t.headers).status_code == 201
        assert refusal.attempts() == before  # not even tried
    assert rows(srv, t.account_id, "tag_update") == []


def test_inbound_messages_are_stored_only_with_their_outbox_rows(hc: httpx.Client, srv: Srv,
                                                                 rx: Receiver) -> None:
    t = subscribed(hc, srv, rx)
    device = connected_device(hc, t.headers, "Atomic inbound")
    phone = new_phone()

    def inbound(body: str) -> None:
        sent = hc.post(f"/api/dev/whatsapp/{device['id']}/inbound", json={"from": phone, "body": body},
                       headers=t.headers)
        assert sent.status_code == 200, sent.text

    def stored() -> list[dict[str, Any]]:
        return support.run_sql(srv.dsn, "SELECT id::text AS id, body FROM messages WHERE account_id = $1",
                               [uuid.UUID(t.account_id)])

    with Refusal(srv.dsn, t.account_id) as refusal:
        before = refusal.attempts()
        inbound("refused")
        wait_for("the refused batch", lambda: refusal.attempts() > before)
        assert stored() == []  # its transaction rolled back with the outbox insert: no message without its event
    inbound("accepted")
    wait_for("the accepted message", lambda: "accepted" in [row["body"] for row in stored()])
    events = rows(srv, t.account_id, "new_message")
    # Every stored message has exactly one new_message row, carrying the stored message.
    assert sorted(e["message"]["id"] for e in events) == sorted(row["id"] for row in stored())
    assert {e["message"]["body"] for e in events} <= {"refused", "accepted"}


def test_campaign_status_changes_commit_with_their_outbox_rows(hc: httpx.Client, srv: Srv,
                                                               rx: Receiver) -> None:
    t = subscribed(hc, srv, rx)
    device = connected_device(hc, t.headers, "Atomic campaign")
    made = hc.post("/api/campaigns", json={"name": "Atomic", "device_id": device["id"], "message_template": "hola",
                                           "settings": {"min_delay_seconds": 0, "max_delay_seconds": 0}},
                   headers=t.headers)
    assert made.status_code == 201, made.text
    cid = made.json()["campaign"]["id"]
    assert hc.post(f"/api/campaigns/{cid}/recipients", json={"recipients": [{"jid": new_phone() + "@s.whatsapp.net"}]},
                   headers=t.headers).status_code == 200

    def status() -> str:
        return str(hc.get(f"/api/campaigns/{cid}", headers=t.headers).json()["campaign"]["status"])

    later = {"status": "scheduled", "scheduled_at": "2099-01-01T00:00:00Z"}
    with Refusal(srv.dsn, t.account_id):
        # The API write (PUT status): refused with its row.
        assert hc.put(f"/api/campaigns/{cid}", json=later, headers=t.headers).status_code == 500
        assert status() == "draft"
    assert hc.put(f"/api/campaigns/{cid}", json=later, headers=t.headers).status_code == 200
    with Refusal(srv.dsn, t.account_id) as refusal:
        # Due now (test setup, no event of its own): the supervisor's cluster-wide statement tries and fails.
        before = refusal.attempts()
        support.run_sql(srv.dsn, "UPDATE campaigns SET scheduled_at = NULL WHERE id = $1", [uuid.UUID(cid)])
        wait_for("a refused start of the due campaign", lambda: refusal.attempts() > before)
        assert status() == "scheduled"  # the statement that starts it failed whole, with its outbox rows
    wait_for("the campaign started", lambda: status() in ("running", "completed"))
    changes = [e for e in rows(srv, t.account_id, "campaign_status") if e["campaign_id"] == cid]
    assert changes[:2] == [{"campaign_id": cid, "status": "scheduled"}, {"campaign_id": cid, "status": "running"}]
    assert [e["status"] for e in changes].count("running") == 1


def test_a_sent_message_row_commits_with_its_outbox_rows(hc: httpx.Client, srv: Srv,
                                                         rx: Receiver) -> None:
    t = subscribed(hc, srv, rx)
    device = connected_device(hc, t.headers, "Atomic send")
    to = new_phone() + "@s.whatsapp.net"

    def sent_rows(body: str) -> list[dict[str, Any]]:
        return support.run_sql(srv.dsn, "SELECT id, status FROM messages WHERE account_id = $1 AND body = $2",
                               [uuid.UUID(t.account_id), body])

    with Refusal(srv.dsn, t.account_id):
        refused = hc.post("/api/messages/send", json={"device_id": device["id"], "to": to, "body": "refused"},
                          headers=t.headers)
        assert refused.status_code == 500, refused.text
    # WhatsApp took it (a remote effect, not transactional), but the row never became 'sent' without its event.
    assert [row["status"] for row in sent_rows("refused")] == ["pending"]
    accepted = hc.post("/api/messages/send", json={"device_id": device["id"], "to": to, "body": "accepted"},
                       headers=t.headers)
    assert accepted.status_code in (200, 201), accepted.text
    assert [row["status"] for row in sent_rows("accepted")] == ["sent"]
    events = rows(srv, t.account_id, "message_sent")
    assert [e["message"]["body"] for e in events] == ["accepted"]
    assert events[0]["message"]["id"] == accepted.json()["message"]["id"]
