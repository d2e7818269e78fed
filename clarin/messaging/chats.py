"""Chats R20–R26 and the message page R24 (api.md §4.3, schema.md §5.2, §7), tenant-scoped.

- Every chat id is checked against the caller's account: unknown and foreign ids are both
  ``404 Chat not found`` (the original did not check ownership at all).
- R20 answers the page and its total in one round trip; the order (pinned first, newest activity first, no activity
  last, then id DESC) walks ``idx_chats_order`` (0012). ``limit`` defaults to 50; ``limit<=0`` (the dashboard's
  "everything") and larger limits are capped at ``MAX_LIMIT`` (1000). Keyset paging: ``cursor`` (the
  ``next_cursor`` of the previous page; ``offset`` applies after it). Search (at least 3 characters, else 400)
  matches the chat (name, JID) or its contact (name, last/short/custom/push name, phone, JID, email, company)
  through the per-account trigram-indexed expressions. Filtered totals are exact up to
  ``TOTAL_COUNT_CAP`` (state.settings.total_count_cap, clarin.http.totals; ``total_capped``); the default inbox's total is the account's counter.
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
from datetime import UTC, datetime
from typing import Any

import msgspec

from clarin.crm.filtering import Window, search_pattern
from clarin.db.queries import Query, query
from clarin.http.cursor import decode_cursor, encode_cursor
from clarin.http.errors import HTTPError
from clarin.http.totals import capped
from clarin.messaging import outbound
from clarin.state import AppState
from clarin.webhooks.recording import recording
from clarin.wire.chats import Chat, ChatDetailResponse
from clarin.wire.contacts import Contact
from clarin.wire.leads import Lead

log = logging.getLogger("clarin.messaging.chats")

Q_PAGE = query("chats_page")
Q_PAGE_TAGGED = query("chats_page_tagged")
Q_PAGE_INBOX_UNFILTERED = query("chats_page_inbox_unfiltered")
Q_PAGE_SEARCH = query("chats_page_search")
# Statements run with custom plans only (Database.fetch_custom; why: clarin/crm/contact_reads.py): their best plan
# depends on the term. The one list _page_rows() reads, and bench/explain.py judges these by their custom plan.
CUSTOM_PLAN_QUERIES = frozenset({Q_PAGE_SEARCH.name})
Q_GET = query("chats_get")
Q_CONTACT = query("chats_contact_of_jid")
Q_LEAD = query("chats_lead_of_jid")
Q_MARK_READ = query("chats_mark_read")
Q_DELETE = query("chats_delete")
Q_DELETE_ALL = query("chats_delete_all")

TOTALS = "chats"  # clarin.cache.totals list name
CHAT_NOT_FOUND = "Chat not found"
EVENT = "chat_update"  # emitted by the writes below, its webhook outbox rows in the same transaction
INITIAL_MESSAGE_FAILED = "Chat created but initial message failed to send"
# No cursor: a key before every chat in the page order (pinned first, newest first), so the keyset bound is
# always an index condition of idx_chats_order (one plan per shape).
FIRST_KEY: tuple[bool, datetime, uuid.UUID] = (True, datetime(9999, 12, 31, tzinfo=UTC), uuid.UUID(int=(1 << 128) - 1))


@dataclass(frozen=True, slots=True)
class ChatFilter:
    search: str = ""
    archived: bool = False
    unread_only: bool = False
    device_ids: list[uuid.UUID] | None = None
    tag_ids: list[uuid.UUID] | None = None


# -- R20 ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ChatsPageResult:
    chats: list[Chat]
    total: int
    total_capped: bool
    next_cursor: str | None


def parse_cursor(text: str) -> tuple[bool, datetime | None, uuid.UUID] | None:
    """``?cursor=`` of GET /api/chats: the previous page's last (is_pinned, last_message_at, id); ``""`` = none;
    anything but a cursor this route issued → 400 "Invalid cursor"."""
    if not text:
        return None
    key: tuple[bool, datetime | None, uuid.UUID] = decode_cursor(text, tuple[bool, datetime | None, uuid.UUID])
    if key[1] is not None and key[1].tzinfo is None:
        raise HTTPError(400, "Invalid cursor")
    return key


async def _page_rows(state: AppState, q: Query, params: list[Any]) -> list[dict[str, Any]]:
    """One page statement; those in CUSTOM_PLAN_QUERIES planned for their parameter values (custom plans)."""
    if q.name in CUSTOM_PLAN_QUERIES:
        return await state.db.fetch_custom(q, params)
    return await state.db.fetch(q, params)


def _signature(flt: ChatFilter, pattern: str, count_cap: int) -> str:
    """The filter's field in the account's cached chats totals (clarin.cache.totals): everything the count reads."""
    return "|".join((str(flt.archived), str(flt.unread_only), ",".join(sorted(map(str, flt.device_ids or ()))),
                     ",".join(sorted(map(str, flt.tag_ids or ()))), pattern, str(count_cap)))


async def list_chats(state: AppState, account_id: uuid.UUID, flt: ChatFilter, window: Window,
                     cursor: tuple[bool, datetime | None, uuid.UUID] | None = None) -> ChatsPageResult:
    """One statement per shape (sql/queries/chats.sql): the default inbox (total = the account's counter, exact and
    O(1)), filters, tag filter (driven from the tags' contacts), search. Filtered totals are exact up to TOTAL_COUNT_CAP
    (``total_capped``) and kept in Redis (clarin.cache.totals) until a chats or contacts change drops them. One row
    more than the page is read to know whether ``next_cursor`` is needed."""
    pattern = search_pattern(flt.search)
    key = cursor or FIRST_KEY
    head: list[Any] = [account_id, window.limit + 1, window.offset, *key]
    count_cap = state.settings.total_count_cap
    counted = bool(pattern or flt.tag_ids or flt.archived or flt.device_ids or flt.unread_only)
    signature = _signature(flt, pattern, count_cap)
    cached = await state.totals.get(account_id, TOTALS, signature) if counted else None
    cap = count_cap if cached is None else 0  # 0: the statement counts nothing (the total is in Redis)
    filters: list[Any] = [flt.archived, flt.device_ids or None, flt.tag_ids or None, flt.unread_only, cap]
    if pattern:  # custom plans (CUSTOM_PLAN_QUERIES): a rare and a common term need different plans
        rows = await _page_rows(state, Q_PAGE_SEARCH, [*head, *filters, pattern])
    elif flt.tag_ids:
        rows = await _page_rows(state, Q_PAGE_TAGGED, [*head, *filters])
    elif flt.archived or flt.device_ids or flt.unread_only:
        rows = await _page_rows(state, Q_PAGE, [*head, *filters])
    else:  # the default inbox: its total is the account's counter (exact, O(1))
        rows = await _page_rows(state, Q_PAGE_INBOX_UNFILTERED, head)
    raw_total = int(rows[0]["total"] or 0) if rows else 0
    if counted and cached is None:
        cached = raw_total
        await state.totals.put(account_id, TOTALS, signature, cached)
    total, total_capped = capped(cached, count_cap) if cached is not None else (raw_total, False)
    found = [row for row in rows if row["id"] is not None]
    page = [msgspec.convert(row, Chat) for row in found[:window.limit]]
    next_cursor = None
    if len(found) > window.limit:
        last = found[window.limit - 1]
        next_cursor = encode_cursor(bool(last["is_pinned"]), last["last_message_at"], uuid.UUID(str(last["id"])))
    return ChatsPageResult(page, total, total_capped, next_cursor)


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
