"""Pipelines and stages (spec §7 Pipeline / Stage, routes R46–R53)."""

from __future__ import annotations

from datetime import datetime

import msgspec


class Stage(msgspec.Struct, omit_defaults=True, kw_only=True):
    """``lead_count`` is omitted when 0 (Go omitempty); ``kommo_id`` is never loaded, as in the original."""

    id: str
    pipeline_id: str
    name: str
    color: str
    position: int
    created_at: datetime
    lead_count: int = 0


class Pipeline(msgspec.Struct, omit_defaults=True, kw_only=True):
    """``stages`` is omitted when empty (create answers without it, as the original)."""

    id: str
    account_id: str
    name: str
    description: str | None = None
    is_default: bool
    kommo_id: int | None = None
    stages: list[Stage] = []
    created_at: datetime
    updated_at: datetime


class PipelineCreateBody(msgspec.Struct):
    name: str = ""
    description: str | None = None


class PipelineUpdateBody(msgspec.Struct):
    name: str | None = None
    description: str | None = None


class StageCreateBody(msgspec.Struct):
    name: str = ""
    color: str = ""


class StageUpdateBody(msgspec.Struct):
    name: str | None = None
    color: str | None = None
    position: int | None = None  # range checked by the service (0..MAX_POSITION, its own message)


class StageReorderBody(msgspec.Struct):
    stage_ids: list[str] | None = None


class PipelinesResponse(msgspec.Struct):
    pipelines: list[Pipeline]
    success: bool = True


class PipelineResponse(msgspec.Struct):
    pipeline: Pipeline
    success: bool = True


class StageResponse(msgspec.Struct):
    stage: Stage
    success: bool = True
