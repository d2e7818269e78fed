"""The one Kommo request budget of the installation (spec A.2 / A.19: ≥ 200 ms between request starts).

Algorithm: GCRA used as a *reservation* scheduler (a token bucket of capacity 1, i.e. no burst, like the
original's minimum-spacing limiter). One value, the theoretical arrival time ``tat``, says when the next
request may start; every caller reserves the slot at ``max(tat, now)``, moves ``tat`` one emission interval
further and sleeps until its slot. Callers are never refused, only delayed, and a cancelled caller merely
leaves a gap.

Scope: with Redis configured (and up) ``tat`` lives in one Redis key updated by a Lua script that reads the
Redis server clock (``TIME``), so every worker process and node shares the budget and their clocks never
matter. Without Redis, or while it is down, the same algorithm runs in-process (each process then has the
whole budget for itself; the fallback is logged by the Redis handle).

Headroom: Kommo counts requests when they *arrive*; two requests paced exactly 1/rate apart can land in the
same counting window when the first one is delayed by the network. The emission interval is therefore
``(1 + headroom) / rate`` (``KOMMO_RATE_HEADROOM``, default 5 %: 210 ms at the default 5 req/s), which keeps
the arrival rate within budget as long as arrival jitter stays under ``headroom`` seconds (50 ms).

``penalize(seconds)`` pushes the shared ``tat`` forward (a 429 with ``Retry-After``): every caller in every
process then waits, not only the one that was told to.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from clarin.cache.redis_client import RedisHandle

HEADROOM = 0.05

# KEYS[1] = tat key; ARGV[1] = emission interval (µs). Returns how long the caller waits (µs).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local nxt = tat + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%d', nxt), 'PX', math.floor((nxt - now) / 1000) + 1000)
return tat - now
"""

# KEYS[1] = tat key; ARGV[1] = pause (µs). Nobody starts a request before now + pause.
_PENALIZE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local untl = now + tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < untl then
  redis.call('SET', KEYS[1], string.format('%d', untl), 'PX', math.floor((untl - now) / 1000) + 1000)
end
return 0
"""


class RateLimiter:
    def __init__(
        self, rate: float, redis: RedisHandle | None = None, key: str = "clarin:kommo:ratelimit",
        headroom: float = HEADROOM,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.interval = (1.0 + max(0.0, headroom)) / rate
        self._redis = redis
        self._key = key
        self._tat = 0.0  # in-process fallback (time.monotonic() based)

    @property
    def shared(self) -> bool:
        return self._redis is not None and self._redis.up

    async def acquire(self) -> None:
        """Wait for this caller's slot."""
        wait = await self._reserve()
        if wait > 0:
            await asyncio.sleep(wait)

    async def penalize(self, seconds: float) -> None:
        if seconds <= 0:
            return
        micros = int(seconds * 1_000_000)
        done = None
        if self._redis is not None:
            done = await self._redis.guard(lambda r: r.eval(_PENALIZE, 1, self._key, micros), None)
        if done is None:
            self._tat = max(self._tat, time.monotonic() + seconds)

    async def _reserve(self) -> float:
        if self._redis is not None:
            micros: Any = await self._redis.guard(
                lambda r: r.eval(_RESERVE, 1, self._key, int(self.interval * 1_000_000)), None
            )
            if micros is not None:
                return int(micros) / 1_000_000
        now = time.monotonic()
        tat = max(self._tat, now)
        self._tat = tat + self.interval
        return tat - now
