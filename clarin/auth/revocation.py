"""Per-request token revocation check: session, ``tv``, privileges and membership against the database.

A token is valid while its session row (``sid``) is open, its ``tv`` equals ``users.token_version``, the
user is active, still belongs to the token's account, and is still a super admin if the token says so
(privilege claims are not trusted alone: a token whose claims were true yesterday loses super-admin or a
tenant today). Tokens without ``sid`` (issued before sessions existed) are refused.

The common case is dict hits in this process: each worker caches, per user, ``(token_version, is_active,
is_super_admin)`` plus the memberships and sessions already seen, and per account ``is_active``, for
``ttl`` seconds (``AUTH_CACHE_TTL``, default 2). A change that revokes access (logout, password change,
deactivation, role change, delete, membership removal, account toggle) drops the entry in this process at
once and publishes the id on ``<REDIS_PREFIX>:auth``; every worker subscribed there drops it too, so the
next request of that user reads the database. Without Redis (or while it is down) other workers notice
within ``ttl``. Listeners (the open WebSockets, ``clarin.realtime.authwatch``) hear every drop.

A fill that raced with an invalidation (the query started before the change committed) is used for
that one request but not cached: ``_epoch`` counts invalidations seen by this process.

Verdicts: unknown/deactivated user, revoked or unknown session, stale ``tv`` or super-admin claim, lost
membership or unknown account → 401 ``Invalid token``; a deactivated account → 403 ``account disabled``
(super admins, per the database, are exempt so that disabling their home account cannot lock out the
only people able to enable it again).

Expired session rows are deleted here too, in bounded batches (``sweep_expired``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from clarin.cache.subscription import subscribe_forever
from clarin.db.queries import query
from clarin.http.errors import HTTPError

if TYPE_CHECKING:
    from clarin.auth.tokens import AuthContext
    from clarin.cache.redis_client import RedisHandle
    from clarin.db.pool import Database

log = logging.getLogger("clarin.auth")

Q_TOKEN_STATE = query("auth_token_state")
Q_SWEEP_SESSIONS = query("sweep_expired_sessions")

INVALID_TOKEN = "Invalid token"
ACCOUNT_DISABLED = "account disabled"
MAX_ENTRIES = 50_000  # per map; expired entries are swept when it is exceeded
_USER, _ACCOUNT, _ALL = "u", "a", "*"
SWEEP_INTERVAL = 600.0  # seconds between sweeps of expired session rows (per worker; they are idempotent)
SWEEP_BATCH = 1000  # rows per statement
SWEEP_MAX_BATCHES = 10  # per sweep: a backlog drains over several sweeps, never in one long burst

# (expires_at, is_active)
AccountEntry = tuple[float, bool]
# Hears every cache drop: (kind "u" | "a" | "*", id or None for "*").
Listener = Callable[[str, "uuid.UUID | None"], None]


class UserEntry:
    """One user's state from the database, with the memberships and sessions already asked about."""

    __slots__ = ("active", "expires", "members", "sessions", "super_admin", "version")

    def __init__(self, expires: float, version: int, active: bool, super_admin: bool) -> None:
        self.expires = expires
        self.version = version
        self.active = active
        self.super_admin = super_admin
        self.members: dict[uuid.UUID, bool] = {}
        self.sessions: dict[uuid.UUID, bool] = {}

    def same_flags(self, other: UserEntry) -> bool:
        return (self.version, self.active, self.super_admin) == (other.version, other.active, other.super_admin)


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
        self._sweeper: asyncio.Task[None] | None = None
        self._listeners: list[Listener] = []
        self.hits = 0
        self.misses = 0

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        if self._redis.configured:
            self._task = asyncio.create_task(self._subscribe_loop())
        self._sweeper = asyncio.create_task(self._sweep_loop())

    async def stop(self) -> None:
        for task in (self._task, self._sweeper):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        self._task = self._sweeper = None

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def wait_subscribed(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._subscribed.wait()
        except TimeoutError:
            return False
        return True

    # -- the per-request check -----------------------------------------------------------------
    async def check(self, auth: AuthContext) -> None:
        """Raise 401/403 unless the token is still valid; dict hits when the cache is warm."""
        session = auth.session_id
        if session is None:  # issued before sessions existed: nothing could ever revoke it alone
            raise HTTPError(401, INVALID_TOKEN)
        now = time.monotonic()
        user = self._users.get(auth.user_id)
        account = self._accounts.get(auth.account_id)
        if (
            user is None or account is None or user.expires < now or account[0] < now
            or auth.account_id not in user.members or session not in user.sessions
        ):
            self.misses += 1
            user, account = await self._load(auth.user_id, auth.account_id, session, now)
        else:
            self.hits += 1
        _judge(auth, user, account)

    async def _load(
        self, user_id: uuid.UUID, account_id: uuid.UUID, session_id: uuid.UUID, now: float
    ) -> tuple[UserEntry | None, AccountEntry | None]:
        epoch = self._epoch
        row = await self._db.fetch_row(Q_TOKEN_STATE, [user_id, account_id, session_id])
        if row is None:
            return None, None
        expires = now + self.ttl
        user = UserEntry(expires, int(row["token_version"]), bool(row["user_active"]), bool(row["is_super_admin"]))
        active = row["account_active"]
        account: AccountEntry | None = None if active is None else (expires, bool(active))
        if self.ttl > 0 and epoch == self._epoch:
            cached = self._users.get(user_id)
            # Nothing was invalidated since that entry was filled: it is as current as this row, so the
            # user's other sessions and memberships stay cached (two devices do not evict each other).
            if cached is not None and cached.expires >= now and cached.same_flags(user):
                user = cached
            else:
                _store(self._users, user_id, user, now)
            if account is not None:
                _store(self._accounts, account_id, account, now)
        user.members[account_id] = bool(row["is_member"])
        user.sessions[session_id] = bool(row["session_active"])
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
        else:
            return
        self._notify(kind, key)

    def clear(self) -> None:
        self._epoch += 1
        self._users.clear()
        self._accounts.clear()
        self._notify(_ALL, None)

    def _notify(self, kind: str, key: uuid.UUID | None) -> None:
        for listener in self._listeners:
            try:
                listener(kind, key)
            except Exception:
                log.exception("auth revocation listener failed")

    # -- expired sessions ------------------------------------------------------------------------
    async def sweep_expired(self) -> int:
        """Delete expired session rows, at most SWEEP_BATCH × SWEEP_MAX_BATCHES per call."""
        removed = 0
        for _ in range(SWEEP_MAX_BATCHES):
            batch = len(await self._db.fetch(Q_SWEEP_SESSIONS, [SWEEP_BATCH]))
            removed += batch
            if batch < SWEEP_BATCH:
                break
        return removed

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                await self.sweep_expired()
            except Exception as exc:  # the next sweep tries again; logins also clear their user's rows
                log.warning("expired session sweep failed: %s", exc)

    def _on_message(self, raw: Any) -> None:
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        kind, _, ident = text.partition(":")
        try:
            self._drop(kind, uuid.UUID(ident))
        except ValueError:
            log.debug("ignoring malformed auth invalidation %r", text)

    async def _subscribe_loop(self) -> None:
        def subscribed() -> None:
            # Whatever changed while we were not listening is unknown: start from the database.
            self.clear()
            self._subscribed.set()

        await subscribe_forever(
            self._redis, self.channel, self._on_message, on_subscribed=subscribed, on_lost=self._subscribed.clear,
            lost_warning=f"auth invalidation channel lost (%s); cache entries now expire after {self.ttl:.1f}s",
        )


def _judge(auth: AuthContext, user: UserEntry | None, account: AccountEntry | None) -> None:
    if (
        user is None or not user.active or user.version != auth.token_version or account is None
        or not user.sessions.get(auth.session_id)  # type: ignore[arg-type]  # None was refused in check()
        or not user.members.get(auth.account_id)
        or (auth.is_super_admin and not user.super_admin)
    ):
        raise HTTPError(401, INVALID_TOKEN)
    if not account[1] and not user.super_admin:
        raise HTTPError(403, ACCOUNT_DISABLED)


def _store(table: dict[uuid.UUID, Any], key: uuid.UUID, entry: Any, now: float) -> None:
    if len(table) >= MAX_ENTRIES:
        for stale in [k for k, v in table.items() if _expiry(v) < now]:
            del table[stale]
        if len(table) >= MAX_ENTRIES:
            table.clear()
    table[key] = entry


def _expiry(entry: Any) -> float:
    return entry.expires if isinstance(entry, UserEntry) else entry[0]


def _as_uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))

