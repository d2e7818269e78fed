"""The campaign sender (spec api.md §6.2, integrations.md C.4–C.5), rebuilt to never double-send.

Model (one :class:`CampaignWorker` per server process):

- **Supervisor** (every ``CAMPAIGN_TICK`` s, default 10, or at once when a campaign is started here):
  starts due ``scheduled`` campaigns (``scheduled_at`` null or past → ``running``), pauses the
  running and scheduled campaigns whose device was logged out (a danger signal of the number, issue 20), and spawns one **device loop** for every device that has
  a running campaign AND whose WhatsApp session this process runs (the device lease,
  :mod:`clarin.whatsapp.lease`). Only the owner of a device can send through it, so every device is paced
  by exactly one loop in the whole installation, and campaigns on different devices send in parallel.
- **Device loop**: serves the device's running campaigns first-started-first, one batch at a time. A
  campaign is served only while this process holds its **advisory lock** (:mod:`clarin.campaigns.locks`),
  inside its active hours and under its daily limit (:class:`~clarin.campaigns.settings.Pacing`, in the
  account's time zone). Between messages it sleeps a random whole number of seconds in
  ``[min_delay, max_delay]``; after ``batch_size`` messages it sleeps ``batch_pause_minutes`` (not after
  the last batch). Every delay is multiplied by ``CAMPAIGN_DELAY_SCALE`` (tests use 0.001).
- **Per message**: re-read the campaign (pause / settings / hours / limit take effect before the next
  message), check the lock connection, then **claim** the next pending recipient in send order
  (``UPDATE … SET status='sending' WHERE id = (SELECT … ORDER BY seq FOR UPDATE SKIP LOCKED LIMIT 1)``,
  only while the campaign is running), compose and send it through :mod:`clarin.messaging.outbound`, then
  mark it ``sent``/``failed`` and move the counters in ONE statement, and broadcast ``campaign_progress``
  (its webhook outbox rows in the same transaction as that statement; the status changes of the supervisor's
  cluster-wide scans write theirs in the statement itself).
  If the device turns out to be unavailable (outbound 409/503: nothing was handed to WhatsApp) the claim
  is undone (back to ``pending``) and the loop waits; recipients are not burnt as failures.

Crash safety / reconcile rule. A recipient is ``sending`` only between its claim and its result. When a
process acquires a campaign's lock, any ``sending`` recipient of that campaign belongs to a process that
died (the lock is released by PostgreSQL when its session ends; a live holder never releases it with a send
in flight). Each is settled from the outgoing messages outbound stored for its JID on the campaign's device
since the claim, matched to its message plan by text/caption (:func:`matched_parts`): every planned message
found → ``sent`` (sent_at = the last one's time); some → ``failed`` "interrupted after k of n messages; not
retried to avoid a double send"; none → ``failed`` "interrupted; not retried to avoid a double send". A crash between the driver's send and the message insert
is indistinguishable from a crash before the send, so such a recipient is never retried: at most once, never
twice. A worker whose lock connection is lost stops claiming at once; if another process then reconciles a
recipient it is still sending, its own result update finds the row no longer ``sending`` and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from clarin.campaigns import compose
from clarin.campaigns.locks import CampaignLocks, LocksUnavailable
from clarin.campaigns.settings import Pacing
from clarin.db.errors import DatabaseUnavailable, OutageLog
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.messaging import outbound
from clarin.webhooks.recording import Recorder, recording
from clarin.whatsapp import health
from clarin.whatsapp.budget import OverBudget
from clarin.whatsapp.health import DangerSignal
from clarin.wire.campaigns import CampaignProgressEvent, CampaignStatusEvent

if TYPE_CHECKING:
    from clarin.config import Settings
    from clarin.state import AppState

log = logging.getLogger("clarin.campaigns.worker")

Q_START_DUE = query("campaigns_start_due")
Q_PAUSE_LOGGED_OUT = query("campaigns_pause_logged_out")
Q_RUNNING_DEVICES = query("campaigns_running_devices")
Q_RUNNING_ON_DEVICE = query("campaigns_running_on_device")
Q_STATE = query("campaign_worker_state")
Q_ATTACHMENTS = query("campaign_worker_attachments")
Q_PROCESSED_SINCE = query("campaign_processed_since")
Q_CLAIM = query("campaign_claim_next")
Q_UNCLAIM = query("campaign_unclaim")
Q_FINISH = query("campaign_recipient_finish")
Q_LOCK_FOR_COMPLETION = query("campaign_lock_for_completion")
Q_HAS_UNFINISHED = query("campaign_has_unfinished")
Q_HAS_PENDING = query("campaign_has_pending")
Q_MARK_COMPLETED = query("campaign_mark_completed")
Q_SENDING = query("campaign_sending_recipients")
Q_RECONCILE = query("campaign_reconcile_finish")

RUNNING = "running"
START_BATCH = 500
DEVICE_CAMPAIGNS = 100
STOP_TIMEOUT = 15.0
INTERRUPTED = "interrupted; not retried to avoid a double send"
UNAVAILABLE_STATUSES = frozenset({409, 503})
TYPING_CPS = 8.0  # simulated typing speed (characters per second), bounded by TYPING_MIN / TYPING_MAX seconds
TYPING_MIN, TYPING_MAX = 1.0, 10.0


@dataclass(frozen=True, slots=True)
class SendResult:
    status: str  # "sent" | "failed" | "unavailable" | "over_budget" | "refused"
    error: str | None = None
    wait: float = 0.0  # over_budget: seconds until the number's budget frees a slot


class CampaignWorker:
    def __init__(self, state: AppState, locks: CampaignLocks, *, tick: float = 10.0, delay_scale: float = 1.0) -> None:
        self.state = state
        self.locks = locks
        self.tick = max(0.01, tick)
        self.scale = max(0.0, delay_scale)
        self._loops: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._rng = random.Random()
        self._outage_log = OutageLog(log, level=logging.WARNING)

    @classmethod
    def create(cls, settings: Settings, dsn: str, state: AppState) -> CampaignWorker:
        return cls(state, CampaignLocks(dsn), tick=settings.campaign_tick, delay_scale=settings.campaign_delay_scale)

    # -- lifecycle --------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._stopping.clear()
        self._supervisor = asyncio.create_task(self._supervise(), name="campaign-supervisor")

    def wake(self) -> None:
        """Run the supervisor now (a campaign was started through this process)."""
        self._wake.set()

    async def stop(self) -> None:
        """Let in-flight sends finish (sleeps are cut short), release every lock, close the lock connection."""
        self._stopping.set()
        self._wake.set()
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        loops = list(self._loops.values())
        if loops:
            _, pending = await asyncio.wait(loops, timeout=STOP_TIMEOUT)
            for task in pending:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
        await self.locks.close()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, cut short by shutdown."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        try:
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        except TimeoutError:
            pass

    # -- supervisor -------------------------------------------------------------------------------------------
    async def _supervise(self) -> None:
        while not self.stopping:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except DatabaseUnavailable as exc:  # an outage, not a bug: no traceback, a few lines per outage
                self._outage_log.report("campaign supervisor tick skipped: database unavailable (%s)", exc)
            except Exception:
                log.exception("campaign supervisor tick failed")
            try:
                async with asyncio.timeout(self.tick):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    async def run_once(self) -> None:
        db = self.state.db
        # Both statements write the campaign_status webhook outbox rows themselves (a CTE: all tenants at once).
        for row in await self._recorded(await db.fetch(Q_START_DUE, [START_BATCH])):
            await self._status_changed(row, recorded=True)
        for row in await self._recorded(await db.fetch(Q_PAUSE_LOGGED_OUT)):
            log.warning("campaign %s paused: its device was logged out", row["id"])
            await self._status_changed(row, recorded=True)
        pool = self.state.whatsapp
        if pool is None:
            return
        devices = [uuid.UUID(str(row["device_id"])) for row in await db.fetch(Q_RUNNING_DEVICES)]
        owned = [device_id for device_id in devices if pool.owns(device_id) and device_id not in self._loops]
        if not owned:
            return
        if not self.locks.is_open:
            await self.locks.open()
        for device_id in owned:
            task = asyncio.create_task(self._device_loop(device_id), name=f"campaign-device-{device_id}")
            self._loops[device_id] = task
            task.add_done_callback(lambda _t, d=device_id: self._loops.pop(d, None))

    # -- one loop per device ----------------------------------------------------------------------------------
    async def _device_loop(self, device_id: uuid.UUID) -> None:
        owner = str(device_id)
        held: set[uuid.UUID] = set()
        try:
            while not self.stopping:
                try:
                    if not await self._serve_device(device_id, owner, held):
                        return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # Drop our locks: whatever was left 'sending' is reconciled when they are taken again.
                    if isinstance(exc, DatabaseUnavailable):
                        self._outage_log.report("campaign loop of device %s paused: database unavailable (%s)",
                                                device_id, exc)
                    else:
                        log.exception("campaign loop of device %s failed; retrying", device_id)
                    await self._release_all(held, owner)
                    await self._sleep(self.tick)
        finally:
            await self._release_all(held, owner)

    async def _release_all(self, held: set[uuid.UUID], owner: str) -> None:
        for campaign_id in list(held):
            held.discard(campaign_id)
            await self.locks.release(campaign_id, owner)

    async def _serve_device(self, device_id: uuid.UUID, owner: str, held: set[uuid.UUID]) -> bool:
        """One scheduling step for a device; ``False`` ends the loop (nothing to do, or device gone)."""
        pool = self.state.whatsapp
        if pool is None or not pool.owns(device_id):
            return False
        # A number paused by its health guard runs again only once a person started one of its campaigns.
        await health.clear_if_resumed(self.state, device_id)
        rows = await self.state.db.fetch(Q_RUNNING_ON_DEVICE, [device_id, DEVICE_CAMPAIGNS])
        if not rows:
            return False
        running = {uuid.UUID(str(row["id"])) for row in rows}
        for campaign_id in held - running:  # paused, completed, deleted, moved: let it go
            held.discard(campaign_id)
            await self.locks.release(campaign_id, owner)
        for row in rows:  # every running campaign of the device is locked (and so reconciled) before any send
            await self._take(uuid.UUID(str(row["id"])), owner, held)
        now = datetime.now(UTC)
        for row in rows:
            campaign_id = uuid.UUID(str(row["id"]))
            if campaign_id not in held:
                continue  # another process works it
            pacing = Pacing.from_settings(row["settings"], row["timezone"])
            if not pacing.in_active_hours(now):
                continue
            done_today = await self._processed_today(campaign_id, pacing, now)
            if pacing.daily_limit and done_today >= pacing.daily_limit:
                continue
            outcome = await self._run_batch(device_id, campaign_id, uuid.UUID(str(row["account_id"])), done_today)
            if outcome == "unavailable":
                await self._sleep(self.tick)
            return True
        await self._sleep(self.tick)  # nothing eligible right now (hours, limits, locked elsewhere)
        return True

    async def _processed_today(self, campaign_id: uuid.UUID, pacing: Pacing, now: datetime) -> int:
        if not pacing.daily_limit:
            return 0
        return int(await self.state.db.fetch_val(Q_PROCESSED_SINCE, [campaign_id, pacing.day_start(now)]) or 0)

    async def _take(self, campaign_id: uuid.UUID, owner: str, held: set[uuid.UUID]) -> bool:
        """Hold the campaign's lock (reconciling on first acquisition); ``False`` if another process has it."""
        if campaign_id in held and self.locks.holds(campaign_id, owner):
            return True
        held.discard(campaign_id)
        try:
            if not self.locks.is_open:
                await self.locks.open()
            if not await self.locks.try_acquire(campaign_id, owner):
                return False
        except (LocksUnavailable, OSError) as exc:
            log.warning("campaign locks unavailable: %s", exc)
            return False
        held.add(campaign_id)
        await self.reconcile(campaign_id)
        return True

    # -- one batch ----------------------------------------------------------------------------------------------
    async def _run_batch(self, device_id: uuid.UUID, campaign_id: uuid.UUID, account_id: uuid.UUID,
                         done_today: int) -> str:
        """Send up to ``batch_size`` messages; returns why it stopped."""
        pool = self.state.whatsapp
        assert pool is not None
        processed = 0
        last_sent: float | None = None
        owner = str(device_id)
        while not self.stopping:
            current = await self.state.db.fetch_row(Q_STATE, [campaign_id])
            if current is None or current["status"] != RUNNING:
                return "not_running"
            pacing = Pacing.from_settings(current["settings"], current["timezone"])
            if processed >= pacing.batch_size:
                return "batch"
            if not pacing.in_active_hours(datetime.now(UTC)):
                return "outside_hours"
            if pacing.daily_limit and done_today >= pacing.daily_limit:
                return "daily_limit"
            if not self.locks.holds(campaign_id, owner) or not await self.locks.check():
                return "lock_lost"
            try:
                await pool.sender(device_id, account_id)
            except HTTPError:
                return "unavailable"
            attachments = await self._attachments(campaign_id)  # read before the claim: keep claim → send short
            claim = await self.state.db.fetch_row(Q_CLAIM, [campaign_id])
            if claim is None:
                await self._complete(campaign_id, account_id)
                return "done"
            recipient_id = uuid.UUID(str(claim["id"]))
            wait_ms = None if last_sent is None else int((time.monotonic() - last_sent) * 1000)
            typing = bool(isinstance(current["settings"], dict) and current["settings"].get("simulate_typing"))
            result = await self._send(campaign_id, claim, plan_for(claim, attachments), typing=typing)
            if result.status in ("unavailable", "over_budget", "refused"):
                # Nothing reached WhatsApp: the recipient goes back to pending (never burnt as a failure).
                await self.state.db.execute(Q_UNCLAIM, [campaign_id, recipient_id])
                if result.status == "over_budget":  # the number's budget: wait (a tick at most), re-read everything
                    await self._sleep(min(max(result.wait, 0.2), self.tick))
                return result.status
            async with recording(self.state, account_id, quiet=True) as rec:
                row = await rec.db.fetch_row(Q_FINISH, [campaign_id, recipient_id, result.status, result.error,
                                                        wait_ms])
                if row is not None:
                    _progress(rec, row)
            last_sent = time.monotonic()
            processed += 1
            done_today += 1
            if processed < pacing.batch_size:
                await self._sleep(self._delay(pacing))
            elif await self.state.db.fetch_val(Q_HAS_PENDING, [campaign_id]):
                # end of a batch with more to send: the batch pause (no pause after the final batch)
                await self._sleep(pacing.batch_pause * 60 * self.scale if pacing.batch_pause > 0
                                  else self._delay(pacing))
        return "stopping"

    def _delay(self, pacing: Pacing) -> float:
        return self._rng.randint(pacing.min_delay, pacing.max_delay) * self.scale

    async def _send(self, campaign_id: uuid.UUID, claim: dict[str, Any], parts: list[compose.Part], *,
                    typing: bool = False) -> SendResult:
        account_id, device_id, to = uuid.UUID(str(claim["account_id"])), uuid.UUID(str(claim["device_id"])), claim["jid"]
        sent = 0
        for part in parts:
            if not part.is_media and not part.body:
                return SendResult("failed", "message is empty after personalisation")
            if part.pause_before:
                await asyncio.sleep(part.pause_before * self.scale)
            try:
                if typing:
                    await self._type(device_id, to, part.body)
                await self._send_part(account_id, device_id, to, part)
            except OverBudget as exc:
                if sent == 0:
                    return SendResult("over_budget", exc.message, exc.retry_after)
                # Mid-recipient (an attachment after its text): wait for the slot rather than split the message.
                if not await self._wait_for_budget(account_id, device_id, to, part, exc):
                    return SendResult("failed", _partial(exc.message, sent, len(parts)))
            except DangerSignal as exc:  # WhatsApp refused it; the number's campaigns are paused
                if sent == 0:
                    return SendResult("refused", exc.message)
                return SendResult("failed", _partial(exc.message, sent, len(parts)))
            except HTTPError as exc:
                if sent == 0 and exc.status in UNAVAILABLE_STATUSES:
                    return SendResult("unavailable", exc.message)
                return SendResult("failed", _partial(exc.message, sent, len(parts)))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # unknown outcome: failed, never retried
                log.warning("campaign %s: send to %s failed: %s", campaign_id, to, exc)
                return SendResult("failed", _partial(str(exc) or type(exc).__name__, sent, len(parts)))
            sent += 1
        return SendResult("sent")

    async def _send_part(self, account_id: uuid.UUID, device_id: uuid.UUID, to: str, part: compose.Part) -> None:
        if part.is_media:
            await outbound.send_media(self.state, account_id, device_id, to, part.media_url, part.media_type, part.body)
        else:
            await outbound.send_text(self.state, account_id, device_id, to, part.body)

    async def _wait_for_budget(self, account_id: uuid.UUID, device_id: uuid.UUID, to: str, part: compose.Part,
                               exc: OverBudget) -> bool:
        """Retry one part of a partly sent recipient until the budget lets it through (re-trying every tick at
        most); ``False`` at shutdown."""
        while not self.stopping:
            await self._sleep(min(max(exc.retry_after, 0.2), self.tick))
            if self.stopping:
                break
            try:
                await self._send_part(account_id, device_id, to, part)
                return True
            except OverBudget as again:
                exc = again
        return False

    async def _type(self, device_id: uuid.UUID, to: str, body: str) -> None:
        """settings.simulate_typing: "composing" for a time proportional to the message length, then "paused".
        Best effort: a presence that fails never stops the message."""
        pool = self.state.whatsapp
        if pool is None:
            return
        seconds = min(TYPING_MAX, max(TYPING_MIN, len(body) / TYPING_CPS)) * self.scale
        try:
            await pool.driver.send_presence(device_id, to, "composing")
            await self._sleep(seconds)
            await pool.driver.send_presence(device_id, to, "paused")
        except Exception as exc:
            log.debug("typing presence to %s on device %s failed: %s", to, device_id, exc)

    async def _attachments(self, campaign_id: uuid.UUID) -> list[compose.AttachmentData]:
        return [
            compose.AttachmentData(a["media_url"], a["media_type"], a["caption"] or "")
            for a in await self.state.db.fetch(Q_ATTACHMENTS, [campaign_id])
        ]

    async def _complete(self, campaign_id: uuid.UUID, account_id: uuid.UUID) -> None:
        async with recording(self.state, account_id, quiet=True) as rec, rec.transaction() as tx:
            current = await tx.fetch_row(Q_LOCK_FOR_COMPLETION, [campaign_id])
            if current is None or current["status"] != RUNNING:
                return
            if await tx.fetch_val(Q_HAS_UNFINISHED, [campaign_id]):
                return
            row = await tx.fetch_row(Q_MARK_COMPLETED, [campaign_id])
            if row is not None:
                rec.emit("campaign_status", CampaignStatusEvent(campaign_id=str(row["id"]), status=row["status"]))

    # -- reconcile ---------------------------------------------------------------------------------------------
    async def reconcile(self, campaign_id: uuid.UUID) -> None:
        """Settle recipients a dead worker left ``sending`` (call only while holding the campaign's lock)."""
        rows = await self.state.db.fetch(Q_SENDING, [campaign_id])
        if not rows:
            return
        attachments = await self._attachments(campaign_id)
        ids, statuses, errors, sent_at = [], [], [], []
        for row in rows:
            parts = plan_for(row, attachments)
            expected = len(parts)
            stored = matched_parts(parts, row["bodies"] or [])
            ids.append(uuid.UUID(str(row["id"])))
            if stored >= expected:
                statuses.append("sent")
                errors.append(None)
                sent_at.append(row["last_at"])
            else:
                statuses.append("failed")
                errors.append(INTERRUPTED if stored == 0 else
                              f"interrupted after {stored} of {expected} messages; not retried to avoid a double send")
                sent_at.append(None)
        log.warning("campaign %s: reconciled %d interrupted recipient(s): %s", campaign_id, len(ids),
                    ", ".join(f"{i}={s}" for i, s in zip(ids, statuses, strict=True)))
        async with recording(self.state, rows[0]["account_id"], quiet=True) as rec:
            row = await rec.db.fetch_row(Q_RECONCILE, [campaign_id, ids, statuses, errors, sent_at])
            if row is not None:
                _progress(rec, row)

    # -- events ------------------------------------------------------------------------------------------------
    async def _recorded(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows of a statement that wrote its own outbox rows (``outbox_rows``): wake the delivery worker."""
        outbox = self.state.webhook_outbox
        if rows and outbox is not None and int(rows[0]["outbox_rows"] or 0):
            outbox.written()
        return rows

    async def _status_changed(self, row: dict[str, Any], *, recorded: bool) -> None:
        await self.state.broadcaster.broadcast(
            row["account_id"], "campaign_status", CampaignStatusEvent(campaign_id=str(row["id"]), status=row["status"]),
            recorded=recorded,
        )


def _progress(rec: Recorder, row: dict[str, Any]) -> None:
    rec.emit("campaign_progress", CampaignProgressEvent(
        campaign_id=str(row["id"]), status=row["status"], sent_count=int(row["sent_count"]),
        failed_count=int(row["failed_count"]), total_recipients=int(row["total_recipients"]),
    ))


def plan_for(row: dict[str, Any], attachments: list[compose.AttachmentData]) -> list[compose.Part]:
    """The message plan of a claimed / interrupted recipient row (campaign + recipient + contact columns)."""
    contact = None
    if row.get("contact_id"):
        contact = compose.ContactData(row.get("contact_name"), row.get("contact_last_name"),
                                      row.get("contact_short_name"), row.get("contact_custom_name"))
    metadata = row.get("metadata")
    recipient = compose.RecipientData(row.get("name"), row.get("phone"), metadata if isinstance(metadata, dict) else None)
    # Spintax (settings.randomize_message) is seeded per recipient, so the reconcile rule recomputes the same plan.
    settings = row.get("settings")
    return compose.plan(row["message_template"] or "", attachments, recipient, contact,
                        media_url=row.get("media_url"), media_type=row.get("media_type"),
                        spin_seed=compose.spin_seed(settings if isinstance(settings, dict) else None, row["id"]))


def matched_parts(parts: list[compose.Part], bodies: list[str]) -> int:
    """How many of a recipient's planned messages are among the stored outgoing ``bodies`` (text, or media
    caption), each stored message matching at most one part: messages sent to the same JID by someone else
    (the inbox, another campaign) do not pass for this campaign's."""
    available: dict[str, int] = {}
    for body in bodies:
        available[body] = available.get(body, 0) + 1
    found = 0
    for part in parts:
        if available.get(part.body, 0) > 0:
            available[part.body] -= 1
            found += 1
    return found


def _partial(error: str, sent: int, total: int) -> str:
    if sent == 0:
        return error
    return f"{error} (after {sent} of {total} messages)"
