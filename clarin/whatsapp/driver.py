"""The WhatsApp driver contract: what the device pool (and later the inbox) needs from WhatsApp.

Two implementations:

- ``NeonizeDriver`` (``WHATSAPP_DRIVER=neonize``, the default): one neonize client per device.
- ``SimulatedDriver`` (``WHATSAPP_DRIVER=simulated``): in-process, for tests and demos.

A driver delivers everything that happens on a device through ONE callback, the event sink
``sink(device_id, event)``, with **neonize protobuf event objects** (``MessageEv``, ``ReceiptEv``,
``PresenceEv``, ``ConnectedEv``, ``DisconnectedEv``, ``LoggedOutEv``, ``PairStatusEv``, ...), the same
classes neonize's own callbacks receive. The single exception is the pairing QR: neonize hands raw
code bytes to a separate callback; drivers turn each code into a PNG data URL
(:func:`qr_data_url`) and deliver it as ``QREv(Codes=[data_url])``.

Operations raise :class:`NotConnected` when the device has no live session in this driver and
:class:`DriverError` for anything WhatsApp rejects; the pool maps them to HTTP errors.
JIDs cross this interface as strings (``user[.agent][:device]@server``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, TypeVar

from clarin.whatsapp.proto import JID, MessageEv, MessageKey, WAMessage, e2e

log = logging.getLogger("clarin.whatsapp")

EventSink = Callable[[uuid.UUID, Any], Awaitable[None]]
M = TypeVar("M")

USER_SERVER = "s.whatsapp.net"
LID_SERVER = "lid"
GROUP_SERVER = "g.us"
MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
QR_SIZE = 256  # px, as the original (B.4)

_JID_RE = re.compile(r"^(?P<user>[^@:]*?)(?:\.(?P<agent>\d+))?(?::(?P<device>\d+))?@(?P<server>[a-z0-9.\-]+)$")
_PHONE_JUNK = re.compile(r"[\s\-()+.']")


class DriverError(Exception):
    """WhatsApp (or the driver) refused an operation; the text is safe to show to the user."""


class NotConnected(DriverError):
    """The device has no live session in this driver."""


class InvalidJID(DriverError, ValueError):
    pass


# -- value types ------------------------------------------------------------------------------------
ChatState = Literal["composing", "paused"]


@dataclass(frozen=True, slots=True)
class DeviceSession:
    """What ``connect`` needs: the device and its stored AD JID ("" = pair a new session by QR)."""

    id: uuid.UUID
    account_id: uuid.UUID
    jid: str = ""


@dataclass(frozen=True, slots=True)
class SentMessage:
    id: str  # WhatsApp stanza id
    timestamp: datetime  # server timestamp of the send (aware, UTC)


@dataclass(frozen=True, slots=True)
class QuotedMessage:
    """A reply target (B.12): the quoted content is always sent as plain text."""

    message_id: str
    sender_jid: str = ""
    body: str = ""


@dataclass(frozen=True, slots=True)
class OutgoingMedia:
    kind: str  # image | video | audio | document | sticker
    data: bytes
    mimetype: str
    caption: str = ""
    file_name: str = ""


@dataclass(frozen=True, slots=True)
class DeviceContact:
    """One entry of the device's WhatsApp contact store (B.11), JID non-AD and LID-resolved if known."""

    jid: str
    phone: str
    name: str  # full name → first name → business name
    push_name: str = ""
    business_name: str = ""


@dataclass(frozen=True, slots=True)
class MediaUpload:
    """Where an uploaded (or simulated) blob lives; the fields every media message carries."""

    url: str
    direct_path: str
    media_key: bytes
    file_enc_sha256: bytes
    file_sha256: bytes
    file_length: int


# -- the contract -----------------------------------------------------------------------------------
class WhatsAppDriver(ABC):
    name: ClassVar[str]

    def __init__(self) -> None:
        self._sink: EventSink | None = None

    def set_event_sink(self, sink: EventSink) -> None:
        self._sink = sink

    async def emit(self, device_id: uuid.UUID, event: Any) -> None:
        """Hand one event to the sink; a failing sink is logged, never propagated into the driver."""
        if self._sink is None:
            log.debug("no event sink: dropping %s for %s", type(event).__name__, device_id)
            return
        try:
            await self._sink(device_id, event)
        except Exception:
            log.exception("event sink failed on %s for device %s", type(event).__name__, device_id)

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Called once per process before the first connect."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Called at shutdown after every device was disconnected."""

    # lifecycle
    @abstractmethod
    async def connect(self, device: DeviceSession) -> None:
        """Start (or restart) the device's session: resume it when ``device.jid`` is set, otherwise pair
        a new one (QR events). Returns once the connection attempt is under way; the outcome arrives as
        events (``QREv`` …, ``PairStatusEv``, ``ConnectedEv`` / ``LoggedOutEv`` / ``DisconnectedEv``)."""

    @abstractmethod
    async def disconnect(self, device_id: uuid.UUID) -> None:
        """Close the socket and forget the client; the stored session is kept. No event is emitted."""

    @abstractmethod
    async def logout(self, device_id: uuid.UUID) -> None:
        """Unlink the companion device from the phone (needs a live connection) and drop the session."""

    @abstractmethod
    async def is_connected(self, device_id: uuid.UUID) -> bool: ...

    @abstractmethod
    async def own_jid(self, device_id: uuid.UUID) -> str | None:
        """The device's own AD JID (``user:device@s.whatsapp.net``) once paired."""

    # sending
    @abstractmethod
    async def send_text(
        self, device_id: uuid.UUID, to_jid: str, text: str, reply_to: QuotedMessage | None = None
    ) -> SentMessage: ...

    @abstractmethod
    async def send_media(self, device_id: uuid.UUID, to_jid: str, media: OutgoingMedia) -> SentMessage: ...

    @abstractmethod
    async def send_reaction(
        self, device_id: uuid.UUID, chat_jid: str, target_message_id: str, emoji: str, *,
        target_from_me: bool = False, target_sender_jid: str = "",
    ) -> SentMessage:
        """React to ``target_message_id`` in ``chat_jid``; an empty emoji removes the reaction."""

    @abstractmethod
    async def send_poll(
        self, device_id: uuid.UUID, to_jid: str, question: str, options: list[str], max_selections: int
    ) -> SentMessage: ...

    @abstractmethod
    async def send_presence(self, device_id: uuid.UUID, chat_jid: str, state: ChatState) -> None:
        """Chat presence in ``chat_jid``: ``composing`` (the contact sees "typing…") or ``paused`` (stops it).
        Best effort for callers: it carries no message (docs/NUMBER_HEALTH.md, simulated typing)."""

    # reading
    @abstractmethod
    async def fetch_contacts(self, device_id: uuid.UUID) -> list[DeviceContact]: ...

    @abstractmethod
    async def pn_for_lid(self, device_id: uuid.UUID, jid: str) -> str | None:
        """The phone JID (``<pn>@s.whatsapp.net``) the store maps a ``…@lid`` JID to, if known."""

    @abstractmethod
    async def download_media(self, device_id: uuid.UUID, message: WAMessage) -> bytes:
        """The decrypted bytes of the media in ``message`` (a ``MessageEv.Message``)."""

    @abstractmethod
    async def decrypt_poll_vote(self, device_id: uuid.UUID, event: MessageEv) -> list[bytes]:
        """SHA-256 hashes of the option names selected by a poll-vote ``MessageEv`` (empty = retracted)."""

    @abstractmethod
    async def profile_picture(self, device_id: uuid.UUID, jid: str) -> bytes | None:
        """The full-size profile picture (JPEG bytes) of ``jid`` as seen by the device, or None when it has
        none, hides it, or anything fails (never raises: avatars are best effort, B.16.5)."""


# -- JIDs -------------------------------------------------------------------------------------------
def parse_jid(text: str) -> JID:
    """whatsmeow's ``ParseJID`` plus Clarin's fix for bare numbers (B.6 quirk 7).

    ``51987654321``, ``+51 987-654-321`` → ``51987654321@s.whatsapp.net``; ``user[.agent][:device]@server``
    as is. Anything else raises :class:`InvalidJID`.
    """
    raw = (text or "").strip()
    if "@" not in raw:
        digits = _PHONE_JUNK.sub("", raw)
        if digits.isdigit() and 5 <= len(digits) <= 20:
            return JID(User=digits, Server=USER_SERVER)
        raise InvalidJID(f"invalid JID: {text}")
    match = _JID_RE.match(raw)
    if match is None or (match["server"] in (USER_SERVER, LID_SERVER) and not match["user"]):
        raise InvalidJID(f"invalid JID: {text}")
    return JID(
        User=match["user"],
        RawAgent=int(match["agent"] or 0),
        Device=int(match["device"] or 0),
        Server=match["server"],
    )


def jid_to_str(jid: JID) -> str:
    """whatsmeow's ``JID.String()``."""
    if jid.RawAgent > 0:
        return f"{jid.User}.{jid.RawAgent}:{jid.Device}@{jid.Server}"
    if jid.Device > 0:
        return f"{jid.User}:{jid.Device}@{jid.Server}"
    if jid.User:
        return f"{jid.User}@{jid.Server}"
    return jid.Server


def non_ad(jid: str) -> str:
    """``51987654321:5@s.whatsapp.net`` → ``51987654321@s.whatsapp.net`` (B.6)."""
    parsed = parse_jid(jid)
    return jid_to_str(JID(User=parsed.User, Server=parsed.Server))


def jid_user(jid: str) -> str:
    """The user part without agent/device: the phone digits for ``s.whatsapp.net`` JIDs."""
    return jid.split("@", 1)[0].split(":", 1)[0].split(".", 1)[0]


def complete(message: M) -> M:
    """Give every unset ``required`` field (neonize's event protos are proto2 with many) its default, at
    any depth, so an event built in Python serializes like one decoded from neonize. Returns ``message``."""
    for field in message.DESCRIPTOR.fields:  # type: ignore[attr-defined]
        value = getattr(message, field.name)
        if field.is_repeated:
            if field.message_type is not None:
                for item in value:
                    complete(item)
        elif field.message_type is not None:
            if message.HasField(field.name) or field.is_required:  # type: ignore[attr-defined]
                value.SetInParent()
                complete(value)
        elif field.is_required and not message.HasField(field.name):  # type: ignore[attr-defined]
            setattr(message, field.name, field.default_value)
    return message


def proto_time(value: int) -> datetime:
    """A neonize timestamp (Unix seconds; milliseconds tolerated) as an aware UTC datetime."""
    if value <= 0:
        return datetime.now(UTC).replace(microsecond=0)
    seconds = value / 1000 if value > 100_000_000_000 else value
    return datetime.fromtimestamp(seconds, UTC)


# -- QR ---------------------------------------------------------------------------------------------
def qr_data_url(code: bytes | str, size: int = QR_SIZE) -> str:
    """One pairing code → ``data:image/png;base64,…``: a ``size``×``size`` PNG, error correction M."""
    import segno  # neonize's own dependency
    from PIL import Image

    text = code.decode() if isinstance(code, bytes) else code
    qr = segno.make_qr(text, error="m", boost_error=False)
    width, _ = qr.symbol_size(scale=1, border=4)
    scale = max(1, size // width)
    buf = io.BytesIO()
    qr.save(buf, kind="png", scale=scale, border=4)
    symbol = Image.open(io.BytesIO(buf.getvalue())).convert("L")
    if symbol.size != (size, size):
        canvas = Image.new("L", (size, size), 255)
        symbol = symbol.resize((min(size, symbol.width), min(size, symbol.height)), Image.Resampling.NEAREST)
        canvas.paste(symbol, ((size - symbol.width) // 2, (size - symbol.height) // 2))
        symbol = canvas
    out = io.BytesIO()
    symbol.save(out, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


# -- message builders shared by both drivers (so both send identical payloads) ----------------------
def build_text_message(text: str, reply_to: QuotedMessage | None = None) -> WAMessage:
    """B.12: plain ``conversation``; a reply is ``extendedTextMessage`` quoting the body as plain text."""
    if reply_to is None or not reply_to.message_id:
        return WAMessage(conversation=text)
    context = e2e.ContextInfo(
        stanzaID=reply_to.message_id, quotedMessage=WAMessage(conversation=reply_to.body)
    )
    if reply_to.sender_jid:
        context.participant = reply_to.sender_jid
    return WAMessage(extendedTextMessage=e2e.ExtendedTextMessage(text=text, contextInfo=context))


def build_media_message(media: OutgoingMedia, upload: MediaUpload) -> WAMessage:
    """B.13: image/video with caption, audio always as voice note, document with file name and caption,
    sticker forced to ``image/webp``. No thumbnails or dimensions (as the original)."""
    common: dict[str, Any] = {
        "URL": upload.url,
        "directPath": upload.direct_path,
        "mediaKey": upload.media_key,
        "fileEncSHA256": upload.file_enc_sha256,
        "fileSHA256": upload.file_sha256,
        "fileLength": upload.file_length,
        "mediaKeyTimestamp": int(time.time()),
    }
    kind = media.kind
    if kind == "image":
        return WAMessage(imageMessage=e2e.ImageMessage(mimetype=media.mimetype, caption=media.caption, **common))
    if kind == "video":
        return WAMessage(videoMessage=e2e.VideoMessage(mimetype=media.mimetype, caption=media.caption, **common))
    if kind == "audio":
        return WAMessage(audioMessage=e2e.AudioMessage(mimetype=media.mimetype, PTT=True, **common))
    if kind == "document":
        return WAMessage(documentMessage=e2e.DocumentMessage(
            mimetype=media.mimetype, caption=media.caption, fileName=media.file_name,
            title=media.file_name, **common,
        ))
    if kind == "sticker":
        return WAMessage(stickerMessage=e2e.StickerMessage(mimetype="image/webp", **common))
    raise DriverError(f"unsupported media type: {kind}")


def build_reaction_message(
    chat_jid: str, target_message_id: str, emoji: str, *, target_from_me: bool = False,
    target_sender_jid: str = "",
) -> WAMessage:
    key = MessageKey(remoteJID=chat_jid, fromMe=target_from_me, ID=target_message_id)
    if target_sender_jid:
        key.participant = target_sender_jid
    return WAMessage(reactionMessage=e2e.ReactionMessage(
        key=key, text=emoji, senderTimestampMS=int(time.time() * 1000)
    ))


def build_poll_message(question: str, options: list[str], max_selections: int, secret: bytes) -> WAMessage:
    """``pollCreationMessage`` (v1) with a message secret, so votes on Clarin's polls can be decrypted
    (fixes B.17 quirk 8)."""
    return WAMessage(
        pollCreationMessage=e2e.PollCreationMessage(
            name=question,
            options=[e2e.PollCreationMessage.Option(optionName=o) for o in options],
            selectableOptionsCount=max(1, max_selections),
        ),
        messageContextInfo=e2e.MessageContextInfo(messageSecret=secret),
    )


def option_hash(name: str) -> bytes:
    """How WhatsApp identifies a poll option in a vote: SHA-256 of the option name (B.9)."""
    return hashlib.sha256(name.encode()).digest()
