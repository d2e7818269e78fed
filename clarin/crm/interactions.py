"""Interaction rules (spec api.md §4.14 R98–R100, R45, R83; schema.md §3.19, §5.7).

- Every referenced id (contact, lead, event, participant) must be the caller's: else ``404`` with that
  object's message; an id that is not a UUID is a ``400`` (the original silently dropped it). A
  participant given without an event links the interaction to the participant's event; a participant of
  another event than the one given is a ``400``.
- The outcome's side effects on the participant (schema §5.7) run in the same transaction as the insert.
- Timelines are newest first, paginated (default 50, capped at 1000).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from clarin.crm.contacts import CONTACT_NOT_FOUND
from clarin.crm.events import EVENT_NOT_FOUND
from clarin.crm.filtering import Window, blank_to_none, strict_uuid
from clarin.crm.participants import PARTICIPANT_NOT_FOUND
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.state import AppState
from clarin.webhooks.recording import recording
from clarin.wire.interactions import Interaction, InteractionCreateBody

Q_REFS = query("interactions_refs")
Q_CREATE = query("interactions_create")
Q_APPLY = query("interactions_apply_to_participant")
Q_BY_PARTICIPANT = query("interactions_by_participant")
Q_BY_EVENT = query("interactions_by_event")
Q_BY_CONTACT = query("interactions_by_contact")
Q_BY_LEAD = query("interactions_by_lead")
Q_CONTACT_EXISTS = query("interactions_contact_exists")
Q_LEAD_EXISTS = query("interactions_lead_exists")
Q_DELETE = query("interactions_delete")

DEFAULT_LIMIT = 50
EVENT = "interaction_update"
LEAD_NOT_FOUND = "Lead not found"
INTERACTION_NOT_FOUND = "Interaction not found"
FILTER_REQUIRED = "Provide participant_id, event_id, contact_id, or lead_id query parameter"


@dataclass(frozen=True, slots=True)
class Created:
    interaction: Interaction
    participant: dict[str, Any] | None  # {id, event_id} of the participant the outcome updated


async def create_interaction(
    state: AppState, account_id: uuid.UUID, user_id: uuid.UUID, body: InteractionCreateBody
) -> Created:
    kind = body.type.strip()
    if not kind:
        raise HTTPError(400, "Type is required")
    contact_id = strict_uuid(body.contact_id, "Invalid contact ID")
    lead_id = strict_uuid(body.lead_id, "Invalid lead ID")
    event_id = strict_uuid(body.event_id, "Invalid event ID")
    participant_id = strict_uuid(body.participant_id, "Invalid participant ID")
    outcome = blank_to_none(body.outcome.strip() if body.outcome is not None else None)
    next_action = blank_to_none(body.next_action)
    async with recording(state, account_id) as rec, rec.transaction() as tx:
        refs = await tx.fetch_row(Q_REFS, [account_id, contact_id, lead_id, event_id, participant_id])
        assert refs is not None
        if not refs["contact_ok"]:
            raise HTTPError(404, CONTACT_NOT_FOUND)
        if not refs["lead_ok"]:
            raise HTTPError(404, LEAD_NOT_FOUND)
        if not refs["event_ok"]:
            raise HTTPError(404, EVENT_NOT_FOUND)
        if participant_id is not None:
            participant_event = refs["participant_event"]
            if participant_event is None:
                raise HTTPError(404, PARTICIPANT_NOT_FOUND)
            if event_id is None:
                event_id = uuid.UUID(str(participant_event))
            elif str(event_id) != str(participant_event):
                raise HTTPError(400, "Participant does not belong to this event")
        row = await tx.fetch_row(
            Q_CREATE,
            [account_id, contact_id, lead_id, event_id, participant_id, kind,
             blank_to_none(body.direction.strip() if body.direction is not None else None), outcome,
             blank_to_none(body.notes), next_action, body.next_action_date, user_id],
        )
        assert row is not None
        touched = None
        if participant_id is not None:
            copies_next = next_action is not None or body.next_action_date is not None
            touched = await tx.fetch_row(
                Q_APPLY, [account_id, participant_id, outcome or "", copies_next, next_action, body.next_action_date]
            )
        rec.emit(EVENT, payload("created", row["id"], row))
        if touched is not None:
            rec.emit("participant_update", {"action": "updated", "event_id": str(touched["event_id"]),
                                            "participant_id": str(touched["id"])})
    return Created(msgspec.convert(row, Interaction), touched)


async def list_by_filter(
    state: AppState, account_id: uuid.UUID, *, participant_id: uuid.UUID | None, event_id: uuid.UUID | None,
    contact_id: uuid.UUID | None, lead_id: uuid.UUID | None, window: Window,
) -> list[Interaction]:
    """R99: the first id given wins, in the original's priority; foreign ids simply match nothing."""
    for q, value in (
        (Q_BY_PARTICIPANT, participant_id), (Q_BY_EVENT, event_id), (Q_BY_CONTACT, contact_id), (Q_BY_LEAD, lead_id)
    ):
        if value is not None:
            rows = await state.db.fetch(q, [account_id, value, window.limit, window.offset])
            return msgspec.convert(rows, list[Interaction])
    raise HTTPError(400, FILTER_REQUIRED)


async def for_contact(state: AppState, account_id: uuid.UUID, contact_id: uuid.UUID, window: Window) -> list[
    Interaction
]:
    if not await state.db.fetch_val(Q_CONTACT_EXISTS, [account_id, contact_id]):
        raise HTTPError(404, CONTACT_NOT_FOUND)
    rows = await state.db.fetch(Q_BY_CONTACT, [account_id, contact_id, window.limit, window.offset])
    return msgspec.convert(rows, list[Interaction])


async def for_lead(state: AppState, account_id: uuid.UUID, lead_id: uuid.UUID, window: Window) -> list[Interaction]:
    if not await state.db.fetch_val(Q_LEAD_EXISTS, [account_id, lead_id]):
        raise HTTPError(404, LEAD_NOT_FOUND)
    rows = await state.db.fetch(Q_BY_LEAD, [account_id, lead_id, window.limit, window.offset])
    return msgspec.convert(rows, list[Interaction])


async def delete_interaction(state: AppState, account_id: uuid.UUID, interaction_id: uuid.UUID) -> dict[str, Any]:
    async with recording(state, account_id) as rec:
        row = await rec.db.fetch_row(Q_DELETE, [account_id, interaction_id])
        if row is None:
            raise HTTPError(404, INTERACTION_NOT_FOUND)
        rec.emit(EVENT, payload("deleted", interaction_id, row))
    return row


def payload(action: str, interaction_id: object, row: dict[str, Any]) -> dict[str, str]:
    """``interaction_update``: the optional keys only when the interaction points at one."""
    data = {"action": action, "interaction_id": str(interaction_id)}
    for key in ("contact_id", "lead_id", "event_id"):
        value = row.get(key)
        if value is not None:
            data[key] = str(value)
    return data
