"""Sends under faults (issue 12, items 4 and 7): two server processes (one worker each) on a private PostgreSQL
(tests/fault_support.py), sends routed between them through Redis, the simulated driver taking 50 ms per send
(WHATSAPP_SIMULATED_SEND_DELAY) so sends are in flight when the fault hits.

* Keyed sends through three fast PostgreSQL restarts and through two Redis kills: clients send with an Idempotency-Key and
  retry on 5xx / timeouts / ``409 … in progress`` (alternating servers). Every key is sent at most once on the
  simulated device (both processes' driver records), every 2xx is stored as 'sent', every key ends 200.
* Device work after a PostgreSQL outage: probes (no key) every 0.1 s; once PostgreSQL accepts connections again
  the first send succeeds within RESUME_BOUND s, every failure in between is 503 with Retry-After (never 409 or
  500), and the driver's start/stop lines (pid, wall clock) show no two processes running the device at once.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import support
from tests.fault_support import PrivatePostgres, missing_binaries, private_postgres, private_redis

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.skipif(missing_binaries() is not None, reason=missing_binaries() or ""),
]

ADMIN_PASSWORD = "admin-pass-123"
CLIENTS = 6
KEY_RETRY_FOR = 30.0  # a client keeps retrying one key this long
# The requirement is 2 s from PostgreSQL accepting connections to a working device. Margin: probes start every
# 0.1 s and a send takes ≥ 50 ms here (simulated send delay) on 2 shared CPUs; pg_ctl -w reports "up" only after
# PostgreSQL accepts connections (it can only be late, which shortens what we measure).
RESUME_BOUND = 2.5
FAST_RESTARTS = 3  # each one is a chance for the old holder and a claimer to overlap (checked in the resume test)
OUTAGE = 6.0  # longer than WHATSAPP_LEASE_RENEW below: every process notices the lost lease while it is down
FAULT_ENV = {"WHATSAPP_SIMULATED_SEND_DELAY": "0.05", "WHATSAPP_LEASE_RENEW": "5", "LOG_LEVEL": "INFO",
             "DB_POOL_SIZE": "6"}
IN_PROGRESS = "request with this Idempotency-Key is in progress"
EVIDENCE = re.compile(r"simulated client of device (\S+) (started|stopped) in process (\d+) at ([0-9.]+)")


@dataclass
class Servers:
    a: support.ServerProcess
    b: support.ServerProcess

    @property
    def urls(self) -> list[str]:
        return [self.a.url, self.b.url]


@pytest.fixture(scope="module")
def fault_pg() -> Iterator[PrivatePostgres]:
    with private_postgres() as pg:
        yield pg


@pytest.fixture(scope="module")
def pg_servers(fault_pg: PrivatePostgres, log_dir: Path) -> Iterator[Servers]:
    env = support.base_env(fault_pg.dsn, **FAULT_ENV)  # one env: both servers share the Redis prefix
    with support.running_server(env, log_dir, "send-fault-a") as a, \
            support.running_server(env, log_dir, "send-fault-b") as b:
        yield Servers(a, b)


def connected_device(url: str, tenant: support.ServerTenant) -> str:
    created = httpx.post(url + "/api/devices", json={"name": "Fault phone"}, headers=tenant.headers, timeout=10)
    assert created.status_code == 201, created.text
    device_id = created.json()["device"]["id"]
    assert httpx.post(f"{url}/api/devices/{device_id}/connect", headers=tenant.headers, timeout=10).status_code == 200
    deadline = time.monotonic() + 15
    while httpx.get(f"{url}/api/devices/{device_id}", headers=tenant.headers,
                    timeout=10).json()["device"]["status"] != "connected":
        assert time.monotonic() < deadline, "the device did not connect"
        time.sleep(0.1)
    return device_id


# -- keyed clients -------------------------------------------------------------------------------------------
@dataclass
class Keyed:
    key: str
    text: str
    answers: list[int | None] = field(default_factory=list)
    message: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)  # the bodies of the answers other than 200, for the report


def keyed_clients(urls: list[str], tenant: support.ServerTenant, device_id: str, stop: threading.Event,
                  results: list[Keyed]) -> list[threading.Thread]:
    """CLIENTS threads sending fresh keys until ``stop``; each key retried (alternating servers, a fresh connection
    per request) on 5xx, timeouts and 409 in progress until it gets 200 or KEY_RETRY_FOR runs out."""

    def client(n: int) -> None:
        seq = 0
        while not stop.is_set():
            seq += 1
            key = f"c{n}-{seq}-{uuid.uuid4().hex[:8]}"
            item = Keyed(key, f"keyed {key}")
            results.append(item)
            body = {"device_id": device_id, "to": f"5199{n:02d}{seq:05d}", "body": item.text}
            deadline = time.monotonic() + KEY_RETRY_FOR
            attempt = 0
            while time.monotonic() < deadline:
                url = urls[(n + seq + attempt) % len(urls)]
                attempt += 1
                try:
                    r = httpx.post(url + "/api/messages/send", json=body, timeout=8,
                                   headers={**tenant.headers, "Idempotency-Key": key})
                except httpx.HTTPError:
                    item.answers.append(None)
                    time.sleep(0.2)
                    continue
                item.answers.append(r.status_code)
                if r.status_code != 200:
                    item.errors.append(f"{r.status_code} from {url}: {r.text[:120]}")
                if r.status_code == 200:
                    item.message = r.json()["message"]
                    break
                if r.status_code >= 500 or (r.status_code == 409 and r.json().get("error") == IN_PROGRESS):
                    time.sleep(0.2)
                    continue
                break

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    return threads


def check_keyed(servers: Servers, tenant: support.ServerTenant, dsn: str, device_id: str,
                results: list[Keyed], label: str) -> None:
    # Held writes land once PostgreSQL answers: wait until the account has no pending row left.
    account = uuid.UUID(tenant.account_id)
    deadline = time.monotonic() + 15
    while support.run_sql(dsn, "SELECT count(*) AS n FROM messages WHERE account_id = $1 AND status = 'pending'",
                          [account])[0]["n"]:
        assert time.monotonic() < deadline, "pending rows left behind"
        time.sleep(0.2)
    sent: Counter[str] = Counter()
    for server in (servers.a, servers.b):  # each process's own driver record: the device may have moved
        r = httpx.get(f"{server.url}/api/dev/whatsapp/{device_id}/sent?here=true", headers=tenant.headers, timeout=10)
        assert r.status_code == 200, r.text
        sent.update(call["message"].get("conversation", "") for call in r.json()["sent"])
    twice = {item.key: sent[item.text] for item in results if sent[item.text] > 1}
    answers = Counter(a for item in results for a in item.answers)
    print(f"\n[{label}] {len(results)} keys, answers {dict(answers)}, sent twice: {len(twice)}")
    assert not twice, f"{len(twice)} key(s) sent more than once: {twice}"
    assert set(answers) <= {200, 409, 503, 504, None}, answers
    stored = {str(row["id"]): row for row in support.run_sql(
        dsn, "SELECT id, status, message_id FROM messages WHERE account_id = $1", [account])}
    acknowledged = [item.message for item in results if item.message is not None]
    not_stored = [m for m in acknowledged if stored.get(m["id"], {}).get("status") != "sent"
                  or stored[m["id"]]["message_id"] != m["message_id"]]
    assert not not_stored, f"{len(not_stored)} acknowledged send(s) not stored as sent: {not_stored[:3]}"
    unanswered = [item for item in results if item.message is None]
    assert not unanswered, f"{len(unanswered)} key(s) never got 200: {[(i.key, i.errors) for i in unanswered[:3]]}"
    assert all(sent[item.text] == 1 for item in results)


def test_keyed_sends_through_a_postgres_restart(fault_pg: PrivatePostgres, pg_servers: Servers) -> None:
    tenant = support.new_tenant(pg_servers.a.url, ADMIN_PASSWORD, "Keyed")
    device_id = connected_device(pg_servers.a.url, tenant)
    stop, results = threading.Event(), []
    threads = keyed_clients(pg_servers.urls, tenant, device_id, stop, results)
    try:
        for _ in range(FAST_RESTARTS):  # spaced by more than RENEW: every process's periodic scan runs in between
            time.sleep(1.5)
            fault_pg.restart("fast")
            time.sleep(4.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(KEY_RETRY_FOR + 10)
    check_keyed(pg_servers, tenant, fault_pg.dsn, device_id, results, "pg restart")


# -- device work after a PostgreSQL outage -------------------------------------------------------------------
@dataclass
class Probe:
    started: float
    finished: float
    status: int | None
    error: str
    retry_after: str | None


def probe(urls: list[str], tenant: support.ServerTenant, device_id: str, stop: threading.Event,
          probes: list[Probe]) -> threading.Thread:
    def run() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            started = time.monotonic()
            try:
                r = httpx.post(urls[n % len(urls)] + "/api/messages/send", headers=tenant.headers, timeout=8,
                               json={"device_id": device_id, "to": "51987000111", "body": f"probe {n}"})
                body = r.json()
                probes.append(Probe(started, time.monotonic(), r.status_code,
                                    body.get("error", "") if isinstance(body, dict) else "",
                                    r.headers.get("retry-after")))
            except (httpx.HTTPError, ValueError) as exc:
                probes.append(Probe(started, time.monotonic(), None, repr(exc), None))
            time.sleep(max(0.0, 0.1 - (time.monotonic() - started)))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def run_intervals(logs: list[str], device_id: str) -> list[tuple[int, float, float]]:
    """(pid, started, stopped) of every simulated client of the device, from the driver's evidence lines."""
    events = sorted((float(at), int(pid), what) for log in logs for dev, what, pid, at in EVIDENCE.findall(log)
                    if dev == device_id)
    open_since: dict[int, float] = {}
    intervals = []
    for at, pid, what in events:
        if what == "started":
            open_since.setdefault(pid, at)
        elif pid in open_since:
            intervals.append((pid, open_since.pop(pid), at))
    intervals += [(pid, since, float("inf")) for pid, since in open_since.items()]
    return intervals


def test_devices_resume_fast_after_a_postgres_outage(fault_pg: PrivatePostgres, pg_servers: Servers) -> None:
    tenant = support.new_tenant(pg_servers.a.url, ADMIN_PASSWORD, "Resume")
    device_id = connected_device(pg_servers.a.url, tenant)
    stop, probes = threading.Event(), []
    thread = probe(pg_servers.urls, tenant, device_id, stop, probes)
    try:
        time.sleep(1.0)
        fault_pg.stop("fast")
        time.sleep(OUTAGE)
        fault_pg.start()
        up_at = time.monotonic()  # pg_ctl -w returned: PostgreSQL accepts connections
        time.sleep(RESUME_BOUND + 3.0)
    finally:
        stop.set()
        thread.join(15)
    after = [p for p in probes if p.started >= up_at]
    first_ok = min((p.finished for p in after if p.status == 200), default=None)
    statuses = Counter(p.status for p in probes)
    failures = [p for p in probes if p.status != 200]
    print(f"\n[resume] probes {dict(statuses)}; first send {None if first_ok is None else round(first_ok - up_at, 2)} s "
          f"after PostgreSQL accepted connections; errors {Counter(p.error for p in failures)}")
    # Never two processes running a device (this test's outage and the previous test's restart included).
    logs = [pg_servers.a.logs(), pg_servers.b.logs()]
    overlaps = []
    for dev in {dev for log in logs for dev, *_ in EVIDENCE.findall(log)}:
        intervals = run_intervals(logs, dev)
        overlaps += [(dev, x, y) for i, x in enumerate(intervals) for y in intervals[i + 1:]
                     if x[0] != y[0] and x[1] < y[2] and y[1] < x[2]]
    print(f"[resume] double owners: {[(d[:8], round(min(x[2], y[2]) - max(x[1], y[1]), 3)) for d, x, y in overlaps]}")
    assert first_ok is not None, Counter(p.status for p in after)
    assert first_ok - up_at <= RESUME_BOUND, first_ok - up_at
    assert all(p.status == 503 and p.retry_after for p in failures), \
        [(round(p.started - up_at, 2), p.status, p.error) for p in failures if p.status != 503 or not p.retry_after]
    assert all(p.status == 200 for p in after if p.started >= up_at + RESUME_BOUND)

    assert not overlaps, f"a device ran in two processes at once: {overlaps}"
    handovers = run_intervals(logs, device_id)
    print(f"[resume] device {device_id} runs: {[(pid, round(b - a, 2)) for pid, a, b in handovers]}")
    assert len(handovers) >= 2  # it was stopped and resumed: the evidence is there


# -- keyed sends through a Redis kill (routed calls lose their reply) ----------------------------------------------
def test_keyed_sends_through_a_redis_kill(fault_pg: PrivatePostgres, log_dir: Path) -> None:
    with private_redis() as redis:
        # Sends take 0.2 s here so that routed calls are in flight at each kill (their replies die with Redis).
        env = support.base_env(fault_pg.dsn, **{**FAULT_ENV, "REDIS_URL": redis.url,
                                                "WHATSAPP_SIMULATED_SEND_DELAY": "0.2"})
        with support.running_server(env, log_dir, "redis-kill-a") as a, \
                support.running_server(env, log_dir, "redis-kill-b") as b:
            servers = Servers(a, b)
            tenant = support.new_tenant(a.url, ADMIN_PASSWORD, "RedisKill")
            device_id = connected_device(a.url, tenant)
            stop, results = threading.Event(), []
            threads = keyed_clients(servers.urls, tenant, device_id, stop, results)
            try:
                for _ in range(2):
                    time.sleep(2.0)
                    assert redis.proc is not None
                    redis.proc.kill()  # SIGKILL: routed calls in flight lose their reply
                    redis.proc.wait(5)
                    time.sleep(1.0)
                    redis.start()
                time.sleep(3.0)
            finally:
                stop.set()
                for thread in threads:
                    thread.join(KEY_RETRY_FOR + 10)
            check_keyed(servers, tenant, fault_pg.dsn, device_id, results, "redis kill")
