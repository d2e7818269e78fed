"""A dedicated PostgreSQL session holding advisory locks: the one mechanism behind device ownership
(clarin.whatsapp.lease), campaign exclusivity (clarin.campaigns.locks) and Kommo sync locks (clarin.kommo.locks).

The session has its own tiny pool, so request load on the main pool can never starve it. A lock lives exactly
as long as the session: when the process dies PostgreSQL frees it at once — no TTL to renew, no split brain
from a paused process, and no Redis needed. If the connection breaks, every lock is gone: ``on_lost`` runs
(callers clear their bookkeeping) and ``AdvisoryUnavailable`` is raised; the next ``open`` reconnects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import psqlpy

from clarin.db.queries import query

log = logging.getLogger("clarin.db.advisory")

Q_TRY = query("advisory_try")
Q_UNLOCK = query("advisory_unlock")
Q_UNLOCK_ALL = query("advisory_unlock_all")
Q_PING = query("advisory_ping")
Q_SETTING = query("advisory_setting")
Q_TRY_PAIR = query("advisory_try_pair")
Q_HOLDERS = query("advisory_holders")

OP_TIMEOUT = 5.0


class AdvisoryUnavailable(Exception):
    """The lock connection is down: this process holds none of its locks."""


class AdvisorySession:
    def __init__(
        self,
        dsn: str,
        name: str,
        *,
        keepalive_idle: int = 10,
        keepalive_interval: int = 5,
        server_keepalive: bool = False,
        on_lost: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._dsn = dsn
        self.name = name
        self._idle = keepalive_idle
        self._interval = keepalive_interval
        self._server_keepalive = server_keepalive
        self._on_lost = on_lost
        self._pool: psqlpy.ConnectionPool | None = None
        self._conn: Any = None

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    async def open(self) -> None:
        if self._conn is not None:
            return
        pool = psqlpy.ConnectionPool(
            dsn=self._dsn, max_db_pool_size=2, connect_timeout_sec=5, application_name=self.name,
            keepalives=True, keepalives_idle_sec=self._idle, keepalives_interval_sec=self._interval,
            keepalives_retries=3,
        )
        try:
            async with asyncio.timeout(OP_TIMEOUT):
                conn = await pool.connection()
            if self._server_keepalive:
                for setting, value in (
                    ("tcp_keepalives_idle", self._idle), ("tcp_keepalives_interval", self._interval),
                    ("tcp_keepalives_count", 3),
                ):
                    await conn.execute(Q_SETTING, [setting, str(value)])
        except BaseException:
            pool.close()
            raise
        self._pool, self._conn = pool, conn

    async def _run(self, sql: str, params: list[Any] | None) -> list[dict[str, Any]]:
        if self._conn is None:
            raise AdvisoryUnavailable(f"{self.name}: connection is not open")
        try:
            async with asyncio.timeout(OP_TIMEOUT):
                result = await self._conn.execute(sql, params)
        except Exception as exc:
            self.lost(exc)
            raise AdvisoryUnavailable(str(exc)) from exc
        return result.result()

    def lost(self, exc: BaseException) -> None:
        """The session is gone (or must be treated as gone): drop it; every lock went with it."""
        if self._conn is None:
            return
        log.error("%s: lock connection lost (%s): every lock of this process is gone", self.name, exc)
        pool, self._pool, self._conn = self._pool, None, None
        if pool is not None:
            try:
                pool.close()
            except Exception:
                pass
        if self._on_lost is not None:
            self._on_lost(exc)

    async def try_lock(self, key: str) -> bool:
        rows = await self._run(Q_TRY, [key])
        return bool(rows and rows[0]["acquired"])

    async def try_lock_pair(self, space: int, key: int) -> bool:
        rows = await self._run(Q_TRY_PAIR, [space, key])
        return bool(rows and rows[0]["acquired"])

    async def holders(self, space: int) -> set[int]:
        """The keys of ``space`` (``try_lock_pair``) other sessions hold now."""
        return {int(row["key"]) for row in await self._run(Q_HOLDERS, [space])}

    async def unlock(self, key: str) -> None:
        await self._run(Q_UNLOCK, [key])

    async def ping(self) -> bool:
        """``False`` means the connection (and every lock) is gone."""
        if self._conn is None:
            return False
        try:
            await self._run(Q_PING, None)
        except AdvisoryUnavailable:
            return False
        return True

    async def close(self) -> None:
        """Release everything and close; safe to call when already closed."""
        if self._conn is None:
            return
        try:
            await self._run(Q_UNLOCK_ALL, None)
        except AdvisoryUnavailable:
            return  # _run already dropped the session
        conn, pool = self._conn, self._pool
        self._conn = self._pool = None
        try:
            conn.close()
        finally:
            if pool is not None:
                pool.close()
