"""The optional Redis connection: absent or down means "degrade", never "fail the request".

``RedisHandle.client`` is ``None`` when Redis is not configured or currently unreachable. Callers
use ``guard`` to run a command: on a connection error it logs once, marks Redis as down, returns the
fallback, and a background probe brings it back when Redis answers again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("clarin.redis")
T = TypeVar("T")

PROBE_INTERVAL = 2.0


class RedisHandle:
    def __init__(self, url: str | None) -> None:
        self.url = url
        self._client: aioredis.Redis | None = None
        self._pubsub_client: aioredis.Redis | None = None
        self._up = False
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
            self.url, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=30
        )
        # Subscriptions block on reads for as long as the channel is quiet: no socket timeout there.
        self._pubsub_client = aioredis.Redis.from_url(
            self.url, socket_timeout=None, socket_connect_timeout=2.0, health_check_interval=15
        )
        await self._ping()
        if not self._up:
            log.warning("Redis at %s is not reachable; cache and cross-worker fan-out are off until it is", self.url)
        self._probe_task = asyncio.create_task(self._probe_loop())

    async def _ping(self) -> bool:
        assert self._client is not None
        try:
            await asyncio.wait_for(self._client.ping(), 2.0)
        except (RedisError, OSError, TimeoutError):
            self._set_up(False)
            return False
        self._set_up(True)
        return True

    def _set_up(self, up: bool) -> None:
        if up == self._up:
            return
        self._up = up
        if up:
            log.info("Redis is reachable")
        for listener in self._listeners:
            listener(up)

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            if not self._up:
                await self._ping()

    async def guard(self, command: Callable[[aioredis.Redis], Awaitable[T]], fallback: T) -> T:
        client = self.client
        if client is None:
            return fallback
        try:
            return await command(client)
        except (RedisError, OSError, TimeoutError) as exc:
            if self._up:
                log.warning("Redis error, degrading until it answers again: %s", exc)
            self._set_up(False)
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
