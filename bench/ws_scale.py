"""10k live WebSocket dashboards on one node (issue 18 goal 2): ``python -m bench.ws_scale``.

Starts its own ``clarin serve`` (fresh database, ``WORKERS`` from ``--workers``, no per-account socket cap),
creates one account, and then:

1. connects ``--sockets`` sockets (raw clients in ``--procs`` processes, bench/ws_client.py) and reads the
   worker processes' RSS before and after (``/proc/<pid>/status`` VmRSS, ``smaps_rollup`` Anonymous);
2. measures ordinary HTTP (``GET /api/leads?limit=20``, 2 keep-alive connections in a prober process) for
   ``--idle`` seconds with the sockets idle, then during ``--rounds`` broadcasts: one extra socket sends a
   ``typing`` event carrying its CLOCK_REALTIME stamp, the server relays it to every socket of the account
   (Redis pub/sub to every worker), and the clients take the kernel receive timestamp (SO_TIMESTAMPNS) of
   each delivery. One broadcast is in flight at a time (the next goes ``--gap`` after the last socket got
   it): fan-out latency, not throughput;
3. closes every socket and connects/closes ``--cycles`` - 1 more times, reading the workers' RSS after
   each close: is memory returned?

Prints one JSON document (and a summary). The clients share the machine's cores with the server: their
CPU is part of what the server competes with, their own reading delay is not part of the latencies.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.ws_client import OP_TEXT, client_main, mask_frame, open_sockets

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_DSN = os.environ.get("BENCH_PG_ADMIN", "postgres://postgres@127.0.0.1:5432/postgres")
ADMIN_PASSWORD = "bench-pass-123"
SETTLE_S = 3.0
ROUND_TIMEOUT_S = 15.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sql(dsn: str, statement: str) -> None:
    import asyncio

    import psqlpy

    async def run() -> None:
        pool = psqlpy.ConnectionPool(dsn=dsn, max_db_pool_size=2)
        try:
            conn = await pool.connection()
            try:
                await conn.execute(statement)
            finally:
                conn.close()
        finally:
            pool.close()

    asyncio.run(run())


class Server:
    def __init__(self, workers: int, extra_env: dict[str, str], log_dir: Path) -> None:
        self.db = f"clarin_wsscale_{uuid.uuid4().hex[:10]}"
        _sql(PG_ADMIN_DSN, f"CREATE DATABASE {self.db}")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
        self.redis_prefix = f"clarin-wsscale-{uuid.uuid4().hex[:8]}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
        env.update({
            "DATABASE_URL": PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + self.db, "HOST": "127.0.0.1",
            "PORT": str(self.port), "WHATSAPP_DRIVER": "simulated", "RATE_LIMIT": "0", "LOGIN_MAX_FAILURES_IP": "0",
            "ACCESS_LOG": "0", "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"), "REDIS_URL": self.redis_url,
            "REDIS_PREFIX": self.redis_prefix, "JWT_SECRET": "bench-" + uuid.uuid4().hex,
            "ADMIN_PASSWORD": ADMIN_PASSWORD, "CLARIN_DATA_DIR": str(log_dir / "data"),
            # every bench socket is one account's: no per-account cap; the process cap from the open-files limit
            "WS_MAX_PER_ACCOUNT": "0",
        })
        if workers:
            env["WORKERS"] = str(workers)
        env.update(extra_env)
        self.log_path = log_dir / "server.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "clarin", "serve"], cwd=ROOT, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120) -> None:
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
        raise SystemExit("server not ready")

    def workers(self) -> list[int]:
        """The granian worker processes (children of the serving parent, not multiprocessing's helpers)."""
        pids: list[int] = []
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            pids += [int(p) for p in (task / "children").read_text().split()]
        return sorted(p for p in pids if b"clarin" in Path(f"/proc/{p}/cmdline").read_bytes())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        try:
            _sql(PG_ADMIN_DSN, f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
            import redis

            client = redis.Redis.from_url(self.redis_url)
            keys = list(client.scan_iter(match=f"{self.redis_prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()
        except Exception as exc:  # the results matter more than the cleanup
            print(f"ws_scale: cleanup of {self.db} / {self.redis_prefix}: {exc}", file=sys.stderr)


def _kib(pid: int, path: str, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory(server: Server) -> dict[str, Any]:
    pids = server.workers()
    rss = [_kib(p, "status", "VmRSS") for p in pids]
    anon = [_kib(p, "smaps_rollup", "Anonymous") for p in pids]
    return {"rss_kib": sum(rss), "anon_kib": sum(anon), "per_worker_rss_kib": rss}


def tenant_token(url: str) -> str:
    admin = httpx.post(url + "/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}, timeout=30)
    headers = {"Authorization": f"Bearer {admin.json()['token']}"}
    suffix = uuid.uuid4().hex[:8]
    account = httpx.post(url + "/api/admin/accounts", json={"name": f"WS scale {suffix}"}, headers=headers, timeout=30)
    account_id = account.json()["account"]["id"]
    user = {"account_id": account_id, "username": f"ws_{suffix}", "email": f"ws_{suffix}@bench.local",
            "password": f"pw-{suffix}-secret", "role": "admin"}
    assert httpx.post(url + "/api/admin/users", json=user, headers=headers, timeout=30).status_code == 201
    login = httpx.post(url + "/api/auth/login", json={"username": user["username"], "password": user["password"]},
                       timeout=30)
    return str(login.json()["token"])


# -- HTTP prober ----------------------------------------------------------------------------------------------
def _prober_main(port: int, token: str, stop: Any, out: Any, threads: int, pause: float) -> None:
    samples: list[tuple[float, float, int]] = []  # (start monotonic, latency s, status)
    lock = threading.Lock()

    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while not stop.is_set():
            started = time.monotonic()
            try:
                conn.request("GET", "/api/leads?limit=20", headers={"Authorization": f"Bearer {token}"})
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status = 0
            with lock:
                samples.append((started, time.monotonic() - started, status))
            time.sleep(pause)

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.send(samples)


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def http_window(samples: list[tuple[float, float, int]], start: float, end: float) -> dict[str, Any]:
    inside = [lat for t, lat, _ in samples if start <= t < end]
    bad = sum(1 for t, _, status in samples if start <= t < end and status != 200)
    return {"requests": len(inside), "non_200": bad, "p50_ms": _ms(_pct(inside, 0.5)),
            "p99_ms": _ms(_pct(inside, 0.99)), "max_ms": _ms(max(inside) if inside else None)}


# -- the run --------------------------------------------------------------------------------------------------
class Clients:
    def __init__(self, port: int, token: str, procs: int) -> None:
        ctx = mp.get_context("spawn")
        self.pipes: list[Any] = []
        self.procs: list[Any] = []
        for _ in range(procs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=client_main, args=("127.0.0.1", port, f"/ws?token={token}", child), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    def _expect(self, pipe: Any, kind: str, timeout: float = 600) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pipe.poll(1):
                message = pipe.recv()
                if message[0] == kind:
                    return message
        raise SystemExit(f"ws_scale: a client process did not answer {kind!r}")

    def connect(self, total: int) -> tuple[int, int]:
        for i, pipe in enumerate(self.pipes):
            pipe.send(("connect", total // len(self.pipes) + (1 if i < total % len(self.pipes) else 0)))
        answers = [self._expect(pipe, "connected") for pipe in self.pipes]
        return sum(a[1] for a in answers), sum(a[2] for a in answers)

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(("close",))
        for pipe in self.pipes:
            self._expect(pipe, "closed")

    def wait_round(self, seq: int) -> bool:
        pending = set(range(len(self.pipes)))
        deadline = time.monotonic() + ROUND_TIMEOUT_S
        while pending and time.monotonic() < deadline:
            for i in list(pending):
                while self.pipes[i].poll(0.002):
                    if self.pipes[i].recv() == ("round", seq):
                        pending.discard(i)
                        break
        return not pending

    def report(self) -> tuple[list[tuple[int, int]], dict[int, int], int]:
        samples: list[tuple[int, int]] = []
        codes: dict[int, int] = {}
        lost = 0
        for pipe in self.pipes:
            pipe.send(("report",))
        for pipe in self.pipes:
            _, got, closes, gone, _ = self._expect(pipe, "report")
            samples += got
            lost += gone
            for code, n in closes.items():
                codes[code] = codes.get(code, 0) + n
        return samples, codes, lost

    def stop(self) -> None:
        for pipe in self.pipes:
            pipe.send(("stop",))
        for proc in self.procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()


def broadcast_rounds(port: int, token: str, clients: Clients, rounds: int, gap: float) -> int:
    sender = open_sockets("127.0.0.1", port, f"/ws?token={token}", 1)[0][0]
    timeouts = 0
    for seq in range(rounds):
        body = json.dumps({"event": "typing", "data": {"bench_seq": seq, "t": time.time_ns()}}).encode()
        sender.setblocking(True)
        sender.sendall(mask_frame(OP_TEXT, body))
        sender.setblocking(False)
        if not clients.wait_round(seq):
            timeouts += 1
        try:
            while sender.recv(65536):  # its own copy of the relay
                pass
        except BlockingIOError:
            pass
        time.sleep(gap)
    sender.close()
    return timeouts


def latency_summary(samples: list[tuple[int, int]], expected: int) -> dict[str, Any]:
    lat = [ns / 1e9 for _, ns in samples]
    per_round: dict[int, int] = {}
    for seq, ns in samples:
        per_round[seq] = max(per_round.get(seq, 0), ns)
    return {"deliveries": len(lat), "missed": expected - len(lat), "p50_ms": _ms(_pct(lat, 0.5)),
            "p95_ms": _ms(_pct(lat, 0.95)), "p99_ms": _ms(_pct(lat, 0.99)), "max_ms": _ms(max(lat) if lat else None),
            "last_delivery_p50_ms": _ms(statistics.median(per_round.values()) / 1e9 if per_round else None)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    extra = dict(pair.split("=", 1) for pair in args.server_env.split(",") if pair.strip())
    log_dir = Path(tempfile.mkdtemp(prefix="clarin-wsscale-"))
    server = Server(args.workers, extra, log_dir)
    result: dict[str, Any] = {"config": {**vars(args), "cpus": len(os.sched_getaffinity(0))}}
    try:
        server.wait_ready()
        token = tenant_token(server.url)
        for _ in range(20):  # warm the auth cache and the page cache
            httpx.get(server.url + "/api/leads?limit=20", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        time.sleep(1.0)
        result["workers"] = len(server.workers())
        result["rss_base"] = memory(server)
        clients = Clients(server.port, token, args.procs)
        ctx = mp.get_context("spawn")
        stop_probe, (probe_out, probe_in) = ctx.Event(), ctx.Pipe()
        prober = ctx.Process(target=_prober_main, args=(server.port, token, stop_probe, probe_in, 2, 0.02), daemon=True)
        try:
            started = time.monotonic()
            connected, failed = clients.connect(args.sockets)
            result["connect"] = {"connected": connected, "failed": failed,
                                 "seconds": round(time.monotonic() - started, 2)}
            time.sleep(SETTLE_S)
            result["rss_connected"] = memory(server)
            base, full = result["rss_base"], result["rss_connected"]
            result["per_socket_kib"] = {
                "rss": round((full["rss_kib"] - base["rss_kib"]) / max(1, connected), 2),
                "anon": round((full["anon_kib"] - base["anon_kib"]) / max(1, connected), 2)}
            prober.start()
            time.sleep(1.0)
            idle_start = time.monotonic()
            time.sleep(args.idle)
            idle_end = busy_start = time.monotonic()
            timeouts = broadcast_rounds(server.port, token, clients, args.rounds, args.gap)
            busy_end = time.monotonic()
            stop_probe.set()
            probe = probe_out.recv()
            prober.join(10)
            samples, codes, lost = clients.report()
            result["broadcast"] = {**latency_summary(samples, connected * args.rounds), "round_timeouts": timeouts,
                                   "close_codes": codes, "lost_sockets": lost,
                                   "seconds": round(busy_end - busy_start, 2)}
            idle, busy = http_window(probe, idle_start, idle_end), http_window(probe, busy_start, busy_end)
            result["http_idle"], result["http_during_broadcasts"] = idle, busy
            if idle["p99_ms"] and busy["p99_ms"]:
                result["http_p99_ratio"] = round(busy["p99_ms"] / idle["p99_ms"], 2)
            cycles = [{"cycle": 1, "connected_rss_kib": full["rss_kib"]}]
            clients.close()
            time.sleep(SETTLE_S)
            cycles[0]["closed"] = memory(server)
            for cycle in range(2, args.cycles + 1):
                ok, _ = clients.connect(args.sockets)
                time.sleep(SETTLE_S)
                at_full = memory(server)["rss_kib"]
                clients.close()
                time.sleep(SETTLE_S)
                cycles.append({"cycle": cycle, "connected": ok, "connected_rss_kib": at_full, "closed": memory(server)})
            result["cycles"] = cycles
            first, last = cycles[0]["closed"]["rss_kib"], cycles[-1]["closed"]["rss_kib"]
            result["rss_after_close_last_vs_first"] = round(last / first, 3) if first else None
        finally:
            if prober.is_alive():
                stop_probe.set()
                prober.join(10)
            clients.stop()
        result["ws_metrics"] = [line for line in httpx.get(server.url + "/metrics", timeout=30).text.splitlines()
                                if line.startswith("clarin_ws_")]
    finally:
        server.stop()
    return result


def summary(r: dict[str, Any]) -> str:
    b, c = r["broadcast"], r["connect"]
    return "\n".join([
        f"workers={r['workers']} sockets={c['connected']} (failed {c['failed']}, {c['seconds']} s)",
        f"broadcast p50/p95/p99/max ms: {b['p50_ms']} / {b['p95_ms']} / {b['p99_ms']} / {b['max_ms']} "
        f"(missed {b['missed']}, round timeouts {b['round_timeouts']}, closes {b['close_codes']})",
        f"HTTP p99 ms idle {r['http_idle']['p99_ms']} during broadcasts {r['http_during_broadcasts']['p99_ms']} "
        f"ratio {r.get('http_p99_ratio')} (max {r['http_during_broadcasts']['max_ms']})",
        f"per socket KiB: RSS {r['per_socket_kib']['rss']} anon {r['per_socket_kib']['anon']}",
        "RSS after close (KiB) by cycle: " + ", ".join(str(x["closed"]["rss_kib"]) for x in r["cycles"])
        + f"; last/first {r['rss_after_close_last_vs_first']}",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--procs", type=int, default=2, help="client processes")
    parser.add_argument("--workers", type=int, default=0, help="WORKERS for the server (0: its default)")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between one broadcast's end and the next")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of HTTP probing with idle sockets")
    parser.add_argument("--cycles", type=int, default=5, help="connect/close cycles (memory returned)")
    parser.add_argument("--server-env", default="", help="extra server settings, KEY=VALUE,KEY=VALUE")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    result = run(args)
    text = json.dumps(result, indent=2, default=str)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    print(summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
