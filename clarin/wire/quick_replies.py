"""Quick replies (spec §7 QuickReply, routes R101–R104)."""

from __future__ import annotations

from datetime import datetime

import msgspec


class QuickReply(msgspec.Struct):
    id: str
    account_id: str
    shortcut: str
    title: str
    body: str
    created_at: datetime
    updated_at: datetime


class QuickReplyCreateBody(msgspec.Struct):
    shortcut: str = ""
    title: str = ""
    body: str = ""


class QuickReplyUpdateBody(msgspec.Struct):
    shortcut: str | None = None
    title: str | None = None
    body: str | None = None


class QuickRepliesResponse(msgspec.Struct):
    quick_replies: list[QuickReply]
    success: bool = True


class QuickReplyResponse(msgspec.Struct):
    quick_reply: QuickReply
    success: bool = True
