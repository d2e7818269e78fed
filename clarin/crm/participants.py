"""Event participant rules (spec api.md §4.13 R87, R91–R96; schema.md §3.18, §5.5, §5.7).

- A participant is addressed through its event: ``/events/:id/participants/:pid`` must name the caller's
  event and a participant of that event, else ``404 Participant not found`` (the original ignored ``:id``).
- Uniqueness per event (phone, email, contact) → ``409`` with the original's texts, mapped from the
  violated index name; the bulk add is one ``unnest`` insert that skips those rows and reports them.
- ``tags`` is always an array, loaded for a whole list in one query.
- A participant edit syncs into its linked contact (schema §5.5) in the same transaction; deletes remove
  the participant's interactions in the same transaction (as the original, hard delete).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from clarin._speedups import group_rows
from clarin.crm.contacts import CONTACT_NOT_FOUND, participant_conflict
from clarin.crm.events import EVENT_NOT_FOUND, NAME_REQUIRED
from clarin.crm.filtering import Window, blank_to_none, like_pattern, strict_uuid
from clarin.db.errors import UniqueViolation
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.state import AppState
from clarin.webhooks.recording import Recorder, recording
from clarin.wire.events import Participant, ParticipantInput, ParticipantUpdateBody

Q_PAGE = query("participants_page")
Q_TAGS_FOR = query("participants_tags_for")
Q_UPCOMING = query("participants_upcoming")
Q_EVENT_LOCK = query("participants_event_lock")
Q_OWNED_CONTACTS = query("participants_owned_contacts")
Q_CREATE = query("participants_create")
Q_BULK_CREATE = query("participants_bulk_create")
Q_GET = query("participants_get")
Q_LOCK = query("participants_lock")
Q_UPDATE = query("participants_update")
Q_SYNC_CONTACT = query("participants_sync_contact")
Q_SET_STATUS = query("participants_set_status")
Q_DELETE_INTERACTIONS = query("participants_delete_interactions")
Q_DELETE = query("participants_delete")
EVENT = "participant_update"

PARTICIPANT_NOT_FOUND = "Participant not found"
INVALID_CONTACT_ID = "Invalid contact ID"
MAX_BULK = 5000
TAG_FIELDS = ("id", "account_id", "name", "color", "created_at", "updated_at")


@dataclass(frozen=True, slots=True)
class ParticipantFilter:
    status: str = ""
    search: str = ""
    tag_ids: list[uuid.UUID] | None = None
    has_phone: bool = False


@dataclass(frozen=True, slots=True)
class BulkResult:
    submitted: int
    added: int


# -- reads --------------------------------------------------------------------------------------------------
async def list_participants(
    state: AppState, account_id: uuid.UUID, event_id: uuid.UUID, flt: ParticipantFilter, window: Window
) -> tuple[list[Participant], int]:
    rows = await state.db.fetch(
        Q_PAGE,
        [account_id, event_id, flt.status.strip(), like_pattern(flt.search), flt.tag_ids or None, flt.has_phone,
         window.limit, window.offset],
    )
    if not rows:
        raise HTTPError(404, EVENT_NOT_FOUND)
    total = int(rows[0]["total"])
    return await with_tags(state, account_id, [row for row in rows if row["id"] is not None]), total


async def upcoming_actions(state: AppState, account_id: uuid.UUID, limit: int) -> list[Participant]:
    return await with_tags(state, account_id, await state.db.fetch(Q_UPCOMING, [account_id, limit]))


# -- writes -------------------------------------------------------------------------------------------------
async def add_participant(
    state: AppState, account_id: uuid.UUID, event_id: uuid.UUID, body: ParticipantInput
) -> Participant:
    name = body.name.strip()
    if not name:
        raise HTTPError(400, NAME_REQUIRED)
    contact_id = strict_uuid(body.contact_id, INVALID_CONTACT_ID)
    try:
        async with recording(state, account_id) as rec, rec.transaction() as tx:
            if await tx.fetch_row(Q_EVENT_LOCK, [account_id, event_id]) is None:
                raise HTTPError(404, EVENT_NOT_FOUND)
            if contact_id is not None and not await tx.fetch(Q_OWNED_CONTACTS, [account_id, [contact_id]]):
                raise HTTPError(404, CONTACT_NOT_FOUND)
            row = await tx.fetch_row(Q_CREATE, [event_id, contact_id, name, *_optional_fields(body)])
            assert row is not None
            _changed(rec, "created", event_id, participant_id=str(row["id"]))
    except UniqueViolation as exc:
        raise participant_conflict(exc) from None
    assert row is not None
    return msgspec.convert({**row, "tags": []}, Participant)


async def add_participants_bulk(
    state: AppState, account_id: uuid.UUID, event_id: uuid.UUID, items: list[ParticipantInput]
) -> BulkResult:
    if len(items) > MAX_BULK:
        raise HTTPError(400, f"at most {MAX_BULK} participants per request")
    names: list[str] = []
    contact_ids: list[uuid.UUID | None] = []
    for index, item in enumerate(items, start=1):
        name = item.name.strip()
        if not name:
            raise HTTPError(400, f"{NAME_REQUIRED} (participant {index})")
        names.append(name)
        contact_ids.append(strict_uuid(item.contact_id, f"{INVALID_CONTACT_ID} (participant {index})"))
    fields = [_optional_fields(item) for item in items]
    wanted = list({cid for cid in contact_ids if cid is not None})
    async with recording(state, account_id) as rec, rec.transaction() as tx:
        if await tx.fetch_row(Q_EVENT_LOCK, [account_id, event_id]) is None:
            raise HTTPError(404, EVENT_NOT_FOUND)
        if not items:
            return BulkResult(submitted=0, added=0)
        if wanted:
            owned = await tx.fetch(Q_OWNED_CONTACTS, [account_id, wanted])
            if len(owned) != len(wanted):
                raise HTTPError(404, CONTACT_NOT_FOUND)
        inserted = await tx.fetch(
            Q_BULK_CREATE,
            [event_id, contact_ids, names, *([f[i] for f in fields] for i in range(5))],
        )
        if inserted:
            _changed(rec, "bulk_created", event_id, count=len(inserted))
    return BulkResult(submitted=len(items), added=len(inserted))


async def update_participant(
    state: AppState, account_id: uuid.UUID, event_id: uuid.UUID, participant_id: uuid.UUID,
    body: ParticipantUpdateBody,
) -> tuple[Participant, str | None]:
    """Returns the participant and the id of the contact the edit was synced into (if linked)."""
    if body.name is not None and not body.name.strip():
        raise HTTPError(400, NAME_REQUIRED)
    params = [
        account_id, event_id, participant_id,
        _strip(body.name), _strip(body.last_name), _strip(body.short_name), _strip(body.phone),
        _strip(body.email), body.notes, body.next_action, body.age, body.next_action_date,
    ]
    try:
        async with recording(state, account_id) as rec, rec.transaction() as tx:
            row = await tx.fetch_row(Q_UPDATE, params)
            if row is None:
                raise HTTPError(404, PARTICIPANT_NOT_FOUND)
            synced = await tx.fetch_val(Q_SYNC_CONTACT, [account_id, participant_id])
            _changed(rec, "updated", event_id, participant_id=str(row["id"]))
            if synced is not None:
                rec.emit("contact_update", {"action": "updated", "contact_id": str(synced)})
    except UniqueViolation as exc:
        raise participant_conflict(exc) from None
    participant = (await with_tags(state, account_id, [row]))[0]
    return participant, str(synced) if synced is not None else None


async def set_status(
    state: AppState, account_id: uuid.UUID, event_id: uuid.UUID, participant_id: uuid.UUID, status: str
) -> None:
    status = status.strip()
    if not status:
        raise HTTPError(400, "Status is required")
    async with recording(state, account_id) as rec:
        if await rec.db.fetch_val(Q_SET_STATUS, [account_id, event_id, participant_id, status]) is None:
            raise HTTPError(404, PARTICIPANT_NOT_FOUND)
        _changed(rec, "status_changed", event_id, participant_id=str(participant_id))


async def delete_participant(
    state: AppState, account_id: uuid.UUID, event_id: uuid.UUID, participant_id: uuid.UUID
) -> None:
    async with recording(state, account_id) as rec, rec.transaction() as tx:
        if await tx.fetch_row(Q_LOCK, [account_id, event_id, participant_id]) is None:
            raise HTTPError(404, PARTICIPANT_NOT_FOUND)
        await tx.execute(Q_DELETE_INTERACTIONS, [account_id, participant_id])
        await tx.execute(Q_DELETE, [account_id, event_id, participant_id])
        _changed(rec, "deleted", event_id, participant_id=str(participant_id))


# -- helpers ------------------------------------------------------------------------------------------------
def _changed(rec: Recorder, action: str, event_id: uuid.UUID, **extra: object) -> None:
    payload: dict[str, object] = {"action": action, "event_id": str(event_id)}
    payload.update(extra)
    rec.emit(EVENT, payload)


async def with_tags(state: AppState, account_id: uuid.UUID, rows: list[dict[str, Any]]) -> list[Participant]:
    """Attach ``tags`` (always a list) to participant rows with one query for all of them."""
    if not rows:
        return []
    tag_rows = await state.db.fetch(Q_TAGS_FOR, [account_id, [uuid.UUID(str(row["id"])) for row in rows]])
    tags = group_rows(tag_rows, "participant_id", TAG_FIELDS)
    return [msgspec.convert({**row, "tags": tags.get(row["id"], [])}, Participant) for row in rows]


def _optional_fields(item: ParticipantInput) -> list[Any]:
    """last_name, short_name, phone, email (blank → NULL), age — in the insert's column order."""
    return [
        blank_to_none(_strip(item.last_name)), blank_to_none(_strip(item.short_name)),
        blank_to_none(_strip(item.phone)), blank_to_none(_strip(item.email)), item.age,
    ]


def _strip(value: str | None) -> str | None:
    return value.strip() if value is not None else None
