"""Subscription rules (docs/WEBHOOKS.md): validation, the secret shown once, the delivery log, redelivery and
test pings. Every statement is scoped to the caller's account; unknown or foreign ids → 404."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from clarin.db.pool import Database
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.http.json import encode
from clarin.webhooks import signing
from clarin.webhooks.events import ALL, WEBHOOK_EVENTS
from clarin.webhooks.outbox import Outbox
from clarin.webhooks.targets import TargetRefused, check_host, check_url_shape
from clarin.wire.webhooks import (
    Delivery,
    Webhook,
    WebhookCreateBody,
    WebhookCreated,
    WebhookUpdateBody,
)

Q_LIST = query("webhooks_list")
Q_GET = query("webhook_get")
Q_CREATE = query("webhook_create")
Q_UPDATE = query("webhook_update")
Q_DELETE = query("webhook_delete")
Q_DELIVERIES = query("webhook_deliveries_list")
Q_REDELIVER = query("webhook_redeliver")
Q_PING = query("webhook_ping_insert")

WEBHOOK_NOT_FOUND = "Webhook not found"
DELIVERY_NOT_FOUND = "Delivery not found"
EVENT = "webhook_update"
MAX_EVENTS = 64
DESCRIPTION_MAX = 500
SECRET_MIN, SECRET_MAX = 16, 255
LIST_DEFAULT, LIST_MAX = 100, 1000
DELIVERIES_DEFAULT, DELIVERIES_MAX = 50, 200

Broadcast = Callable[..., Awaitable[None]]


class WebhookService:
    def __init__(
        self, db: Database, outbox: Outbox, broadcast: Broadcast, *, production: bool, allow_private: bool,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self._outbox = outbox
        self._broadcast = broadcast
        self._production = production
        self._allow_private = allow_private
        self.wake = wake or (lambda: None)

    # -- validation ---------------------------------------------------------------------------------------------
    async def _url(self, raw: str) -> str:
        try:
            url = check_url_shape(raw, production=self._production)
            await check_host(url, allow_private=self._allow_private)
        except TargetRefused as exc:
            raise HTTPError(400, str(exc)) from None
        return url

    @staticmethod
    def _events(raw: list[str]) -> list[str]:
        if not raw:
            raise HTTPError(400, "events is required (event names or \"*\")")
        if len(raw) > MAX_EVENTS:
            raise HTTPError(400, f"at most {MAX_EVENTS} events")
        out: list[str] = []
        for name in raw:
            name = name.strip()
            if name != ALL and name not in WEBHOOK_EVENTS:
                raise HTTPError(400, f"unknown event: {name[:64]}")
            if name not in out:
                out.append(name)
        return [ALL] if ALL in out else out

    @staticmethod
    def _description(raw: str) -> str:
        if len(raw) > DESCRIPTION_MAX:
            raise HTTPError(400, f"description must be at most {DESCRIPTION_MAX} characters")
        return raw

    # -- subscriptions ------------------------------------------------------------------------------------------
    async def list(self, account_id: uuid.UUID, limit: int, offset: int) -> list[Webhook]:
        return msgspec.convert(await self._db.fetch(Q_LIST, [account_id, limit, offset]), list[Webhook])

    async def get(self, account_id: uuid.UUID, webhook_id: uuid.UUID) -> Webhook:
        row = await self._db.fetch_row(Q_GET, [webhook_id, account_id])
        if row is None:
            raise HTTPError(404, WEBHOOK_NOT_FOUND)
        return msgspec.convert(row, Webhook)

    async def create(self, account_id: uuid.UUID, body: WebhookCreateBody) -> WebhookCreated:
        events = self._events(body.events)
        description = self._description(body.description)
        secret = (body.secret or "").strip() or signing.new_secret()
        if not SECRET_MIN <= len(secret) <= SECRET_MAX:
            raise HTTPError(400, f"secret must be {SECRET_MIN} to {SECRET_MAX} characters")
        url = await self._url(body.url)
        row = await self._db.fetch_row(Q_CREATE, [account_id, url, events, secret, body.enabled, description])
        assert row is not None
        webhook = msgspec.convert(row, WebhookCreated)
        await self._changed(account_id, "created", webhook.id)
        return webhook

    async def update(self, account_id: uuid.UUID, webhook_id: uuid.UUID, body: WebhookUpdateBody) -> Webhook:
        events = self._events(body.events) if body.events is not None else None
        description = self._description(body.description) if body.description is not None else None
        url = await self._url(body.url) if body.url is not None else None
        row = await self._db.fetch_row(Q_UPDATE, [webhook_id, account_id, url, events, body.enabled, description])
        if row is None:
            raise HTTPError(404, WEBHOOK_NOT_FOUND)
        webhook = msgspec.convert(row, Webhook)
        await self._changed(account_id, "updated", webhook.id)
        if webhook.enabled:
            self.wake()  # a re-enabled subscription's backlog goes out now
        return webhook

    async def delete(self, account_id: uuid.UUID, webhook_id: uuid.UUID) -> None:
        if await self._db.fetch_val(Q_DELETE, [webhook_id, account_id]) is None:
            raise HTTPError(404, WEBHOOK_NOT_FOUND)
        await self._changed(account_id, "deleted", str(webhook_id))

    async def _changed(self, account_id: uuid.UUID, action: str, webhook_id: str, **extra: Any) -> None:
        await self._outbox.invalidate(str(account_id))
        await self._broadcast(account_id, EVENT, {"action": action, "webhook_id": webhook_id, **extra})

    # -- deliveries ---------------------------------------------------------------------------------------------
    async def deliveries(self, account_id: uuid.UUID, webhook_id: uuid.UUID, limit: int, offset: int) -> list[Delivery]:
        await self.get(account_id, webhook_id)
        rows = await self._db.fetch(Q_DELIVERIES, [webhook_id, account_id, limit, offset])
        return msgspec.convert(rows, list[Delivery])

    async def redeliver(self, account_id: uuid.UUID, webhook_id: uuid.UUID, delivery_id: uuid.UUID) -> Delivery:
        row = await self._db.fetch_row(Q_REDELIVER, [delivery_id, webhook_id, account_id])
        if row is None:
            raise HTTPError(404, DELIVERY_NOT_FOUND)
        delivery = msgspec.convert(row, Delivery)
        await self._broadcast(account_id, EVENT, {"action": "redelivery_queued", "webhook_id": str(webhook_id),
                                                  "delivery_id": delivery.id})
        self.wake()
        return delivery

    async def ping(self, account_id: uuid.UUID, webhook_id: uuid.UUID) -> Delivery:
        data = encode({"webhook_id": str(webhook_id)}).decode()
        row = await self._db.fetch_row(Q_PING, [webhook_id, account_id, data])
        if row is None:
            raise HTTPError(404, WEBHOOK_NOT_FOUND)
        delivery = msgspec.convert(row, Delivery)
        await self._broadcast(account_id, EVENT, {"action": "ping_queued", "webhook_id": str(webhook_id),
                                                  "delivery_id": delivery.id})
        self.wake()
        return delivery
