"""Lead reads (R37 board and pages, R40 one lead): the rows, their tags in one query, and the wire shape.

Split from :mod:`clarin.crm.leads` (the write rules) because this is the hottest path of the service: every
uncached dashboard read of leads runs here.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from clarin._speedups import group_rows
from clarin.crm.filtering import like_pattern
from clarin.crm.leads_cache import get_cached_leads, get_cached_total, store_cached_leads, store_cached_total
from clarin.db.queries import query
from clarin.http.cursor import decode_cursor, encode_cursor
from clarin.http.errors import HTTPError
from clarin.http.json import encode
from clarin.http.totals import capped
from clarin.state import AppState
from clarin.wire.leads import Lead, LeadsResponse

Q_LIST_ALL = query("leads_list_all")
Q_PAGE = query("leads_page")
Q_PAGE_PIPELINE = query("leads_page_pipeline")
Q_PAGE_STAGE = query("leads_page_stage")
Q_PAGE_TAG = query("leads_page_tag")
Q_PAGE_SEARCH_FEW = query("leads_page_search_few")
Q_PAGE_SEARCH_MANY = query("leads_page_search_many")
Q_COUNT_ALL = query("leads_count_all")
Q_COUNT_PIPELINE = query("leads_count_pipeline")
Q_COUNT_STAGE = query("leads_count_stage")
Q_COUNT_STAGE_PIPELINE = query("leads_count_stage_pipeline")
Q_COUNT_TAG = query("leads_count_tag")
Q_COUNT_TAG1 = query("leads_count_tag1")
Q_COUNT_SEARCH = query("leads_count_search")
Q_TAGS_FOR_LEADS = query("leads_tags_for_leads")
Q_GET = query("leads_get")
Q_GET_JSON = query("leads_get_json")

COMPAT_CAP = 10_000  # the unpaged dashboard board never returns more rows than this
# Filtered totals (search, pipeline, stage, tags) are exact up to the cap; above it the page says
# ``"total": cap, "total_capped": true``. The cap is the shared TOTAL_COUNT_CAP (state.settings.total_count_cap,
# clarin/http/totals.py, default 300), chosen by measurement (issue 17): a capped search count reads ~270 blocks
# at 100k leads, where the uncapped one read 1,819 (and 18k at 1M); the 10k-lead account counts a few hundred
# matches exactly.
# No cursor: a key after every row, so the keyset bound is always an index condition (one plan per shape).
_END_KEY = (datetime(9999, 12, 31, tzinfo=UTC), uuid.UUID(int=(1 << 128) - 1))
LEAD_NOT_FOUND = "Lead not found"
TAG_FIELDS = ("id", "account_id", "name", "color", "created_at", "updated_at")


@dataclass(frozen=True, slots=True)
class LeadFilter:
    search: str = ""
    pipeline_id: uuid.UUID | None = None
    stage_id: uuid.UUID | None = None
    tag_ids: list[uuid.UUID] | None = None

    @property
    def empty(self) -> bool:
        return not (self.search or self.pipeline_id or self.stage_id or self.tag_ids)


def parse_cursor(text: str) -> tuple[datetime, uuid.UUID] | None:
    """``?cursor=``: the (created_at, id) of the last lead of the previous page; ``""`` = none; else 400."""
    if not text:
        return None
    created_at, lead_id = decode_cursor(text, tuple[datetime, uuid.UUID])
    if created_at.tzinfo is None:
        raise HTTPError(400, "Invalid cursor")
    return created_at, lead_id


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


async def list_page(state: AppState, account_id: uuid.UUID, flt: LeadFilter, limit: int, offset: int,
                    cursor: tuple[datetime, uuid.UUID] | None = None) -> bytes:
    """The paged R37 body (``LeadsResponse``: total/total_capped/limit/offset/next_cursor).

    One statement per filter shape (sql/queries/leads.sql), all keyset pages from ``cursor`` (then ``offset``).
    Rows are hydrated in Python, not JSON built by PostgreSQL as for one lead: on a 50-lead page that cost the
    database more than it saved here (RESULTS.md)."""
    total: int | None = None
    counted = False  # total came from a capped count (so more than the cap means "capped")
    if flt.search:  # the capped count first: it decides how the page is read
        total, counted = await filtered_total(state, account_id, flt), True
    rows = await page_rows(state, account_id, flt, limit + 1, offset, cursor or _END_KEY, total)
    more = len(rows) > limit
    rows = rows[:limit]
    if total is None:
        if not more and cursor is None and (rows or offset == 0):
            total = offset + len(rows)  # the last page: the total is known without counting
        elif flt.empty:
            # no filter: the account's counter (exact, O(1), 0009_account_counters.sql), no cache needed
            total = int(await state.db.fetch_val(Q_COUNT_ALL, [account_id]) or 0)
        else:
            total, counted = await filtered_total(state, account_id, flt), True
    total, total_capped = capped(total, state.settings.total_count_cap) if counted else (total, False)
    next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
    leads = await hydrate(state.db, account_id, rows)
    return encode(LeadsResponse(leads=leads, total=total, limit=limit,
                                offset=offset, total_capped=total_capped, next_cursor=next_cursor))


async def page_rows(state: AppState, account_id: uuid.UUID, flt: LeadFilter, fetch: int, offset: int,
                    key: tuple[datetime, uuid.UUID], filter_total: int | None) -> list[dict[str, Any]]:
    """The page's rows (``fetch`` = limit + 1) with the statement of the filter's shape. ``filter_total``: the
    capped count of a search, which picks between reading every match (few) and walking."""
    head = [account_id, key[0], key[1], fetch, offset]
    tags = flt.tag_ids or None
    if flt.search:
        pattern = like_pattern(flt.search)
        cap = state.settings.total_count_cap
        if filter_total is not None and filter_total <= cap:  # few matches: all from the index
            args = [*head, pattern, flt.pipeline_id, flt.stage_id, cap + 1, tags]
            return await state.db.fetch(Q_PAGE_SEARCH_FEW, args)
        return await state.db.fetch(Q_PAGE_SEARCH_MANY, [*head, pattern, flt.pipeline_id, flt.stage_id, tags])
    if tags:  # the tags' leads in board order (idx_lead_tags_tag_created, 0013): O(page) for any tag size
        return await state.db.fetch(Q_PAGE_TAG, [*head, tags, flt.pipeline_id, flt.stage_id])
    if flt.stage_id:
        return await state.db.fetch(Q_PAGE_STAGE, [*head, flt.stage_id, flt.pipeline_id])
    if flt.pipeline_id:
        return await state.db.fetch(Q_PAGE_PIPELINE, [*head, flt.pipeline_id])
    return await state.db.fetch(Q_PAGE, head)


async def filtered_total(state: AppState, account_id: uuid.UUID, flt: LeadFilter) -> int:
    """The filter's total, counted up to ``total_count_cap + 1`` rows (more = capped), cached in Redis."""
    count_cap = state.settings.total_count_cap
    signature = "|".join((str(flt.pipeline_id or ""), str(flt.stage_id or ""),
                          ",".join(sorted(map(str, flt.tag_ids or ()))), flt.search, str(count_cap)))
    total = await get_cached_total(state, account_id, signature)
    if total is not None:
        return total
    cap = count_cap + 1
    tags = flt.tag_ids or None
    if flt.search:
        args = [account_id, cap, like_pattern(flt.search), flt.pipeline_id, flt.stage_id, tags]
        total = await state.db.fetch_val(Q_COUNT_SEARCH, args)
    elif tags and len(set(tags)) == 1:
        total = await state.db.fetch_val(Q_COUNT_TAG1, [account_id, cap, tags[0], flt.pipeline_id, flt.stage_id])
    elif tags:
        total = await state.db.fetch_val(Q_COUNT_TAG, [account_id, cap, tags, flt.pipeline_id, flt.stage_id])
    elif flt.stage_id and flt.pipeline_id:
        total = await state.db.fetch_val(Q_COUNT_STAGE_PIPELINE, [account_id, cap, flt.stage_id, flt.pipeline_id])
    elif flt.stage_id:
        total = await state.db.fetch_val(Q_COUNT_STAGE, [account_id, cap, flt.stage_id])
    else:
        total = await state.db.fetch_val(Q_COUNT_PIPELINE, [account_id, cap, flt.pipeline_id])
    total = int(total or 0)
    await store_cached_total(state, account_id, signature, total)
    return total


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
