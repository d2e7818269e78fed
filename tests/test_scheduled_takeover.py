"""Scheduled messages are sent exactly once when their owner node dies at the due time (issue 20 goal 5; the
reconcile rule in docs/SCHEDULED_MESSAGES.md).

Two real ``clarin serve`` processes share PostgreSQL and Redis. The owner runs the device; a batch of messages
to different numbers is scheduled (through the OTHER server: its create nudges the owner through a routed call)
for the same moment (sent by the owner within seconds although its SCHEDULED_TICK is 30 s: the nudge reached
it). Each simulated send takes 0.5 s, and the owner is SIGKILLed while the database shows one
of them ``sending`` with some already sent. The survivor takes the device over (lease), takes its
scheduled-send lock, settles what the dead owner left ``sending`` from the attempt's Idempotency-Key, and sends
the rest. Every number must end with exactly one stored outgoing message, every row ``sent``, and the survivor
must never have sent a number the owner had already handed to WhatsApp.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests import support
from tests.test_campaign_worker import connected_device, make_tenant, sent_calls, stored_per_jid
from tests.test_devices import kill_tree

ENV = {"SCHEDULED_TICK": "30", "WHATSAPP_LEASE_RENEW": "10", "WHATSAPP_LEASE_TTL": "30",
       "WHATSAPP_SIMULATED_SEND_DELAY": "0.5", "DB_POOL_SIZE": "8", "LOG_LEVEL": "INFO"}
MESSAGES = 12
LATE_BOUND = 8.0  # seconds after send_at; the tick is 30 s, so only the cross-node nudge makes it


def jid(n: int) -> str:
    return f"51933{n:06d}@s.whatsapp.net"


def _statuses(dsn: str, device: str) -> Counter[str]:
    rows = support.run_sql(dsn, "SELECT status FROM scheduled_messages WHERE device_id = $1", [uuid.UUID(device)])
    return Counter(row["status"] for row in rows)


def test_due_messages_are_sent_once_when_the_owner_dies_mid_batch(services: None, log_dir: Path) -> None:
    name, dsn = support.create_database()
    env = support.base_env(dsn, **ENV)
    try:
        with support.running_server(env, log_dir, "scheduled-owner") as owner, \
                support.running_server(env, log_dir, "scheduled-survivor") as survivor:
            tenant = make_tenant(owner.url)
            with httpx.Client(base_url=owner.url, headers=tenant.headers, timeout=30) as on_owner, \
                    httpx.Client(base_url=survivor.url, headers=tenant.headers, timeout=30) as on_survivor:
                device = connected_device(on_owner)
                time.sleep(1.5)  # both processes have scanned since the survivor started: it watches the owner
                due = datetime.now(UTC) + timedelta(seconds=2)
                for n in range(MESSAGES):
                    r = on_survivor.post("/api/messages/schedule", json={
                        "device_id": device, "to": jid(n), "body": f"Recordatorio {n}", "send_at": due.isoformat()})
                    assert r.status_code == 201, r.text
                deadline = time.monotonic() + 30
                while not _statuses(dsn, device)["sent"]:
                    assert time.monotonic() < deadline, "the owner never sent"
                    time.sleep(0.02)
                first_late = (datetime.now(UTC) - due).total_seconds()
                while True:  # kill mid-batch: one in flight, a few sent
                    statuses = _statuses(dsn, device)
                    if statuses["sent"] >= 2 and statuses["sending"] >= 1:
                        break
                    assert time.monotonic() < deadline, f"the owner never had a send in flight: {statuses}"
                    time.sleep(0.02)
                kill_tree(owner)
                killed = time.monotonic()
                at_kill = _statuses(dsn, device)
                handed_over = stored_per_jid(dsn, device)  # what the dead owner recorded before its driver calls
                deadline = killed + 90
                while (current := _statuses(dsn, device))["sent"] + current["failed"] < MESSAGES:
                    assert time.monotonic() < deadline, f"the survivor never finished: {current}"
                    time.sleep(0.1)
                finished = time.monotonic() - killed
                resent = Counter(c["to"] for c in sent_calls(on_survivor, device, here=True))
                listed = on_survivor.get("/api/messages/scheduled", params={"limit": 100}).json()
        print(f"\nfirst send {first_late:.2f} s after send_at (created on the other node, SCHEDULED_TICK=30); owner "
              f"killed with {dict(at_kill)}; the survivor finished the batch {finished:.2f} s later "
              f"(sent {sum(resent.values())}, {len(handed_over)} were handed over by the owner)")
        assert first_late < LATE_BOUND, f"the owner was not nudged: first send {first_late:.2f} s after send_at"
        assert _statuses(dsn, device) == Counter({"sent": MESSAGES})  # exactly-once leaves nothing failed
        stored = stored_per_jid(dsn, device)
        assert stored == Counter({jid(n): 1 for n in range(MESSAGES)}), stored  # one outgoing message per number
        assert all(count == 1 for count in resent.values()), resent  # the survivor sent each at most once
        assert not set(resent) & set(handed_over), "a message the owner handed to WhatsApp was sent again"
        assert set(resent) | set(handed_over) == {jid(n) for n in range(MESSAGES)}
        rows = support.run_sql(dsn, "SELECT s.to_jid, s.sent_message_id, m.chat_id = s.chat_id AS same_chat "
                                    "FROM scheduled_messages s LEFT JOIN messages m ON m.id = s.sent_message_id "
                                    "WHERE s.device_id = $1", [uuid.UUID(device)])
        assert all(row["sent_message_id"] and row["same_chat"] for row in rows), rows  # each points at its message
        assert listed["total"] == MESSAGES and {m["status"] for m in listed["scheduled_messages"]} == {"sent"}
    finally:
        support.drop_database(name)


def test_graceful_restart_mid_batch_sends_the_rest_once(services: None, log_dir: Path) -> None:
    """SIGTERM while a batch is being sent: the send in flight finishes, the rest of the claimed batch goes back to
    pending (none left 'sending', none failed), and the restarted server sends exactly those."""
    name, dsn = support.create_database()
    env = support.base_env(dsn, **ENV)
    try:
        with support.running_server(env, log_dir, "scheduled-first") as first:
            tenant = make_tenant(first.url)
            with httpx.Client(base_url=first.url, headers=tenant.headers, timeout=30) as api:
                device = connected_device(api)
                due = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
                for n in range(MESSAGES):
                    r = api.post("/api/messages/schedule", json={
                        "device_id": device, "to": jid(100 + n), "body": f"Aviso {n}", "send_at": due})
                    assert r.status_code == 201, r.text
                deadline = time.monotonic() + 30
                while _statuses(dsn, device)["sent"] < 2:
                    assert time.monotonic() < deadline, "nothing was sent"
                    time.sleep(0.02)
            first.stop()  # SIGTERM: graceful
            at_stop = _statuses(dsn, device)
            before = stored_per_jid(dsn, device)
        assert "sending" not in at_stop and "failed" not in at_stop, at_stop  # the rest went back to pending
        assert at_stop["pending"] > 0 and at_stop["sent"] == len(before), (at_stop, before)
        with support.running_server(env, log_dir, "scheduled-second") as second, \
                httpx.Client(base_url=second.url, headers=tenant.headers, timeout=30) as api:
            deadline = time.monotonic() + 60
            while _statuses(dsn, device)["sent"] < MESSAGES:
                assert time.monotonic() < deadline, f"the restarted server never finished: {_statuses(dsn, device)}"
                time.sleep(0.1)
            resent = Counter(c["to"] for c in sent_calls(api, device, here=True))
        print(f"\ngraceful stop with {dict(at_stop)}; the restarted server sent the {sum(resent.values())} pending")
        assert stored_per_jid(dsn, device) == Counter({jid(100 + n): 1 for n in range(MESSAGES)})
        assert not set(resent) & set(before) and sum(resent.values()) == at_stop["pending"]
    finally:
        support.drop_database(name)
