"""`clarin bench-seed` shows its progress: a line per step in logs, one redrawn bar on a terminal (tiny data set
against real PostgreSQL)."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from bench.seed import step_names
from tests import support
from tests.test_progress import stderr_on_pty

# accounts 3, no vacuum: drop_indexes, the table steps, 2 message steps, the index rebuilds, counters, commit, count.
STEP_NAMES = step_names(accounts=3, vacuum=False)
LINE_RE = re.compile(r"^bench-seed: +(\d+)% (\d+)/(\d+) steps \d+\.\d s (\S+) \d+\.\d s$")


@pytest.fixture
def bench_db() -> Iterator[str]:
    # bench-seed creates and migrates a database that does not exist yet.
    name = f"clarin_test_{uuid.uuid4().hex[:12]}"
    try:
        yield support.dsn_for(name)
    finally:
        support.drop_database(name)


def _argv(dsn: str) -> list[str]:
    return [sys.executable, "-m", "clarin", "bench-seed", "--database-url", dsn, "--scale", "0.001",
            "--accounts", "3", "--no-vacuum"]


def test_bench_seed_prints_a_progress_line_per_step_when_not_a_terminal(bench_db: str) -> None:
    done = subprocess.run(_argv(bench_db), cwd=support.ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr
    parsed = [m.groups() for line in done.stderr.splitlines() if (m := LINE_RE.match(line))]
    total = len(STEP_NAMES)
    assert [name for *_, name in parsed] == STEP_NAMES, done.stderr
    assert [(int(n), int(t)) for _, n, t, _ in parsed] == [(i, total) for i in range(1, total + 1)]
    assert parsed[-1][0] == "100"
    # The data really is there.
    leads = support.run_sql(bench_db, "SELECT count(*) AS n FROM leads")[0]["n"]
    assert leads > 0 and f"{leads:,} leads" in done.stdout


def test_bench_seed_draws_one_bar_on_a_terminal(bench_db: str) -> None:
    out = stderr_on_pty(_argv(bench_db), timeout=300).decode()
    bar = out[out.index("\rbench-seed ["):]  # after "creating database" (stdout) nothing but the bar
    assert bar.replace("\r\n", "\n").count("\n") == 1, out
    frames = [f for f in bar.rstrip("\r\n").split("\r") if f]
    assert len(frames) >= 2 and all(f.startswith("bench-seed [") for f in frames), frames
    assert f"] 100% {len(STEP_NAMES)}/{len(STEP_NAMES)} steps " in frames[-1] and frames[-1].rstrip().endswith("s")
