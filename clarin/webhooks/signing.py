"""``X-Clarin-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`` and the payload body."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_hex(24)


def signature(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, header: str, tolerance: float = 300.0, now: float | None = None) -> bool:
    """What a receiver does (docs/WEBHOOKS.md); used by the tests."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = hmac.new(secret.encode(), str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


def body(event_id: str, event: str, account_id: str, occurred_at: str, data_json: str) -> bytes:
    """``{id, event, account_id, occurred_at, data}``; ``data_json`` is the stored JSON text, spliced in as is.
    The other values are uuids, event names and an ISO timestamp: no character needs escaping."""
    return (
        f'{{"id":"{event_id}","event":"{event}","account_id":"{account_id}",'
        f'"occurred_at":"{occurred_at}","data":{data_json}}}'
    ).encode()
