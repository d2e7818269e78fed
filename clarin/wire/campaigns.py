"""Campaign wire types (spec api.md §4.10, R97 and §7 Campaign / Attachment / Recipient).

Optional keys (``?`` in §7) are omitted when null/empty (Go ``omitempty``). ``settings`` is always an
object. Request bodies take ``scheduled_at`` and ids as strings so a bad value gets a clear 400 from the
service instead of a generic decode error.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from clarin.wire._fields import Int32, Int64, Str50, Str100, Str255, Text

Url = Annotated[str, msgspec.Meta(max_length=4096)]
IdStr = Annotated[str, msgspec.Meta(max_length=64)]


class Attachment(msgspec.Struct, kw_only=True):
    id: str
    campaign_id: str
    media_url: str
    media_type: str
    caption: str
    file_name: str
    file_size: int
    position: int
    created_at: datetime


class Campaign(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    account_id: str
    device_id: str
    event_id: str | None = None
    source: str | None = None
    name: str
    message_template: str
    media_url: str | None = None
    media_type: str | None = None
    status: str
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    total_recipients: int
    sent_count: int
    failed_count: int
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    device_name: str | None = None
    attachments: list[Attachment] | None = None


class Recipient(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    campaign_id: str
    contact_id: str | None = None
    jid: str
    name: str | None = None
    phone: str | None = None
    status: str
    sent_at: datetime | None = None
    error_message: str | None = None
    wait_time_ms: int | None = None
    metadata: dict[str, Any] | None = None


# -- responses --------------------------------------------------------------------------------------
class CampaignList(msgspec.Struct):
    campaigns: list[Campaign]
    success: bool = True


class CampaignResponse(msgspec.Struct):
    campaign: Campaign
    success: bool = True


class EventCampaignResponse(msgspec.Struct):
    campaign: Campaign
    recipients_count: int
    skipped: int = 0  # participants whose phone gives no usable WhatsApp number, or repeating one
    success: bool = True


class DeletedResponse(msgspec.Struct):
    deleted: int
    success: bool = True


class RecipientsAdded(msgspec.Struct):
    count: int  # recipients added (new JIDs)
    submitted: int  # entries in the request
    duplicates: int  # entries whose JID was already in the campaign or repeated in the request
    invalid: int = 0  # entries without a usable jid (skipped)
    total_recipients: int = 0
    success: bool = True


class RecipientList(msgspec.Struct):
    recipients: list[Recipient]
    total: int
    success: bool = True


class MessageResponse(msgspec.Struct):
    message: str
    success: bool = True


class AttachmentsResponse(msgspec.Struct):
    attachments: list[Attachment] | None
    success: bool = True


# -- request bodies ---------------------------------------------------------------------------------
class AttachmentInput(msgspec.Struct):
    media_url: Url = ""
    media_type: Str50 = ""
    caption: Text = ""
    file_name: Str255 = ""
    file_size: Int64 = 0  # bigint
    position: Int32 = 0  # integer


class CampaignCreateBody(msgspec.Struct):
    name: Str255 = ""
    device_id: IdStr = ""
    message_template: Text = ""
    media_url: Url | None = None
    media_type: Str50 | None = None
    scheduled_at: Str100 | None = None
    settings: dict[str, Any] | None = None
    event_id: IdStr | None = None
    source: Str50 | None = None
    attachments: list[AttachmentInput] | None = None


class CampaignUpdateBody(msgspec.Struct):
    """R64 partial update: absent/null keys keep their value. ``""`` clears ``media_url``/``media_type``/
    ``scheduled_at``; ``settings`` replaces the whole object."""

    name: Str255 | None = None
    device_id: IdStr | None = None
    message_template: Text | None = None
    media_url: Url | None = None
    media_type: Str50 | None = None
    scheduled_at: Str100 | None = None
    status: Str50 | None = None
    settings: dict[str, Any] | None = None


class EventCampaignBody(msgspec.Struct):
    """R97: R62's fields plus participant filters (``has_phone`` is accepted and ignored: a phone is
    always required)."""

    name: Str255 = ""
    device_id: IdStr = ""
    message_template: Text = ""
    media_url: Url | None = None
    media_type: Str50 | None = None
    scheduled_at: Str100 | None = None
    settings: dict[str, Any] | None = None
    attachments: list[AttachmentInput] | None = None
    status: Str50 | None = None
    tag_ids: list[IdStr] | None = None
    has_phone: bool | None = None


class BatchDeleteBody(msgspec.Struct):
    ids: list[IdStr] = msgspec.field(default_factory=list)


class RecipientInput(msgspec.Struct):
    jid: Str255 = ""
    contact_id: IdStr | None = None
    name: Str255 | None = None
    phone: Str50 | None = None
    metadata: dict[str, Any] | None = None


class RecipientsBody(msgspec.Struct):
    recipients: list[RecipientInput] = msgspec.field(default_factory=list)
    save_as_contacts: bool = False


class DuplicateBody(msgspec.Struct):
    message_template: Text | None = None


class AttachmentsBody(msgspec.Struct):
    attachments: list[AttachmentInput] | None = None


# -- WebSocket payloads -----------------------------------------------------------------------------
class CampaignProgressEvent(msgspec.Struct, kw_only=True):
    campaign_id: str
    status: str
    sent_count: int
    failed_count: int
    total_recipients: int


class CampaignStatusEvent(msgspec.Struct, kw_only=True):
    campaign_id: str
    status: str
