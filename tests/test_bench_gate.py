"""bench/gate.py reads and gates all three load profiles (cached, uncached, busy_account) against their parts of
bench/baseline.json. Pure logic on made-up result files: no server, no load."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

from bench import gate


def _row(name: str, kind: str, rps: float, p99: float, errors: int = 0) -> dict[str, Any]:
    return {"name": name, "kind": kind, "status": "ok", "rps": rps, "p99_ms": p99, "requests": int(rps * 10),
            "errors": errors}


def _results(profile: str) -> dict[str, Any]:
    rows = {
        "cached": [_row("leads_page", "read", 18000, 8), _row("lead_create", "write", 1900, 130)],
        "uncached": [_row("leads_page", "read", 600, 120), _row("lead_create", "write", 1500, 110)],
        "busy_account": [_row("busy_leads_page", "read", 220, 300), _row("busy_inbound", "write", 50, 150)],
    }[profile]
    out: dict[str, Any] = {"endpoints": rows}
    if profile == "busy_account":
        out["page_cache"] = {"hit_rate": 0.7}
    return out


def _profiles(tmp_path: Path) -> tuple[gate.Profile, ...]:
    return tuple(dataclasses.replace(p, output=tmp_path / f"{p.name}.json") for p in gate.PROFILES)


def _write(profiles: tuple[gate.Profile, ...], results: dict[str, dict[str, Any]]) -> None:
    for profile in profiles:
        if profile.name in results:
            profile.output.write_text(json.dumps(results[profile.name]))


def test_the_gate_knows_three_profiles() -> None:
    assert [p.name for p in gate.PROFILES] == ["cached", "uncached", "busy_account"]
    uncached = gate.PROFILES[1]
    assert "PAGE_CACHE_TTL=0" in uncached.env["BENCH_SERVER_ENV"] and uncached.module == "bench.load"
    assert gate.PROFILES[2].module == "bench.busy"
    assert {p.output for p in gate.PROFILES} == {gate.LATEST, gate.RESULTS_DIR / "latest-uncached.json",
                                                 gate.RESULTS_DIR / "latest-busy.json"}


def test_all_three_profiles_pass_against_their_own_baseline(tmp_path: Path) -> None:
    profiles = _profiles(tmp_path)
    results = {p.name: _results(p.name) for p in profiles}
    _write(profiles, results)
    baseline = gate.updated_baseline(None, profiles)
    assert set(baseline["profiles"]) == {"cached", "uncached", "busy_account"}
    assert gate.gate_profiles(profiles, baseline) == []


def test_a_regression_in_any_profile_fails(tmp_path: Path) -> None:
    profiles = _profiles(tmp_path)
    baseline = {"profiles": {p.name: _results(p.name) for p in profiles}}
    worse = copy.deepcopy(baseline["profiles"])
    worse["uncached"]["endpoints"][0]["rps"] = 400  # 67 % of the raw path's baseline
    worse["busy_account"]["endpoints"][0]["p99_ms"] = 460  # > 1.5 x 300
    worse["busy_account"]["page_cache"]["hit_rate"] = 0.5  # 20 points down
    _write(profiles, worse)
    failures = gate.gate_profiles(profiles, baseline)
    assert any(f.startswith("uncached/leads_page: req/s") for f in failures), failures
    assert any(f.startswith("busy_account/busy_leads_page: p99") for f in failures), failures
    assert any(f.startswith("busy_account: page-cache hit rate") for f in failures), failures
    assert not any(f.startswith("cached") for f in failures), failures


def test_relative_p99_only_where_the_profile_says_so(tmp_path: Path) -> None:
    profiles = _profiles(tmp_path)
    baseline = {"profiles": {p.name: _results(p.name) for p in profiles}}
    slower = copy.deepcopy(baseline["profiles"])
    slower["cached"]["endpoints"][0]["p99_ms"] = 60  # over the absolute 50 ms read limit
    slower["uncached"]["endpoints"][0]["p99_ms"] = 170  # within 1.5 x 120
    _write(profiles, slower)
    failures = gate.gate_profiles(profiles, baseline)
    assert failures == ["cached/leads_page: p99 60.0 ms > 50 ms"]


def test_missing_results_fail_and_old_baselines_are_the_cached_profile(tmp_path: Path) -> None:
    profiles = _profiles(tmp_path)
    _write(profiles, {"cached": _results("cached")})
    old_format = _results("cached")  # a baseline.json from before the profiles: one run of bench/load.py
    assert gate.baseline_of(old_format, "cached") is old_format
    assert gate.baseline_of(old_format, "uncached") is None
    failures = gate.gate_profiles(profiles, old_format)
    assert sorted(f.split(":")[0] for f in failures) == ["busy_account", "uncached"]
    merged = gate.updated_baseline(old_format, profiles)
    assert merged == {"profiles": {"cached": _results("cached")}}
