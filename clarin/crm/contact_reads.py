"""R75 ``GET /api/contacts``: the page, its total and the page's tags in one statement that also builds the JSON.

Split from :mod:`clarin.crm.contacts` (the write rules): a hot dashboard read.

- One statement per filter shape (sql/queries/contacts.sql): unfiltered, device/phone/legacy tags, structured
  tag ids, tag ids with other filters, search, search with filters; none has a catch-all that changes which index its generic plan walks.
  Searched pages run with custom plans only (``Database.fetch_tuple_custom``: a rare and a common term need different
  plans).
- Keyset paging: ``?cursor=`` (clarin/http/cursor.py) is the sort key of the previous page's last contact
  (display name IS NULL, display name or "", id); ``next_cursor`` is null after the last page. ``offset`` still
  works and applies after the cursor.
- Totals: unfiltered from the account's counters (exact, O(1)); filtered ones are counted up to
  ``TOTAL_COUNT_CAP`` rows (state.settings.total_count_cap, clarin.http.totals; ``total_capped``) and kept in Redis (clarin.cache.totals) until a contacts-scope
  event drops them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from clarin.crm.contacts import ContactFilter
from clarin.crm.filtering import Window, search_pattern
from clarin.db.queries import Query, query
from clarin.http.cursor import decode_cursor, encode_cursor
from clarin.http.errors import HTTPError
from clarin.http.totals import capped
from clarin.state import AppState

Q_PAGE = query("contacts_page")
Q_PAGE_TAGGED = query("contacts_page_tagged")
Q_PAGE_TAGGED_FILTERED = query("contacts_page_tagged_filtered")
Q_PAGE_SEARCH = query("contacts_page_search")
Q_PAGE_SEARCH_FILTERED = query("contacts_page_search_filtered")
Q_PAGE_UNFILTERED = query("contacts_page_unfiltered")
# Statements run with custom plans only (clarin.db.pool: unprepared; _page_row() reads this set, bench/explain.py
# judges these by their custom plan): a search's best plan depends on the term (a rare term reads the trigram
# index, a common one walks the keyset index), which a generic plan cannot know. Measured at 30k contacts / 5k
# chats, PostgreSQL's own choice after a few executions was the generic plan, 1,181 blocks / 76 ms for contacts
# ?search=519 (custom 707 blocks / 5 ms) and 12,510 blocks for chats ?search=5190 (custom 3,531).
CUSTOM_PLAN_QUERIES = frozenset({Q_PAGE.name, Q_PAGE_SEARCH.name, Q_PAGE_SEARCH_FILTERED.name})
TOTALS = "contacts"  # clarin.cache.totals list name
FIRST_KEY: tuple[bool, str, uuid.UUID] = (False, "", uuid.UUID(int=0))  # sorts before every contact


@dataclass(frozen=True, slots=True)
class ContactsPageResult:
    body: bytes  # JSON array of contacts
    total: int
    total_capped: bool
    next_cursor: str | None


async def _page_row(state: AppState, q: Query, params: list[Any]) -> tuple[Any, ...] | None:
    """One page statement; those in CUSTOM_PLAN_QUERIES planned for their parameter values (custom plans)."""
    if q.name in CUSTOM_PLAN_QUERIES:
        return await state.db.fetch_tuple_custom(q, params)
    return await state.db.fetch_tuple(q, params)


def parse_cursor(text: str) -> tuple[bool, str, uuid.UUID] | None:
    """``?cursor=`` of GET /api/contacts; ``""`` = none; anything but a cursor this route issued → 400."""
    if not text:
        return None
    key: tuple[bool, str, uuid.UUID] = decode_cursor(text, tuple[bool, str, uuid.UUID])
    if "\x00" in key[1]:  # PostgreSQL text cannot hold NUL: a forged cursor, not a driver error
        raise HTTPError(400, "Invalid cursor")
    return key


async def list_contacts(state: AppState, account_id: uuid.UUID, flt: ContactFilter, window: Window,
                        cursor: tuple[bool, str, uuid.UUID] | None = None) -> ContactsPageResult:
    pattern = search_pattern(flt.search)
    key = cursor or FIRST_KEY
    head: list[Any] = [account_id, flt.is_group, window.limit, window.offset, *key]
    filtered = bool(flt.device_id or flt.has_phone or flt.tags or flt.tag_ids)
    if not (pattern or filtered):
        row = await state.db.fetch_tuple(Q_PAGE_UNFILTERED, head)
        total, capped_total = (int(row[0] or 0) if row else 0), False
    else:
        count_cap = state.settings.total_count_cap
        signature = "|".join((str(flt.is_group), str(flt.device_id or ""), str(flt.has_phone),
                              ",".join(sorted(flt.tags or ())), ",".join(sorted(map(str, flt.tag_ids or ()))),
                              pattern, str(count_cap)))
        cached = await state.totals.get(account_id, TOTALS, signature)
        cap = count_cap if cached is None else 0  # 0: the statement counts nothing
        filters: list[Any] = [flt.device_id, flt.has_phone, flt.tags or None]
        if pattern and filtered:  # searches: custom plans (CUSTOM_PLAN_QUERIES), the best plan depends on the term
            row = await _page_row(state, Q_PAGE_SEARCH_FILTERED, [*head, *filters, flt.tag_ids or None, cap, pattern])
        elif pattern:
            row = await _page_row(state, Q_PAGE_SEARCH, [*head, pattern, cap])
        elif flt.tag_ids and not (flt.device_id or flt.has_phone or flt.tags):
            row = await _page_row(state, Q_PAGE_TAGGED, [*head, flt.tag_ids, cap])
        elif flt.tag_ids:
            row = await _page_row(state, Q_PAGE_TAGGED_FILTERED, [*head, *filters, flt.tag_ids, cap])
        else:
            row = await _page_row(state, Q_PAGE, [*head, *filters, cap])
        if cached is None:
            cached = int(row[0] or 0) if row else 0
            await state.totals.put(account_id, TOTALS, signature, cached)
        total, capped_total = capped(cached, count_cap)
    if row is None:
        return ContactsPageResult(b"[]", total, capped_total, None)
    _, body, more, last_null, last_text, last_id = row
    next_cursor = encode_cursor(bool(last_null), last_text, last_id) if more and last_id is not None else None
    return ContactsPageResult(body.encode(), total, capped_total, next_cursor)
