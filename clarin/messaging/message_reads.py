"""R24 ``GET /api/chats/:id/messages``: a page of a chat's messages with their reactions and polls.

Newest first (``timestamp DESC, id DESC``, ``idx_messages_chat_ts``), limit 50 by default, at most 500. Besides
``offset``, keyset paging: ``before=<RFC 3339 time>`` (messages strictly older than that instant) or
``before_id=<message uuid>`` (messages after that one in the page order — pass the last message of the previous
page); a ``before_id`` that is not a message of this chat gives an empty page. Reactions are loaded only for the
page's stanza ids, poll options and votes for the page's polls, in the same statement, which also builds the JSON
(sql/migrations/0008_wire_json.sql).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.state import AppState

Q_MESSAGES = query("messages_page")
Q_MESSAGES_BEFORE = query("messages_page_before")
Q_CURSOR = query("messages_cursor")

CHAT_NOT_FOUND = "Chat not found"
MESSAGES_DEFAULT_LIMIT = 50
MESSAGES_MAX_LIMIT = 500
NIL_UUID = uuid.UUID(int=0)
BEGINNING = datetime(1, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class MessageCursor:
    """R24 keyset position: ``before`` (a time) or ``before_id`` (a message of the chat)."""

    before: datetime | None = None
    before_id: uuid.UUID | None = None


async def chat_messages(
    state: AppState, account_id: uuid.UUID, chat_id: uuid.UUID, limit: int, offset: int, cursor: MessageCursor
) -> bytes:
    """The page's JSON array of messages, built by PostgreSQL in one statement; 404 for an unknown chat."""
    if cursor.before_id is not None:
        found = await state.db.fetch_tuple(Q_CURSOR, [account_id, chat_id, cursor.before_id])
        position = (found[0], uuid.UUID(str(found[1]))) if found is not None else (BEGINNING, NIL_UUID)
        row = await state.db.fetch_tuple(Q_MESSAGES_BEFORE, [account_id, chat_id, limit, offset, *position])
    elif cursor.before is not None:
        row = await state.db.fetch_tuple(Q_MESSAGES_BEFORE, [account_id, chat_id, limit, offset, cursor.before,
                                                              NIL_UUID])
    else:
        row = await state.db.fetch_tuple(Q_MESSAGES, [account_id, chat_id, limit, offset])
    if row is None or not row[0]:
        raise HTTPError(404, CHAT_NOT_FOUND)
    return row[1].encode()
