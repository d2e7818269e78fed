"""R77 contact merge: one transaction, nothing lost, nothing done across tenants (schema §5.6 fixed).

Every contact of the merge must belong to the caller's account (else ``404`` and nothing changes). Then,
for the merged contacts ("sources") into the kept one:

1. chats — if the kept JID has no chat, the most recent source chat takes it over; the other source
   chats' messages (dedup key respected), reactions and chat tags move into the kept chat, which also
   takes their unread count, pin and latest preview; the emptied chats are deleted.
2. leads — likewise: a source lead takes over the kept JID if it has none; otherwise the duplicate
   leads' interactions and tags move to the kept lead and the duplicates are deleted. Leads that
   pointed at a merged contact point at the kept one.
3. contact_tags, per-device names, interactions, event participants (one per event) and campaign
   recipients move to the kept contact; then the merged contacts are deleted.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from clarin.crm.contacts import CONTACT_NOT_FOUND
from clarin.crm.leads_cache import invalidate_leads
from clarin.db.pool import Transaction
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.state import AppState
from clarin.webhooks.recording import recording

Q_LOCK = query("contacts_merge_lock")
Q_CLAIM_CHAT = query("contacts_merge_claim_chat")
Q_CHAT_OF_JID = query("contacts_merge_chat_of_jid")
Q_MOVE_MESSAGES = query("contacts_merge_move_messages")
Q_MOVE_REACTIONS = query("contacts_merge_move_reactions")
Q_MOVE_CHAT_TAGS = query("contacts_merge_move_chat_tags")
Q_FOLD_CHAT = query("contacts_merge_fold_chat")
Q_DELETE_CHATS = query("contacts_merge_delete_chats")
Q_CLAIM_LEAD = query("contacts_merge_claim_lead")
Q_LEAD_OF_JID = query("contacts_merge_lead_of_jid")
Q_DUPLICATE_LEADS = query("contacts_merge_duplicate_leads")
Q_MOVE_LEAD_INTERACTIONS = query("contacts_merge_move_lead_interactions")
Q_MOVE_LEAD_TAGS = query("contacts_merge_move_lead_tags")
Q_DELETE_LEADS = query("contacts_merge_delete_leads")
Q_RELINK_LEADS = query("contacts_merge_relink_leads")
Q_MOVE_CONTACT_TAGS = query("contacts_merge_move_contact_tags")
Q_MOVE_DEVICE_NAMES = query("contacts_merge_move_device_names")
Q_MOVE_INTERACTIONS = query("contacts_merge_move_interactions")
Q_MOVE_PARTICIPANTS = query("contacts_merge_move_participants")
Q_MOVE_RECIPIENTS = query("contacts_merge_move_recipients")
Q_DELETE_CONTACTS = query("contacts_merge_delete_contacts")

MAX_MERGE = 500


@dataclass(frozen=True, slots=True)
class MergeResult:
    merged_ids: list[str]
    lead_ids: list[str]


async def merge_contacts(
    state: AppState, account_id: uuid.UUID, keep_id: uuid.UUID, merge_ids: list[uuid.UUID]
) -> MergeResult:
    sources = list(dict.fromkeys(merge_ids))
    if not sources:
        raise HTTPError(400, "provide merge_ids")
    if keep_id in sources:
        raise HTTPError(400, "keep_id cannot be one of merge_ids")
    if len(sources) > MAX_MERGE:
        raise HTTPError(400, f"at most {MAX_MERGE} contacts can be merged at once")
    async with recording(state, account_id) as rec, rec.transaction() as tx:
        rows = await tx.fetch(Q_LOCK, [account_id, [keep_id, *sources]])
        jids = {str(row["id"]): row["jid"] for row in rows}
        if len(jids) != len(sources) + 1:
            raise HTTPError(404, CONTACT_NOT_FOUND)
        keep_jid = jids[str(keep_id)]
        source_jids = [jids[str(source)] for source in sources]
        await _merge_chats(tx, account_id, keep_id, keep_jid, source_jids)
        lead_ids = await _merge_leads(tx, account_id, keep_id, keep_jid, source_jids, sources)
        moved = [account_id, keep_id, sources]
        await tx.execute(Q_MOVE_CONTACT_TAGS, moved)
        await tx.execute(Q_MOVE_DEVICE_NAMES, moved)
        await tx.execute(Q_MOVE_INTERACTIONS, moved)
        await tx.execute(Q_MOVE_PARTICIPANTS, moved)
        await tx.execute(Q_MOVE_RECIPIENTS, moved)
        await tx.execute(Q_DELETE_CONTACTS, [account_id, sources])
        merged = [str(source) for source in sources]
        # Leads may have been re-keyed, relinked or deleted: the cached board is stale either way.
        rec.on_commit(lambda: invalidate_leads(state, account_id))
        rec.emit("contact_update", {"action": "merged", "kept_id": str(keep_id), "ids": merged})
        if lead_ids:
            rec.emit("lead_update", {"action": "updated", "ids": lead_ids})
    return MergeResult(merged, lead_ids)


async def _merge_chats(
    tx: Transaction, account_id: uuid.UUID, keep_id: uuid.UUID, keep_jid: str, source_jids: list[str]
) -> None:
    await tx.execute(Q_CLAIM_CHAT, [account_id, source_jids, keep_jid, keep_id])
    target = await tx.fetch_val(Q_CHAT_OF_JID, [account_id, keep_jid])
    if target is None:
        return  # neither the kept nor a merged contact has a chat
    target_id = uuid.UUID(str(target))
    params = [account_id, target_id, source_jids]
    await tx.execute(Q_MOVE_MESSAGES, params)
    await tx.execute(Q_MOVE_REACTIONS, params)
    await tx.execute(Q_MOVE_CHAT_TAGS, params)
    await tx.execute(Q_FOLD_CHAT, [*params, keep_id])
    await tx.execute(Q_DELETE_CHATS, [account_id, source_jids, target_id])


async def _merge_leads(
    tx: Transaction,
    account_id: uuid.UUID,
    keep_id: uuid.UUID,
    keep_jid: str,
    source_jids: list[str],
    sources: list[uuid.UUID],
) -> list[str]:
    changed: list[str] = []
    claimed = await tx.fetch_val(Q_CLAIM_LEAD, [account_id, source_jids, keep_jid, keep_id])
    if claimed is not None:
        changed.append(str(claimed))
    target = await tx.fetch_val(Q_LEAD_OF_JID, [account_id, keep_jid])
    target_id = uuid.UUID(str(target)) if target is not None else None
    if target_id is not None:
        duplicates = [
            uuid.UUID(str(row["id"]))
            for row in await tx.fetch(Q_DUPLICATE_LEADS, [account_id, source_jids, target_id])
        ]
        if duplicates:
            await tx.execute(Q_MOVE_LEAD_INTERACTIONS, [account_id, target_id, duplicates])
            await tx.execute(Q_MOVE_LEAD_TAGS, [account_id, target_id, duplicates])
            await tx.execute(Q_DELETE_LEADS, [account_id, duplicates])
            changed.extend(str(dup) for dup in duplicates)
    relinked = await tx.fetch(Q_RELINK_LEADS, [account_id, keep_id, sources, target_id])
    changed.extend(str(row["id"]) for row in relinked)
    return list(dict.fromkeys(changed))
