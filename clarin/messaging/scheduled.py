"""Scheduled single messages: create, list, edit, cancel (docs/SCHEDULED_MESSAGES.md; routes in
:mod:`clarin.messaging.scheduled_routes`, the sender in :mod:`clarin.messaging.scheduled_sender`).

Rules:

- ``device_id`` must be a device of the account (``400 Invalid device ID`` / ``404 Device not found``);
  exactly one of ``to`` (phone or JID, normalised as every send: ``400 invalid JID`` / ``invalid phone``) and
  ``chat_id`` (a chat of the account: ``400 Invalid chat ID`` / ``404 Chat not found``; its JID is the
  recipient); ``body`` not blank, at most 65 536 characters; ``send_at`` RFC 3339 with a zone, not more than
  ``SEND_GRACE`` in the past (a "now" computed on the client arrives a little late: it is sent at once).
- Edits and cancels only while ``pending`` (``409 scheduled message is <status>``); unknown or foreign ids
  are ``404 Scheduled message not found``.
- Every change is one statement, announced as ``scheduled_message {action, scheduled_message}`` with its
  webhook outbox rows in the same transaction (clarin.webhooks.recording). After a create or an edit the
  device's owner process is nudged (``nudge``) so it re-plans its next wake-up at once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.http.request import parse_uuid
from clarin.http.totals import capped
from clarin.messaging.outbound import MAX_TEXT, resolve_recipient
from clarin.webhooks.recording import Recorder, recording
from clarin.wire.scheduled import ScheduleBody, ScheduledMessage, ScheduledMessageEvent, ScheduleUpdateBody

if TYPE_CHECKING:
    from clarin.db.pool import Database
    from clarin.realtime.broadcaster import Broadcaster

log = logging.getLogger("clarin.messaging.scheduled")

Q_INSERT = query("scheduled_insert")
Q_CHAT = query("scheduled_chat")
Q_GET = query("scheduled_get")
Q_PAGE = query("scheduled_page")
Q_PAGE_STATUS = query("scheduled_page_status")
Q_COUNT = query("scheduled_count")
Q_COUNT_STATUS = query("scheduled_count_status")
Q_UPDATE = query("scheduled_update")
Q_CANCEL = query("scheduled_cancel")

EVENT = "scheduled_message"
STATUSES = ("pending", "sending", "sent", "failed", "cancelled")
SEND_GRACE = timedelta(seconds=60)
PAGE_DEFAULT = 100
PAGE_MAX = 500
NOT_FOUND = "Scheduled message not found"
INVALID_ID = "Invalid scheduled message ID"

Nudge = Callable[[uuid.UUID, uuid.UUID], Awaitable[None]]  # (account_id, device_id)


def to_wire(row: dict[str, Any]) -> ScheduledMessage:
    return ScheduledMessage(
        id=str(row["id"]), device_id=str(row["device_id"]),
        chat_id=str(row["chat_id"]) if row.get("chat_id") else None, to=row["to_jid"], body=row["body"],
        send_at=row["send_at"], status=row["status"], attempts=int(row["attempts"] or 0), sent_at=row.get("sent_at"),
        sent_message_id=str(row["sent_message_id"]) if row.get("sent_message_id") else None,
        error_message=row.get("error_message"), created_at=row["created_at"], updated_at=row["updated_at"],
    )


def emit(rec: Recorder, action: str, row: dict[str, Any]) -> ScheduledMessage:
    message = to_wire(row)
    rec.emit(EVENT, ScheduledMessageEvent(action=action, scheduled_message=message))
    return message


def parse_send_at(raw: str, *, now: datetime | None = None) -> datetime:
    text = (raw or "").strip()
    if not text:
        raise HTTPError(400, "send_at is required")
    try:
        value = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text)
    except ValueError:
        raise HTTPError(400, "send_at must be an RFC 3339 time, e.g. 2030-01-31T09:00:00Z") from None
    if value.tzinfo is None:
        raise HTTPError(400, "send_at needs a time zone offset, e.g. 2030-01-31T09:00:00-05:00")
    if value < (now or datetime.now(UTC)) - SEND_GRACE:
        raise HTTPError(400, "send_at must not be in the past")
    return value


def clean_body(body: str) -> str:
    if not body.strip():
        raise HTTPError(400, "Message body is required")
    if len(body) > MAX_TEXT:
        raise HTTPError(400, f"body is too long (max {MAX_TEXT} characters)")
    return body


@dataclass(frozen=True, slots=True)
class Page:
    items: list[ScheduledMessage]
    total: int
    total_capped: bool  # more than TOTAL_COUNT_CAP rows match: ``total`` is the cap (clarin.http.totals)


class ScheduledMessages:
    """The service (built by clarin.state); ``db`` and ``broadcaster`` make it a recording writer."""

    def __init__(self, db: Database, broadcaster: Broadcaster, nudge: Nudge | None = None, *,
                 count_cap: int = 300) -> None:
        self.db = db
        self.broadcaster = broadcaster
        self.nudge = nudge
        self.count_cap = max(1, count_cap)
        self._nudges: set[asyncio.Task[None]] = set()

    async def _recipient(self, account_id: uuid.UUID, to: str, chat_id: str) -> tuple[str, uuid.UUID | None]:
        """(to_jid, chat uuid or None) from exactly one of ``to`` / ``chat_id``."""
        to, chat_id = to.strip(), chat_id.strip()
        if to and chat_id:
            raise HTTPError(400, "give either to or chat_id, not both")
        if chat_id:
            chat_uuid = parse_uuid(chat_id, "Invalid chat ID")
            chat = await self.db.fetch_row(Q_CHAT, [account_id, chat_uuid])
            if chat is None:
                raise HTTPError(404, "Chat not found")
            return resolve_recipient(chat["jid"]), chat_uuid
        if not to:
            raise HTTPError(400, "to or chat_id is required")
        return resolve_recipient(to), None

    async def _announce_change(self, account_id: uuid.UUID, row: dict[str, Any]) -> None:
        """Nudge the device's owner in the background: the answer never waits for another server."""
        if self.nudge is None:
            return
        task = asyncio.create_task(self._nudge(account_id, uuid.UUID(str(row["device_id"]))))
        self._nudges.add(task)
        task.add_done_callback(self._nudges.discard)

    async def _nudge(self, account_id: uuid.UUID, device_id: uuid.UUID) -> None:
        assert self.nudge is not None
        try:
            await self.nudge(account_id, device_id)
        except Exception as exc:  # not running anywhere, or no Redis: the owner's SCHEDULED_TICK finds it anyway
            log.debug("nudging the sender of device %s failed: %s", device_id, exc)

    async def create(self, account_id: uuid.UUID, user_id: uuid.UUID | None, body: ScheduleBody) -> ScheduledMessage:
        device_id = parse_uuid(body.device_id.strip(), "Invalid device ID")
        text = clean_body(body.body)
        send_at = parse_send_at(body.send_at)
        to_jid, chat_id = await self._recipient(account_id, body.to, body.chat_id)
        async with recording(self, account_id) as rec:
            row = await rec.db.fetch_row(Q_INSERT, [account_id, device_id, chat_id, to_jid, text, send_at, user_id])
            if row is None:
                raise HTTPError(404, "Device not found")
            message = emit(rec, "created", row)
        await self._announce_change(account_id, row)
        return message

    async def get(self, account_id: uuid.UUID, scheduled_id: uuid.UUID) -> ScheduledMessage:
        row = await self.db.fetch_row(Q_GET, [account_id, scheduled_id])
        if row is None:
            raise HTTPError(404, NOT_FOUND)
        return to_wire(row)

    async def page(self, account_id: uuid.UUID, status: str, limit: int, offset: int) -> Page:
        status = status.strip().lower()
        if status and status not in STATUSES:
            raise HTTPError(400, f"status must be one of {', '.join(STATUSES)}")
        if status:
            rows = await self.db.fetch(Q_PAGE_STATUS, [account_id, status, limit, offset])
            counted = await self.db.fetch_val(Q_COUNT_STATUS, [account_id, status, self.count_cap + 1])
        else:
            rows = await self.db.fetch(Q_PAGE, [account_id, limit, offset])
            counted = await self.db.fetch_val(Q_COUNT, [account_id, self.count_cap + 1])
        total, total_capped = capped(int(counted or 0), self.count_cap)
        return Page([to_wire(row) for row in rows], total, total_capped)

    async def _not_pending(self, account_id: uuid.UUID, scheduled_id: uuid.UUID) -> HTTPError:
        row = await self.db.fetch_row(Q_GET, [account_id, scheduled_id])
        if row is None:
            return HTTPError(404, NOT_FOUND)
        return HTTPError(409, f"scheduled message is {row['status']}")

    async def update(self, account_id: uuid.UUID, scheduled_id: uuid.UUID,
                     body: ScheduleUpdateBody) -> ScheduledMessage:
        text = clean_body(body.body) if body.body is not None else None
        send_at = parse_send_at(body.send_at) if body.send_at is not None else None
        to_jid: str | None = None
        chat_id: uuid.UUID | None = None
        if body.to is not None or body.chat_id is not None:
            to_jid, chat_id = await self._recipient(account_id, body.to or "", body.chat_id or "")
        async with recording(self, account_id) as rec:
            row = await rec.db.fetch_row(Q_UPDATE, [account_id, scheduled_id, text, send_at, to_jid, chat_id])
            message = emit(rec, "updated", row) if row is not None else None
        if row is None or message is None:
            raise await self._not_pending(account_id, scheduled_id)
        await self._announce_change(account_id, row)
        return message

    async def cancel(self, account_id: uuid.UUID, scheduled_id: uuid.UUID) -> ScheduledMessage:
        async with recording(self, account_id) as rec:
            row = await rec.db.fetch_row(Q_CANCEL, [account_id, scheduled_id])
            message = emit(rec, "cancelled", row) if row is not None else None
        if message is None:
            raise await self._not_pending(account_id, scheduled_id)
        return message
