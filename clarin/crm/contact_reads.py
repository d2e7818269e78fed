"""R27 ``GET /api/contacts``: the page, its total and the page's tags (one query each), in the wire shape.

Split from :mod:`clarin.crm.contacts` (the write rules): a hot dashboard read.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from clarin._speedups import group_rows
from clarin.crm.contacts import TAG_FIELDS, ContactFilter
from clarin.crm.filtering import Window, like_pattern
from clarin.db.queries import query
from clarin.state import AppState
from clarin.wire.contacts import Contact

Q_PAGE = query("contacts_page")
Q_PAGE_SEARCH = query("contacts_page_search")
Q_TAGS_FOR = query("contacts_tags_for_contacts")


async def list_contacts(state: AppState, account_id: uuid.UUID, flt: ContactFilter, window: Window) -> tuple[
    list[Contact], int
]:
    params: list[Any] = [
        account_id, flt.is_group, flt.device_id, flt.has_phone, flt.tags or None, flt.tag_ids or None,
        window.limit, window.offset,
    ]
    pattern = like_pattern(flt.search)
    if pattern:
        rows = await state.db.fetch(Q_PAGE_SEARCH, [*params, pattern])
    else:
        rows = await state.db.fetch(Q_PAGE, params)
    total = int(rows[0]["total"]) if rows else 0
    page = [row for row in rows if row["id"] is not None]
    return await _with_tags(state, account_id, page), total


async def _with_tags(state: AppState, account_id: uuid.UUID, rows: list[dict[str, Any]]) -> list[Contact]:
    if not rows:
        return []
    tag_rows = await state.db.fetch(Q_TAGS_FOR, [account_id, [uuid.UUID(str(row["id"])) for row in rows]])
    tags = group_rows(tag_rows, "contact_id", TAG_FIELDS)
    out = []
    for row in rows:
        own = tags.get(row["id"])
        out.append(msgspec.convert({**row, "structured_tags": own} if own else row, Contact))
    return out
