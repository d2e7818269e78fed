"""``Idempotency-Key`` on the routes that send (R27–R30, forward) and on campaign starts.

A client that did not get an answer (timeout, 5xx) retries with the same key; the retry never sends twice:

- The key (1–255 printable ASCII characters, else ``400 Invalid Idempotency-Key``) is claimed per account in its
  own statement before anything else happens (``idempotency_keys``, primary key ``(account_id, key)``), with a
  random claim token. Only the claimant may link a pending message to it, store its answer or release it.
- A send links its pending ``messages`` row to the key in the statement that inserts the row, before the driver
  is called (clarin.messaging.outbound); the final statement (sent / not sent) stores the answer with it, also
  when it runs on the device's owner process (the claim travels with the routed call) and also when it is held
  and retried through a database outage (clarin.whatsapp.held).
- A repeat finds the key: a stored answer is replayed byte for byte (same status, ``Idempotent-Replayed: true``)
  and nothing runs; the same key on another route or campaign is ``422``; a key whose first request is still in
  flight, or whose message was handed to WhatsApp but whose outcome is not recorded yet (the owner process
  is writing it, or died), is ``409 request with this Idempotency-Key is in progress`` with ``Retry-After: 1``.
  Nothing is run again while a message is linked.
- A request that ended before anything was handed to WhatsApp (validation 4xx, 404, 409 device not connected,
  503 database/Redis unavailable, 504 before the owner linked a message) releases its key: a retry runs afresh.
  A release PostgreSQL cannot take is retried until it lands (clarin.whatsapp.held); a claim left behind anyway
  (the process died) is taken over after ``STALE_SECONDS``; a late link by the old request then fails and it
  sends nothing.
- Keys are kept ``TTL_SECONDS`` (24 h); expired rows of an account are purged in batches of ``PURGE_BATCH`` when
  that account uses a key (at most once a minute per process), and all of an account's rows go with it.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from clarin.db.errors import DatabaseUnavailable
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.http.json import encode
from clarin.http.response import RawJSONResponse, Response

if TYPE_CHECKING:
    from clarin.db.pool import Database
    from clarin.http.request import Request
    from clarin.whatsapp.held import HeldWrites

log = logging.getLogger("clarin.messaging.idempotency")

HEADER = "idempotency-key"
MAX_KEY = 255
TTL_SECONDS = 24 * 3600
STALE_SECONDS = 60.0  # longer than any live request (routed call timeout 30 s + a media download 30 s)
PURGE_BATCH = 500
PURGE_EVERY = 60.0
IN_PROGRESS = "request with this Idempotency-Key is in progress"
OTHER_REQUEST = "Idempotency-Key was already used for another request"
INVALID_KEY = "Invalid Idempotency-Key"
REPLAYED = ("idempotent-replayed", "true")

Q_CLAIM = query("idempotency_claim")
Q_GET = query("idempotency_get")
Q_TAKE_OVER = query("idempotency_take_over")
Q_COMPLETE = query("idempotency_complete")
Q_RELEASE = query("idempotency_release")
Q_PURGE = query("idempotency_purge")

# How the header is documented (clarin/http/openapi.py reads ``header_parameters`` of a handler).
HEADER_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Repeat-safe retries: the first answer for this key (per account, kept 24 h) is replayed and "
                   "nothing is sent again; 409 while the first request is in progress.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY, "pattern": "^[\\x20-\\x7E]+$"},
}

H = TypeVar("H", bound=Callable[..., Awaitable[Any]])


class IdemClaim(msgspec.Struct, frozen=True):
    """A claimed key, passed down to the send (and across to the device's owner with a routed call)."""

    key: str
    claim: str

    @property
    def claim_uuid(self) -> uuid.UUID:
        return uuid.UUID(self.claim)


def check_key(raw: str) -> str:
    if not raw or len(raw) > MAX_KEY or any(not 0x20 <= ord(ch) <= 0x7E for ch in raw):
        raise HTTPError(400, INVALID_KEY, detail=f"1 to {MAX_KEY} printable ASCII characters")
    return raw


def in_progress() -> HTTPError:
    return HTTPError(409, IN_PROGRESS, headers=[("retry-after", "1")])


_last_purge: dict[uuid.UUID, float] = {}


async def _purge(db: Database, account_id: uuid.UUID) -> None:
    now = time.monotonic()
    if now - _last_purge.get(account_id, -PURGE_EVERY) < PURGE_EVERY:
        return
    _last_purge[account_id] = now
    if len(_last_purge) > 10_000:
        _last_purge.clear()
    try:
        await db.execute(Q_PURGE, [account_id, PURGE_BATCH, float(TTL_SECONDS)])
    except Exception as exc:  # housekeeping never fails a request
        log.debug("idempotency purge failed: %s", exc)


async def claim(db: Database, account_id: uuid.UUID, key: str, request: str) -> IdemClaim | Response:
    """The key is ours (an :class:`IdemClaim`), or the answer a repeat gets (a replay :class:`Response`), or
    an ``HTTPError`` (409 in progress, 422 another request)."""
    await _purge(db, account_id)
    token = uuid.uuid4()
    if await db.fetch_row(Q_CLAIM, [account_id, key, request, token]) is not None:
        return IdemClaim(key, str(token))
    row = await db.fetch_row(Q_GET, [account_id, key, float(TTL_SECONDS), STALE_SECONDS])
    if row is None:  # purged in between: claim again (one more round at most)
        if await db.fetch_row(Q_CLAIM, [account_id, key, request, token]) is not None:
            return IdemClaim(key, str(token))
        raise in_progress()
    if not row["expired"]:
        if row["request"] != request:
            raise HTTPError(422, OTHER_REQUEST)
        if row["status_code"] is not None:
            return RawJSONResponse(bytes(row["body"] or b""), int(row["status_code"]), [REPLAYED])
        if row["message_id"] is not None or not row["stale"]:
            raise in_progress()
    taken = await db.fetch_row(Q_TAKE_OVER, [account_id, key, request, token, row["claim"], float(TTL_SECONDS),
                                             STALE_SECONDS])
    if taken is None:
        raise in_progress()
    return IdemClaim(key, str(token))


async def complete(db: Database, account_id: uuid.UUID, idem: IdemClaim, status: int, body: bytes,
                   held: HeldWrites | None = None) -> None:
    async def write() -> None:
        await db.execute(Q_COMPLETE, [account_id, idem.key, idem.claim_uuid, status, body])

    await _or_hold(write, held, "answer")


async def release(db: Database, account_id: uuid.UUID, idem: IdemClaim, held: HeldWrites | None = None) -> None:
    async def write() -> None:
        await db.execute(Q_RELEASE, [account_id, idem.key, idem.claim_uuid])

    await _or_hold(write, held, "release")


async def _or_hold(write: Callable[[], Awaitable[None]], held: HeldWrites | None, what: str) -> None:
    """Write now; PostgreSQL unreachable → retried until it lands (a send stored its answer with its final row
    already; a release that waits only delays a retry, it can never let one send twice: it matches nothing
    once a message is linked)."""
    try:
        await write()
    except DatabaseUnavailable:
        if held is not None:
            held.hold(f"Idempotency-Key {what}", write)
        else:
            log.warning("Idempotency-Key %s not stored (taken over after %.0f s)", what, STALE_SECONDS)
    except Exception as exc:
        log.warning("Idempotency-Key %s not stored: %s", what, exc)


def idempotent(handler: H) -> H:
    """Route decorator: honours ``Idempotency-Key``; the handler gets ``idem=`` (``None`` without a key)."""

    @functools.wraps(handler)
    async def wrapper(req: Request, *args: Any) -> Any:
        raw = req.header(HEADER)
        if not raw:
            if HEADER in req.headers:  # present but not text granian can hand over (non-ASCII bytes) or empty
                raise HTTPError(400, INVALID_KEY, detail=f"1 to {MAX_KEY} printable ASCII characters")
            return await handler(req, *args, idem=None)
        key = check_key(raw)
        db, account_id = req.app.db, req.account_id
        held = getattr(getattr(req.app, "whatsapp", None), "held", None)
        got = await claim(db, account_id, key, f"{req.method} {req.path}"[:600])
        if isinstance(got, Response):
            return got
        try:
            result = await handler(req, *args, idem=got)
        except BaseException:
            await release(db, account_id, got, held)  # matches nothing once a message is linked
            raise
        status = req.route.status if req.route is not None else 200
        body = result.body if isinstance(result, Response) else encode(result)
        await complete(db, account_id, got, status, body, held)
        return RawJSONResponse(body, status) if not isinstance(result, Response) else result

    wrapper.header_parameters = [HEADER_PARAMETER]  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
