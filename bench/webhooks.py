"""Webhook bench row (``python -m bench.webhooks``; a step of ``make bench``): what one enabled subscription
costs ``POST /api/leads`` and how fast events reach a local receiver.

On a fresh database (no seeding needed; dropped afterwards) it starts ``clarin serve`` (``BENCH_WORKERS``,
``WEBHOOK_ALLOW_PRIVATE=true``) and a receiver in its own process (asyncio, answers 200, de-duplicates on
X-Clarin-Delivery), then:

1. ``POST /api/leads`` at ``BENCH_CONCURRENCY`` for ``BENCH_DURATION`` s without any subscription;
2. the same with one enabled subscription (``lead_update``) → the added p99 (target ≤ 10 %);
3. a backlog written while the subscription points at a closed port (its first event fails and holds the
   rest, in order), then the URL set back: events delivered per second while the queue drains (one
   subscription: deliveries go out in order, one at a time).

``BENCH_WEBHOOK_HOLD=1`` keeps deliveries from running during step 2 (the write path's own cost).
Writes ``bench/results/webhooks.json``; exit 1 when an acknowledged lead's event never arrived.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httpx

from bench.common import BENCH_PASSWORD, PG_ADMIN_DSN, RESULTS_DIR, SUPER_ADMIN, exit_now, fetch, load_sql
from bench.load import Config, Endpoint, Server, _run_fast, free_port, run_python_client

OUTPUT = RESULTS_DIR / "webhooks.json"
SQL = load_sql("webhooks")
TARGET_ADDED_P99 = 0.10


# -- receiver (own process: its work does not slow the load client) ---------------------------------------------
def _receiver_main(port: int, count: Any, first: Any, last: Any, ready: Any) -> None:
    seen: set[bytes] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                delivery = b""
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    key = name.strip().lower()
                    if key == b"content-length":
                        length = int(value)
                    elif key == b"x-clarin-delivery":
                        delivery = value.strip()
                await reader.readexactly(length)
                if delivery not in seen:
                    seen.add(delivery)
                    now = time.monotonic()
                    if not first.value:
                        first.value = now
                    last.value = now
                    count.value = len(seen)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        ctx = mp.get_context("spawn")
        self.count, self.first, self.last = ctx.Value("i", 0), ctx.Value("d", 0.0), ctx.Value("d", 0.0)
        ready = ctx.Event()
        self.proc = ctx.Process(target=_receiver_main, args=(self.port, self.count, self.first, self.last, ready),
                                daemon=True)
        self.proc.start()
        if not ready.wait(15):
            raise SystemExit("bench: webhook receiver did not start")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.join(5)


# -- scenario -------------------------------------------------------------------------------------------------
def _tenant(url: str) -> tuple[str, str]:
    """A fresh account and admin user (the server seeded the super admin); returns (token, account id)."""
    admin = httpx.post(url + "/api/auth/login", json={"username": SUPER_ADMIN, "password": BENCH_PASSWORD}).json()
    headers = {"Authorization": f"Bearer {admin['token']}"}
    suffix = uuid.uuid4().hex[:8]
    account = httpx.post(url + "/api/admin/accounts", json={"name": f"Hooks {suffix}"}, headers=headers).json()
    account_id = account["account"]["id"]
    user = {"account_id": account_id, "username": f"hooks_{suffix}", "email": f"hooks_{suffix}@bench.local",
            "password": BENCH_PASSWORD, "role": "admin"}
    assert httpx.post(url + "/api/admin/users", json=user, headers=headers).status_code == 201
    login = httpx.post(url + "/api/auth/login", json={"username": user["username"], "password": BENCH_PASSWORD})
    return login.json()["token"], account_id


def _leads(run: str) -> Endpoint:
    return Endpoint("lead_create", "POST", "/api/leads", "write", ["/api/leads"],
                    [json.dumps({"phone": f"+51 6{run}{{n}}", "name": "Hook {n}", "source": "bench-webhooks"})])


def _measure(cfg: Config, url: str, token: str, ep: Endpoint, duration: float) -> dict[str, Any]:
    result = _run_fast(run_python_client(url, token, ep, cfg.concurrency, duration, cfg.seed))
    return {k: result[k] for k in ("requests", "rps", "p50_ms", "p95_ms", "p99_ms", "errors", "statuses")}


def _state(dsn: str, account: uuid.UUID, since: str) -> dict[str, int]:
    when = datetime.fromisoformat(since.replace("Z", "+00:00"))
    return asyncio.run(fetch(dsn, SQL["bench_webhook_outbox_state"], [account, when]))[0]


def _settled(dsn: str, receiver: Receiver, account: uuid.UUID, since: str, timeout: float = 120) -> bool:
    """Every outbox row delivered and received once, and every lead written since the subscription has one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _state(dsn, account, since)
        if state["undelivered"] == 0 and receiver.count.value >= state["rows"]:
            return state["leads_without_event"] == 0 and receiver.count.value == state["rows"]
        time.sleep(0.2)
    return False


def main() -> int:
    cfg = Config()
    cfg.server_env = ",".join(filter(None, [cfg.server_env, "WEBHOOK_ALLOW_PRIVATE=true"]))
    name = f"clarin_bench_hooks_{uuid.uuid4().hex[:8]}"
    dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    asyncio.run(fetch(PG_ADMIN_DSN, f"CREATE DATABASE {name}"))
    work = Path(tempfile.mkdtemp(prefix="clarin-bench-hooks-"))
    receiver = Receiver()
    server = Server(cfg, dsn, work)
    row: dict[str, Any] = {"name": "webhooks", "kind": "write", "concurrency": cfg.concurrency,
                           "workers": cfg.workers, "duration_s": cfg.duration}
    try:
        server.wait_ready()
        token, account_text = _tenant(server.url)
        account = uuid.UUID(account_text)
        api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        print(f"bench webhooks: server workers={cfg.workers} c={cfg.concurrency} d={cfg.duration}s", flush=True)
        _measure(cfg, server.url, token, _leads("01"), max(1.0, cfg.warmup))
        none = _measure(cfg, server.url, token, _leads("02"), cfg.duration)
        # BENCH_WEBHOOK_HOLD=1: the subscription's first event fails (closed port) and holds the rest, so step 2
        # measures the write path alone (outbox rows in the lead's transaction), without deliveries running.
        hold = os.environ.get("BENCH_WEBHOOK_HOLD", "") == "1"
        target = f"http://127.0.0.1:{free_port() if hold else receiver.port}/hook"
        hook = api.post("/api/webhooks", json={"url": target, "events": ["lead_update"]}).json()["webhook"]
        row["deliveries_during_load"] = not hold
        time.sleep(0.5)
        _measure(cfg, server.url, token, _leads("03"), max(1.0, cfg.warmup))
        with_hook = _measure(cfg, server.url, token, _leads("04"), cfg.duration)
        if hold:
            assert api.put(f"/api/webhooks/{hook['id']}",
                           json={"url": f"http://127.0.0.1:{receiver.port}/hook"}).status_code == 200
        arrived = _settled(dsn, receiver, account, hook["created_at"])
        # Pure delivery rate: the subscription points at a closed port while a backlog is written (its first
        # event fails and holds the rest in order), then back at the receiver; the retry (~10 s) drains it.
        dead = f"http://127.0.0.1:{free_port()}/hook"
        assert api.put(f"/api/webhooks/{hook['id']}", json={"url": dead}).status_code == 200
        backlog = _measure(cfg, server.url, token, _leads("05"), min(cfg.duration, 5.0))
        queued = _state(dsn, account, hook["created_at"])["rows"] - receiver.count.value
        receiver.first.value = 0.0
        assert api.put(f"/api/webhooks/{hook['id']}",
                       json={"url": f"http://127.0.0.1:{receiver.port}/hook"}).status_code == 200
        drained = _settled(dsn, receiver, account, hook["created_at"])
        deliver_s = receiver.last.value - receiver.first.value
        added = (with_hook["p99_ms"] - none["p99_ms"]) / none["p99_ms"] if none["p99_ms"] else 0.0
        row.update({
            "p99_ms_no_subscription": round(none["p99_ms"], 2), "p99_ms_one_subscription": round(with_hook["p99_ms"], 2),
            "rps_no_subscription": round(none["rps"], 1), "rps_one_subscription": round(with_hook["rps"], 1),
            "added_p99_ratio": round(added, 3), "target_added_p99_ratio": TARGET_ADDED_P99,
            "requests_under_load": with_hook["requests"], "events_under_load_all_arrived": arrived,
            "backlog_events": queued, "backlog_delivered_all": drained, "backlog_drain_s": round(deliver_s, 2),
            "events_per_s": round((queued - 1) / deliver_s, 1) if deliver_s > 0 else None,
            "backlog_write_statuses": backlog["statuses"],
            "errors": none["errors"] + with_hook["errors"],
        })
        api.close()
    finally:
        server.stop()
        receiver.stop()
        asyncio.run(fetch(PG_ADMIN_DSN, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(row, indent=2) + "\n")
    verdict = "ok" if row["added_p99_ratio"] <= TARGET_ADDED_P99 else "above the 10 % target"
    print(f"webhooks: POST /api/leads p99 {row['p99_ms_no_subscription']} ms without a subscription, "
          f"{row['p99_ms_one_subscription']} ms with one (+{row['added_p99_ratio'] * 100:.1f} %, {verdict}); "
          f"req/s {row['rps_no_subscription']} / {row['rps_one_subscription']}; "
          f"{row['events_per_s']} events/s delivered to a local receiver ({row['backlog_events']} queued); "
          f"every acknowledged lead's event arrived: {row['events_under_load_all_arrived'] and row['backlog_delivered_all']}")
    print(f"bench: wrote {OUTPUT}")
    return 0 if row["events_under_load_all_arrived"] and row["backlog_delivered_all"] else 1


if __name__ == "__main__":
    exit_now(main())
