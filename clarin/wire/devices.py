"""Device wire types (api.md §4.2, §7) and the dev-only simulated-inbound body (issue 4).

``Device``: keys marked ``?`` in the spec are omitted when null; ``status`` is always the live status
(overlaid from the device pool), so it is always present.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from clarin.wire._fields import Int32, Str255

# -- number health (docs/NUMBER_HEALTH.md) ----------------------------------------------------------
BudgetLimit = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]


class SendBudgetBody(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True, kw_only=True):
    """``PUT /api/devices/:id/budget``: the number's own limits, replacing any earlier ones. A key left out takes
    the installation's default; ``null`` (sent explicitly) = no limit; ``warmup`` = cold messages allowed per day
    on days 0, 1, 2… after pairing (``[]`` or ``null`` = no warm-up). ``{}`` = back to the defaults."""

    cold_per_minute: BudgetLimit | msgspec.UnsetType | None = msgspec.UNSET
    cold_per_hour: BudgetLimit | msgspec.UnsetType | None = msgspec.UNSET
    cold_per_day: BudgetLimit | msgspec.UnsetType | None = msgspec.UNSET
    reply_per_minute: BudgetLimit | msgspec.UnsetType | None = msgspec.UNSET
    reply_per_hour: BudgetLimit | msgspec.UnsetType | None = msgspec.UNSET
    reply_per_day: BudgetLimit | msgspec.UnsetType | None = msgspec.UNSET
    warmup: Annotated[list[BudgetLimit], msgspec.Meta(max_length=90)] | msgspec.UnsetType | None = msgspec.UNSET


class BudgetWindows(msgspec.Struct, kw_only=True):
    """Per sliding window (last 60 s / 3600 s / 86 400 s); ``null`` = no limit."""

    minute: int | None
    hour: int | None
    day: int | None


class BudgetKinds(msgspec.Struct, kw_only=True):
    cold: BudgetWindows  # messages to chats where the contact never wrote (new conversations)
    reply: BudgetWindows  # messages in chats the contact wrote in (or this number opened in the last day)


class WarmUp(msgspec.Struct, kw_only=True):
    paired_at: datetime | None
    day: int | None  # day since pairing while the warm-up applies, null once it is over (or without one)
    schedule: list[int]
    cold_per_day_cap: int | None  # the warm-up's cap today


class SendBudget(msgspec.Struct, kw_only=True):
    defaults: bool  # whether unset limits take the installation's defaults (SEND_BUDGET_DEFAULTS)
    configured: dict[str, Any]  # the device's own overrides, as stored
    limits: BudgetKinds  # in force now (warm-up applied)
    used: BudgetKinds
    remaining: BudgetKinds
    warmup: WarmUp


class DeviceHealth(msgspec.Struct, kw_only=True):
    state: str  # ok | throttled | paused | banned
    reason: str | None = None
    since: datetime | None = None
    evidence: dict[str, Any] | None = None


class CampaignPause(msgspec.Struct, kw_only=True):
    campaign_id: str
    name: str | None
    status: str
    reason: str
    paused_at: datetime


class DeviceHealthEvent(msgspec.Struct, kw_only=True):
    """WebSocket / webhook ``device_health``: the number's health changed (campaigns paused, or resumed)."""

    device_id: str
    health: str
    reason: str
    signal: str
    paused_campaigns: list[str]


class Device(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    account_id: str
    name: str | None = None
    phone: str | None = None
    jid: str | None = None
    status: str | None = None
    qr_code: str | None = None
    last_seen_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    # Number health, only in GET /api/devices/:id and PUT /api/devices/:id/budget (docs/NUMBER_HEALTH.md).
    health: DeviceHealth | None = None
    send_budget: SendBudget | None = None
    pauses: list[CampaignPause] | None = None


class DevicesResponse(msgspec.Struct):
    devices: list[Device]
    success: bool = True


class DeviceResponse(msgspec.Struct):
    device: Device | None
    success: bool = True


class MessageResponse(msgspec.Struct):
    message: str
    success: bool = True


class DeviceNameBody(msgspec.Struct):
    """R13 (no validation, may be empty) and R15 (required non-empty, checked by the service)."""

    name: Str255 = ""


# -- WebSocket payloads (§5.1) ----------------------------------------------------------------------
class DeviceStatusEvent(msgspec.Struct):
    device_id: str
    status: str
    qr_code: str = ""


class QRCodeEvent(msgspec.Struct):
    device_id: str
    qr_code: str


class ContactsSyncedEvent(msgspec.Struct):
    device_id: str
    count: int


# -- dev routes (simulated driver only) -------------------------------------------------------------
InboundType = Literal[
    "text", "image", "video", "audio", "document", "sticker", "location", "contact", "reaction",
    "poll", "poll_vote", "revoke", "edit", "receipt", "presence",
]
ShortText = Annotated[str, msgspec.Meta(max_length=100_000)]


class InboundSpec(msgspec.Struct, kw_only=True):
    """What ``POST /api/dev/whatsapp/{device_id}/inbound`` asks the simulated driver to "receive".

    ``from`` is a phone number or a JID (the sender; also the chat unless ``chat`` is given, e.g. a
    group). ``message_id`` defaults to a fresh stanza id. Per type:

    - text: ``body`` (+ ``quoted_message_id``/``quoted_body``/``quoted_sender`` for a reply)
    - image/video/audio/document/sticker: ``media_base64``, ``mimetype``, ``body`` = caption,
      ``file_name`` (documents)
    - location: ``latitude``, ``longitude``, ``body`` = place name; contact: ``body`` = display name,
      ``vcard`` (optional)
    - reaction: ``target_message_id``, ``emoji`` ("" removes)
    - poll: ``body`` = question, ``options``, ``max_selections``
    - poll_vote: ``target_message_id`` (the poll), ``selected_options`` (option names)
    - revoke / edit: ``target_message_id`` (+ ``body`` = new text for edit)
    - receipt: ``target_message_id`` or ``message_id`` (+ ``message_ids``), ``status`` (delivered|read|played)
    - presence: ``available`` (default true), ``timestamp`` = last seen
    """

    from_: str = msgspec.field(name="from")
    type: InboundType = "text"
    push_name: str = ""
    body: ShortText = ""
    message_id: str = ""
    chat: str = ""
    is_from_me: bool = False
    # Unix seconds, 0 = now. The protobuf field is int64; beyond datetime's range the event is built and then
    # skipped as corrupt by ingestion (tests rely on that), beyond int64 it cannot be built at all: 400.
    timestamp: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] = 0
    media_base64: str = ""
    mimetype: str = ""
    file_name: str = ""
    target_message_id: str = ""
    target_from_me: bool = False
    emoji: str = ""
    status: str = ""
    message_ids: list[str] = msgspec.field(default_factory=list)
    quoted_message_id: str = ""
    quoted_body: str = ""
    quoted_sender: str = ""
    latitude: float = 0.0
    longitude: float = 0.0
    vcard: str = ""
    options: list[str] = msgspec.field(default_factory=list)
    selected_options: list[str] = msgspec.field(default_factory=list)
    max_selections: Int32 = 1
    available: bool = True


class InboundResponse(msgspec.Struct):
    event: str  # the neonize event class delivered (Message, Receipt, Presence)
    message_id: str
    success: bool = True


class SimulatedContact(msgspec.Struct, kw_only=True):
    jid: str  # phone or JID
    name: str = ""
    push_name: str = ""
    business_name: str = ""


class SimulatedContactsBody(msgspec.Struct):
    contacts: list[SimulatedContact]


class SentCallOut(msgspec.Struct):
    kind: str
    to: str
    id: str
    timestamp: datetime
    message: dict[str, Any]


class SentCallsResponse(msgspec.Struct):
    sent: list[SentCallOut]
    success: bool = True


class SimulatedFaultsBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``PUT /api/dev/whatsapp/:device_id/faults``: the number answers like a throttled one. ``error`` "" and
    ``failure_rate`` 0 = healthy again."""

    error: Annotated[str, msgspec.Meta(max_length=200)] = ""  # "463", "429", "rate-overlimit", any text
    after: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 0  # successful sends before the errors start
    failure_rate: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.0


class PresenceOut(msgspec.Struct):
    to: str
    state: str  # composing | paused
    at: float  # unix time


class PresencesResponse(msgspec.Struct):
    presences: list[PresenceOut]
    success: bool = True
