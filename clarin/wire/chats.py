"""Chat wire types (spec api.md §4.3 and §7, schema.md §3.7)."""

from __future__ import annotations

from datetime import datetime

import msgspec


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
