"""Event rules (spec api.md §4.13 R85–R90, R84; schema.md §3.17, §5.2), with the original's flaws fixed.

- Tenant-scoped everywhere; unknown or foreign ids are ``404 Event not found``.
- ``participant_counts``/``total_participants`` for a whole page come from one grouped query (the original
  ran one count query per event); the list counts its total in the same round trip as the page.
- Updates change only the keys sent; ``event_end`` may not precede ``event_date``.
- Delete is one transaction: the event's interactions (hard-deleted, as the original), participants, event.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec

from clarin.crm.contacts import CONTACT_NOT_FOUND
from clarin.crm.filtering import Window, blank_to_none, like_pattern
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.http.paging import MAX_LIMIT
from clarin.state import AppState
from clarin.webhooks.recording import recording
from clarin.wire.events import Event, EventCreateBody, EventUpdateBody

EVENT = "event_update"

Q_PAGE = query("events_page")
Q_COUNTS = query("events_participant_counts")
Q_CREATE = query("events_create")
Q_GET = query("events_get")
Q_GET_FOR_UPDATE = query("events_get_for_update")
Q_UPDATE = query("events_update")
Q_DELETE_INTERACTIONS = query("events_delete_interactions")
Q_DELETE_PARTICIPANTS = query("events_delete_participants")
Q_DELETE = query("events_delete")
Q_OF_CONTACT = query("events_of_contact")

EVENT_NOT_FOUND = "Event not found"
NAME_REQUIRED = "Name is required"
DEFAULT_STATUS = "active"
DEFAULT_COLOR = "#3b82f6"


async def list_events(
    state: AppState, account_id: uuid.UUID, status: str, search: str, window: Window
) -> tuple[list[Event], int]:
    rows = await state.db.fetch(
        Q_PAGE, [account_id, status.strip(), like_pattern(search), window.limit, window.offset]
    )
    total = int(rows[0]["total"]) if rows else 0
    return await with_counts(state, account_id, [row for row in rows if row["id"] is not None]), total


async def get_event(state: AppState, account_id: uuid.UUID, event_id: uuid.UUID) -> Event:
    row = await state.db.fetch_row(Q_GET, [account_id, event_id])
    if row is None:
        raise HTTPError(404, EVENT_NOT_FOUND)
    return (await with_counts(state, account_id, [row]))[0]


async def events_of_contact(state: AppState, account_id: uuid.UUID, contact_id: uuid.UUID) -> list[Event]:
    rows = await state.db.fetch(Q_OF_CONTACT, [account_id, contact_id, MAX_LIMIT])
    if not rows:
        raise HTTPError(404, CONTACT_NOT_FOUND)
    return await with_counts(state, account_id, [row for row in rows if row["id"] is not None])


async def create_event(state: AppState, account_id: uuid.UUID, user_id: uuid.UUID, body: EventCreateBody) -> Event:
    name = body.name.strip()
    if not name:
        raise HTTPError(400, NAME_REQUIRED)
    _check_dates(body.event_date, body.event_end)
    async with recording(state, account_id) as rec:
        row = await rec.db.fetch_row(
            Q_CREATE,
            [
                account_id, name, blank_to_none(body.description), body.event_date, body.event_end,
                blank_to_none(body.location), (body.status or "").strip() or DEFAULT_STATUS,
                (body.color or "").strip() or DEFAULT_COLOR, user_id,
            ],
        )
        assert row is not None
        rec.emit(EVENT, {"action": "created", "event_id": str(row["id"])})
    return msgspec.convert({**row, "total_participants": 0}, Event)


async def update_event(state: AppState, account_id: uuid.UUID, event_id: uuid.UUID, body: EventUpdateBody) -> Event:
    if body.name is not None and not body.name.strip():
        raise HTTPError(400, NAME_REQUIRED)
    async with recording(state, account_id) as rec, rec.transaction() as tx:
        current = await tx.fetch_row(Q_GET_FOR_UPDATE, [account_id, event_id])
        if current is None:
            raise HTTPError(404, EVENT_NOT_FOUND)
        merged = {
            "name": body.name.strip() if body.name is not None else current["name"],
            "description": _clearable(body.description, current["description"]),
            "event_date": body.event_date if body.event_date is not None else current["event_date"],
            "event_end": body.event_end if body.event_end is not None else current["event_end"],
            "location": _clearable(body.location, current["location"]),
            "status": (body.status or "").strip() or current["status"],
            "color": (body.color or "").strip() or current["color"],
        }
        _check_dates(merged["event_date"], merged["event_end"])
        row = await tx.fetch_row(
            Q_UPDATE,
            [account_id, event_id, merged["name"], merged["description"], merged["event_date"], merged["event_end"],
             merged["location"], merged["status"], merged["color"]],
        )
        assert row is not None
        rec.emit(EVENT, {"action": "updated", "event_id": str(row["id"])})
    return (await with_counts(state, account_id, [row]))[0]


async def delete_event(state: AppState, account_id: uuid.UUID, event_id: uuid.UUID) -> None:
    async with recording(state, account_id) as rec, rec.transaction() as tx:
        if await tx.fetch_row(Q_GET_FOR_UPDATE, [account_id, event_id]) is None:
            raise HTTPError(404, EVENT_NOT_FOUND)
        await tx.execute(Q_DELETE_INTERACTIONS, [account_id, event_id])
        await tx.execute(Q_DELETE_PARTICIPANTS, [account_id, event_id])
        await tx.execute(Q_DELETE, [account_id, event_id])
        rec.emit(EVENT, {"action": "deleted", "event_id": str(event_id)})


async def with_counts(state: AppState, account_id: uuid.UUID, rows: list[dict[str, Any]]) -> list[Event]:
    """Attach participant_counts / total_participants to a page of event rows with one grouped query."""
    if not rows:
        return []
    count_rows = await state.db.fetch(Q_COUNTS, [account_id, [uuid.UUID(str(row["id"])) for row in rows]])
    counts: dict[str, dict[str, int]] = {}
    for item in count_rows:
        counts.setdefault(str(item["event_id"]), {})[item["status"]] = int(item["n"])
    out = []
    for row in rows:
        own = counts.get(str(row["id"]), {})
        out.append(
            msgspec.convert({**row, "participant_counts": own, "total_participants": sum(own.values())}, Event)
        )
    return out


def _clearable(value: str | None, current: str | None) -> str | None:
    """Absent (None) keeps the column; ``""`` clears it; anything else replaces it."""
    if value is None:
        return current
    return blank_to_none(value)


def _check_dates(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and end < start:
        raise HTTPError(400, "event_end must not be before event_date")
