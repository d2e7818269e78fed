"""Lead rules (spec api.md §4.7 R37–R44, schema.md §3.11, §5.1, §5.4, §5.5), with the original's flaws fixed.

Fixes: tenant checks on every ID (foreign = unknown = 404); stages, pipelines and assigned users must
belong to the caller's account; a phone is required to create a lead; batch deletes report what was
really deleted; partial updates change only the keys sent and answer with the re-read lead (new
stage fields); R44 moves the lead into the stage's pipeline; each multi-step write is one transaction.
After every committed write the ``leads:<account>`` cache is dropped and ``lead_update`` is broadcast; its
webhook outbox rows commit with the write (clarin.webhooks.recording).
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from clarin.crm.lead_reads import LEAD_NOT_FOUND, get_lead
from clarin.crm.phones import checked_phone
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.http.json import encode
from clarin.state import AppState
from clarin.webhooks.recording import Recorder, recording
from clarin.wire.leads import Lead, LeadBatchDeleteBody, LeadUpdateBody, LeadUpdateEvent

Q_GET_FOR_UPDATE = query("leads_get_for_update")
Q_STAGE_OF_ACCOUNT = query("leads_stage_of_account")
Q_PIPELINE_OF_ACCOUNT = query("leads_pipeline_of_account")
Q_USER_OF_ACCOUNT = query("leads_user_of_account")
Q_UPDATE_ALL = query("leads_update_all")
Q_SYNC_CONTACT = query("leads_sync_contact")
Q_SET_STATUS = query("leads_set_status")
Q_SET_STAGE = query("leads_set_stage")
Q_EXISTS = query("leads_exists")
Q_DELETE = query("leads_delete")
Q_DELETE_IDS = query("leads_delete_ids")
Q_DELETE_ALL = query("leads_delete_all")

EVENT = "lead_update"
STAGE_NOT_FOUND = "Stage not found"
PIPELINE_NOT_FOUND = "Pipeline not found"
USER_NOT_FOUND = "User not found"
MAX_AGE = 2_147_483_647

# Column widths (0001_schema.sql): longer values are a 400, never a database error.
TEXT_LIMITS: dict[str, int | None] = {
    "name": 255,
    "last_name": 255,
    "short_name": 100,
    "phone": 50,
    "email": 255,
    "company": 255,
    "status": 50,
    "source": 100,
    "notes": None,
}


# -- validation helpers -----------------------------------------------------------------------------
def check_text(field: str, value: str) -> str:
    # NUL needs no check here: the body decoder refuses it in every JSON string.
    limit = TEXT_LIMITS.get(field)
    if limit is not None and len(value) > limit:
        raise HTTPError(400, f"{field} is too long (max {limit} characters)")
    return value


def _uuid_or_400(raw: str, message: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except (ValueError, TypeError, AttributeError):
        raise HTTPError(400, message) from None


# -- writes -----------------------------------------------------------------------------------------
# A lead_update's publish drops the board cache and retires the cached lead pages in the same Redis round trip
# (PageCache.retirement, scopes.BOARD_EVENTS): no separate invalidate_leads before it.
async def announce(state: AppState, account_id: uuid.UUID, event: LeadUpdateEvent, *, recorded: bool = False) -> None:
    """After a committed write: tell the account's dashboards (``recorded``: the webhook outbox rows were written
    in the write's own transaction)."""
    await state.broadcaster.broadcast(account_id, EVENT, event, recorded=recorded)


def changed(rec: Recorder, event: LeadUpdateEvent) -> None:
    """Inside a recorded write: ``event`` goes out after the commit."""
    rec.emit(EVENT, event)


_CLEAR = object()  # "" on a reference field: set the column to NULL


def _reference(value: str | msgspec.UnsetType | None, field: str) -> Any:
    """UNSET/None → UNSET (unchanged); "" → _CLEAR; a UUID string → uuid.UUID; else 400."""
    if value is msgspec.UNSET or value is None:
        return msgspec.UNSET
    if not value.strip():
        return _CLEAR
    return _uuid_or_400(value.strip(), f"Invalid {field}")


async def update_lead(state: AppState, account_id: uuid.UUID, lead_id: uuid.UUID, body: LeadUpdateBody) -> Lead:
    changes: dict[str, Any] = {}
    for field in TEXT_LIMITS:
        value = getattr(body, field)
        if value is not msgspec.UNSET and value is not None:
            changes[field] = check_text(field, value)
    if changes.get("phone"):  # "" clears it; anything else must be a phone, as on create
        checked_phone(changes["phone"])
    if body.age is not msgspec.UNSET and body.age is not None:
        if not 0 <= body.age <= MAX_AGE:
            raise HTTPError(400, "age must be a non-negative integer")
        changes["age"] = body.age
    if body.tags is not msgspec.UNSET and body.tags is not None:
        changes["tags"] = [check_text("tags", tag) for tag in body.tags]
    if body.custom_fields is not msgspec.UNSET and body.custom_fields is not None:
        changes["custom_fields"] = body.custom_fields  # NUL and nesting depth: refused by the body decoder
    assigned = _reference(body.assigned_to, "assigned_to")
    stage_ref = _reference(body.stage_id, "stage_id")
    pipeline_ref = _reference(body.pipeline_id, "pipeline_id")

    async with recording(state, account_id) as rec, rec.transaction() as tx:
        current = await tx.fetch_row(Q_GET_FOR_UPDATE, [lead_id, account_id])
        if current is None:
            raise HTTPError(404, LEAD_NOT_FOUND)
        new = dict(current)
        new.update(changes)
        if isinstance(assigned, uuid.UUID):
            if not await tx.fetch_val(Q_USER_OF_ACCOUNT, [assigned, account_id]):
                raise HTTPError(404, USER_NOT_FOUND)
            new["assigned_to"] = assigned
        elif assigned is _CLEAR:
            new["assigned_to"] = None
        if isinstance(pipeline_ref, uuid.UUID) and not await tx.fetch_val(
            Q_PIPELINE_OF_ACCOUNT, [pipeline_ref, account_id]
        ):
            raise HTTPError(404, PIPELINE_NOT_FOUND)
        if isinstance(stage_ref, uuid.UUID):
            stage = await tx.fetch_row(Q_STAGE_OF_ACCOUNT, [stage_ref, account_id])
            if stage is None:
                raise HTTPError(404, STAGE_NOT_FOUND)
            if pipeline_ref is _CLEAR or (
                isinstance(pipeline_ref, uuid.UUID) and str(pipeline_ref) != str(stage["pipeline_id"])
            ):
                raise HTTPError(400, "Stage does not belong to the pipeline")
            # The lead follows the stage into its pipeline, keeping pipeline_id and stage_id consistent.
            new["stage_id"], new["pipeline_id"] = stage["id"], stage["pipeline_id"]
        elif stage_ref is _CLEAR:
            new["stage_id"] = None
            if pipeline_ref is not msgspec.UNSET:
                new["pipeline_id"] = None if pipeline_ref is _CLEAR else pipeline_ref
        elif pipeline_ref is not msgspec.UNSET:
            # A pipeline change without a stage drops a stage that belongs to another pipeline.
            new["pipeline_id"] = None if pipeline_ref is _CLEAR else pipeline_ref
            if new["pipeline_id"] is None or str(current["stage_pipeline_id"]) != str(new["pipeline_id"]):
                new["stage_id"] = None
        await tx.execute(
            Q_UPDATE_ALL,
            [
                lead_id, account_id, new["name"], new["last_name"], new["short_name"], new["phone"],
                new["email"], new["company"], new["age"], new["status"], new["source"], new["notes"],
                new["tags"], _json_text(new["custom_fields"]), as_uuid(new["assigned_to"]),
                as_uuid(new["pipeline_id"]), as_uuid(new["stage_id"]),
            ],
        )
        await tx.execute(Q_SYNC_CONTACT, [lead_id, account_id])
        lead = await get_lead(tx, account_id, lead_id)
        changed(rec, LeadUpdateEvent(action="updated", lead_id=lead.id))
    return lead


async def delete_lead(state: AppState, account_id: uuid.UUID, lead_id: uuid.UUID) -> None:
    async with recording(state, account_id) as rec:
        if await rec.db.fetch_row(Q_DELETE, [lead_id, account_id]) is None:
            raise HTTPError(404, LEAD_NOT_FOUND)
        changed(rec, LeadUpdateEvent(action="deleted", lead_id=str(lead_id)))


async def batch_delete(state: AppState, account_id: uuid.UUID, body: LeadBatchDeleteBody) -> str:
    if body.all or body.delete_all:
        async with recording(state, account_id) as rec:
            deleted = int(await rec.db.fetch_val(Q_DELETE_ALL, [account_id]) or 0)
            changed(rec, LeadUpdateEvent(action="batch_deleted", count=deleted))
        return "All leads deleted"
    if not body.ids:
        raise HTTPError(400, "No IDs provided")
    valid: list[uuid.UUID] = []
    for raw in body.ids:
        try:
            valid.append(uuid.UUID(raw))
        except (ValueError, TypeError, AttributeError):
            continue
    if not valid:
        raise HTTPError(400, "No valid IDs provided")
    async with recording(state, account_id) as rec:
        rows = await rec.db.fetch(Q_DELETE_IDS, [account_id, list(dict.fromkeys(valid))])
        ids = [str(row["id"]) for row in rows]
        if ids:
            changed(rec, LeadUpdateEvent(action="batch_deleted", ids=ids, count=len(ids)))
    return f"{len(ids)} leads deleted"


async def set_status(state: AppState, account_id: uuid.UUID, lead_id: uuid.UUID, status: str | None) -> None:
    value = check_text("status", (status or "").strip())
    if not value:
        raise HTTPError(400, "status is required")
    async with recording(state, account_id) as rec:
        if await rec.db.fetch_row(Q_SET_STATUS, [lead_id, account_id, value]) is None:
            raise HTTPError(404, LEAD_NOT_FOUND)
        changed(rec, LeadUpdateEvent(action="status_changed", lead_id=str(lead_id)))


async def set_stage(state: AppState, account_id: uuid.UUID, lead_id: uuid.UUID, raw_stage: str | None) -> None:
    stage_id = _uuid_or_400((raw_stage or "").strip(), "Invalid stage ID")
    async with recording(state, account_id) as rec:
        if await rec.db.fetch_row(Q_SET_STAGE, [lead_id, account_id, stage_id]) is None:
            if not await rec.db.fetch_val(Q_EXISTS, [lead_id, account_id]):
                raise HTTPError(404, LEAD_NOT_FOUND)
            raise HTTPError(404, STAGE_NOT_FOUND)
        changed(rec, LeadUpdateEvent(action="stage_changed", lead_id=str(lead_id)))


def _json_text(value: Any) -> str | None:
    """A jsonb parameter as JSON text (``$n::text::jsonb``): psqlpy's own dict conversion only takes integers
    that fit 32 bits, so ``{"n": 51999111222}`` failed as a 500."""
    return None if value is None else encode(value).decode()


def as_uuid(value: Any) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(str(value))
