"""Scheduled single messages (docs/SCHEDULED_MESSAGES.md): request bodies, the list query, responses, the event.

Bodies take ids and ``send_at`` as strings so a bad value gets the service's clear 400 instead of a generic
decode error; null/absent keys of the edit body mean "unchanged".
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from clarin.wire._fields import Str20, Str255, Text
from clarin.wire.queries import CappedLimit, Offset

IdStr = Annotated[str, msgspec.Meta(max_length=64)]
TimeStr = Annotated[str, msgspec.Meta(max_length=64)]


class ScheduledMessage(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    device_id: str
    chat_id: str | None = None
    to: str  # the recipient JID (a phone number given as `to` is stored normalised)
    body: str
    send_at: datetime
    status: str  # pending | sending | sent | failed | cancelled
    attempts: int  # claims so far (a device that was unavailable or over budget does not fail it)
    sent_at: datetime | None = None
    sent_message_id: str | None = None  # messages.id of the sent message (GET /api/chats/:chat_id/messages)
    error_message: str | None = None
    created_at: datetime
    updated_at: datetime


class ScheduleBody(msgspec.Struct, kw_only=True):
    """``POST /api/messages/schedule``: exactly one of ``to`` (phone or JID) and ``chat_id``."""

    device_id: IdStr = ""
    to: Str255 = ""
    chat_id: IdStr = ""
    body: Text = ""
    send_at: TimeStr = ""


class ScheduleUpdateBody(msgspec.Struct, kw_only=True):
    """``PUT /api/messages/scheduled/:id`` while pending; at most one of ``to`` and ``chat_id``."""

    body: Text | None = None
    send_at: TimeStr | None = None
    to: Str255 | None = None
    chat_id: IdStr | None = None


class ScheduledQuery(msgspec.Struct, kw_only=True):
    status: Annotated[Str20, Meta(description="pending, sending, sent, failed or cancelled; empty = all")] = ""
    limit: CappedLimit = 100
    offset: Offset = 0


class ScheduledResponse(msgspec.Struct):
    scheduled_message: ScheduledMessage
    success: bool = True


class ScheduledList(msgspec.Struct):
    scheduled_messages: list[ScheduledMessage]
    total: int  # exact up to TOTAL_COUNT_CAP; beyond it the cap, with total_capped true
    total_capped: bool
    limit: int
    offset: int
    success: bool = True


class ScheduledMessageEvent(msgspec.Struct):
    """WS / webhook ``scheduled_message``: ``action`` created | updated | cancelled | sent | failed."""

    action: str
    scheduled_message: ScheduledMessage
