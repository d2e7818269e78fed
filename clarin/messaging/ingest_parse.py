"""Inbound neonize events → plain records (integrations.md B.5–B.10), with no I/O.

:func:`parse_event` turns one event into an :class:`Inbound` (a message, poll, reaction, poll vote, edit or
revoke), a :class:`Receipt`, a :class:`Presence`, or ``None`` when the event is ignored by design (groups,
status broadcasts, newsletters, history sync, protocol/key-share messages, lifecycle leftovers, unknown
event types). A corrupt event (no chat or id, out-of-range timestamp, a non-protobuf object dressed as an
event, …) raises: the caller logs it and skips it, the rest of the batch goes on.

Text is made storable here: NUL characters (PostgreSQL rejects them) are removed and every value is cut to
its column's length, so one odd message can never fail the batch it travels in.

Classification (B.7 step 3, first match wins, after unwrapping ephemeral / view-once / document-with-caption
/ edited / device-sent wrappers). Differences from the original's "anything else is a blank text message"
(B.17 quirk 1), all documented in docs/INGESTION.md:

- ``location`` / live location → ``message_type='location'``, body ``📍 <name>\\n<lat>,<long>``;
- ``contact`` (card or array) → ``message_type='contact'``, body ``👤 <name>`` plus the vCard phone numbers;
- poll creation v1, v2, v3, v5, v6 (not only v1) → ``poll``;
- button / list replies → ``text`` with the selected text;
- edits and revokes → :class:`Inbound` ``edit`` / ``revoke`` aimed at the target message (no new row);
- protocol messages (history-sync notices, key shares, ephemeral settings…) and sender-key-only
  messages → ignored (no row, no unread, no lead).
"""

from __future__ import annotations

import logging
import posixpath
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from clarin.crm.phones import valid_user
from clarin.messaging.polls import poll_body, poll_preview
from clarin.whatsapp.driver import GROUP_SERVER, LID_SERVER, USER_SERVER, proto_time
from clarin.whatsapp.proto import HistorySyncEv, MessageEv, PresenceEv, ReceiptEv, WAMessage, e2e

log = logging.getLogger("clarin.ingest")

DROPPED_SERVERS = frozenset({GROUP_SERVER, "broadcast", "newsletter"})
WRAPPERS = ("ephemeralMessage", "viewOnceMessage", "viewOnceMessageV2", "viewOnceMessageV2Extension",
            "documentWithCaptionMessage", "editedMessage", "botInvokeMessage")
POLL_FIELDS = tuple(
    f.name for f in e2e.Message.DESCRIPTOR.fields
    if f.name.startswith("pollCreationMessage") and f.message_type is not None
    and f.message_type.name == "PollCreationMessage"
)
QUOTE_SOURCES = ("extendedTextMessage", "imageMessage", "videoMessage", "audioMessage", "documentMessage",
                 "stickerMessage", "ptvMessage", "locationMessage", "contactMessage")
# Fields that carry no user-visible content on their own.
NON_CONTENT = frozenset({"senderKeyDistributionMessage", "fastRatchetKeySenderKeyDistributionMessage",
                         "messageContextInfo"})
MEDIA_EXT = {"image": ".jpg", "video": ".mp4", "audio": ".ogg", "sticker": ".webp"}
_EXT_RE = re.compile(r"^\.[A-Za-z0-9]{1,10}$")

# Column lengths (sql/migrations/0001_schema.sql).
JID_LEN = 255
ID_LEN = 255
NAME_LEN = 255
PHONE_LEN = 50
MIME_LEN = 100
EMOJI_LEN = 50

READ_TYPES = frozenset({ReceiptEv.READ, ReceiptEv.PLAYED})
DELIVERED_TYPES = frozenset({ReceiptEv.DELIVERED})


def clean(text: str, limit: int = 0) -> str:
    """Storable text: NULs removed, cut to ``limit`` characters (0 = no limit)."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text[:limit] if limit and len(text) > limit else text


@dataclass(slots=True)
class Inbound:
    """One message-like event of a 1:1 chat. ``chat_jid`` is LID-resolved later (``raw_chat_jid`` never)."""

    kind: str  # message | poll | reaction | vote | edit | revoke
    message_id: str  # the event's stanza id
    raw_chat_jid: str  # non-AD chat JID as received (media folder, may be @lid)
    sender_jid: str  # non-AD sender, not LID-resolved (from_jid / sender_jid / voter_jid)
    push_name: str
    is_from_me: bool
    timestamp: datetime
    chat_hint: str = ""  # the chat's phone JID when the event itself carries it (SenderAlt / RecipientAlt)
    chat_jid: str = ""  # LID-resolved chat JID (filled by the ingestor)
    message_type: str = "text"
    body: str = ""
    preview: str = ""  # chat last_message text (= body except polls)
    # media
    media_kind: str = ""  # image | video | audio | document | sticker
    mimetype: str = ""
    file_name: str = ""
    file_length: int = 0
    media_ext: str = ""
    media_url: str = ""
    content: WAMessage | None = field(default=None, repr=False)  # unwrapped payload (media download)
    # quotes
    quoted_message_id: str | None = None
    quoted_body: str | None = None
    quoted_sender: str | None = None
    # polls
    poll_question: str = ""
    poll_options: list[str] = field(default_factory=list)
    poll_max_selections: int = 1
    # reactions / votes / edits / revokes
    target_id: str = ""
    emoji: str = ""
    vote_hashes: list[str] = field(default_factory=list)  # hex SHA-256 of the selected option names
    event: Any = field(default=None, repr=False)  # the MessageEv (poll vote decryption)


@dataclass(slots=True)
class Receipt:
    chat_jid: str  # non-AD, as received (the WS payload); resolved separately for the DB update
    message_ids: list[str]
    status: str  # delivered | read
    timestamp: datetime
    resolved_chat_jid: str = ""


@dataclass(slots=True)
class Presence:
    jid: str
    available: bool
    last_seen_at: datetime | None


Record = Inbound | Receipt | Presence


class CorruptEvent(ValueError):
    pass


def bare(jid: Any) -> str:
    """Non-AD form of a neonize ``JID`` (device and agent dropped)."""
    user, server = jid.User, jid.Server
    return f"{user}@{server}" if user else server


def parse_event(event: Any) -> Record | None:
    if isinstance(event, MessageEv):
        return parse_message(event)
    if isinstance(event, ReceiptEv):
        return parse_receipt(event)
    if isinstance(event, PresenceEv):
        return parse_presence(event)
    if isinstance(event, HistorySyncEv):
        log.info("history sync with %d conversations ignored (history is not imported)",
                 len(event.Data.conversations))
        return None
    log.debug("ignoring %s", type(event).__name__)
    return None


# -- messages ---------------------------------------------------------------------------------------
def parse_message(event: Any) -> Inbound | None:
    info = event.Info
    source = info.MessageSource
    chat = source.Chat
    if chat.Server in DROPPED_SERVERS or source.IsGroup:
        return None
    if not chat.User or not chat.Server:
        raise CorruptEvent("message without a chat JID")
    if not info.ID:
        raise CorruptEvent("message without an id")
    if not valid_user(chat.User, chat.Server):
        # The phone rule of every entry point: a "phone" chat whose user is not 7-15 ASCII digits (fullwidth
        # digits, emoji...) never becomes a chat, contact or lead. Groups, broadcasts are dropped above.
        log.info("message %s from a chat that is not a phone (%r) ignored", info.ID[:64], bare(chat)[:80])
        return None
    content = unwrap(event.Message)
    record = Inbound(
        kind="message",
        message_id=clean(info.ID, ID_LEN),
        raw_chat_jid=clean(bare(chat), JID_LEN),
        sender_jid=clean(bare(source.Sender) if source.Sender.User else bare(chat), JID_LEN),
        push_name=clean(info.Pushname, NAME_LEN),
        is_from_me=bool(source.IsFromMe),
        timestamp=proto_time(int(info.Timestamp)),
        chat_hint=_chat_hint(source),
        event=event,
    )
    if not _classify(record, content):
        return None
    if record.kind == "message" and not record.preview:
        record.preview = record.body
    return record


def unwrap(message: WAMessage) -> WAMessage:
    """whatsmeow's unwrapping (already done by the real client; repeated here for robustness)."""
    for _ in range(6):
        for name in WRAPPERS:
            if message.HasField(name):
                message = getattr(message, name).message
                break
        else:
            if message.HasField("deviceSentMessage"):
                message = message.deviceSentMessage.message
                continue
            return message
    return message


def _chat_hint(source: Any) -> str:
    """The phone JID of an @lid chat when the event carries it (newer whatsmeow: SenderAlt/RecipientAlt)."""
    if source.Chat.Server != LID_SERVER:
        return ""
    alt = source.RecipientAlt if source.IsFromMe else source.SenderAlt
    if alt.User and alt.Server == USER_SERVER and valid_user(alt.User, USER_SERVER):
        return f"{alt.User}@{USER_SERVER}"
    return ""


def _classify(record: Inbound, m: WAMessage) -> bool:
    """Fill ``record`` from the payload; False = not a message worth storing."""
    if m.HasField("reactionMessage"):
        reaction = m.reactionMessage
        if not reaction.key.ID:
            return False
        record.kind, record.target_id = "reaction", clean(reaction.key.ID, ID_LEN)
        record.emoji = clean(reaction.text, EMOJI_LEN)
        return True
    if m.HasField("encReactionMessage"):
        return False  # encrypted (community) reactions: not decryptable here
    if m.HasField("pollUpdateMessage"):
        key = m.pollUpdateMessage.pollCreationMessageKey
        if not key.ID:
            return False  # B.9: poll key missing → ignore
        record.kind, record.target_id = "vote", clean(key.ID, ID_LEN)
        return True
    for name in POLL_FIELDS:
        if m.HasField(name):
            poll = getattr(m, name)
            question = clean(poll.name)
            options = [clean(o.optionName, NAME_LEN) for o in poll.options]
            record.kind, record.message_type = "poll", "poll"
            record.poll_question, record.poll_options = question, options
            record.poll_max_selections = poll.selectableOptionsCount if poll.selectableOptionsCount > 0 else 1
            record.body, record.preview = poll_body(question, options), poll_preview(question)
            return True
    if m.HasField("protocolMessage"):
        return _protocol(record, m.protocolMessage)
    if not _content(record, m):
        return False
    _quote(record, m)
    return True


def _protocol(record: Inbound, pm: Any) -> bool:
    if pm.type == e2e.ProtocolMessage.REVOKE and pm.key.ID:
        record.kind, record.target_id = "revoke", clean(pm.key.ID, ID_LEN)
        return True
    if pm.type == e2e.ProtocolMessage.MESSAGE_EDIT and pm.key.ID:
        edited = unwrap(pm.editedMessage)
        text = (edited.conversation or edited.extendedTextMessage.text or edited.imageMessage.caption
                or edited.videoMessage.caption)
        if not text:
            return False
        record.kind, record.target_id, record.body = "edit", clean(pm.key.ID, ID_LEN), clean(text)
        return True
    return False  # history-sync notices, key shares, ephemeral settings, …: not messages


def _content(record: Inbound, m: WAMessage) -> bool:
    if m.conversation:
        record.body = clean(m.conversation)
    elif m.HasField("extendedTextMessage"):
        record.body = clean(m.extendedTextMessage.text)
    elif m.HasField("imageMessage"):
        _media(record, m, "image", m.imageMessage, m.imageMessage.caption)
    elif m.HasField("videoMessage") or m.HasField("ptvMessage"):
        video = m.videoMessage if m.HasField("videoMessage") else m.ptvMessage
        _media(record, m, "video", video, video.caption)
    elif m.HasField("audioMessage"):
        _media(record, m, "audio", m.audioMessage, "")
    elif m.HasField("documentMessage"):
        doc = m.documentMessage
        name = clean(doc.fileName or doc.title, NAME_LEN)
        _media(record, m, "document", doc, name)
        record.file_name = name
        ext = posixpath.splitext(name)[1]
        record.media_ext = ext if _EXT_RE.match(ext) else ".bin"
    elif m.HasField("stickerMessage"):
        _media(record, m, "sticker", m.stickerMessage, "")
    elif m.HasField("locationMessage") or m.HasField("liveLocationMessage"):
        live = not m.HasField("locationMessage")
        loc = m.liveLocationMessage if live else m.locationMessage
        name = loc.caption if live else loc.name
        coords = f"{loc.degreesLatitude},{loc.degreesLongitude}"
        record.message_type = "location"
        record.body = clean(f"📍 {name}\n{coords}" if name else f"📍 {coords}")
    elif m.HasField("contactMessage"):
        card = m.contactMessage
        record.message_type = "contact"
        record.body = clean(_contact_body(card.displayName, [card.vcard]))
    elif m.HasField("contactsArrayMessage"):
        cards = m.contactsArrayMessage
        name = cards.displayName or ", ".join(c.displayName for c in cards.contacts if c.displayName)
        record.message_type = "contact"
        record.body = clean(_contact_body(name, [c.vcard for c in cards.contacts]))
    elif m.HasField("buttonsResponseMessage"):
        record.body = clean(m.buttonsResponseMessage.selectedDisplayText)
    elif m.HasField("templateButtonReplyMessage"):
        record.body = clean(m.templateButtonReplyMessage.selectedDisplayText)
    elif m.HasField("listResponseMessage"):
        record.body = clean(m.listResponseMessage.title)
    else:
        present = {fd.name for fd, _ in m.ListFields()}
        if not present or present <= NON_CONTENT:
            return False  # key distribution only / empty: no message for the inbox
        # any other kind (interactive, event, call log, …): a blank text message, as the original
    return True


def _media(record: Inbound, m: WAMessage, kind: str, media: Any, body: str) -> None:
    record.message_type = record.media_kind = kind
    record.body = clean(body)
    record.mimetype = clean(media.mimetype or ("image/webp" if kind == "sticker" else ""), MIME_LEN)
    record.file_length = int(media.fileLength) if media.fileLength else 0
    record.media_ext = MEDIA_EXT.get(kind, ".bin")
    record.content = m


def _contact_body(name: str, vcards: list[str]) -> str:
    phones: list[str] = []
    for vcard in vcards:
        for line in (vcard or "").splitlines():
            head, _, value = line.partition(":")
            if head.upper().split(";", 1)[0].endswith("TEL") and value.strip():
                phones.append(value.strip())
    lines = [f"👤 {name or 'Contact'}", *phones]
    return "\n".join(lines)


def _quote(record: Inbound, m: WAMessage) -> None:
    """B.7 step 6: the first context info with a stanza id."""
    for name in QUOTE_SOURCES:
        if not m.HasField(name):
            continue
        part = getattr(m, name)
        if not part.HasField("contextInfo"):
            return
        context = part.contextInfo
        if not context.stanzaID:
            return
        record.quoted_message_id = clean(context.stanzaID, ID_LEN)
        record.quoted_sender = clean(context.participant, JID_LEN)
        record.quoted_body = clean(_quoted_text(context.quotedMessage)) if context.HasField("quotedMessage") else None
        return


def _quoted_text(q: WAMessage) -> str:
    if q.conversation:
        return q.conversation
    if q.HasField("extendedTextMessage"):
        return q.extendedTextMessage.text
    if q.HasField("imageMessage") and q.imageMessage.caption:
        return q.imageMessage.caption
    if q.HasField("videoMessage") and q.videoMessage.caption:
        return q.videoMessage.caption
    if q.HasField("documentMessage"):
        return q.documentMessage.fileName
    return "[media]"


# -- receipts and presence (B.10) -------------------------------------------------------------------
def parse_receipt(event: Any) -> Receipt | None:
    """Delivered → ``delivered``; read and played → ``read``. Other receipt types (sender, retry, server
    error, inactive, read-self, …) say nothing about the recipient having the message: ignored (the original
    reported all of them as ``delivered``)."""
    chat = event.MessageSource.Chat
    if chat.Server in ("broadcast", "newsletter"):
        return None
    if not chat.Server:
        raise CorruptEvent("receipt without a chat JID")
    if event.Type in READ_TYPES:
        status = "read"
    elif event.Type in DELIVERED_TYPES:
        status = "delivered"
    else:
        return None
    ids = [clean(i, ID_LEN) for i in event.MessageIDs if i]
    if not ids:
        return None
    return Receipt(clean(bare(chat), JID_LEN), ids, status, proto_time(int(event.Timestamp)))


def parse_presence(event: Any) -> Presence | None:
    sender = event.From
    if sender.Server not in (USER_SERVER, LID_SERVER) or not sender.User:
        return None
    last_seen = proto_time(int(event.LastSeen)) if event.LastSeen > 0 else None
    return Presence(bare(sender), not event.Unavailable, last_seen)
