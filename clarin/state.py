"""Everything a worker process shares between requests, built once at start-up."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from clarin.cache import Cache, RedisHandle
from clarin.config import Settings
from clarin.db.pool import Database
from clarin.realtime.broadcaster import Broadcaster
from clarin.realtime.hub import Hub


@dataclass
class AppState:
    settings: Settings
    db: Database
    redis: RedisHandle
    cache: Cache
    hub: Hub
    broadcaster: Broadcaster
    started_at: float = field(default_factory=time.time)
    routes: list[Any] = field(default_factory=list)  # the mounted route table (for OpenAPI)

    @classmethod
    def build(cls, settings: Settings, dsn: str) -> AppState:
        redis = RedisHandle(settings.redis_url)
        hub = Hub()
        return cls(
            settings=settings,
            db=Database(dsn, settings.db_pool_size),
            redis=redis,
            cache=Cache(redis),
            hub=hub,
            broadcaster=Broadcaster(hub, redis, channel=f"{settings.redis_prefix}:ws"),
        )

    async def start(self) -> None:
        await self.redis.start()
        await self.broadcaster.start()

    async def stop(self) -> None:
        self.hub.close_all()
        await self.broadcaster.stop()
        await self.redis.close()
        self.db.close()
