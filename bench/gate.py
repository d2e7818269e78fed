"""``make bench``: micro-benchmarks, EXPLAIN check, load test, then the regression gate.

Steps (each can be skipped with a flag):
  1. ``pytest bench -q --benchmark-only`` — Cython vs pure-Python speed-ups (results in
     bench/results/micro.json; the bulk phone-normalisation speed-up is printed).
  2. ``bench/explain.py`` — no Seq Scan on leads/messages/contacts/chats in the hot queries' plans.
  3. ``bench/load.py`` — the hot endpoints under load → bench/results/latest.json (the bench database is
     created, migrated and seeded first when missing).
  4. ``bench/webhooks.py`` — POST /api/leads p99 with and without one enabled webhook subscription (target:
     ≤ 10 % added) and events delivered per second to a local receiver → bench/results/webhooks.json; fails
     when an acknowledged lead's event never arrived.
  5. Gate, against bench/baseline.json:
       * every read's p99  <= 50 ms   (issue target 25 ms)
       * every write's p99 <= 200 ms  (issue target 100 ms)
       * WebSocket broadcast p99 <= 100 ms (issue target 50 ms)
       * errors (non-2xx, socket errors, missed WS deliveries) <= 1 % of requests
       * requests/s >= 85 % of the baseline's for every endpoint the baseline has
       * an endpoint the baseline measured must not have gone missing
     Endpoints the server does not have yet ("missing") are listed, not gated.

``--update-baseline`` copies the new results to bench/baseline.json after the run (when the gate passes,
or always with ``--force``). Exit status: 0 pass, 1 fail.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import BENCH_DIR, RESULTS_DIR, ROOT

BASELINE = BENCH_DIR / "baseline.json"
LATEST = RESULTS_DIR / "latest.json"
MICRO = RESULTS_DIR / "micro.json"
LIMITS_MS = {"read": 50.0, "write": 200.0, "ws": 100.0}
TARGETS_MS = {"read": 25.0, "write": 100.0, "ws": 50.0}
MIN_RPS_RATIO = 0.85
MAX_ERROR_RATIO = 0.01


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def ensure_services() -> None:
    if not (_port_open(5432) and _port_open(6379)):
        subprocess.run(["bash", str(ROOT / ".ci" / "services.sh")], check=False)


def step(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 90 - len(title)), flush=True)


def run_micro() -> bool:
    step("micro-benchmarks: pytest bench --benchmark-only")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "pytest", "bench", "-q", "--benchmark-only", "-p",
                           "no:cacheprovider", f"--benchmark-json={MICRO}", "--benchmark-columns=min,median,ops"],
                          cwd=ROOT, check=False)
    if done.returncode != 0:
        print("micro-benchmarks FAILED")
        return False
    try:
        data = json.loads(MICRO.read_text())
        medians = {b["name"]: b["stats"]["median"] for b in data["benchmarks"]}
        for group in ("test_normalize_phones_100k", "test_group_pairs_300k", "test_group_rows_100k",
                      "test_count_by_300k", "test_normalize_phone_single"):
            fast, slow = medians.get(f"{group}[cython]"), medians.get(f"{group}[python]")
            if fast and slow:
                print(f"  {group:<30} cython {fast * 1e3:9.3f} ms  python {slow * 1e3:9.3f} ms  speed-up {slow / fast:5.1f}x")
    except (OSError, ValueError, KeyError) as exc:
        print(f"  (could not read {MICRO}: {exc})")
    return True


def run_explain() -> bool:
    step("EXPLAIN (ANALYZE, BUFFERS) of the hot queries")
    done = subprocess.run([sys.executable, "-m", "bench.explain", "--json", str(RESULTS_DIR / "explain.json")],
                          cwd=ROOT, check=False)
    return done.returncode == 0


def run_load() -> bool:
    step("load test: bench/load.py")
    done = subprocess.run([sys.executable, "-m", "bench.load"], cwd=ROOT, check=False)
    return done.returncode == 0 and LATEST.is_file()


def run_webhooks() -> bool:
    step("webhooks: bench/webhooks.py")
    done = subprocess.run([sys.executable, "-m", "bench.webhooks"], cwd=ROOT, check=False)
    return done.returncode == 0


def gate(latest: dict[str, Any], baseline: dict[str, Any] | None) -> list[str]:
    """The list of failures (empty = pass); prints one verdict line per endpoint."""
    failures: list[str] = []
    base_rows = {r["name"]: r for r in (baseline or {}).get("endpoints", [])}
    print(f"{'endpoint':<20} {'kind':<5} {'p99 ms':>8} {'limit':>6} {'target':>7} {'req/s':>9} {'base':>9} "
          f"{'ratio':>6}  verdict")
    print("-" * 100)
    for row in latest.get("endpoints", []):
        name, kind = row["name"], row["kind"]
        base = base_rows.get(name)
        if row.get("status") == "missing":
            if base and base.get("status") != "missing":
                failures.append(f"{name}: measured in the baseline, missing now")
                print(f"{name:<20} {kind:<5} {'':>8} {'':>6} {'':>7} {'':>9} {'':>9} {'':>6}  FAIL (went missing)")
            else:
                print(f"{name:<20} {kind:<5} {'-':>8} {'':>6} {'':>7} {'-':>9} {'':>9} {'':>6}  missing (not gated)")
            continue
        problems: list[str] = []
        limit = LIMITS_MS[kind]
        p99 = float(row["p99_ms"] or 0)
        if p99 > limit:
            problems.append(f"p99 {p99:.1f} ms > {limit:.0f} ms")
        requests = int(row.get("requests") or 0)
        errors = int(row.get("errors") or 0)
        if requests == 0 or errors > MAX_ERROR_RATIO * max(1, requests + (errors if kind == "ws" else 0)):
            problems.append(f"{errors} errors in {requests} requests")
        ratio_text = ""
        base_rps = float(base["rps"]) if base and base.get("rps") else None
        if base_rps and int(base.get("errors") or 0) > MAX_ERROR_RATIO * max(1, int(base.get("requests") or 0)):
            base_rps = None  # the baseline's req/s counted failed (fast) responses: not a reference
        if base_rps:
            ratio = float(row["rps"]) / base_rps
            ratio_text = f"{ratio:6.2f}"
            if ratio < MIN_RPS_RATIO:
                problems.append(f"req/s {row['rps']:.0f} < 85 % of baseline {base_rps:.0f}")
        verdict = "ok" if not problems else "FAIL: " + "; ".join(problems)
        if not problems and p99 > TARGETS_MS[kind]:
            verdict = f"ok (above the {TARGETS_MS[kind]:.0f} ms target)"
        failures.extend(f"{name}: {p}" for p in problems)
        print(f"{name:<20} {kind:<5} {p99:>8.2f} {limit:>6.0f} {TARGETS_MS[kind]:>7.0f} {row['rps']:>9.1f} "
              f"{(f'{base_rps:.1f}' if base_rps else '-'):>9} {ratio_text:>6}  {verdict}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.gate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-micro", action="store_true")
    parser.add_argument("--skip-explain", action="store_true")
    parser.add_argument("--skip-load", action="store_true", help="gate the existing bench/results/latest.json")
    parser.add_argument("--skip-webhooks", action="store_true")
    parser.add_argument("--update-baseline", action="store_true", help="store the results as the new baseline")
    parser.add_argument("--force", action="store_true", help="with --update-baseline: even when the gate fails")
    args = parser.parse_args(argv)
    ensure_services()
    ok = True
    failures: list[str] = []
    if not args.skip_micro and not run_micro():
        failures.append("micro-benchmarks failed")
    if not args.skip_load:
        # The load step seeds the database when needed; explain runs after it so it has data to plan on.
        if not run_load():
            failures.append("load test did not complete")
    if not args.skip_webhooks and not run_webhooks():
        failures.append("webhooks: an acknowledged change's event never arrived (bench/results/webhooks.json)")
    if not args.skip_explain and not run_explain():
        failures.append("EXPLAIN check: sequential scan on a hot table (see above)")
    if LATEST.is_file():
        step("gate: bench/results/latest.json vs bench/baseline.json")
        latest = json.loads(LATEST.read_text())
        baseline = json.loads(BASELINE.read_text()) if BASELINE.is_file() else None
        if baseline is None:
            print("(no bench/baseline.json: throughput is not compared)")
        failures.extend(gate(latest, baseline))
    else:
        failures.append(f"no {LATEST}")
    ok = not failures
    if args.update_baseline and (ok or args.force):
        shutil.copyfile(LATEST, BASELINE)
        print(f"\nbaseline updated: {BASELINE}")
    print()
    if ok:
        print("bench gate: PASS")
        return 0
    print(f"bench gate: FAIL ({len(failures)})")
    for f in failures:
        print(f"  - {f}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
