"""One owner per device across processes: PostgreSQL session advisory locks.

Each process opens ONE dedicated connection (from its own small psqlpy pool, so request load on
the main pool can never starve it) and takes ``pg_try_advisory_lock(hashtextextended('clarin-device:'
|| id, 0))`` for every device it runs. The lock lives exactly as long as that session:

- the owner releases it on disconnect / logout / delete / shutdown;
- the owner dies (crash, SIGKILL, OOM): the kernel closes its socket, PostgreSQL ends the session and
  the locks are free at once; another process's periodic take-over scan (every
  ``WHATSAPP_LEASE_RENEW`` s, default 10) claims the device and resumes its session;
- the owner's host vanishes (no FIN): server-side TCP keepalives set on the session (idle TTL/3,
  interval TTL/6, 3 probes) end it within ~``WHATSAPP_LEASE_TTL`` s (default 30);
- the owner loses its database connection: its health check (every renew interval) fails, it stops
  every client it runs at once (so two clients never share a session for long) and reconnects.

Why PostgreSQL and not Redis: the lock is tied to a live session, with no TTL to renew and no
clock-skew or paused-process split brain; it also works when Redis is not configured. Redis is not used.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import psqlpy

from clarin.db.queries import query

log = logging.getLogger("clarin.whatsapp.lease")

Q_TRY = query("device_lease_try")
Q_RELEASE = query("device_lease_release")
Q_RELEASE_ALL = query("device_lease_release_all")
Q_PING = query("device_lease_ping")
Q_SETTING = query("device_lease_setting")

OP_TIMEOUT = 5.0


class LeaseUnavailable(Exception):
    """The lease connection is down: this process cannot own devices right now."""


class DeviceLeases:
    def __init__(self, dsn: str, ttl: int) -> None:
        self._dsn = dsn
        self._ttl = max(3, ttl)
        self._pool: psqlpy.ConnectionPool | None = None
        self._conn: Any = None
        self._lock = asyncio.Lock()
        self.held: set[uuid.UUID] = set()

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    async def open(self) -> None:
        if self._conn is not None:
            return
        idle, interval = max(1, self._ttl // 3), max(1, self._ttl // 6)
        pool = psqlpy.ConnectionPool(
            dsn=self._dsn, max_db_pool_size=2, connect_timeout_sec=5, application_name="clarin-device-leases",
            keepalives=True, keepalives_idle_sec=idle, keepalives_interval_sec=interval, keepalives_retries=3,
        )
        try:
            conn = await asyncio.wait_for(pool.connection(), OP_TIMEOUT)
            for name, value in (
                ("tcp_keepalives_idle", idle), ("tcp_keepalives_interval", interval), ("tcp_keepalives_count", 3),
            ):
                await conn.execute(Q_SETTING, [name, str(value)])
        except BaseException:
            pool.close()
            raise
        self._pool, self._conn = pool, conn
        log.info("device lease connection open")

    async def _run(self, sql: str, params: list[Any] | None) -> list[dict[str, Any]]:
        if self._conn is None:
            raise LeaseUnavailable("lease connection is not open")
        try:
            result = await asyncio.wait_for(self._conn.execute(sql, params), OP_TIMEOUT)
        except Exception as exc:
            self._broken(exc)
            raise LeaseUnavailable(str(exc)) from exc
        return result.result()

    def _broken(self, exc: BaseException) -> None:
        if self._conn is None:
            return
        log.error("device lease connection lost (%s): every lease of this process is gone", exc)
        self.held.clear()
        pool, self._pool, self._conn = self._pool, None, None
        if pool is not None:
            try:
                pool.close()
            except Exception:
                pass

    async def try_acquire(self, device_id: uuid.UUID) -> bool:
        async with self._lock:
            if device_id in self.held:
                return True  # advisory locks stack: never take ours twice
            rows = await self._run(Q_TRY, [device_id])
            if rows and rows[0]["acquired"]:
                self.held.add(device_id)
                return True
            return False

    async def release(self, device_id: uuid.UUID) -> None:
        async with self._lock:
            if device_id not in self.held:
                return
            self.held.discard(device_id)
            try:
                await self._run(Q_RELEASE, [device_id])
            except LeaseUnavailable:
                pass  # the session is gone, and its locks with it

    async def check(self) -> bool:
        """Health ping; ``False`` means the connection (and so every lease) was lost."""
        async with self._lock:
            if self._conn is None:
                return False
            try:
                await self._run(Q_PING, None)
            except LeaseUnavailable:
                return False
            return True

    async def close(self) -> None:
        async with self._lock:
            if self._conn is None:
                return
            try:
                await self._run(Q_RELEASE_ALL, None)
            except LeaseUnavailable:
                pass
            conn, pool = self._conn, self._pool
            self._conn = self._pool = None
            self.held.clear()
            try:
                conn.close()
            finally:
                if pool is not None:
                    pool.close()
