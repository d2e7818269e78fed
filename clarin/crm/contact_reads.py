"""R75 ``GET /api/contacts``: the page, its total and the page's tags in one statement that also builds the JSON.

Split from :mod:`clarin.crm.contacts` (the write rules): a hot dashboard read.
"""

from __future__ import annotations

import uuid
from typing import Any

from clarin.crm.contacts import ContactFilter
from clarin.crm.filtering import Window, like_pattern
from clarin.db.queries import query
from clarin.state import AppState

Q_PAGE = query("contacts_page")
Q_PAGE_SEARCH = query("contacts_page_search")
Q_PAGE_UNFILTERED = query("contacts_page_unfiltered")
TOTALS = "contacts"  # clarin.cache.totals list name


async def list_contacts(state: AppState, account_id: uuid.UUID, flt: ContactFilter, window: Window) -> tuple[
    bytes, int
]:
    """The page's JSON array of contacts (tags included, built by PostgreSQL) and the filter's total: without a
    filter the account's counter (exact, O(1), 0009_account_counters.sql), else counted only when it is not cached
    (clarin.cache.totals)."""
    pattern = like_pattern(flt.search)
    if not (pattern or flt.device_id or flt.has_phone or flt.tags or flt.tag_ids):
        row = await state.db.fetch_tuple(Q_PAGE_UNFILTERED, [account_id, flt.is_group, window.limit, window.offset])
        total, contacts = row if row is not None else (0, "[]")
        return contacts.encode(), int(total or 0)
    signature = "|".join((str(flt.is_group), str(flt.device_id or ""), str(flt.has_phone),
                          ",".join(sorted(flt.tags or ())), ",".join(sorted(map(str, flt.tag_ids or ()))),
                          flt.search))
    cached = await state.totals.get(account_id, TOTALS, signature)
    params: list[Any] = [
        account_id, flt.is_group, flt.device_id, flt.has_phone, flt.tags or None, flt.tag_ids or None,
        window.limit, window.offset,
    ]
    if pattern:
        row = await state.db.fetch_tuple(Q_PAGE_SEARCH, [*params, pattern, cached is None])
    else:
        row = await state.db.fetch_tuple(Q_PAGE, [*params, cached is None])
    counted, contacts = row if row is not None else (None, "[]")
    if cached is None:
        cached = int(counted or 0)
        await state.totals.put(account_id, TOTALS, signature, cached)
    return contacts.encode(), cached
