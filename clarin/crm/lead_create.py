"""R38 ``POST /api/leads``: the upsert, its webhook outbox rows and its announcement.

Its own module because it is the hot write path (bench/RESULTS.md, peers table): one statement, with or without
a webhook subscription (the statement writes the outbox rows too) and with or without a stage.
"""

from __future__ import annotations

import uuid

from clarin.crm.leads import STAGE_NOT_FOUND, announce, check_text
from clarin.crm.phones import phone_jid
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.state import AppState
from clarin.wire.leads import LeadCreateBody, LeadUpdateEvent

Q_CREATE = query("leads_create")


async def create_lead(state: AppState, account_id: uuid.UUID, body: LeadCreateBody) -> bytes:
    """Upsert the lead; its JSON object (as R40 answers it), built by the statement itself."""
    phone = check_text("phone", (body.phone or "").strip())
    if not phone:
        raise HTTPError(400, "phone is required")
    jid = phone_jid(phone)  # the stored phone keeps the raw input (A.13), the JID is the normalised one
    name = check_text("name", body.name or "")
    email = check_text("email", body.email or "")
    source = check_text("source", body.source or "")
    notes = check_text("notes", body.notes or "")
    # Webhooks: with an enabled subscription the statement writes the outbox rows with the lead (docs/WEBHOOKS.md).
    outbox = state.webhook_outbox
    event_id = uuid.uuid4() if outbox is not None and await outbox.wanted(str(account_id)) else None
    created = await state.db.fetch_tuple(
        Q_CREATE, [account_id, jid, name, phone, email, source, notes, body.stage_id, event_id])
    if created is None:  # only when the stage given is not one of the account's
        raise HTTPError(404, STAGE_NOT_FOUND)
    lead_id, inserted, lead, recorded = created
    if recorded and outbox is not None:
        outbox.written()  # wake this process's delivery worker
    event = LeadUpdateEvent(action="created" if inserted else "updated", lead_id=str(lead_id))
    await announce(state, account_id, event, recorded=event_id is not None)
    return lead.encode()
