"""JWT issue/verify: HS256 only (pinned), 7-day expiry, the original's claim names.

Every token carries ``sid``, its login session (a ``user_sessions`` row: logout revokes that one row, a
password change every other row of the user), and ``tv``, the user's ``users.token_version`` when it was
issued: deactivation, an admin password reset, role changes and membership removal bump the version,
which ends every session at once. Both are checked per request by ``clarin.auth.revocation.TokenGuard``.
Tokens issued before ``sid`` existed (``session_id`` None here) are refused there: one re-login after the
upgrade, instead of tokens that no logout or password change could end."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

ALGORITHM = "HS256"
ISSUER = "clarin"
TOKEN_TTL_SECONDS = 7 * 24 * 3600
COOKIE_NAME = "auth-token"


class InvalidToken(Exception):
    pass


@dataclass(frozen=True, slots=True)
class AuthContext:
    user_id: uuid.UUID
    account_id: uuid.UUID
    username: str
    is_admin: bool
    is_super_admin: bool
    role: str
    claims: dict[str, Any]
    token_version: int = 0
    session_id: uuid.UUID | None = None


def issue_token(
    secret: str,
    *,
    user_id: str,
    account_id: str,
    username: str,
    is_admin: bool,
    is_super_admin: bool,
    role: str,
    token_version: int = 0,
    session_id: str | None = None,
    now: float | None = None,
    expires_at: int | None = None,
) -> str:
    issued = int(now if now is not None else time.time())
    claims = {
        "user_id": str(user_id),
        "account_id": str(account_id),
        "username": username,
        "is_admin": is_admin,
        "is_super_admin": is_super_admin,
        "role": role,
        "exp": expires_at if expires_at is not None else issued + TOKEN_TTL_SECONDS,
        "iat": issued,
        "iss": ISSUER,
        "tv": int(token_version),
    }
    if session_id is not None:
        claims["sid"] = str(session_id)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str) -> AuthContext:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "user_id", "account_id"]},
        )
        return AuthContext(
            user_id=uuid.UUID(claims["user_id"]),
            account_id=uuid.UUID(claims["account_id"]),
            username=str(claims.get("username", "")),
            is_admin=bool(claims.get("is_admin", False)),
            is_super_admin=claims.get("is_super_admin") is True,
            role=str(claims.get("role", "")),
            claims=claims,
            token_version=_token_version(claims.get("tv", 0)),
            session_id=_session_id(claims.get("sid")),
        )
    except (jwt.PyJWTError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidToken(str(exc)) from exc


class TokenVerifier:
    """``verify_token`` with a per-process memo of tokens already verified.

    PyJWT spends ~50-80 µs per HS256 verification (most of it outside the HMAC itself); a dashboard
    sends the same token on every request. The memo key is the exact token string that passed the
    signature check, so a hit is as trustworthy as a fresh check; the expiry is re-checked on every hit.
    Revocation is not this cache's business (``clarin.auth.revocation`` runs after it). Bounded: cleared
    when it reaches ``max_entries``."""

    def __init__(self, secret: str, max_entries: int = 10_000) -> None:
        self._secret = secret
        self._max = max_entries
        self._verified: dict[str, tuple[AuthContext, int]] = {}

    def verify(self, token: str) -> AuthContext:
        hit = self._verified.get(token)
        if hit is not None:
            if hit[1] > time.time():
                return hit[0]
            del self._verified[token]
        auth = verify_token(self._secret, token)
        expires = auth.claims.get("exp")
        if type(expires) is int:
            if len(self._verified) >= self._max:
                self._verified.clear()
            self._verified[token] = (auth, expires)
        return auth


def _token_version(value: Any) -> int:
    # bool is an int subclass: a forged ``"tv": true`` must not pass as version 1.
    if type(value) is not int:
        raise ValueError("tv must be an integer")
    return value


def _session_id(value: Any) -> uuid.UUID | None:
    if value is None:
        return None
    if type(value) is not str:
        raise ValueError("sid must be a string")
    return uuid.UUID(value)


def bearer_token(authorization: str, cookie: str) -> str:
    """Header first (``Bearer `` prefix optional), cookie ``auth-token`` as fallback."""
    raw = authorization.strip() or cookie.strip()
    if raw[:7].lower() == "bearer ":
        raw = raw[7:].strip()
    return raw
