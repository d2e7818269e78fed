"""bcrypt hashing (cost 10, as the original) run off the event loop: a hash costs ~50 ms of CPU.

bcrypt reads only the first 72 bytes of a password (bcrypt 5 refuses longer input). Rather than let
two passwords that share 72 bytes count as equal, every path that sets a password rejects more than
``MAX_PASSWORD_BYTES`` UTF-8 bytes (400, or a start-up error for ``ADMIN_PASSWORD``), and a longer
password at login is simply wrong (401). No pre-hash: stored hashes stay plain bcrypt."""

from __future__ import annotations

import asyncio

import bcrypt

from clarin.auth.secret import MAX_PASSWORD_BYTES

BCRYPT_COST = 10
# A real hash of a random password: checking against it when the user does not exist costs the same
# time as a real check, so response time does not reveal which usernames exist.
_DUMMY_HASH = bcrypt.hashpw(b"clarin-timing-equaliser", bcrypt.gensalt(BCRYPT_COST))
_TIMING_PROBE = b"clarin-too-long-password"


class PasswordTooLong(ValueError):
    def __init__(self) -> None:
        super().__init__(f"password must be at most {MAX_PASSWORD_BYTES} bytes (UTF-8)")


def too_long(password: str) -> bool:
    return len(password.encode()) > MAX_PASSWORD_BYTES


def hash_password_sync(password: str) -> str:
    raw = password.encode()
    if len(raw) > MAX_PASSWORD_BYTES:
        raise PasswordTooLong()
    return bcrypt.hashpw(raw, bcrypt.gensalt(BCRYPT_COST)).decode()


def verify_password_sync(password: str, password_hash: str | None) -> bool:
    raw = password.encode()
    target = password_hash.encode() if password_hash else _DUMMY_HASH
    if len(raw) > MAX_PASSWORD_BYTES:
        # No stored password can be this long: wrong, but after the same bcrypt work as any other attempt.
        bcrypt.checkpw(_TIMING_PROBE, _DUMMY_HASH)
        return False
    try:
        ok = bcrypt.checkpw(raw, target)
    except ValueError:
        return False
    return ok and password_hash is not None


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(hash_password_sync, password)


async def verify_password(password: str, password_hash: str | None) -> bool:
    return await asyncio.to_thread(verify_password_sync, password, password_hash)
