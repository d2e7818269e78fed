"""Contact rules (spec api.md §4.12, schema.md §5.2, §5.5), with the original's flaws fixed.

- Every statement is scoped to the caller's account; foreign or unknown ids are ``404 contact not found``.
- The list loads ``structured_tags`` for the whole page in one query (not one per contact) and counts in the
  same round trip.
- An update writes only the keys sent and syncs the contact's fields to its linked participants and to
  the lead with the same JID in the same transaction; the leads cache is invalidated when a lead changed.
- Deletes only touch the caller's rows and report how many went.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from clarin._speedups import group_rows
from clarin.crm.leads_cache import invalidate_leads
from clarin.crm.phones import checked_phone
from clarin.db.errors import UniqueViolation
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.state import AppState
from clarin.webhooks.recording import Recorder, recording
from clarin.wire.contacts import Contact, ContactUpdateBody

Q_TAGS_FOR = query("contacts_tags_for_contacts")
Q_DUPLICATES = query("contacts_duplicates")
Q_GET = query("contacts_get")
Q_LOCK = query("contacts_lock")
Q_DEVICE_NAMES = query("contacts_device_names")
Q_UPDATE = query("contacts_update")
Q_SYNC_PARTICIPANTS = query("contacts_sync_participants")
Q_SYNC_LEAD = query("contacts_sync_lead")
Q_RESET = query("contacts_reset_from_device")
Q_DELETE = query("contacts_delete")

CONTACT_NOT_FOUND = "contact not found"
DUPLICATE_GROUPS_CAP = 500
TAG_FIELDS = ("id", "account_id", "name", "color", "created_at", "updated_at")

# Participant unique keys (schema §1.18) → the original's 409 texts.
PARTICIPANT_CONFLICTS = {
    "idx_event_participants_unique_phone": "Ya existe un participante con ese teléfono en este evento",
    "idx_event_participants_unique_email": "Ya existe un participante con ese email en este evento",
    "idx_event_participants_unique_contact": "Este contacto ya está registrado en este evento",
}


def participant_conflict(exc: UniqueViolation) -> HTTPError:
    message = PARTICIPANT_CONFLICTS.get(exc.constraint, "Uno o más participantes ya están registrados en este evento")
    return HTTPError(409, message)


@dataclass(frozen=True, slots=True)
class ContactFilter:
    search: str = ""
    is_group: bool = False
    device_id: uuid.UUID | None = None
    has_phone: bool = False
    tags: list[str] | None = None
    tag_ids: list[uuid.UUID] | None = None


# -- reads --------------------------------------------------------------------------------------------------
async def duplicates(state: AppState, account_id: uuid.UUID) -> list[list[Contact]]:
    rows = await state.db.fetch(Q_DUPLICATES, [account_id, DUPLICATE_GROUPS_CAP])
    groups = group_rows(rows, "phone")
    return [msgspec.convert(members, list[Contact]) for members in groups.values()]


async def get_contact(state: AppState, account_id: uuid.UUID, contact_id: uuid.UUID) -> Contact:
    row = await state.db.fetch_row(Q_GET, [account_id, contact_id])
    if row is None:
        raise HTTPError(404, CONTACT_NOT_FOUND)
    return await _detailed(state, account_id, row)


async def ensure_contact(executor: Any, account_id: uuid.UUID, contact_id: uuid.UUID) -> None:
    if await executor.fetch_row(Q_GET, [account_id, contact_id]) is None:
        raise HTTPError(404, CONTACT_NOT_FOUND)


# -- writes -------------------------------------------------------------------------------------------------
async def update_contact(
    state: AppState, account_id: uuid.UUID, contact_id: uuid.UUID, body: ContactUpdateBody
) -> Contact:
    phone = _name(body.phone)
    if phone:  # "" clears it; anything else must be a phone (the rule of clarin.crm.phones)
        checked_phone(phone)
    params = [
        account_id, contact_id,
        _name(body.custom_name), _name(body.last_name), _name(body.short_name), phone,
        _name(body.email), _name(body.company), body.notes, body.age,
        [tag.strip() for tag in body.tags if tag.strip()] if body.tags is not None else None,
    ]
    try:
        async with recording(state, account_id) as rec, rec.transaction() as tx:
            row = await tx.fetch_row(Q_UPDATE, params)
            if row is None:
                raise HTTPError(404, CONTACT_NOT_FOUND)
            participants = await tx.fetch(Q_SYNC_PARTICIPANTS, [account_id, contact_id])
            leads = await tx.fetch(Q_SYNC_LEAD, [account_id, contact_id])
            lead_ids = [str(lead["id"]) for lead in leads]
            rec.emit("contact_update", {"action": "updated", "contact_id": str(row["id"])})
            leads_changed(state, rec, account_id, lead_ids)
            for participant in participants:
                rec.emit("participant_update", {"action": "updated", "event_id": str(participant["event_id"]),
                                                "participant_id": str(participant["id"])})
    except UniqueViolation as exc:
        # The new phone/email clashes with another participant of an event this contact attends.
        raise participant_conflict(exc) from None
    return await _detailed(state, account_id, row)


async def reset_contact(state: AppState, account_id: uuid.UUID, contact_id: uuid.UUID) -> Contact:
    async with recording(state, account_id) as rec, rec.transaction() as tx:
        if await tx.fetch_row(Q_LOCK, [account_id, contact_id]) is None:
            raise HTTPError(404, CONTACT_NOT_FOUND)
        row = await tx.fetch_row(Q_RESET, [account_id, contact_id])
        if row is None:
            raise HTTPError(400, "no device names available to reset from")
        rec.emit("contact_update", {"action": "reset", "contact_id": str(row["id"])})
    return await _detailed(state, account_id, row)


async def delete_contacts(state: AppState, account_id: uuid.UUID, ids: list[uuid.UUID], *, one: bool = False
                          ) -> list[str]:
    """Delete the caller's contacts among ``ids`` and announce it (``one``: the single-contact route's event);
    returns the deleted ids."""
    async with recording(state, account_id) as rec:
        row = await rec.db.fetch_row(Q_DELETE, [account_id, list(dict.fromkeys(ids))])
        assert row is not None
        deleted = [str(value) for value in row["ids"]]
        if deleted:
            rec.on_commit(lambda: invalidate_leads(state, account_id))
            if one:
                rec.emit("contact_update", {"action": "deleted", "contact_id": deleted[0]})
            else:
                rec.emit("contact_update", {"action": "batch_deleted", "ids": deleted})
        lead_ids = [str(value) for value in row["lead_ids"]]
        if lead_ids:  # only with deleted contacts: the cache drop above covers them
            rec.emit("lead_update", {"action": "updated", "ids": lead_ids})
    return deleted


def leads_changed(state: AppState, rec: Recorder, account_id: uuid.UUID, lead_ids: list[str]) -> None:
    """Leads synced from a contact write: ``lead_update {action: "updated", ids}`` after the board cache drop."""
    if lead_ids:
        rec.on_commit(lambda: invalidate_leads(state, account_id))
        rec.emit("lead_update", {"action": "updated", "ids": lead_ids})


# -- helpers ------------------------------------------------------------------------------------------------
def _name(value: str | None) -> str | None:
    """Absent stays None (column kept); a sent value is trimmed ('' clears the column)."""
    return value.strip() if value is not None else None


async def _detailed(state: AppState, account_id: uuid.UUID, row: dict[str, Any]) -> Contact:
    contact_id = uuid.UUID(str(row["id"]))
    names = await state.db.fetch(Q_DEVICE_NAMES, [account_id, contact_id])
    tag_rows = await state.db.fetch(Q_TAGS_FOR, [account_id, [contact_id]])
    extra: dict[str, Any] = {}
    if names:
        extra["device_names"] = names
    if tag_rows:
        extra["structured_tags"] = [{field: tag[field] for field in TAG_FIELDS} for tag in tag_rows]
    return msgspec.convert({**row, **extra}, Contact)
