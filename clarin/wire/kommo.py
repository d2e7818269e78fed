"""Kommo wire types, R105–R112 (spec api.md §4.16, integrations.md A.16)."""

from __future__ import annotations

from datetime import datetime

import msgspec


class KommoAccount(msgspec.Struct):
    id: int
    name: str
    currency: str
    country: str


class KommoStatusResponse(msgspec.Struct, kw_only=True):
    """R105. ``connected``/``account``/``error`` only when Kommo is configured (``error`` only on failure)."""

    configured: bool
    subdomain: str
    connected: bool | msgspec.UnsetType = msgspec.UNSET
    account: KommoAccount | msgspec.UnsetType = msgspec.UNSET
    error: str | msgspec.UnsetType = msgspec.UNSET
    success: bool = True


class MessageResponse(msgspec.Struct):
    message: str
    success: bool = True


class KommoPipelineInfo(msgspec.Struct):
    """R107: ``stages`` counts every Kommo status, won/lost (142/143) included."""

    id: int
    name: str
    is_main: bool
    stages: int
    connected: bool


class KommoPipelinesResponse(msgspec.Struct):
    pipelines: list[KommoPipelineInfo] | None
    success: bool = True


class ConnectedPipeline(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    account_id: str
    kommo_pipeline_id: int
    pipeline_id: str | None = None
    pipeline_name: str | None = None  # R108 only; omitted when empty
    enabled: bool
    last_synced_at: datetime | None = None
    created_at: datetime


class ConnectedListResponse(msgspec.Struct):
    connected: list[ConnectedPipeline]
    success: bool = True


class ConnectResponse(msgspec.Struct):
    connected_pipeline: ConnectedPipeline
    success: bool = True


class WorkerStatus(msgspec.Struct, omit_defaults=True, kw_only=True):
    """R111. ``last_error`` (additive): why the last background sync failed or what it skipped, omitted
    when it succeeded cleanly — e.g. the access token refused by Kommo."""

    running: bool
    queue_length: int
    last_check: datetime | None = None
    last_synced_pipeline: str | None = None
    connected_count: int
    last_error: str | None = None


class WorkerStatusResponse(msgspec.Struct):
    status: WorkerStatus
    success: bool = True


class FullSyncResult(msgspec.Struct, omit_defaults=True, kw_only=True):
    pipelines: int
    stages: int
    tags: int
    leads: int
    contacts: int
    errors: list[str] | None = None
    duration: str
    synced_at: datetime


class FullSyncStatus(msgspec.Struct, omit_defaults=True, kw_only=True):
    running: bool
    progress: str
    result: FullSyncResult | None = None
    error: str | None = None
    started_at: datetime
    done_at: datetime | None = None


class FullStatusResponse(msgspec.Struct):
    status: FullSyncStatus | None
    success: bool = True
