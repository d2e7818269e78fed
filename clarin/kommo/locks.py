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

from clarin.db.advisory import AdvisorySession
from clarin.db.errors import DatabaseUnavailable

POLLER_KEY = "clarin-kommo-poller"


def pipeline_key(account_id: object, kommo_pipeline_id: int) -> str:
    return f"clarin-kommo-pipeline:{account_id}:{kommo_pipeline_id}"


def full_sync_key(account_id: object) -> str:
    return f"clarin-kommo-full:{account_id}"


class SyncLocks:
    def __init__(self, dsn: str) -> None:
        self._session = AdvisorySession(dsn, "clarin-kommo-locks", on_lost=lambda _exc: self.held.clear())
        self._lock = asyncio.Lock()
        self.held: set[str] = set()

    def _broken(self, exc: BaseException) -> None:
        """Treat the lock session as lost (every Kommo lock of this process is gone)."""
        self._session.lost(exc)
        self.held.clear()

    async def try_acquire(self, key: str) -> bool:
        """Take the lock if it is free; ``DatabaseUnavailable`` when PostgreSQL cannot be asked."""
        async with self._lock:
            if key in self.held:
                return False
            try:
                await self._session.open()
                acquired = await self._session.try_lock(key)
            except Exception as exc:
                self._broken(exc)
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
                await self._session.unlock(key)
            except Exception:
                pass  # the session was dropped, and every lock with it

    async def close(self) -> None:
        async with self._lock:
            self.held.clear()
            await self._session.close()
