"""One send budget per WhatsApp number (docs/NUMBER_HEALTH.md).

Contract relied on by every sender (manual/API sends, the campaign worker, scheduled messages):

- the outbound send path raises :class:`OverBudget` when the number's budget for that kind of message is
  spent, *before* anything is recorded or sent;
- ``retry_after`` is the number of seconds until the window frees a slot, ``kind`` is ``'cold'`` (a first
  message to a chat with no inbound message yet) or ``'reply'`` (the contact has written to us);
- HTTP handlers need nothing: :class:`OverBudget` is an :class:`~clarin.http.errors.HTTPError` ``429`` with a
  ``Retry-After`` header and ``{"error": "..."}`` body; background senders catch it and wait ``retry_after``
  (they never fail the message because of it). Routed calls (another node runs the device) re-raise it as
  :class:`OverBudget` on the requester too (:mod:`clarin.whatsapp.remote`).
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.observability.metrics import BUDGET_REFUSALS, BUDGET_SENDS

if TYPE_CHECKING:
    from clarin.db.pool import Database

log = logging.getLogger("clarin.whatsapp.budget")

Q_CONTEXT = query("budget_send_context")
Q_LOCK = query("budget_lock")
Q_RESERVE = query("budget_reserve")
Q_RECORD = query("budget_record")
Q_FREES_IN = query("budget_frees_in")
Q_REFUND = query("budget_refund")
Q_PRUNE = query("budget_prune")
Q_SET = query("device_budget_set")

Kind = Literal["cold", "reply"]
KINDS: tuple[Kind, ...] = ("cold", "reply")


class OverBudget(HTTPError):
    """The device's send budget for ``kind`` is spent; a slot frees in ``retry_after`` seconds."""

    def __init__(self, retry_after: float, kind: Kind, window: str = "") -> None:
        self.retry_after = max(0.0, float(retry_after))
        self.kind: Kind = kind
        self.window = window
        what = "new conversations" if kind == "cold" else "replies"
        per = f" per {window}" if window else ""
        seconds = max(1, math.ceil(self.retry_after))
        super().__init__(
            429, f"send budget for {what}{per} is spent on this number; retry in {seconds} s",
            headers=[("retry-after", str(seconds))],
        )


# -- limits ------------------------------------------------------------------------------------------------
# Windows are sliding: the last 60 s, 3600 s and 86 400 s before the send.
WINDOWS: tuple[tuple[str, int], ...] = (("minute", 60), ("hour", 3600), ("day", 86_400))
LIMIT_KEYS = tuple(f"{kind}_per_{window}" for kind in KINDS for window, _ in WINDOWS)
PRUNE_EVERY = 500  # one reservation in this many prunes the device's rows older than two days


@dataclass(frozen=True, slots=True)
class Limits:
    """Per kind, the most sends in the last minute / hour / day (``None`` = unlimited), and the warm-up:
    ``warmup[d]`` caps cold sends per day on the number's day ``d`` after pairing (day 0 = the first 24 h);
    from day ``len(warmup)`` on only ``cold_per_day`` applies."""

    cold: tuple[int | None, int | None, int | None]
    reply: tuple[int | None, int | None, int | None]
    warmup: tuple[int, ...] = ()

    @classmethod
    def resolve(cls, configured: dict[str, Any] | None, defaults: bool) -> Limits:
        """The device's ``send_budget`` overrides on top of :data:`DEFAULT_LIMITS` (or :data:`NO_LIMITS` when the
        installation's defaults are off): a key present in the stored JSON wins, ``null`` = unlimited."""
        base = DEFAULT_LIMITS if defaults else NO_LIMITS
        conf = configured if isinstance(configured, dict) else {}
        values: dict[str, int | None] = {}
        for kind in KINDS:
            for index, (window, _) in enumerate(WINDOWS):
                key = f"{kind}_per_{window}"
                default = getattr(base, kind)[index]
                values[key] = _limit(conf[key]) if key in conf else default
        warmup = conf["warmup"] if "warmup" in conf else base.warmup
        schedule = tuple(max(0, int(v)) for v in (warmup or ()) if isinstance(v, int) and not isinstance(v, bool))
        return cls(
            cold=(values["cold_per_minute"], values["cold_per_hour"], values["cold_per_day"]),
            reply=(values["reply_per_minute"], values["reply_per_hour"], values["reply_per_day"]),
            warmup=schedule,
        )

    def warmup_day(self, paired_at: datetime | None, now: datetime) -> int | None:
        """The number's day since pairing while the warm-up applies, else ``None``."""
        if not self.warmup or paired_at is None:
            return None
        day = max(0, int((now - paired_at).total_seconds() // 86_400))
        return day if day < len(self.warmup) else None

    def caps(self, kind: Kind, paired_at: datetime | None, now: datetime) -> tuple[int | None, int | None, int | None]:
        """The limits in force for ``kind`` now: the warm-up lowers the cold per-day cap."""
        minute, hour, day = self.cold if kind == "cold" else self.reply
        if kind == "cold":
            step = self.warmup_day(paired_at, now)
            if step is not None:
                day = self.warmup[step] if day is None else min(day, self.warmup[step])
        return minute, hour, day


def _limit(value: Any) -> int | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        return None
    return max(0, value)


# Conservative defaults for a real number (rationale and sources: docs/NUMBER_HEALTH.md). Cold messages (to people
# who never wrote to the number) are what gets numbers restricted; replies in open conversations are cheap.
DEFAULT_LIMITS = Limits(cold=(2, 20, 150), reply=(20, 300, 2000), warmup=(20, 30, 45, 65, 90, 120))
NO_LIMITS = Limits(cold=(None, None, None), reply=(None, None, None), warmup=())


# -- reservations --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Reservation:
    """One slot of the budget taken for a send (a ``device_sends`` row)."""

    id: int
    kind: Kind
    device_id: uuid.UUID
    account_id: uuid.UUID


async def reserve(db: Database, account_id: uuid.UUID, device_id: uuid.UUID, chat_jid: str, *,
                  defaults: bool) -> Reservation | None:
    """Take a slot for one message from ``device_id`` to ``chat_jid`` or raise :class:`OverBudget`.

    ``None`` when the device row is gone (the caller's own checks answer that). Kind: ``reply`` when the contact
    has written in the chat, or this number already opened the chat in the last day (a follow-up such as a
    campaign's attachments after its text); ``cold`` otherwise."""
    context = await db.fetch_row(Q_CONTEXT, [account_id, device_id, chat_jid])
    if context is None:
        return None
    kind: Kind = "reply" if context["answered"] or context["opened"] else "cold"
    limits = Limits.resolve(context["send_budget"], defaults)
    now = datetime.now(UTC)
    caps = limits.caps(kind, context["paired_at"], now)
    if all(cap is None for cap in caps):  # nothing to count: record the send (health reads the ledger)
        row = await db.fetch_row(Q_RECORD, [device_id, account_id, chat_jid, kind])
    else:
        async with db.transaction() as tx:
            await tx.execute(Q_LOCK, [device_id])
            row = await tx.fetch_row(Q_RESERVE, [device_id, account_id, chat_jid, kind, *caps])
    assert row is not None
    if row["id"] is not None:
        BUDGET_SENDS.labels(kind).inc()
        if int(row["id"]) % PRUNE_EVERY == 0:
            await db.execute(Q_PRUNE, [device_id, account_id])
        return Reservation(int(row["id"]), kind, device_id, account_id)
    counts = (int(row["minute"]), int(row["hour"]), int(row["day"]))
    wait, window = await _frees_in(db, account_id, device_id, kind, counts, caps, limits, context["paired_at"], now)
    BUDGET_REFUSALS.labels(kind, window).inc()
    raise OverBudget(wait, kind, window)


async def _frees_in(
    db: Database, account_id: uuid.UUID, device_id: uuid.UUID, kind: Kind, counts: tuple[int, int, int],
    caps: tuple[int | None, int | None, int | None], limits: Limits, paired_at: datetime | None, now: datetime,
) -> tuple[float, str]:
    """Seconds until every spent window has a free slot again, and the window that takes longest."""
    longest, name = 0.0, ""
    for (window, seconds), count, cap in zip(WINDOWS, counts, caps, strict=True):
        if cap is None or count < cap:
            continue
        if cap > 0:
            wait = float(await db.fetch_val(Q_FREES_IN, [device_id, account_id, kind, float(seconds), cap]) or 0.0)
        else:
            wait = float(seconds)  # a zero limit: nothing is allowed in any window of this size
        step = limits.warmup_day(paired_at, now) if kind == "cold" and window == "day" else None
        if step is not None and paired_at is not None:
            # the warm-up's next step may raise the cap before the window frees a slot
            next_step = (paired_at + timedelta(days=step + 1) - now).total_seconds()
            if next_step > 0 and (cap == 0 or next_step < wait):
                wait = next_step
        if wait >= longest:
            longest, name = wait, window
    return max(longest, 0.0), name


async def refund(db: Database, reservation: Reservation | None) -> None:
    """Nothing reached WhatsApp: give the slot back (best effort: a lost refund only makes the budget stricter)."""
    if reservation is None:
        return
    try:
        await db.execute(Q_REFUND, [reservation.id, reservation.device_id, reservation.account_id])
    except Exception as exc:
        log.warning("budget slot %s of device %s not refunded: %s", reservation.id, reservation.device_id, exc)


async def set_budget(db: Database, account_id: uuid.UUID, device_id: uuid.UUID, configured: dict[str, Any]) -> bool:
    """Store the device's overrides (``{}`` = back to the defaults); ``False`` for an unknown/foreign device."""
    value = msgspec.json.encode(configured).decode() if configured else None
    return await db.fetch_val(Q_SET, [device_id, account_id, value]) is not None
