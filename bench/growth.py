"""Growth profile (issue 17): what each dashboard read costs at 10k leads and at 1M leads, side by side.

``python -m bench.growth`` (``make bench-growth``) seeds, when missing, two bench databases — scale 0.1
(10k leads in the large account) and scale 10 (1M leads) — serves each with the page cache off
(``PAGE_CACHE_TTL=0``, Redis on as in production), and for every endpoint sends ``--requests`` sequential
requests on one keep-alive connection after a warm-up of every endpoint (so prepared statements have settled
on the plan the server ends up using). It prints, per endpoint and scale, the PostgreSQL blocks per request
(shared hit + read, from ``pg_stat_database`` deltas around the requests, minus the server's idle background
rate measured first) and the p50/p95 latency, then the 1M/10k ratio. PostgreSQL 15 backends flush their
counters at most once a second and, when idle within that second, up to 10 s later: each window ends with
an 11 s wait, so a run takes about 4 minutes per scale.

Exit 1 when a gated endpoint's blocks ratio exceeds ``--max-ratio`` (3) or its p95 at the large scale exceeds
``--max-p95-ms`` (50). Blocks are deterministic, so the ratio gate is stable on a noisy machine; p95 is not,
so run it on a quiet one. ``offset`` deep pages are printed for reference only (OFFSET is O(offset) by
nature: the cursor rows are the O(page) answer).

Environment: ``GROWTH_SMALL_DATABASE_URL`` / ``GROWTH_LARGE_DATABASE_URL`` (default ``clarin_bench_g01`` /
``clarin_bench_g10`` next to ``BENCH_PG_ADMIN``), ``GROWTH_SMALL_SCALE`` / ``GROWTH_LARGE_SCALE``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (
    BENCH_PASSWORD,
    DEFAULT_SEED,
    LARGE_USER,
    PG_ADMIN_DSN,
    ensure_database,
    exit_now,
    fetch,
    load_sql,
)
from bench.load import Config, Server

IDLE_ATTEMPTS = 8  # idle readings before giving up on two that agree
IDLE_AGREE_BLOCKS_S, IDLE_AGREE_SHARE = 10.0, 0.10  # two idle readings agree within max(10 blocks/s, 10 %)
WINDOW_ATTEMPTS = 3  # a window autovacuum disturbed is measured again, at most this many times in all
FLUSH_WAIT_S = 11.0  # PostgreSQL 15: an idle backend's pending statistics are flushed within PGSTAT_IDLE_INTERVAL
WARMUP = 40  # > 5 executions on each pooled connection: prepared statements have made their plan choice
LEADS_DEPTH, CONTACTS_DEPTH, CHATS_DEPTH, MESSAGES_DEPTH = 5000, 2500, 400, 1000


@dataclass
class Probe:
    name: str
    path: str | None  # None: not measurable here (the reason is in ``skipped``)
    gated: bool = True
    method: str = "GET"
    body: Callable[[int], dict[str, Any]] | None = None
    skipped: str = ""


@dataclass
class Measured:
    blocks: float
    p50_ms: float
    p95_ms: float
    statuses: dict[int, int] = field(default_factory=dict)


def _dsn(env: str, name: str) -> str:
    return os.environ.get(env, "").strip() or PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name


def _q(**params: str) -> str:
    return urllib.parse.urlencode(params)


def _cursor_at(client: httpx.Client, path: str, depth: int, key: str) -> str | None:
    """``next_cursor`` of the page that ends ``depth`` rows deep (None when the route has no cursors)."""
    sep = "&" if "?" in path else "?"
    answer = client.get(f"{path}{sep}limit=50&offset={max(0, depth - 50)}")
    if answer.status_code != 200:
        return None
    data = answer.json()
    return data.get("next_cursor") if isinstance(data.get(key), list) else None


def probes(client: httpx.Client, sql: dict[str, str], dsn: str, account_id: uuid.UUID) -> list[Probe]:
    fx = asyncio.run(fetch(dsn, sql["growth_fixtures"], [account_id]))[0]
    chat = fx["chat_id"]
    deep_msg = asyncio.run(fetch(dsn, sql["growth_message_at_depth"], [uuid.UUID(chat), MESSAGES_DEPTH, account_id]))
    out = [
        Probe("leads page", "/api/leads?limit=50"),
        Probe("leads search maría", "/api/leads?" + _q(limit="50", search="maría")),
        Probe("leads search 5190 (phone)", "/api/leads?" + _q(limit="50", search="5190")),
        Probe("leads ?stage_id", "/api/leads?" + _q(limit="50", stage_id=fx["stage_id"])),
        Probe("leads ?tag_ids", "/api/leads?" + _q(limit="50", tag_ids=fx["tag_id"])),
        Probe(f"leads offset={LEADS_DEPTH}", f"/api/leads?limit=50&offset={LEADS_DEPTH}", gated=False),
        Probe("contacts page", "/api/contacts?limit=50"),
        Probe("contacts search carmen", "/api/contacts?" + _q(limit="50", search="carmen")),
        Probe(f"contacts offset={CONTACTS_DEPTH}", f"/api/contacts?limit=50&offset={CONTACTS_DEPTH}", gated=False),
        Probe("chats inbox", "/api/chats?limit=50"),
        Probe("chats search maría", "/api/chats?" + _q(limit="50", search="maría")),
        Probe("stats", "/api/stats"),
        Probe("lead by id", f"/api/leads/{fx['lead_id']}"),
        Probe("messages page (busiest chat)", f"/api/chats/{chat}/messages?limit=50"),
        Probe(f"messages before_id {MESSAGES_DEPTH} deep",
              f"/api/chats/{chat}/messages?limit=50&before_id={deep_msg[0]['id']}" if deep_msg else None,
              skipped="the busiest chat is shallower"),
        Probe("lead create", "/api/leads", method="POST",
              body=lambda n: {"name": f"Growth {n}", "phone": f"99{n:09d}", "email": "", "source": "growth-bench",
                              "notes": ""}),
    ]
    for label, path, depth, key in (("leads", "/api/leads", LEADS_DEPTH, "leads"),
                                    ("contacts", "/api/contacts", CONTACTS_DEPTH, "contacts"),
                                    ("chats", "/api/chats", CHATS_DEPTH, "chats")):
        cursor = _cursor_at(client, path, depth, key)
        out.append(Probe(f"{label} cursor {depth} deep", f"{path}?" + _q(limit="50", cursor=cursor) if cursor else None,
                         skipped="no next_cursor in the response"))
    return out


@dataclass(frozen=True)
class Reading:
    at: float
    blocks: int
    maintenance: int  # autovacuum + autoanalyze runs finished so far
    vacuuming: int  # autovacuum workers in this database now


class Counters:
    """``pg_stat_database`` blocks of the bench database, read after the server's backends have flushed.

    pg_stat_database also counts autovacuum's blocks: a window during which an autovacuum or autoanalyze ran (a
    worker seen at either end, or a run finished in between) is *disturbed*, and ``measure`` runs it again."""

    def __init__(self, dsn: str, sql: dict[str, str]) -> None:
        self._dsn, self._sql = dsn, sql
        self.idle_per_s = 0.0
        self._last: Reading | None = None

    def _read(self) -> Reading:
        time.sleep(FLUSH_WAIT_S)
        row = asyncio.run(fetch(self._dsn, self._sql["growth_blocks"]))[0]
        return Reading(time.monotonic(), int(row["blocks"]), int(row["maintenance"]), int(row["vacuuming"]))

    @staticmethod
    def _disturbed(before: Reading, after: Reading) -> bool:
        return bool(before.vacuuming or after.vacuuming or after.maintenance != before.maintenance)

    def start(self, attempts: int = IDLE_ATTEMPTS) -> None:
        """Measure the idle server's background blocks per second (lease renewals, the reading connection itself),
        then mark. The server must have settled: after start-up its devices connect for a while (every connection
        wakes the campaign supervisor), so readings are taken until two windows in a row agree."""
        previous: float | None = None
        last = self._read()
        for _ in range(attempts):
            now = self._read()
            rate = max(0.0, (now.blocks - last.blocks) / (now.at - last.at))
            steady = not self._disturbed(last, now)
            last = now
            if steady and previous is not None and abs(rate - previous) <= max(IDLE_AGREE_BLOCKS_S,
                                                                               IDLE_AGREE_SHARE * previous):
                break
            previous = rate if steady else None
        else:
            print("  (the idle server never settled: its background is subtracted as last read)", flush=True)
        self.idle_per_s = rate
        self._last = last

    def window(self) -> tuple[float, bool]:
        """Blocks since the previous mark, minus the idle background over the window, and whether autovacuum
        disturbed it; marks again."""
        assert self._last is not None
        now = self._read()
        spent = now.blocks - self._last.blocks - self.idle_per_s * (now.at - self._last.at)
        disturbed = self._disturbed(self._last, now)
        self._last = now
        return max(0.0, spent), disturbed


def sender(client: httpx.Client, probe: Probe, created: list[str]) -> Callable[[], httpx.Response]:
    assert probe.path is not None
    path = probe.path
    counter = iter(range(10**9))

    def send() -> httpx.Response:
        if probe.body is None:
            return client.get(path)
        answer = client.post(path, json=probe.body(next(counter)))
        if answer.status_code in (200, 201) and answer.json().get("lead", {}).get("id"):
            created.append(answer.json()["lead"]["id"])
        return answer

    return send


def measure(send: Callable[[], httpx.Response], requests: int, counters: Counters,
            attempts: int = WINDOW_ATTEMPTS) -> Measured:
    for attempt in range(attempts):
        times: list[float] = []
        statuses: dict[int, int] = {}
        for _ in range(requests):
            started = time.perf_counter()
            answer = send()
            times.append(time.perf_counter() - started)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
        blocks, disturbed = counters.window()
        if not disturbed:
            break
        print(f"  (autovacuum ran during the window: again, {attempt + 1}/{attempts})", flush=True)
    ms = sorted(t * 1000 for t in times)
    return Measured(blocks=blocks / requests, p50_ms=statistics.median(ms),
                    p95_ms=ms[min(len(ms) - 1, int(len(ms) * 0.95))], statuses=statuses)


def run_scale(dsn: str, scale: float, requests: int, seed: int, only: str = "") -> dict[str, Any]:
    ensure_database(dsn, seed_value=seed, scale=scale)
    sql, admin = load_sql("growth"), load_sql("admin")
    cfg = Config()
    cfg.workers = 1
    # Page cache off (every request on PostgreSQL). The periodic scans of all tenants (campaign supervisor, scheduled
    # messages, webhook outbox poll) slowed down: each is a burst of blocks every few seconds, and a window that caught
    # one tick more or less than the idle reading moved a cheap endpoint's figure by ±10 blocks a request.
    cfg.server_env = "PAGE_CACHE_TTL=0,CAMPAIGN_TICK=3600,SCHEDULED_TICK=3600,WEBHOOK_POLL_INTERVAL=3600"
    server = Server(cfg, dsn, Path(tempfile.mkdtemp(prefix="clarin-growth-")))
    results: dict[str, Any] = {}
    created: list[str] = []
    account_id = uuid.UUID(asyncio.run(fetch(dsn, admin["bench_large_account"], [seed]))[0]["account_id"])
    try:
        server.wait_ready()
        token = httpx.post(server.url + "/api/auth/login", json={"username": LARGE_USER, "password": BENCH_PASSWORD},
                           timeout=30).json()["token"]
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
            planned = [p for p in probes(client, sql, dsn, account_id) if only in p.name]
            senders = {p.name: sender(client, p, created) for p in planned if p.path is not None}
            for send in senders.values():
                for _ in range(WARMUP):
                    send()
            counters = Counters(dsn, sql)
            counters.start()
            print(f"  (idle server: {counters.idle_per_s:.1f} blocks/s, subtracted)", flush=True)
            for probe in planned:
                if probe.path is None:
                    results[probe.name] = {"skipped": probe.skipped, "gated": probe.gated}
                    print(f"  {probe.name:<34} skipped: {probe.skipped}", flush=True)
                    continue
                got = measure(senders[probe.name], requests, counters)
                results[probe.name] = {**got.__dict__, "gated": probe.gated}
                print(f"  {probe.name:<34} {got.blocks:>9.1f} blocks  p50 {got.p50_ms:6.1f} ms  "
                      f"p95 {got.p95_ms:6.1f} ms  {got.statuses}", flush=True)
    finally:
        server.stop()
        if created:
            asyncio.run(fetch(dsn, sql["growth_delete_created_leads"], [account_id, [uuid.UUID(i) for i in created]]))
    return results


def verdict(small: dict[str, Any], large: dict[str, Any], max_ratio: float, max_p95: float) -> list[str]:
    failures: list[str] = []
    print(f"\n{'endpoint':<34} {'blocks 10k':>10} {'blocks 1M':>10} {'ratio':>7} {'p95 10k':>8} {'p95 1M':>8}")
    for name, big in large.items():
        little = small.get(name, {})
        if "skipped" in big or "skipped" in little:
            print(f"{name:<34} {'skipped: ' + (big.get('skipped') or little.get('skipped', '')):>46}")
            if big.get("gated"):
                failures.append(f"{name}: not measured ({big.get('skipped') or little.get('skipped')})")
            continue
        ratio = big["blocks"] / max(little["blocks"], 1.0)
        gate = "" if big["gated"] else "  (reference, not gated)"
        print(f"{name:<34} {little['blocks']:>10.1f} {big['blocks']:>10.1f} {ratio:>6.2f}x "
              f"{little['p95_ms']:>7.1f} {big['p95_ms']:>7.1f}{gate}")
        bad_status = {s: n for s, n in big["statuses"].items() if s >= 400}
        if not big["gated"]:
            continue
        if ratio > max_ratio:
            failures.append(f"{name}: {ratio:.2f}x the blocks at 10k (max {max_ratio}x)")
        if big["p95_ms"] > max_p95:
            failures.append(f"{name}: p95 {big['p95_ms']:.1f} ms at 1M (max {max_p95} ms)")
        if bad_status:
            failures.append(f"{name}: error answers {bad_status}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.growth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--max-ratio", type=float, default=3.0)
    parser.add_argument("--max-p95-ms", type=float, default=50.0)
    parser.add_argument("--json", default=None, help="write every measurement to this file")
    parser.add_argument("--only", default="", help="measure only the endpoints whose name contains this text")
    args = parser.parse_args(argv)
    seed = int(os.environ.get("BENCH_SEED", DEFAULT_SEED))
    scales = ((_dsn("GROWTH_SMALL_DATABASE_URL", "clarin_bench_g01"), float(os.environ.get("GROWTH_SMALL_SCALE", "0.1"))),
              (_dsn("GROWTH_LARGE_DATABASE_URL", "clarin_bench_g10"), float(os.environ.get("GROWTH_LARGE_SCALE", "10"))))
    measured: list[dict[str, Any]] = []
    for dsn, scale in scales:
        print(f"growth: scale {scale} ({dsn.rsplit('/', 1)[1]}), {args.requests} requests per endpoint", flush=True)
        measured.append(run_scale(dsn, scale, args.requests, seed, args.only))
    failures = verdict(measured[0], measured[1], args.max_ratio, args.max_p95_ms)
    if args.json:
        Path(args.json).write_text(json.dumps({"small": measured[0], "large": measured[1], "failures": failures},
                                              indent=2))
    for failure in failures:
        print(f"FAIL {failure}")
    print("growth: " + ("FAILED" if failures else "passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    exit_now(main())
