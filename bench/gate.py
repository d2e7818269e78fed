"""``make bench``: micro-benchmarks, EXPLAIN check, load test, then the regression gate.

Steps (each can be skipped with a flag):
  1. ``pytest bench -q --benchmark-only`` — Cython vs pure-Python speed-ups (results in
     bench/results/micro.json; the bulk phone-normalisation speed-up is printed).
  2. ``bench/explain.py`` — no Seq Scan on leads/messages/contacts/chats in the hot queries' plans.
  3. Three load profiles (the bench database is created, migrated and seeded first when missing):
       * ``cached`` — ``bench/load.py``, every hot endpoint, 64 connections → bench/results/latest.json;
       * ``uncached`` — ``bench/load.py`` with ``PAGE_CACHE_TTL=0`` at 16 connections, the hot reads and the
         lead create (the raw path: every request on PostgreSQL) → bench/results/latest-uncached.json;
       * ``busy_account`` — ``bench/busy.py``: six reads at 64 connections while 50 inbound messages/s and
         5 lead updates/s change the account → bench/results/latest-busy.json (+ the page-cache hit rate).
  4. ``bench/webhooks.py`` — POST /api/leads p99 with and without one enabled webhook subscription (target:
     ≤ 10 % added) and events delivered per second to a local receiver → bench/results/webhooks.json; fails
     when an acknowledged lead's event never arrived.
  5. Gate, each profile against its part of bench/baseline.json (``{"profiles": {name: results}}``):
       * p99 <= the limit: reads 50 ms, writes 200 ms, WebSocket broadcast 100 ms (issue targets 25 / 100 /
         50 ms). In ``uncached`` and ``busy_account`` (not at the issue's targets yet) the limit is
         max(limit, 1.5 x the baseline's p99), and the 50 ms read target of issue 13 is reported beside it
       * errors (non-2xx, socket errors, missed WS deliveries) <= 1 % of requests
       * requests/s >= 85 % of the baseline's for every endpoint the baseline has
       * an endpoint the baseline measured must not have gone missing; a profile without results fails
       * ``busy_account``: page-cache hit rate >= the baseline's minus 10 points
     Endpoints the server does not have yet ("missing") are listed, not gated.

Runtime on the 2-core project machine: micro ~1 min, cached ~4 min, uncached ~2 min, busy_account ~1 min,
webhooks + EXPLAIN ~1 min (plus ~2.5 min to seed the bench database the first time).
``--profiles cached,busy_account`` runs (and gates) a subset.

``--update-baseline`` stores the new results of the profiles run in bench/baseline.json (when the gate
passes, or always with ``--force``). Exit status: 0 pass, 1 fail.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import BENCH_DIR, RESULTS_DIR, ROOT

BASELINE = BENCH_DIR / "baseline.json"
LATEST = RESULTS_DIR / "latest.json"
MICRO = RESULTS_DIR / "micro.json"
LIMITS_MS = {"read": 50.0, "write": 200.0, "ws": 100.0}
TARGETS_MS = {"read": 25.0, "write": 100.0, "ws": 50.0}
RAW_PATH_TARGETS_MS = {"read": 50.0, "write": 100.0, "ws": 50.0}  # issue 13 goals 2 and 3
MIN_RPS_RATIO = 0.85
MAX_ERROR_RATIO = 0.01
P99_TOLERANCE = 1.5  # uncached / busy_account: p99 may grow to 1.5 x the baseline's (or the limit, if higher)
HIT_RATE_DROP = 0.10  # busy_account: the page-cache hit rate may fall 10 points below the baseline's
UNCACHED_ENDPOINTS = ("leads_page,leads_page_stage,leads_page_search,lead_get,chats_page,chat_messages,"
                      "contacts_page,contacts_search,stats,lead_create")


@dataclass(frozen=True)
class Profile:
    name: str
    module: str
    output: Path
    env: dict[str, str] = field(default_factory=dict)
    relative_p99: bool = False  # limit = max(LIMITS_MS, P99_TOLERANCE x baseline p99)
    targets: dict[str, float] = field(default_factory=lambda: TARGETS_MS)


PROFILES = (
    Profile("cached", "bench.load", LATEST),
    Profile("uncached", "bench.load", RESULTS_DIR / "latest-uncached.json",
            {"BENCH_SERVER_ENV": "PAGE_CACHE_TTL=0", "BENCH_CONCURRENCY": "16", "BENCH_DURATION": "8",
             "BENCH_ONLY": UNCACHED_ENDPOINTS}, relative_p99=True, targets=RAW_PATH_TARGETS_MS),
    Profile("busy_account", "bench.busy", RESULTS_DIR / "latest-busy.json", relative_p99=True,
            targets=RAW_PATH_TARGETS_MS),
)


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


def run_profile(profile: Profile) -> bool:
    step(f"load profile {profile.name}: python -m {profile.module} {' '.join(f'{k}={v}' for k, v in profile.env.items())}")
    env = {**os.environ, **profile.env, "BENCH_OUTPUT": str(profile.output)}
    if "BENCH_SERVER_ENV" in profile.env and os.environ.get("BENCH_SERVER_ENV"):
        env["BENCH_SERVER_ENV"] = os.environ["BENCH_SERVER_ENV"] + "," + profile.env["BENCH_SERVER_ENV"]
    profile.output.unlink(missing_ok=True)
    done = subprocess.run([sys.executable, "-m", profile.module], cwd=ROOT, env=env, check=False)
    return done.returncode == 0 and profile.output.is_file()


def baseline_of(baseline: dict[str, Any] | None, profile: str) -> dict[str, Any] | None:
    """The profile's part of bench/baseline.json (a file of one run, the old format, is the cached profile)."""
    if baseline is None:
        return None
    if "profiles" in baseline:
        found: dict[str, Any] | None = baseline["profiles"].get(profile)
        return found
    return baseline if profile == "cached" else None


def run_webhooks() -> bool:
    step("webhooks: bench/webhooks.py")
    done = subprocess.run([sys.executable, "-m", "bench.webhooks"], cwd=ROOT, check=False)
    return done.returncode == 0


def gate(latest: dict[str, Any], baseline: dict[str, Any] | None, profile: Profile = PROFILES[0]) -> list[str]:
    """The list of failures of one profile (empty = pass); prints one verdict line per endpoint."""
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
        if profile.relative_p99 and base and base.get("p99_ms"):
            limit = max(limit, P99_TOLERANCE * float(base["p99_ms"]))
        target = profile.targets[kind]
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
        if not problems and p99 > target:
            verdict = f"ok (above the {target:.0f} ms target)"
        failures.extend(f"{profile.name}/{name}: {p}" for p in problems)
        print(f"{name:<20} {kind:<5} {p99:>8.2f} {limit:>6.0f} {target:>7.0f} {row['rps']:>9.1f} "
              f"{(f'{base_rps:.1f}' if base_rps else '-'):>9} {ratio_text:>6}  {verdict}")
    failures.extend(_gate_hit_rate(latest, baseline, profile))
    return failures


def _gate_hit_rate(latest: dict[str, Any], baseline: dict[str, Any] | None, profile: Profile) -> list[str]:
    rate = (latest.get("page_cache") or {}).get("hit_rate")
    if rate is None:
        return []
    base = ((baseline or {}).get("page_cache") or {}).get("hit_rate")
    line = f"page-cache hit rate {rate:.1%}" + (f" (baseline {base:.1%})" if base is not None else "")
    if base is not None and rate < base - HIT_RATE_DROP:
        print(line + "  FAIL")
        return [f"{profile.name}: page-cache hit rate {rate:.1%} < baseline {base:.1%} - {HIT_RATE_DROP:.0%}"]
    print(line + "  ok")
    return []


def gate_profiles(
    profiles: tuple[Profile, ...], baseline: dict[str, Any] | None, load: Any = None
) -> list[str]:
    """Gate every profile's results file against its baseline; a profile without results fails."""
    failures: list[str] = []
    read = load or (lambda path: json.loads(path.read_text()) if path.is_file() else None)
    for profile in profiles:
        step(f"gate {profile.name}: {profile.output.name} vs bench/baseline.json")
        latest = read(profile.output)
        if latest is None:
            failures.append(f"{profile.name}: no results ({profile.output})")
            print(f"no {profile.output}")
            continue
        base = baseline_of(baseline, profile.name)
        if base is None:
            print("(no baseline for this profile: throughput is not compared)")
        failures.extend(gate(latest, base, profile))
    return failures


def updated_baseline(baseline: dict[str, Any] | None, profiles: tuple[Profile, ...]) -> dict[str, Any]:
    merged = dict((baseline or {}).get("profiles") or ({"cached": baseline} if baseline else {}))
    for profile in profiles:
        if profile.output.is_file():
            merged[profile.name] = json.loads(profile.output.read_text())
    return {"profiles": merged}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.gate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-micro", action="store_true")
    parser.add_argument("--skip-explain", action="store_true")
    parser.add_argument("--skip-load", action="store_true", help="gate the existing bench/results/latest*.json")
    parser.add_argument("--skip-webhooks", action="store_true")
    parser.add_argument("--profiles", default=",".join(p.name for p in PROFILES),
                        help="comma-separated load profiles to run and gate (default: all three)")
    parser.add_argument("--update-baseline", action="store_true", help="store the results as the new baseline")
    parser.add_argument("--force", action="store_true", help="with --update-baseline: even when the gate fails")
    args = parser.parse_args(argv)
    wanted = {name.strip() for name in args.profiles.split(",") if name.strip()}
    unknown = wanted - {p.name for p in PROFILES}
    if unknown:
        parser.error(f"unknown profile(s): {', '.join(sorted(unknown))}")
    profiles = tuple(p for p in PROFILES if p.name in wanted)
    ensure_services()
    failures: list[str] = []
    if not args.skip_micro and not run_micro():
        failures.append("micro-benchmarks failed")
    if not args.skip_load:
        # The load step seeds the database when needed; explain runs after it so it has data to plan on.
        for profile in profiles:
            if not run_profile(profile):
                failures.append(f"load profile {profile.name} did not complete")
    if not args.skip_webhooks and not run_webhooks():
        failures.append("webhooks: an acknowledged change's event never arrived (bench/results/webhooks.json)")
    if not args.skip_explain and not run_explain():
        failures.append("EXPLAIN check: sequential scan on a hot table (see above)")
    baseline = json.loads(BASELINE.read_text()) if BASELINE.is_file() else None
    if baseline is None:
        print("(no bench/baseline.json: throughput is not compared)")
    failures.extend(gate_profiles(profiles, baseline))
    ok = not failures
    if args.update_baseline and (ok or args.force):
        BASELINE.write_text(json.dumps(updated_baseline(baseline, profiles), indent=2, default=str) + "\n")
        print(f"\nbaseline updated: {BASELINE} ({', '.join(p.name for p in profiles)})")
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
