from __future__ import annotations

from datetime import datetime

import msgspec


class Tag(msgspec.Struct):
    """Tag object (spec §7). Embedded ``structured_tags`` carry real timestamps (the original sent zero times)."""

    id: str
    account_id: str
    name: str
    color: str
    created_at: datetime
    updated_at: datetime


class TagCreateBody(msgspec.Struct):
    name: str = ""
    color: str = ""


class TagUpdateBody(msgspec.Struct):
    name: str | None = None
    color: str | None = None


class TagAssignBody(msgspec.Struct):
    """R58/R59: ``entity_type`` is one of contact, lead, chat, participant."""

    entity_type: str = ""
    entity_id: str = ""
    tag_id: str = ""


class TagsResponse(msgspec.Struct):
    tags: list[Tag]
    success: bool = True


class TagResponse(msgspec.Struct):
    tag: Tag
    success: bool = True
