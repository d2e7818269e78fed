"""Campaign routes R61–R73 and R97 (spec api.md §4.10, §4.13; rules in :mod:`clarin.campaigns.service`
and :mod:`clarin.campaigns.recipients`).

Path ids: ``400 Invalid campaign ID`` / ``Invalid recipient ID`` / ``Invalid event ID``; foreign or unknown
ids are 404. WebSocket: ``campaign_status {campaign_id, status}`` on every status change (start, pause,
PUT status; the worker adds scheduled starts, completion and failure) and ``campaign_progress`` from
the worker (docs/EVENTS.md).
"""

from __future__ import annotations

import uuid

import msgspec

from clarin.campaigns import recipients, service
from clarin.http.errors import HTTPError
from clarin.http.json import NUL_MESSAGE, TOO_DEEP, JSONHasNUL, JSONTooDeep, decoder_for
from clarin.http.paging import page_params
from clarin.http.request import Request
from clarin.http.routes import RouteGroup
from clarin.messaging.idempotency import IdemClaim, idempotent
from clarin.wire.campaigns import (
    AttachmentsBody,
    AttachmentsResponse,
    BatchDeleteBody,
    CampaignCreateBody,
    CampaignList,
    CampaignResponse,
    CampaignUpdateBody,
    DeletedResponse,
    DuplicateBody,
    EventCampaignBody,
    EventCampaignResponse,
    MessageResponse,
    RecipientList,
    RecipientsAdded,
    RecipientsBody,
)
from clarin.wire.common import Ok
from clarin.wire.queries import PageQuery

routes = RouteGroup(tags=("campaigns",))

INVALID_CAMPAIGN_ID = "Invalid campaign ID"
INVALID_RECIPIENT_ID = "Invalid recipient ID"
INVALID_EVENT_ID = "Invalid event ID"


def _campaign_id(req: Request) -> uuid.UUID:
    return req.path_uuid("id", INVALID_CAMPAIGN_ID)


@routes.get("/api/campaigns", response=CampaignList)
async def list_campaigns(req: Request) -> CampaignList:
    return CampaignList(campaigns=await service.list_campaigns(req.app, req.account_id))


@routes.post("/api/campaigns", body=CampaignCreateBody, response=CampaignResponse, status=201)
async def create_campaign(req: Request, body: CampaignCreateBody) -> CampaignResponse:
    return CampaignResponse(campaign=await service.create_campaign(req.app, req.account_id, body))


@routes.post("/api/campaigns/batch-delete", body=BatchDeleteBody, response=DeletedResponse)
async def batch_delete(req: Request, body: BatchDeleteBody) -> DeletedResponse:
    return DeletedResponse(deleted=await service.delete_campaigns(req.app, req.account_id, body.ids))


@routes.get("/api/campaigns/:id", response=CampaignResponse)
async def get_campaign(req: Request) -> CampaignResponse:
    return CampaignResponse(campaign=await service.get_campaign(req.app, req.account_id, _campaign_id(req)))


@routes.put("/api/campaigns/:id", body=CampaignUpdateBody, response=CampaignResponse)
async def update_campaign(req: Request, body: CampaignUpdateBody) -> CampaignResponse:
    campaign = await service.update_campaign(req.app, req.account_id, _campaign_id(req), body)
    return CampaignResponse(campaign=campaign)


@routes.delete("/api/campaigns/:id", response=Ok)
async def delete_campaign(req: Request) -> Ok:
    await service.delete_campaign(req.app, req.account_id, _campaign_id(req))
    return Ok()


@routes.post("/api/campaigns/:id/recipients", body=RecipientsBody, response=RecipientsAdded)
async def add_recipients(req: Request, body: RecipientsBody) -> RecipientsAdded:
    return await recipients.add_recipients(req.app, req.account_id, _campaign_id(req), body)


@routes.get("/api/campaigns/:id/recipients", query=PageQuery, response=RecipientList)
async def list_recipients(req: Request) -> RecipientList:
    campaign_id = _campaign_id(req)
    page = page_params(req, recipients.RECIPIENT_PAGE, recipients.RECIPIENT_PAGE)
    items, total = await recipients.list_recipients(req.app, req.account_id, campaign_id, page.limit, page.offset)
    return RecipientList(recipients=items, total=total)


@routes.delete("/api/campaigns/:id/recipients/:rid", response=Ok)
async def remove_recipient(req: Request) -> Ok:
    campaign_id = _campaign_id(req)
    recipient_id = req.path_uuid("rid", INVALID_RECIPIENT_ID)
    await recipients.remove_recipient(req.app, req.account_id, campaign_id, recipient_id)
    return Ok()


@routes.post("/api/campaigns/:id/start", response=MessageResponse)
@idempotent
async def start_campaign(req: Request, idem: IdemClaim | None = None) -> MessageResponse:
    """Start or resume the campaign.

    ``Idempotency-Key`` (clarin.messaging.idempotency): a retry gets the first answer."""
    await service.start_campaign(req.app, req.account_id, _campaign_id(req))
    return MessageResponse(message="Campaign started")


@routes.post("/api/campaigns/:id/pause", response=MessageResponse)
async def pause_campaign(req: Request) -> MessageResponse:
    await service.pause_campaign(req.app, req.account_id, _campaign_id(req))
    return MessageResponse(message="Campaign paused")


@routes.post("/api/campaigns/:id/duplicate", response=CampaignResponse, status=201)
async def duplicate_campaign(req: Request) -> CampaignResponse:
    campaign_id = _campaign_id(req)
    raw = await req.body()
    try:  # the body is optional and a bad one is ignored, as in the original; the decoder's rules still hold
        template = decoder_for(DuplicateBody).decode(raw).message_template if raw.strip() else None
    except JSONHasNUL as exc:
        raise HTTPError(400, NUL_MESSAGE, detail=str(exc)) from None
    except JSONTooDeep:
        raise HTTPError(400, TOO_DEEP) from None
    except (msgspec.DecodeError, msgspec.ValidationError):
        template = None
    campaign = await service.duplicate_campaign(req.app, req.account_id, campaign_id, template)
    return CampaignResponse(campaign=campaign)


@routes.put("/api/campaigns/:id/attachments", body=AttachmentsBody, response=AttachmentsResponse)
async def replace_attachments(req: Request, body: AttachmentsBody) -> AttachmentsResponse:
    items = await service.replace_attachments(req.app, req.account_id, _campaign_id(req), body.attachments)
    return AttachmentsResponse(attachments=items or None)


@routes.post("/api/events/:id/campaign", body=EventCampaignBody, response=EventCampaignResponse, status=201)
async def campaign_from_event(req: Request, body: EventCampaignBody) -> EventCampaignResponse:
    event_id = req.path_uuid("id", INVALID_EVENT_ID)
    campaign, added, skipped = await recipients.campaign_from_event(req.app, req.account_id, event_id, body)
    return EventCampaignResponse(campaign=campaign, recipients_count=added, skipped=skipped)
