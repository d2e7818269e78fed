"""JWT issue/verify: HS256 only (pinned), 7-day expiry, the original's claim names."""

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


def issue_token(
    secret: str,
    *,
    user_id: str,
    account_id: str,
    username: str,
    is_admin: bool,
    is_super_admin: bool,
    role: str,
    now: float | None = None,
) -> str:
    issued = int(now if now is not None else time.time())
    claims = {
        "user_id": str(user_id),
        "account_id": str(account_id),
        "username": username,
        "is_admin": is_admin,
        "is_super_admin": is_super_admin,
        "role": role,
        "exp": issued + TOKEN_TTL_SECONDS,
        "iat": issued,
        "iss": ISSUER,
    }
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
        )
    except (jwt.PyJWTError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidToken(str(exc)) from exc


def bearer_token(authorization: str, cookie: str) -> str:
    """Header first (``Bearer `` prefix optional), cookie ``auth-token`` as fallback."""
    raw = authorization.strip() or cookie.strip()
    if raw[:7].lower() == "bearer ":
        raw = raw[7:].strip()
    return raw
