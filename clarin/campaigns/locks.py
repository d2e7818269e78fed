"""One worker per campaign across processes: PostgreSQL session advisory locks.

The campaign worker of each process opens ONE dedicated connection (its own tiny pool, so request load
can never starve it) and takes ``pg_try_advisory_lock(hashtextextended('clarin-campaign:' || id, 0))``
before it sends for a campaign. The lock lives as long as that session: released when the campaign stops
running here, on shutdown, or by PostgreSQL when the process dies (SIGKILL included). Holding it means no
other live process is sending for that campaign, which is what makes start-up reconciliation of
``sending`` recipients safe. The worker checks the connection (:meth:`CampaignLocks.check`) before every
claim: a lost connection means every lock is gone, and it stops sending at once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import psqlpy

from clarin.db.queries import query

log = logging.getLogger("clarin.campaigns.locks")

Q_TRY = query("campaign_lock_try")
Q_RELEASE = query("campaign_lock_release")
Q_RELEASE_ALL = query("campaign_lock_release_all")
Q_PING = query("campaign_lock_ping")

OP_TIMEOUT = 5.0


class LocksUnavailable(Exception):
    """The lock connection is down: this process holds no campaign lock."""


class CampaignLocks:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._pool: psqlpy.ConnectionPool | None = None
        self._conn: Any = None
        self._lock = asyncio.Lock()
        self.held: dict[uuid.UUID, str] = {}  # campaign → owner (the device loop holding it)

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    async def open(self) -> None:
        async with self._lock:
            if self._conn is not None:
                return
            pool = psqlpy.ConnectionPool(
                dsn=self._dsn, max_db_pool_size=2, connect_timeout_sec=5, application_name="clarin-campaign-locks",
                keepalives=True, keepalives_idle_sec=10, keepalives_interval_sec=5, keepalives_retries=3,
            )
            try:
                conn = await asyncio.wait_for(pool.connection(), OP_TIMEOUT)
            except BaseException:
                pool.close()
                raise
            self._pool, self._conn = pool, conn

    async def _run(self, sql: str, params: list[Any] | None) -> list[dict[str, Any]]:
        if self._conn is None:
            raise LocksUnavailable("campaign lock connection is not open")
        try:
            result = await asyncio.wait_for(self._conn.execute(sql, params), OP_TIMEOUT)
        except Exception as exc:
            self._broken(exc)
            raise LocksUnavailable(str(exc)) from exc
        return result.result()

    def _broken(self, exc: BaseException) -> None:
        if self._conn is None:
            return
        log.error("campaign lock connection lost (%s): every campaign lock of this process is gone", exc)
        self.held.clear()
        pool, self._pool, self._conn = self._pool, None, None
        if pool is not None:
            try:
                pool.close()
            except Exception:
                pass

    async def try_acquire(self, campaign_id: uuid.UUID, owner: str) -> bool:
        """``True`` when ``owner`` now holds the campaign's lock (or already did); ``False`` when another
        process, or another owner in this one, holds it."""
        async with self._lock:
            if campaign_id in self.held:
                return self.held[campaign_id] == owner  # advisory locks stack: never take ours twice
            rows = await self._run(Q_TRY, [campaign_id])
            if rows and rows[0]["acquired"]:
                self.held[campaign_id] = owner
                return True
            return False

    def holds(self, campaign_id: uuid.UUID, owner: str) -> bool:
        return self._conn is not None and self.held.get(campaign_id) == owner

    async def release(self, campaign_id: uuid.UUID, owner: str) -> None:
        async with self._lock:
            if self.held.get(campaign_id) != owner:
                return
            del self.held[campaign_id]
            try:
                await self._run(Q_RELEASE, [campaign_id])
            except LocksUnavailable:
                pass  # the session is gone, and its locks with it

    async def check(self) -> bool:
        """Health ping; ``False`` means the connection (and every lock) is gone."""
        async with self._lock:
            if self._conn is None:
                return False
            try:
                await self._run(Q_PING, None)
            except LocksUnavailable:
                return False
            return True

    async def close(self) -> None:
        async with self._lock:
            if self._conn is None:
                return
            try:
                await self._run(Q_RELEASE_ALL, None)
            except LocksUnavailable:
                pass
            conn, pool = self._conn, self._pool
            self._conn = self._pool = None
            self.held.clear()
            try:
                conn.close()
            finally:
                if pool is not None:
                    pool.close()
