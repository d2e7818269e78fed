"""Campaign rules (spec api.md §4.10 R61–R66, R70–R73; integrations.md C.1–C.3), with the original's flaws fixed.

- Tenant-scoped everywhere: a foreign or unknown campaign is ``404 Campaign not found``, a foreign or unknown
  device ``404 Device not found``, a foreign event ``404 Event not found``, a media URL into another
  account's storage keys ``404 Media not found`` (never stored, as a send of it would be refused).
- Validation: ``name`` and ``device_id`` required; a template, attachments or a legacy media required;
  ``scheduled_at`` must be RFC 3339 with a zone and not in the past (``SCHEDULE_GRACE``); attachments need a
  ``media_url`` and a known ``media_type``; ``settings`` must be an object (``settings.validate``).
- Updates write only the keys sent and never the counters (the original rewrote the whole row from a
  snapshot and could clobber the worker's increments).
- The status machine (409 on a bad transition)::

      draft ─┬─ start ──────────▶ running ── pause ──▶ paused ── start ──▶ running
      scheduled ─ start / due ──▶ running ── all processed ──▶ completed (final: not startable, not editable
      failed ── start ──────────▶ running                                   back to draft/scheduled)
      PUT status: draft ⇄ scheduled, and paused/failed/running → draft/scheduled (stops sending)

  ``paused`` is also set by the worker when the campaign's device was logged out (unlinked from the phone) or its
  number gave a danger signal (docs/NUMBER_HEALTH.md); ``failed`` is no longer set by the worker.
- Every status change broadcasts ``campaign_status {campaign_id, status}`` after the commit; its webhook outbox
  rows are written in the same transaction (clarin.webhooks.recording).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from clarin._speedups import group_rows
from clarin.campaigns import settings as campaign_settings
from clarin.campaigns.compose import MEDIA_TYPES
from clarin.crm.filtering import blank_to_none, lenient_uuid, strict_uuid
from clarin.db.pool import Transaction
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.messaging.media_source import refuse_foreign_media
from clarin.state import AppState
from clarin.webhooks.recording import Recorder, recording
from clarin.wire.campaigns import (
    Attachment,
    AttachmentInput,
    Campaign,
    CampaignCreateBody,
    CampaignStatusEvent,
    CampaignUpdateBody,
    EventCampaignBody,
)

Q_LIST = query("campaigns_list")
Q_GET = query("campaign_get")
Q_LOCK = query("campaign_lock_row")
Q_ATTACHMENTS_FOR = query("campaign_attachments_for")
Q_DEVICE_OWNED = query("campaign_device_owned")
Q_EVENT_OWNED = query("campaign_event_owned")
Q_CREATE = query("campaign_create")
Q_UPDATE = query("campaign_update")
Q_SET_STATUS = query("campaign_set_status")
Q_DELETE = query("campaign_delete")
Q_DELETE_MANY = query("campaigns_delete_many")
Q_ATTACHMENTS_DELETE = query("campaign_attachments_delete")
Q_ATTACHMENTS_INSERT = query("campaign_attachments_insert")
Q_DUPLICATE = query("campaign_duplicate")
Q_COPY_RECIPIENTS = query("campaign_copy_recipients")
Q_COPY_ATTACHMENTS = query("campaign_copy_attachments")
Q_RECOUNT = query("campaign_recount")

CAMPAIGN_NOT_FOUND = "Campaign not found"
DEVICE_NOT_FOUND = "Device not found"
EVENT_NOT_FOUND = "Event not found"
INVALID_DEVICE_ID = "Invalid device ID"
NAME_AND_DEVICE_REQUIRED = "name and device_id are required"
CONTENT_REQUIRED = "message_template or attachments required"
LIST_LIMIT = 100
MAX_ATTACHMENTS = 20
SCHEDULE_GRACE = timedelta(seconds=60)  # a "now" computed on the client may arrive a little late

DRAFT, SCHEDULED, RUNNING, PAUSED, COMPLETED, FAILED = "draft", "scheduled", "running", "paused", "completed", "failed"
STATUSES = frozenset({DRAFT, SCHEDULED, RUNNING, PAUSED, COMPLETED, FAILED})
STARTABLE = frozenset({DRAFT, SCHEDULED, PAUSED, FAILED})
PUT_TARGETS = frozenset({DRAFT, SCHEDULED})


@dataclass(frozen=True, slots=True)
class NewCampaign:
    """A validated create request (R62 / R97)."""

    name: str
    device_id: uuid.UUID
    template: str
    media_url: str | None
    media_type: str | None
    scheduled_at: datetime | None
    settings: dict[str, Any]
    attachments: list[AttachmentInput]


# -- input checks ---------------------------------------------------------------------------------------------
def parse_scheduled_at(raw: str | None, *, now: datetime | None = None) -> datetime | None:
    """``None``/``""`` → None; RFC 3339 with a zone, not in the past → aware datetime; else 400."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    try:
        value = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text)
    except ValueError:
        raise HTTPError(400, "scheduled_at must be an RFC 3339 time, e.g. 2030-01-31T09:00:00Z") from None
    if value.tzinfo is None:
        raise HTTPError(400, "scheduled_at needs a time zone offset, e.g. 2030-01-31T09:00:00-05:00")
    if value < (now or datetime.now(UTC)) - SCHEDULE_GRACE:
        raise HTTPError(400, "scheduled_at must be in the future")
    return value


def _media_type(value: str, what: str) -> str:
    kind = value.strip().lower()
    if kind not in MEDIA_TYPES:
        raise HTTPError(400, f"{what}: media_type must be one of {', '.join(sorted(MEDIA_TYPES))}")
    return kind


def check_attachments(items: list[AttachmentInput] | None) -> list[AttachmentInput]:
    items = items or []
    if len(items) > MAX_ATTACHMENTS:
        raise HTTPError(400, f"at most {MAX_ATTACHMENTS} attachments")
    out: list[AttachmentInput] = []
    for index, item in enumerate(items):
        what = f"attachment {index + 1}"
        if not item.media_url.strip():
            raise HTTPError(400, f"{what}: media_url is required")
        if item.file_size < 0:
            raise HTTPError(400, f"{what}: file_size must not be negative")
        out.append(msgspec.structs.replace(
            item, media_url=item.media_url.strip(), media_type=_media_type(item.media_type, what),
            position=item.position if item.position != 0 else index,  # spec: position 0 → array index
        ))
    return out


def _legacy_media(media_url: str | None, media_type: str | None) -> tuple[str | None, str | None]:
    url = blank_to_none(media_url)
    kind = blank_to_none(media_type)
    if url is None:
        return None, kind.strip().lower() if kind else None
    if kind is None:
        raise HTTPError(400, "media_type is required with media_url")
    return url.strip(), _media_type(kind, "media")


def _has_content(template: str, attachments: int, media_url: str | None) -> bool:
    return bool(template.strip()) or attachments > 0 or bool(media_url)


def check_settings(value: dict[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return dict(campaign_settings.DEFAULT_SETTINGS)
    return campaign_settings.validate(value)


async def owned_device(state: AppState | Transaction, account_id: uuid.UUID, raw: str | None) -> uuid.UUID:
    device_id = strict_uuid(raw, INVALID_DEVICE_ID)
    if device_id is None:
        raise HTTPError(400, NAME_AND_DEVICE_REQUIRED)
    db = state.db if isinstance(state, AppState) else state
    if await db.fetch_row(Q_DEVICE_OWNED, [account_id, device_id]) is None:
        raise HTTPError(404, DEVICE_NOT_FOUND)
    return device_id


async def validate_new(
    state: AppState, account_id: uuid.UUID, body: CampaignCreateBody | EventCampaignBody
) -> NewCampaign:
    name = body.name.strip()
    if not name or not body.device_id.strip():
        raise HTTPError(400, NAME_AND_DEVICE_REQUIRED)
    attachments = check_attachments(body.attachments)
    media_url, media_type = _legacy_media(body.media_url, body.media_type)
    for url in (media_url, *(a.media_url for a in attachments)):
        refuse_foreign_media(state, account_id, url)
    if not _has_content(body.message_template, len(attachments), media_url):
        raise HTTPError(400, CONTENT_REQUIRED)
    scheduled_at = parse_scheduled_at(body.scheduled_at)
    settings = check_settings(body.settings)
    device_id = await owned_device(state, account_id, body.device_id)
    return NewCampaign(name, device_id, body.message_template, media_url, media_type, scheduled_at, settings,
                       attachments)


# -- reads ----------------------------------------------------------------------------------------------------
async def list_campaigns(state: AppState, account_id: uuid.UUID) -> list[Campaign]:
    rows = await state.db.fetch(Q_LIST, [account_id, LIST_LIMIT])
    return await with_attachments(state, account_id, rows)


async def get_campaign(state: AppState, account_id: uuid.UUID, campaign_id: uuid.UUID) -> Campaign:
    row = await state.db.fetch_row(Q_GET, [account_id, campaign_id])
    if row is None:
        raise HTTPError(404, CAMPAIGN_NOT_FOUND)
    return (await with_attachments(state, account_id, [row]))[0]


async def with_attachments(state: AppState, account_id: uuid.UUID, rows: list[dict[str, Any]]) -> list[Campaign]:
    if not rows:
        return []
    ids = [uuid.UUID(str(row["id"])) for row in rows]
    grouped = group_rows(await state.db.fetch(Q_ATTACHMENTS_FOR, [account_id, ids]), "campaign_id")
    out = []
    for row in rows:
        attachments = grouped.get(str(row["id"])) or grouped.get(row["id"])
        out.append(to_campaign(row, attachments or None))
    return out


def to_campaign(row: dict[str, Any], attachments: list[dict[str, Any]] | None = None) -> Campaign:
    data = dict(row)
    data.pop("total", None)
    if not isinstance(data.get("settings"), dict):
        data["settings"] = {}
    if attachments:
        data["attachments"] = attachments
    return msgspec.convert(data, Campaign)


# -- writes ---------------------------------------------------------------------------------------------------
async def insert_campaign(
    tx: Transaction, account_id: uuid.UUID, new: NewCampaign, *, event_id: uuid.UUID | None, source: str | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    row = await tx.fetch_row(
        Q_CREATE,
        [account_id, new.device_id, new.name, new.template, new.media_url, new.media_type, new.scheduled_at,
         msgspec.json.encode(new.settings).decode(), event_id, source],
    )
    assert row is not None
    attachments = await insert_attachments(tx, account_id, uuid.UUID(str(row["id"])), new.attachments)
    return row, attachments


async def insert_attachments(
    tx: Transaction, account_id: uuid.UUID, campaign_id: uuid.UUID, items: list[AttachmentInput]
) -> list[dict[str, Any]]:
    if not items:
        return []
    rows = await tx.fetch(
        Q_ATTACHMENTS_INSERT,
        [account_id, campaign_id, [a.media_url for a in items], [a.media_type for a in items],
         [a.caption for a in items], [a.file_name for a in items], [a.file_size for a in items],
         [a.position for a in items]],
    )
    return sorted(rows, key=lambda r: r["position"])


async def create_campaign(state: AppState, account_id: uuid.UUID, body: CampaignCreateBody) -> Campaign:
    new = await validate_new(state, account_id, body)
    event_id = lenient_uuid(body.event_id)
    if event_id is not None and await state.db.fetch_row(Q_EVENT_OWNED, [account_id, event_id]) is None:
        raise HTTPError(404, EVENT_NOT_FOUND)
    async with state.db.transaction() as tx:
        row, attachments = await insert_campaign(tx, account_id, new, event_id=event_id,
                                                 source=blank_to_none(body.source))
    return to_campaign(row, attachments or None)


async def _locked(tx: Transaction, account_id: uuid.UUID, campaign_id: uuid.UUID) -> dict[str, Any]:
    row = await tx.fetch_row(Q_LOCK, [account_id, campaign_id])
    if row is None:
        raise HTTPError(404, CAMPAIGN_NOT_FOUND)
    return row


def _target_status(requested: str | None, current: str) -> str:
    if requested is None:
        return current
    status = requested.strip().lower()
    if not status or status == current:
        return current
    if status not in STATUSES:
        raise HTTPError(400, "status must be draft or scheduled")
    if status not in PUT_TARGETS:
        raise HTTPError(409, f"status cannot be set to {status} here (use /start and /pause)")
    if current == COMPLETED:
        raise HTTPError(409, "campaign is completed")
    return status


async def update_campaign(
    state: AppState, account_id: uuid.UUID, campaign_id: uuid.UUID, body: CampaignUpdateBody
) -> Campaign:
    if body.name is not None and not body.name.strip():
        raise HTTPError(400, "name cannot be empty")
    settings = campaign_settings.validate(body.settings) if body.settings is not None else None
    scheduled_at = parse_scheduled_at(body.scheduled_at) if body.scheduled_at else None
    refuse_foreign_media(state, account_id, body.media_url)
    async with recording(state, account_id) as rec, rec.transaction() as tx:
        current = await _locked(tx, account_id, campaign_id)
        status = _target_status(body.status, current["status"])
        device_id = uuid.UUID(str(current["device_id"]))
        if body.device_id is not None and body.device_id.strip():
            wanted = await owned_device(tx, account_id, body.device_id)
            if wanted != device_id and current["status"] == RUNNING and status == RUNNING:
                raise HTTPError(409, "pause the campaign before changing its device")
            device_id = wanted
        template = body.message_template if body.message_template is not None else current["message_template"]
        media_url = current["media_url"] if body.media_url is None else body.media_url
        media_type = current["media_type"] if body.media_type is None else body.media_type
        media_url, media_type = _legacy_media(media_url, media_type)
        attachments = await tx.fetch(Q_ATTACHMENTS_FOR, [account_id, [campaign_id]])
        if not _has_content(template, len(attachments), media_url):
            raise HTTPError(400, CONTENT_REQUIRED)
        if body.scheduled_at is None:
            when = current["scheduled_at"]
        else:
            when = scheduled_at  # "" clears
        await tx.execute(
            Q_UPDATE,
            [account_id, campaign_id, body.name.strip() if body.name is not None else current["name"], device_id,
             template, media_url, media_type, when, status,
             msgspec.json.encode(settings if settings is not None else current["settings"] or {}).decode()],
        )
        if status != current["status"]:
            status_changed(rec, campaign_id, status)
    return await get_campaign(state, account_id, campaign_id)


async def delete_campaign(state: AppState, account_id: uuid.UUID, campaign_id: uuid.UUID) -> None:
    if await state.db.fetch_row(Q_DELETE, [account_id, campaign_id]) is None:
        raise HTTPError(404, CAMPAIGN_NOT_FOUND)


async def delete_campaigns(state: AppState, account_id: uuid.UUID, raw_ids: list[str]) -> int:
    ids = list(dict.fromkeys(i for i in (lenient_uuid(raw) for raw in raw_ids) if i is not None))
    if not ids:
        return 0
    return len(await state.db.fetch(Q_DELETE_MANY, [account_id, ids]))


async def start_campaign(state: AppState, account_id: uuid.UUID, campaign_id: uuid.UUID) -> None:
    async with recording(state, account_id) as rec, rec.transaction() as tx:
        current = await _locked(tx, account_id, campaign_id)
        status = current["status"]
        if status == RUNNING:
            raise HTTPError(409, "campaign is already running")
        if status not in STARTABLE:
            raise HTTPError(409, f"campaign cannot be started from status: {status}")
        if int(current["total_recipients"] or 0) == 0:
            raise HTTPError(400, "campaign has no recipients")
        await tx.execute(Q_SET_STATUS, [account_id, campaign_id, RUNNING])
        status_changed(rec, campaign_id, RUNNING)
    if state.campaigns is not None:
        state.campaigns.wake()


async def pause_campaign(state: AppState, account_id: uuid.UUID, campaign_id: uuid.UUID) -> None:
    async with recording(state, account_id) as rec, rec.transaction() as tx:
        current = await _locked(tx, account_id, campaign_id)
        if current["status"] != RUNNING:
            raise HTTPError(409, "campaign is not running")
        await tx.execute(Q_SET_STATUS, [account_id, campaign_id, PAUSED])
        status_changed(rec, campaign_id, PAUSED)


async def duplicate_campaign(
    state: AppState, account_id: uuid.UUID, campaign_id: uuid.UUID, template: str | None
) -> Campaign:
    async with state.db.transaction() as tx:
        new_id = await tx.fetch_val(Q_DUPLICATE, [account_id, campaign_id, template or ""])
        if new_id is None:
            raise HTTPError(404, CAMPAIGN_NOT_FOUND)
        copy_id = uuid.UUID(str(new_id))
        await tx.execute(Q_COPY_RECIPIENTS, [account_id, campaign_id, copy_id])
        await tx.execute(Q_COPY_ATTACHMENTS, [account_id, campaign_id, copy_id])
        await tx.execute(Q_RECOUNT, [account_id, copy_id])
    return await get_campaign(state, account_id, copy_id)


async def replace_attachments(
    state: AppState, account_id: uuid.UUID, campaign_id: uuid.UUID, items: list[AttachmentInput] | None
) -> list[Attachment]:
    attachments = check_attachments(items)
    for item in attachments:
        refuse_foreign_media(state, account_id, item.media_url)
    async with state.db.transaction() as tx:
        current = await _locked(tx, account_id, campaign_id)
        if not _has_content(current["message_template"], len(attachments), current["media_url"]):
            raise HTTPError(400, CONTENT_REQUIRED)
        await tx.execute(Q_ATTACHMENTS_DELETE, [account_id, campaign_id])
        rows = await insert_attachments(tx, account_id, campaign_id, attachments)
    return [msgspec.convert(row, Attachment) for row in rows]


def status_changed(rec: Recorder, campaign_id: object, status: str) -> None:
    """``campaign_status``, emitted inside the write that changed the status (its outbox rows commit with it)."""
    rec.emit("campaign_status", CampaignStatusEvent(campaign_id=str(campaign_id), status=status))
