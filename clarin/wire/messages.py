"""Message-side wire types (spec api.md §7, schema.md §3.8–3.10), shared by the inbox routes, the
inbound ingestion (``new_message``), the send paths (``message_sent``) and campaigns.

``?`` keys of the spec are omitted when null/empty (Go ``omitempty``): ``kw_only`` + ``omit_defaults``;
keys the spec always sends have no default, so they are never omitted.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from clarin.wire._fields import Int32


class Reaction(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    account_id: str
    chat_id: str
    target_message_id: str
    sender_jid: str
    sender_name: str | None = None
    emoji: str
    is_from_me: bool
    timestamp: datetime
    created_at: datetime


class PollOption(msgspec.Struct, kw_only=True):
    id: str
    message_id: str  # DB id of the poll message
    name: str
    vote_count: int = 0


class PollVote(msgspec.Struct, kw_only=True):
    id: str
    message_id: str
    voter_jid: str
    selected_names: list[str] | None
    timestamp: datetime


class Message(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    account_id: str
    device_id: str | None = None
    chat_id: str
    message_id: str  # WhatsApp stanza id
    from_jid: str | None = None
    from_name: str | None = None
    body: str | None = None
    message_type: str | None = None
    media_url: str | None = None
    media_mimetype: str | None = None
    media_filename: str | None = None
    media_size: int | None = None
    is_from_me: bool
    is_read: bool
    status: str | None = None
    timestamp: datetime
    created_at: datetime
    quoted_message_id: str | None = None
    quoted_body: str | None = None
    quoted_sender: str | None = None
    reactions: list[Reaction] | None = None
    poll_question: str | None = None
    poll_options: list[PollOption] | None = None
    poll_votes: list[PollVote] | None = None
    poll_max_selections: int | None = None


# -- WebSocket payloads (spec §5.1) ---------------------------------------------------------------
class NewMessageEvent(msgspec.Struct, kw_only=True):
    chat_id: str
    message: Message
    chat_jid: str
    sender_name: str
    is_from_me: bool
    unread_count: int


class MessageSentEvent(msgspec.Struct, kw_only=True):
    chat_id: str
    message: Message


class MessageStatusEvent(msgspec.Struct, kw_only=True):
    message_ids: list[str]
    chat_jid: str
    status: str  # delivered | read
    timestamp: datetime


# Go's zero time.Time, which the original sent as `last_seen_at` when WhatsApp gave none (integrations.md B.10):
# kept, not null, because a client written against the original may parse or compare it unguarded.
GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


class PresenceEvent(msgspec.Struct, kw_only=True):
    jid: str
    available: bool
    last_seen_at: datetime = GO_ZERO_TIME  # encoded "0001-01-01T00:00:00Z", as the original


class MessageReactionEvent(msgspec.Struct, kw_only=True):
    chat_id: str
    target_message_id: str
    sender_jid: str
    sender_name: str
    emoji: str
    is_from_me: bool
    removed: bool


class PollUpdateEvent(msgspec.Struct, kw_only=True):
    chat_id: str
    message_id: str  # WhatsApp id of the poll
    options: list[PollOption]
    votes: list[PollVote]
    voter_jid: str


# -- inbox routes (R24, R27–R30) -------------------------------------------------------------------
class ChatMessagesResponse(msgspec.Struct):
    """R24: newest first."""

    messages: list[Message]
    success: bool = True


class InboxMessageResponse(msgspec.Struct):
    """R27, R28, R30: the stored message that was sent."""

    message: Message
    success: bool = True


class SendMessageBody(msgspec.Struct):
    """R27. Media when ``media_url`` and ``media_type`` are both set (a quote is then ignored); else a reply
    when ``quoted_message_id`` is set; else plain text. ``quoted_is_from_me`` is accepted and unused."""

    device_id: str = ""
    to: str = ""
    body: str = ""
    media_url: str = ""
    media_type: str = ""
    quoted_message_id: str = ""
    quoted_body: str = ""
    quoted_sender: str = ""
    quoted_is_from_me: bool = False


class ForwardMessageBody(msgspec.Struct):
    """R28: ``chat_id`` = the source chat (uuid), ``message_id`` = the WhatsApp id of the original."""

    device_id: str = ""
    to: str = ""
    chat_id: str = ""
    message_id: str = ""


class ReactBody(msgspec.Struct):
    """R29: an empty ``emoji`` removes the reaction."""

    device_id: str = ""
    to: str = ""
    target_message_id: str = ""
    emoji: str = ""


class PollBody(msgspec.Struct):
    """R30."""

    device_id: str = ""
    to: str = ""
    question: str = ""
    options: list[str] | None = None
    max_selections: Int32 = 1  # <= 0 → 1 and > options → all (R30); the range keeps a routed call encodable


class MessageUpdateEvent(msgspec.Struct, kw_only=True):
    """``message_update`` (new, not in the spec): an inbound edit or revoke changed a stored message in place.
    ``action``: ``edited`` (``body`` = the new text) or ``revoked`` (``body`` = "", ``message_type`` = "revoked");
    ``message_id`` is the WhatsApp id of the changed message."""

    action: str
    chat_id: str
    chat_jid: str
    message_id: str
    body: str
    message_type: str
