"""Quick replies (spec §4.15, R101–R104): canned messages of an account, fixed so that every statement is
scoped to the caller's account (foreign or unknown IDs → 404), shortcut/title/body are validated on create,
and updates change only the fields sent and answer with the stored row."""

from __future__ import annotations

import uuid

import msgspec

from clarin.crm import text_fields
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.state import AppState
from clarin.webhooks.recording import recording
from clarin.wire.quick_replies import QuickReply, QuickReplyCreateBody, QuickReplyUpdateBody

Q_LIST = query("quick_replies_list")
Q_CREATE = query("quick_reply_create")
Q_UPDATE = query("quick_reply_update")
Q_DELETE = query("quick_reply_delete")

MAX_QUICK_REPLIES = 1000
SHORTCUT_MAX = 100
TITLE_MAX = 255
NOT_FOUND = "Quick reply not found"
REQUIRED = "Shortcut and body are required"
TITLE_REQUIRED = "Title is required"
EVENT = "quick_reply_update"


async def list_quick_replies(state: AppState, account_id: uuid.UUID, limit: int, offset: int) -> list[QuickReply]:
    rows = await state.db.fetch(Q_LIST, [account_id, limit, offset])
    return msgspec.convert(rows, list[QuickReply])


async def create_quick_reply(state: AppState, account_id: uuid.UUID, body: QuickReplyCreateBody) -> QuickReply:
    shortcut = text_fields.required(body.shortcut, REQUIRED, "Shortcut", SHORTCUT_MAX)
    text = text_fields.required(body.body, REQUIRED, "Body", None, strip=False)
    title = text_fields.required(body.title, TITLE_REQUIRED, "Title", TITLE_MAX)
    async with recording(state, account_id) as rec:
        row = await rec.db.fetch_row(Q_CREATE, [account_id, shortcut, title, text])
        reply = msgspec.convert(row, QuickReply)
        rec.emit(EVENT, {"action": "created", "quick_reply_id": reply.id})
    return reply


async def update_quick_reply(
    state: AppState, account_id: uuid.UUID, reply_id: uuid.UUID, body: QuickReplyUpdateBody
) -> QuickReply:
    shortcut = text_fields.optional(body.shortcut, "Shortcut cannot be empty", "Shortcut", SHORTCUT_MAX)
    title = text_fields.optional(body.title, "Title cannot be empty", "Title", TITLE_MAX)
    text = text_fields.optional(body.body, "Body cannot be empty", "Body", None, strip=False)
    async with recording(state, account_id) as rec:
        row = await rec.db.fetch_row(Q_UPDATE, [reply_id, account_id, shortcut, title, text])
        if row is None:
            raise HTTPError(404, NOT_FOUND)
        reply = msgspec.convert(row, QuickReply)
        rec.emit(EVENT, {"action": "updated", "quick_reply_id": reply.id})
    return reply


async def delete_quick_reply(state: AppState, account_id: uuid.UUID, reply_id: uuid.UUID) -> None:
    async with recording(state, account_id) as rec:
        if await rec.db.fetch_val(Q_DELETE, [reply_id, account_id]) is None:
            raise HTTPError(404, NOT_FOUND)
        rec.emit(EVENT, {"action": "deleted", "quick_reply_id": str(reply_id)})
