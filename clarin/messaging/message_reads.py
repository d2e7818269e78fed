"""R24 ``GET /api/chats/:id/messages``: a page of a chat's messages with their reactions and polls.

Newest first (``timestamp DESC, id DESC``, ``idx_messages_chat_ts``), limit 50 by default, at most 500. Besides
``offset``, keyset paging: ``before=<RFC 3339 time>`` (messages strictly older than that instant) or
``before_id=<message uuid>`` (messages after that one in the page order — pass the last message of the previous
page); a ``before_id`` that is not a message of this chat gives an empty page. Reactions are loaded only for the
page's stanza ids, poll options and votes for the page's polls, one query each.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from clarin._speedups import group_rows
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.state import AppState
from clarin.wire.messages import Message

Q_MESSAGES = query("messages_page")
Q_MESSAGES_BEFORE = query("messages_page_before")
Q_CURSOR = query("messages_cursor")
Q_REACTIONS = query("messages_page_reactions")
Q_POLL_OPTIONS = query("messages_page_poll_options")
Q_POLL_VOTES = query("messages_page_poll_votes")

CHAT_NOT_FOUND = "Chat not found"
MESSAGES_DEFAULT_LIMIT = 50
MESSAGES_MAX_LIMIT = 500
NIL_UUID = uuid.UUID(int=0)
BEGINNING = datetime(1, 1, 1, tzinfo=UTC)
OPTION_FIELDS = ("id", "message_id", "name", "vote_count")
VOTE_FIELDS = ("id", "message_id", "voter_jid", "selected_names", "timestamp")


@dataclass(frozen=True, slots=True)
class MessageCursor:
    """R24 keyset position: ``before`` (a time) or ``before_id`` (a message of the chat)."""

    before: datetime | None = None
    before_id: uuid.UUID | None = None


async def chat_messages(
    state: AppState, account_id: uuid.UUID, chat_id: uuid.UUID, limit: int, offset: int, cursor: MessageCursor
) -> list[Message]:
    if cursor.before_id is not None:
        found = await state.db.fetch_row(Q_CURSOR, [account_id, chat_id, cursor.before_id])
        position = (found["timestamp"], uuid.UUID(str(found["id"]))) if found else (BEGINNING, NIL_UUID)
        rows = await state.db.fetch(Q_MESSAGES_BEFORE, [account_id, chat_id, limit, offset, *position])
    elif cursor.before is not None:
        rows = await state.db.fetch(Q_MESSAGES_BEFORE, [account_id, chat_id, limit, offset, cursor.before, NIL_UUID])
    else:
        rows = await state.db.fetch(Q_MESSAGES, [account_id, chat_id, limit, offset])
    if not rows:
        raise HTTPError(404, CHAT_NOT_FOUND)
    page = [row for row in rows if row["id"] is not None]
    if not page:
        return []
    stanza_ids = list(dict.fromkeys(str(row["message_id"]) for row in page))
    reactions = group_rows(await state.db.fetch(Q_REACTIONS, [account_id, chat_id, stanza_ids]), "target_message_id")
    polls = [uuid.UUID(str(row["id"])) for row in page if row["message_type"] == "poll"]
    options: dict[Any, list[Any]] = {}
    votes: dict[Any, list[Any]] = {}
    if polls:
        options = group_rows(await state.db.fetch(Q_POLL_OPTIONS, [account_id, polls]), "message_id", OPTION_FIELDS)
        votes = group_rows(await state.db.fetch(Q_POLL_VOTES, [account_id, polls]), "message_id", VOTE_FIELDS)
    out = []
    for row in page:
        own = reactions.get(row["message_id"])
        if own:
            row["reactions"] = own
        if row["message_type"] == "poll":
            row["poll_options"] = options.get(row["id"])
            row["poll_votes"] = votes.get(row["id"])
        out.append(msgspec.convert(row, Message))
    return out
