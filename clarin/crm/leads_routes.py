"""Lead routes R37–R44 (R45 ``/api/leads/:id/interactions`` lives in interactions_routes).

WebSocket: every committed lead write broadcasts ``lead_update`` to the caller's account, after the
``leads:<account>`` cache was dropped. ``data`` is ``{"action": ..., "lead_id"?, "ids"?, "count"?}``:

- ``created`` / ``updated`` (R38; ``updated`` when the upsert hit an existing JID) — ``lead_id``
- ``updated`` (R41) — ``lead_id``
- ``deleted`` (R42) — ``lead_id``
- ``status_changed`` (R43) — ``lead_id``
- ``stage_changed`` (R44) — ``lead_id``
- ``batch_deleted`` (R39) — ``ids`` + ``count`` (by ids) or ``count`` only (``all``)
- ``imported`` (R74, see imports_routes) — ``count``

R37 modes: without any of ``limit, offset, cursor, search, pipeline_id, stage_id, tag_ids`` the dashboard's
original board is served (``{"success":true,"leads":[...]}``, all leads newest first, capped at 10000,
cached byte-identical in Redis for 30 s). With any of them the list is paged (limit default 50,
capped at 1000) and filtered, and ``total``/``total_capped``/``limit``/``offset``/``next_cursor`` are added
(filtered totals are exact up to ``TOTAL_COUNT_CAP``, clarin.http.totals; ``cursor`` = a previous page's
``next_cursor``, keyset paging; ``search`` needs 3 characters or more).
"""

from __future__ import annotations

from clarin.crm import lead_create, lead_reads
from clarin.crm import leads as service
from clarin.crm.filtering import check_search
from clarin.http.cached import cached_read
from clarin.http.paging import page_params
from clarin.http.request import Request, parse_uuid
from clarin.http.response import RawJSONResponse
from clarin.http.routes import RouteGroup
from clarin.wire.common import Ok
from clarin.wire.leads import (
    LeadBatchDeleteBody,
    LeadCreateBody,
    LeadResponse,
    LeadsResponse,
    LeadStageBody,
    LeadStatusBody,
    LeadUpdateBody,
    MessageResponse,
)
from clarin.wire.queries import LeadsQuery

routes = RouteGroup(tags=("leads",))

INVALID_LEAD_ID = "Invalid lead ID"
PAGED_PARAMS = ("limit", "offset", "cursor", "search", "pipeline_id", "stage_id", "tag_ids")
DEFAULT_PAGE = 50


@routes.get("/api/leads", query=LeadsQuery, response=LeadsResponse)
@cached_read
async def list_leads(req: Request) -> RawJSONResponse:
    if not any(name in req.query for name in PAGED_PARAMS):
        return RawJSONResponse(await lead_reads.board_body(req.app, req.account_id))
    page = page_params(req, DEFAULT_PAGE)
    pipeline = req.query_str("pipeline_id").strip()
    stage = req.query_str("stage_id").strip()
    flt = lead_reads.LeadFilter(
        search=check_search(service.check_text("search", req.query_str("search").strip())),
        pipeline_id=parse_uuid(pipeline, "Invalid pipeline_id") if pipeline else None,
        stage_id=parse_uuid(stage, "Invalid stage_id") if stage else None,
        tag_ids=[parse_uuid(raw, "Invalid tag_ids") for raw in req.query_list("tag_ids")] or None,
    )
    cursor = lead_reads.parse_cursor(req.query_str("cursor").strip())
    body = await lead_reads.list_page(req.app, req.account_id, flt, page.limit, page.offset, cursor)
    return RawJSONResponse(body)


@routes.post("/api/leads", body=LeadCreateBody, response=LeadResponse, status=201)
async def create_lead(req: Request, body: LeadCreateBody) -> RawJSONResponse:
    lead = await lead_create.create_lead(req.app, req.account_id, body)
    return RawJSONResponse(b'{"lead":' + lead + b',"success":true}', 201)


@routes.delete("/api/leads/batch", body=LeadBatchDeleteBody, response=MessageResponse)
async def batch_delete(req: Request, body: LeadBatchDeleteBody) -> MessageResponse:
    return MessageResponse(message=await service.batch_delete(req.app, req.account_id, body))


@routes.get("/api/leads/:id", response=LeadResponse)
@cached_read
async def get_lead(req: Request) -> RawJSONResponse:
    lead_id = req.path_uuid("id", INVALID_LEAD_ID)
    lead = await lead_reads.lead_body(req.app.db, req.account_id, lead_id)
    return RawJSONResponse(b'{"lead":' + lead + b',"success":true}')


@routes.put("/api/leads/:id", body=LeadUpdateBody, response=LeadResponse)
async def update_lead(req: Request, body: LeadUpdateBody) -> LeadResponse:
    lead_id = req.path_uuid("id", INVALID_LEAD_ID)
    return LeadResponse(lead=await service.update_lead(req.app, req.account_id, lead_id, body))


@routes.delete("/api/leads/:id", response=MessageResponse)
async def delete_lead(req: Request) -> MessageResponse:
    await service.delete_lead(req.app, req.account_id, req.path_uuid("id", INVALID_LEAD_ID))
    return MessageResponse(message="Lead deleted")


@routes.patch("/api/leads/:id/status", body=LeadStatusBody, response=Ok)
async def set_status(req: Request, body: LeadStatusBody) -> Ok:
    await service.set_status(req.app, req.account_id, req.path_uuid("id", INVALID_LEAD_ID), body.status)
    return Ok()


@routes.patch("/api/leads/:id/stage", body=LeadStageBody, response=Ok)
async def set_stage(req: Request, body: LeadStageBody) -> Ok:
    await service.set_stage(req.app, req.account_id, req.path_uuid("id", INVALID_LEAD_ID), body.stage_id)
    return Ok()
