"""Outgoing-webhook routes (docs/WEBHOOKS.md), for users with the account's ``admin`` role (and super admins);
anyone else → 403. Unknown or foreign ids → 404.

Live events (WebSocket, to the caller's account): ``webhook_update`` ``{"action": "created" | "updated" |
"deleted", "webhook_id"}`` and ``{"action": "redelivery_queued" | "ping_queued", "webhook_id", "delivery_id"}``;
the delivery worker sends ``webhook_disabled`` ``{"webhook_id", "reason"}`` when it gives up on a subscription.
"""

from __future__ import annotations

import uuid

from clarin.http.errors import HTTPError
from clarin.http.paging import page_params
from clarin.http.request import Request
from clarin.http.routes import RouteGroup
from clarin.webhooks.service import (
    DELIVERIES_DEFAULT,
    DELIVERIES_MAX,
    LIST_DEFAULT,
    LIST_MAX,
    WebhookService,
)
from clarin.wire.common import Ok
from clarin.wire.webhooks import (
    DeliveriesQuery,
    DeliveriesResponse,
    DeliveryResponse,
    WebhookCreateBody,
    WebhookCreatedResponse,
    WebhookResponse,
    WebhooksQuery,
    WebhooksResponse,
    WebhookUpdateBody,
)

routes = RouteGroup(tags=("webhooks",))

ADMIN_REQUIRED = "Forbidden: admin role required"
INVALID_ID = "Invalid webhook ID"
FORBIDDEN = {403: ADMIN_REQUIRED}


def _service(req: Request) -> tuple[WebhookService, uuid.UUID]:
    auth = req.auth
    if auth is None or not (auth.is_super_admin or auth.role == "admin"):
        raise HTTPError(403, ADMIN_REQUIRED)
    service = req.app.webhooks
    assert service is not None
    return service, req.account_id


@routes.get("/api/webhooks", query=WebhooksQuery, response=WebhooksResponse, responses=FORBIDDEN)
async def list_webhooks(req: Request) -> WebhooksResponse:
    service, account = _service(req)
    page = page_params(req, LIST_DEFAULT, LIST_MAX)
    return WebhooksResponse(webhooks=await service.list(account, page.limit, page.offset), limit=page.limit,
                            offset=page.offset)


@routes.post("/api/webhooks", body=WebhookCreateBody, response=WebhookCreatedResponse, status=201,
             responses=FORBIDDEN)
async def create_webhook(req: Request, body: WebhookCreateBody) -> WebhookCreatedResponse:
    service, account = _service(req)
    return WebhookCreatedResponse(webhook=await service.create(account, body))


@routes.get("/api/webhooks/:id", response=WebhookResponse, responses=FORBIDDEN)
async def get_webhook(req: Request) -> WebhookResponse:
    service, account = _service(req)
    return WebhookResponse(webhook=await service.get(account, req.path_uuid("id", INVALID_ID)))


@routes.put("/api/webhooks/:id", body=WebhookUpdateBody, response=WebhookResponse, responses=FORBIDDEN)
async def update_webhook(req: Request, body: WebhookUpdateBody) -> WebhookResponse:
    service, account = _service(req)
    return WebhookResponse(webhook=await service.update(account, req.path_uuid("id", INVALID_ID), body))


@routes.delete("/api/webhooks/:id", response=Ok, responses=FORBIDDEN)
async def delete_webhook(req: Request) -> Ok:
    service, account = _service(req)
    await service.delete(account, req.path_uuid("id", INVALID_ID))
    return Ok()


@routes.get("/api/webhooks/:id/deliveries", query=DeliveriesQuery, response=DeliveriesResponse, responses=FORBIDDEN)
async def list_deliveries(req: Request) -> DeliveriesResponse:
    service, account = _service(req)
    webhook_id = req.path_uuid("id", INVALID_ID)
    page = page_params(req, DELIVERIES_DEFAULT, DELIVERIES_MAX)
    deliveries = await service.deliveries(account, webhook_id, page.limit, page.offset)
    return DeliveriesResponse(deliveries=deliveries, limit=page.limit, offset=page.offset)


@routes.post("/api/webhooks/:id/deliveries/:deliveryId/redeliver", response=DeliveryResponse, responses=FORBIDDEN)
async def redeliver(req: Request) -> DeliveryResponse:
    service, account = _service(req)
    webhook_id = req.path_uuid("id", INVALID_ID)
    delivery_id = req.path_uuid("deliveryId", "Invalid delivery ID")
    return DeliveryResponse(delivery=await service.redeliver(account, webhook_id, delivery_id))


@routes.post("/api/webhooks/:id/test", response=DeliveryResponse, responses=FORBIDDEN)
async def test_webhook(req: Request) -> DeliveryResponse:
    service, account = _service(req)
    return DeliveryResponse(delivery=await service.ping(account, req.path_uuid("id", INVALID_ID)))
