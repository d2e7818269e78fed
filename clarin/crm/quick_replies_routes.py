"""Quick replies, R101–R104 (spec §4.15). Rules live in ``clarin.crm.quick_replies``.

Live events (WebSocket, to the caller's account only, sent after the change is committed):

- ``quick_reply_update`` ``{"action": "created" | "updated" | "deleted", "quick_reply_id"}``.

Quick replies never appear in ``GET /api/leads``: no cache is touched.
"""

from __future__ import annotations

from clarin.crm import quick_replies as service
from clarin.http.paging import page_params
from clarin.http.request import Request
from clarin.http.routes import RouteGroup
from clarin.wire.common import Ok
from clarin.wire.queries import PageQuery
from clarin.wire.quick_replies import (
    QuickRepliesResponse,
    QuickReplyCreateBody,
    QuickReplyResponse,
    QuickReplyUpdateBody,
)

routes = RouteGroup(tags=("quick_replies",))

INVALID_ID = "Invalid quick reply ID"


@routes.get("/api/quick-replies", query=PageQuery, response=QuickRepliesResponse)
async def list_quick_replies(req: Request) -> QuickRepliesResponse:
    page = page_params(req, service.MAX_QUICK_REPLIES)
    replies = await service.list_quick_replies(req.app, req.account_id, page.limit, page.offset)
    return QuickRepliesResponse(quick_replies=replies)


@routes.post("/api/quick-replies", body=QuickReplyCreateBody, response=QuickReplyResponse, status=201)
async def create_quick_reply(req: Request, body: QuickReplyCreateBody) -> QuickReplyResponse:
    return QuickReplyResponse(quick_reply=await service.create_quick_reply(req.app, req.account_id, body))


@routes.put("/api/quick-replies/:id", body=QuickReplyUpdateBody, response=QuickReplyResponse)
async def update_quick_reply(req: Request, body: QuickReplyUpdateBody) -> QuickReplyResponse:
    reply_id = req.path_uuid("id", INVALID_ID)
    return QuickReplyResponse(quick_reply=await service.update_quick_reply(req.app, req.account_id, reply_id, body))


@routes.delete("/api/quick-replies/:id", response=Ok)
async def delete_quick_reply(req: Request) -> Ok:
    await service.delete_quick_reply(req.app, req.account_id, req.path_uuid("id", INVALID_ID))
    return Ok()
