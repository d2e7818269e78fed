"""Kommo routes R105–R112 (spec api.md §4.16, integrations.md A.7, A.15, A.16).

Kommo is configured iff ``KOMMO_SUBDOMAIN`` and ``KOMMO_ACCESS_TOKEN`` are set; otherwise every route but
R105 answers ``503 Kommo not configured``. Live Kommo calls (R105, R107, R109) go through the same client and
shared rate limiter as the background sync (the original built a fresh, unlimited client per request).

Live events: background and full syncs that changed leads broadcast ``lead_update``
``{"pipeline_id": <Kommo pipeline id>, "count": <changed leads>}`` after dropping the leads cache.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from clarin.crm.leads_cache import invalidate_leads
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.http.request import INT64_MAX, Request
from clarin.http.routes import RouteGroup
from clarin.kommo.client import KommoError
from clarin.kommo.poller import ALREADY_RUNNING, KommoService
from clarin.kommo.records import KPipeline, decode_items
from clarin.kommo.sync import PipelineNotFound
from clarin.wire.common import Ok
from clarin.wire.kommo import (
    ConnectedListResponse,
    ConnectedPipeline,
    ConnectResponse,
    FullStatusResponse,
    FullSyncStatus,
    KommoAccount,
    KommoPipelineInfo,
    KommoPipelinesResponse,
    KommoStatusResponse,
    MessageResponse,
    WorkerStatus,
    WorkerStatusResponse,
)

routes = RouteGroup(tags=("kommo",))

Q_CONNECTED_LIST = query("kommo_connected_list")
Q_ENABLED_IDS = query("kommo_connected_enabled_ids")
Q_CONNECT = query("kommo_connect")
Q_DISCONNECT = query("kommo_disconnect")

NOT_CONFIGURED = "Kommo not configured"
INVALID_PIPELINE_ID = "Invalid pipeline ID"
STARTED = "Sincronización iniciada en segundo plano"
LIST_CAP = 10_000
_DIGITS = re.compile(r"\+?[0-9]{1,19}")
LIVE_RETRIES = 1  # status / list calls answer a person: one retry, not the background's five


def _service(req: Request) -> KommoService:
    service: KommoService | None = getattr(req.app, "kommo", None)
    if service is None:
        raise HTTPError(503, NOT_CONFIGURED)
    return service


def _kommo_pipeline_id(req: Request) -> int:
    raw = req.params.get("kommoId", "")
    if not _DIGITS.fullmatch(raw):
        raise HTTPError(400, INVALID_PIPELINE_ID)
    value = int(raw)
    if not 0 < value <= INT64_MAX:
        raise HTTPError(400, INVALID_PIPELINE_ID)
    return value


@routes.get("/api/kommo/status", response=KommoStatusResponse)
async def kommo_status(req: Request) -> KommoStatusResponse:
    settings = req.app.settings
    service: KommoService | None = getattr(req.app, "kommo", None)
    if service is None:
        return KommoStatusResponse(configured=False, subdomain=settings.kommo_subdomain)
    try:
        account = await service.client.account(retries=LIVE_RETRIES)
    except KommoError as exc:
        return KommoStatusResponse(configured=True, subdomain=settings.kommo_subdomain, connected=False,
                                   error=str(exc))
    return KommoStatusResponse(
        configured=True, subdomain=settings.kommo_subdomain, connected=True,
        account=KommoAccount(id=_int(account.get("id")), name=_str(account.get("name")),
                             currency=_str(account.get("currency")), country=_str(account.get("country"))),
    )


@routes.post("/api/kommo/sync", response=MessageResponse)
async def start_full_sync(req: Request) -> MessageResponse:
    service = _service(req)
    if not await service.start_full_sync(req.account_id):
        raise HTTPError(409, ALREADY_RUNNING)
    return MessageResponse(message=STARTED)


@routes.get("/api/kommo/pipelines", response=KommoPipelinesResponse)
async def kommo_pipelines(req: Request) -> KommoPipelinesResponse:
    service = _service(req)
    try:
        raw = await service.client.pipelines(retries=LIVE_RETRIES)
    except KommoError as exc:
        raise HTTPError(500, str(exc)) from None
    pipelines, _ = decode_items(raw, KPipeline, "pipeline")
    if not pipelines:
        return KommoPipelinesResponse(pipelines=None)
    rows = await req.app.db.fetch(Q_ENABLED_IDS, [req.account_id, LIST_CAP])
    connected = {int(row["kommo_pipeline_id"]) for row in rows}
    return KommoPipelinesResponse(pipelines=[
        KommoPipelineInfo(
            id=p.id, name=p.name or "", is_main=bool(p.is_main),
            stages=len(p.embedded.statuses or []) if p.embedded else 0, connected=p.id in connected,
        )
        for p in pipelines
    ])


@routes.get("/api/kommo/connected", response=ConnectedListResponse)
async def connected_pipelines(req: Request) -> ConnectedListResponse:
    _service(req)
    rows = await req.app.db.fetch(Q_CONNECTED_LIST, [req.account_id, LIST_CAP])
    return ConnectedListResponse(connected=[_connected(row) for row in rows])


@routes.post("/api/kommo/pipelines/:kommoId/connect", response=ConnectResponse)
async def connect_pipeline(req: Request) -> ConnectResponse:
    service = _service(req)
    kommo_id = _kommo_pipeline_id(req)
    account_id = req.account_id
    try:
        pipeline_id = await service.sync.sync_pipeline(account_id, kommo_id)
    except (KommoError, PipelineNotFound) as exc:
        raise HTTPError(500, f"failed to sync pipeline metadata: {exc}") from None
    try:
        await service.sync.sync_tags(account_id)
    except KommoError:
        pass  # A.7 step 2: tag errors do not stop the connect
    row = await req.app.db.fetch_row(Q_CONNECT, [account_id, kommo_id, pipeline_id])
    assert row is not None
    await invalidate_leads(req.app, account_id)  # stage names/colours the board embeds may have changed
    service.enqueue(account_id, kommo_id, full=True)
    connected = _connected(row)
    connected.pipeline_name = None  # R109 answers without pipeline_name
    return ConnectResponse(connected_pipeline=connected)


@routes.delete("/api/kommo/pipelines/:kommoId/connect", response=Ok)
async def disconnect_pipeline(req: Request) -> Ok:
    _service(req)
    kommo_id = _kommo_pipeline_id(req)
    await req.app.db.execute(Q_DISCONNECT, [req.account_id, kommo_id])
    return Ok()


@routes.get("/api/kommo/sync/status", response=WorkerStatusResponse)
async def worker_status(req: Request) -> WorkerStatusResponse:
    service = _service(req)
    return WorkerStatusResponse(status=msgspec.convert(await service.worker_status(), WorkerStatus))


@routes.get("/api/kommo/sync/full-status", response=FullStatusResponse)
async def full_status(req: Request) -> FullStatusResponse:
    service = _service(req)
    doc = await service.full_status(req.account_id)
    if doc is None:
        return FullStatusResponse(status=None)
    return FullStatusResponse(status=msgspec.convert(doc, FullSyncStatus))


def _connected(row: dict[str, Any]) -> ConnectedPipeline:
    return ConnectedPipeline(
        id=str(row["id"]), account_id=str(row["account_id"]), kommo_pipeline_id=int(row["kommo_pipeline_id"]),
        pipeline_id=str(row["pipeline_id"]) if row.get("pipeline_id") else None,
        pipeline_name=row.get("pipeline_name") or None, enabled=bool(row["enabled"]),
        last_synced_at=row.get("last_synced_at"), created_at=row["created_at"],
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""

