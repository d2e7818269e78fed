"""Load test of the hot endpoints on the seeded data set (``python -m bench.load``).

Starts ``clarin serve`` (``BENCH_WORKERS`` granian workers, simulated WhatsApp driver, no rate limit, no
access log) against the bench database (``BENCH_DATABASE_URL``, default ``clarin_bench``, created,
migrated and seeded when missing), logs in as the large account's user and drives every endpoint with
``wrk`` (installed with apt-get when missing and we are root; otherwise a Python asyncio + httpx client
takes over) at a fixed concurrency for a fixed time, then measures WebSocket broadcast latency to 1k
sockets. Endpoints the server does not have yet (404 "Cannot …" / 405) are reported as ``missing``.

Writes ``bench/results/latest.json``::

    {"machine": {...}, "config": {...},
     "endpoints": [{"name", "method", "path", "kind": "read"|"write"|"ws", "concurrency", "rps",
                    "p50_ms", "p95_ms", "p99_ms", "errors", "status", ...}]}

Environment: BENCH_WORKERS (2), BENCH_THREADS (1), BENCH_DURATION (10 s), BENCH_WARMUP (2 s),
BENCH_CONCURRENCY (64), BENCH_WRK_THREADS (2), BENCH_WS_SOCKETS (1000), BENCH_WS_ROUNDS (50), BENCH_WS_PROCS (4),
BENCH_DB_POOL_SIZE (server default when unset), BENCH_ONLY (comma-separated endpoint names),
BENCH_SERVER_URL (use a running server instead of starting one), BENCH_CLIENT (wrk | python),
BENCH_SERVER_ENV (extra server env, "K=V,K2=V2"), BENCH_OUTPUT (result file), BENCH_ACCEPT_ENCODING
(default "gzip", as every browser sends; "" for identity bodies), BENCH_COMMIT (serve that commit, git archive, instead
of the working tree). ``BENCH_SERVER_ENV=PAGE_CACHE_TTL=0``
measures the reads without the page cache (every request goes to PostgreSQL).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httpx

from bench.common import (
    BENCH_DIR,
    BENCH_PASSWORD,
    DEFAULT_SEED,
    LARGE_USER,
    RESULTS_DIR,
    ROOT,
    SUPER_ADMIN,
    bench_dsn,
    database_exists,
    ensure_database,
    exit_now,
    fetch,
    load_sql,
    run_script,
)
from bench.ws_fanout import ws_broadcast

LUA_SCRIPT = BENCH_DIR / "lua" / "clarin.lua"
ACCEPT_ENCODING = os.environ.get("BENCH_ACCEPT_ENCODING", "gzip").strip()
SEARCH_TERMS_LEADS = ["maría", "garcia", "andina", "5190", "lucía quispe", "example.com", "renzo", "mendoza"]
SEARCH_TERMS_CONTACTS = ["carmen", "rojas", "519", "grupo pacífico", "sofía", "@example", "hugo", "torres"]


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


@dataclass
class Config:
    workers: int = field(default_factory=lambda: _env_int("BENCH_WORKERS", 2))
    threads: int = field(default_factory=lambda: _env_int("BENCH_THREADS", 1))
    duration: float = field(default_factory=lambda: _env_float("BENCH_DURATION", 10))
    warmup: float = field(default_factory=lambda: _env_float("BENCH_WARMUP", 2))
    concurrency: int = field(default_factory=lambda: _env_int("BENCH_CONCURRENCY", 64))
    wrk_threads: int = field(default_factory=lambda: _env_int("BENCH_WRK_THREADS", 2))
    ws_sockets: int = field(default_factory=lambda: _env_int("BENCH_WS_SOCKETS", 1000))
    ws_rounds: int = field(default_factory=lambda: _env_int("BENCH_WS_ROUNDS", 50))
    ws_procs: int = field(default_factory=lambda: _env_int("BENCH_WS_PROCS", 4))
    pool_size: str = field(default_factory=lambda: os.environ.get("BENCH_DB_POOL_SIZE", "").strip())
    only: set[str] = field(default_factory=lambda: {
        s.strip() for s in os.environ.get("BENCH_ONLY", "").split(",") if s.strip()})
    server_url: str = field(default_factory=lambda: os.environ.get("BENCH_SERVER_URL", "").strip().rstrip("/"))
    client: str = field(default_factory=lambda: os.environ.get("BENCH_CLIENT", "").strip() or "wrk")
    server_env: str = field(default_factory=lambda: os.environ.get("BENCH_SERVER_ENV", "").strip())
    output: Path = field(default_factory=lambda: Path(
        os.environ.get("BENCH_OUTPUT", "").strip() or RESULTS_DIR / "latest.json"))
    seed: int = field(default_factory=lambda: _env_int("BENCH_SEED", DEFAULT_SEED))


@dataclass
class Endpoint:
    name: str
    method: str
    path: str  # the display path (templated)
    kind: str  # read | write | ws
    paths: list[str]  # concrete request paths (one picked per request)
    bodies: list[str] = field(default_factory=list)  # JSON bodies, "{n}" = unique number
    cleanup: bool = False
    headers: dict[str, str] = field(default_factory=dict)  # extra request headers


# -- server -----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, cfg: Config, dsn: str, log_dir: Path, root: Path = ROOT) -> None:
        """``root``: the source tree to serve (bench/profile.py --commit serves an exported commit)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
        env.update({
            "DATABASE_URL": dsn,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WORKERS": str(cfg.workers),
            "THREADS": str(cfg.threads),
            "WHATSAPP_DRIVER": "simulated",
            "RATE_LIMIT": "0",
            "ACCESS_LOG": "0",
            "LOG_LEVEL": "WARNING",
            "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
            "REDIS_PREFIX": f"clarin-bench-{uuid.uuid4().hex[:8]}",
            "JWT_SECRET": "bench-" + uuid.uuid4().hex,
            "ADMIN_USER": SUPER_ADMIN,
            "ADMIN_PASSWORD": BENCH_PASSWORD,
            "ADMIN_EMAIL": f"{SUPER_ADMIN}@bench.local",
            "CLARIN_DATA_DIR": str(log_dir / "data"),
            # The WS profiles put BENCH_WS_SOCKETS (1000) dashboards on one account: no per-account cap.
            "WS_MAX_PER_ACCOUNT": "0",
        })
        if cfg.pool_size:
            env["DB_POOL_SIZE"] = cfg.pool_size
        for pair in filter(None, (p.strip() for p in cfg.server_env.split(","))):
            key, _, value = pair.partition("=")
            env[key.strip()] = value.strip()
        self.env = env
        self._log = open(self.log_path, "w")  # closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "clarin", "serve"], cwd=root, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited early:\n{self.log_path.read_text()[-4000:]}")
            try:
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise SystemExit(f"server not ready in {timeout}s:\n{self.log_path.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


# -- load generators --------------------------------------------------------------------------------------
def ensure_wrk() -> str | None:
    found = shutil.which("wrk")
    if found:
        return found
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        print("bench: installing wrk (apt-get install -y wrk)", flush=True)
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        if subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, **quiet).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], check=False, **quiet)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, **quiet)
        return shutil.which("wrk")
    return None


def run_wrk(wrk: str, url: str, token: str, ep: Endpoint, concurrency: int, threads: int, duration: float,
            work: Path, seed: int) -> dict[str, Any]:
    paths_file = work / f"{ep.name}.paths"
    paths_file.write_text("\n".join(ep.paths) + "\n")
    env = {**os.environ, "BENCH_TOKEN": token, "BENCH_METHOD": ep.method, "BENCH_PATHS": str(paths_file),
           "BENCH_BODIES": "", "BENCH_SEED": str(seed), "BENCH_ACCEPT_ENCODING": ACCEPT_ENCODING,
           "BENCH_HEADERS": "\n".join(f"{k}: {v}" for k, v in ep.headers.items())}
    if ep.bodies:
        bodies_file = work / f"{ep.name}.bodies"
        bodies_file.write_text("\n".join(ep.bodies) + "\n")
        env["BENCH_BODIES"] = str(bodies_file)
    cmd = [wrk, "-t", str(min(threads, concurrency)), "-c", str(concurrency), "-d", f"{max(1, round(duration))}s",
           "--timeout", "10s", "-s", str(LUA_SCRIPT), url]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 60)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            raw = json.loads(line[len("BENCH_JSON "):])
            errors = sum(raw["errors"].values())
            return {
                "requests": raw["requests"],
                "rps": raw["requests"] / (raw["duration_us"] / 1e6) if raw["duration_us"] else 0.0,
                "p50_ms": raw["p50_us"] / 1000, "p90_ms": raw["p90_us"] / 1000,
                "p95_ms": raw["p95_us"] / 1000, "p99_ms": raw["p99_us"] / 1000, "max_ms": raw["max_us"] / 1000,
                "mean_ms": raw["mean_us"] / 1000, "errors": errors, "error_detail": raw["errors"],
                "statuses": raw["statuses"], "error_sample": raw.get("error_sample") or None,
                "bytes_per_request": raw["bytes"] / raw["requests"] if raw["requests"] else 0,
            }
    raise RuntimeError(f"wrk gave no result for {ep.name}:\n{done.stdout}\n{done.stderr}")


async def run_python_client(url: str, token: str, ep: Endpoint, concurrency: int, duration: float,
                            seed: int) -> dict[str, Any]:
    """Fallback load client (no wrk): ``concurrency`` asyncio workers on one httpx pool."""
    rnd = random.Random(seed)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors = 0
    counter = 0
    sample: str | None = None
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if ACCEPT_ENCODING:
        headers["Accept-Encoding"] = ACCEPT_ENCODING
    headers.update(ep.headers)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=10) as client:
        deadline = time.perf_counter() + duration

        async def worker(wid: int) -> None:
            nonlocal errors, counter, sample
            while time.perf_counter() < deadline:
                counter += 1
                body = None
                if ep.bodies:
                    body = rnd.choice(ep.bodies).replace("{n}", f"{wid % 10}{counter:07d}").encode()
                started = time.perf_counter()
                try:
                    resp = await client.request(ep.method, rnd.choice(ep.paths), content=body)
                    await resp.aread()
                except httpx.HTTPError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)
                key = str(resp.status_code)
                statuses[key] = statuses.get(key, 0) + 1
                if resp.status_code >= 400:
                    errors += 1
                    sample = sample or f"{key} {resp.text[:200]}"

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"requests": len(latencies), "rps": len(latencies) / elapsed, **_percentiles(latencies),
            "errors": errors, "statuses": statuses, "error_sample": sample}


def _percentiles(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {"p50_ms": 0.0, "p90_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "mean_ms": 0.0}
    ordered = sorted(seconds)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000

    return {"p50_ms": pct(50), "p90_ms": pct(90), "p95_ms": pct(95), "p99_ms": pct(99),
            "max_ms": ordered[-1] * 1000, "mean_ms": statistics.fmean(ordered) * 1000}


# -- WebSocket fan-out ------------------------------------------------------------------------------------
# -- scenario ---------------------------------------------------------------------------------------------
def probe(client: httpx.Client, ep: Endpoint) -> tuple[str, str | None]:
    """``ok`` | ``missing`` (the route does not exist: 405, or 404 "Cannot …") | ``error`` with the reason."""
    body = ep.bodies[0].replace("{n}", "90000000") if ep.bodies else None
    resp = client.request(ep.method, ep.paths[0], content=body.encode() if body else None)
    if resp.status_code == 405 or (resp.status_code == 404 and "Cannot " in resp.text):
        return "missing", f"{resp.status_code} {resp.text[:120]}"
    if resp.status_code >= 400:
        return "error", f"{resp.status_code} {resp.text[:200]}"
    return "ok", None


def build_endpoints(ctx: dict[str, Any]) -> list[Endpoint]:
    rnd = random.Random(ctx["seed"])
    leads = ctx["lead_ids"]
    stages = ctx["stages"]
    chats = ctx["chats"]
    run = ctx["run"]
    q = "limit=50"
    eps = [
        Endpoint("leads_page", "GET", "/api/leads?limit=50", "read", [f"/api/leads?{q}"]),
        Endpoint("leads_page_stage", "GET", "/api/leads?limit=50&stage_id=:stage", "read",
                 [f"/api/leads?{q}&stage_id={s['id']}" for s in stages]),
        Endpoint("leads_page_search", "GET", "/api/leads?limit=50&search=:term", "read",
                 [f"/api/leads?{q}&search={httpx.URL('', params={'s': t}).query.decode()[2:]}"
                  for t in SEARCH_TERMS_LEADS]),
        Endpoint("leads_compat", "GET", "/api/leads", "read", ["/api/leads"]),
        # A dashboard re-polling the board: the browser revalidates its copy (ETag) and gets 304 while nothing
        # changed. Reported beside the full-body row above, never instead of it.
        Endpoint("leads_compat_304", "GET", "/api/leads (If-None-Match)", "read", ["/api/leads"],
                 headers={"If-None-Match": ctx["board_etag"]}),
        Endpoint("lead_get", "GET", "/api/leads/:id", "read", [f"/api/leads/{i}" for i in leads]),
        Endpoint("chats_page", "GET", "/api/chats?limit=50", "read", [f"/api/chats?{q}"]),
        Endpoint("chat_messages", "GET", "/api/chats/:id/messages?limit=50", "read",
                 [f"/api/chats/{c['id']}/messages?{q}" for c in chats]),
        Endpoint("contacts_page", "GET", "/api/contacts?limit=50", "read", [f"/api/contacts?{q}"]),
        Endpoint("contacts_search", "GET", "/api/contacts?limit=50&search=:term", "read",
                 [f"/api/contacts?{q}&search={httpx.URL('', params={'s': t}).query.decode()[2:]}"
                  for t in SEARCH_TERMS_CONTACTS]),
        Endpoint("stats", "GET", "/api/stats", "read", ["/api/stats"]),
        Endpoint("lead_create", "POST", "/api/leads", "write", ["/api/leads"],
                 [json.dumps({"phone": f"+51 7{run}{{n}}", "name": "Bench Load {n}", "email": "",
                              "source": "bench-load", "notes": ""})], cleanup=True),
        Endpoint("lead_stage", "PATCH", "/api/leads/:id/stage", "write",
                 [f"/api/leads/{i}/stage" for i in rnd.sample(leads, min(len(leads), 500))],
                 [json.dumps({"stage_id": s["id"]}) for s in stages]),
    ]
    if ctx.get("device_id"):
        eps.append(Endpoint("message_send", "POST", "/api/messages/send", "write", ["/api/messages/send"],
                            [json.dumps({"device_id": ctx["device_id"], "to": c["jid"], "body": "bench {n}"})
                             for c in chats]))
    else:
        eps.append(Endpoint("message_send", "POST", "/api/messages/send", "write", ["/api/messages/send"],
                            [json.dumps({"device_id": str(uuid.UUID(int=0)), "to": "x", "body": "x"})]))
    return eps


def setup_device(client: httpx.Client) -> tuple[str | None, str | None]:
    """Create and connect a device through the API (simulated driver); None when that does not work."""
    resp = client.post("/api/devices", json={"name": f"bench-load {uuid.uuid4().hex[:6]}"})
    if resp.status_code != 201:
        return None, f"create device: {resp.status_code} {resp.text[:200]}"
    device_id = resp.json()["device"]["id"]
    resp = client.post(f"/api/devices/{device_id}/connect")
    if resp.status_code >= 400:
        return device_id, f"connect device: {resp.status_code} {resp.text[:200]}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status = client.get(f"/api/devices/{device_id}").json().get("device", {}).get("status")
        if status == "connected":
            return device_id, None
        time.sleep(0.2)
    return device_id, "device did not reach status 'connected' in 15 s"


def settle(client: httpx.Client, limit_s: float = 60.0) -> float:
    """Wait until the server answers a cheap request quickly again (the previous endpoint's queued requests
    are still being processed after wrk stops): the next measurement must not pay for the last one."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        t0 = time.perf_counter()
        try:
            client.get("/ready", timeout=limit_s)
        except httpx.HTTPError:
            pass
        if time.perf_counter() - t0 < 0.05:
            break
        time.sleep(0.5)
    return time.monotonic() - started


def machine_info(cfg: Config, dsn: str) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    pg = asyncio.run(fetch(dsn, load_sql("admin")["bench_server_version"]))[0]["version"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
    wrk_version = None
    if shutil.which("wrk"):
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
        wrk_version = (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else None
    return {
        "hostname": platform.node(), "cpu": cpu, "cores": os.cpu_count(), "memory_gb": mem_gb,
        "os": platform.platform(), "python": platform.python_version(), "postgres": pg,
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "git_commit": commit.stdout.strip() or None, "git_dirty": bool(dirty.stdout.strip()),
        "load_client": cfg.client, "wrk": wrk_version,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def fmt_row(row: dict[str, Any]) -> str:
    if row.get("status") == "missing":
        return f"{row['name']:<20} {row['method']:<6} {row['kind']:<5} {'missing (' + str(row.get('detail', ''))[:40] + ')'}"
    return (f"{row['name']:<20} {row['method']:<6} {row['kind']:<5} {row['concurrency']:>5} {row['rps']:>9.1f} "
            f"{row['p50_ms']:>8.2f} {row['p95_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['errors']:>7}")


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'endpoint':<20} {'method':<6} {'kind':<5} {'conc':>5} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'p99 ms':>8} {'errors':>7}")
    print("-" * 86)
    for row in rows:
        print(fmt_row(row))


def main() -> int:
    cfg = Config()
    dsn = bench_dsn()
    admin_sql = load_sql("admin")
    work = Path(tempfile.mkdtemp(prefix="clarin-bench-"))
    commit = os.environ.get("BENCH_COMMIT", "").strip()  # serve that commit (git archive), not the working tree
    root = ROOT
    if commit and not cfg.server_url:
        from bench.profile import export_commit  # bench.profile imports this module

        root = export_commit(commit, work)[0]
    if not cfg.server_url and not (commit and database_exists(dsn)):  # a commit's server migrates at start
        ensure_database(dsn, seed_value=cfg.seed)
    wrk = ensure_wrk() if cfg.client == "wrk" else None
    if cfg.client == "wrk" and wrk is None:
        print("bench: wrk not available, using the Python load client (slower: latencies include its overhead)")
        cfg.client = "python"
    machine = machine_info(cfg, dsn)
    if commit:
        machine["git_commit"], machine["git_dirty"] = commit, False
    server = None
    if cfg.server_url:
        url = cfg.server_url
    else:
        server = Server(cfg, dsn, work, root)
        server.wait_ready()
        url = server.url
    rows: list[dict[str, Any]] = []
    device_id = None
    try:
        login = httpx.post(url + "/api/auth/login", json={"username": LARGE_USER, "password": BENCH_PASSWORD},
                           timeout=30)
        if login.status_code != 200:
            raise SystemExit(f"bench: login as {LARGE_USER} failed: {login.status_code} {login.text[:300]}")
        token = login.json()["token"]
        account = asyncio.run(fetch(dsn, admin_sql["bench_large_account"], [cfg.seed]))[0]
        account_id = uuid.UUID(account["account_id"])  # psqlpy binds uuid parameters from uuid.UUID only
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        lead_ids = [r["id"] for r in asyncio.run(fetch(dsn, admin_sql["bench_sample_leads"], [account_id, 97, 1000]))]
        stages = asyncio.run(fetch(dsn, admin_sql["bench_stages_of_account"], [account_id]))
        chats = asyncio.run(fetch(dsn, admin_sql["bench_busiest_chats"], [account_id, 200]))
        device_note = None
        want_send = not cfg.only or "message_send" in cfg.only
        if want_send:
            device_id, device_note = setup_device(client)
        board_etag = client.get("/api/leads").headers.get("etag", '"none"')
        ctx = {"seed": cfg.seed, "lead_ids": lead_ids, "stages": stages, "chats": chats, "board_etag": board_etag,
               "run": f"{random.Random().randrange(10000):04d}", "device_id": device_id if not device_note else None}
        print(f"bench: server {url} workers={cfg.workers} threads={cfg.threads} pool={cfg.pool_size or 'default'} "
              f"client={cfg.client} c={cfg.concurrency} d={cfg.duration}s; loadavg {machine['loadavg_before']}",
              flush=True)
        for ep in build_endpoints(ctx):
            if cfg.only and ep.name not in cfg.only:
                continue
            base = {"name": ep.name, "method": ep.method, "path": ep.path, "kind": ep.kind,
                    "concurrency": cfg.concurrency}
            status, detail = probe(client, ep)
            if ep.name == "message_send" and device_note and status != "missing":
                status, detail = "error", device_note
            if status == "missing":
                row = {**base, "status": "missing", "rps": None, "p50_ms": None, "p95_ms": None, "p99_ms": None,
                       "errors": None, "detail": detail}
                rows.append(row)
                print(fmt_row(row), flush=True)
                continue
            settle(client)
            if cfg.warmup > 0:
                _drive(cfg, wrk, url, token, ep, cfg.warmup, work)
                settle(client)
            if ep.kind == "write":
                # Start each write measurement right after a checkpoint: otherwise one lands in the middle of
                # some runs and not others (its fsyncs cost writes 15-20 % of req/s: the gate flapped on it).
                asyncio.run(run_script(dsn, "CHECKPOINT"))
            loadavg_before = [round(x, 2) for x in os.getloadavg()]
            result = _drive(cfg, wrk, url, token, ep, cfg.duration, work)
            row = {**base, "status": "ok" if status == "ok" else "error", **result}
            row["settle_after_s"] = round(settle(client), 2)
            row["loadavg_before"] = loadavg_before
            if detail:
                row["detail"] = detail
            row["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
            rows.append(row)
            print(fmt_row(row), flush=True)
        if not cfg.only or "ws_broadcast" in cfg.only:
            settle(client)
            ws_url = url.replace("http://", "ws://") + "/ws"
            result = _run_fast(ws_broadcast(ws_url, token, cfg.ws_sockets, cfg.ws_rounds, cfg.ws_procs))
            row = {"name": "ws_broadcast", "method": "WS", "path": "/ws (typing relay to all sockets)",
                   "kind": "ws", "concurrency": cfg.ws_sockets, "status": "ok", **result}
            rows.append(row)
            print(fmt_row(row), flush=True)
        client.close()
    finally:
        _cleanup(dsn, admin_sql, url, locals().get("token"), locals().get("account_id"), device_id)
        if server is not None:
            server.stop()
            if server.proc.returncode not in (0, -15, None):
                print(f"bench: server exited with {server.proc.returncode}; log {server.log_path}")
    result = {"machine": machine,
              "config": {"workers": cfg.workers, "threads": cfg.threads, "duration_s": cfg.duration,
                         "warmup_s": cfg.warmup, "concurrency": cfg.concurrency, "wrk_threads": cfg.wrk_threads,
                         "db_pool_size": cfg.pool_size or "default", "ws_sockets": cfg.ws_sockets,
                         "ws_rounds": cfg.ws_rounds, "server_env": cfg.server_env, "seed": cfg.seed,
                         "accept_encoding": ACCEPT_ENCODING},
              "endpoints": rows}
    cfg.output.parent.mkdir(parents=True, exist_ok=True)
    cfg.output.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print()
    print_table(rows)
    print(f"\nbench: wrote {cfg.output}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _run_fast(coro: Any) -> Any:
    """Run on uvloop when available: the WS client handles 1k sockets in one process, and its own
    per-frame overhead is part of the measured latency."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _drive(cfg: Config, wrk: str | None, url: str, token: str, ep: Endpoint, duration: float,
           work: Path) -> dict[str, Any]:
    if wrk:
        return run_wrk(wrk, url, token, ep, cfg.concurrency, cfg.wrk_threads, duration, work, cfg.seed)
    return _run_fast(run_python_client(url, token, ep, cfg.concurrency, duration, cfg.seed))


def _cleanup(dsn: str, admin_sql: dict[str, str], url: str, token: str | None, account_id: uuid.UUID | None,
             device_id: str | None) -> None:
    """Remove what the run created: its leads, the messages sent through its device, the device."""
    if account_id is None:
        return
    try:
        removed = asyncio.run(fetch(dsn, admin_sql["bench_cleanup_leads"], [account_id]))[0]["n"]
        if device_id:
            removed_msgs = asyncio.run(fetch(dsn, admin_sql["bench_cleanup_device_messages"],
                                             [account_id, uuid.UUID(device_id)]))[0]["n"]
        else:
            removed_msgs = 0
        if device_id and token:
            httpx.delete(f"{url}/api/devices/{device_id}", headers={"Authorization": f"Bearer {token}"},
                         timeout=30)
        asyncio.run(fetch(dsn, admin_sql["bench_cleanup_devices"], [account_id]))
        asyncio.run(run_script(dsn, admin_sql["bench_vacuum_after_cleanup"]))
        print(f"bench: cleanup removed {removed} leads and {removed_msgs} messages created by the run (vacuumed)")
    except Exception as exc:  # cleanup must not hide the results
        print(f"bench: cleanup failed: {exc}")


if __name__ == "__main__":
    exit_now(main())
