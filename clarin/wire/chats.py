"""Chat wire types (spec api.md §4.3 and §7, schema.md §3.7)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from clarin.wire.contacts import Contact
from clarin.wire.leads import Lead


class Chat(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    account_id: str
    device_id: str | None = None
    contact_id: str | None = None
    jid: str
    name: str | None = None
    last_message: str | None = None
    last_message_at: datetime | None = None
    unread_count: int
    is_archived: bool
    is_pinned: bool
    created_at: datetime
    updated_at: datetime
    # join fields (list and detail reads only)
    device_name: str | None = None
    device_phone: str | None = None
    contact_phone: str | None = None
    contact_avatar_url: str | None = None
    contact_custom_name: str | None = None
    contact_name: str | None = None


# -- envelopes and bodies (R20–R26) ---------------------------------------------------------------
class ChatsPage(msgspec.Struct, kw_only=True):
    """R20. ``total_capped`` and ``next_cursor`` are additive (issue 17): a filtered ``total`` is exact up to the cap
    (clarin.http.totals; ``total_capped`` true = more rows match and ``total`` is the cap); ``next_cursor`` is
    the ``cursor`` of the next page, null after the last one."""

    chats: list[Chat]
    total: int
    total_capped: bool = False
    limit: int
    offset: int
    next_cursor: str | None = None
    success: bool = True


class NewChatBody(msgspec.Struct):
    """R21. ``device_id`` is a string so a bad value is ``400 Invalid device ID`` (not a body error)."""

    device_id: str = ""
    phone: str = ""
    initial_message: str = ""


class NewChatResponse(msgspec.Struct):
    """R21: ``warning`` only when the initial message could not be sent."""

    chat: Chat
    warning: str | msgspec.UnsetType = msgspec.UNSET
    success: bool = True


class ChatDetailResponse(msgspec.Struct):
    """R23: the contact and the lead with the chat's JID (``null`` when there is none)."""

    chat: Chat
    contact: Contact | None
    lead: Lead | None
    success: bool = True


class ChatBatchDeleteBody(msgspec.Struct):
    """R22. ``ids`` are strings: invalid entries are skipped (``400 No valid IDs provided`` if none is valid)."""

    ids: list[str] | None = None
    delete_all: bool = False


class ChatDeleteResponse(msgspec.Struct):
    """R22 / R26: ``deleted`` = chats really deleted (new key; the original only had ``message``)."""

    message: str
    deleted: int
    success: bool = True
