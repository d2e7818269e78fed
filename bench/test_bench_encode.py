"""Benchmarks of the response paths: rows → wire structs → JSON for a page (50) and the board (10k leads).

Mirrors ``clarin.crm.leads.hydrate`` + the route's encode: ``group_rows`` for the tags of a page,
``msgspec.convert`` of dict rows into ``Lead`` structs, then the process-wide msgspec encoder. The stdlib
``json`` twin shows what msgspec buys. Run: ``pytest bench/test_bench_encode.py --benchmark-only``.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from clarin._speedups import group_rows
from clarin.http.json import encode
from clarin.wire.leads import Lead, LeadsResponse

TAG_FIELDS = ("id", "account_id", "name", "color", "created_at", "updated_at")
ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)


def _rows(n: int, seed: int = 3) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Lead rows as psqlpy returns them (uuids as str, aware datetimes) and their tag rows (~3 per lead)."""
    rnd = random.Random(seed)
    account = str(uuid.UUID(int=rnd.getrandbits(128)))
    tags = [{"id": str(uuid.UUID(int=rnd.getrandbits(128))), "account_id": account, "name": f"Tag {i}",
             "color": "#6366f1", "created_at": ANCHOR, "updated_at": ANCHOR} for i in range(200)]
    leads, tag_rows = [], []
    for i in range(n):
        lead_id = str(uuid.UUID(int=rnd.getrandbits(128)))
        leads.append({
            "id": lead_id, "account_id": account, "contact_id": None, "jid": f"51{900000000 + i}@s.whatsapp.net",
            "name": "María", "last_name": "Quispe", "short_name": None, "phone": f"51{900000000 + i}",
            "email": f"maria.{i}@example.com", "company": "Andina SAC", "age": None, "status": "new",
            "pipeline_id": account, "stage_id": account, "source": "whatsapp", "notes": "", "tags": None,
            "custom_fields": {"presupuesto": 1200} if i % 5 == 0 else None, "assigned_to": None,
            "created_at": ANCHOR - timedelta(seconds=i * 97), "updated_at": ANCHOR,
            "stage_name": "Contactado", "stage_color": "#f59e0b", "stage_position": 1,
        })
        for tag in rnd.sample(tags, 3):
            tag_rows.append({"lead_id": lead_id, **tag})
    return leads, tag_rows


def _hydrate(rows: list[dict[str, Any]], tag_rows: list[dict[str, Any]]) -> list[Lead]:
    by_lead = group_rows(tag_rows, "lead_id", TAG_FIELDS)
    out = []
    for row in rows:
        out.append({**row, "structured_tags": by_lead.get(row["id"])})
    return msgspec.convert(out, list[Lead])


PAGE = _rows(50)
BOARD = _rows(10_000)


@pytest.mark.parametrize("size", ["page50", "board10k"])
def test_hydrate_and_encode_msgspec(benchmark: Any, size: str) -> None:
    benchmark.group = f"leads {size}: rows → structs → JSON"
    rows, tag_rows = PAGE if size == "page50" else BOARD

    def run() -> bytes:
        return encode(LeadsResponse(leads=_hydrate(rows, tag_rows), total=len(rows), limit=50, offset=0))

    assert benchmark(run).startswith(b"{")


@pytest.mark.parametrize("size", ["page50", "board10k"])
def test_encode_only_msgspec(benchmark: Any, size: str) -> None:
    benchmark.group = f"leads {size}: encode only"
    rows, tag_rows = PAGE if size == "page50" else BOARD
    response = LeadsResponse(leads=_hydrate(rows, tag_rows), total=len(rows), limit=50, offset=0)
    assert benchmark(encode, response).startswith(b"{")


@pytest.mark.parametrize("size", ["page50", "board10k"])
def test_encode_only_stdlib_json(benchmark: Any, size: str) -> None:
    benchmark.group = f"leads {size}: encode only"
    rows, tag_rows = PAGE if size == "page50" else BOARD
    plain = msgspec.to_builtins(LeadsResponse(leads=_hydrate(rows, tag_rows), total=len(rows), limit=50, offset=0))
    assert benchmark(lambda: json.dumps(plain, ensure_ascii=False).encode()).startswith(b"{")
