"""Pipelines and stages, R46–R53 (spec §4.8). Rules live in ``clarin.crm.pipelines``.

Live events (WebSocket, to the caller's account only, sent after the change is committed):

- ``pipeline_update`` ``{"action": "created" | "updated" | "deleted" | "stages_reordered", "pipeline_id"}``
  and ``{"action": "stage_created" | "stage_updated" | "stage_deleted", "pipeline_id", "stage_id"}``.
  ``stages_reordered`` is sent only when at least one stage of the pipeline was repositioned.
- ``lead_update`` ``{"action": "stage_changed", "ids": [lead_id, ...]}`` after a pipeline or stage delete that
  detached leads (pipeline delete: ``pipeline_id``/``stage_id`` cleared; stage delete: ``stage_id`` cleared), or
  ``{"action": "bulk_changed"}`` instead when more than 500 leads were detached. Not sent when no lead was affected.

Leads cache (``leads:<account_id>``) dropped by: pipeline update/delete, stage update/delete/reorder.
"""

from __future__ import annotations

from clarin.crm import pipelines as service
from clarin.http.request import Request
from clarin.http.routes import RouteGroup
from clarin.wire.common import Ok
from clarin.wire.pipelines import (
    PipelineCreateBody,
    PipelineResponse,
    PipelinesResponse,
    PipelineUpdateBody,
    StageCreateBody,
    StageReorderBody,
    StageResponse,
    StageUpdateBody,
)

routes = RouteGroup(tags=("pipelines",))

INVALID_PIPELINE_ID = "Invalid pipeline ID"
INVALID_STAGE_ID = "Invalid stage ID"


@routes.get("/api/pipelines", response=PipelinesResponse)
async def list_pipelines(req: Request) -> PipelinesResponse:
    return PipelinesResponse(pipelines=await service.list_pipelines(req.app, req.account_id))


@routes.post(
    "/api/pipelines", body=PipelineCreateBody, body_error=service.NAME_REQUIRED, response=PipelineResponse, status=201
)
async def create_pipeline(req: Request, body: PipelineCreateBody) -> PipelineResponse:
    return PipelineResponse(pipeline=await service.create_pipeline(req.app, req.account_id, body))


@routes.put("/api/pipelines/:id", body=PipelineUpdateBody, response=PipelineResponse)
async def update_pipeline(req: Request, body: PipelineUpdateBody) -> PipelineResponse:
    pipeline_id = req.path_uuid("id", INVALID_PIPELINE_ID)
    return PipelineResponse(pipeline=await service.update_pipeline(req.app, req.account_id, pipeline_id, body))


@routes.delete("/api/pipelines/:id", response=Ok)
async def delete_pipeline(req: Request) -> Ok:
    await service.delete_pipeline(req.app, req.account_id, req.path_uuid("id", INVALID_PIPELINE_ID))
    return Ok()


@routes.post(
    "/api/pipelines/:id/stages", body=StageCreateBody, body_error=service.NAME_REQUIRED, response=StageResponse,
    status=201,
)
async def create_stage(req: Request, body: StageCreateBody) -> StageResponse:
    pipeline_id = req.path_uuid("id", INVALID_PIPELINE_ID)
    return StageResponse(stage=await service.create_stage(req.app, req.account_id, pipeline_id, body))


@routes.put("/api/pipelines/:id/stages/reorder", body=StageReorderBody, response=Ok)
async def reorder_stages(req: Request, body: StageReorderBody) -> Ok:
    pipeline_id = req.path_uuid("id", INVALID_PIPELINE_ID)
    await service.reorder_stages(req.app, req.account_id, pipeline_id, body.stage_ids or [])
    return Ok()


@routes.put("/api/pipelines/:id/stages/:stageId", body=StageUpdateBody, response=StageResponse)
async def update_stage(req: Request, body: StageUpdateBody) -> StageResponse:
    pipeline_id = req.path_uuid("id", INVALID_PIPELINE_ID)
    stage_id = req.path_uuid("stageId", INVALID_STAGE_ID)
    return StageResponse(stage=await service.update_stage(req.app, req.account_id, pipeline_id, stage_id, body))


@routes.delete("/api/pipelines/:id/stages/:stageId", response=Ok)
async def delete_stage(req: Request) -> Ok:
    pipeline_id = req.path_uuid("id", INVALID_PIPELINE_ID)
    stage_id = req.path_uuid("stageId", INVALID_STAGE_ID)
    await service.delete_stage(req.app, req.account_id, pipeline_id, stage_id)
    return Ok()
