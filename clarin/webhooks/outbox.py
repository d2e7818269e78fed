"""The durable outbox: one ``webhook_deliveries`` row per (event, matching enabled subscription).

Every data-change event passes through ``Broadcaster.broadcast``/``broadcast_many``; for an account with at
least one enabled subscription the broadcaster awaits :meth:`Outbox.record` first, so the rows are written
before the request that made the change is answered (and before background work — ingestion, campaigns,
Kommo — moves on). That is only the fallback: the write paths write the rows inside the transaction of the
change itself (:mod:`clarin.webhooks.recording`, :meth:`Outbox.write_in`; ``POST /api/leads`` with
:meth:`Outbox.record_in`) and broadcast with ``recorded=True``. docs/WEBHOOKS.md, "Durability", lists every
path and its rule.

Which accounts have subscriptions is cached per process (``ttl`` seconds) and dropped at once on every worker
through Redis (``<prefix>:webhooks``) when a subscription changes; accounts without subscriptions cost no
query at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from clarin.cache.redis_client import RedisHandle
from clarin.cache.subscription import subscribe_forever
from clarin.db.errors import DatabaseError
from clarin.db.pool import Database, Transaction
from clarin.db.queries import query
from clarin.http.json import encode
from clarin.webhooks.events import WEBHOOK_EVENTS

log = logging.getLogger("clarin.webhooks.outbox")

Q_ENABLED = query("webhooks_account_enabled")
Q_INSERT = query("webhook_outbox_insert")
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0)
MAX_HELD = 100_000  # rows of events held in memory while PostgreSQL is unreachable


def _rows(events: Iterable[tuple[str, Any]]) -> tuple[list[uuid.UUID], list[str], list[str]]:
    ids: list[uuid.UUID] = []
    names: list[str] = []
    datas: list[str] = []
    for event, data in events:
        if event in WEBHOOK_EVENTS:
            ids.append(uuid.uuid4())
            names.append(event)
            datas.append(encode(data).decode())
    return ids, names, datas


class Outbox:
    def __init__(self, db: Database, redis: RedisHandle, channel: str, ttl: float = 2.0) -> None:
        self._db = db
        self._redis = redis
        self.channel = channel
        self.ttl = ttl
        self._enabled: dict[str, tuple[bool, float]] = {}
        # Bumped by every invalidation: a lookup that was in flight while a subscription changed must not store
        # what it read before the change (it would hide the new subscription for a whole TTL).
        self._version = 0
        self._held: list[tuple[str, list[uuid.UUID], list[str], list[str]]] = []
        self._retry: asyncio.Task[None] | None = None
        self._listen: asyncio.Task[None] | None = None
        self.on_written: Callable[[], None] | None = None  # wakes this process's delivery worker

    async def start(self) -> None:
        if self._redis.configured:
            self._listen = asyncio.create_task(self._subscribe_loop(), name="webhook-cache-invalidation")

    async def stop(self) -> None:
        for task in (self._listen, self._retry):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._held:
            log.error("webhook outbox: %d event batches could not be written before shutdown", len(self._held))

    # -- the per-account "has subscriptions" cache ----------------------------------------------------------
    async def wanted(self, account: str) -> bool:
        hit = self._enabled.get(account)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        version = self._version
        enabled = bool(await self._db.fetch_val(Q_ENABLED, [uuid.UUID(account)]))
        if version != self._version:
            return enabled  # a subscription changed meanwhile: use the answer once, do not keep it
        if len(self._enabled) > 50_000:
            self._enabled.clear()
        self._enabled[account] = (enabled, now + self.ttl)
        return enabled

    def forget(self, account: str | None = None) -> None:
        """Drop one account's entry (None: all of them)."""
        self._version += 1
        if account is None:
            self._enabled.clear()
        else:
            self._enabled.pop(account, None)

    async def invalidate(self, account: str) -> None:
        """A subscription of ``account`` changed: forget it here and on every other worker."""
        self.forget(account)
        await self._redis.guard(lambda r: r.publish(self.channel, account), None)

    # -- writes ---------------------------------------------------------------------------------------------
    async def record(self, account: str, events: list[tuple[str, Any]]) -> None:
        """Write the rows of ``events`` (outside any transaction). PostgreSQL unreachable: the rows are held
        and written when it is back (lost only if this process dies meanwhile; docs/WEBHOOKS.md)."""
        if not any(event in WEBHOOK_EVENTS for event, _ in events):
            return
        try:
            if not await self.wanted(account):
                return
        except DatabaseError as exc:
            log.warning("webhook outbox: cannot tell whether account %s has subscriptions (%s); holding", account,
                        exc)
        ids, names, datas = _rows(events)
        try:
            await self._db.fetch_val(Q_INSERT, [uuid.UUID(account), ids, names, datas])
        except DatabaseError as exc:
            self._hold(account, ids, names, datas, exc)
            return
        if self.on_written is not None:
            self.on_written()

    async def record_in(self, tx: Transaction, account: str, event: str, data: Any) -> None:
        """Write one event's rows inside the caller's transaction (committed with the change itself)."""
        if event not in WEBHOOK_EVENTS or not await self.wanted(account):
            return
        ids, names, datas = _rows([(event, data)])
        await tx.fetch_val(Q_INSERT, [uuid.UUID(account), ids, names, datas])
        if self.on_written is not None:
            self.on_written()

    async def write_in(self, tx: Transaction, account: str, events: list[tuple[str, Any]]) -> bool:
        """Write the rows of ``events`` inside the caller's transaction, without asking :meth:`wanted` (the caller
        did, before opening it: clarin.webhooks.recording). False when none of them is a webhook event."""
        ids, names, datas = _rows(events)
        if not ids:
            return False
        await tx.fetch_val(Q_INSERT, [uuid.UUID(account), ids, names, datas])
        return True

    def written(self) -> None:
        """Rows were committed by a writer of their own (a transaction or a statement's CTE): wake the worker."""
        if self.on_written is not None:
            self.on_written()

    def _hold(self, account: str, ids: list[uuid.UUID], names: list[str], datas: list[str], exc: Exception) -> None:
        if sum(len(h[1]) for h in self._held) + len(ids) > MAX_HELD:
            log.error("webhook outbox: %d events of account %s dropped (held queue full)", len(ids), account)
            return
        log.warning("webhook outbox: write failed (%s); holding %d events until PostgreSQL answers", exc, len(ids))
        self._held.append((account, ids, names, datas))
        if self._retry is None or self._retry.done():
            self._retry = asyncio.create_task(self._flush_held(), name="webhook-outbox-retry")

    async def _flush_held(self) -> None:
        attempt = 0
        while self._held:
            account, ids, names, datas = self._held[0]
            try:
                # Same event ids on every retry: if a lost answer hid a commit, the rows exist twice with one event
                # id, which receivers de-duplicate on (X-Clarin-Delivery).
                await self._db.fetch_val(Q_INSERT, [uuid.UUID(account), ids, names, datas])
            except DatabaseError:
                await asyncio.sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
                attempt += 1
                continue
            self._held.pop(0)
            attempt = 0
            if self.on_written is not None:
                self.on_written()

    async def _subscribe_loop(self) -> None:
        # On (re-)subscribing, forget everything: whatever changed while we were not listening is unknown.
        await subscribe_forever(self._redis, self.channel, self.forget, on_subscribed=self.forget,
                                lost_warning="webhook cache invalidation channel lost (%s)")

