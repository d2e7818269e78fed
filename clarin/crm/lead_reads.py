"""Lead reads (R37 board and pages, R40 one lead): the rows, their tags in one query, and the wire shape.

Split from :mod:`clarin.crm.leads` (the write rules) because this is the hottest path of the service: every
uncached dashboard read of leads runs here.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from clarin._speedups import group_rows
from clarin.crm.leads_cache import get_cached_leads, get_cached_total, store_cached_leads, store_cached_total
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.http.json import encode
from clarin.state import AppState
from clarin.wire.leads import Lead, LeadsResponse

Q_LIST_ALL = query("leads_list_all")
Q_PAGE = query("leads_page")
Q_COUNT = query("leads_count")
Q_COUNT_ALL = query("leads_count_all")
Q_PAGE_SEARCH = query("leads_page_search")
Q_COUNT_SEARCH = query("leads_count_search")
Q_TAGS_FOR_LEADS = query("leads_tags_for_leads")
Q_GET = query("leads_get")
Q_GET_JSON = query("leads_get_json")

COMPAT_CAP = 10_000  # the unpaged dashboard board never returns more rows than this
LEAD_NOT_FOUND = "Lead not found"
TAG_FIELDS = ("id", "account_id", "name", "color", "created_at", "updated_at")


@dataclass(frozen=True, slots=True)
class LeadFilter:
    search: str = ""
    pipeline_id: uuid.UUID | None = None
    stage_id: uuid.UUID | None = None
    tag_ids: list[uuid.UUID] | None = None


def escape_like(term: str) -> str:
    """ILIKE pattern matching ``term`` literally anywhere (``\\`` is ILIKE's default escape)."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def hydrate(executor: Any, account_id: uuid.UUID, rows: list[dict[str, Any]]) -> list[Lead]:
    """Attach ``structured_tags`` to a page of lead rows with ONE query, then convert to ``Lead``."""
    by_lead: dict[Any, list[Any]] = {}
    if rows:
        ids = [uuid.UUID(str(row["id"])) for row in rows]
        tag_rows = await executor.fetch(Q_TAGS_FOR_LEADS, [ids, account_id])
        by_lead = group_rows(tag_rows, "lead_id", TAG_FIELDS)
    for row in rows:
        finish_row(row, by_lead.get(row["id"]))
    return msgspec.convert(rows, list[Lead])


def finish_row(row: dict[str, Any], structured_tags: list[Any] | None) -> None:
    row["structured_tags"] = structured_tags
    if not row["tags"]:
        row["tags"] = None
    custom = row["custom_fields"]
    row["custom_fields"] = custom if isinstance(custom, dict) and custom else None


_building: dict[uuid.UUID, asyncio.Future[bytes]] = {}


async def board_body(state: AppState, account_id: uuid.UUID) -> bytes:
    """R37 without parameters: the cached body when there is one, else built and cached (30 s).

    Single-flight per process: concurrent misses of one account wait for the one build in progress
    instead of each rebuilding the 10k-lead board (a cache stampede)."""
    cached = await get_cached_leads(state, account_id)
    if cached is not None:
        return cached
    pending = _building.get(account_id)
    if pending is not None:
        return await asyncio.shield(pending)
    future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    _building[account_id] = future
    try:
        leads = await state.db.fetch_val(Q_LIST_ALL, [account_id, COMPAT_CAP])
        body = b'{"leads":' + leads.encode() + b',"success":true}'
        await store_cached_leads(state, account_id, body)
        future.set_result(body)
        return body
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: no "never retrieved" warning when nobody waited
        raise
    finally:
        _building.pop(account_id, None)


async def list_page(state: AppState, account_id: uuid.UUID, flt: LeadFilter, limit: int, offset: int) -> bytes:
    """The paged R37 body (``LeadsResponse`` with total/limit/offset). Rows hydrated in Python, not JSON built by
    PostgreSQL as for one lead: on a 50-lead page that cost the database more than it saved here (RESULTS.md)."""
    filters = [account_id, flt.pipeline_id, flt.stage_id, flt.tag_ids or None]
    pattern = escape_like(flt.search) if flt.search else None
    if pattern is not None:
        rows = await state.db.fetch(Q_PAGE_SEARCH, [*filters, pattern, limit, offset])
    else:
        rows = await state.db.fetch(Q_PAGE, [*filters, limit, offset])
    if (rows and len(rows) < limit) or (not rows and offset == 0):
        total = offset + len(rows)  # the last page: the total is known without counting
    elif pattern is None and not (flt.pipeline_id or flt.stage_id or flt.tag_ids):
        # no filter: the account's counter (exact, O(1), 0009_account_counters.sql), no cache needed
        total = int(await state.db.fetch_val(Q_COUNT_ALL, [account_id]) or 0)
    else:
        signature = "|".join((str(flt.pipeline_id or ""), str(flt.stage_id or ""),
                              ",".join(sorted(map(str, flt.tag_ids or ()))), flt.search))
        total = await get_cached_total(state, account_id, signature)
        if total is None:
            if pattern is not None:
                total = int(await state.db.fetch_val(Q_COUNT_SEARCH, [*filters, pattern]) or 0)
            else:
                total = int(await state.db.fetch_val(Q_COUNT, filters) or 0)
            await store_cached_total(state, account_id, signature, total)
    leads = await hydrate(state.db, account_id, rows)
    return encode(LeadsResponse(leads=leads, total=int(total or 0), limit=limit, offset=offset))


async def lead_body(executor: Any, account_id: uuid.UUID, lead_id: uuid.UUID) -> bytes:
    """R40: one lead's JSON object, built by PostgreSQL (the same bytes as encoding :func:`get_lead`)."""
    body = await executor.fetch_val(Q_GET_JSON, [lead_id, account_id])
    if body is None:
        raise HTTPError(404, LEAD_NOT_FOUND)
    return body.encode()


async def get_lead(executor: Any, account_id: uuid.UUID, lead_id: uuid.UUID) -> Lead:
    """One lead as a struct, for writes that answer with the lead and announce it (R41)."""
    row = await executor.fetch_row(Q_GET, [lead_id, account_id])
    if row is None:
        raise HTTPError(404, LEAD_NOT_FOUND)
    return (await hydrate(executor, account_id, [row]))[0]
