"""Fault tests (issue 8): PostgreSQL restarted under write load, Redis stopped and restarted.

Every fault is injected into a private instance (tests/fault_support.py: own port, own data directory, always
torn down); the machine's shared PostgreSQL and Redis are never touched.

* PostgreSQL restart under write load (``pg_ctl restart -m fast``, and ``stop -m immediate`` + 1 s down +
  ``start``, which also exercises crash recovery): writers POST leads continuously with a 3 s client timeout.
  No request hangs, every answer is 201 or a 503 JSON error envelope with ``Retry-After`` (never a 500),
  writes succeed again within 5 s of the database accepting connections (measured; well under 0.1 s here),
  every acknowledged lead is in the database afterwards, the background workers (device pool with its lease
  session, campaign sender) go on working, the log has no traceback and only a few outage lines.
* Inbound WhatsApp messages while PostgreSQL is down: a burst from the simulated driver is being ingested when
  PostgreSQL stops. The held batch is kept and retried, the burst's later events wait behind it, nothing is
  acknowledged (every dev-route call stays open) until PostgreSQL is back; then every message is stored exactly
  once, announced exactly once, within a few seconds, with a few log lines and no traceback.
* Redis outage: reads and writes keep answering (cache bypassed, never stale), a WebSocket of the same account
  on the same process still gets every event (in-process fan-out), the outage is logged once per process, and
  after Redis is back the probe reconnects: cross-process fan-out and the cache resume, recovery logged once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psqlpy
import pytest
import redis as redis_sync
from websockets.sync.client import ClientConnection, connect

from clarin.db.errors import OutageLog
from tests import support
from tests.fault_support import PrivatePostgres, missing_binaries, private_postgres, private_redis

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.skipif(missing_binaries() is not None, reason=missing_binaries() or ""),
]

ADMIN_PASSWORD = "admin-pass-123"
CLIENT_TIMEOUT = 3.0  # longer than this is a hang: a down database must be a quick, clear 503
RECOVERY_BOUND = 5.0  # writes succeed again within this many seconds of PostgreSQL accepting connections
WRITERS = 6
UNAVAILABLE = {"success": False, "error": "Service temporarily unavailable, please retry"}
# Background workers busy during the fault: the campaign sender every 0.2 s, the device lease check every 1 s.
BUSY_WORKERS = {"CAMPAIGN_DELAY_SCALE": "0.001", "CAMPAIGN_TICK": "0.2", "WHATSAPP_LEASE_RENEW": "1",
                "WHATSAPP_LEASE_TTL": "3", "DB_POOL_SIZE": "8"}
PACED = {"min_delay_seconds": 40, "max_delay_seconds": 40, "batch_size": 100000, "batch_pause_minutes": 0}


Tenant = support.ServerTenant


def make_tenant(url: str) -> Tenant:
    return support.new_tenant(url, ADMIN_PASSWORD, "Fault")


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def new_log_text(server: support.ServerProcess, offset: int) -> str:
    return server.logs()[offset:]


# -- PostgreSQL restarted under write load -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    with private_postgres() as pg:
        yield pg


@pytest.fixture(scope="module")
def pg_server(private_pg: PrivatePostgres, log_dir: Path) -> Iterator[support.ServerProcess]:
    with support.running_server(support.base_env(private_pg.dsn, **BUSY_WORKERS), log_dir, "fault-pg") as srv:
        yield srv


@dataclass
class Outcome:
    started: float
    finished: float
    status: int | None  # None: no answer within CLIENT_TIMEOUT (or the connection failed)
    body: Any
    retry_after: str | None
    error: str = ""


def write_load(url: str, tenant: Tenant, stop: threading.Event, outcomes: list[Outcome]) -> list[threading.Thread]:
    """WRITERS threads POSTing leads with fresh phones until ``stop``; each answer is recorded."""

    def writer(n: int) -> None:
        with httpx.Client(base_url=url, headers=tenant.headers, timeout=CLIENT_TIMEOUT) as client:
            seq = 0
            while not stop.is_set():
                seq += 1
                phone = f"+5521{n:02d}{seq:07d}"
                started = time.monotonic()
                try:
                    r = client.post("/api/leads", json={"phone": phone, "name": f"W{n}-{seq}"})
                except httpx.HTTPError as exc:
                    outcomes.append(Outcome(started, time.monotonic(), None, None, None, repr(exc)))
                    continue
                try:
                    body = r.json()
                except ValueError:
                    body = r.text
                outcomes.append(Outcome(started, time.monotonic(), r.status_code, body, r.headers.get("retry-after")))

    threads = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    return threads


def running_campaign(api: httpx.Client) -> tuple[str, str]:
    """A connected simulated device and a campaign that sends one message every 40 ms for longer than the test."""
    device = api.post("/api/devices", json={"name": "Fault phone"})
    assert device.status_code == 201, device.text
    device_id = device.json()["device"]["id"]
    assert api.post(f"/api/devices/{device_id}/connect").status_code == 200
    wait_for(lambda: api.get(f"/api/devices/{device_id}").json()["device"]["status"] == "connected", 15,
             "the device to connect")
    r = api.post("/api/campaigns", json={"name": "During the fault", "device_id": device_id,
                                         "message_template": "Hola {{nombre}}", "settings": PACED})
    assert r.status_code == 201, r.text
    campaign_id = r.json()["campaign"]["id"]
    recipients = [{"jid": f"51922{n:06d}@s.whatsapp.net", "name": f"R{n}"} for n in range(1000)]
    assert api.post(f"/api/campaigns/{campaign_id}/recipients", json={"recipients": recipients}).status_code == 200
    assert api.post(f"/api/campaigns/{campaign_id}/start").status_code == 200
    wait_for(lambda: api.get(f"/api/campaigns/{campaign_id}").json()["campaign"]["sent_count"] > 0, 15,
             "the campaign to send")
    return device_id, campaign_id


def inject(pg: PrivatePostgres, mode: str) -> None:
    if mode == "restart-fast":
        pg.restart("fast")
    else:  # a crash-like stop (no checkpoint, WAL replay on start) and a second of downtime
        pg.stop("immediate")
        time.sleep(1.0)
        pg.start()


@pytest.mark.parametrize("mode", ["restart-fast", "stop-immediate-1s"])
def test_postgres_restart_under_write_load(mode: str, private_pg: PrivatePostgres,
                                          pg_server: support.ServerProcess) -> None:
    tenant = make_tenant(pg_server.url)
    api = httpx.Client(base_url=pg_server.url, headers=tenant.headers, timeout=10)
    with api:
        _device_id, campaign_id = running_campaign(api)
        log_offset = len(pg_server.logs())
        outcomes: list[Outcome] = []
        stop = threading.Event()
        threads = write_load(pg_server.url, tenant, stop, outcomes)
        try:
            time.sleep(1.0)
            fault_at = time.monotonic()
            inject(private_pg, mode)
            up_at = time.monotonic()  # pg_ctl -w returned: PostgreSQL accepts connections
            time.sleep(RECOVERY_BOUND + 1.5)
        finally:
            stop.set()
            for thread in threads:
                thread.join(CLIENT_TIMEOUT + 5)
        assert not any(t.is_alive() for t in threads), "a writer is stuck"

        # 1. No hang and no 500: every request got a clear answer, 201 or 503 with the JSON error envelope.
        hung = [o for o in outcomes if o.status is None]
        assert not hung, f"{len(hung)} request(s) got no answer within {CLIENT_TIMEOUT}s: {hung[:3]}"
        statuses = Counter(o.status for o in outcomes)
        assert set(statuses) <= {201, 503}, statuses
        unavailable = [o for o in outcomes if o.status == 503]
        for o in unavailable:
            assert o.body == UNAVAILABLE and o.retry_after == "2", o
        if mode != "restart-fast":  # a second of downtime under continuous load is always seen
            assert unavailable, f"no 503 during a 1 s outage: {statuses}"
        assert max(o.finished - o.started for o in outcomes) < CLIENT_TIMEOUT

        # 2. Recovery: the first write started after PostgreSQL is back succeeds within RECOVERY_BOUND, and every
        #    write started after that bound succeeds.
        after_up = [o for o in outcomes if o.started >= up_at]
        first_ok = min((o.finished for o in after_up if o.status == 201), default=None)
        assert first_ok is not None, f"no write succeeded after PostgreSQL came back: {Counter(o.status for o in after_up)}"
        recovery = first_ok - up_at
        assert recovery < RECOVERY_BOUND, recovery
        late = [o for o in outcomes if o.started >= up_at + RECOVERY_BOUND]
        assert late and all(o.status == 201 for o in late), Counter(o.status for o in late)
        last_failure = max((o.finished - up_at for o in after_up if o.status != 201), default=0.0)
        print(f"\n[{mode}] outage {up_at - fault_at:.2f}s, {statuses[201]} acknowledged writes, "
              f"{statuses[503]} answered 503; after PostgreSQL is up: first success {recovery * 1000:.0f} ms, "
              f"last 503 {last_failure * 1000:.0f} ms")

        # 3. Every acknowledged write is in the database (read directly, not through the server).
        acknowledged = {o.body["lead"]["id"] for o in outcomes if o.status == 201}
        stored = {str(row["id"]) for row in support.run_sql(
            private_pg.dsn, "SELECT id FROM leads WHERE account_id = $1", [uuid.UUID(tenant.account_id)])}
        missing = acknowledged - stored
        assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged leads are missing"

        # 4. The background workers survived: the campaign (device lease re-taken after the lease session broke)
        #    keeps sending, the process is alive, and the log has no traceback and only a few outage lines.
        sent = api.get(f"/api/campaigns/{campaign_id}").json()["campaign"]
        wait_for(lambda: (c := api.get(f"/api/campaigns/{campaign_id}").json()["campaign"])["sent_count"]
                 >= sent["sent_count"] + 5 and c, 15, "the campaign to send again after the restart")
        campaign = api.get(f"/api/campaigns/{campaign_id}").json()["campaign"]
        assert campaign["status"] == "running", campaign
        failed = support.run_sql(private_pg.dsn, "SELECT error_message FROM campaign_recipients "
                                 "WHERE campaign_id = $1 AND status = 'failed'", [uuid.UUID(campaign_id)])
        print(f"[{mode}] campaign: {campaign['sent_count']} sent, {campaign['failed_count']} failed "
              f"{[row['error_message'] for row in failed]}")
        assert api.post(f"/api/campaigns/{campaign_id}/pause").status_code == 200  # quiet for the next test
    assert pg_server.proc.poll() is None, "the server died"
    assert httpx.get(pg_server.url + "/ready", timeout=5).status_code == 200
    log = new_log_text(pg_server, log_offset)
    assert "Traceback" not in log, log[-4000:]
    assert log.count("database unavailable [") <= 3, log[-4000:]


# -- inbound WhatsApp messages while PostgreSQL is down ------------------------------------------------------------
INGEST_BURST = 40
INGEST_OUTAGE = 2.0  # seconds PostgreSQL stays down while the burst is held
INGEST_RECOVERY = 5.0  # every held message is stored within this many seconds of PostgreSQL being back


def query_count(url: str, name: str) -> float:
    """How many times the server ran the named query (``/metrics``, summed over label sets)."""
    text = httpx.get(url + "/metrics", timeout=5).text
    pattern = re.compile(r'^clarin_db_query_duration_seconds_count\{query="' + re.escape(name) + r'"\} (\S+)$', re.M)
    return sum(float(value) for value in pattern.findall(text))


class TableLock:
    """A session of its own holding ``EXCLUSIVE`` on a table (reads pass, writes wait) until PostgreSQL stops."""

    def __init__(self, dsn: str, table: str) -> None:
        self.locked, self._done = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._hold(dsn, table),), daemon=True)
        self._thread.start()
        assert self.locked.wait(10), f"could not lock {table}"

    async def _hold(self, dsn: str, table: str) -> None:
        pool = psqlpy.ConnectionPool(dsn=dsn, max_db_pool_size=2)
        try:
            conn = await pool.connection()
            await conn.execute("BEGIN")
            await conn.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
            self.locked.set()
            await asyncio.to_thread(self._done.wait)
        except Exception:
            pass  # the session ends with the server
        finally:
            pool.close()

    def close(self) -> None:
        self._done.set()
        self._thread.join(10)


def post_burst(url: str, token: str, device_id: str, bodies: list[dict[str, Any]],
               answers: list[tuple[float, int | None]]) -> threading.Thread:
    """POST every body to the dev inbound route at once, in a thread; (finished at, status) per answer."""

    async def post(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
        try:
            r = await client.post(f"/api/dev/whatsapp/{device_id}/inbound", json=body)
            answers.append((time.monotonic(), r.status_code))
        except httpx.HTTPError:
            answers.append((time.monotonic(), None))

    async def burst() -> None:
        limits = httpx.Limits(max_connections=len(bodies))
        async with httpx.AsyncClient(base_url=url, headers=support.auth(token), timeout=30, limits=limits) as client:
            await asyncio.gather(*(post(client, body) for body in bodies))

    thread = threading.Thread(target=asyncio.run, args=(burst(),), daemon=True)
    thread.start()
    return thread


def test_inbound_messages_wait_for_postgres_and_are_stored_once(log_dir: Path) -> None:
    """PostgreSQL stops while a burst of inbound messages is being ingested (its first batch blocked on a lock
    held by the test, the rest queued behind it): nothing is lost or duplicated, nothing is acknowledged early.

    The device lease is checked every second, so the check runs inside the outage: it finds the lease session
    broken and stops running the device here — its queued events are still written (clarin.whatsapp.inbox).
    """
    with private_postgres() as pg, support.running_server(
            support.base_env(pg.dsn, WHATSAPP_LEASE_RENEW="1", WHATSAPP_LEASE_TTL="3", DB_POOL_SIZE="8"),
            log_dir, "fault-ingest") as srv:
        tenant = make_tenant(srv.url)
        with httpx.Client(base_url=srv.url, headers=tenant.headers, timeout=10) as api:
            device = api.post("/api/devices", json={"name": "Inbound phone"})
            assert device.status_code == 201, device.text
            device_id = device.json()["device"]["id"]
            assert api.post(f"/api/devices/{device_id}/connect").status_code == 200
            wait_for(lambda: api.get(f"/api/devices/{device_id}").json()["device"]["status"] == "connected", 15,
                     "the device to connect")
        sender = "5198" + str(uuid.uuid4().int)[:8]
        ids = [f"OUTAGE-{n:03d}" for n in range(INGEST_BURST)]
        bodies = [{"from": sender, "push_name": "Outage", "body": f"during the outage {n}", "message_id": ids[n],
                   "timestamp": 1_700_000_000 + n} for n in range(INGEST_BURST)]
        with ws_connect(srv, tenant.token) as ws:
            ws.send('{"event":"ping"}')  # the pong proves the socket is registered before anything is sent
            assert json.loads(ws.recv(timeout=5)) == {"event": "pong"}
            log_offset = len(srv.logs())
            routed = query_count(srv.url, "get_device")  # one per dev-route call, just before it is enqueued

            # 1. The burst is being ingested: its first batch waits on the lock, every other event is queued.
            lock = TableLock(pg.dsn, "messages")
            answers: list[tuple[float, int | None]] = []
            burst = post_burst(srv.url, tenant.token, device_id, bodies, answers)
            try:
                wait_for(lambda: query_count(srv.url, "get_device") >= routed + INGEST_BURST, 10,
                         "every event to reach the device's queue")
                wait_for(lambda: support.run_sql(pg.dsn, "SELECT count(*) AS n FROM pg_stat_activity "
                                                 "WHERE wait_event_type = 'Lock'")[0]["n"] > 0, 10,
                         "the first batch to wait on the lock")

                # 2. PostgreSQL goes away under the batch (its backend is terminated) and stays down a while.
                pg.stop("fast")
                time.sleep(INGEST_OUTAGE)
                assert not answers, f"acknowledged while PostgreSQL was down: {answers[:3]}"
                restart_at = time.monotonic()
                pg.start()
                burst.join(INGEST_RECOVERY + 10)
                assert not burst.is_alive(), f"only {len(answers)} of {INGEST_BURST} deliveries answered"
            finally:
                lock.close()

            # 3. Every call answered 200 once its message was written, soon after PostgreSQL came back.
            assert Counter(status for _, status in answers) == {200: INGEST_BURST}, Counter(s for _, s in answers)
            recovery = max(at for at, _ in answers) - restart_at
            assert recovery < INGEST_RECOVERY, recovery
            # 4. Stored exactly once, the chat counted each once, one lead (read directly, not through the server).
            account = uuid.UUID(tenant.account_id)
            rows = support.run_sql(pg.dsn, "SELECT message_id, count(*) AS n FROM messages WHERE account_id = $1 "
                                   "GROUP BY message_id", [account])
            assert {row["message_id"]: row["n"] for row in rows} == dict.fromkeys(ids, 1)
            chat = support.run_sql(pg.dsn, "SELECT unread_count FROM chats WHERE account_id = $1", [account])
            assert chat == [{"unread_count": INGEST_BURST}], chat
            leads = support.run_sql(pg.dsn, "SELECT count(*) AS n FROM leads WHERE account_id = $1", [account])
            assert leads[0]["n"] == 1, leads
            # 5. Announced exactly once: one new_message per message, one lead_update "created".
            announced: Counter[str] = Counter()
            created = 0
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and (len(announced) < INGEST_BURST or created < 1):
                try:
                    frame = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
                except TimeoutError:
                    break
                if frame["event"] == "new_message":
                    announced[frame["data"]["message"]["message_id"]] += 1
                elif frame["event"] == "lead_update" and frame["data"].get("action") == "created":
                    created += 1
            try:  # anything announced twice would follow right behind
                while True:
                    frame = json.loads(ws.recv(timeout=0.3))
                    if frame["event"] == "new_message":
                        announced[frame["data"]["message"]["message_id"]] += 1
            except TimeoutError:
                pass
            assert announced == dict.fromkeys(ids, 1), announced
            assert created == 1
        print(f"\n[ingest] {INGEST_BURST} inbound messages held through a {INGEST_OUTAGE:.0f} s outage, all stored "
              f"{recovery * 1000:.0f} ms after PostgreSQL was started")

        # 6. A few log lines for the outage, no traceback.
        log = new_log_text(srv, log_offset)
        assert "Traceback" not in log, log[-4000:]
        assert log.count("ingestion paused") == 1, log[-4000:]
        assert log.count("ingestion resumed after") == 1, log[-4000:]
        assert log.count("ingestion still waiting") <= 1, log[-4000:]
        assert "not written" not in log, log[-4000:]


# -- Redis stopped and restarted ---------------------------------------------------------------------------------
def ws_connect(server: support.ServerProcess, token: str) -> ClientConnection:
    return connect(f"{server.ws_url}?token={token}", open_timeout=10, close_timeout=2)


def lead_events(ws: ClientConnection, wanted: set[str], timeout: float) -> set[str]:
    """The ``lead_update`` lead ids of ``wanted`` that arrive on ``ws`` within ``timeout``."""
    got: set[str] = set()
    deadline = time.monotonic() + timeout
    while got != wanted and time.monotonic() < deadline:
        try:
            frame = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        except TimeoutError:
            break
        if frame["event"] == "lead_update" and frame["data"]["lead_id"] in wanted:
            got.add(frame["data"]["lead_id"])
    return got


def create_lead(client: httpx.Client, phone: str) -> str:
    r = client.post("/api/leads", json={"phone": phone})
    assert r.status_code == 201, r.text
    return r.json()["lead"]["id"]


def test_redis_outage_degrades_and_recovers(private_pg: PrivatePostgres, log_dir: Path) -> None:
    with private_redis() as redis:
        # The rate limiter is on (a high limit) so its Redis counters degrade to per-process ones during the outage.
        env = support.base_env(private_pg.dsn, REDIS_URL=redis.url, DB_POOL_SIZE="4", RATE_LIMIT="100000")
        with support.running_server(env, log_dir, "fault-redis-a") as a, \
                support.running_server(env, log_dir, "fault-redis-b") as b:
            tenant = make_tenant(a.url)
            with httpx.Client(base_url=a.url, headers=tenant.headers, timeout=CLIENT_TIMEOUT) as ca, \
                    httpx.Client(base_url=b.url, headers=tenant.headers, timeout=CLIENT_TIMEOUT) as cb, \
                    ws_connect(a, tenant.token) as ws_a, ws_connect(b, tenant.token) as ws_b:
                # Before: an event written on A reaches B's socket through Redis; the board is cached.
                before = create_lead(ca, "+5531000000001")
                assert lead_events(ws_a, {before}, 5) == {before}
                assert lead_events(ws_b, {before}, 5) == {before}, "no cross-process fan-out with Redis up"
                assert ca.get("/api/leads").status_code == 200

                logs_a, logs_b = a.logs(), b.logs()
                redis.stop()
                created: list[str] = []
                slowest = 0.0
                for n in range(25):
                    started = time.monotonic()
                    lead_id = create_lead(ca, f"+55310100{n:04d}")
                    created.append(lead_id)
                    assert ca.put(f"/api/leads/{lead_id}", json={"name": f"Renamed {n}"}).status_code == 200
                    assert ca.patch(f"/api/leads/{lead_id}/status", json={"status": "won"}).status_code == 200
                    got = ca.get(f"/api/leads/{lead_id}")
                    assert got.status_code == 200 and got.json()["lead"]["name"] == f"Renamed {n}"
                    board = ca.get("/api/leads")  # the cache is bypassed: never a board from before the write
                    assert board.status_code == 200 and lead_id in {x["id"] for x in board.json()["leads"]}
                    slowest = max(slowest, time.monotonic() - started)
                other = cb.get("/api/leads")  # the other process reads the same data
                assert other.status_code == 200 and set(created) <= {x["id"] for x in other.json()["leads"]}
                # Same process: every write's event still reaches the socket (in-process fan-out), and so does a
                # socket opened during the outage; logins (failed-login counters live in Redis) work too.
                assert lead_events(ws_a, set(created), 5) == set(created)
                token = support.login(a.url, "admin", ADMIN_PASSWORD)
                assert httpx.get(a.url + "/api/me", headers=support.auth(token), timeout=CLIENT_TIMEOUT).is_success
                with ws_connect(a, tenant.token) as late_ws:
                    during = create_lead(ca, "+5531019999999")
                    assert lead_events(late_ws, {during}, 5) == {during}
                    assert lead_events(ws_a, {during}, 5) == {during}

                # Logged once per process for the whole outage, not per request (A served ~130 requests): one
                # "Redis unavailable" line, a bounded handful of warnings in all, no traceback.
                for server, offset in ((a, len(logs_a)), (b, len(logs_b))):
                    log = server.logs()
                    assert log.count("Redis unavailable") == 1, log[-3000:]
                    during_outage = log[offset:]
                    assert "Traceback" not in during_outage, during_outage[-3000:]
                    noisy = [line for line in during_outage.splitlines() if " WARNING " in line or " ERROR " in line]
                    assert len(noisy) <= 4, noisy

                # Back on the same port: the probe reconnects, cross-process fan-out resumes.
                redis.start()
                back_at = time.monotonic()
                resumed_after = None
                for n in range(100):
                    lead_id = create_lead(ca, f"+55310200{n:04d}")
                    if lead_events(ws_b, {lead_id}, 0.3) == {lead_id}:
                        resumed_after = time.monotonic() - back_at
                        break
                assert resumed_after is not None, "cross-process fan-out did not resume"
                assert resumed_after < 10, resumed_after
                # The cache is written again (the restarted Redis was empty) and serves fresh data.
                assert ca.get("/api/leads").status_code == 200
                with redis_sync.Redis.from_url(redis.url) as direct:
                    wait_for(lambda: direct.dbsize() > 0, 5, "cache entries in the restarted Redis")
                board = cb.get("/api/leads").json()["leads"]
                assert set(created) | {lead_id} <= {x["id"] for x in board}
                print(f"\n[redis] {len(created) * 5} requests during the outage (slowest {slowest * 1000:.0f} ms per "
                      f"5-request round), cross-process fan-out back {resumed_after:.2f}s after Redis restarted")
        for server in (a, b):
            log = server.logs()
            assert log.count("Redis unavailable") == 1, log[-3000:]
            assert log.count("Redis is reachable again") == 1, log[-3000:]
            assert "Traceback" not in log, log[-3000:]


# -- the log throttle both outages rely on ------------------------------------------------------------------------
def test_outage_log_reports_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    outage = OutageLog(logging.getLogger("clarin.test.outage"), interval=0.3, level=logging.WARNING)
    with caplog.at_level(logging.WARNING, logger="clarin.test.outage"):
        for n in range(100):
            outage.report("database unavailable [request %d]", n)
        assert [r.getMessage() for r in caplog.records] == ["database unavailable [request 0]"]
        time.sleep(0.35)
        outage.report("database unavailable [request %d]", 100)
    assert caplog.records[-1].getMessage() == \
        "database unavailable [request 100] (and 99 more like it since the previous report)"
    assert caplog.records[-1].levelno == logging.WARNING and len(caplog.records) == 2
