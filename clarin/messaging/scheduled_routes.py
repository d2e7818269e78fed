"""Scheduled single messages (docs/SCHEDULED_MESSAGES.md; rules in :mod:`clarin.messaging.scheduled`).

- ``POST /api/messages/schedule`` ``{device_id, to | chat_id, body, send_at}`` → 201 ``{scheduled_message}``
- ``GET /api/messages/scheduled?status=&limit=&offset=`` → ``{scheduled_messages, total, total_capped, limit,
  offset}``, soonest first; ``limit`` default 100, at most 500; ``total`` capped at ``TOTAL_COUNT_CAP``
- ``GET /api/messages/scheduled/:id``, ``PUT`` (edit ``body`` / ``send_at`` / ``to`` | ``chat_id`` while
  pending), ``DELETE`` (cancel while pending → ``cancelled``)

Path ids: ``400 Invalid scheduled message ID``; unknown or foreign ``404``; not pending ``409``. WebSocket:
``scheduled_message {action, scheduled_message}`` on every change, and the send's own ``message_sent``.
"""

from __future__ import annotations

import uuid

from clarin.http.errors import HTTPError
from clarin.http.paging import page_params
from clarin.http.request import Request
from clarin.http.routes import RouteGroup
from clarin.messaging.scheduled import INVALID_ID, PAGE_DEFAULT, PAGE_MAX, ScheduledMessages
from clarin.wire.scheduled import (
    ScheduleBody,
    ScheduledList,
    ScheduledQuery,
    ScheduledResponse,
    ScheduleUpdateBody,
)

routes = RouteGroup(tags=("messages",))


def _service(req: Request) -> ScheduledMessages:
    service = getattr(req.app, "scheduled_messages", None)
    if service is None:
        raise HTTPError(503, "scheduled messages are not available on this server")
    return service


def _id(req: Request) -> uuid.UUID:
    return req.path_uuid("id", INVALID_ID)


@routes.post("/api/messages/schedule", body=ScheduleBody, response=ScheduledResponse, status=201)
async def schedule_message(req: Request, body: ScheduleBody) -> ScheduledResponse:
    return ScheduledResponse(await _service(req).create(req.account_id, req.user_id, body))


@routes.get("/api/messages/scheduled", query=ScheduledQuery, response=ScheduledList)
async def list_scheduled(req: Request) -> ScheduledList:
    page = page_params(req, PAGE_DEFAULT, PAGE_MAX)
    found = await _service(req).page(req.account_id, req.query_str("status"), page.limit, page.offset)
    return ScheduledList(scheduled_messages=found.items, total=found.total, total_capped=found.total_capped,
                         limit=page.limit, offset=page.offset)


@routes.get("/api/messages/scheduled/:id", response=ScheduledResponse)
async def get_scheduled(req: Request) -> ScheduledResponse:
    return ScheduledResponse(await _service(req).get(req.account_id, _id(req)))


@routes.put("/api/messages/scheduled/:id", body=ScheduleUpdateBody, response=ScheduledResponse)
async def update_scheduled(req: Request, body: ScheduleUpdateBody) -> ScheduledResponse:
    return ScheduledResponse(await _service(req).update(req.account_id, _id(req), body))


@routes.delete("/api/messages/scheduled/:id", response=ScheduledResponse)
async def cancel_scheduled(req: Request) -> ScheduledResponse:
    return ScheduledResponse(await _service(req).cancel(req.account_id, _id(req)))
