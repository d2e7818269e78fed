"""Cross-process exclusion for Kommo work: PostgreSQL session advisory locks on one dedicated connection.

Keys (text, hashed with ``hashtextextended``):
- ``clarin-kommo-poller`` — the poller leader: one process of the installation polls (the others still run
  tasks queued locally, e.g. by R109);
- ``clarin-kommo-pipeline:<account>:<kommo pipeline id>`` — at most one lead sync of a pipeline at a time,
  background task or full sync, in any process;
- ``clarin-kommo-full:<account>`` — at most one full sync (R106) per account.

Why PostgreSQL rather than a Redis lock with expiry: the lock lives exactly as long as the session. A worker
killed mid-sync (SIGKILL, OOM, crash) loses its connection and PostgreSQL frees its locks at once, so a
restarted or surviving worker resumes immediately — no TTL to wait out or to renew while a long page write
runs, no split brain from a paused process, and it works without Redis. Cost: one connection per process,
from its own tiny pool so request load can never starve it.

Advisory locks stack within a session, so the process also remembers which keys it holds and refuses to take
one twice (two tasks of the same process exclude each other too). If the lock connection breaks, every lock
of the process is gone: ``held`` is cleared and the next ``try_acquire`` reconnects.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psqlpy

from clarin.db.errors import DatabaseUnavailable
from clarin.db.queries import query

log = logging.getLogger("clarin.kommo.locks")

Q_TRY = query("kommo_lock_try")
Q_RELEASE = query("kommo_lock_release")

OP_TIMEOUT = 5.0
POLLER_KEY = "clarin-kommo-poller"


def pipeline_key(account_id: object, kommo_pipeline_id: int) -> str:
    return f"clarin-kommo-pipeline:{account_id}:{kommo_pipeline_id}"


def full_sync_key(account_id: object) -> str:
    return f"clarin-kommo-full:{account_id}"


class SyncLocks:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._pool: psqlpy.ConnectionPool | None = None
        self._conn: Any = None
        self._lock = asyncio.Lock()
        self.held: set[str] = set()

    async def _open(self) -> None:
        if self._conn is not None:
            return
        pool = psqlpy.ConnectionPool(
            dsn=self._dsn, max_db_pool_size=2, connect_timeout_sec=5, application_name="clarin-kommo-locks",
            keepalives=True, keepalives_idle_sec=10, keepalives_interval_sec=5, keepalives_retries=3,
        )
        try:
            self._conn = await asyncio.wait_for(pool.connection(), OP_TIMEOUT)
        except BaseException:
            pool.close()
            raise
        self._pool = pool

    async def _run(self, sql: str, key: str) -> bool:
        try:
            await self._open()
            result = await asyncio.wait_for(self._conn.execute(sql, [key]), OP_TIMEOUT)
        except Exception as exc:
            self._broken(exc)
            raise
        rows = result.result()
        return bool(rows and next(iter(rows[0].values())))

    def _broken(self, exc: BaseException) -> None:
        if self.held:
            log.error("kommo lock connection lost (%s): this process holds no Kommo locks now", exc)
        self.held.clear()
        pool, self._pool, self._conn = self._pool, None, None
        if pool is not None:
            try:
                pool.close()
            except Exception:
                pass

    async def try_acquire(self, key: str) -> bool:
        """Take the lock if it is free; ``DatabaseUnavailable`` when PostgreSQL cannot be asked."""
        async with self._lock:
            if key in self.held:
                return False
            try:
                acquired = await self._run(Q_TRY, key)
            except Exception as exc:
                raise DatabaseUnavailable(f"kommo lock connection: {exc}") from exc
            if acquired:
                self.held.add(key)
            return acquired

    async def acquire(self, key: str, timeout: float, poll: float = 0.25) -> bool:
        """Wait up to ``timeout`` seconds for the lock."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if await self.try_acquire(key):
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(poll)

    async def release(self, key: str) -> None:
        """Safe under cancellation: the unlock itself is shielded, and a failed unlock drops the session."""
        await asyncio.shield(self._release(key))

    async def _release(self, key: str) -> None:
        async with self._lock:
            if key not in self.held:
                return
            self.held.discard(key)
            try:
                await self._run(Q_RELEASE, key)
            except Exception:
                pass  # _run dropped the session, and every lock with it

    async def close(self) -> None:
        async with self._lock:
            self.held.clear()
            pool, self._pool, conn, self._conn = self._pool, None, self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass
        if pool is not None:
            pool.close()
