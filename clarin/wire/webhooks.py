"""Request/response shapes of the outgoing-webhook routes (docs/WEBHOOKS.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta


class Webhook(msgspec.Struct):
    """A subscription. ``secret`` is never shown again after the create answer (:class:`WebhookCreated`)."""

    id: str
    account_id: str
    url: str
    events: list[str]
    enabled: bool
    description: str
    disabled_reason: str  # why the server disabled it ("" when enabled or disabled by a user)
    created_at: datetime
    updated_at: datetime


class WebhookCreated(Webhook):
    secret: str = ""


class WebhookCreateBody(msgspec.Struct):
    url: str = ""
    events: list[str] = []
    secret: str | None = None  # generated when missing or empty
    enabled: bool = True
    description: str = ""


class WebhookUpdateBody(msgspec.Struct):
    """Partial: fields not sent keep their value."""

    url: str | None = None
    events: list[str] | None = None
    enabled: bool | None = None
    description: str | None = None


class Delivery(msgspec.Struct):
    id: str
    event_id: str  # the X-Clarin-Delivery header and the payload's ``id``
    event: str
    status: str  # pending | delivered | failed
    status_code: int | None
    attempts: int
    next_attempt_at: datetime | None  # when a pending delivery is tried next
    last_error: str
    duration_ms: float | None  # of the last attempt
    occurred_at: datetime
    last_attempt_at: datetime | None
    delivered_at: datetime | None


class WebhooksResponse(msgspec.Struct):
    webhooks: list[Webhook]
    limit: int
    offset: int
    success: bool = True


class WebhookResponse(msgspec.Struct):
    webhook: Webhook
    success: bool = True


class WebhookCreatedResponse(msgspec.Struct):
    webhook: WebhookCreated
    success: bool = True


class DeliveriesResponse(msgspec.Struct):
    deliveries: list[Delivery]
    limit: int
    offset: int
    success: bool = True


class DeliveryResponse(msgspec.Struct):
    delivery: Delivery
    success: bool = True


class WebhooksQuery(msgspec.Struct, kw_only=True):
    """GET /api/webhooks."""

    limit: Annotated[int, Meta(description="Page size; missing or <=0 → 100; capped at 1000.")] = 100
    offset: Annotated[int, Meta(description="Rows to skip; negative → 0.")] = 0


class DeliveriesQuery(msgspec.Struct, kw_only=True):
    """GET /api/webhooks/{id}/deliveries (newest first)."""

    limit: Annotated[int, Meta(description="Page size; missing or <=0 → 50; capped at 200.")] = 50
    offset: Annotated[int, Meta(description="Rows to skip; negative → 0.")] = 0
