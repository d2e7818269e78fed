"""A campaign resumes within 5 s of its owner's death (issue 18 goal 1), with the default CAMPAIGN_TICK (10 s) and
WHATSAPP_LEASE_RENEW (10 s), and the recipient being sent at the moment of the crash is reconciled, never sent
twice. The crash is injected mid-send: each simulated send takes 0.5 s and the owner is SIGKILLed the moment
the database shows a recipient ``sending``.

The take-over path: the survivor's peer watch wakes its device scan (clarin.whatsapp.peers), the device
connects there, and that wakes its campaign supervisor (``DevicePool.on_connected``) instead of its next tick.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx

from tests import support
from tests.test_campaign_worker import (
    QUICK,
    _settle,
    campaign,
    campaign_with,
    connected_device,
    make_tenant,
    sent_calls,
    stored_per_jid,
    wait_status,
)
from tests.test_devices import kill_tree

ENV = {"CAMPAIGN_DELAY_SCALE": "0.001", "CAMPAIGN_TICK": "10", "WHATSAPP_LEASE_RENEW": "10",
       "WHATSAPP_LEASE_TTL": "30", "WHATSAPP_SIMULATED_SEND_DELAY": "0.5", "DB_POOL_SIZE": "8", "LOG_LEVEL": "INFO"}
RESUME_BOUND = 5.0
RECIPIENTS = 30


def _sending(dsn: str, cid: str) -> list[str]:
    rows = support.run_sql(dsn, "SELECT jid FROM campaign_recipients WHERE campaign_id = $1 AND status = 'sending'",
                           [uuid.UUID(cid)])
    return [row["jid"] for row in rows]


def test_campaign_resumes_within_seconds_of_a_crash_mid_send(services: None, log_dir: Path) -> None:
    name, dsn = support.create_database()
    env = support.base_env(dsn, **ENV)
    try:
        with support.running_server(env, log_dir, "campaign-owner") as owner, \
                support.running_server(env, log_dir, "campaign-survivor") as survivor:
            tenant = make_tenant(owner.url)
            with httpx.Client(base_url=owner.url, headers=tenant.headers, timeout=30) as on_owner, \
                    httpx.Client(base_url=survivor.url, headers=tenant.headers, timeout=30) as on_survivor:
                device = connected_device(on_owner)
                time.sleep(1.5)  # both processes have scanned since the survivor started: it watches the owner
                cid = campaign_with(on_owner, device, RECIPIENTS, settings=QUICK)
                deadline = time.monotonic() + 20
                while campaign(on_owner, cid)["sent_count"] < 3 or not (in_flight := _sending(dsn, cid)):
                    assert time.monotonic() < deadline, "the owner never had a recipient in flight"
                    time.sleep(0.02)
                kill_tree(owner)  # mid-send: a recipient is claimed and its message is on its way
                killed = time.monotonic()
                before = stored_per_jid(dsn, device)
                while not sent_calls(on_survivor, device, here=True):
                    assert time.monotonic() - killed < 20, "the survivor never resumed the campaign"
                    time.sleep(0.05)
                resumed = time.monotonic() - killed
                wait_status(on_survivor, cid, "completed", timeout=60)
                resent = [c["to"] for c in sent_calls(on_survivor, device)]
        print(f"\ncampaign resumed {resumed:.2f} s after the owner died (in flight: {in_flight})")
        assert resumed < RESUME_BOUND, f"resumed after {resumed:.2f} s (bound {RESUME_BOUND} s)"
        _settle(dsn, cid, device, before, resent)  # every recipient once; the interrupted one settled, not resent
        rows = {r["jid"]: r for r in support.run_sql(
            dsn, "SELECT jid, status, error_message FROM campaign_recipients WHERE campaign_id = $1", [uuid.UUID(cid)])}
        for jid in in_flight:
            assert rows[jid]["status"] in ("sent", "failed"), rows[jid]
            assert jid not in resent, f"{jid} was in flight at the crash and was sent again"
    finally:
        support.drop_database(name)
