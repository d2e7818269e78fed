"""The delivery worker: one per cluster, head-of-line per subscription, signed posts with retries.

**Claim.** Every process runs this worker; only the one holding the PostgreSQL session advisory lock
``clarin-webhooks:deliver`` (clarin.db.advisory: its own connection, freed by PostgreSQL the moment the process
dies, ``kill -9`` included) delivers. The others try the lock every ``STANDBY_RETRY`` s, so a dead leader is
replaced within about a second. The leader pings its lock session every tick and stops delivering at once
when it is lost (PostgreSQL restart). So with any number of processes each delivery is attempted by one
process at a time; a delivery whose result could not be recorded (the leader died, or PostgreSQL went away
between the post and the update) is sent again: at-least-once, and receivers de-duplicate on
``X-Clarin-Delivery`` (the event id).

**Order.** A subscription's deliveries go out in ``seq`` order, one at a time: a failing delivery holds the
ones behind it until it succeeds or is given up. Subscriptions are independent: each has its own task, so a
slow or hanging receiver (10 s timeout) only delays itself.

**Retries.** Non-2xx, a timeout or a connection error → next attempt after 10 s, 1 min, 5 min, 30 min, 2 h,
then every 6 h (±20 % jitter), all multiplied by ``WEBHOOK_RETRY_SCALE``; a delivery still failing 24 h (scaled)
after its first attempt is given up (``failed``) and its subscription is disabled with a reason and a
``webhook_disabled`` WebSocket event to the account.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from clarin.db.advisory import AdvisorySession, AdvisoryUnavailable
from clarin.db.errors import DatabaseError
from clarin.db.pool import Database
from clarin.db.queries import query
from clarin.observability.metrics import WEBHOOK_DELIVERIES, WEBHOOK_LATENCY, WEBHOOK_OLDEST, WEBHOOK_QUEUE
from clarin.webhooks import signing
from clarin.webhooks.events import DISABLED_EVENT
from clarin.webhooks.targets import TargetRefused, check_host, peer_allowed

log = logging.getLogger("clarin.webhooks.worker")

Q_DUE = query("webhook_due")
Q_HEAD = query("webhook_head")
Q_DELIVERED = query("webhook_mark_delivered")
Q_FAILED = query("webhook_mark_failed")
Q_DISABLE = query("webhook_disable")
Q_STATS = query("webhook_queue_stats")
Q_PRUNE = query("webhook_prune")

LOCK_KEY = "clarin-webhooks:deliver"
RETRY_DELAYS = (10.0, 60.0, 300.0, 1800.0, 7200.0, 21600.0)
GIVE_UP_AFTER = 24 * 3600.0
MAX_RESPONSE_BYTES = 64 * 1024
DUE_BATCH = 500  # subscriptions looked at per tick
HEAD_BATCH = 50  # deliveries of one subscription fetched at once
FLUSH_SECONDS = 0.25  # successes are recorded in batches: at the end of each head batch, or after this long
MAX_ACTIVE = 64  # subscriptions delivering at once in this process
STANDBY_RETRY = 1.0
STATS_EVERY = 5.0
PRUNE_EVERY = 60.0
PRUNE_BATCH = 1000
USER_AGENT = "Clarin-Webhooks/1"

Broadcast = Callable[[object, str, Any], Awaitable[None]]

# httpx logs every request at INFO: hundreds of lines a second from deliveries. Its lines are dropped while a
# delivery runs (the context variable is per task), other httpx users (media, Kommo) keep theirs.
_DELIVERING: ContextVar[bool] = ContextVar("clarin_webhook_delivering", default=False)


class _QuietDeliveries(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _DELIVERING.get()


_QUIET = _QuietDeliveries()


def retry_delay(failures: int, scale: float) -> float:
    base = RETRY_DELAYS[min(failures, len(RETRY_DELAYS)) - 1]
    return base * scale * random.uniform(0.8, 1.2)


class Attempt:
    __slots__ = ("error", "seconds", "status")

    def __init__(self, status: int | None, error: str, seconds: float) -> None:
        self.status, self.error, self.seconds = status, error, seconds

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and not self.error


class DeliveryWorker:
    def __init__(
        self, dsn: str, db: Database, broadcast: Broadcast, *, retry_scale: float = 1.0, timeout: float = 10.0,
        allow_private: bool = False, poll: float = 0.5, retention_days: float = 7.0,
    ) -> None:
        self._db = db
        self._broadcast = broadcast
        self._scale = retry_scale
        self._timeout = timeout
        self._allow_private = allow_private
        self._poll = poll
        self._retention = retention_days
        self._lock = AdvisorySession(dsn, "clarin-webhooks", on_lost=lambda _exc: self._lost())
        self._leader = False
        self._wake = asyncio.Event()
        self._active: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._last_stats = 0.0
        self._last_prune = 0.0

    @property
    def leader(self) -> bool:
        return self._leader

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        logging.getLogger("httpx").addFilter(_QUIET)
        limits = httpx.Limits(max_connections=MAX_ACTIVE * 2, max_keepalive_connections=MAX_ACTIVE)
        # TCP_NODELAY: a request is written as head + body; with Nagle the body waits for the receiver's delayed
        # ACK of the head (40 ms per delivery on Linux).
        transport = httpx.AsyncHTTPTransport(
            limits=limits, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        self._client = httpx.AsyncClient(
            timeout=self._timeout, follow_redirects=False, trust_env=False, transport=transport,
            headers={"user-agent": USER_AGENT, "content-type": "application/json"},
        )
        self._task = asyncio.create_task(self._run(), name="webhook-delivery")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._cancel_active()
        await self._lock.close()
        self._leader = False
        if self._client is not None:
            await self._client.aclose()

    def _lost(self) -> None:
        if self._leader:
            log.warning("webhook delivery: lock session lost; this process stops delivering")
        self._leader = False
        for task in self._active.values():
            task.cancel()
        WEBHOOK_QUEUE.set(0)
        WEBHOOK_OLDEST.set(0)

    async def _cancel_active(self) -> None:
        tasks = list(self._active.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._active.clear()

    # -- leadership and the scan ------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            try:
                if not self._leader:
                    await self._try_lead()
                    if not self._leader:
                        await asyncio.sleep(STANDBY_RETRY)
                        continue
                if not await self._lock.ping():
                    self._lost()
                    continue
                await self._tick()
            except asyncio.CancelledError:
                raise
            except (DatabaseError, AdvisoryUnavailable) as exc:
                log.info("webhook delivery: database unavailable (%s); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            except Exception:
                log.exception("webhook delivery tick failed")
                await asyncio.sleep(1.0)
                continue
            self._wake.clear()
            try:
                async with asyncio.timeout(self._poll):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _try_lead(self) -> None:
        try:
            await self._lock.open()
            self._leader = await self._lock.try_lock(LOCK_KEY)
        except (AdvisoryUnavailable, OSError, Exception) as exc:  # psqlpy connect errors are not OSError
            log.debug("webhook delivery: cannot take the lock (%s)", exc)
            self._leader = False
            return
        if self._leader:
            log.info("webhook delivery: this process delivers for the cluster")

    async def _tick(self) -> None:
        for sub_id in [s for s, t in self._active.items() if t.done()]:
            del self._active[sub_id]
        if len(self._active) < MAX_ACTIVE:
            for sub in await self._db.fetch(Q_DUE, [DUE_BATCH]):
                sub_id = _uuid(sub["id"])
                if sub_id in self._active:
                    continue
                if len(self._active) >= MAX_ACTIVE:
                    break
                self._active[sub_id] = asyncio.create_task(self._drain(sub), name=f"webhook-{sub_id}")
        now = time.monotonic()
        if now - self._last_stats >= STATS_EVERY:
            self._last_stats = now
            stats = await self._db.fetch_row(Q_STATS)
            if stats is not None:
                WEBHOOK_QUEUE.set(float(stats["depth"]))
                WEBHOOK_OLDEST.set(float(stats["oldest_age"]))
        if now - self._last_prune >= PRUNE_EVERY:
            self._last_prune = now
            await self._prune()

    async def _prune(self) -> None:
        cutoff = datetime.now(UTC) - timedelta(days=self._retention)
        for _ in range(10):  # at most 10 batches per round; the next round continues
            gone = await self._db.fetch_val(Q_PRUNE, [cutoff, PRUNE_BATCH])
            if not gone or gone < PRUNE_BATCH:
                return

    # -- one subscription ---------------------------------------------------------------------------------------
    async def _drain(self, sub: dict[str, Any]) -> None:
        """Deliver the subscription's due head rows in order. Successes are recorded in batches (one statement
        per head batch or ``FLUSH_SECONDS``): a crash before the record re-sends them (at-least-once)."""
        sub_id, account = _uuid(sub["id"]), _uuid(sub["account_id"])
        done = _Done()
        try:
            while self._leader:
                rows = await self._db.fetch(Q_HEAD, [sub_id, account, HEAD_BATCH])
                if not rows:
                    return
                for row in rows:
                    if not self._leader or row["next_attempt_at"] > datetime.now(UTC):
                        return
                    if not await self._deliver(sub, account, row, done):
                        return  # order: the rest waits behind the failed one
                    if done.due():
                        await self._flush(account, done)
                await self._flush(account, done)  # before the next head batch is read
                if len(rows) < HEAD_BATCH:
                    return
        except (DatabaseError, AdvisoryUnavailable) as exc:
            log.info("webhook delivery for %s paused: %s", sub_id, exc)
        finally:
            try:
                await self._flush(account, done)
            except (DatabaseError, AdvisoryUnavailable):
                pass  # not recorded: sent again later, receivers de-duplicate

    async def _flush(self, account: uuid.UUID, done: _Done) -> None:
        if done.ids:
            ids, codes, ms = done.ids, done.codes, done.ms
            done.clear()
            await self._db.execute(Q_DELIVERED, [account, ids, codes, ms])

    async def _deliver(self, sub: dict[str, Any], account: uuid.UUID, row: dict[str, Any], done: _Done) -> bool:
        occurred = row["occurred_at"].astimezone(UTC).isoformat().replace("+00:00", "Z")
        body = signing.body(str(row["event_id"]), row["event"], str(account), occurred, row["data"])
        headers = {
            "x-clarin-signature": signing.signature(sub["secret"], body),
            "x-clarin-event": row["event"],
            "x-clarin-delivery": str(row["event_id"]),
        }
        attempt = await self.post(sub["url"], body, headers)
        result = "delivered" if attempt.ok else "retry"
        delivery_id = _uuid(row["id"])
        duration_ms = round(attempt.seconds * 1000, 3)
        if attempt.ok:
            done.add(delivery_id, attempt.status or 200, duration_ms)
        else:
            await self._flush(account, done)
            first = row["first_attempt_at"] or datetime.now(UTC)
            give_up = (datetime.now(UTC) - first).total_seconds() >= GIVE_UP_AFTER * self._scale
            delay = retry_delay(int(row["attempts"]) + 1, self._scale)
            await self._db.execute(
                Q_FAILED, [delivery_id, account, attempt.status, attempt.error, duration_ms, delay, give_up]
            )
            if give_up:
                result = "failed"
                await self._disable(sub, account, attempt)
        WEBHOOK_DELIVERIES.labels(result).inc()
        WEBHOOK_LATENCY.labels(result).observe(attempt.seconds)
        return attempt.ok

    async def _disable(self, sub: dict[str, Any], account: uuid.UUID, attempt: Attempt) -> None:
        reason = f"failing for 24 h; last error: {attempt.error or f'HTTP {attempt.status}'}"
        if await self._db.fetch_val(Q_DISABLE, [_uuid(sub["id"]), account, reason]) is None:
            return
        log.warning("webhook %s disabled: %s", sub["id"], reason)
        await self._broadcast(account, DISABLED_EVENT, {"webhook_id": str(sub["id"]), "reason": reason})

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Attempt:
        """One attempt: address rule, signed POST, at most 64 KiB of the answer read, no redirects."""
        assert self._client is not None
        started = time.perf_counter()
        _DELIVERING.set(True)  # this task's context only (each subscription drains in its own task)
        try:
            if not self._allow_private:
                await check_host(url, allow_private=False)
            async with asyncio.timeout(self._timeout):
                async with self._client.stream("POST", url, content=body, headers=headers) as response:
                    if not peer_allowed(response, self._allow_private):
                        return Attempt(None, "address not allowed", time.perf_counter() - started)
                    read = 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read >= MAX_RESPONSE_BYTES:
                            break
                    status = response.status_code
        except TargetRefused as exc:
            return Attempt(None, str(exc), time.perf_counter() - started)
        except (TimeoutError, httpx.TimeoutException):
            return Attempt(None, f"timed out after {self._timeout:g} s", time.perf_counter() - started)
        except httpx.HTTPError as exc:
            return Attempt(None, type(exc).__name__, time.perf_counter() - started)
        seconds = time.perf_counter() - started
        error = "" if 200 <= status < 300 else f"HTTP {status}"
        return Attempt(status, error, seconds)


class _Done:
    """Successes not recorded yet (one subscription)."""

    __slots__ = ("codes", "ids", "ms", "since")

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.ids: list[uuid.UUID] = []
        self.codes: list[int] = []
        self.ms: list[float] = []
        self.since = 0.0

    def add(self, delivery_id: uuid.UUID, code: int, ms: float) -> None:
        if not self.ids:
            self.since = time.monotonic()
        self.ids.append(delivery_id)
        self.codes.append(code)
        self.ms.append(ms)

    def due(self) -> bool:
        return bool(self.ids) and time.monotonic() - self.since >= FLUSH_SECONDS


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
