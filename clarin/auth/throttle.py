"""Failed-login throttling per username and per client IP.

Each failed login (wrong password or unknown user) counts against the username and the client IP for
``window`` seconds from the first failure. Once a counter reaches its limit, logins for that username
(or from that IP) answer 429 ``too many login attempts, try again later`` with ``Retry-After`` until
the window ends — before bcrypt runs, so a blocked attempt costs nothing. A successful login resets
the username counter (not the IP one).

With Redis the counters are shared by every worker and node; without it (or while it is down) each
process counts on its own. Usernames are hashed in the key (bounded size, nothing readable in Redis).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from clarin.cache.redis_client import RedisHandle
from clarin.http.errors import HTTPError

TOO_MANY_ATTEMPTS = "too many login attempts, try again later"
MAX_LOCAL_KEYS = 100_000


class LoginThrottle:
    def __init__(
        self, redis: RedisHandle, prefix: str, *, max_user: int, max_ip: int, window: int
    ) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:login"
        self.max_user = max_user
        self.max_ip = max_ip
        self.window = window
        self._local: dict[str, tuple[int, float]] = {}  # key -> (count, expires_at monotonic)

    @property
    def enabled(self) -> bool:
        return self.max_user > 0 or self.max_ip > 0

    def _keys(self, username: str, ip: str) -> list[tuple[str, int]]:
        keys: list[tuple[str, int]] = []
        # A username that cannot exist (empty, NUL) has no account to protect: only the IP counts.
        if self.max_user > 0 and username and "\x00" not in username:
            digest = hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:32]
            keys.append((f"{self._prefix}:u:{digest}", self.max_user))
        if self.max_ip > 0 and ip:
            keys.append((f"{self._prefix}:ip:{ip}", self.max_ip))
        return keys

    async def check(self, username: str, ip: str) -> None:
        """Raise 429 when the username or the IP has used up its failures."""
        if not self.enabled:
            return
        keys = self._keys(username, ip)
        counts = await self._redis.guard(lambda r: self._redis_read(r, [k for k, _ in keys]), None)
        if counts is None:
            counts = [self._local_read(k) for k, _ in keys]
        retry_after = 0
        for (_, limit), (count, ttl) in zip(keys, counts, strict=True):
            if count >= limit:
                retry_after = max(retry_after, ttl)
        if retry_after:
            raise HTTPError(429, TOO_MANY_ATTEMPTS, headers=[("retry-after", str(retry_after))])

    async def failed(self, username: str, ip: str) -> None:
        if not self.enabled:
            return
        keys = [k for k, _ in self._keys(username, ip)]
        done = await self._redis.guard(lambda r: self._redis_incr(r, keys), None)
        if done is None:
            for key in keys:
                self._local_incr(key)

    async def succeeded(self, username: str) -> None:
        keys = self._keys(username, "")
        if not keys:
            return
        key = keys[0][0]
        self._local.pop(key, None)
        await self._redis.guard(lambda r: r.delete(key), None)

    # -- Redis ------------------------------------------------------------------------------------
    async def _redis_read(self, client: Any, keys: list[str]) -> list[tuple[int, int]]:
        async with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(key)
                pipe.ttl(key)
            raw = await pipe.execute()
        out = []
        for index in range(0, len(raw), 2):
            count = int(raw[index]) if raw[index] is not None else 0
            ttl = int(raw[index + 1])
            out.append((count, ttl if ttl > 0 else self.window))
        return out

    async def _redis_incr(self, client: Any, keys: list[str]) -> bool:
        async with client.pipeline(transaction=True) as pipe:
            for key in keys:
                # The window starts at the first failure (SET NX EX, then INCR: any Redis version).
                pipe.set(key, 0, ex=self.window, nx=True)
                pipe.incr(key)
            await pipe.execute()
        return True

    # -- in-process fallback ----------------------------------------------------------------------
    def _local_read(self, key: str) -> tuple[int, int]:
        entry = self._local.get(key)
        now = time.monotonic()
        if entry is None or entry[1] <= now:
            return 0, 0
        return entry[0], max(1, int(entry[1] - now + 0.999))

    def _local_incr(self, key: str) -> None:
        now = time.monotonic()
        entry = self._local.get(key)
        if entry is None or entry[1] <= now:
            if len(self._local) >= MAX_LOCAL_KEYS:
                self._local = {k: v for k, v in self._local.items() if v[1] > now}
            self._local[key] = (1, now + self.window)
        else:
            self._local[key] = (entry[0] + 1, entry[1])
