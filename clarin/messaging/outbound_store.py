"""How a send is recorded (clarin.messaging.outbound): a pending row before the driver, its outcome after.

1. :func:`record_pending` — before anything is handed to WhatsApp: the chat upserted and claimed by the device, the
   message inserted as ``status 'pending'`` (placeholder stanza id ``pending:<row id>``), the Idempotency-Key (if
   any) linked to it — one statement (plus the poll options, in the same transaction). If it fails, nothing is
   sent: the caller gets the database's 503 (or ``409 … in progress`` when the key was re-claimed meanwhile).
2. :func:`finish_sent` — the driver took it: status ``'sent'``, the real stanza id and ack time, the chat preview,
   the key's answer — one statement. PostgreSQL unreachable: the statement is held and retried
   (clarin.whatsapp.held) and the caller answered at once with the message WhatsApp took; ``message_sent`` is
   broadcast when the row is written.
3. :func:`finish_not_sent` — the driver refused: the row is removed (a failed send is not stored, as before), with
   the chat when this send created it; the key keeps the error as its answer when the message may have reached
   WhatsApp (a driver error), or is released when it surely did not (device not connected). Held the same way.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from clarin.db.errors import DatabaseUnavailable, UniqueViolation
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.http.json import encode
from clarin.http.response import error_body
from clarin.messaging.idempotency import IdemClaim, complete, in_progress
from clarin.webhooks.recording import Recorder, recording
from clarin.whatsapp.driver import QuotedMessage, SentMessage
from clarin.whatsapp.inbox import DeviceRef
from clarin.wire.messages import InboxMessageResponse, Message, MessageSentEvent

if TYPE_CHECKING:
    from clarin.db.pool import Transaction
    from clarin.state import AppState
    from clarin.whatsapp.held import HeldWrites

log = logging.getLogger("clarin.messaging.outbound")

Q_PENDING = query("outbound_store_pending")
Q_SENT = query("outbound_store_sent_final")
Q_NOT_SENT = query("outbound_store_not_sent")
Q_DROP_DUPLICATE = query("outbound_drop_pending_duplicate")
Q_BY_STANZA = query("outbound_message_by_stanza")
Q_POLL_OPTIONS = query("outbound_poll_options_insert")


@dataclass(slots=True)
class Outgoing:
    """What is stored for one sent message."""

    body: str
    message_type: str
    preview: str
    media_url: str | None = None
    media_mimetype: str | None = None
    media_filename: str | None = None
    media_size: int | None = None
    quoted: QuotedMessage | None = None
    poll_question: str | None = None
    poll_max_selections: int | None = None
    poll_options: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Pending:
    row: dict[str, Any]
    chat_created: bool
    idem: IdemClaim | None

    @property
    def id(self) -> uuid.UUID:
        return uuid.UUID(str(self.row["id"]))

    @property
    def chat_id(self) -> str:
        return str(self.row["chat_id"])


async def record_pending(
    state: AppState, account_id: uuid.UUID, device: DeviceRef, chat_jid: str, from_jid: str, out: Outgoing,
    idem: IdemClaim | None,
) -> Pending:
    quoted = out.quoted
    params = [
        account_id, device.id, uuid.uuid4(), chat_jid, from_jid or None, out.body, out.message_type, out.media_url,
        out.media_mimetype, out.media_filename, out.media_size, quoted.message_id if quoted else None,
        quoted.body if quoted else None, (quoted.sender_jid or None) if quoted else None, out.poll_question,
        out.poll_max_selections, idem.key if idem else None, idem.claim_uuid if idem else None,
    ]
    try:
        if out.poll_options:  # the poll's options go in with it: one transaction
            async with state.db.transaction() as tx:
                row = await tx.fetch_row(Q_PENDING, params)
                if row is not None:
                    options = await tx.fetch(Q_POLL_OPTIONS, [account_id, uuid.UUID(str(row["id"])), out.poll_options])
                    row = {**row, "poll_options": options}
        else:  # one statement, atomic by itself
            row = await state.db.fetch_row(Q_PENDING, params)
    except DatabaseUnavailable:
        # The COMMIT may have landed with its answer lost: nothing is sent, so the row (if any) goes and its key is
        # released once PostgreSQL is back; otherwise the key would look handed to WhatsApp forever.
        cleanup = [account_id, params[2], False, None, None, idem.key if idem else None]

        async def forget() -> None:
            await state.db.fetch_row(Q_NOT_SENT, cleanup)

        _held(state).hold(f"unsent pending {params[2]}", forget)
        raise
    if row is None:  # the key was re-claimed by a retry since this request claimed it: send nothing
        raise in_progress()
    chat_created = bool(row.pop("chat_created"))
    return Pending(row, chat_created, idem)


def _held(state: AppState) -> HeldWrites:
    return state.whatsapp.held  # type: ignore[union-attr]  # outbound checked the pool exists


async def finish_sent(
    state: AppState, account_id: uuid.UUID, pending: Pending, sent: SentMessage, out: Outgoing,
) -> tuple[str, Message]:
    row = {**pending.row, "status": "sent", "message_id": sent.id, "timestamp": sent.timestamp}
    message = msgspec.convert(row, Message)
    idem = pending.idem
    answer = encode(InboxMessageResponse(message=message)) if idem else None
    params = [account_id, pending.id, sent.id, sent.timestamp, out.preview, 200 if idem else None, answer,
              idem.key if idem else None]

    async def write() -> None:
        # The row and its message_sent outbox rows commit together (held and retried together, too).
        nonlocal message
        try:
            async with recording(state, account_id, quiet=True) as rec:
                await rec.db.fetch_row(Q_SENT, params)
                _sent_event(rec, pending.chat_id, message)
        except UniqueViolation:
            async with recording(state, account_id, quiet=True) as rec, rec.transaction() as tx:
                message = await _already_stored(tx, account_id, pending, sent)
                if pending.idem is not None:
                    answer_of = encode(InboxMessageResponse(message=message))
                    idem_claim = pending.idem
                    rec.on_commit(lambda: complete(state.db, account_id, idem_claim, 200, answer_of))
                _sent_event(rec, pending.chat_id, message)

    try:
        await write()
    except DatabaseUnavailable:
        log.warning("message %s was sent on device %s; storing its result is held until the database is back",
                    sent.id, row["device_id"])
        _held(state).hold(f"sent {sent.id}", write)
    return pending.chat_id, message


async def _already_stored(db: Transaction, account_id: uuid.UUID, pending: Pending, sent: SentMessage) -> Message:
    """The stanza id is already in the chat (an echo was stored first): that row stands, the pending one goes
    (its Idempotency-Key gets that row as its answer once this commits)."""
    await db.execute(Q_DROP_DUPLICATE, [account_id, pending.id])
    stored = await db.fetch_row(Q_BY_STANZA, [account_id, uuid.UUID(pending.chat_id), sent.id])
    assert stored is not None
    return msgspec.convert(stored, Message)


async def finish_not_sent(
    state: AppState, account_id: uuid.UUID, pending: Pending, error: HTTPError, *, maybe_sent: bool,
) -> None:
    """The driver raised ``error``. ``maybe_sent``: WhatsApp may have the message (the key keeps ``error``)."""
    idem = pending.idem
    status = error.status if idem and maybe_sent else None
    body = error_body(error.message, error.detail) if status is not None else None
    params = [account_id, pending.id, pending.chat_created, status, body, idem.key if idem else None]

    async def write() -> None:
        await state.db.fetch_row(Q_NOT_SENT, params)

    try:
        await write()
    except DatabaseUnavailable:
        _held(state).hold(f"not sent {pending.id}", write)


def _sent_event(rec: Recorder, chat_id: str, message: Message) -> None:
    rec.emit("message_sent", MessageSentEvent(chat_id=chat_id, message=message))
