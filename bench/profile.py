"""Where one request's CPU goes: py-spy samples of one server worker under load, folded into buckets.

    python -m bench.profile                                  # the five issue-13 endpoints, working tree
    python -m bench.profile --commit c8f61ff                 # a commit (git archive), not the working tree
    python -m bench.profile --endpoints lead_get,lead_create --duration 15 --concurrency 32 --keep /tmp/prof

Starts ``clarin serve`` with ONE worker and the page cache off (``PAGE_CACHE_TTL=0``, so every request runs
the raw path) on the bench database (bench/load.py's server: simulated WhatsApp driver, no rate limit, no
access log; ``BENCH_SERVER_ENV`` adds settings). Per endpoint (bench/load.py's definitions): a warm-up, then
wrk (or the Python client) at ``--concurrency`` for ``--duration`` s while ``py-spy record --subprocesses --gil
--nonblocking`` samples the thread that holds the GIL at ``--rate`` Hz. Each stack goes to the bucket of its
leaf-most frame that belongs to one:

    granian/RSGI  granian, asyncio's loop (when no caller has a bucket), clarin.http.server / response / headers
    auth          clarin.auth, ClarinApp._authenticate
    routing       clarin.http.router / routes / request / paging / errors / forms, body decoding
    driver        psqlpy calls in clarin.db.pool (execute, the pool gate), psqlpy itself
    row conv.     QueryResult.result(), msgspec.convert, hydrate/group helpers, clarin.wire, clarin._speedups
    JSON          clarin.http.json (msgspec encode), json, gzip
    Redis         redis-py, clarin.cache (page cache, pub/sub)
    logging       logging, clarin.observability.logs
    metrics       prometheus_client, clarin.observability (query/request timers)
    other         lines of clarin's own code outside those (handlers, services, the webhook outbox), the rest
    Rust (GIL)    a thread holding the GIL with no Python frame: granian's or psqlpy's Rust threads calling
                  into Python (building request objects, completing futures)

py-spy sees Python frames only: time in a C/Rust extension is charged to the Python line that called it (so
``conn.execute`` → driver, ``.result()`` → row conversion, ``msgspec.json.encode`` → JSON). Columns: req/s under
the sampler (--nonblocking: the server is not paused), "CPU ms/req" = the server's CPU time (all its processes
and threads, from /proc) over the window / requests, "GIL ms/req" = GIL-held samples / rate / requests; the
difference is Rust work outside the GIL (sockets, HTTP parsing, the PostgreSQL protocol). ``--json`` writes the
table too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httpx

from bench.common import (
    BENCH_PASSWORD,
    LARGE_USER,
    ROOT,
    bench_dsn,
    database_exists,
    ensure_database,
    exit_now,
    fetch,
    load_sql,
)
from bench.load import Config, Endpoint, Server, _cleanup, _drive, build_endpoints, ensure_wrk, settle

DEFAULT_ENDPOINTS = "leads_page,lead_get,chat_messages,contacts_page,lead_create"
BUCKETS = ("granian/RSGI", "auth", "routing", "driver", "row conv.", "JSON", "Redis", "logging", "metrics", "other",
           "Rust (GIL)")
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")
_ENCODE_CALL = re.compile(r"\bencode\(|\.encode\(|json\.encode")
_CONVERSION_CALL = re.compile(r"msgspec\.convert|\bconvert\(|\.result\(|hydrate|group_rows\(")
_CONVERSION_NAMES = re.compile(r"hydrate|convert|group_rows|group_pairs|_rows?_to|to_wire|from_row", re.IGNORECASE)


def _pkg(file: str, package: str) -> bool:
    """``file`` (as py-spy prints it: relative to its sys.path entry, or absolute) is in ``package``."""
    return file.startswith(package + "/") or f"/{package}/" in file


class Classifier:
    """Frame → bucket; lines of clarin.db.pool are told apart by their source text (``.result(`` vs the rest)."""

    def __init__(self, root: Path = ROOT) -> None:
        self.root = root
        self._lines: dict[str, list[str]] = {}

    def _source_line(self, file: str, line: int) -> str:
        if file not in self._lines:
            path = Path(file) if os.path.isabs(file) else self.root / file
            try:
                self._lines[file] = path.read_text(encoding="utf-8").splitlines()
            except OSError:
                self._lines[file] = []
        lines = self._lines[file]
        return lines[line - 1] if 0 < line <= len(lines) else ""

    def frame(self, text: str) -> str | None:
        match = _FRAME.match(text)
        if match is None:
            return None
        func, file, line = match["func"], match["file"].replace("\\", "/"), int(match["line"])
        if _pkg(file, "prometheus_client") or ("clarin/observability/" in file and "logs" not in file):
            return "metrics"
        if _pkg(file, "logging") or "clarin/observability/logs" in file:
            return "logging"
        if _pkg(file, "redis") or "clarin/cache/" in file:
            return "Redis"
        if file.endswith("clarin/http/json.py") or _pkg(file, "json") or file.endswith("gzip.py"):
            return "JSON"
        if file.endswith("clarin/db/pool.py"):
            source = self._source_line(file, line)
            return "row conv." if ".result(" in source else "driver"
        if _pkg(file, "psqlpy"):
            return "driver"
        if "clarin/_speedups/" in file or "clarin/wire/" in file or _pkg(file, "msgspec"):
            return "row conv."
        if file.startswith((str(self.root / "clarin"), "clarin/")):
            # A C call has no frame of its own: the calling line's text says what it was.
            source = self._source_line(file, line)
            if _ENCODE_CALL.search(source):
                return "JSON"
            if _CONVERSION_NAMES.search(func) or _CONVERSION_CALL.search(source):
                return "row conv."
        if "clarin/auth/" in file or func == "_authenticate":
            return "auth"
        if any(file.endswith(f"clarin/http/{m}.py") for m in ("router", "routes", "request", "paging", "errors",
                                                                 "forms")) or func == "_decode_body":
            return "routing"
        if _pkg(file, "granian") or any(
                file.endswith(f"clarin/http/{m}.py") for m in ("server", "response", "headers")):
            return "granian/RSGI"
        return None

    def stack(self, frames: list[str]) -> str:
        """The leaf-most frame that has a bucket decides; library frames without one (uuid, re, ...) defer to
        their caller, but a line of clarin's own code without one is the handler's own work: "other"."""
        in_loop = False
        for text in reversed(frames):  # leaf first
            bucket = self.frame(text)
            if bucket is not None:
                return bucket
            match = _FRAME.match(text)
            file = match["file"].replace("\\", "/") if match is not None else ""
            if file.startswith((str(self.root / "clarin"), "clarin/")):
                return "other"
            # asyncio works for whoever called it (redis-py's stream writes are Redis): the loop itself only
            # when no caller has a bucket
            in_loop = in_loop or _pkg(file, "asyncio")
        return "granian/RSGI" if in_loop else "other"


def fold(raw: str, classifier: Classifier | None = None) -> Counter[str]:
    """py-spy ``--format raw`` output (``frame;frame;... count`` per line) → samples per bucket."""
    classifier = classifier or Classifier()
    buckets: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        buckets[classifier.stack(frames) if frames else "Rust (GIL)"] += int(count)
    return buckets


def _tree_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its descendants (the granian worker is a child of ``clarin serve``)."""
    total, todo = 0.0, [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError, IndexError):
            continue
    return total


def export_commit(rev: str, work: Path) -> tuple[Path, str]:
    """``git archive`` of ``rev`` into ``work``/tree, with this checkout's compiled speed-ups when their
    sources are the same (otherwise the commit runs on the pure-Python twins: said so)."""
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True, check=True)
    tree = work / "tree"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    for built in (ROOT / "clarin" / "_speedups").glob("*.so"):
        source = built.name.split(".", 1)[0] + ".pyx"
        theirs, ours = tree / "clarin" / "_speedups" / source, ROOT / "clarin" / "_speedups" / source
        if theirs.is_file() and ours.is_file() and theirs.read_bytes() == ours.read_bytes():
            shutil.copy(built, tree / "clarin" / "_speedups" / built.name)
        else:
            print(f"bench.profile: {source} differs at {rev}: that module runs its pure-Python twin")
    return tree, sha.stdout.strip()


def profile_endpoint(cfg: Config, wrk: str | None, url: str, token: str, ep: Endpoint, server_pid: int,
                     args: argparse.Namespace, work: Path, root: Path) -> dict[str, Any]:
    out = work / f"{ep.name}.pyspy.txt"
    spy = subprocess.Popen(
        [str(Path(sys.executable).with_name("py-spy")) if Path(sys.executable).with_name("py-spy").exists()
         else "py-spy", "record", "--pid", str(server_pid), "--subprocesses", "--gil", "--rate",
         str(args.rate), "--format", "raw", "--output", str(out), "--duration", str(int(args.duration)),
         *(["--native"] if args.native else ["--nonblocking"])],  # native frames need the target paused
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # py-spy attaches
    cpu_before = _tree_cpu_seconds(server_pid)
    started = time.monotonic()
    result: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: result.update(_drive(cfg, wrk, url, token, ep, args.duration - 1, work)))
    runner.start()
    runner.join()
    cpu = _tree_cpu_seconds(server_pid) - cpu_before
    elapsed = time.monotonic() - started
    _, err = spy.communicate(timeout=args.duration + 60)
    if spy.returncode != 0 or not out.is_file():
        raise SystemExit(f"py-spy failed ({spy.returncode}): {err.strip()[-600:]}")
    buckets = fold(out.read_text(), Classifier(root))
    samples = sum(buckets.values())
    requests = max(1, int(result.get("requests") or 0))
    active_s = samples / args.rate
    row = {"name": ep.name, "method": ep.method, "path": ep.path, "rps": result.get("rps"),
           "p99_ms": result.get("p99_ms"), "errors": result.get("errors"), "requests": requests,
           "cpu_ms_per_request": cpu / requests * 1000, "cpu_cores": cpu / elapsed, "samples": samples,
           "gil_ms_per_request": active_s / requests * 1000,
           "buckets": {b: buckets.get(b, 0) / samples if samples else 0.0 for b in BUCKETS}}
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, Path(args.keep) / out.name)
    return row


def print_rows(rows: list[dict[str, Any]]) -> None:
    head = f"{'endpoint':<15} {'req/s':>7} {'CPU ms/req':>10} {'GIL ms/req':>10} " + " ".join(
        f"{b:>12}" for b in BUCKETS)
    print(head)
    print("-" * len(head))
    for row in rows:
        cells = " ".join(f"{row['buckets'][b] * 100:>11.1f}%" for b in BUCKETS)
        print(f"{row['name']:<15} {row['rps'] or 0:>7.0f} {row['cpu_ms_per_request']:>10.3f} "
              f"{row['gil_ms_per_request']:>10.3f} {cells}")
    print("\nµs of GIL-held time per request by bucket (share x GIL ms/req):")
    for row in rows:
        per = {b: row["buckets"][b] * row["gil_ms_per_request"] * 1000 for b in BUCKETS}
        print(f"  {row['name']:<15} " + ", ".join(f"{b} {v:.0f}" for b, v in per.items() if v >= 0.5))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", default=DEFAULT_ENDPOINTS, help="bench/load.py endpoint names")
    parser.add_argument("--duration", type=float, default=12, help="seconds sampled per endpoint")
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="py-spy --native: Rust/C frames too (slower)")
    parser.add_argument("--keep", help="directory to keep the raw py-spy stacks in")
    parser.add_argument("--json", help="write the table as JSON here")
    parser.add_argument("--commit", help="serve this commit (git archive) instead of the working tree")
    parser.add_argument("--tree", help="serve this source tree (an experiment) instead of the working tree")
    args = parser.parse_args(argv)
    os.environ["BENCH_WORKERS"] = "1"
    extra = os.environ.get("BENCH_SERVER_ENV", "").strip()
    os.environ["BENCH_SERVER_ENV"] = "PAGE_CACHE_TTL=0" + ("," + extra if extra else "")
    cfg = Config()
    cfg.concurrency = args.concurrency
    dsn = bench_dsn()
    admin_sql = load_sql("admin")
    if not ((args.commit or args.tree) and database_exists(dsn)):  # a commit's server applies its own migrations at start
        ensure_database(dsn, seed_value=cfg.seed)
    wrk = ensure_wrk() if cfg.client == "wrk" else None
    if cfg.client == "wrk" and wrk is None:
        cfg.client = "python"
    work = Path(tempfile.mkdtemp(prefix="clarin-profile-"))
    if args.tree:
        root, commit = Path(args.tree).resolve(), f"tree {args.tree}"
    elif args.commit:
        root, commit = export_commit(args.commit, work)
    else:
        root = ROOT
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "clarin", "sql"], cwd=ROOT,
                               capture_output=True, text=True)
        commit = head.stdout.strip() + (" (working tree, dirty)" if dirty.stdout.strip() else "")
    server = Server(cfg, dsn, work, root)
    server.wait_ready()
    url, rows = server.url, []
    loadavg = [round(x, 2) for x in os.getloadavg()]
    try:
        login = httpx.post(url + "/api/auth/login", json={"username": LARGE_USER, "password": BENCH_PASSWORD},
                           timeout=30)
        token = login.json()["token"]
        account_id = uuid.UUID(asyncio.run(fetch(dsn, admin_sql["bench_large_account"], [cfg.seed]))[0]["account_id"])
        ctx = {"seed": cfg.seed, "board_etag": '"none"', "device_id": None,
               "run": f"{random.Random().randrange(10000):04d}",
               "lead_ids": [r["id"] for r in asyncio.run(fetch(dsn, admin_sql["bench_sample_leads"],
                                                                [account_id, 97, 1000]))],
               "stages": asyncio.run(fetch(dsn, admin_sql["bench_stages_of_account"], [account_id])),
               "chats": asyncio.run(fetch(dsn, admin_sql["bench_busiest_chats"], [account_id, 200]))}
        wanted = [name.strip() for name in args.endpoints.split(",") if name.strip()]
        by_name = {ep.name: ep for ep in build_endpoints(ctx)}
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        print(f"bench.profile: 1 worker, PAGE_CACHE_TTL=0, c={args.concurrency}, {args.duration:g}s at "
              f"{args.rate} Hz per endpoint; commit {commit}; loadavg {loadavg}", flush=True)
        for name in wanted:
            ep = by_name[name]
            settle(client)
            if args.warmup > 0:
                _drive(cfg, wrk, url, token, ep, args.warmup, work)
                settle(client)
            row = profile_endpoint(cfg, wrk, url, token, ep, server.proc.pid, args, work, root)
            row["loadavg_before"] = [round(x, 2) for x in os.getloadavg()]
            rows.append(row)
            print(f"  {name}: {row['rps'] or 0:.0f} req/s, {row['samples']} samples", flush=True)
        client.close()
    finally:
        _cleanup(dsn, admin_sql, url, locals().get("token"), locals().get("account_id"), None)
        if server.proc.poll() is not None:
            print(f"bench.profile: the server exited ({server.proc.returncode}):\n"
                  + server.log_path.read_text()[-3000:])
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print()
    print_rows(rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"commit": commit, "loadavg_before": loadavg,
                                               "concurrency": args.concurrency, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    exit_now(main())
