"""One owner per device across processes: PostgreSQL session advisory locks.

Each process opens ONE dedicated connection (from its own small psqlpy pool, so request load on
the main pool can never starve it) and takes ``pg_try_advisory_lock(hashtextextended('clarin-device:'
|| id, 0))`` for every device it runs. The lock lives exactly as long as that session:

- the owner releases it on disconnect / logout / delete / shutdown;
- the owner dies (crash, SIGKILL, OOM): the kernel closes its socket, PostgreSQL ends the session and
  the locks are free at once; the processes watching its node key (clarin.whatsapp.peers) wake their
  take-over scan, which claims the device after the claim grace and resumes its session (the periodic
  scan, every ``WHATSAPP_LEASE_RENEW`` s, default 10, remains the fallback);
- the owner's host vanishes (no FIN): server-side TCP keepalives set on the session (idle TTL/3,
  interval TTL/6, 3 probes) end it within ~``WHATSAPP_LEASE_TTL`` s (default 30);
- the owner loses its database connection: its health check (every 0.5 s, clarin.whatsapp.pool) fails, it
  stops every client it runs at once and reconnects; other processes claim a device only after seeing it
  unleased for a grace period longer than that, so two clients never share a session.

Why PostgreSQL and not Redis: the lock is tied to a live session, with no TTL to renew and no
clock-skew or paused-process split brain; it also works when Redis is not configured. Redis is not used.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid

from clarin.db.advisory import AdvisorySession, AdvisoryUnavailable
from clarin.whatsapp.peers import NODE_SPACE

log = logging.getLogger("clarin.whatsapp.lease")

# The pool catches this name; it is the shared session's error.
LeaseUnavailable = AdvisoryUnavailable


def _key(device_id: uuid.UUID) -> str:
    return f"clarin-device:{device_id}"


class DeviceLeases:
    def __init__(self, dsn: str, ttl: int) -> None:
        ttl = max(3, ttl)
        # Server-side keepalives too (idle TTL/3, interval TTL/6, 3 probes): a vanished host's session ends in ~TTL.
        self._session = AdvisorySession(
            dsn, "clarin-device-leases", keepalive_idle=max(1, ttl // 3), keepalive_interval=max(1, ttl // 6),
            server_keepalive=True, on_lost=lambda _exc: self.held.clear(),
        )
        self._lock = asyncio.Lock()
        self.held: set[uuid.UUID] = set()
        # This process's node key (clarin.whatsapp.peers): held on the lease session, so peers learn of its end.
        self.node = secrets.randbelow(2**31 - 2) + 1

    @property
    def is_open(self) -> bool:
        return self._session.is_open

    async def open(self) -> None:
        if not self._session.is_open:
            await self._session.open()
            async with self._lock:
                await self._session.try_lock_pair(NODE_SPACE, self.node)
            log.info("device lease connection open")

    async def peers(self) -> set[int]:
        """The node keys of the other processes holding a lease session now."""
        async with self._lock:
            return await self._session.holders(NODE_SPACE)

    async def try_acquire(self, device_id: uuid.UUID) -> bool:
        async with self._lock:
            if device_id in self.held:
                return True  # advisory locks stack: never take ours twice
            if await self._session.try_lock(_key(device_id)):
                self.held.add(device_id)
                return True
            return False

    async def release(self, device_id: uuid.UUID) -> None:
        async with self._lock:
            if device_id not in self.held:
                return
            self.held.discard(device_id)
            try:
                await self._session.unlock(_key(device_id))
            except AdvisoryUnavailable:
                pass  # the session is gone, and its locks with it

    async def check(self, timeout: float | None = None) -> bool:
        """Health ping; ``False`` means the connection (and so every lease) was lost. A ping slower than
        ``timeout`` counts as lost too: the holder must give its devices up before PostgreSQL could end a
        silent session (server keepalives, ~TTL) and another process claim them."""
        async with self._lock:
            if timeout is None:
                return await self._session.ping()
            try:
                async with asyncio.timeout(timeout):
                    return await self._session.ping()
            except TimeoutError as exc:
                self._session.lost(exc)
                return False

    async def close(self) -> None:
        async with self._lock:
            await self._session.close()
            self.held.clear()
