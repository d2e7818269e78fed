"""The Kommo sync runtime (spec A.6, A.7, A.15, A.16): poller, task worker, on-demand full sync, status.

Per process (started from ``AppState.start`` only when Kommo is configured):

- **poller** — every ``KOMMO_POLL_INTERVAL`` s (5; first tick one interval after start). Only the process holding
  the ``clarin-kommo-poller`` advisory lock polls (leader; another process takes over within one interval
  when it dies). It reads the enabled connected pipelines of all accounts and queues one task per pipeline
  that is neither queued nor running here.
- **worker** — runs queued tasks one at a time. A task takes the pipeline's advisory lock (skipped when any
  process holds it: the next tick retries), reads the cursor, and syncs leads changed since
  ``last_synced_at − KOMMO_SYNC_OVERLAP`` (all leads when NULL or when the task is a full one from R109).
  The cursor advances to the time the sync *started*, and only when it finished without a Kommo or database
  error (spec A.6 QUIRK fixed: failures and cut-short syncs are retried, never skipped). Pages are committed
  one by one, so a worker killed mid-sync leaves consistent data, and the re-run upserts the same keys.
- **back-off** — a 401 (wrong token) or Kommo unreachable after the client's retries stops polling for
  ``interval × 2^n`` (capped at ``KOMMO_BACKOFF_MAX``), resets on the first success, and is visible in R111
  as ``last_error``. Nothing is written while the token is refused.
- **full sync** (R106) — one per account across all processes (``clarin-kommo-full:<account>`` lock), with the
  spec's progress strings; it waits for each pipeline's lock, so it never runs beside a task of that pipeline.

After any sync that changed leads: ``invalidate_leads`` and WS ``lead_update`` ``{action: "kommo_synced",
pipeline_id: <Kommo id>, count: <changed leads>}`` (unchanged re-reads of the overlap window are not counted, so
no event storm). One event sums a whole sync of many page transactions: its webhook outbox rows are written in
the transaction that advances the cursor, or, for a sync cut short, in their own right after it. For an account
with a webhook subscription each page also adds its changed leads to the pipeline's ``unannounced`` count in its
own transaction, and the summary is that count, taken and cleared where its rows are written: a worker killed
midway leaves it to the next sync's summary (docs/WEBHOOKS.md, "Durability").
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from clarin.cache.redis_client import RedisHandle
from clarin.config import Settings
from clarin.crm.leads_cache import invalidate_leads
from clarin.db.errors import DatabaseError
from clarin.db.queries import query
from clarin.kommo.client import KommoAuthError, KommoClient, KommoError
from clarin.kommo.limiter import RateLimiter
from clarin.kommo.locks import POLLER_KEY, SyncLocks, full_sync_key, pipeline_key
from clarin.kommo.status import StatusStore
from clarin.kommo.sync import KommoSync, LeadSyncResult, PipelineNotFound
from clarin.webhooks.recording import Recorder, recording

if TYPE_CHECKING:
    from clarin.state import AppState

log = logging.getLogger("clarin.kommo")

Q_ENABLED_ALL = query("kommo_connected_enabled_all")
Q_CONNECTED_LIST = query("kommo_connected_list")
Q_CURSOR_GET = query("kommo_cursor_get")
Q_CURSOR_SET = query("kommo_cursor_set")
Q_UNANNOUNCED_TAKE = query("kommo_unannounced_take")
Q_CONTACTS_COUNT = query("kommo_contacts_count")

QUEUE_CAPACITY = 100
CONNECTED_CAP = 10_000
PIPELINE_LOCK_WAIT = 600.0
HEARTBEAT_EVERY = 5.0
LEAD_EVENT = "lead_update"
# The spec's Kommo payload plus the `action` every CRM lead_update carries: one event, one shape (docs/EVENTS.md).
KOMMO_SYNCED = "kommo_synced"

PROGRESS_START = "Iniciando sincronización..."
PROGRESS_PIPELINES = "Sincronizando pipelines y etapas..."
PROGRESS_DONE = "Completado"
ALREADY_RUNNING = "Ya hay una sincronización en curso para esta cuenta"


@dataclass(frozen=True, slots=True)
class TaskKey:
    account_id: uuid.UUID
    kommo_pipeline_id: int


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()`` of a duration rounded to the millisecond (``1m2.345s``, ``500ms``)."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    sec_text = f"{secs}.{millis:03d}".rstrip("0").rstrip(".") if millis else str(secs)
    if hours:
        return f"{hours}h{minutes}m{sec_text}s"
    if minutes:
        return f"{minutes}m{sec_text}s"
    return f"{sec_text}s"


def _iso(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).isoformat()


class KommoService:
    def __init__(self, settings: Settings, dsn: str, state: AppState | Any) -> None:
        self.settings = settings
        self.state = state
        redis: RedisHandle | None = state.redis if state.redis.configured else None
        self.limiter = RateLimiter(settings.kommo_rate_limit, redis, f"{settings.redis_prefix}:kommo:ratelimit",
                                   settings.kommo_rate_headroom)
        self.client = KommoClient(
            settings.kommo_base_url, settings.kommo_access_token, self.limiter,
            timeout=settings.kommo_timeout, max_retries=settings.kommo_max_retries,
            retry_base=settings.kommo_retry_base, retry_max=settings.kommo_retry_max,
        )
        self.sync = KommoSync(state.db, self.client)
        self.locks = SyncLocks(dsn)
        self.status = StatusStore(redis, settings.redis_prefix)
        self.running = False
        self.leader = False
        self._queue: asyncio.Queue[TaskKey] = asyncio.Queue(maxsize=QUEUE_CAPACITY)
        self._queued: dict[TaskKey, bool] = {}  # key → full sync requested
        self._active: set[TaskKey] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._full_jobs: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._failures = 0
        self._backoff_until = 0.0

    @classmethod
    def create(cls, settings: Settings, dsn: str, state: AppState | Any) -> KommoService | None:
        return cls(settings, dsn, state) if settings.kommo_configured else None

    # -- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        self.running = True
        self._loops = [asyncio.create_task(self._poll_loop()), asyncio.create_task(self._work_loop())]
        log.info("kommo sync started (%s, every %.1fs, %.1f req/s)", self.settings.kommo_base_url,
                 self.settings.kommo_poll_interval, self.settings.kommo_rate_limit)

    async def stop(self) -> None:
        self.running = False
        tasks = [*self._loops, *self._full_jobs.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._loops = []
        await self.locks.close()
        await self.client.aclose()

    # -- queue ----------------------------------------------------------------------------------------
    @property
    def queue_length(self) -> int:
        return self._queue.qsize()

    def enqueue(self, account_id: uuid.UUID, kommo_pipeline_id: int, *, full: bool = False) -> bool:
        key = TaskKey(account_id, kommo_pipeline_id)
        if key in self._queued:
            self._queued[key] = self._queued[key] or full
            return True
        try:
            self._queue.put_nowait(key)
        except asyncio.QueueFull:
            log.warning("kommo task queue full (%d): dropped pipeline %d of %s", QUEUE_CAPACITY,
                        kommo_pipeline_id, account_id)
            return False
        self._queued[key] = full
        return True

    def _backing_off(self) -> bool:
        return time.monotonic() < self._backoff_until

    # -- poller ---------------------------------------------------------------------------------------
    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.kommo_poll_interval)
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("kommo poll failed: %s", exc)

    async def poll_once(self) -> int:
        """One tick: queue every enabled connected pipeline (leader only). Returns how many were queued."""
        if self._backing_off():
            return 0
        if self.leader and POLLER_KEY not in self.locks.held:
            self.leader = False  # the lock connection dropped
        if not self.leader:
            self.leader = await self.locks.try_acquire(POLLER_KEY)
            if not self.leader:
                return 0
        rows = await self.state.db.fetch(Q_ENABLED_ALL, [CONNECTED_CAP])
        queued = 0
        for row in rows:
            key = TaskKey(uuid.UUID(str(row["account_id"])), int(row["kommo_pipeline_id"]))
            if key not in self._active and self.enqueue(key.account_id, key.kommo_pipeline_id):
                queued += 1
        await self.status.update("worker", {
            "last_check": _iso(), "connected_count": str(len(rows)), "queue_length": str(self.queue_length),
        })
        return queued

    # -- worker ---------------------------------------------------------------------------------------
    async def _work_loop(self) -> None:
        while True:
            key = await self._queue.get()
            full = self._queued.pop(key, False)
            if self._backing_off():
                continue  # dropped: the poller re-queues it once the back-off is over
            self._active.add(key)
            try:
                await self.run_task(key, full=full)
            except asyncio.CancelledError:
                raise
            except DatabaseError as exc:
                log.warning("kommo task for pipeline %d of %s failed: %s", key.kommo_pipeline_id, key.account_id, exc)
            except Exception:
                log.exception("kommo task for pipeline %d of %s crashed", key.kommo_pipeline_id, key.account_id)
            finally:
                self._active.discard(key)

    async def run_task(self, key: TaskKey, *, full: bool = False) -> LeadSyncResult | None:
        """Sync one pipeline's leads if no process is syncing it; None when skipped."""
        lock = pipeline_key(key.account_id, key.kommo_pipeline_id)
        if not await self.locks.try_acquire(lock):
            return None
        try:
            row = await self.state.db.fetch_row(Q_CURSOR_GET, [key.account_id, key.kommo_pipeline_id])
            if row is None or not row["enabled"]:
                return None  # disconnected since it was queued
            since = None
            if not full and row["last_synced_at"] is not None:
                since = max(0, int(row["last_synced_at"].timestamp()) - self.settings.kommo_sync_overlap)
            result, _ = await self._sync_pipeline_leads(key, since)
        finally:
            await self.locks.release(lock)
        return result

    async def _sync_pipeline_leads(
        self, key: TaskKey, since: int | None
    ) -> tuple[LeadSyncResult | None, str | None]:
        """Lead sync of one pipeline whose lock the caller holds; errors are recorded and returned."""
        started = datetime.now(UTC)
        partial = LeadSyncResult()

        async def track(progress: LeadSyncResult) -> None:
            partial.changed = progress.changed

        error: str | None = None
        result: LeadSyncResult | None = None
        announced = counted = False
        outbox = self.state.broadcaster.outbox
        try:
            # With a webhook subscription the pages count their changes in the database (0007_kommo_unannounced):
            # a sync killed midway leaves them to the next one's summary instead of losing them.
            counted = outbox is not None and await outbox.wanted(str(key.account_id))
            result = await self.sync.sync_leads(key.account_id, key.kommo_pipeline_id, since, on_page=track,
                                                count_unannounced=counted)
            async with recording(self.state, key.account_id, quiet=True) as rec:
                carried = await rec.db.fetch_val(Q_CURSOR_SET, [key.account_id, key.kommo_pipeline_id, started])
                self._summary(rec, key, result.changed, carried, counted)
            announced = True
        except KommoAuthError as exc:
            error = str(exc)
            self._failed(error)
        except KommoError as exc:
            error = str(exc)
            if exc.status == 0 or exc.status == 429 or exc.status >= 500:
                self._failed(error)
        except (PipelineNotFound, DatabaseError) as exc:
            error = str(exc)
        changed = result.changed if result is not None else partial.changed
        if not announced and (changed or counted):  # cut short after some pages committed: their summary, alone
            try:
                async with recording(self.state, key.account_id, quiet=True) as rec:
                    carried = await rec.db.fetch_val(Q_UNANNOUNCED_TAKE, [key.account_id, key.kommo_pipeline_id])
                    self._summary(rec, key, changed, carried, counted)
            except DatabaseError:
                if changed and not counted:  # (counted: the count waits in the database for the next sync)
                    await invalidate_leads(self.state, key.account_id)
                    await self.state.broadcaster.broadcast(key.account_id, LEAD_EVENT, self._synced(key, changed))
        fields = {"last_check": _iso(), "last_synced_pipeline": str(key.kommo_pipeline_id)}
        if error is not None:
            log.warning("kommo sync of pipeline %d (%s) failed: %s", key.kommo_pipeline_id, key.account_id, error)
            fields["last_error"] = f"pipeline {key.kommo_pipeline_id}: {error}"
        else:
            self._failures = 0
            self._backoff_until = 0.0
            assert result is not None
            fields["last_error"] = (
                f"pipeline {key.kommo_pipeline_id}: " + "; ".join(result.error_summary) if result.errors else ""
            )
        await self.status.update("worker", fields)
        return result, error

    def _summary(self, rec: Recorder, key: TaskKey, changed: int, carried: Any, counted: bool) -> None:
        """The sync's ``kommo_synced``: ``carried`` = the pipeline's unannounced count just taken (this sync's pages
        when ``counted``, plus any a killed sync left); None when the pipeline row is gone."""
        count = changed if carried is None else int(carried) + (0 if counted else changed)
        if count:
            rec.on_commit(lambda: invalidate_leads(self.state, key.account_id))
            rec.emit(LEAD_EVENT, self._synced(key, count))

    @staticmethod
    def _synced(key: TaskKey, changed: int) -> dict[str, Any]:
        return {"action": KOMMO_SYNCED, "pipeline_id": key.kommo_pipeline_id, "count": changed}

    def _failed(self, error: str) -> None:
        self._failures += 1
        delay = min(self.settings.kommo_backoff_max, self.settings.kommo_poll_interval * (2 ** self._failures))
        self._backoff_until = time.monotonic() + delay
        log.warning("kommo unavailable (%s); polling paused for %.1fs", error, delay)

    # -- status (R111) --------------------------------------------------------------------------------
    async def worker_status(self) -> dict[str, Any]:
        fields = await self.status.read("worker")
        queue = self.queue_length
        if not self.leader:
            queue += int(fields.get("queue_length") or 0)
        return {
            "running": self.running,
            "queue_length": queue,
            "last_check": fields.get("last_check") or None,
            "last_synced_pipeline": fields.get("last_synced_pipeline") or None,
            "connected_count": int(fields.get("connected_count") or 0),
            "last_error": fields.get("last_error") or None,
        }

    # -- full sync (R106 / R112) ----------------------------------------------------------------------
    async def start_full_sync(self, account_id: uuid.UUID) -> bool:
        """False when a full sync of this account is already running (in any process)."""
        lock = full_sync_key(account_id)
        if not await self.locks.try_acquire(lock):
            return False
        try:
            doc: dict[str, Any] = {"running": True, "progress": PROGRESS_START, "started_at": _iso()}
            await self.status.put(f"full:{account_id}", doc)
            await invalidate_leads(self.state, account_id)
        except BaseException:
            await self.locks.release(lock)
            raise
        self._full_jobs[account_id] = asyncio.create_task(self._full_sync_job(account_id, lock, doc))
        return True

    async def full_status(self, account_id: uuid.UUID) -> dict[str, Any] | None:
        return await self.status.get(f"full:{account_id}")

    async def wait_full_sync(self, account_id: uuid.UUID) -> None:
        job = self._full_jobs.get(account_id)
        if job is not None:
            await asyncio.wait([job])

    async def _full_sync_job(self, account_id: uuid.UUID, lock: str, doc: dict[str, Any]) -> None:
        name = f"full:{account_id}"
        clock = time.monotonic()

        async def progress(text: str) -> None:
            doc["progress"] = text
            await self.status.put(name, doc)

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(HEARTBEAT_EVERY)
                await self.status.put(name, doc)

        beat = asyncio.create_task(heartbeat())
        try:
            await progress(PROGRESS_PIPELINES)
            rows = await self.state.db.fetch(Q_CONNECTED_LIST, [account_id, CONNECTED_CAP])
            enabled = [int(row["kommo_pipeline_id"]) for row in rows if row["enabled"]]
            result = await self._full_sync_steps(account_id, enabled, progress)
            result["duration"] = go_duration(time.monotonic() - clock)
            result["synced_at"] = _iso()
            if not result["errors"]:
                del result["errors"]
            doc.update(running=False, progress=PROGRESS_DONE, result=result, done_at=_iso())
        except asyncio.CancelledError:
            doc.update(running=False, error="sync interrupted: server shutting down", done_at=_iso())
            raise
        except Exception as exc:
            log.warning("kommo full sync of %s failed: %s", account_id, exc)
            doc.update(running=False, error=str(exc), done_at=_iso())
        finally:
            beat.cancel()
            try:
                await asyncio.shield(self.status.put(name, doc))
            finally:
                await self.locks.release(lock)
                self._full_jobs.pop(account_id, None)

    async def _full_sync_steps(self, account_id: uuid.UUID, enabled: list[int], progress: Any) -> dict[str, Any]:
        errors: list[str] = []
        await progress(f"Sincronizando {len(enabled)} pipeline(s)...")
        pipelines = 0
        kommo_pipelines = None
        if enabled:
            try:
                kommo_pipelines = await self.sync.fetch_pipelines()
            except KommoError as exc:
                errors.extend(f"pipeline {kpid}: {exc}" for kpid in enabled)
        if kommo_pipelines is not None:
            for kpid in enabled:
                try:
                    await self.sync.sync_pipeline(account_id, kpid, kommo_pipelines)
                    pipelines += 1
                except (KommoError, PipelineNotFound, DatabaseError) as exc:
                    errors.append(f"pipeline {kpid}: {exc}")
        await progress("Sincronizando etiquetas...")
        tags = 0
        try:
            tags = await self.sync.sync_tags(account_id)
        except (KommoError, DatabaseError) as exc:
            errors.append(f"tags: {exc}")
        await progress(f"Sincronizando leads de {len(enabled)} pipeline(s)...")
        leads = 0
        for kpid in enabled:
            key = TaskKey(account_id, kpid)
            lock = pipeline_key(account_id, kpid)
            if not await self.locks.acquire(lock, PIPELINE_LOCK_WAIT):
                errors.append(f"leads pipeline {kpid}: another sync of this pipeline is still running")
                continue
            try:
                outcome, error = await self._sync_pipeline_leads(key, None)
            finally:
                await self.locks.release(lock)
            if outcome is None:
                errors.append(f"leads pipeline {kpid}: {error}")
            else:
                leads += outcome.processed
                errors.extend(f"leads pipeline {kpid}: {e}" for e in outcome.error_summary)
        contacts = int(await self.state.db.fetch_val(Q_CONTACTS_COUNT, [account_id]) or 0)
        return {"pipelines": pipelines, "stages": 0, "tags": tags, "leads": leads, "contacts": contacts,
                "errors": errors}
