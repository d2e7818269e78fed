"""R38 ``POST /api/leads``: the upsert, its webhook outbox rows and its announcement.

Its own module because it is the hot write path (bench/RESULTS.md, peers table): one statement without a
webhook subscription, one transaction with one.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from clarin.crm.lead_reads import finish_row, hydrate
from clarin.crm.leads import EVENT, STAGE_NOT_FOUND, announce, as_uuid, check_text
from clarin.crm.phones import phone_jid
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.state import AppState
from clarin.wire.leads import Lead, LeadCreateBody, LeadUpdateEvent

Q_CREATE = query("leads_create")
Q_STAGE_OF_ACCOUNT = query("leads_stage_of_account")


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
                stage_ids = [as_uuid(stage["pipeline_id"]), as_uuid(stage["id"])]
            created = await tx.fetch_row(Q_CREATE, [*params, *stage_ids])
            if recorded and outbox is not None and created is not None:
                event = LeadUpdateEvent(action="created" if created["inserted"] else "updated",
                                        lead_id=str(created["id"]))
                await outbox.record_in(tx, str(account_id), EVENT, event)
    assert created is not None
    inserted = created.pop("inserted")
    if inserted:  # a new lead has no tag links yet: no tag query
        finish_row(created, None)
        lead = msgspec.convert(created, Lead)
    else:
        lead = (await hydrate(state.db, account_id, [created]))[0]
    action = "created" if inserted else "updated"
    await announce(state, account_id, event or LeadUpdateEvent(action=action, lead_id=lead.id),
                   recorded=event is not None)
    return lead
