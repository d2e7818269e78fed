"""Campaign recipients (spec api.md R67–R69, R97; integrations.md C.3), with the original's flaws fixed.

- R67 accepts up to ``MAX_RECIPIENTS`` entries per request, deduplicated by JID (repeats in the request
  and JIDs already in the campaign are skipped: the unique key ``(campaign_id, jid)``), inserted with
  ``unnest`` in chunks of ``CHUNK`` rows inside ONE transaction (all or nothing), ``total_recipients``
  recounted in SQL. The response reports ``count`` = rows added, ``duplicates`` and ``invalid`` (entries
  without a usable JID, skipped). A ``jid`` without ``@`` (or a missing jid with a ``phone``) is taken as a
  phone number and normalised (api.md §6.1) to ``<digits>@s.whatsapp.net``; a full JID is kept verbatim.
  A ``contact_id`` that is not one of the account's contacts is ignored (never linked across tenants).
  Adding to a completed campaign is ``409`` (it would never be sent).
- R68 is paged (``limit`` default/max ``RECIPIENT_PAGE``) and reports ``total``.
- R69 removes only a ``pending`` recipient (any campaign status: the worker never claims a deleted row);
  one already sent, failed or being sent is ``409``; unknown is ``404 Recipient not found``.
- R97 builds recipients from the event's participants with a phone: the phone is normalised like §6.1
  (the original kept spaces and dashes and built invalid JIDs), participants whose phone gives no
  plausible number are skipped and counted, repeats of one number are sent once, and the participant's
  linked contact is kept (so ``{{nombre_completo}}``/``{{nombre_corto}}`` work).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import msgspec

from clarin._speedups import phone_number
from clarin.campaigns import service
from clarin.crm.filtering import lenient_uuid, uuid_list
from clarin.crm.phones import valid_user
from clarin.db.pool import Transaction
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.state import AppState
from clarin.wire.campaigns import (
    Campaign,
    EventCampaignBody,
    Recipient,
    RecipientInput,
    RecipientsAdded,
    RecipientsBody,
)

Q_LOCK = query("campaign_lock_row")
Q_INSERT = query("campaign_recipients_insert")
Q_CONTACTS = query("campaign_contacts_get_or_create")
Q_RECOUNT = query("campaign_recount")
Q_PAGE = query("campaign_recipients_page")
Q_STATUS = query("campaign_recipient_status")
Q_DELETE = query("campaign_recipient_delete")
Q_EVENT_OWNED = query("campaign_event_owned")
Q_PARTICIPANTS = query("campaign_event_participants")

MAX_RECIPIENTS = 50_000
CHUNK = 5000
RECIPIENT_PAGE = 1000
USER_SERVER = "@s.whatsapp.net"
RECIPIENT_NOT_FOUND = "Recipient not found"
NO_PARTICIPANTS = "No hay participantes con teléfono que coincidan con los filtros"


@dataclass(frozen=True, slots=True)
class NewRecipient:
    jid: str
    contact_id: uuid.UUID | None = None
    name: str | None = None
    phone: str | None = None
    metadata: str | None = None  # JSON text


def phone_jid(raw: str) -> str | None:
    """``<digits>@s.whatsapp.net`` when ``raw`` passes the phone rule (clarin.crm.phones), else None."""
    digits = phone_number(raw)
    return digits + USER_SERVER if digits else None


def recipient_jid(item: RecipientInput) -> str | None:
    jid = item.jid.strip()
    if "@" in jid:
        user, server = jid.split("@", 1)
        return jid if user and valid_user(user, server) else None
    if jid:
        return phone_jid(jid)
    if item.phone and item.phone.strip():
        return phone_jid(item.phone)
    return None


def _dedupe(items: Iterable[NewRecipient]) -> list[NewRecipient]:
    seen: dict[str, NewRecipient] = {}
    for item in items:
        seen.setdefault(item.jid, item)
    return list(seen.values())


async def insert_recipients(
    tx: Transaction, account_id: uuid.UUID, campaign_id: uuid.UUID, items: list[NewRecipient]
) -> int:
    """Insert (already de-duplicated) recipients in ``CHUNK``-row statements; returns how many were added."""
    added = 0
    for start in range(0, len(items), CHUNK):
        chunk = items[start : start + CHUNK]
        added += int(await tx.fetch_val(
            Q_INSERT,
            [account_id, campaign_id, [r.contact_id for r in chunk], [r.jid for r in chunk],
             [r.name for r in chunk], [r.phone for r in chunk], [r.metadata for r in chunk]],
        ) or 0)
    return added


async def _link_contacts(tx: Transaction, account_id: uuid.UUID, items: list[NewRecipient]) -> list[NewRecipient]:
    """save_as_contacts: recipients without a contact but with a phone get their (new or existing) contact."""
    wanted = [r for r in items if r.contact_id is None and r.phone and r.phone.strip()]
    if not wanted:
        return items
    ids: dict[str, uuid.UUID] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        rows = await tx.fetch(
            Q_CONTACTS, [account_id, [r.jid for r in chunk], [r.phone for r in chunk], [r.name or "" for r in chunk]]
        )
        ids.update({row["jid"]: uuid.UUID(str(row["id"])) for row in rows})
    return [
        replace(r, contact_id=ids[r.jid]) if r.contact_id is None and r.jid in ids else r for r in items
    ]


async def add_recipients(
    state: AppState, account_id: uuid.UUID, campaign_id: uuid.UUID, body: RecipientsBody
) -> RecipientsAdded:
    submitted = len(body.recipients)
    if submitted > MAX_RECIPIENTS:
        raise HTTPError(400, f"at most {MAX_RECIPIENTS} recipients per request")
    parsed: list[NewRecipient] = []
    invalid = 0
    for item in body.recipients:
        jid = recipient_jid(item)
        if jid is None:
            invalid += 1
            continue
        parsed.append(NewRecipient(
            jid=jid, contact_id=lenient_uuid(item.contact_id), name=item.name, phone=item.phone,
            metadata=msgspec.json.encode(item.metadata).decode() if item.metadata else None,
        ))
    unique = _dedupe(parsed)
    async with state.db.transaction() as tx:
        current = await tx.fetch_row(Q_LOCK, [account_id, campaign_id])
        if current is None:
            raise HTTPError(404, service.CAMPAIGN_NOT_FOUND)
        if current["status"] == service.COMPLETED:
            raise HTTPError(409, "campaign is completed")
        if body.save_as_contacts:
            unique = await _link_contacts(tx, account_id, unique)
        added = await insert_recipients(tx, account_id, campaign_id, unique)
        total = int(await tx.fetch_val(Q_RECOUNT, [account_id, campaign_id]) or 0)
    if body.save_as_contacts:
        await state.pages.invalidate(account_id)  # contacts may have been created: cached lists retire
    return RecipientsAdded(
        count=added, submitted=submitted, duplicates=submitted - invalid - added, invalid=invalid,
        total_recipients=total,
    )


async def list_recipients(
    state: AppState, account_id: uuid.UUID, campaign_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[Recipient], int]:
    rows = await state.db.fetch(Q_PAGE, [account_id, campaign_id, limit, offset])
    if not rows:
        raise HTTPError(404, service.CAMPAIGN_NOT_FOUND)
    total = int(rows[0]["total"])
    out = []
    for row in rows:
        if row["id"] is None:
            continue
        data = {k: v for k, v in row.items() if k not in ("total", "seq")}
        if not data.get("metadata"):
            data["metadata"] = None
        out.append(msgspec.convert(data, Recipient))
    return out, total


async def remove_recipient(
    state: AppState, account_id: uuid.UUID, campaign_id: uuid.UUID, recipient_id: uuid.UUID
) -> None:
    async with state.db.transaction() as tx:
        if await tx.fetch_row(Q_LOCK, [account_id, campaign_id]) is None:
            raise HTTPError(404, service.CAMPAIGN_NOT_FOUND)
        if await tx.fetch_row(Q_DELETE, [account_id, campaign_id, recipient_id]) is None:
            status = await tx.fetch_val(Q_STATUS, [account_id, campaign_id, recipient_id])
            if status is None:
                raise HTTPError(404, RECIPIENT_NOT_FOUND)
            raise HTTPError(409, f"recipient already {status}: only pending recipients can be removed")
        await tx.execute(Q_RECOUNT, [account_id, campaign_id])


# -- R97 ------------------------------------------------------------------------------------------------------
def participant_recipients(rows: list[dict[str, Any]]) -> tuple[list[NewRecipient], int]:
    """Recipients for participant rows, and how many were skipped (no usable number, or a repeat)."""
    out: list[NewRecipient] = []
    for row in rows:
        jid = phone_jid(row["phone"] or "")
        if jid is None:
            continue
        name = row["name"] or ""
        if row.get("last_name"):
            name = f"{name} {row['last_name']}"
        contact = row.get("contact_id")
        out.append(NewRecipient(
            jid=jid, contact_id=uuid.UUID(str(contact)) if contact else None, name=name[:255] or None,
            phone=row["phone"],
        ))
    unique = _dedupe(out)
    return unique, len(rows) - len(unique)


async def campaign_from_event(
    state: AppState, account_id: uuid.UUID, event_id: uuid.UUID, body: EventCampaignBody
) -> tuple[Campaign, int, int]:
    """R97: the campaign (draft, ``source="event"``), recipients added, participants skipped."""
    if await state.db.fetch_row(Q_EVENT_OWNED, [account_id, event_id]) is None:
        raise HTTPError(404, service.EVENT_NOT_FOUND)
    new = await service.validate_new(state, account_id, body)
    tag_ids = uuid_list(body.tag_ids or [], "Invalid tag ID") or None
    rows = await state.db.fetch(
        Q_PARTICIPANTS, [account_id, event_id, (body.status or "").strip(), tag_ids, MAX_RECIPIENTS]
    )
    recipients, skipped = participant_recipients(rows)
    if not recipients:
        raise HTTPError(400, NO_PARTICIPANTS)
    async with state.db.transaction() as tx:
        row, attachments = await service.insert_campaign(tx, account_id, new, event_id=event_id, source="event")
        campaign_id = uuid.UUID(str(row["id"]))
        added = await insert_recipients(tx, account_id, campaign_id, recipients)
        total = int(await tx.fetch_val(Q_RECOUNT, [account_id, campaign_id]) or 0)
    campaign = service.to_campaign({**row, "total_recipients": total}, attachments or None)
    return campaign, added, skipped
