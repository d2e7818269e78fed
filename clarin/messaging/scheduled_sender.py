"""The scheduled-message sender (docs/SCHEDULED_MESSAGES.md): one per server process.

It sends only for the devices this process runs (the device lease, :mod:`clarin.whatsapp.pool`): only the
owner can send through a device, so a due message is handled by exactly one process in the installation.

- **Wake-ups.** It sleeps until the earliest ``send_at`` of its devices' pending messages, at most ``tick``
  seconds (``SCHEDULED_TICK``, the back-stop for anything it was not told about). A create or edit nudges
  the device's owner at once (:func:`wake_owner`, a routed device call: the same process, or the owner
  through Redis), and a device (re)connecting here wakes it (``DevicePool.on_connected``).
- **Per device lock.** Before sending for a device it takes ``pg_try_advisory_lock('clarin-scheduled:<id>')``
  on its own connection and keeps it while it runs the device. A lease can move while its old holder is
  still alive for a moment; the lock guarantees the two never send (or reconcile) the same device at once.
- **Claim → send → finish.** Due rows are claimed (``pending`` → ``sending``, ``attempts + 1``) with
  ``FOR UPDATE SKIP LOCKED``, then each is sent through :mod:`clarin.messaging.outbound` with the
  Idempotency-Key ``clarin-scheduled:<id>:<attempt>``: outbound links the outgoing ``messages`` row to that key
  in the statement that records it, BEFORE the driver is called. The result (``sent`` with the message's id and
  chat, or ``failed`` with the error) is written only while the row is still that attempt's claim.
- **Not sent, not failed.** Over the number's budget (:class:`~clarin.whatsapp.budget.OverBudget`): back to
  ``pending`` (``send_at`` unchanged) and the device waits ``retry_after``. Device not connected (409/503):
  back to ``pending``; it goes when the device is connected again.
- **Reconcile (exactly once across crashes).** When the lock of a device is taken, every row of it still
  ``sending`` was left by a dead process; it is settled from its attempt's key: a linked outgoing message
  that is still stored → ``sent`` (it may be on the phone: never sent again); linked but removed → the
  driver refused it → ``failed``; nothing linked → nothing was handed to WhatsApp → ``pending`` again, and
  it is sent at the next scan. The one case that cannot be told (no key at all, claimed longer ago than the
  key's 24 h lifetime) is ``failed``, not re-sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from clarin.db.advisory import AdvisorySession, AdvisoryUnavailable
from clarin.db.errors import DatabaseUnavailable, OutageLog
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.messaging import idempotency
from clarin.messaging.idempotency import IdemClaim
from clarin.messaging.scheduled import ScheduledMessages, emit
from clarin.webhooks.recording import recording
from clarin.whatsapp.budget import OverBudget
from clarin.whatsapp.remote import OwnedElsewhere, routed
from clarin.wire.messages import Message

if TYPE_CHECKING:
    from clarin.db.pool import Database
    from clarin.whatsapp.pool import DevicePool

log = logging.getLogger("clarin.messaging.scheduled_sender")

Q_CLAIM = query("scheduled_claim_due")
Q_UNCLAIM = query("scheduled_unclaim")
Q_FINISH = query("scheduled_finish")
Q_NEXT = query("scheduled_next_due")
Q_SENDING = query("scheduled_sending_on_device")
Q_RECONCILE = query("scheduled_reconcile")

CLAIM_BATCH = 50
UNAVAILABLE_BACKOFF = 2.0  # seconds before a device that refused a send as not connected is tried again
LOCK_RETRY = 1.0  # seconds: a device run here whose lock the previous owner still holds is tried again this soon
STOP_TIMEOUT = 15.0
UNAVAILABLE = frozenset({409, 503})
INTERRUPTED = "interrupted; not retried to avoid a double send"
KEY_LIFETIME = timedelta(seconds=idempotency.TTL_SECONDS) - timedelta(hours=1)  # margin before the key's purge
CONNECTED = "connected"

SendText = Callable[[uuid.UUID, uuid.UUID, str, str, IdemClaim], Awaitable[tuple[str, Message]]]


def idem_key(scheduled_id: object, attempt: int) -> str:
    """Must match scheduled_sending_on_device's 'clarin-scheduled:' || id || ':' || attempts."""
    return f"clarin-scheduled:{scheduled_id}:{attempt}"


def _lock_key(device_id: uuid.UUID) -> str:
    return f"clarin-scheduled:{device_id}"


@routed
async def wake_owner(state: Any, account_id: uuid.UUID, device_id: uuid.UUID) -> None:
    """Run on the process that runs the device (routed there when it is another one): wake its sender."""
    pool = getattr(state, "whatsapp", None)
    if pool is None or not pool.owns(device_id):
        raise OwnedElsewhere(account_id=account_id)
    sender = getattr(state, "scheduled_sender", None)
    if sender is not None:
        sender.wake()


class ScheduledSender:
    def __init__(self, db: Database, dsn: str, pool: DevicePool | None, service: ScheduledMessages,
                 send: SendText, *, tick: float = 10.0) -> None:
        self.db = db
        self.pool = pool
        self.service = service  # the recording writer of the scheduled_message events
        self.send = send
        self.tick = max(0.01, tick)
        self._session = AdvisorySession(dsn, "clarin-scheduled-locks", on_lost=lambda _exc: self._held.clear())
        self._held: set[uuid.UUID] = set()  # devices whose lock this process holds
        self._blocked: dict[uuid.UUID, float] = {}  # device → monotonic time before which it is not tried (budget, down)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._outage_log = OutageLog(log, level=logging.WARNING)

    # -- lifecycle ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="scheduled-sender")

    def wake(self) -> None:
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def stop(self) -> None:
        """An in-flight send finishes (the rest of a claimed batch goes back to pending), then the locks go."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await asyncio.shield(self._task)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._held.clear()
        await self._session.close()

    async def _run(self) -> None:
        while not self.stopping:
            delay = self.tick
            try:
                delay = await self.run_once()
            except asyncio.CancelledError:
                raise
            except (DatabaseUnavailable, AdvisoryUnavailable) as exc:
                self._outage_log.report("scheduled sender paused: database unavailable (%s)", exc)
                await self._drop_locks()  # whatever is left 'sending' is reconciled when they are taken again
            except Exception:
                log.exception("scheduled sender scan failed")
                await self._drop_locks()
            if self.stopping:
                return
            try:
                async with asyncio.timeout(max(0.0, min(delay, self.tick))):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    # -- one scan ---------------------------------------------------------------------------------------------
    async def run_once(self) -> float:
        """Reconcile newly taken devices, send what is due; returns the seconds until the next due message."""
        pool = self.pool
        owned = set(pool.owned_ids()) if pool is not None else set()
        for device_id in self._held - owned:  # moved away, stopped or deleted here
            await self._release(device_id)
        if not owned or pool is None:
            return self.tick
        if not self._session.is_open:
            await self._session.open()
        now = time.monotonic()
        ready: list[uuid.UUID] = []
        lock_busy = False
        for device_id in owned:
            if device_id not in self._held:
                if not await self._session.try_lock(_lock_key(device_id)):
                    lock_busy = True  # the previous owner is still alive and finishing: not ours yet
                    continue
                self._held.add(device_id)
                await self.reconcile(device_id)
            if self._blocked.get(device_id, 0.0) > now:
                continue
            self._blocked.pop(device_id, None)
            if pool.live_view(device_id, "", None, False)[0] == CONNECTED:
                ready.append(device_id)
        if ready and not self.stopping and await self._session.ping():
            rows = await self.db.fetch(Q_CLAIM, [ready, CLAIM_BATCH])
            if rows:
                await self._send_claimed(rows)
                if len(rows) == CLAIM_BATCH:
                    return 0.0  # more may be due right now
        delay = await self._next_delay(ready)
        return min(delay, LOCK_RETRY) if lock_busy else delay

    async def _next_delay(self, ready: list[uuid.UUID]) -> float:
        """Until the next send_at of the devices that can send now. A device that is not connected is woken by
        DevicePool.on_connected, an over-budget one by its retry time: counting their overdue rows here would spin."""
        delay = self.tick
        if ready:
            next_at = await self.db.fetch_val(Q_NEXT, [ready])
            if next_at is not None:
                delay = min(delay, (next_at - datetime.now(UTC)).total_seconds())
        now = time.monotonic()
        for until in self._blocked.values():
            delay = min(delay, until - now)
        return max(0.0, delay)

    async def _send_claimed(self, rows: list[dict[str, Any]]) -> None:
        """Each device's rows in send_at order; devices in parallel."""
        per_device: dict[uuid.UUID, list[dict[str, Any]]] = {}
        for row in rows:
            per_device.setdefault(uuid.UUID(str(row["device_id"])), []).append(row)
        # Every device's sends end before an error goes up: the caller then drops the locks, and a lock must never
        # be let go (and its rows reconciled) while a send of its device is still in flight.
        results = await asyncio.gather(*(self._send_device(device_id, device_rows)
                                         for device_id, device_rows in per_device.items()), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _send_device(self, device_id: uuid.UUID, rows: list[dict[str, Any]]) -> None:
        for index, row in enumerate(rows):
            if self.stopping or device_id not in self._held:
                await self.db.execute(Q_UNCLAIM, [[uuid.UUID(str(r["id"])) for r in rows[index:]]])
                return
            if not await self._send_one(device_id, row):
                # device unavailable or over budget: nothing of the rest goes now either
                await self.db.execute(Q_UNCLAIM, [[uuid.UUID(str(r["id"])) for r in rows[index + 1:]]])
                return

    async def _send_one(self, device_id: uuid.UUID, row: dict[str, Any]) -> bool:
        """Send one claimed row; ``False`` when the device cannot send now (the row is pending again)."""
        scheduled_id, attempt = uuid.UUID(str(row["id"])), int(row["attempts"])
        account_id = uuid.UUID(str(row["account_id"]))
        try:
            claim = await idempotency.claim(self.db, account_id, idem_key(scheduled_id, attempt),
                                            f"scheduled {scheduled_id}")
        except HTTPError as exc:  # someone else holds this attempt's key (a client reusing our prefix)
            await self._finish(row, "failed", error=exc.message)
            return True
        if not isinstance(claim, IdemClaim):
            await self._finish(row, "failed", error="idempotency key already answered")
            return True
        try:
            chat_id, message = await self.send(account_id, device_id, row["to_jid"], row["body"], claim)
        except OverBudget as exc:
            await idempotency.release(self.db, account_id, claim)
            await self.db.execute(Q_UNCLAIM, [[scheduled_id]])
            self._blocked[device_id] = time.monotonic() + max(0.05, exc.retry_after)
            log.info("scheduled message %s waits %.1f s for device %s's send budget", scheduled_id,
                     exc.retry_after, device_id)
            return False
        except HTTPError as exc:
            if exc.status in UNAVAILABLE:  # nothing was handed to WhatsApp; outbound released a linked key
                await idempotency.release(self.db, account_id, claim)
                await self.db.execute(Q_UNCLAIM, [[scheduled_id]])
                # dropped or resuming: on_connected wakes us when it is back; until then retry now and then, not spin
                self._blocked[device_id] = time.monotonic() + min(self.tick, UNAVAILABLE_BACKOFF)
                return False
            if exc.status < 500:  # refused before anything was recorded or sent
                await idempotency.release(self.db, account_id, claim)
            await self._finish(row, "failed", error=exc.message)
            return True
        except (asyncio.CancelledError, DatabaseUnavailable):
            raise  # left 'sending': reconciled from the key when the lock is taken again
        except Exception as exc:  # outcome unknown: failed, never retried
            log.warning("scheduled message %s: send failed: %s", scheduled_id, exc)
            await self._finish(row, "failed", error=str(exc) or type(exc).__name__)
            return True
        await self._finish(row, "sent", message_id=uuid.UUID(message.id), chat_id=uuid.UUID(chat_id))
        return True

    async def _finish(self, row: dict[str, Any], status: str, *, error: str | None = None,
                      message_id: uuid.UUID | None = None, chat_id: uuid.UUID | None = None) -> None:
        params = [uuid.UUID(str(row["id"])), int(row["attempts"]), status, message_id, chat_id, error]
        async with recording(self.service, row["account_id"], quiet=True) as rec:
            done = await rec.db.fetch_row(Q_FINISH, params)
            if done is not None:
                emit(rec, status, done)

    # -- locks and reconcile ------------------------------------------------------------------------------
    async def _release(self, device_id: uuid.UUID) -> None:
        self._held.discard(device_id)
        self._blocked.pop(device_id, None)
        try:
            await self._session.unlock(_lock_key(device_id))
        except AdvisoryUnavailable:
            pass  # the session is gone, and its locks with it

    async def _drop_locks(self) -> None:
        for device_id in list(self._held):
            await self._release(device_id)

    async def reconcile(self, device_id: uuid.UUID) -> None:
        """Settle the rows a dead process left ``sending`` (call only while holding the device's lock)."""
        rows = await self.db.fetch(Q_SENDING, [device_id])
        if not rows:
            return
        now = datetime.now(UTC)
        ids, statuses, errors, messages, chats, sent_at = [], [], [], [], [], []
        for row in rows:
            status, error, message_id, chat_id, at = _settle(row, now)
            ids.append(uuid.UUID(str(row["id"])))
            statuses.append(status)
            errors.append(error)
            messages.append(message_id)
            chats.append(chat_id)
            sent_at.append(at)
        log.warning("scheduled messages of device %s: reconciled %d interrupted send(s): %s", device_id, len(ids),
                    ", ".join(f"{i}={s}" for i, s in zip(ids, statuses, strict=True)))
        by_account: dict[str, list[dict[str, Any]]] = {}
        for settled in await self.db.fetch(Q_RECONCILE, [ids, statuses, errors, messages, chats, sent_at]):
            by_account.setdefault(str(settled["account_id"]), []).append(settled)
        for account_id, settled_rows in by_account.items():
            async with recording(self.service, account_id, quiet=True) as rec:
                for settled in settled_rows:
                    if settled["status"] in ("sent", "failed"):
                        emit(rec, settled["status"], settled)


def _settle(row: dict[str, Any], now: datetime) -> tuple[str, str | None, Any, Any, Any]:
    """(status, error, sent message id, chat id, sent_at) of a row a dead process left ``sending``."""
    if row["message_row"] is not None:  # outbound recorded it before the driver: it may be on the phone
        return ("sent", None, _uuid(row["message_row"]), _uuid(row["message_chat"]),
                row["message_at"] or row["claimed_at"])
    if row["linked_id"] is not None:  # recorded, then removed: the driver refused it (maybe after WhatsApp took it)
        return "failed", _answer_error(row["answer"]) or INTERRUPTED, None, None, None
    claimed = row["claimed_at"]
    if not row["key_found"] and claimed is not None and now - claimed > KEY_LIFETIME:
        return "failed", INTERRUPTED, None, None, None  # the key may have been purged: cannot tell, never resend
    return "pending", None, None, None, None  # nothing was handed to WhatsApp: it goes at the next scan


def _uuid(value: Any) -> uuid.UUID | None:
    """The driver hands uuid columns back as text; a uuid[] parameter needs uuid values."""
    return uuid.UUID(str(value)) if value is not None else None


def _answer_error(answer: Any) -> str | None:
    if not answer:
        return None
    try:
        value = json.loads(bytes(answer))
    except (ValueError, TypeError):
        return None
    return value.get("error") if isinstance(value, dict) else None
