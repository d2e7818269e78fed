"""``busy_account`` load profile (issue 13 goal 2): reads of an account whose data changes all the time.

    python -m bench.busy            # → bench/results/latest-busy.json

On the large seeded account, while ``BENCH_BUSY_INBOUND`` (50) inbound WhatsApp messages per second arrive
through the simulated device (``POST /api/dev/whatsapp/:device/inbound``, from the senders of the busiest
chats) and ``BENCH_BUSY_UPDATES`` (5) lead updates per second are made (``PUT /api/leads/:id``),
``BENCH_CONCURRENCY`` (64) connections read six endpoints at once — the leads page, a lead, the busiest chat's
messages, the chats page, the contacts page and the stats — one wrk process per read with its share of the
connections, so each read gets its own req/s and percentiles. The page-cache hit rate over the measured window
comes from ``clarin_page_cache_lookups`` on ``/metrics`` (each worker refreshes it every 5 s, so the two
snapshots are taken after 5.5 s without reads).

Timeline: server start, device paired, writers start; reads warm up ``BENCH_WARMUP`` s; pause 5.5 s; snapshot;
reads measured ``BENCH_DURATION`` s; pause 5.5 s; snapshot; writers stop; the run's messages are deleted.
Same knobs as bench/load.py (BENCH_WORKERS, BENCH_SERVER_ENV, BENCH_CLIENT, ...); BENCH_OUTPUT overrides the
result file; BENCH_COMMIT=<rev> serves that commit (git archive) instead of the working tree, BENCH_TREE=<dir>
another source tree (an experiment), BENCH_PYSPY=<file> py-spy's raw stacks of the server over the window.
Rows: the six reads (kind ``read``) and the two writers (kind ``write``:
achieved rate and latency of the inbound route and of the lead update).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httpx

from bench.common import (
    BENCH_PASSWORD,
    LARGE_USER,
    RESULTS_DIR,
    ROOT,
    bench_dsn,
    database_exists,
    ensure_database,
    exit_now,
    fetch,
    load_sql,
)
from bench.load import (
    Config,
    Endpoint,
    Server,
    _cleanup,
    _percentiles,
    _run_fast,
    ensure_wrk,
    machine_info,
    print_table,
    run_python_client,
    run_wrk,
    setup_device,
)
from bench.profile import export_commit

PROFILE = "busy_account"
OUTPUT = RESULTS_DIR / "latest-busy.json"
METRICS_LAG_S = 5.5  # workers refresh their /metrics gauges every 5 s
INBOUND_RATE = float(os.environ.get("BENCH_BUSY_INBOUND", "") or 50)
UPDATE_RATE = float(os.environ.get("BENCH_BUSY_UPDATES", "") or 5)
SENDERS = 20  # the busiest chats' peers send the inbound messages (the busiest chat among them)
OPEN_LEADS = 10  # leads read by busy_lead_get
_LOOKUP = re.compile(r'^clarin_page_cache_lookups\{result="(\w+)"\}\s+([0-9.e+]+)', re.MULTILINE)


def read_endpoints(ctx: dict[str, Any]) -> list[Endpoint]:
    q = "limit=50"
    busiest = ctx["chats"][0]["id"]
    return [
        Endpoint("busy_leads_page", "GET", "/api/leads?limit=50", "read", [f"/api/leads?{q}"]),
        # "A lead": the few leads a team has open, not bench/load.py's spread over 1,000 (a key each, so nearly
        # every request there is a first read). The lead updates touch these too.
        Endpoint("busy_lead_get", "GET", "/api/leads/:id", "read",
                 [f"/api/leads/{i}" for i in ctx["lead_ids"][:OPEN_LEADS]]),
        Endpoint("busy_chat_messages", "GET", "/api/chats/:busiest/messages?limit=50", "read",
                 [f"/api/chats/{busiest}/messages?{q}"]),
        Endpoint("busy_chats_page", "GET", "/api/chats?limit=50", "read", [f"/api/chats?{q}"]),
        Endpoint("busy_contacts_page", "GET", "/api/contacts?limit=50", "read", [f"/api/contacts?{q}"]),
        Endpoint("busy_stats", "GET", "/api/stats", "read", ["/api/stats"]),
    ]


def shares(total: int, parts: int) -> list[int]:
    """``total`` connections over ``parts`` readers, as evenly as possible (each at least 1)."""
    return [max(1, total // parts + (1 if i < total % parts else 0)) for i in range(parts)]


def cpu_by_group(server_pid: int | None) -> dict[str, float]:
    """CPU seconds so far of every process on the machine, grouped: this server (its process tree),
    postgres, redis, wrk, this bench process, and everything else (other sessions' work)."""
    tick = os.sysconf("SC_CLK_TCK")
    procs: dict[int, tuple[int, str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            head, _, rest = (entry / "stat").read_text().rpartition(")")
            fields = rest.split()
            procs[int(entry.name)] = (int(fields[1]), head.partition("(")[2],
                                      (int(fields[11]) + int(fields[12])) / tick)
        except (OSError, ValueError, IndexError):
            continue
    tree = {server_pid} if server_pid else set()
    grew = True
    while grew:
        before = len(tree)
        tree |= {pid for pid, (ppid, _, _) in procs.items() if ppid in tree}
        grew = len(tree) != before
    groups: dict[str, float] = {}
    for pid, (_, comm, cpu) in procs.items():
        if pid in tree:
            group = "server"
        elif pid == os.getpid():  # + the wrk processes it ran and reaped (cutime, cstime)
            group = "bench (writers, wrk)"
            fields = (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()
            cpu += (int(fields[13]) + int(fields[14])) / tick
        else:
            group = next((g for g in ("postgres", "redis", "wrk") if comm.startswith(g)), "other")
        groups[group] = groups.get(group, 0.0) + cpu
    return groups


def _start_pyspy(server_pid: int | None, duration: float) -> subprocess.Popen[bytes] | None:
    """BENCH_PYSPY=<file>: py-spy samples the server over the window (raw stacks; fold with bench.profile)."""
    out = os.environ.get("BENCH_PYSPY", "").strip()
    if not out or server_pid is None:
        return None
    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen([str(spy) if spy.exists() else "py-spy", "record", "--pid", str(server_pid),
                             "--subprocesses", "--gil", "--nonblocking", "--rate", "200", "--format", "raw",
                             "--output", out, "--duration", str(max(1, int(duration) - 1))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def page_cache_lookups(url: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics", timeout=10).text
    return {result: float(value) for result, value in _LOOKUP.findall(text)}


class Writers:
    """Inbound messages and lead updates at fixed rates, on their own thread and event loop. Each request is
    its own task (a slow answer does not lower the rate); latencies are kept per request start time."""

    def __init__(self, url: str, token: str, device_id: str, senders: list[str], lead_ids: list[str]) -> None:
        self.url, self.token, self.device_id = url, token, device_id
        self.senders, self.lead_ids = senders, lead_ids
        self.samples: dict[str, list[tuple[float, float, int]]] = {"inbound": [], "lead_update": []}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    async def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        async with httpx.AsyncClient(base_url=self.url, headers=headers, limits=limits, timeout=30) as client:
            run = uuid.uuid4().hex[:8]

            def inbound(n: int) -> tuple[str, str, dict[str, Any]]:
                spec = {"from": self.senders[n % len(self.senders)], "push_name": "",
                        "body": f"busy {n}", "message_id": f"BUSY{run}{n:07d}"}
                return "POST", f"/api/dev/whatsapp/{self.device_id}/inbound", spec

            def update(n: int) -> tuple[str, str, dict[str, Any]]:
                return "PUT", f"/api/leads/{self.lead_ids[n % len(self.lead_ids)]}", {"notes": "busy_account bench"}

            await asyncio.gather(self._paced(client, "inbound", INBOUND_RATE, inbound),
                                 self._paced(client, "lead_update", UPDATE_RATE, update))

    async def _paced(self, client: httpx.AsyncClient, kind: str, rate: float, make: Any) -> None:
        if rate <= 0:
            return
        tasks: set[asyncio.Task[None]] = set()
        started = time.monotonic()
        n = 0
        while not self._stop.is_set():
            method, path, body = make(n)
            task = asyncio.create_task(self._one(client, kind, method, path, body))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, client: httpx.AsyncClient, kind: str, method: str, path: str, body: Any) -> None:
        t0 = time.monotonic()
        try:
            status = (await client.request(method, path, json=body)).status_code
        except httpx.HTTPError:
            status = 0
        self.samples[kind].append((t0, time.monotonic() - t0, status))

    def rows(self, window: tuple[float, float], concurrency: int) -> list[dict[str, Any]]:
        out = []
        for kind, path, method in (("inbound", "/api/dev/whatsapp/:device/inbound (simulated device)", "POST"),
                                   ("lead_update", "/api/leads/:id", "PUT")):
            inside = [s for s in self.samples[kind] if window[0] <= s[0] < window[1]]
            errors = sum(1 for s in inside if not 200 <= s[2] < 300)
            out.append({"name": f"busy_{kind}", "method": method, "path": path, "kind": "write",
                        "concurrency": concurrency, "status": "ok", "requests": len(inside),
                        "rps": len(inside) / max(1e-9, window[1] - window[0]),
                        **_percentiles([s[1] for s in inside]), "errors": errors})
        return out


def main() -> int:
    cfg = Config()
    output = Path(os.environ.get("BENCH_OUTPUT", "").strip() or OUTPUT)
    dsn = bench_dsn()
    admin_sql = load_sql("admin")
    work = Path(tempfile.mkdtemp(prefix="clarin-bench-busy-"))
    commit = os.environ.get("BENCH_COMMIT", "").strip()  # serve that commit (git archive), not the working tree
    root = export_commit(commit, work)[0] if commit and not cfg.server_url else ROOT
    if os.environ.get("BENCH_TREE", "").strip():
        root, commit = Path(os.environ["BENCH_TREE"].strip()), f"tree {os.environ['BENCH_TREE'].strip()}"
    if not cfg.server_url and not (commit and database_exists(dsn)):
        ensure_database(dsn, seed_value=cfg.seed)
    wrk = ensure_wrk() if cfg.client == "wrk" else None
    if cfg.client == "wrk" and wrk is None:
        cfg.client = "python"
    machine = machine_info(cfg, dsn)
    server = None if cfg.server_url else Server(cfg, dsn, work, root)
    url = cfg.server_url or server.url  # type: ignore[union-attr]
    if server is not None:
        server.wait_ready()
    rows: list[dict[str, Any]] = []
    device_id: str | None = None
    hit: dict[str, Any] = {}
    writers: Writers | None = None
    try:
        login = httpx.post(url + "/api/auth/login", json={"username": LARGE_USER, "password": BENCH_PASSWORD},
                           timeout=30)
        if login.status_code != 200:
            raise SystemExit(f"bench: login as {LARGE_USER} failed: {login.status_code} {login.text[:300]}")
        token = login.json()["token"]
        account_id = uuid.UUID(asyncio.run(fetch(dsn, admin_sql["bench_large_account"], [cfg.seed]))[0]["account_id"])
        lead_ids = [r["id"] for r in asyncio.run(fetch(dsn, admin_sql["bench_sample_leads"], [account_id, 97, 1000]))]
        chats = asyncio.run(fetch(dsn, admin_sql["bench_busiest_chats"], [account_id, SENDERS]))
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        device_id, note = setup_device(client)
        if note or device_id is None:
            raise SystemExit(f"bench: busy_account needs the simulated device: {note}")
        reads = read_endpoints({"lead_ids": lead_ids, "chats": chats})
        conns = shares(cfg.concurrency, len(reads))
        print(f"bench: busy_account on {url}: {INBOUND_RATE:g} inbound msg/s + {UPDATE_RATE:g} lead updates/s, "
              f"{cfg.concurrency} readers over {len(reads)} reads, d={cfg.duration}s; "
              f"loadavg {machine['loadavg_before']}", flush=True)
        writers = Writers(url, token, device_id, [c["jid"].split("@")[0] for c in chats], lead_ids[:200])
        writers.start()

        def drive(seconds: float) -> list[dict[str, Any]]:
            with ThreadPoolExecutor(len(reads)) as pool:
                if wrk:
                    jobs = [pool.submit(run_wrk, wrk, url, token, ep, c, 1, seconds, work, cfg.seed)
                            for ep, c in zip(reads, conns, strict=True)]
                else:
                    jobs = [pool.submit(_run_fast, run_python_client(url, token, ep, c, seconds, cfg.seed))
                            for ep, c in zip(reads, conns, strict=True)]
                return [job.result() for job in jobs]

        if cfg.warmup > 0:
            drive(cfg.warmup)
        time.sleep(METRICS_LAG_S)
        before = page_cache_lookups(url)
        loadavg_before = [round(x, 2) for x in os.getloadavg()]
        server_pid = server.proc.pid if server is not None else None
        cpu_before = cpu_by_group(server_pid)
        spy = _start_pyspy(server_pid, cfg.duration)
        window_start = time.monotonic()
        results = drive(cfg.duration)
        window = (window_start, time.monotonic())
        if spy is not None:
            spy.wait(60)
        cpu_after = cpu_by_group(server_pid)
        cores = {k: round((cpu_after.get(k, 0.0) - cpu_before.get(k, 0.0)) / (window[1] - window[0]), 2)
                 for k in cpu_after}
        loadavg_after = [round(x, 2) for x in os.getloadavg()]
        time.sleep(METRICS_LAG_S)
        after = page_cache_lookups(url)
        writers.stop()
        delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
        served = delta.get("local", 0.0) + delta.get("shared", 0.0)
        total = served + delta.get("built", 0.0) + delta.get("bypass", 0.0)
        hit = {"lookups": delta, "hit_rate": served / total if total else None}
        for ep, c, result in zip(reads, conns, results, strict=True):
            rows.append({"name": ep.name, "method": ep.method, "path": ep.path, "kind": "read", "concurrency": c,
                         "status": "ok", **result, "loadavg_before": loadavg_before,
                         "loadavg_after": loadavg_after})
        rows.extend(writers.rows(window, 1))
        client.close()
    finally:
        if writers is not None:
            writers.stop()
        _cleanup(dsn, admin_sql, url, locals().get("token"), locals().get("account_id"), device_id)
        if server is not None:
            server.stop()
    if commit:
        machine["git_commit"], machine["git_dirty"] = commit, False
    result = {"profile": PROFILE, "machine": machine,
              "config": {"workers": cfg.workers, "threads": cfg.threads, "duration_s": cfg.duration,
                         "warmup_s": cfg.warmup, "concurrency": cfg.concurrency, "server_env": cfg.server_env,
                         "inbound_per_s": INBOUND_RATE, "lead_updates_per_s": UPDATE_RATE, "seed": cfg.seed},
              "page_cache": hit, "cpu_cores": locals().get("cores"), "endpoints": rows}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print()
    print_table(rows)
    rate = hit.get("hit_rate")
    print(f"\npage cache over the window: hit rate {rate:.1%} {hit.get('lookups')}" if rate is not None
          else "\npage cache: no lookups counted")
    print(f"CPU over the window, cores by process group: {locals().get('cores')}")
    print(f"bench: wrote {output}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    exit_now(main())
