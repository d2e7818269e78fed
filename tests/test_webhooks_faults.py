"""Webhooks under faults, with real processes: two server processes deliver each event once, and under a
POST /api/leads write load a kill -9 of the delivering worker plus a PostgreSQL restart lose no acknowledged
change's event (receiver-side de-duplication by X-Clarin-Delivery, as docs/WEBHOOKS.md tells receivers to do)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import psutil
import pytest

from tests import support
from tests.fault_support import PrivatePostgres, missing_binaries, private_postgres
from tests.test_worker_crash import workers
from tests.webhook_support import Receiver, receiver

PASSWORD = "admin-pass-123"
HOOK_ENV = {"WEBHOOK_ALLOW_PRIVATE": "true", "WEBHOOK_RETRY_SCALE": "0.001", "WEBHOOK_POLL_INTERVAL": "0.1",
            "DB_POOL_SIZE": "6", "LOG_LEVEL": "INFO"}  # INFO: the delivering process says so once


def writer(port: int, token: str, n: int, stop: threading.Event, acked: list[str], failed: list[str]) -> None:
    """POST /api/leads in a loop on one keep-alive connection; a new connection after a failure."""
    conn: http.client.HTTPConnection | None = None
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    i = 0
    while not stop.is_set():
        i += 1
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/api/leads", json.dumps({"name": f"hook {n}-{i}", "phone": f"5197{n:02d}{i:06d}"}),
                         headers)
            response = conn.getresponse()
            body = response.read()
            if response.status == 201:
                acked.append(json.loads(body)["lead"]["id"])
            else:
                failed.append(str(response.status))
                time.sleep(0.05)
        except (OSError, http.client.HTTPException) as exc:
            failed.append(type(exc).__name__)
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.05)
    if conn is not None:
        conn.close()


def lead_events(rx: Receiver, path: str) -> tuple[dict[str, set[str]], int]:
    """lead id → distinct delivery ids of its lead_update events, and the number of duplicate hits."""
    by_lead: dict[str, set[str]] = {}
    hits = [h for h in rx.of(path) if h.headers["x-clarin-event"] == "lead_update"]
    for hit in hits:
        by_lead.setdefault(hit.json["data"]["lead_id"], set()).add(hit.delivery)
    return by_lead, len(hits) - len({h.delivery for h in hits})


def subscribe(url: str, headers: dict[str, str], target: str) -> dict[str, str]:
    import httpx

    response = httpx.post(url + "/api/webhooks", json={"url": target, "events": ["lead_update"]}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["webhook"]


def test_two_server_processes_deliver_each_event_once(services: None, log_dir: Path) -> None:
    name, dsn = support.create_database()
    try:
        env = support.base_env(dsn, **HOOK_ENV)
        with receiver() as rx, support.running_server(env, log_dir, "hooks-a") as a, \
                support.running_server(env, log_dir, "hooks-b") as b:
            t = support.new_tenant(a.url, PASSWORD, "TwoProc")
            # B learns "no subscription" first: creating one through A must reach B's cache at once (Redis).
            import httpx

            assert httpx.post(b.url + "/api/leads", json={"phone": "+51911111111"}, headers=t.headers).is_success
            subscribe(a.url, t.headers, rx.url("/two"))
            stop = threading.Event()
            acked: list[str] = []
            failed: list[str] = []
            threads = [threading.Thread(target=writer, args=(srv.port, t.token, n, stop, acked, failed), daemon=True)
                       for n, srv in enumerate((a, b, a, b))]
            for thread in threads:
                thread.start()
            time.sleep(3)
            stop.set()
            for thread in threads:
                thread.join(15)
            want = set(acked)
            rx.wait("every acknowledged lead's event", lambda: want <= set(lead_events(rx, "/two")[0]), timeout=20)
            time.sleep(0.5)
            by_lead, duplicates = lead_events(rx, "/two")
            hits = len(rx.of("/two"))
            leaders = [s.logs().count("this process delivers for the cluster") for s in (a, b)]
            print(f"\ntwo processes: {len(acked)} leads acknowledged through both, {hits} webhook posts, "
                  f"{duplicates} duplicates, leader log lines per process {leaders}")
            assert not failed, failed[:5]
            assert duplicates == 0 and hits == len(acked)
            assert all(len(ids) == 1 for ids in by_lead.values())
            assert sorted(leaders) == [0, 1], leaders
    finally:
        support.drop_database(name)


def delivering_worker(pg: PrivatePostgres, srv: support.ServerProcess) -> int:
    """The granian worker whose lock session holds the delivery lock (matched by its client port)."""
    rows = support.run_sql(pg.dsn, "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                                   "WHERE l.locktype = 'advisory' AND l.granted "
                                   "AND a.application_name = 'clarin-webhooks'")
    ports = {int(r["client_port"]) for r in rows}
    for pid, process in workers(srv).items():
        try:
            if any(c.raddr and c.raddr.port == pg.port and c.laddr.port in ports
                   for c in process.net_connections("tcp")):
                return pid
        except psutil.NoSuchProcess:
            continue
    raise AssertionError(f"no worker holds the delivery lock ({ports})")


@pytest.mark.skipif(missing_binaries() is not None, reason=str(missing_binaries()))
def test_kill_9_and_postgres_restart_lose_no_acknowledged_event(log_dir: Path) -> None:
    with private_postgres() as pg, receiver() as rx:
        env = support.base_env(pg.dsn, WORKERS="2", **HOOK_ENV)
        with support.running_server(env, log_dir, "hooks-crash") as srv:
            t = support.new_tenant(srv.url, PASSWORD, "HookCrash")
            subscribe(srv.url, t.headers, rx.url("/crash"))
            stop = threading.Event()
            acked: list[str] = []
            failed: list[str] = []
            threads = [threading.Thread(target=writer, args=(srv.port, t.token, n, stop, acked, failed), daemon=True)
                       for n in range(6)]
            for thread in threads:
                thread.start()
            try:
                time.sleep(1.5)
                victim = delivering_worker(pg, srv)
                os.kill(victim, signal.SIGKILL)
                killed_at_count = len(acked)
                time.sleep(2.0)
                pg.restart("fast")
                restarted_at_count = len(acked)
                deadline = time.monotonic() + 15
                while len(acked) < restarted_at_count + 50 and time.monotonic() < deadline:
                    time.sleep(0.1)  # writes succeed again after the restart
                time.sleep(1.0)
            finally:
                stop.set()
                for thread in threads:
                    thread.join(15)
            want = set(acked)
            try:
                rx.wait("every acknowledged lead's event", lambda: want <= set(lead_events(rx, "/crash")[0]),
                        timeout=30)
            finally:
                by_lead, duplicates = lead_events(rx, "/crash")
                missing = want - set(by_lead)
                twice = [lead for lead in want if len(by_lead.get(lead, ())) > 1]
                extra = set(by_lead) - want
                print(f"\nkill -9 + PostgreSQL restart: {len(acked)} leads acknowledged ({killed_at_count} before the "
                      f"kill, {restarted_at_count} before the restart), {len(failed)} writes failed "
                      f"({dict(Counter(failed))}); receiver: {len(rx.of('/crash'))} posts, {duplicates} duplicate "
                      f"deliveries (same X-Clarin-Delivery), {len(missing)} acknowledged without an event, "
                      f"{len(twice)} with two different events, {len(extra)} events of unacknowledged writes")
            assert not missing, sorted(missing)[:5]
            assert not twice, twice[:5]
            assert len(acked) > restarted_at_count > killed_at_count > 0
            assert srv.proc.poll() is None
            stored = support.run_sql(pg.dsn, "SELECT count(*) AS n FROM webhook_deliveries "
                                             "WHERE account_id = $1 AND status <> 'delivered'",
                                     [uuid.UUID(t.account_id)])[0]["n"]
            assert stored == 0
