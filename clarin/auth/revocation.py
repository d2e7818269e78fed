"""Per-request token revocation check: ``tv`` against ``users.token_version``, user and account active.

The common case is two dict hits in this process: each worker caches, per user, ``(token_version,
is_active, is_super_admin)`` and, per account, ``is_active`` for ``ttl`` seconds (``AUTH_CACHE_TTL``,
default 2). A change that revokes access (logout, password change, deactivation, role change, delete,
membership removal, account toggle) drops the entry in this process at once and publishes the id on
``<REDIS_PREFIX>:auth``; every worker subscribed there drops it too, so the next request of that user
reads the database. Without Redis (or while it is down) other workers notice within ``ttl``.

A fill that raced with an invalidation (the query started before the change committed) is used for
that one request but not cached: ``_epoch`` counts invalidations seen by this process.

Verdicts: unknown/deactivated user, unknown account or a stale ``tv`` → 401 ``Invalid token``; a
deactivated account → 403 ``account disabled`` (super admins are exempt so that disabling their home
account cannot lock out the only people able to enable it again).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from clarin.cache.redis_client import CONNECTION_ERRORS
from clarin.db.queries import query
from clarin.http.errors import HTTPError

if TYPE_CHECKING:
    from clarin.auth.tokens import AuthContext
    from clarin.cache.redis_client import RedisHandle
    from clarin.db.pool import Database

log = logging.getLogger("clarin.auth")

Q_TOKEN_STATE = query("auth_token_state")

INVALID_TOKEN = "Invalid token"
ACCOUNT_DISABLED = "account disabled"
MAX_ENTRIES = 50_000  # per map; expired entries are swept when it is exceeded
_USER, _ACCOUNT = "u", "a"

# (expires_at, token_version, is_active, is_super_admin)
UserEntry = tuple[float, int, bool, bool]
# (expires_at, is_active)
AccountEntry = tuple[float, bool]


class TokenGuard:
    def __init__(self, db: Database, redis: RedisHandle, channel: str, ttl: float) -> None:
        self._db = db
        self._redis = redis
        self.channel = channel
        self.ttl = ttl
        self._users: dict[uuid.UUID, UserEntry] = {}
        self._accounts: dict[uuid.UUID, AccountEntry] = {}
        self._epoch = 0
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.hits = 0
        self.misses = 0

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        if self._redis.configured:
            self._task = asyncio.create_task(self._subscribe_loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    async def wait_subscribed(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # -- the per-request check -----------------------------------------------------------------
    async def check(self, auth: AuthContext) -> None:
        """Raise 401/403 unless the token is still valid; a dict hit when the cache is warm."""
        now = time.monotonic()
        user = self._users.get(auth.user_id)
        account = self._accounts.get(auth.account_id)
        if user is None or account is None or user[0] < now or account[0] < now:
            self.misses += 1
            user, account = await self._load(auth.user_id, auth.account_id, now)
        else:
            self.hits += 1
        _judge(auth, user, account)

    async def _load(
        self, user_id: uuid.UUID, account_id: uuid.UUID, now: float
    ) -> tuple[UserEntry | None, AccountEntry | None]:
        epoch = self._epoch
        row = await self._db.fetch_row(Q_TOKEN_STATE, [user_id, account_id])
        if row is None:
            return None, None
        expires = now + self.ttl
        user: UserEntry = (expires, int(row["token_version"]), bool(row["user_active"]), bool(row["is_super_admin"]))
        active = row["account_active"]
        account: AccountEntry | None = None if active is None else (expires, bool(active))
        if self.ttl > 0 and epoch == self._epoch:
            _store(self._users, user_id, user, now)
            if account is not None:
                _store(self._accounts, account_id, account, now)
        return user, account

    # -- invalidation --------------------------------------------------------------------------
    async def revoke_user(self, user_id: uuid.UUID | str) -> None:
        """Forget the user here and tell every other worker (call after the change committed)."""
        await self._invalidate(_USER, _as_uuid(user_id))

    async def revoke_account(self, account_id: uuid.UUID | str) -> None:
        await self._invalidate(_ACCOUNT, _as_uuid(account_id))

    async def _invalidate(self, kind: str, key: uuid.UUID) -> None:
        self._drop(kind, key)
        if self._redis.configured:
            message = f"{kind}:{key}"
            await self._redis.guard(lambda r: r.publish(self.channel, message), None)

    def _drop(self, kind: str, key: uuid.UUID) -> None:
        self._epoch += 1
        if kind == _USER:
            self._users.pop(key, None)
        elif kind == _ACCOUNT:
            self._accounts.pop(key, None)

    def clear(self) -> None:
        self._epoch += 1
        self._users.clear()
        self._accounts.clear()

    def _on_message(self, raw: Any) -> None:
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        kind, _, ident = text.partition(":")
        try:
            self._drop(kind, uuid.UUID(ident))
        except ValueError:
            log.debug("ignoring malformed auth invalidation %r", text)

    async def _subscribe_loop(self) -> None:
        while True:
            if not self._redis.up:
                self._subscribed.clear()
                await asyncio.sleep(0.5)
                continue
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                # Whatever changed while we were not listening is unknown: start from the database.
                self.clear()
                self._subscribed.set()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._on_message(message["data"])
            except asyncio.CancelledError:
                self._subscribed.clear()
                await _close_quietly(pubsub)
                raise
            except Exception as exc:
                self._subscribed.clear()
                if isinstance(exc, CONNECTION_ERRORS):
                    self._redis.report_failure(exc)  # once per outage; the probe brings Redis back
                else:
                    log.warning("auth invalidation channel lost (%s); cache entries now expire after %.1fs",
                                exc, self.ttl)
                await _close_quietly(pubsub)
                await asyncio.sleep(0.5)


def _judge(auth: AuthContext, user: UserEntry | None, account: AccountEntry | None) -> None:
    if user is None or not user[2] or user[1] != auth.token_version or account is None:
        raise HTTPError(401, INVALID_TOKEN)
    if not account[1] and not user[3]:
        raise HTTPError(403, ACCOUNT_DISABLED)


def _store(table: dict[uuid.UUID, Any], key: uuid.UUID, entry: Any, now: float) -> None:
    if len(table) >= MAX_ENTRIES:
        for stale in [k for k, v in table.items() if v[0] < now]:
            del table[stale]
        if len(table) >= MAX_ENTRIES:
            table.clear()
    table[key] = entry


def _as_uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


async def _close_quietly(pubsub: Any) -> None:
    try:
        await pubsub.aclose()
    except Exception:
        pass
