"""The database half of the ingestion: one batch of parsed records → set-based statements in ONE transaction.

Statements (``sql/queries/ingest.sql``), each run only when it has input, in this order:

1. missing chats created (every chat of a message, poll, reaction or vote), ids of all of them read;
2. messages insert ``ON CONFLICT (account_id, chat_id, message_id) DO NOTHING RETURNING`` — only the rows
   it returns are new, and only new rows cause side effects below (idempotency);
3. chats updated once each: device, name = push name of incoming messages, and for chats with new
   messages the counters (preview, GREATEST(last_message_at), unread += new incoming messages and polls);
4. contacts upsert + auto-created leads (one statement);
5. poll options of new polls;
6. reactions upsert / delete;
7. poll votes upsert, then the vote counts of the touched polls recomputed in one statement;
8. edits / revokes applied to their target messages;
9. receipts → messages.status.

Duplicate conflict keys inside a batch are collapsed here first (ON CONFLICT DO UPDATE may not touch a row
twice): the last event wins for reactions, votes, edits and contact names; the first wins for messages.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clarin.db.queries import query
from clarin.messaging.ingest_parse import NAME_LEN, PHONE_LEN, Inbound, Receipt, clean
from clarin.messaging.polls import option_from_row, vote_from_row
from clarin.whatsapp.driver import jid_user
from clarin.wire.messages import PollOption, PollVote

if TYPE_CHECKING:
    from clarin.db.pool import Transaction
    from clarin.whatsapp.pool import DeviceRef

Q_ENSURE_CHATS = query("ingest_ensure_chats")
Q_INSERT_MESSAGES = query("ingest_insert_messages")
Q_UPDATE_CHATS = query("ingest_update_chats")
Q_CONTACTS_LEADS = query("ingest_upsert_contacts_leads")
Q_POLL_OPTIONS = query("ingest_insert_poll_options")
Q_UPSERT_REACTIONS = query("ingest_upsert_reactions")
Q_DELETE_REACTIONS = query("ingest_delete_reactions")
Q_UPSERT_VOTES = query("ingest_upsert_poll_votes")
Q_RECOUNT = query("ingest_recount_poll_options")
Q_POLL_VOTES = query("ingest_poll_votes")
Q_APPLY_EDITS = query("ingest_apply_edits")
Q_APPLY_RECEIPTS = query("ingest_apply_receipts")

MAX_POLL_VOTES = 10_000
STATUS_RANK = {"delivered": 1, "read": 2}


@dataclass(slots=True)
class StoredMessage:
    record: Inbound
    id: str
    chat_id: str
    created_at: Any
    unread_count: int = 0  # the chat's count right after this message (new_message payload)
    poll_options: list[PollOption] | None = None


@dataclass(slots=True)
class ReactionChange:
    record: Inbound
    chat_id: str
    removed: bool


@dataclass(slots=True)
class PollChange:
    chat_id: str
    poll_stanza_id: str
    voter_jid: str
    options: list[PollOption]
    votes: list[PollVote]


@dataclass(slots=True)
class MessageChange:
    chat_id: str
    chat_jid: str
    message_id: str
    action: str  # edited | revoked
    body: str
    message_type: str


@dataclass
class Outcome:
    messages: list[StoredMessage] = field(default_factory=list)
    chat_ids: dict[str, str] = field(default_factory=dict)  # resolved chat JID → chat id
    lead_ids: list[str] = field(default_factory=list)
    contacts_written: int = 0  # contacts inserted or changed (0: no cached contacts read needs retiring)
    reactions: list[ReactionChange] = field(default_factory=list)
    polls: list[PollChange] = field(default_factory=list)
    changes: list[MessageChange] = field(default_factory=list)
    statuses_updated: int = 0
    recorded: bool = False  # the webhook outbox rows of its events were written in its transaction


async def write_batch(tx: Transaction, device: DeviceRef, records: list[Inbound], receipts: list[Receipt]) -> Outcome:
    account = device.account_id
    out = Outcome()
    messages = _unique_messages([r for r in records if r.kind in ("message", "poll")])
    reactions = [r for r in records if r.kind == "reaction"]
    votes = [r for r in records if r.kind == "vote"]
    edits = [r for r in records if r.kind in ("edit", "revoke")]

    # 1. chats (created when missing; name = push name of incoming messages)
    names: dict[str, str] = {}
    for r in (*messages, *reactions, *votes):
        name = r.push_name if r.kind in ("message", "poll") and not r.is_from_me else ""
        if name or r.chat_jid not in names:
            names[r.chat_jid] = clean(name, NAME_LEN)
    if names:
        out.chat_ids = await _ensure_chats(tx, device, names)

    # 2. messages, 3. chat updates and counters
    per_chat: dict[str, list[StoredMessage]] = {}
    if messages:
        per_chat = await _insert_messages(tx, device, messages, out)
    if out.chat_ids:
        await _update_chats(tx, device, names, per_chat, out)

    # 4. contacts and leads (the contact of each new message; a lead for new incoming senders)
    if out.messages:
        await _contacts_and_leads(tx, device, out)

    # 5. poll options of new polls
    polls = [s for s in out.messages if s.record.kind == "poll" and s.record.poll_options]
    if polls:
        ids, option_names, positions = [], [], []
        for s in polls:
            for position, name in enumerate(s.record.poll_options):
                ids.append(uuid.UUID(s.id))
                option_names.append(name)
                positions.append(position)
        rows = await tx.fetch(Q_POLL_OPTIONS, [account, ids, option_names, positions])
        by_poll: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_poll.setdefault(str(row["message_id"]), []).append(row)
        for s in polls:
            ordered = sorted(by_poll.get(s.id, []), key=lambda row: row["position"])
            s.poll_options = [option_from_row(row) for row in ordered]

    # 6. reactions
    if reactions:
        await _reactions(tx, device, reactions, out)

    # 7. votes
    voting = [r for r in votes if r.chat_jid in out.chat_ids]
    if voting:
        await _votes(tx, device, voting, out)

    # 8. edits and revokes
    if edits:
        await _edits(tx, device, edits, out)

    # 9. receipts
    if receipts:
        out.statuses_updated = await _receipts(tx, device, receipts)
    return out


def _unique_messages(records: list[Inbound]) -> list[Inbound]:
    seen: set[tuple[str, str]] = set()
    unique: list[Inbound] = []
    for r in records:
        key = (r.chat_jid, r.message_id)
        if key not in seen:
            seen.add(key)
            unique.append(r)
    return unique


async def _ensure_chats(tx: Transaction, device: DeviceRef, names: dict[str, str]) -> dict[str, str]:
    jids = sorted(names)
    ids: dict[str, str] = {}
    for _ in range(3):  # a chat created by a concurrent batch can be missing from the first snapshot
        todo = [j for j in jids if j not in ids]
        if not todo:
            break
        rows = await tx.fetch(Q_ENSURE_CHATS, [device.account_id, device.id, todo, [names[j] for j in todo]])
        if not rows:
            break  # the device is gone
        ids.update({row["jid"]: str(row["id"]) for row in rows})
    return ids


async def _insert_messages(
    tx: Transaction, device: DeviceRef, messages: list[Inbound], out: Outcome
) -> dict[str, list[StoredMessage]]:
    """Insert; returns the new messages per chat id, in arrival order."""
    per_chat: dict[str, list[StoredMessage]] = {}
    rows_in = [r for r in messages if r.chat_jid in out.chat_ids]
    if not rows_in:
        return per_chat
    cols: list[list[Any]] = [[] for _ in range(17)]
    for r in rows_in:
        is_media = bool(r.media_kind)
        is_poll = r.kind == "poll"
        values = (
            uuid.UUID(out.chat_ids[r.chat_jid]), r.message_id, r.sender_jid, r.push_name, r.body, r.message_type,
            r.media_url or None, (r.mimetype or None) if is_media else None,
            (r.file_name or None) if r.media_kind == "document" else None,
            (r.file_length or None) if is_media else None,
            r.is_from_me, r.timestamp, r.quoted_message_id, r.quoted_body, r.quoted_sender,
            r.poll_question if is_poll else None, r.poll_max_selections if is_poll else None,
        )
        for col, value in zip(cols, values, strict=True):
            col.append(value)
    rows = await tx.fetch(Q_INSERT_MESSAGES, [device.account_id, device.id, *cols])
    inserted = {(str(row["chat_id"]), row["message_id"]): row for row in rows}
    for r in rows_in:
        chat_id = out.chat_ids[r.chat_jid]
        row = inserted.get((chat_id, r.message_id))
        if row is None:
            continue  # already stored: a duplicate delivery
        stored = StoredMessage(r, str(row["id"]), chat_id, row["created_at"])
        out.messages.append(stored)
        per_chat.setdefault(chat_id, []).append(stored)
    return per_chat


async def _update_chats(
    tx: Transaction, device: DeviceRef, names: dict[str, str], per_chat: dict[str, list[StoredMessage]],
    out: Outcome,
) -> None:
    entries = sorted((chat_id, jid) for jid, chat_id in out.chat_ids.items())
    chat_ids: list[uuid.UUID] = []
    chat_names: list[str] = []
    stamps: list[Any] = []
    previews: list[str | None] = []
    unread: list[int] = []
    for chat_id, jid in entries:
        items = per_chat.get(chat_id, [])
        newest = None
        for s in items:
            if newest is None or s.record.timestamp >= newest.record.timestamp:
                newest = s
        chat_ids.append(uuid.UUID(chat_id))
        chat_names.append(names.get(jid, ""))
        stamps.append(newest.record.timestamp if newest else None)
        previews.append(newest.record.preview if newest else None)
        unread.append(sum(1 for s in items if not s.record.is_from_me))
    rows = await tx.fetch(Q_UPDATE_CHATS, [device.account_id, device.id, chat_ids, chat_names, stamps, previews,
                                            unread])
    after = {str(row["id"]): int(row["unread_count"]) for row in rows}
    for chat_id, items in per_chat.items():
        count = after.get(chat_id, 0) - sum(1 for s in items if not s.record.is_from_me)
        for s in items:
            if not s.record.is_from_me:
                count += 1
            s.unread_count = count


async def _contacts_and_leads(tx: Transaction, device: DeviceRef, out: Outcome) -> None:
    own = _own_jid(device)
    contacts: dict[str, list[Any]] = {}  # jid → [phone, name, want_lead]
    for s in out.messages:
        r = s.record
        if r.is_from_me:
            if not own:
                continue
            jid = own  # B.6: a message written on the phone upserts the device's own contact
        else:
            jid = r.chat_jid
        entry = contacts.setdefault(jid, [clean(jid_user(jid), PHONE_LEN), "", False])
        if r.push_name:
            entry[1] = r.push_name
        if r.kind == "message" and not r.is_from_me:
            entry[2] = True
    jids = sorted(contacts)
    row = await tx.fetch_row(Q_CONTACTS_LEADS, [
        device.account_id, device.id, jids, [contacts[j][0] for j in jids], [contacts[j][1] for j in jids],
        [contacts[j][2] for j in jids],
    ])
    assert row is not None  # an aggregate: always one row
    out.contacts_written = int(row["contacts_written"])
    out.lead_ids = [str(lead_id) for lead_id in row["lead_ids"]]


def _own_jid(device: DeviceRef) -> str:
    if not device.jid or "@" not in device.jid:
        return ""
    return f"{jid_user(device.jid)}@{device.jid.split('@', 1)[1]}"


async def _reactions(tx: Transaction, device: DeviceRef, reactions: list[Inbound], out: Outcome) -> None:
    last: dict[tuple[str, str, str], Inbound] = {}
    for r in reactions:
        if r.chat_jid in out.chat_ids:
            last[(out.chat_ids[r.chat_jid], r.target_id, r.sender_jid)] = r
    upserts = sorted((k, r) for k, r in last.items() if r.emoji)
    removals = sorted((k, r) for k, r in last.items() if not r.emoji)
    changed: set[tuple[str, str, str]] = set()
    if upserts:
        rows = await tx.fetch(Q_UPSERT_REACTIONS, [
            device.account_id, [uuid.UUID(k[0]) for k, _ in upserts], [k[1] for k, _ in upserts],
            [k[2] for k, _ in upserts], [r.push_name or None for _, r in upserts], [r.emoji for _, r in upserts],
            [r.is_from_me for _, r in upserts], [r.timestamp for _, r in upserts],
        ])
        changed.update((str(row["chat_id"]), row["target_message_id"], row["sender_jid"]) for row in rows)
    if removals:
        rows = await tx.fetch(Q_DELETE_REACTIONS, [
            device.account_id, [uuid.UUID(k[0]) for k, _ in removals], [k[1] for k, _ in removals],
            [k[2] for k, _ in removals], [r.timestamp for _, r in removals],
        ])
        changed.update((str(row["chat_id"]), row["target_message_id"], row["sender_jid"]) for row in rows)
    for key, r in last.items():
        if key in changed:
            out.reactions.append(ReactionChange(r, key[0], removed=not r.emoji))


async def _votes(tx: Transaction, device: DeviceRef, votes: list[Inbound], out: Outcome) -> None:
    last: dict[tuple[str, str, str], Inbound] = {}
    for r in votes:
        last[(out.chat_ids[r.chat_jid], r.target_id, r.sender_jid)] = r
    items = sorted(last.items())
    rows = await tx.fetch(Q_UPSERT_VOTES, [
        device.account_id, [uuid.UUID(k[0]) for k, _ in items], [k[1] for k, _ in items],
        [k[2] for k, _ in items], [",".join(r.vote_hashes) for _, r in items], [r.timestamp for _, r in items],
    ])
    if not rows:
        return
    poll_ids = sorted({str(row["message_id"]) for row in rows})
    option_rows = await tx.fetch(Q_RECOUNT, [device.account_id, [uuid.UUID(p) for p in poll_ids]])
    vote_rows = await tx.fetch(Q_POLL_VOTES, [device.account_id, [uuid.UUID(p) for p in poll_ids], MAX_POLL_VOTES])
    options: dict[str, list[dict[str, Any]]] = {}
    for row in option_rows:
        options.setdefault(str(row["message_id"]), []).append(row)
    poll_votes: dict[str, list[PollVote]] = {}
    for row in vote_rows:
        poll_votes.setdefault(str(row["message_id"]), []).append(vote_from_row(row))
    for row in rows:
        poll_id = str(row["message_id"])
        ordered = sorted(options.get(poll_id, []), key=lambda o: o["position"])
        out.polls.append(PollChange(str(row["chat_id"]), row["stanza_id"], row["voter_jid"],
                                    [option_from_row(o) for o in ordered], poll_votes.get(poll_id, [])))


async def _edits(tx: Transaction, device: DeviceRef, edits: list[Inbound], out: Outcome) -> None:
    last: dict[tuple[str, str], Inbound] = {}
    for r in edits:
        key = (r.chat_jid, r.target_id)
        previous = last.get(key)
        if previous is not None and previous.kind == "revoke":
            continue  # a revoke is final
        last[key] = r
    items = sorted(last.items())
    rows = await tx.fetch(Q_APPLY_EDITS, [
        device.account_id, [k[0] for k, _ in items], [k[1] for k, _ in items], [r.is_from_me for _, r in items],
        [r.kind for _, r in items], [r.body for _, r in items],
    ])
    changed = {(row["chat_jid"], row["message_id"]): row for row in rows}
    for key, r in last.items():  # arrival order
        row = changed.get(key)
        if row is not None:
            out.changes.append(MessageChange(str(row["chat_id"]), key[0], key[1],
                                             "revoked" if r.kind == "revoke" else "edited",
                                             row["body"] or "", row["message_type"]))


async def _receipts(tx: Transaction, device: DeviceRef, receipts: list[Receipt]) -> int:
    best: dict[tuple[str, str], str] = {}
    for receipt in receipts:
        for message_id in receipt.message_ids:
            key = (receipt.resolved_chat_jid or receipt.chat_jid, message_id)
            if STATUS_RANK[receipt.status] > STATUS_RANK.get(best.get(key, ""), 0):
                best[key] = receipt.status
    items = sorted(best.items())
    rows = await tx.fetch(Q_APPLY_RECEIPTS, [
        device.account_id, [k[0] for k, _ in items], [k[1] for k, _ in items], [s for _, s in items],
    ])
    return len(rows)
