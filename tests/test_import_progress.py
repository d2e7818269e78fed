"""A long CSV import reports its progress in the server log (the contract has no progress event or status
route): a line every 10,000 rows, then a closing line, each with the request's id (real server, real
PostgreSQL)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

from tests import support

ROWS = 25_000
PROGRESS_RE = re.compile(r": ([\d,]+) rows read, ([\d,]+) imported, ([\d,]+) skipped, \d+\.\d s$")
FINISHED_RE = re.compile(r" finished: ([\d,]+) rows read, ([\d,]+) imported, ([\d,]+) skipped in \d+\.\d s$")


def _numbers(match: re.Match[str]) -> tuple[int, ...]:
    return tuple(int(g.replace(",", "")) for g in match.groups())


def test_a_long_import_logs_progress_lines_with_its_request_id(database: str, log_dir: Path, make_tenant: Any) -> None:
    tenant = make_tenant()
    content = ("phone;name\n" + "".join(f"51{910000000 + i};Lead {i}\n" for i in range(ROWS))
               + "not-a-phone;Bad\n").encode()
    env = support.base_env(database, LOG_LEVEL="INFO", LOG_FORMAT="json")
    with support.running_server(env, log_dir, "import-progress") as srv:
        response = httpx.post(srv.url + "/api/import/csv", files={"file": ("many.csv", content, "text/csv")},
                              data={"import_type": "leads"}, headers=tenant.headers, timeout=300)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["imported"], body["skipped"]) == (ROWS, 1)
        request_id = response.headers["x-request-id"]
        logs = srv.logs()
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    ours = [line for line in lines if line.get("logger") == "clarin.import"]
    assert ours and all(line["request_id"] == request_id for line in ours), ours
    assert all(line["msg"].startswith("import 'many.csv' (leads, ") for line in ours)
    progress = [_numbers(m) for line in ours if (m := PROGRESS_RE.search(line["msg"]))]
    finished = [_numbers(m) for line in ours if (m := FINISHED_RE.search(line["msg"]))]
    assert [read for read, *_ in progress] == [10_000, 20_000], ours
    assert all(imported <= read for read, imported, _ in progress)
    assert finished == [(ROWS + 1, ROWS, 1)], ours
