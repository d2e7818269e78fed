"""Tags and their links to contacts, leads, chats and event participants (spec §4.9, R54–R60), fixed:

- every statement is scoped to the caller's account (participants through their event); unknown or foreign
  tag / entity IDs → 404, an unknown entity type → 400 (the original answered 500);
- a duplicate name in the account → 409, never a 500; updates change only the fields sent and answer with the
  stored tag;
- assign/remove are idempotent single statements that also tell which side was missing;
- tag edits/deletes and lead links drop the leads cache (leads embed ``structured_tags``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from clarin.crm import text_fields
from clarin.crm.leads_cache import invalidate_leads
from clarin.db.errors import UniqueViolation
from clarin.db.queries import Query, query
from clarin.http.errors import HTTPError
from clarin.http.request import parse_uuid
from clarin.state import AppState
from clarin.webhooks.recording import recording
from clarin.wire.tags import Tag, TagAssignBody, TagCreateBody, TagUpdateBody

Q_LIST = query("tags_list")
Q_CREATE = query("tag_create")
Q_UPDATE = query("tag_update")
Q_DELETE = query("tag_delete")


@dataclass(frozen=True, slots=True)
class EntityKind:
    assign: Query
    remove: Query
    tags_of: Query
    not_found: str


ENTITY_KINDS: dict[str, EntityKind] = {
    "contact": EntityKind(
        query("tag_assign_contact"), query("tag_remove_contact"), query("tags_of_contact"), "Contact not found"
    ),
    "lead": EntityKind(query("tag_assign_lead"), query("tag_remove_lead"), query("tags_of_lead"), "Lead not found"),
    "chat": EntityKind(query("tag_assign_chat"), query("tag_remove_chat"), query("tags_of_chat"), "Chat not found"),
    "participant": EntityKind(
        query("tag_assign_participant"), query("tag_remove_participant"), query("tags_of_participant"),
        "Participant not found",
    ),
}

MAX_TAGS = 1000
DEFAULT_COLOR = "#6366f1"
NAME_MAX = 100
COLOR_MAX = 20
TAG_NOT_FOUND = "Tag not found"
NAME_REQUIRED = "Name is required"
DUPLICATE_NAME = "A tag with this name already exists"

TAG_EVENT = "tag_update"
ASSIGNMENT_EVENT = "tag_assignment"
LEAD_EVENT = "lead_update"


async def list_tags(state: AppState, account_id: uuid.UUID, limit: int, offset: int) -> list[Tag]:
    rows = await state.db.fetch(Q_LIST, [account_id, limit, offset])
    return msgspec.convert(rows, list[Tag])


async def create_tag(state: AppState, account_id: uuid.UUID, body: TagCreateBody) -> Tag:
    name = text_fields.required(body.name, NAME_REQUIRED, "Name", NAME_MAX)
    color = text_fields.checked(body.color.strip(), "Color", COLOR_MAX) or DEFAULT_COLOR
    try:
        async with recording(state, account_id) as rec:
            row = await rec.db.fetch_row(Q_CREATE, [account_id, name, color])
            if row is None:
                raise HTTPError(409, DUPLICATE_NAME)
            tag = msgspec.convert(row, Tag)
            rec.emit(TAG_EVENT, {"action": "created", "tag_id": tag.id})
    except UniqueViolation:  # e.g. a future unique index; the name conflict itself returns no row
        raise HTTPError(409, DUPLICATE_NAME) from None
    return tag


async def update_tag(state: AppState, account_id: uuid.UUID, tag_id: uuid.UUID, body: TagUpdateBody) -> Tag:
    name = text_fields.optional(body.name, NAME_REQUIRED, "Name", NAME_MAX)
    color = text_fields.optional(body.color, "Color cannot be empty", "Color", COLOR_MAX)
    try:
        async with recording(state, account_id) as rec:
            row = await rec.db.fetch_row(Q_UPDATE, [tag_id, account_id, name, color])
            if row is None:
                raise HTTPError(404, TAG_NOT_FOUND)
            tag = msgspec.convert(row, Tag)
            rec.on_commit(lambda: invalidate_leads(state, account_id))  # leads embed tag name and color
            rec.emit(TAG_EVENT, {"action": "updated", "tag_id": tag.id})
    except UniqueViolation:
        raise HTTPError(409, DUPLICATE_NAME) from None
    return tag


async def delete_tag(state: AppState, account_id: uuid.UUID, tag_id: uuid.UUID) -> None:
    # All four junctions (contact/lead/chat/participant_tags) reference tags ON DELETE CASCADE: one statement.
    async with recording(state, account_id) as rec:
        if await rec.db.fetch_val(Q_DELETE, [tag_id, account_id]) is None:
            raise HTTPError(404, TAG_NOT_FOUND)
        rec.on_commit(lambda: invalidate_leads(state, account_id))
        rec.emit(TAG_EVENT, {"action": "deleted", "tag_id": str(tag_id)})


async def assign_tag(state: AppState, account_id: uuid.UUID, body: TagAssignBody) -> None:
    await _link(state, account_id, body, "assigned")


async def remove_tag(state: AppState, account_id: uuid.UUID, body: TagAssignBody) -> None:
    await _link(state, account_id, body, "removed")


async def entity_tags(state: AppState, account_id: uuid.UUID, entity_type: str, entity_id: uuid.UUID) -> list[Tag]:
    kind = entity_kind(entity_type)
    rows = await state.db.fetch(kind.tags_of, [entity_id, account_id])
    if not rows:
        raise HTTPError(404, kind.not_found)
    return msgspec.convert([row for row in rows if row["id"] is not None], list[Tag])


def entity_kind(entity_type: str) -> EntityKind:
    kind = ENTITY_KINDS.get(entity_type)
    if kind is None:
        raise HTTPError(400, f"invalid entity type: {entity_type}")
    return kind


async def _link(state: AppState, account_id: uuid.UUID, body: TagAssignBody, action: str) -> None:
    entity_id = parse_uuid(body.entity_id, "Invalid entity ID")
    tag_id = parse_uuid(body.tag_id, "Invalid tag ID")
    kind = entity_kind(body.entity_type)
    statement = kind.assign if action == "assigned" else kind.remove
    async with recording(state, account_id) as rec:
        result: dict[str, Any] | None = await rec.db.fetch_row(statement, [entity_id, tag_id, account_id])
        if result is None or not result["entity_found"]:
            raise HTTPError(404, kind.not_found)
        if not result["tag_found"]:
            raise HTTPError(404, TAG_NOT_FOUND)
        if not result["changed"]:
            return  # idempotent: already linked / not linked, nothing to announce
        is_lead = body.entity_type == "lead"
        if is_lead:
            rec.on_commit(lambda: invalidate_leads(state, account_id))
        rec.emit(ASSIGNMENT_EVENT, {"action": action, "entity_type": body.entity_type, "entity_id": str(entity_id),
                                    "tag_id": str(tag_id)})
        if is_lead:
            rec.emit(LEAD_EVENT, {"action": "tags_changed", "lead_id": str(entity_id)})
