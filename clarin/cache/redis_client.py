"""The optional Redis connection: absent or down means "degrade", never "fail the request".

``RedisHandle.client`` is ``None`` when Redis is not configured or currently unreachable. Callers
use ``guard`` to run a command: on a connection error it marks Redis as down and returns the fallback;
long-lived users (the pub/sub loops) call ``report_failure``. Either way an outage is logged once (one
WARNING when it starts, one when it ends, with its duration), never per request; while it lasts a
background probe pings every ``PROBE_INTERVAL`` s and brings Redis back when it answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("clarin.redis")
T = TypeVar("T")

PROBE_INTERVAL = 2.0
# Every command's deadline, enforced here with asyncio.timeout rather than redis-py's socket_timeout: with a
# socket timeout redis-py wraps each send in asyncio.wait_for, which on Python 3.11 swallows a cancellation that
# arrives as the send completes (CPython gh-86296, fixed in 3.12). The cancelled caller then runs on; a Kommo
# sync's page producer did, and blocked forever on a queue nobody read (tests/test_redis_cancel.py).
COMMAND_TIMEOUT = 2.0
# What a command raises when Redis is unreachable or misbehaving: degrade, never fail the request.
CONNECTION_ERRORS = (RedisError, OSError, TimeoutError)


class RedisHandle:
    def __init__(self, url: str | None) -> None:
        self.url = url
        self._client: aioredis.Redis | None = None
        self._pubsub_client: aioredis.Redis | None = None
        self._up = False
        self._down_since: float | None = None  # monotonic start of the current outage (None: none logged)
        self._probe_task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[bool], None]] = []

    @property
    def configured(self) -> bool:
        return self.url is not None

    @property
    def client(self) -> aioredis.Redis | None:
        return self._client if self._up else None

    @property
    def up(self) -> bool:
        return self._up

    def on_state_change(self, listener: Callable[[bool], None]) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        if self.url is None:
            return
        self._client = aioredis.Redis.from_url(
            self.url, socket_timeout=None, socket_connect_timeout=2.0, health_check_interval=30
        )
        # Subscriptions block on reads for as long as the channel is quiet: no socket timeout there.
        self._pubsub_client = aioredis.Redis.from_url(
            self.url, socket_timeout=None, socket_connect_timeout=2.0, health_check_interval=15
        )
        await self._ping()
        if not self._up:
            self._down_since = time.monotonic()
            log.warning("Redis at %s is not reachable; cache and cross-worker fan-out are off until it is", self.url)
        self._probe_task = asyncio.create_task(self._probe_loop())

    async def _ping(self) -> bool:
        assert self._client is not None
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                await self._client.ping()
        except CONNECTION_ERRORS:
            self._set_up(False)
            return False
        self._set_up(True)
        return True

    def _set_up(self, up: bool) -> None:
        if up == self._up:
            return
        self._up = up
        if up:
            if self._down_since is None:
                log.info("Redis is reachable")
            else:
                log.warning("Redis is reachable again after %.1fs; cache and cross-worker fan-out resumed",
                            time.monotonic() - self._down_since)
                self._down_since = None
        for listener in self._listeners:
            listener(up)

    def report_failure(self, exc: BaseException) -> None:
        """A connection-level failure: degrade until the probe reaches Redis again. Logs only the first
        failure of an outage, so callers may report every failure they see."""
        if self._up:
            self._down_since = time.monotonic()
            log.warning("Redis unavailable, degrading until it answers again (cache bypassed, rate limits and "
                        "WebSocket fan-out per process): %s", exc)
        self._set_up(False)

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            if not self._up:
                try:
                    await self._ping()
                except Exception as exc:  # a listener's bug must not end the probe (Redis would never return)
                    log.error("Redis probe failed: %r", exc)

    async def guard(self, command: Callable[[aioredis.Redis], Awaitable[T]], fallback: T) -> T:
        client = self.client
        if client is None:
            return fallback
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                return await command(client)
        except CONNECTION_ERRORS as exc:
            self.report_failure(exc)
            return fallback

    async def close(self) -> None:
        if self._probe_task is not None:
            self._probe_task.cancel()
        for client in (self._client, self._pubsub_client):
            if client is not None:
                try:
                    await client.aclose()
                except Exception:  # closing a dead connection is not worth a traceback
                    pass

    def pubsub(self) -> Any:
        assert self._pubsub_client is not None
        return self._pubsub_client.pubsub(ignore_subscribe_messages=True)
