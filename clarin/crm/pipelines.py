"""Pipelines and stages (spec §4.8, R46–R53), with the original's flaws fixed.

- Every statement is scoped to the caller's account; stages through their pipeline. Foreign or unknown IDs → 404.
- The list is two statements (pipelines, then all their stages with LATERAL lead counts), never one per row.
- Partial updates change only the fields sent; the stage update answers with the stored row.
- Deletes run in one transaction: the affected leads are detached (``updated_at`` bumped) before the rows go.
- Writes that change what ``GET /api/leads`` shows (stage name/color/position, detached leads) drop the leads cache.
- Live events go out after commit (see ``pipelines_routes`` for the list).
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from clarin._speedups import group_rows
from clarin.crm import text_fields
from clarin.crm.leads_cache import invalidate_leads
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.http.request import parse_uuid
from clarin.state import AppState
from clarin.webhooks.recording import Recorder, recording
from clarin.wire.pipelines import (
    Pipeline,
    PipelineCreateBody,
    PipelineUpdateBody,
    Stage,
    StageCreateBody,
    StageUpdateBody,
)

Q_LIST = query("pipelines_list")
Q_STAGES_OF = query("pipeline_stages_of")
Q_CREATE = query("pipeline_create")
Q_UPDATE = query("pipeline_update")
Q_LOCK = query("pipeline_lock")
Q_DETACH_PIPELINE_LEADS = query("pipeline_detach_leads")
Q_DELETE = query("pipeline_delete")
Q_STAGE_CREATE = query("stage_create")
Q_STAGE_UPDATE = query("stage_update")
Q_STAGES_REORDER = query("stages_reorder")
Q_STAGE_LOCK = query("stage_lock")
Q_DETACH_STAGE_LEADS = query("stage_detach_leads")
Q_STAGE_DELETE = query("stage_delete")

MAX_PIPELINES = 1000
MAX_EVENT_IDS = 500  # a lead_update with more detached leads than this says "bulk_changed" instead of listing ids
MAX_POSITION = 2**31 - 1
DEFAULT_COLOR = "#6366f1"
NAME_MAX = 255
COLOR_MAX = 50
PIPELINE_NOT_FOUND = "Pipeline not found"
STAGE_NOT_FOUND = "Stage not found"
NAME_REQUIRED = "Name is required"

PIPELINE_EVENT = "pipeline_update"
LEAD_EVENT = "lead_update"


# -- pipelines ----------------------------------------------------------------------------------------
async def list_pipelines(state: AppState, account_id: uuid.UUID) -> list[Pipeline]:
    rows = await state.db.fetch(Q_LIST, [account_id, MAX_PIPELINES])
    if not rows:
        return []
    stages = await _stages_by_pipeline(state, account_id, [uuid.UUID(str(row["id"])) for row in rows])
    pipelines = msgspec.convert(rows, list[Pipeline])
    for pipeline in pipelines:
        pipeline.stages = stages.get(pipeline.id, [])
    return pipelines


async def create_pipeline(state: AppState, account_id: uuid.UUID, body: PipelineCreateBody) -> Pipeline:
    name = text_fields.required(body.name, NAME_REQUIRED, "Name", NAME_MAX)
    description = _description(body.description) or None
    async with recording(state, account_id) as rec:
        row = await rec.db.fetch_row(Q_CREATE, [account_id, name, description])
        pipeline = msgspec.convert(row, Pipeline)
        _pipeline_event(rec, "created", pipeline.id)
    return pipeline


async def update_pipeline(
    state: AppState, account_id: uuid.UUID, pipeline_id: uuid.UUID, body: PipelineUpdateBody
) -> Pipeline:
    name = text_fields.optional(body.name, NAME_REQUIRED, "Name", NAME_MAX)
    async with recording(state, account_id) as rec:
        row = await rec.db.fetch_row(Q_UPDATE, [pipeline_id, account_id, name, _description(body.description)])
        if row is None:
            raise HTTPError(404, PIPELINE_NOT_FOUND)
        pipeline = msgspec.convert(row, Pipeline)
        rec.on_commit(lambda: invalidate_leads(state, account_id))
        _pipeline_event(rec, "updated", pipeline.id)
    pipeline.stages = (await _stages_by_pipeline(state, account_id, [pipeline_id])).get(pipeline.id, [])
    return pipeline


async def delete_pipeline(state: AppState, account_id: uuid.UUID, pipeline_id: uuid.UUID) -> None:
    async with recording(state, account_id) as rec, rec.transaction() as tx:
        if await tx.fetch_row(Q_LOCK, [pipeline_id, account_id]) is None:
            raise HTTPError(404, PIPELINE_NOT_FOUND)
        detached = await tx.fetch_row(Q_DETACH_PIPELINE_LEADS, [pipeline_id, account_id, MAX_EVENT_IDS + 1])
        await tx.execute(Q_DELETE, [pipeline_id, account_id])
        rec.on_commit(lambda: invalidate_leads(state, account_id))
        _pipeline_event(rec, "deleted", str(pipeline_id))
        _leads_detached_event(rec, detached)


# -- stages -------------------------------------------------------------------------------------------
async def create_stage(
    state: AppState, account_id: uuid.UUID, pipeline_id: uuid.UUID, body: StageCreateBody
) -> Stage:
    name = text_fields.required(body.name, NAME_REQUIRED, "Name", NAME_MAX)
    color = text_fields.checked(body.color.strip(), "Color", COLOR_MAX) or DEFAULT_COLOR
    async with recording(state, account_id) as rec:
        row = await rec.db.fetch_row(Q_STAGE_CREATE, [pipeline_id, account_id, name, color])
        if row is None:
            raise HTTPError(404, PIPELINE_NOT_FOUND)
        stage = msgspec.convert(row, Stage)
        # A new stage holds no leads yet, so the leads cache stays valid.
        _pipeline_event(rec, "stage_created", stage.pipeline_id, stage.id)
    return stage


async def reorder_stages(
    state: AppState, account_id: uuid.UUID, pipeline_id: uuid.UUID, raw_ids: list[str]
) -> None:
    ids = _valid_unique_uuids(raw_ids)
    async with recording(state, account_id) as rec:
        result = await rec.db.fetch_row(Q_STAGES_REORDER, [pipeline_id, account_id, ids])
        if result is None or not result["found"]:
            raise HTTPError(404, PIPELINE_NOT_FOUND)
        if result["updated"]:
            rec.on_commit(lambda: invalidate_leads(state, account_id))  # leads embed stage_position
            _pipeline_event(rec, "stages_reordered", str(pipeline_id))


async def update_stage(
    state: AppState, account_id: uuid.UUID, pipeline_id: uuid.UUID, stage_id: uuid.UUID, body: StageUpdateBody
) -> Stage:
    name = text_fields.optional(body.name, NAME_REQUIRED, "Name", NAME_MAX)
    color = text_fields.optional(body.color, "Color cannot be empty", "Color", COLOR_MAX)
    if body.position is not None and not 0 <= body.position <= MAX_POSITION:
        raise HTTPError(400, "Position must be a non-negative integer")
    async with recording(state, account_id) as rec:
        row = await rec.db.fetch_row(Q_STAGE_UPDATE, [stage_id, pipeline_id, account_id, name, color, body.position])
        if row is None:
            raise HTTPError(404, STAGE_NOT_FOUND)
        stage = msgspec.convert(row, Stage)
        rec.on_commit(lambda: invalidate_leads(state, account_id))  # leads embed stage_name / _color / _position
        _pipeline_event(rec, "stage_updated", stage.pipeline_id, stage.id)
    return stage


async def delete_stage(
    state: AppState, account_id: uuid.UUID, pipeline_id: uuid.UUID, stage_id: uuid.UUID
) -> None:
    async with recording(state, account_id) as rec, rec.transaction() as tx:
        if await tx.fetch_row(Q_STAGE_LOCK, [stage_id, pipeline_id, account_id]) is None:
            raise HTTPError(404, STAGE_NOT_FOUND)
        detached = await tx.fetch_row(Q_DETACH_STAGE_LEADS, [stage_id, account_id, MAX_EVENT_IDS + 1])
        await tx.execute(Q_STAGE_DELETE, [stage_id, pipeline_id])
        rec.on_commit(lambda: invalidate_leads(state, account_id))
        _pipeline_event(rec, "stage_deleted", str(pipeline_id), str(stage_id))
        _leads_detached_event(rec, detached)


# -- helpers ------------------------------------------------------------------------------------------
async def _stages_by_pipeline(
    state: AppState, account_id: uuid.UUID, pipeline_ids: list[uuid.UUID]
) -> dict[str, list[Stage]]:
    rows = await state.db.fetch(Q_STAGES_OF, [pipeline_ids, account_id])
    grouped = group_rows(rows, "pipeline_id")
    return {str(key): msgspec.convert(items, list[Stage]) for key, items in grouped.items()}


def _description(value: str | None) -> str | None:
    """``None`` = not sent; ``""`` clears it (stored as NULL)."""
    if value is None:
        return None
    return text_fields.checked(value.strip(), "Description", None)


def _valid_unique_uuids(raw_ids: list[str]) -> list[uuid.UUID]:
    """Invalid UUIDs are skipped (R51); a repeated id keeps its first place."""
    seen: dict[uuid.UUID, None] = {}
    for raw in raw_ids:
        try:
            seen.setdefault(parse_uuid(raw, ""), None)
        except HTTPError:
            continue
    return list(seen)


def _pipeline_event(rec: Recorder, action: str, pipeline_id: str, stage_id: str | None = None) -> None:
    payload: dict[str, Any] = {"action": action, "pipeline_id": pipeline_id}
    if stage_id is not None:
        payload["stage_id"] = stage_id
    rec.emit(PIPELINE_EVENT, payload)


def _leads_detached_event(rec: Recorder, detached: dict[str, Any] | None) -> None:
    if detached is None or not detached["n"]:
        return
    ids = [str(i) for i in detached["ids"] or []]
    if detached["n"] <= MAX_EVENT_IDS and len(ids) == detached["n"]:
        rec.emit(LEAD_EVENT, {"action": "stage_changed", "ids": ids})
    else:
        rec.emit(LEAD_EVENT, {"action": "bulk_changed"})
