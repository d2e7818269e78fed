"""bcrypt hashing (cost 10, as the original) run off the event loop: a hash costs ~50 ms of CPU."""

from __future__ import annotations

import asyncio

import bcrypt

BCRYPT_COST = 10
# A real hash of a random password: checking against it when the user does not exist costs the same
# time as a real check, so response time does not reveal which usernames exist.
_DUMMY_HASH = bcrypt.hashpw(b"clarin-timing-equaliser", bcrypt.gensalt(BCRYPT_COST))


def hash_password_sync(password: str) -> str:
    return bcrypt.hashpw(password.encode()[:72], bcrypt.gensalt(BCRYPT_COST)).decode()


def verify_password_sync(password: str, password_hash: str | None) -> bool:
    target = password_hash.encode() if password_hash else _DUMMY_HASH
    try:
        ok = bcrypt.checkpw(password.encode()[:72], target)
    except ValueError:
        return False
    return ok and password_hash is not None


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(hash_password_sync, password)


async def verify_password(password: str, password_hash: str | None) -> bool:
    return await asyncio.to_thread(verify_password_sync, password, password_hash)
