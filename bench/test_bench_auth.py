"""Benchmarks: what the token revocation check adds to every authenticated request.

Run: ``pytest bench/test_bench_auth.py --benchmark-only``. ``baseline`` is the request auth before
revocation existed (header parsing + a PyJWT HS256 verification); ``with_revocation_check`` adds the
warm-cache revocation check (a few dict hits: user, account, membership, session); ``revocation_check_only`` is that difference alone;
``server_path`` is what the server now runs per request: the memoised verification
(``TokenVerifier``: a token string already verified is a dict hit plus an expiry check) and the check.

The warm path must never reach the database: the stand-in database below answers the one fill and
counts calls, and the coroutine is driven without an event loop, so any suspension (I/O) fails loudly.
"""

from __future__ import annotations

import uuid
from collections.abc import Coroutine
from typing import Any

import pytest

from clarin.auth.revocation import TokenGuard
from clarin.auth.tokens import AuthContext, TokenVerifier, bearer_token, issue_token, verify_token
from clarin.cache.redis_client import RedisHandle

SECRET = "bench-secret-" + "x" * 32
USER_ID = uuid.uuid4()
ACCOUNT_ID = uuid.uuid4()


class _FillOnce:
    """Answers the cache fill; the benchmarks then assert it was asked exactly once."""

    def __init__(self) -> None:
        self.calls = 0

    async def fetch_row(self, q: Any, params: Any = None) -> dict[str, Any]:
        self.calls += 1
        return {"token_version": 3, "user_active": True, "is_super_admin": False, "account_active": True,
                "is_member": True, "session_active": True}


def _drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (the warm path) without an event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise AssertionError("the warm path suspended (it reached I/O)")


def _warm_guard() -> tuple[TokenGuard, _FillOnce]:
    db = _FillOnce()
    guard = TokenGuard(db, RedisHandle(None), "bench:auth", ttl=3600.0)  # type: ignore[arg-type]
    return guard, db


def _fill(guard: TokenGuard, auth: AuthContext) -> None:
    import asyncio

    asyncio.run(guard.check(auth))


TOKEN = issue_token(SECRET, user_id=str(USER_ID), account_id=str(ACCOUNT_ID), username="bench", is_admin=True,
                    is_super_admin=False, role="admin", token_version=3, session_id=str(uuid.uuid4()))
HEADER = f"Bearer {TOKEN}"


def _baseline() -> AuthContext:
    return verify_token(SECRET, bearer_token(HEADER, ""))


@pytest.mark.benchmark(group="request-auth")
def test_baseline_verify_only(benchmark: Any) -> None:
    auth = benchmark(_baseline)
    assert auth.token_version == 3


@pytest.mark.benchmark(group="request-auth")
def test_with_revocation_check_warm(benchmark: Any) -> None:
    guard, db = _warm_guard()
    _fill(guard, _baseline())

    def authenticate() -> AuthContext:
        auth = verify_token(SECRET, bearer_token(HEADER, ""))
        _drive(guard.check(auth))
        return auth

    benchmark(authenticate)
    assert db.calls == 1
    assert guard.misses == 1 and guard.hits > 0


@pytest.mark.benchmark(group="revocation-check")
def test_revocation_check_only_warm(benchmark: Any) -> None:
    guard, db = _warm_guard()
    auth = _baseline()
    _fill(guard, auth)
    benchmark(lambda: _drive(guard.check(auth)))
    assert db.calls == 1


@pytest.mark.benchmark(group="request-auth")
def test_server_path_memoised_verify_and_check(benchmark: Any) -> None:
    guard, db = _warm_guard()
    verifier = TokenVerifier(SECRET)
    _fill(guard, verifier.verify(bearer_token(HEADER, "")))

    def authenticate() -> AuthContext:
        auth = verifier.verify(bearer_token(HEADER, ""))
        _drive(guard.check(auth))
        return auth

    assert benchmark(authenticate).user_id == USER_ID
    assert db.calls == 1

