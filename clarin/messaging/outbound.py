"""The send service: every outgoing WhatsApp message goes through here (R21's initial message, R27 text /
reply / media, R28 forward, R29 reaction, R30 poll, and the campaign worker).

Public API (campaigns depend on these signatures)::

    resolve_recipient(to) -> str
    await send_text(state, account_id, device_id, to, body, *, quoted=None) -> (chat_id, Message)
    await send_media(state, account_id, device_id, to, media_url, media_type, caption="", *, file_name="")
        -> (chat_id, Message)
    await send_poll(state, account_id, device_id, to, question, options, max_selections) -> (chat_id, Message)
    await send_reaction(state, account_id, device_id, to, target_message_id, emoji) -> None
    await forward(state, account_id, device_id, to, chat_id, message_id) -> (chat_id, Message)

Every send, in order (integrations.md B.12, with the original's flaws fixed):

1. ``to`` → recipient JID (:func:`resolve_recipient`): a bare phone number is normalised (api.md §6.1) to
   ``<digits>@s.whatsapp.net`` (fix of B.6 quirk 7); a JID is validated and its device part dropped;
   anything else is ``400 invalid JID: <to>``. Input is validated before anything is sent.
2. The device must belong to the account (unknown or foreign: ``404 Device not found``); the pool then gives
   the live device (``409 device not connected``). When another process runs the device, the whole call
   (``send_text`` / ``send_media`` / ``send_poll`` / ``send_reaction``, so also R28 and R21) is run there
   (:func:`clarin.whatsapp.remote.routed`) and its result or error returned as is; ``503 device is connected
   on another server, retry`` only when it cannot be routed (no Redis, owner not listening yet).
3. The number's send budget (:mod:`clarin.whatsapp.budget`, docs/NUMBER_HEALTH.md) takes a slot for the message,
   on the owner, or raises ``OverBudget`` (``429`` + ``Retry-After``; nothing recorded or sent). A send that then
   never reaches WhatsApp gives the slot back; one WhatsApp refuses feeds the number-health guard
   (:mod:`clarin.whatsapp.health`: a danger signal pauses the number's campaigns and raises ``DangerSignal``).
   Before the driver is called the message is recorded as a pending row (status ``'pending'``) and an
   ``Idempotency-Key`` claimed by the route is linked to it (:mod:`clarin.messaging.outbound_store`): if that
   write fails, nothing is sent (``503``). The chat of (account, non-AD recipient JID, LID resolved when the
   device knows the phone) is upserted and claimed by the device.
4. The driver sends. Any failure is ``502 failed to send message: <reason>`` (``failed to send reaction`` for
   R29), never a 500 carrying driver internals; the pending row is removed (a failed send is not stored).
5. One statement: the row becomes ``'sent'`` with WhatsApp's stanza id and ack time, the chat preview
   (schema.md §5.3) follows it unless a newer one is already there (``last_message_at`` never moves
   backwards), the key gets its answer. If PostgreSQL is unreachable now, that statement is held and retried
   until it lands (:mod:`clarin.whatsapp.held`) and the caller is answered at once: the message is on the
   phone, and a retry of the same key never sends it again.
6. After the commit: WS ``message_sent {chat_id, message}`` to the account (R29: ``message_reaction``); its webhook
   outbox rows are written in the same transaction as the row of step 5 (clarin.webhooks.recording), so they are
   held and retried with it, and the caller is answered only after both committed (or were held).

Reactions have no pending row: re-sending a reaction sets the same emoji again (idempotent on the phone).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from clarin.crm.phones import phone_jid, valid_user
from clarin.db.errors import DatabaseUnavailable
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.messaging.idempotency import IdemClaim
from clarin.messaging.media_source import load_media
from clarin.messaging.outbound_store import Outgoing, finish_not_sent, finish_sent, record_pending
from clarin.messaging.polls import poll_body, poll_preview
from clarin.webhooks.recording import recording
from clarin.whatsapp import budget, health
from clarin.whatsapp.driver import (
    GROUP_SERVER,
    LID_SERVER,
    USER_SERVER,
    DriverError,
    InvalidJID,
    NotConnected,
    OutgoingMedia,
    QuotedMessage,
    SentMessage,
    jid_to_str,
    non_ad,
    parse_jid,
)
from clarin.whatsapp.live import NOT_CONNECTED
from clarin.whatsapp.pool import DeviceRef
from clarin.whatsapp.remote import routed
from clarin.wire.messages import Message, MessageReactionEvent

if TYPE_CHECKING:
    from clarin.state import AppState
    from clarin.whatsapp.pool import DevicePool

log = logging.getLogger("clarin.messaging.outbound")

Q_DEVICE = query("outbound_device")
Q_CHAT_UPSERT = query("outbound_chat_upsert")
Q_REACTION_TARGET = query("outbound_reaction_target")
Q_REACTION_UPSERT = query("outbound_reaction_upsert")
Q_REACTION_DELETE = query("outbound_reaction_delete")
Q_FORWARD_ORIGINAL = query("forward_original")

DEVICE_NOT_FOUND = "Device not found"
MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
CAPTIONED_KINDS = ("image", "video", "document")
MAX_TEXT = 65_536  # WhatsApp's own limit for a text message
MAX_JID = 255  # chats.jid / messages.from_jid / quoted_sender are varchar(255)
MAX_OPTION = 255  # poll_options.name
MAX_POLL_OPTIONS = 12
MAX_EMOJI = 50  # message_reactions.emoji
POLL_REQUIRED = "Question and at least 2 options are required"
POLL_TOO_MANY = "Maximum 12 options allowed"
ORIGINAL_NOT_FOUND = "Original message not found"
ME = "Me"
_SEND_PREFIX = re.compile(r"^failed to send (?:message|reaction)\s*:\s*")


# -- recipients ------------------------------------------------------------------------------------
def resolve_recipient(to: str) -> str:
    """``to`` → the JID to send to (non-AD).

    ``51987654321``, ``+51 987-654-321``, ``987654321`` (Peru, §6.1) → ``51987654321@s.whatsapp.net``;
    anything else without ``@`` is ``400 invalid phone`` (the phone rule of clarin.crm.phones).
    ``<phone>@s.whatsapp.net`` / ``<digits>@lid`` / ``<id>@g.us`` (device part dropped) as is. Anything
    else — other servers, phone users that are not phones, empty — is ``400 invalid JID: <to>``.
    """
    raw = (to or "").strip()
    invalid = HTTPError(400, f"invalid JID: {to}")
    if not raw or len(raw) > MAX_JID or "\x00" in raw:  # NUL: also reached from stored rows, not only JSON
        raise invalid
    if "@" not in raw:
        return phone_jid(raw)
    try:
        jid = parse_jid(raw)
    except InvalidJID:
        raise invalid from None
    if jid.Server in (USER_SERVER, LID_SERVER):
        if not valid_user(jid.User, jid.Server):
            raise invalid
    elif jid.Server != GROUP_SERVER or not jid.User:
        raise invalid
    return non_ad(jid_to_str(jid))


def _text(value: str, field_name: str, limit: int) -> str:
    if "\x00" in value:
        raise HTTPError(400, f"{field_name} contains invalid characters")
    if len(value) > limit:
        raise HTTPError(400, f"{field_name} is too long (max {limit} characters)")
    return value


# -- the device ----------------------------------------------------------------------------------------
def _pool(state: AppState) -> DevicePool:
    pool = getattr(state, "whatsapp", None)
    if pool is None:
        raise HTTPError(503, "WhatsApp is not available on this server")
    return pool


async def ensure_device(state: AppState, account_id: uuid.UUID, device_id: uuid.UUID) -> None:
    """404 ``Device not found`` unless the device exists in ``account_id``."""
    if await state.db.fetch_row(Q_DEVICE, [account_id, device_id]) is None:
        raise HTTPError(404, DEVICE_NOT_FOUND)


async def _sender(state: AppState, account_id: uuid.UUID, device_id: uuid.UUID) -> DeviceRef:
    await ensure_device(state, account_id, device_id)
    return await _pool(state).sender(device_id, account_id)


async def _driver_call(call: Awaitable[SentMessage], what: str) -> SentMessage:
    try:
        return await call
    except NotConnected:
        raise HTTPError(409, NOT_CONNECTED) from None
    except DriverError as exc:
        raise HTTPError(502, f"failed to {what}: {_short(exc)}") from None
    except HTTPError:
        raise
    except Exception as exc:
        log.exception("driver failed to %s", what)
        raise HTTPError(502, f"failed to {what}: {type(exc).__name__}") from None


async def _send(
    state: AppState, account_id: uuid.UUID, device: DeviceRef, to_jid: str, out: Outgoing,
    call: Callable[[], Awaitable[SentMessage]], idem: IdemClaim | None,
) -> tuple[str, Message]:
    """The number's send budget first (``OverBudget``, 429: nothing recorded or sent), the pending row (nothing is
    sent if it cannot be written), then the driver, then the outcome; a refused send feeds the number-health guard
    (clarin.whatsapp.health: danger signals pause the number's campaigns, ``DangerSignal``)."""
    chat_jid = await _chat_jid(state, device, to_jid)
    slot = await budget.reserve(state.db, account_id, device.id, chat_jid,
                                defaults=state.settings.send_budget_defaults)
    try:
        pending = await record_pending(state, account_id, device, chat_jid, await _own_jid(state, device), out, idem)
    except BaseException:
        await budget.refund(state.db, slot)
        raise
    try:
        sent = await _driver_call(call(), "send message")
    except HTTPError as exc:
        # NotConnected (409) is raised before anything leaves the driver; anything else may have reached WhatsApp.
        await finish_not_sent(state, account_id, pending, exc, maybe_sent=exc.status != 409)
        if exc.status == 409:
            await budget.refund(state.db, slot)
            # The device stopped running here mid-send (its lease session broke): 503 while it is resumed.
            raise await _pool(state).refused(device.id, account_id, exc) from None
        tripped = await health.after_failure(state, account_id, device.id, slot, exc.message)
        if tripped is not None and health.classify(exc.message) is not None:
            raise health.DangerSignal(exc, tripped.health, tripped.signal) from None
        raise
    except BaseException:  # cancelled mid-send: the outcome is unknown, the row stays pending (never re-sent)
        log.error("send of pending message %s on device %s interrupted; outcome unknown", pending.id, device.id)
        raise
    return await finish_sent(state, account_id, pending, sent, out)


def _short(exc: BaseException) -> str:
    """The first line of a driver error, without the driver's own ``failed to send …:`` prefix, capped."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return _SEND_PREFIX.sub("", text, count=1)[:200] or type(exc).__name__


async def _own_jid(state: AppState, device: DeviceRef) -> str:
    if device.jid:
        return device.jid
    try:
        return await _pool(state).driver.own_jid(device.id) or ""
    except Exception:
        return ""


async def _chat_jid(state: AppState, device: DeviceRef, to_jid: str) -> str:
    """The local chat JID: non-AD, ``@lid`` replaced by the phone JID when the device's store knows it."""
    jid = non_ad(to_jid)
    if jid.endswith("@" + LID_SERVER):
        try:
            resolved = await _pool(state).driver.pn_for_lid(device.id, jid)
        except Exception as exc:
            log.debug("LID lookup of %s failed: %s", jid, exc)
            resolved = None
        if resolved:
            return non_ad(resolved)
    return jid


# -- sends ----------------------------------------------------------------------------------------------
@routed
async def send_text(
    state: AppState, account_id: uuid.UUID, device_id: uuid.UUID, to: str, body: str, *,
    quoted: QuotedMessage | None = None, idem: IdemClaim | None = None,
) -> tuple[str, Message]:
    """A text message, or a reply when ``quoted`` has a ``message_id`` (B.12)."""
    to_jid = resolve_recipient(to)
    if not body.strip():
        raise HTTPError(400, "Message body is required")
    _text(body, "body", MAX_TEXT)
    if quoted is not None and not quoted.message_id:
        quoted = None
    if quoted is not None:
        _text(quoted.message_id, "quoted_message_id", MAX_JID)
        _text(quoted.body, "quoted_body", MAX_TEXT)
        if quoted.sender_jid:
            quoted = QuotedMessage(quoted.message_id, _quoted_sender(quoted.sender_jid), quoted.body)
    device = await _sender(state, account_id, device_id)
    driver = _pool(state).driver
    out = Outgoing(body=body, message_type="text", preview=body, quoted=quoted)
    return await _send(state, account_id, device, to_jid, out,
                       lambda: driver.send_text(device.id, to_jid, body, quoted), idem)


def _quoted_sender(sender: str) -> str:
    try:
        return jid_to_str(parse_jid(sender.strip()))
    except InvalidJID:
        raise HTTPError(400, f"invalid JID: {sender}") from None


@routed
async def send_media(
    state: AppState, account_id: uuid.UUID, device_id: uuid.UUID, to: str, media_url: str, media_type: str,
    caption: str = "", *, file_name: str = "", idem: IdemClaim | None = None,
) -> tuple[str, Message]:
    """Image, video, audio (always a voice note), document or sticker from ``media_url`` (B.13; sources and
    SSRF rules in :mod:`clarin.messaging.media_source`)."""
    to_jid = resolve_recipient(to)
    kind = (media_type or "").strip().lower()
    if kind not in MEDIA_KINDS:
        raise HTTPError(400, f"unsupported media type: {media_type}")
    if not (media_url or "").strip():
        raise HTTPError(400, "media_url is required")
    _text(caption, "caption", MAX_TEXT)
    device = await _sender(state, account_id, device_id)
    blob = await load_media(state, account_id, media_url)
    name = (file_name or blob.file_name or "file") if kind == "document" else ""
    mimetype = "image/webp" if kind == "sticker" else blob.mimetype
    media = OutgoingMedia(kind=kind, data=blob.data, mimetype=mimetype,
                          caption=caption if kind in CAPTIONED_KINDS else "", file_name=name)
    driver = _pool(state).driver
    out = Outgoing(
        body=caption, message_type=kind, preview=caption or f"[{kind}]", media_url=blob.stored_url,
        media_mimetype=mimetype[:100], media_filename=name[:255] or None, media_size=len(blob.data),
    )
    return await _send(state, account_id, device, to_jid, out, lambda: driver.send_media(device.id, to_jid, media),
                       idem)


async def forward(
    state: AppState, account_id: uuid.UUID, device_id: uuid.UUID, to: str, chat_id: uuid.UUID, message_id: str,
    *, idem: IdemClaim | None = None,
) -> tuple[str, Message]:
    """R28: re-send a stored message found by (account, source chat, stanza id) — ``404 Original message not
    found`` otherwise (a foreign chat is not found either). Media (with ``media_url``) is re-sent from its
    stored URL with the original body as caption; everything else (polls included) as its text body. No
    "forwarded" flag is set on WhatsApp."""
    original = None
    if message_id.strip():
        original = await state.db.fetch_row(Q_FORWARD_ORIGINAL, [account_id, chat_id, message_id.strip()])
    if original is None:
        raise HTTPError(404, ORIGINAL_NOT_FOUND)
    media_url, kind = original["media_url"] or "", original["message_type"] or ""
    if media_url and kind in MEDIA_KINDS:
        return await send_media(state, account_id, device_id, to, media_url, kind, original["body"] or "",
                                file_name=original["media_filename"] or "", idem=idem)
    return await send_text(state, account_id, device_id, to, original["body"] or "", idem=idem)


def clean_poll(question: str, options: list[str] | None, max_selections: int) -> tuple[str, list[str], int]:
    """R30 validation: a question and 2–12 distinct non-blank options; ``max_selections`` in 1..len(options)."""
    question = (question or "").strip()
    names = [option.strip() for option in (options or []) if option and option.strip()]
    if not question or len(names) < 2:
        raise HTTPError(400, POLL_REQUIRED)
    if len(names) > MAX_POLL_OPTIONS:
        raise HTTPError(400, POLL_TOO_MANY)
    _text(question, "question", MAX_TEXT)
    for name in names:
        _text(name, "option", MAX_OPTION)
    if len(set(names)) != len(names):
        raise HTTPError(400, "Poll options must be unique")
    selections = max_selections if max_selections > 0 else 1
    return question, names, min(selections, len(names))


@routed
async def send_poll(
    state: AppState, account_id: uuid.UUID, device_id: uuid.UUID, to: str, question: str, options: list[str],
    max_selections: int, *, idem: IdemClaim | None = None,
) -> tuple[str, Message]:
    """A poll (with a message secret, so votes can be decrypted); its options are stored in order."""
    to_jid = resolve_recipient(to)
    question, names, selections = clean_poll(question, options, max_selections)
    device = await _sender(state, account_id, device_id)
    driver = _pool(state).driver
    out = Outgoing(
        body=poll_body(question, names), message_type="poll", preview=poll_preview(question), poll_question=question,
        poll_max_selections=selections, poll_options=names,
    )
    return await _send(state, account_id, device, to_jid, out,
                       lambda: driver.send_poll(device.id, to_jid, question, names, selections), idem)


@routed
async def send_reaction(
    state: AppState, account_id: uuid.UUID, device_id: uuid.UUID, to: str, target_message_id: str, emoji: str,
) -> None:
    """React to ``target_message_id`` in the chat ``to`` (empty ``emoji`` removes the reaction).

    The target's key is built from the stored message when it is known (``fromMe`` for our own messages,
    the sender in groups; the original always sent ``fromMe=false``). The reaction is upserted (or
    deleted) on (chat, target, sender) with sender = the device's own non-AD JID, name ``Me``; then
    ``message_reaction`` is broadcast."""
    to_jid = resolve_recipient(to)
    target = (target_message_id or "").strip()
    if not target:
        raise HTTPError(400, "target_message_id is required")
    _text(target, "target_message_id", MAX_JID)
    emoji = emoji or ""
    _text(emoji, "emoji", MAX_EMOJI)
    device = await _sender(state, account_id, device_id)
    chat_jid = await _chat_jid(state, device, to_jid)
    known = await state.db.fetch_row(Q_REACTION_TARGET, [account_id, chat_jid, target])
    from_me = bool(known and known["is_from_me"])
    target_sender = ""
    if known and not from_me and to_jid.endswith("@" + GROUP_SERVER) and known["from_jid"]:
        target_sender = str(known["from_jid"])
    pool = _pool(state)
    try:
        sent = await _driver_call(
            pool.driver.send_reaction(device.id, to_jid, target, emoji, target_from_me=from_me,
                                      target_sender_jid=target_sender),
            "send reaction",
        )
    except HTTPError as exc:
        if exc.status == 409:  # as in _send: a client stopped by a lost lease is a retry, not "not connected"
            raise await pool.refused(device.id, account_id, exc) from None
        raise
    own = await _own_jid(state, device)
    sender_jid = non_ad(own) if own else ""
    try:
        # The reaction row and its message_reaction outbox rows commit together, before the caller is answered.
        async with recording(state, account_id, quiet=True) as rec, rec.transaction() as tx:
            chat = await tx.fetch_row(Q_CHAT_UPSERT, [account_id, device.id, chat_jid])
            assert chat is not None
            chat_uuid = uuid.UUID(str(chat["id"]))
            if emoji:
                await tx.execute(Q_REACTION_UPSERT, [account_id, chat_uuid, target, sender_jid, ME, emoji,
                                                     sent.timestamp])
            else:
                await tx.execute(Q_REACTION_DELETE, [account_id, chat_uuid, target, sender_jid])
            rec.emit("message_reaction", MessageReactionEvent(
                chat_id=str(chat_uuid), target_message_id=target, sender_jid=sender_jid, sender_name=ME, emoji=emoji,
                is_from_me=True, removed=not emoji,
            ))
    except (HTTPError, DatabaseUnavailable):
        raise
    except Exception:
        log.exception("reaction on %s was sent on device %s but not stored", target, device.id)
        raise HTTPError(500, "reaction was sent but could not be stored") from None
