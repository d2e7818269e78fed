"""Lead rules (spec api.md §4.7 R37–R44, schema.md §3.11, §5.1, §5.4, §5.5), with the original's flaws fixed.

Fixes: tenant checks on every ID (foreign = unknown = 404); stages, pipelines and assigned users must
belong to the caller's account; a phone is required to create a lead; batch deletes report what was
really deleted; partial updates change only the keys sent and answer with the re-read lead (new
stage fields); R44 moves the lead into the stage's pipeline; each multi-step write is one transaction.
After every committed write the ``leads:<account>`` cache is dropped and ``lead_update`` is broadcast.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from clarin._speedups import group_rows
from clarin.crm.leads_cache import (
    get_cached_leads,
    get_cached_total,
    invalidate_leads,
    store_cached_leads,
    store_cached_total,
)
from clarin.crm.phones import checked_phone, phone_jid
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.http.json import encode
from clarin.state import AppState
from clarin.wire.leads import (
    Lead,
    LeadBatchDeleteBody,
    LeadCreateBody,
    LeadsResponse,
    LeadUpdateBody,
    LeadUpdateEvent,
)

Q_LIST_ALL = query("leads_list_all")
Q_PAGE = query("leads_page")
Q_COUNT = query("leads_count")
Q_PAGE_SEARCH = query("leads_page_search")
Q_COUNT_SEARCH = query("leads_count_search")
Q_TAGS_FOR_LEADS = query("leads_tags_for_leads")
Q_GET = query("leads_get")
Q_GET_FOR_UPDATE = query("leads_get_for_update")
Q_STAGE_OF_ACCOUNT = query("leads_stage_of_account")
Q_PIPELINE_OF_ACCOUNT = query("leads_pipeline_of_account")
Q_USER_OF_ACCOUNT = query("leads_user_of_account")
Q_CREATE = query("leads_create")
Q_UPDATE_ALL = query("leads_update_all")
Q_SYNC_CONTACT = query("leads_sync_contact")
Q_SET_STATUS = query("leads_set_status")
Q_SET_STAGE = query("leads_set_stage")
Q_EXISTS = query("leads_exists")
Q_DELETE = query("leads_delete")
Q_DELETE_IDS = query("leads_delete_ids")
Q_DELETE_ALL = query("leads_delete_all")

COMPAT_CAP = 10_000  # the unpaged dashboard board never returns more rows than this
EVENT = "lead_update"
LEAD_NOT_FOUND = "Lead not found"
STAGE_NOT_FOUND = "Stage not found"
PIPELINE_NOT_FOUND = "Pipeline not found"
USER_NOT_FOUND = "User not found"
MAX_AGE = 2_147_483_647
TAG_FIELDS = ("id", "account_id", "name", "color", "created_at", "updated_at")

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


@dataclass(frozen=True, slots=True)
class LeadFilter:
    search: str = ""
    pipeline_id: uuid.UUID | None = None
    stage_id: uuid.UUID | None = None
    tag_ids: list[uuid.UUID] | None = None


# -- validation helpers -----------------------------------------------------------------------------
def check_text(field: str, value: str) -> str:
    # NUL needs no check here: the body decoder refuses it in every JSON string.
    limit = TEXT_LIMITS.get(field)
    if limit is not None and len(value) > limit:
        raise HTTPError(400, f"{field} is too long (max {limit} characters)")
    return value


def escape_like(term: str) -> str:
    """ILIKE pattern matching ``term`` literally anywhere (``\\`` is ILIKE's default escape)."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _uuid_or_400(raw: str, message: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except (ValueError, TypeError, AttributeError):
        raise HTTPError(400, message) from None


# -- reads ------------------------------------------------------------------------------------------
async def hydrate(executor: Any, account_id: uuid.UUID, rows: list[dict[str, Any]]) -> list[Lead]:
    """Attach ``structured_tags`` to a page of lead rows with ONE query, then convert to ``Lead``."""
    by_lead: dict[Any, list[Any]] = {}
    if rows:
        ids = [uuid.UUID(str(row["id"])) for row in rows]
        tag_rows = await executor.fetch(Q_TAGS_FOR_LEADS, [ids, account_id])
        by_lead = group_rows(tag_rows, "lead_id", TAG_FIELDS)
    for row in rows:
        _finish_row(row, by_lead.get(row["id"]))
    return msgspec.convert(rows, list[Lead])


def _finish_row(row: dict[str, Any], structured_tags: list[Any] | None) -> None:
    row["structured_tags"] = structured_tags
    if not row["tags"]:
        row["tags"] = None
    custom = row["custom_fields"]
    row["custom_fields"] = custom if isinstance(custom, dict) and custom else None


_building: dict[uuid.UUID, asyncio.Future[bytes]] = {}


async def board_body(state: AppState, account_id: uuid.UUID) -> bytes:
    """R37 without parameters: the cached body when there is one, else built and cached (30 s).

    Single-flight per process: concurrent misses of one account wait for the one build in progress
    instead of each rebuilding the 10k-lead board (a cache stampede)."""
    cached = await get_cached_leads(state, account_id)
    if cached is not None:
        return cached
    pending = _building.get(account_id)
    if pending is not None:
        return await asyncio.shield(pending)
    future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    _building[account_id] = future
    try:
        rows = await state.db.fetch(Q_LIST_ALL, [account_id, COMPAT_CAP])
        body = encode(LeadsResponse(leads=await hydrate(state.db, account_id, rows)))
        await store_cached_leads(state, account_id, body)
        future.set_result(body)
        return body
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: no "never retrieved" warning when nobody waited
        raise
    finally:
        _building.pop(account_id, None)


async def list_page(
    state: AppState, account_id: uuid.UUID, flt: LeadFilter, limit: int, offset: int
) -> LeadsResponse:
    filters = [account_id, flt.pipeline_id, flt.stage_id, flt.tag_ids or None]
    pattern = escape_like(flt.search) if flt.search else None
    if pattern is not None:
        rows = await state.db.fetch(Q_PAGE_SEARCH, [*filters, pattern, limit, offset])
    else:
        rows = await state.db.fetch(Q_PAGE, [*filters, limit, offset])
    if (rows and len(rows) < limit) or (not rows and offset == 0):
        total = offset + len(rows)  # the last page: the total is known without counting
    else:
        signature = "|".join((str(flt.pipeline_id or ""), str(flt.stage_id or ""),
                              ",".join(sorted(map(str, flt.tag_ids or ()))), flt.search))
        total = await get_cached_total(state, account_id, signature)
        if total is None:
            if pattern is not None:
                total = int(await state.db.fetch_val(Q_COUNT_SEARCH, [*filters, pattern]) or 0)
            else:
                total = int(await state.db.fetch_val(Q_COUNT, filters) or 0)
            await store_cached_total(state, account_id, signature, total)
    leads = await hydrate(state.db, account_id, rows)
    return LeadsResponse(leads=leads, total=int(total or 0), limit=limit, offset=offset)


async def get_lead(executor: Any, account_id: uuid.UUID, lead_id: uuid.UUID) -> Lead:
    row = await executor.fetch_row(Q_GET, [lead_id, account_id])
    if row is None:
        raise HTTPError(404, LEAD_NOT_FOUND)
    return (await hydrate(executor, account_id, [row]))[0]


# -- writes -----------------------------------------------------------------------------------------
async def announce(state: AppState, account_id: uuid.UUID, event: LeadUpdateEvent, *, recorded: bool = False) -> None:
    """After a committed write: drop the board cache, then tell the account's dashboards (``recorded``: the
    webhook outbox rows were written in the write's own transaction)."""
    await invalidate_leads(state, account_id)
    await state.broadcaster.broadcast(account_id, EVENT, event, recorded=recorded)


async def create_lead(state: AppState, account_id: uuid.UUID, body: LeadCreateBody) -> Lead:
    phone = check_text("phone", (body.phone or "").strip())
    if not phone:
        raise HTTPError(400, "phone is required")
    jid = phone_jid(phone)  # the stored phone keeps the raw input (A.13), the JID is the normalised one
    name = check_text("name", body.name or "")
    email = check_text("email", body.email or "")
    source = check_text("source", body.source or "")
    notes = check_text("notes", body.notes or "")
    params = [account_id, jid, name, phone, email, source, notes]
    # Webhooks: with an enabled subscription the outbox rows commit with the lead itself (docs/WEBHOOKS.md).
    outbox = state.webhook_outbox
    recorded = outbox is not None and await outbox.wanted(str(account_id))
    event: LeadUpdateEvent | None = None
    if body.stage_id is None and not recorded:  # the default stage is chosen inside the statement: one round trip
        created = await state.db.fetch_row(Q_CREATE, [*params, None, None])
    else:
        async with state.db.transaction() as tx:  # the stage must still be the account's when the row lands
            stage_ids: list[Any] = [None, None]
            if body.stage_id is not None:
                stage = await tx.fetch_row(Q_STAGE_OF_ACCOUNT, [body.stage_id, account_id])
                if stage is None:
                    raise HTTPError(404, STAGE_NOT_FOUND)
                stage_ids = [_as_uuid(stage["pipeline_id"]), _as_uuid(stage["id"])]
            created = await tx.fetch_row(Q_CREATE, [*params, *stage_ids])
            if recorded and outbox is not None and created is not None:
                event = LeadUpdateEvent(action="created" if created["inserted"] else "updated",
                                        lead_id=str(created["id"]))
                await outbox.record_in(tx, str(account_id), EVENT, event)
    assert created is not None
    inserted = created.pop("inserted")
    if inserted:  # a new lead has no tag links yet: no tag query
        _finish_row(created, None)
        lead = msgspec.convert(created, Lead)
    else:
        lead = (await hydrate(state.db, account_id, [created]))[0]
    action = "created" if inserted else "updated"
    await announce(state, account_id, event or LeadUpdateEvent(action=action, lead_id=lead.id),
                   recorded=event is not None)
    return lead


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

    async with state.db.transaction() as tx:
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
                new["tags"], _json_text(new["custom_fields"]), _as_uuid(new["assigned_to"]),
                _as_uuid(new["pipeline_id"]), _as_uuid(new["stage_id"]),
            ],
        )
        await tx.execute(Q_SYNC_CONTACT, [lead_id, account_id])
        lead = await get_lead(tx, account_id, lead_id)
    await announce(state, account_id, LeadUpdateEvent(action="updated", lead_id=lead.id))
    return lead


async def delete_lead(state: AppState, account_id: uuid.UUID, lead_id: uuid.UUID) -> None:
    if await state.db.fetch_row(Q_DELETE, [lead_id, account_id]) is None:
        raise HTTPError(404, LEAD_NOT_FOUND)
    await announce(state, account_id, LeadUpdateEvent(action="deleted", lead_id=str(lead_id)))


async def batch_delete(state: AppState, account_id: uuid.UUID, body: LeadBatchDeleteBody) -> str:
    if body.all or body.delete_all:
        deleted = int(await state.db.fetch_val(Q_DELETE_ALL, [account_id]) or 0)
        await announce(state, account_id, LeadUpdateEvent(action="batch_deleted", count=deleted))
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
    rows = await state.db.fetch(Q_DELETE_IDS, [account_id, list(dict.fromkeys(valid))])
    ids = [str(row["id"]) for row in rows]
    if ids:
        await announce(state, account_id, LeadUpdateEvent(action="batch_deleted", ids=ids, count=len(ids)))
    return f"{len(ids)} leads deleted"


async def set_status(state: AppState, account_id: uuid.UUID, lead_id: uuid.UUID, status: str | None) -> None:
    value = check_text("status", (status or "").strip())
    if not value:
        raise HTTPError(400, "status is required")
    if await state.db.fetch_row(Q_SET_STATUS, [lead_id, account_id, value]) is None:
        raise HTTPError(404, LEAD_NOT_FOUND)
    await announce(state, account_id, LeadUpdateEvent(action="status_changed", lead_id=str(lead_id)))


async def set_stage(state: AppState, account_id: uuid.UUID, lead_id: uuid.UUID, raw_stage: str | None) -> None:
    stage_id = _uuid_or_400((raw_stage or "").strip(), "Invalid stage ID")
    if await state.db.fetch_row(Q_SET_STAGE, [lead_id, account_id, stage_id]) is None:
        if not await state.db.fetch_val(Q_EXISTS, [lead_id, account_id]):
            raise HTTPError(404, LEAD_NOT_FOUND)
        raise HTTPError(404, STAGE_NOT_FOUND)
    await announce(state, account_id, LeadUpdateEvent(action="stage_changed", lead_id=str(lead_id)))


def _json_text(value: Any) -> str | None:
    """A jsonb parameter as JSON text (``$n::text::jsonb``): psqlpy's own dict conversion only takes integers
    that fit 32 bits, so ``{"n": 51999111222}`` failed as a 500."""
    return None if value is None else encode(value).decode()


def _as_uuid(value: Any) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(str(value))
