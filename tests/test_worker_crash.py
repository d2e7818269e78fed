"""A worker killed with SIGKILL under write load (WORKERS=2, real PostgreSQL/Redis, simulated WhatsApp):
the other worker keeps serving, no acknowledged write is lost, a new worker replaces the dead one, and the
devices the dead worker ran are taken over (sends work again) within the lease TTL.

Which worker holds which client connection, and which one runs the device, is read from the operating
system (psutil: the workers' sockets) and PostgreSQL (the advisory lock's session), not guessed.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from tests import support
from tests.test_device_routing import call, connected_device

ADMIN_PASSWORD = "admin-pass-123"
LEASE_TTL = 5
CRASH_ENV = {"WORKERS": "2", "WHATSAPP_LEASE_RENEW": "1", "WHATSAPP_LEASE_TTL": str(LEASE_TTL)}
WRITERS = 12
MAX_WRITERS = 40  # more are added until both workers hold some connections (the kernel may favour one)
GRACE = 1.0  # the requirement: no failure on the surviving worker's connections from 1 s after the kill
NEW_WORKER_WITHIN = 5.0


@dataclass
class Outcome:
    at: float
    port: int  # the client side's local port: identifies the connection
    status: int | None  # None: the request failed (no response)
    lead_id: str | None = None
    error: str = ""


@pytest.fixture(scope="module")
def crash_db(services: None) -> Iterator[str]:
    name, dsn = support.create_database()
    try:
        yield dsn
    finally:
        support.drop_database(name)


def workers(server: support.ServerProcess) -> dict[int, psutil.Process]:
    """granian's worker processes: the server's children listening on its port."""
    found = {}
    for child in psutil.Process(server.proc.pid).children():
        try:
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == server.port
                   for c in child.net_connections("tcp")):
                found[child.pid] = child
        except psutil.NoSuchProcess:
            continue
    return found


def peer_ports(process: psutil.Process, server_port: int) -> set[int]:
    """Client ports of the connections this worker has accepted."""
    try:
        return {c.raddr.port for c in process.net_connections("tcp")
                if c.laddr.port == server_port and c.raddr and c.status == psutil.CONN_ESTABLISHED}
    except psutil.NoSuchProcess:
        return set()


def lease_owner(server: support.ServerProcess, dsn: str, device_id: str) -> int:
    """The worker whose lease session holds the device's advisory lock (its client port in pg_stat_activity)."""
    rows = support.run_sql(dsn, """
        SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid,
               hashtextextended('clarin-device:' || $1, 0) AS k
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
          AND l.classid::bigint = (k >> 32) & 4294967295 AND l.objid::bigint = k & 4294967295""", [device_id])
    assert len(rows) == 1, f"device lease held {len(rows)} times: {rows}"
    port = rows[0]["client_port"]
    for pid, process in workers(server).items():
        if any(c.laddr.port == port for c in process.net_connections("tcp") if c.laddr):
            return pid
    raise AssertionError(f"no worker owns the lease connection (port {port})")


def writer(server: support.ServerProcess, token: str, n: int, stop: threading.Event, out: list[Outcome]) -> None:
    """POST /api/leads in a loop on one keep-alive connection; after a failure, a new connection."""
    conn: http.client.HTTPConnection | None = None
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    i = 0
    while not stop.is_set():
        i += 1
        port = 0
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                conn.connect()
            port = conn.sock.getsockname()[1]
            conn.request("POST", "/api/leads", json.dumps({"name": f"crash {n}-{i}", "phone": f"519{n:02d}{i:06d}"}),
                         headers)
            response = conn.getresponse()
            body = response.read()
            lead_id = json.loads(body)["lead"]["id"] if response.status == 201 else None
            out.append(Outcome(time.monotonic(), port, response.status, lead_id))
        except (OSError, http.client.HTTPException) as exc:
            out.append(Outcome(time.monotonic(), port, None, error=repr(exc)))
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.05)
    if conn is not None:
        conn.close()


def poll_new_worker(server: support.ServerProcess, old: set[int], deadline: float, found: list[float]) -> None:
    """Every 0.1 s until a new worker answers (its time goes into ``found``) or the deadline."""
    while time.monotonic() < deadline:
        if served_by_new_worker(server, old):
            found.append(time.monotonic())
            return
        time.sleep(0.1)


def served_by_new_worker(server: support.ServerProcess, old: set[int]) -> bool:
    """One fresh connection: answered 200, and by a worker that was not there before the kill."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=3)
    try:
        conn.connect()
        port = conn.sock.getsockname()[1]
        conn.request("GET", "/health")
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            return False
        # the server side of this still-open connection belongs to exactly one worker
        return any(port in peer_ports(process, server.port)
                   for pid, process in workers(server).items() if pid not in old)
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def test_kill_9_of_one_worker_under_write_load(crash_db: str, log_dir: Path) -> None:
    env = support.base_env(crash_db, **CRASH_ENV)
    with support.running_server(env, log_dir, "worker-crash") as srv:
        tenant = support.new_tenant(srv.url, ADMIN_PASSWORD, "Crash")
        device_id = connected_device(srv, tenant, "Crash device")
        before = workers(srv)
        assert len(before) == 2, before
        victim = lease_owner(srv, crash_db, device_id)  # the worker that runs the device dies
        survivor = next(pid for pid in before if pid != victim)

        stop = threading.Event()
        outcomes: list[list[Outcome]] = []
        threads: list[threading.Thread] = []

        def add_writer() -> None:
            outcomes.append([])
            threads.append(threading.Thread(target=writer, daemon=True,
                                            args=(srv, tenant.token, len(threads), stop, outcomes[-1])))
            threads[-1].start()

        for _ in range(WRITERS):
            add_writer()
        try:
            time.sleep(1.5)
            victim_ports = peer_ports(before[victim], srv.port)
            survivor_ports = peer_ports(before[survivor], srv.port)
            while not (victim_ports and survivor_ports) and len(threads) < MAX_WRITERS:
                add_writer()
                time.sleep(0.3)
                victim_ports = peer_ports(before[victim], srv.port)
                survivor_ports = peer_ports(before[survivor], srv.port)
            killed_at = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            deadline = killed_at + LEASE_TTL + 10
            # Polled on a thread of its own: a send below may wait seconds for the device's take-over, and the
            # new worker's first answer must not be timed by when that wait ends.
            new_worker: list[float] = []
            poller = threading.Thread(target=poll_new_worker, args=(srv, set(before), deadline, new_worker),
                                      daemon=True)
            poller.start()

            send_ok_at = None
            send_errors: list[str] = []
            while time.monotonic() < deadline and (poller.is_alive() or send_ok_at is None):
                if send_ok_at is None:
                    try:
                        sent = call(srv, tenant, "POST", "/api/messages/send",
                                    {"device_id": device_id, "to": "51987654321", "body": "after the crash"})
                        if sent.status_code == 200:
                            send_ok_at = time.monotonic()
                        else:
                            send_errors.append(f"{sent.status_code} {sent.text[:80]}")
                    except httpx.HTTPError as exc:
                        send_errors.append(repr(exc))
                time.sleep(0.1)
            poller.join()
            new_worker_at = new_worker[0] if new_worker else None
            time.sleep(1.0)  # load keeps running on the new worker too
        finally:
            stop.set()
            for thread in threads:
                thread.join(15)

        all_outcomes = [o for per_writer in outcomes for o in per_writer]
        after = [o for o in all_outcomes if o.at > killed_at]
        failed = [o for o in after if o.status is None]
        late_elsewhere = [o for o in failed if o.port not in victim_ports and o.at > killed_at + GRACE]
        on_survivor = [o for o in failed if o.port in survivor_ports]
        acknowledged = {o.lead_id for o in all_outcomes if o.status == 201}
        unexpected = [o for o in all_outcomes if o.status not in (None, 201)]
        stored = {r["id"] for r in support.run_sql(
            crash_db, "SELECT id::text AS id FROM leads WHERE account_id = $1", [uuid.UUID(tenant.account_id)])}
        lost = acknowledged - stored
        print(f"\nworker kill: {len(all_outcomes)} writes ({len(after)} after the kill), {len(failed)} failed "
              f"(all on the killed worker's {len(victim_ports)} connections: {not late_elsewhere}), "
              f"{len(on_survivor)} on the survivor's {len(survivor_ports)} connections, {len(lost)} acknowledged "
              f"writes lost; new worker serving after "
              f"{'never' if new_worker_at is None else f'{new_worker_at - killed_at:.2f} s'}; device sends work "
              f"again after {'never' if send_ok_at is None else f'{send_ok_at - killed_at:.2f} s'} "
              f"(TTL {LEASE_TTL} s)")

        assert srv.proc.poll() is None, srv.logs()[-3000:]
        assert not on_survivor, on_survivor[:5]
        assert not late_elsewhere, late_elsewhere[:5]
        assert not unexpected, unexpected[:5]
        assert not lost, sorted(lost)[:5]
        assert survivor_ports and victim_ports, (survivor_ports, victim_ports)
        for n, per_writer in enumerate(outcomes):  # every writer kept writing after the kill
            assert any(o.status == 201 and o.at > killed_at + GRACE for o in per_writer), f"writer {n} stalled"
        assert new_worker_at is not None and new_worker_at - killed_at < NEW_WORKER_WITHIN, srv.logs()[-3000:]
        assert send_ok_at is not None, send_errors[-5:]
        assert send_ok_at - killed_at <= LEASE_TTL, (send_ok_at - killed_at, send_errors[-5:])
        assert len(workers(srv)) == 2
    assert "Respawning worker" in srv.logs()
