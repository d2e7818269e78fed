"""Inbound WhatsApp ingestion: the device pool's :class:`~clarin.whatsapp.pool.InboundHandler`.

Installed at start-up (``AppState.start``: ``state.whatsapp.inbound = InboundIngestor(state)``). The pool hands
over every non-lifecycle event of a device in arrival order, as batches of up to 500 (whatever queued up
while the previous batch was written), and waits for each batch.

Per batch:

1. **parse** every event (:mod:`clarin.messaging.ingest_parse`); a corrupt event is logged and skipped,
   ignored kinds (groups, status broadcasts, newsletters, history sync, protocol messages) are dropped;
2. **resolve** ``@lid`` chat JIDs to phone JIDs (the event's own SenderAlt/RecipientAlt, else the driver's
   LID map; known mappings are cached), B.6;
3. **decrypt** poll votes through the driver (failure → that vote is skipped, B.9);
4. **media**: download each new media message through the driver and store it under
   ``<account>/chats/<raw chat JID>/<stanza id>-<random token><ext>`` (proxy URL ``/api/media/file/<key>``;
   the token because every chat participant knows the stanza id and the proxy is public), a few at a time,
   outside the transaction; stanzas already stored are not downloaded again; a failure stores the message
   without ``media_url`` (logged);
5. **write** the whole batch in ONE transaction of set-based statements (:mod:`clarin.messaging.ingest_store`).
   If the transaction fails for a reason other than the database being down, the batch is split in halves
   and each half retried on its own, down to single events, so one poisonous event cannot take the batch's
   other messages with it. If the database is down (:class:`DatabaseUnavailable`), the prepared batch is
   kept and written again after 0.2 s, 0.4 s, … at most every 2 s until it commits (or the ingestor is
   closed / the consumer cancelled at shutdown). Meanwhile the device's later events queue behind it in the
   pool and the driver's callbacks stay held (backpressure: whatsmeow acknowledges a message only after its
   callback returns). Steps 1–4 are not redone. The outage is a few log lines (:class:`OutageLog`), not one
   per retry;
6. after the commit: ``invalidate_leads`` once when leads were created, then the WebSocket events in this
   order: ``new_message`` (arrival order), ``message_update`` (edits/revokes, new), ``message_reaction``,
   ``poll_update``, ``message_status``, ``presence``, and one ``lead_update {action: "created", ids}``. For an
   account with an enabled webhook subscription the outbox rows of those events are written inside the batch's
   transaction (step 5), so they commit with the messages or not at all (docs/WEBHOOKS.md, "Durability");
7. avatars (B.7 step 10, B.16.5): the senders of new incoming messages whose contact has no ``avatar_url``
   get their profile picture fetched by a background task (a few at a time), stored at
   ``<account>/avatars/<user>-<random token>.jpg`` (never the guessable ``<user>.jpg``: the proxy is public)
   and linked as ``/api/media/file/<key>``. Each contact is tried at most once per process (the original
   retried on every message); nothing here can delay or fail ingestion.

Idempotency: a stanza is stored once per (account, chat, stanza id); a re-delivered message inserts nothing
and causes nothing (no counter, contact, lead or event). Reactions, votes, edits and receipts that change
nothing emit nothing either.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clarin.cache.scopes import CONTACTS
from clarin.crm.leads_cache import invalidate_leads
from clarin.db.errors import DatabaseUnavailable, OutageLog
from clarin.db.queries import query
from clarin.messaging.ingest_parse import Inbound, Presence, Receipt, parse_event
from clarin.messaging.ingest_store import Outcome, write_batch
from clarin.messaging.polls import hashes_hex
from clarin.storage.keys import AVATARS_FOLDER, build_key, proxy_url, secret_filename
from clarin.whatsapp.driver import LID_SERVER, USER_SERVER, jid_user
from clarin.wire.leads import LeadUpdateEvent
from clarin.wire.messages import (
    GO_ZERO_TIME,
    Message,
    MessageReactionEvent,
    MessageStatusEvent,
    MessageUpdateEvent,
    NewMessageEvent,
    PollUpdateEvent,
    PresenceEvent,
)

if TYPE_CHECKING:
    from clarin.state import AppState
    from clarin.whatsapp.pool import DeviceRef

log = logging.getLogger("clarin.ingest")

Q_EXISTING = query("ingest_existing_messages")
Q_NO_AVATAR = query("ingest_contacts_without_avatar")
Q_SET_AVATAR = query("ingest_set_avatar")

MEDIA_CONCURRENCY = 8
LID_CACHE_SIZE = 50_000
AVATAR_CONCURRENCY = 4
AVATAR_MEMORY = 200_000  # (account, JID) pairs remembered as tried; forgotten all at once past this
RETRY_FIRST = 0.2  # database down: first wait before writing a held batch again, doubled up to RETRY_MAX
RETRY_MAX = 2.0
OUTAGE_LOG_INTERVAL = 5.0  # at most one "still waiting" line per this many seconds during an outage


@dataclass
class IngestStats:
    """Counters for logs, benchmarks and tests."""

    batches: int = 0
    transactions: int = 0
    events: int = 0
    corrupt: int = 0
    messages: int = 0
    skipped: int = 0  # events dropped because their write failed even alone
    held: int = 0  # batches that waited for the database (each counted once)


class InboundIngestor:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.stats = IngestStats()
        self._lids: dict[str, str] = {}
        self._avatar_tried: set[tuple[uuid.UUID, str]] = set()
        self._avatar_gate = asyncio.Semaphore(AVATAR_CONCURRENCY)
        self._avatar_tasks: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()
        # The current database outage, shared by every device's consumer: batches waiting right now, when the
        # first one started waiting, how many events waited in all, and its throttled log.
        self._waiting = 0
        self._outage_since = 0.0
        self._outage_events = 0
        self._outage_batches = 0
        self._outage_log = OutageLog(log, interval=OUTAGE_LOG_INTERVAL, level=logging.WARNING)

    @property
    def driver(self) -> Any:
        assert self.state.whatsapp is not None
        return self.state.whatsapp.driver

    async def handle(self, device: DeviceRef, event: Any) -> None:
        await self.handle_batch(device, [event])

    async def handle_batch(self, device: DeviceRef, events: list[Any]) -> None:
        started = time.perf_counter()
        self.stats.batches += 1
        self.stats.events += len(events)
        records: list[Inbound | Receipt | Presence] = []
        for event in events:
            try:
                record = parse_event(event)
            except Exception as exc:
                self.stats.corrupt += 1
                log.warning("device %s: skipping corrupt %s event: %s", device.id, type(event).__name__, exc)
                continue
            if record is not None:
                records.append(record)
        if not records:
            return
        await self._resolve(device, records)
        await self._decrypt_votes(device, records)
        await self._store_media(device, records)
        await self._write(device, records)
        log.debug("device %s: batch of %d events in %.1f ms", device.id, len(events),
                  (time.perf_counter() - started) * 1000)

    # -- preparation (outside the transaction) ----------------------------------------------------
    async def _resolve(self, device: DeviceRef, records: list[Inbound | Receipt | Presence]) -> None:
        unknown: set[str] = set()  # LIDs the driver could not map, asked once per batch
        for record in records:
            if isinstance(record, Inbound):
                record.chat_jid = await self._pn(device, record.raw_chat_jid, record.chat_hint, unknown)
            elif isinstance(record, Receipt):
                record.resolved_chat_jid = await self._pn(device, record.chat_jid, "", unknown)

    async def _pn(self, device: DeviceRef, jid: str, hint: str, unknown: set[str]) -> str:
        if not jid.endswith("@" + LID_SERVER):
            return jid
        if hint:
            self._remember(jid, hint)
            return hint
        known = self._lids.get(jid)
        if known is not None:
            return known
        if jid in unknown:
            return jid
        unknown.add(jid)
        try:
            pn = await self.driver.pn_for_lid(device.id, jid)
        except Exception as exc:
            log.debug("LID lookup of %s failed: %s", jid, exc)
            return jid
        if not pn:
            return jid
        resolved = f"{jid_user(pn)}@{USER_SERVER}"
        self._remember(jid, resolved)
        return resolved

    def _remember(self, lid: str, pn: str) -> None:
        if len(self._lids) >= LID_CACHE_SIZE:
            self._lids.clear()
        self._lids[lid] = pn

    async def _decrypt_votes(self, device: DeviceRef, records: list[Inbound | Receipt | Presence]) -> None:
        for record in records:
            if not isinstance(record, Inbound) or record.kind != "vote":
                continue
            try:
                record.vote_hashes = hashes_hex(await self.driver.decrypt_poll_vote(device.id, record.event))
            except Exception as exc:
                log.info("device %s: poll vote %s ignored: %s", device.id, record.message_id, exc)
                record.kind = "ignored"

    async def _store_media(self, device: DeviceRef, records: list[Inbound | Receipt | Presence]) -> None:
        media = [r for r in records if isinstance(r, Inbound) and r.kind == "message" and r.media_kind]
        if not media:
            return
        storage = self.state.storage
        if not await storage.available():
            log.warning("device %s: media storage unavailable, %d media messages stored without file",
                        device.id, len(media))
            return
        try:
            stored = await self.state.db.fetch(Q_EXISTING, [
                device.account_id, [r.chat_jid for r in media], [r.message_id for r in media],
            ])
        except Exception as exc:
            log.warning("device %s: duplicate check failed: %s", device.id, exc)
            stored = []
        known = {(row["jid"], row["message_id"]) for row in stored}
        gate = asyncio.Semaphore(MEDIA_CONCURRENCY)

        async def fetch_one(r: Inbound) -> None:
            if (r.chat_jid, r.message_id) in known:
                return
            async with gate:
                try:
                    key = build_key(device.account_id, f"chats/{r.raw_chat_jid}",
                                    secret_filename(r.message_id, r.media_ext))
                    data = await self.driver.download_media(device.id, r.content)
                    await storage.put(key, data, r.mimetype or "application/octet-stream")
                except Exception as exc:
                    log.warning("device %s: media of %s not stored: %s", device.id, r.message_id, exc)
                    return
            r.media_url = proxy_url(key)
            if not r.file_length:
                r.file_length = len(data)

        await asyncio.gather(*(fetch_one(r) for r in media))

    # -- the transaction ----------------------------------------------------------------------------
    async def _write(self, device: DeviceRef, records: list[Inbound | Receipt | Presence]) -> None:
        inbound = [r for r in records if isinstance(r, Inbound) and r.kind != "ignored"]
        receipts = [r for r in records if isinstance(r, Receipt)]
        presences = [r for r in records if isinstance(r, Presence)]
        outcome = Outcome()
        if inbound or receipts:
            outcome = await self._commit(device, inbound, receipts)
        await self._announce(device, outcome, receipts, presences)
        self._schedule_avatars(device, outcome)

    async def _commit(self, device: DeviceRef, inbound: list[Inbound], receipts: list[Receipt]) -> Outcome:
        """One transaction for everything; on failure, halves retried alone (down to single events).
        While the database is down the (part of the) batch waits and is written again (:meth:`_transaction`)."""
        try:
            outcome = await self._transaction(device, inbound, receipts)
            self.stats.messages += len(outcome.messages)
            return outcome
        except Exception as exc:
            size = len(inbound) + len(receipts)
            if size <= 1:
                self.stats.skipped += size
                log.warning("device %s: skipping an event whose write failed: %s", device.id, exc)
                return Outcome()
            log.warning("device %s: batch of %d failed (%s); retrying in halves", device.id, size, exc)
        merged = Outcome()
        for part_in, part_rc in _halves(inbound, receipts):
            part = await self._commit(device, part_in, part_rc)
            merged.messages += part.messages
            merged.lead_ids += part.lead_ids
            merged.contacts_written += part.contacts_written
            merged.reactions += part.reactions
            merged.polls += part.polls
            merged.changes += part.changes
            merged.statuses_updated += part.statuses_updated
            merged.recorded = merged.recorded or part.recorded  # parts differ only if a subscription came or went
        return merged

    async def _transaction(self, device: DeviceRef, inbound: list[Inbound], receipts: list[Receipt]) -> Outcome:
        """Write the records in one transaction; while PostgreSQL is unreachable, keep them and write again.

        Waits RETRY_FIRST, doubling up to RETRY_MAX, until the write commits. The records are already
        resolved, decrypted and their media stored: only the transaction is repeated. The caller (the device's
        consumer in the pool) is held meanwhile, so the device's later events queue behind this batch, in
        order, and the driver's callbacks for them do not return (nothing is acknowledged to WhatsApp).
        Gives up only when the ingestor is closed (the events are counted as skipped and logged) or the task
        is cancelled (shutdown, or the pool stopped running the device).

        Re-running a batch is safe even when the previous attempt's outcome is unknown (the connection
        dropped during COMMIT, which may or may not have been applied): the store is idempotent, a stanza
        already stored inserts nothing and changes no counter, contact, lead, reaction, vote or status again.
        Such a retry finds nothing new, though, so its outcome would announce nothing: when it comes back
        empty, the outcome of the attempt that reached COMMIT is returned instead (that commit did happen,
        since one transaction is all or nothing), and the events and cache invalidations go out exactly once.
        """
        size = len(inbound) + len(receipts)
        account = str(device.account_id)
        outbox = self.state.broadcaster.outbox
        delay = RETRY_FIRST
        waited = committed = False
        unsure: Outcome | None = None  # statements done, COMMIT's fate unknown
        try:
            while True:
                written: Outcome | None = None
                try:
                    self.stats.transactions += 1
                    wanted = outbox is not None and await outbox.wanted(account)
                    async with self.state.db.transaction() as tx:
                        batch = await write_batch(tx, device, inbound, receipts)
                        if wanted and outbox is not None:  # the events' outbox rows, in the same transaction
                            await outbox.write_in(tx, account, _events(device, batch, receipts, []))
                            batch.recorded = True
                        written = batch  # all statements done: only COMMIT's fate can be unknown now
                    if written.recorded and outbox is not None:
                        outbox.written()
                except DatabaseUnavailable as exc:
                    if written is not None and not _empty(written):
                        unsure = written
                    if not waited:
                        waited = True
                        self._hold(device, size, exc)
                    else:
                        self._outage_log.report("ingestion still waiting for the database (%d batches held): %s",
                                                self._waiting, exc)
                    if not await self._pause(delay):
                        self.stats.skipped += size
                        log.warning("device %s: %d events not written: shutting down while the database is "
                                    "unavailable", device.id, size)
                        return Outcome()
                    delay = min(delay * 2, RETRY_MAX)
                    continue
                assert written is not None
                committed = True
                return unsure if unsure is not None and _empty(written) else written
        except asyncio.CancelledError:
            if waited:
                log.warning("device %s: %d events not written: ingestion stopped while the database is "
                            "unavailable", device.id, size)
            raise
        finally:
            if waited:
                self._release(resumed=committed)

    async def _pause(self, delay: float) -> bool:
        """Wait ``delay`` seconds before the next attempt; False when the ingestor is closing."""
        if self._closing.is_set():
            return False
        try:
            async with asyncio.timeout(delay):
                await self._closing.wait()
            return False
        except TimeoutError:
            return True

    def _hold(self, device: DeviceRef, size: int, exc: Exception) -> None:
        """A batch starts waiting for the database; the first one of an outage is always logged."""
        if self._waiting == 0:
            self._outage_since = time.monotonic()
            self._outage_events = self._outage_batches = 0
            self._outage_log = OutageLog(log, interval=OUTAGE_LOG_INTERVAL, level=logging.WARNING)
        self._waiting += 1
        self._outage_batches += 1
        self._outage_events += size
        self.stats.held += 1
        self._outage_log.report("ingestion paused: database unavailable, device %s holds %d events and retries "
                                "(later events wait behind them): %s", device.id, size, exc)

    def _release(self, *, resumed: bool) -> None:
        """A held batch committed (``resumed``) or gave up; the last one ends the outage."""
        self._waiting -= 1
        if self._waiting == 0 and resumed:
            log.warning("ingestion resumed after %.1f s: %d held events written (%d batches), the events queued "
                        "behind them follow", time.monotonic() - self._outage_since, self._outage_events,
                        self._outage_batches)

    # -- avatars (after the commit, in the background) -----------------------------------------------
    def _schedule_avatars(self, device: DeviceRef, outcome: Outcome) -> None:
        account = device.account_id
        jids = sorted({s.record.chat_jid for s in outcome.messages
                       if s.record.kind == "message" and not s.record.is_from_me})
        todo = [j for j in jids if (account, j) not in self._avatar_tried]
        if not todo:
            return
        if len(self._avatar_tried) + len(todo) > AVATAR_MEMORY:
            self._avatar_tried.clear()
        self._avatar_tried.update((account, j) for j in todo)
        task = asyncio.get_running_loop().create_task(self._fetch_avatars(device, todo))
        self._avatar_tasks.add(task)
        task.add_done_callback(self._avatar_tasks.discard)

    async def _fetch_avatars(self, device: DeviceRef, jids: list[str]) -> None:
        account = device.account_id
        try:
            if not await self.state.storage.available():
                self._avatar_tried.difference_update((account, j) for j in jids)  # retried once storage is back
                return
            rows = await self.state.db.fetch(Q_NO_AVATAR, [account, jids])
        except Exception as exc:
            self._avatar_tried.difference_update((account, j) for j in jids)
            log.debug("device %s: avatar lookup skipped: %s", device.id, exc)
            return
        await asyncio.gather(*(self._fetch_avatar(device, row["jid"]) for row in rows))

    async def _fetch_avatar(self, device: DeviceRef, jid: str) -> None:
        async with self._avatar_gate:
            try:
                data = await self.driver.profile_picture(device.id, jid)
                if not data:
                    return
                key = build_key(device.account_id, AVATARS_FOLDER, secret_filename(jid_user(jid), ".jpg"))
                await self.state.storage.put(key, data, "image/jpeg")
                await self.state.db.execute(Q_SET_AVATAR, [device.account_id, jid, proxy_url(key)])
                await self.state.pages.invalidate(device.account_id)  # no event announces an avatar
            except Exception as exc:  # an avatar is never worth more than a log line
                log.info("device %s: avatar of %s not stored: %s", device.id, jid, exc)

    async def close(self) -> None:
        """Cancel avatar fetches still running and stop waiting for the database (shutdown)."""
        self._closing.set()
        tasks = list(self._avatar_tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- events -------------------------------------------------------------------------------------
    async def _announce(self, device: DeviceRef, outcome: Outcome, receipts: list[Receipt],
                        presences: list[Presence]) -> None:
        account = device.account_id
        if outcome.lead_ids:
            await invalidate_leads(self.state, account)
        out = _events(device, outcome, receipts, presences)
        if out:
            try:
                # new_message names the contacts scope for the sender's contact upsert; most batches write none
                unchanged = () if outcome.contacts_written else (CONTACTS,)
                await self.state.broadcaster.broadcast_many(account, out, recorded=outcome.recorded,
                                                            unchanged=unchanged)
            except Exception as exc:  # the data is committed; a lost notification is not worth a retry
                log.warning("device %s: broadcasting %d events failed: %s", device.id, len(out), exc)


def _events(device: DeviceRef, outcome: Outcome, receipts: list[Receipt], presences: list[Presence]
            ) -> list[tuple[str, Any]]:
    """The events of a written batch, in the order of step 6 (the webhook outbox takes the same list)."""
    out: list[tuple[str, Any]] = []
    for stored in outcome.messages:
        r = stored.record
        out.append(("new_message", NewMessageEvent(
            chat_id=stored.chat_id, message=_message(device, stored), chat_jid=r.chat_jid,
            sender_name=r.push_name, is_from_me=r.is_from_me, unread_count=stored.unread_count,
        )))
    for change in outcome.changes:
        out.append(("message_update", MessageUpdateEvent(
            action=change.action, chat_id=change.chat_id, chat_jid=change.chat_jid,
            message_id=change.message_id, body=change.body, message_type=change.message_type,
        )))
    for reaction in outcome.reactions:
        r = reaction.record
        out.append(("message_reaction", MessageReactionEvent(
            chat_id=reaction.chat_id, target_message_id=r.target_id, sender_jid=r.sender_jid,
            sender_name=r.push_name, emoji=r.emoji, is_from_me=r.is_from_me, removed=reaction.removed,
        )))
    for poll in outcome.polls:
        out.append(("poll_update", PollUpdateEvent(
            chat_id=poll.chat_id, message_id=poll.poll_stanza_id, options=poll.options, votes=poll.votes,
            voter_jid=poll.voter_jid,
        )))
    for receipt in receipts:
        out.append(("message_status", MessageStatusEvent(
            message_ids=receipt.message_ids, chat_jid=receipt.chat_jid, status=receipt.status,
            timestamp=receipt.timestamp,
        )))
    for presence in presences:
        out.append(("presence", PresenceEvent(
            jid=presence.jid, available=presence.available, last_seen_at=presence.last_seen_at or GO_ZERO_TIME,
        )))
    if outcome.lead_ids:
        out.append(("lead_update", LeadUpdateEvent(action="created", ids=outcome.lead_ids)))
    return out


def _empty(outcome: Outcome) -> bool:
    """Whether a write changed nothing that is announced (chats are only looked up)."""
    return not (outcome.messages or outcome.lead_ids or outcome.reactions or outcome.polls or outcome.changes
                or outcome.statuses_updated)


def _halves(inbound: list[Inbound], receipts: list[Receipt]) -> list[tuple[list[Inbound], list[Receipt]]]:
    if len(inbound) > 1:
        mid = len(inbound) // 2
        return [(inbound[:mid], []), (inbound[mid:], receipts)]
    if inbound and receipts:
        return [(inbound, []), ([], receipts)]
    mid = len(receipts) // 2
    return [([], receipts[:mid]), ([], receipts[mid:])]


def _message(device: DeviceRef, stored: Any) -> Message:
    r: Inbound = stored.record
    media = bool(r.media_kind)
    poll = r.kind == "poll"
    return Message(
        id=stored.id,
        account_id=str(device.account_id),
        device_id=str(device.id),
        chat_id=stored.chat_id,
        message_id=r.message_id,
        from_jid=r.sender_jid or None,
        from_name=r.push_name or None,
        body=r.body,
        message_type=r.message_type,
        media_url=r.media_url or None,
        media_mimetype=(r.mimetype or None) if media else None,
        media_filename=(r.file_name or None) if r.media_kind == "document" else None,
        media_size=(r.file_length or None) if media else None,
        is_from_me=r.is_from_me,
        is_read=False,
        status="received",
        timestamp=r.timestamp,
        created_at=stored.created_at,
        quoted_message_id=r.quoted_message_id or None,
        quoted_body=r.quoted_body or None,
        quoted_sender=r.quoted_sender or None,
        poll_question=r.poll_question if poll else None,
        poll_options=stored.poll_options if poll else None,
        poll_max_selections=r.poll_max_selections if poll else None,
    )
