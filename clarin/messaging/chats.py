"""Chats R20–R26 and the message page R24 (api.md §4.3, schema.md §5.2, §7), tenant-scoped.

- Every chat id is checked against the caller's account: unknown and foreign ids are both
  ``404 Chat not found`` (the original did not check ownership at all).
- R20 answers the page and its total in one round trip; the inbox order walks ``idx_chats_inbox``.
  ``limit`` defaults to 50; ``limit<=0`` (the dashboard's "everything") and larger limits are capped at
  ``MAX_LIMIT`` (1000). Search matches the chat (name, JID) or its contact (name, last/short/custom/push
  name, phone, JID, email, company) through the trigram-indexed expressions.
- R22 deletes only the caller's chats and reports how many really went.
- R23 reads the chat, its contact and its lead with one statement each (tags included).
- R24 pages newest first (``timestamp DESC, id DESC``, ``idx_messages_chat_ts``), limit 50 by default,
  at most 500. Besides ``offset``, keyset paging: ``before=<RFC 3339 time>`` (messages strictly older than
  that instant) or ``before_id=<message uuid>`` (messages after that one in the page order — pass the last
  message of the previous page); a ``before_id`` that is not a message of this chat gives an empty page.
  Reactions are loaded only for the page's stanza ids, poll options and votes for the page's polls, one
  query each; ``poll_question`` / ``poll_max_selections`` are included (the original omitted them).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from clarin.crm.filtering import Window, like_pattern
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.messaging import outbound
from clarin.state import AppState
from clarin.webhooks.recording import recording
from clarin.wire.chats import Chat, ChatDetailResponse
from clarin.wire.contacts import Contact
from clarin.wire.leads import Lead

log = logging.getLogger("clarin.messaging.chats")

Q_PAGE_INBOX = query("chats_page_inbox")
Q_PAGE_INBOX_UNFILTERED = query("chats_page_inbox_unfiltered")
Q_PAGE_ALL = query("chats_page_all")
Q_PAGE_SEARCH = query("chats_page_search")
Q_GET = query("chats_get")
Q_CONTACT = query("chats_contact_of_jid")
Q_LEAD = query("chats_lead_of_jid")
Q_MARK_READ = query("chats_mark_read")
Q_DELETE = query("chats_delete")
Q_DELETE_ALL = query("chats_delete_all")

CHAT_NOT_FOUND = "Chat not found"
EVENT = "chat_update"  # emitted by the writes below, its webhook outbox rows in the same transaction
INITIAL_MESSAGE_FAILED = "Chat created but initial message failed to send"


@dataclass(frozen=True, slots=True)
class ChatFilter:
    search: str = ""
    archived: bool = False
    unread_only: bool = False
    device_ids: list[uuid.UUID] | None = None
    tag_ids: list[uuid.UUID] | None = None


# -- R20 ------------------------------------------------------------------------------------------------
async def list_chats(state: AppState, account_id: uuid.UUID, flt: ChatFilter, window: Window) -> tuple[
    list[Chat], int
]:
    params: list[Any] = [account_id, flt.device_ids or None, flt.tag_ids or None, flt.unread_only,
                         window.limit, window.offset]
    pattern = like_pattern(flt.search)
    if pattern:
        rows = await state.db.fetch(Q_PAGE_SEARCH, [*params, flt.archived, pattern])
    elif flt.archived:
        rows = await state.db.fetch(Q_PAGE_ALL, params)
    elif flt.device_ids or flt.tag_ids or flt.unread_only:
        rows = await state.db.fetch(Q_PAGE_INBOX, params)
    else:
        # the default inbox: its total is the account's counter (exact, O(1)), not a count of the inbox
        rows = await state.db.fetch(Q_PAGE_INBOX_UNFILTERED, [account_id, window.limit, window.offset])
    total = int(rows[0]["total"]) if rows else 0
    return [msgspec.convert(row, Chat) for row in rows if row["id"] is not None], total


# -- R21 ------------------------------------------------------------------------------------------------
async def open_chat(
    state: AppState, account_id: uuid.UUID, device_id: uuid.UUID, phone: str, initial_message: str
) -> tuple[Chat, str | None]:
    """Upsert the chat of ``phone`` for the device; send ``initial_message`` when given.
    Returns (chat, warning) — warning when the initial message could not be sent."""
    if not phone.strip():
        raise HTTPError(400, "Phone number is required")
    jid = outbound.resolve_recipient(phone)
    await outbound.ensure_device(state, account_id, device_id)
    async with recording(state, account_id) as rec:
        row = await rec.db.fetch_row(outbound.Q_CHAT_UPSERT, [account_id, device_id, jid])
        assert row is not None
        rec.emit(EVENT, {"action": "created", "chat_id": str(row["id"])})
    chat_id = uuid.UUID(str(row["id"]))
    warning = None
    if initial_message.strip():
        try:
            await outbound.send_text(state, account_id, device_id, jid, initial_message)
        except HTTPError as exc:
            log.info("chat %s: initial message not sent: %s %s", chat_id, exc.status, exc.message)
            warning = INITIAL_MESSAGE_FAILED
        chat = await get_chat(state, account_id, chat_id)
    else:
        chat = msgspec.convert(row, Chat)
    return chat, warning


# -- R22, R25, R26 --------------------------------------------------------------------------------------
async def delete_chats(state: AppState, account_id: uuid.UUID, ids: list[uuid.UUID], *, one: bool = False
                       ) -> list[str]:
    """The caller's chats among ``ids`` deleted (``one``: the single-chat route's event); returns their ids."""
    async with recording(state, account_id) as rec:
        rows = await rec.db.fetch(Q_DELETE, [account_id, list(dict.fromkeys(ids))])
        deleted = [str(row["id"]) for row in rows]
        if deleted and one:
            rec.emit(EVENT, {"action": "deleted", "chat_id": deleted[0]})
        elif deleted:
            rec.emit(EVENT, {"action": "batch_deleted", "ids": deleted, "count": len(deleted)})
    return deleted


async def delete_all_chats(state: AppState, account_id: uuid.UUID) -> int:
    async with recording(state, account_id) as rec:
        count = int(await rec.db.fetch_val(Q_DELETE_ALL, [account_id]) or 0)
        rec.emit(EVENT, {"action": "all_deleted", "count": count})
    return count


async def mark_read(state: AppState, account_id: uuid.UUID, chat_id: uuid.UUID) -> None:
    async with recording(state, account_id) as rec:
        if await rec.db.fetch_val(Q_MARK_READ, [account_id, chat_id]) is None:
            raise HTTPError(404, CHAT_NOT_FOUND)
        rec.emit(EVENT, {"action": "read", "chat_id": str(chat_id), "unread_count": 0})


# -- R23 ------------------------------------------------------------------------------------------------
async def get_chat(state: AppState, account_id: uuid.UUID, chat_id: uuid.UUID) -> Chat:
    row = await state.db.fetch_row(Q_GET, [account_id, chat_id])
    if row is None:
        raise HTTPError(404, CHAT_NOT_FOUND)
    return msgspec.convert(row, Chat)


async def chat_details(state: AppState, account_id: uuid.UUID, chat_id: uuid.UUID) -> ChatDetailResponse:
    chat = await get_chat(state, account_id, chat_id)
    contact_row = await state.db.fetch_row(Q_CONTACT, [account_id, chat.jid])
    lead_row = await state.db.fetch_row(Q_LEAD, [account_id, chat.jid])
    contact = None
    if contact_row is not None:
        contact_row["structured_tags"] = contact_row["structured_tags"] or []
        contact = msgspec.convert(contact_row, Contact)
    lead = None
    if lead_row is not None:
        lead_row["tags"] = lead_row["tags"] or None
        custom = lead_row["custom_fields"]
        lead_row["custom_fields"] = custom if isinstance(custom, dict) and custom else None
        lead = msgspec.convert(lead_row, Lead)
    return ChatDetailResponse(chat=chat, contact=contact, lead=lead)
