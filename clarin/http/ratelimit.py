"""Fixed-window rate limiting per client IP.

With Redis the counters are shared by every worker and node (INCR + EXPIRE in one pipeline);
without it (or while it is down) each process counts on its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from clarin.cache.redis_client import RedisHandle

LIMITED_MESSAGE = "too many requests, please slow down"


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_in: int

    def headers(self) -> list[tuple[str, str]]:
        return [
            ("x-ratelimit-limit", str(self.limit)),
            ("x-ratelimit-remaining", str(self.remaining)),
            ("x-ratelimit-reset", str(self.reset_in)),
        ]


class RateLimiter:
    def __init__(self, limit: int, window_seconds: int, redis: RedisHandle, prefix: str = "clarin") -> None:
        self.limit = limit
        self._prefix = prefix
        self.window = window_seconds
        self._redis = redis
        self._local: dict[str, int] = {}
        self._local_window = -1

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    async def hit(self, key: str) -> Verdict:
        now = time.time()
        window_index = int(now // self.window)
        reset_in = max(1, int((window_index + 1) * self.window - now))
        count = await self._redis.guard(lambda r: self._redis_incr(r, key, window_index), None)
        if count is None:
            count = self._local_incr(key, window_index)
        remaining = max(0, self.limit - count)
        return Verdict(count <= self.limit, self.limit, remaining, reset_in)

    async def _redis_incr(self, client, key: str, window_index: int) -> int:  # type: ignore[no-untyped-def]
        redis_key = f"{self._prefix}:ratelimit:{window_index}:{key}"
        async with client.pipeline(transaction=False) as pipe:
            pipe.incr(redis_key)
            pipe.expire(redis_key, self.window + 1)
            count, _ = await pipe.execute()
        return int(count)

    def _local_incr(self, key: str, window_index: int) -> int:
        if window_index != self._local_window:
            self._local.clear()
            self._local_window = window_index
        count = self._local.get(key, 0) + 1
        self._local[key] = count
        return count
