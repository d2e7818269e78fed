"""Thin async facade over a psqlpy pool: named queries in, plain dict rows out, errors translated."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psqlpy
import psqlpy.exceptions as pg_errors

from clarin.db.errors import DatabaseUnavailable, translate
from clarin.db.queries import Query

Params = Sequence[Any] | None
DRIVER_ERRORS = (pg_errors.Error, OSError)
HELD_IDLE_SECONDS = 2.0  # a kept connection unused for longer goes back through the pool's checks
# Set by clarin.observability.metrics at start-up: called with (query, seconds) after every statement.
query_observer: Callable[[str, float], None] | None = None


class _Executor:
    """Read/write helpers shared by the pool, a connection and a transaction."""

    async def _run(self, q: str, params: list[Any] | None, prepared: bool = True) -> Any:
        raise NotImplementedError

    async def _timed(self, q: str, params: list[Any] | None, prepared: bool = True) -> Any:
        observer = query_observer
        if observer is None:
            return await self._run(q, params, prepared)
        started = time.perf_counter()
        try:
            return await self._run(q, params, prepared)
        finally:
            observer(q, time.perf_counter() - started)

    async def fetch(self, q: Query, params: Params = None) -> list[dict[str, Any]]:
        return (await self._timed(q, list(params) if params else None)).result()

    async def fetch_row(self, q: Query, params: Params = None) -> dict[str, Any] | None:
        rows = await self.fetch(q, params)
        return rows[0] if rows else None

    async def fetch_val(self, q: Query, params: Params = None) -> Any:
        row = await self.fetch_tuple(q, params)
        return None if row is None else row[0]

    async def fetch_tuple(self, q: Query, params: Params = None) -> tuple[Any, ...] | None:
        """The first row as a tuple: no dict per row (hot paths that read one row of one or two values)."""
        rows = (await self._timed(q, list(params) if params else None)).result(as_tuple=True)
        return rows[0] if rows else None

    async def execute(self, q: Query, params: Params = None) -> None:
        await self._timed(q, list(params) if params else None)

    # Custom plans: a statement whose best plan depends on its parameter values (a rare search term reads the
    # trigram index, a common one walks the keyset index) must never run a cached generic plan, which PostgreSQL
    # picks for a prepared statement after five executions when it looks no costlier. These run unprepared:
    # psqlpy's ``prepared=False`` describes the statement for its parameter types (a named statement, deallocated
    # at once) and executes it as the unnamed statement, a fresh plan source that PostgreSQL plans with the bound
    # values (plan_cache_mode auto, the default: custom for the first five executions of any plan source, and this
    # one has none; a server set to force_generic_plan would defeat it). Three round trips (describe, deallocate,
    # execute) instead of one, no transaction; tests/test_db_custom_plans.py proves the plan is custom.
    async def fetch_custom(self, q: Query, params: Params = None) -> list[dict[str, Any]]:
        """:meth:`fetch`, planned for these parameter values (never a generic plan)."""
        return (await self._timed(q, list(params) if params else None, False)).result()

    async def fetch_tuple_custom(self, q: Query, params: Params = None) -> tuple[Any, ...] | None:
        """:meth:`fetch_tuple`, planned for these parameter values (never a generic plan)."""
        rows = (await self._timed(q, list(params) if params else None, False)).result(as_tuple=True)
        return rows[0] if rows else None


class Transaction(_Executor):
    def __init__(self, tx: Any) -> None:
        self._tx = tx

    async def _run(self, q: str, params: list[Any] | None, prepared: bool = True) -> Any:
        try:
            return await self._tx.execute(q, params, prepared=prepared)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def execute_script(self, sql: str) -> None:
        """Run a multi-statement script (a migration file) inside this transaction."""
        try:
            await self._tx.execute_batch(sql)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc


class Connection(_Executor):
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def _run(self, q: str, params: list[Any] | None, prepared: bool = True) -> Any:
        try:
            return await self._conn.execute(q, params, prepared=prepared)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def execute_statement(self, sql: str) -> None:
        """Run one statement on its own, outside any transaction (e.g. ``CREATE INDEX CONCURRENTLY``)."""
        try:
            await self._conn.execute_batch(sql)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        try:
            tx = self._conn.transaction()
            await tx.begin()
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        try:
            yield Transaction(tx)
        except BaseException:
            try:
                await tx.rollback()
            except DRIVER_ERRORS:
                pass
            raise
        try:
            await tx.commit()
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc


class Database(_Executor):
    """The process-wide pool. Single statements run on any pooled connection (auto-commit)."""

    def __init__(self, dsn: str, pool_size: int, acquire_timeout: float = 5.0) -> None:
        # A restarted server closes every pooled socket: Fast recycling (is the client closed?) drops those
        # connections when they come back to the pool, so the pool refills with fresh ones by itself. TCP
        # keepalives and a TCP user timeout also end connections to a host that vanished without closing
        # them (no FIN), instead of the kernel's defaults of hours (tests/test_faults.py).
        self._pool = psqlpy.ConnectionPool(
            dsn=dsn,
            max_db_pool_size=max(2, pool_size),
            connect_timeout_sec=5,
            keepalives=True,
            keepalives_idle_sec=30,
            keepalives_interval_sec=10,
            keepalives_retries=3,
            tcp_user_timeout_sec=30,
            conn_recycling_method=psqlpy.ConnRecyclingMethod.Fast,
        )
        self._acquire_timeout = acquire_timeout
        self._closed = False
        # Waiters queue here, first come first served, so the pool itself never has a queue: its own wake-up
        # order let some requests wait seconds while others got connections at once (uncached GET
        # /api/chats/:id/messages at 64 connections: p50 30 ms, p99 3.3 s; bench/RESULTS.md, "Pool").
        self._gate = asyncio.Semaphore(max(2, pool_size))
        # Connections that just served a statement without error are kept here (newest last) instead of going
        # back to the pool: taking one is a list pop, while a pool checkout is a call into the driver's runtime
        # (~70-120 us of CPU per request measured in-process, a quarter of an uncached point read). One idle for
        # longer than HELD_IDLE_SECONDS goes back through the pool, whose checkout drops connections the server
        # closed (a restarted PostgreSQL); a connection that saw any error is never kept.
        self._held: list[tuple[Any, float]] = []

    async def _acquire(self) -> Any:
        """A connection, with a slot of the gate held: pair with :meth:`_release`."""
        gate = self._gate
        if gate.locked():
            try:
                # asyncio.timeout, not wait_for: no extra Task per statement on the hot path.
                async with asyncio.timeout(self._acquire_timeout):
                    await gate.acquire()
            except TimeoutError as exc:
                raise DatabaseUnavailable("timed out waiting for a database connection") from exc
        else:
            await gate.acquire()  # a free slot: returns at once
        held = self._held
        now = time.monotonic()
        while held:
            conn, since = held.pop()
            if now - since < HELD_IDLE_SECONDS:
                return conn
            conn.close()  # idle too long: back to the pool, which checks it on the next checkout
        try:
            async with asyncio.timeout(self._acquire_timeout):
                return await self._pool.connection()
        except TimeoutError as exc:
            gate.release()
            raise DatabaseUnavailable("timed out waiting for a database connection") from exc
        except DRIVER_ERRORS as exc:
            gate.release()
            raise translate(exc) from exc
        except BaseException:
            gate.release()
            raise

    def _release(self, conn: Any, reusable: bool) -> None:
        try:
            if reusable and not self._closed:
                self._held.append((conn, time.monotonic()))
            else:
                conn.close()
        finally:
            self._gate.release()

    async def _run(self, q: str, params: list[Any] | None, prepared: bool = True) -> Any:
        conn = await self._acquire()
        reusable = False
        try:
            result = await conn.execute(q, params, prepared=prepared)
            reusable = True
            return result
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        finally:
            self._release(conn, reusable)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        conn = await self._acquire()
        reusable = False
        try:
            yield Connection(conn)
            reusable = True
        finally:
            self._release(conn, reusable)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self.connection() as conn, conn.transaction() as tx:
            yield tx

    def status(self) -> dict[str, int]:
        s = self._pool.status()
        return {"max_size": s.max_size, "size": s.size, "available": s.available + len(self._held),
                "waiting": s.waiting}

    def close(self) -> None:
        self._closed = True
        while self._held:
            self._held.pop()[0].close()
        self._pool.close()
