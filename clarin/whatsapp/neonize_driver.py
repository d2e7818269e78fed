"""The production driver: one neonize (whatsmeow) async client per device.

Session storage: neonize opens the whatsmeow SQL store from the client's ``name`` string; a name that
starts with ``postgres`` opens it in PostgreSQL (lib/pq), so sessions live in the **application's own
database** (the ``whatsmeow_*`` tables, created on first connect), exactly like the original (B.1) —
they survive restarts and are shared by every server, which the device lease needs for take-over.
lib/pq defaults to ``sslmode=require``; a URL without ``sslmode`` gets ``sslmode=prefer`` (libpq's
default, what the rest of Clarin uses).

Clients: a new pairing is ``NewAClient(store, uuid=<device id>, new_device=True)`` (QR flow); a paired
device resumes with ``jid=<stored AD JID>``. neonize keys its Go-side client by ``jid.User`` when a JID
is given, which would collide when one phone is linked twice; every client is re-keyed to the device id.

Threads: neonize runs each call through ``asyncio.to_thread`` and keeps one thread blocked per
connected client for the life of the session, so the loop's default executor is replaced by a larger
one at start-up (``WHATSAPP_THREADS``, default 512 — threads are created lazily).

Building a client opens nothing: no socket, no database connection, no Go-side state until
``connect()``, which is ``attach`` (client built with its handlers, made the device's current one) then
``_dial`` (the Go session). tests/test_neonize_events.py drives an attached client's callbacks the way
goneonize does. The installed neonize is checked when the driver is built (clarin/neonize_check.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import httpx
from neonize._binder import consume_bytes_struct, gocode
from neonize.aioze.client import ChatSettingsStore, ContactStore, NewAClient
from neonize.proto.Neonize_pb2 import GetProfilePictureParams, ReturnFunctionWithError
from neonize.proto.waCompanionReg.WAWebProtobufsCompanionReg_pb2 import DeviceProps
from neonize.utils.enum import ChatPresence, ChatPresenceMedia, MediaType, VoteType

from clarin.neonize_check import require_neonize
from clarin.whatsapp.driver import (
    LID_SERVER,
    USER_SERVER,
    ChatState,
    DeviceContact,
    DeviceSession,
    DriverError,
    MediaUpload,
    NotConnected,
    OutgoingMedia,
    QuotedMessage,
    SentMessage,
    WhatsAppDriver,
    build_media_message,
    build_reaction_message,
    build_text_message,
    complete,
    jid_to_str,
    parse_jid,
    proto_time,
    qr_data_url,
)
from clarin.whatsapp.proto import (
    JID,
    ClientOutdatedEv,
    ConnectedEv,
    ConnectFailureEv,
    DisconnectedEv,
    HistorySyncEv,
    LoggedOutEv,
    MessageEv,
    PairStatusEv,
    PresenceEv,
    QREv,
    ReceiptEv,
    StreamReplacedEv,
    TemporaryBanEv,
    UndecryptableMessageEv,
    WAMessage,
)

log = logging.getLogger("clarin.whatsapp.neonize")

DEVICE_OS = "Clarin CRM"  # shown on the phone under "Linked devices" (B.1)
DEFAULT_THREADS = 512
AVATAR_TIMEOUT = 15.0  # seconds, the whole picture download (the original had none, B.16.5)
AVATAR_MAX_BYTES = 5 * 1024 * 1024

# Events forwarded to the sink. Lifecycle ones are handled by the pool, the rest by the inbound handler.
FORWARDED_EVENTS: tuple[type[Any], ...] = (
    ConnectedEv,
    DisconnectedEv,
    LoggedOutEv,
    PairStatusEv,
    ConnectFailureEv,
    StreamReplacedEv,
    TemporaryBanEv,
    ClientOutdatedEv,
    MessageEv,
    ReceiptEv,
    PresenceEv,
    HistorySyncEv,
    UndecryptableMessageEv,
)

_MEDIA_TYPES = {
    "image": MediaType.MediaImage,
    "sticker": MediaType.MediaImage,  # as the original: stickers upload as images (B.13)
    "video": MediaType.MediaVideo,
    "audio": MediaType.MediaAudio,
    "document": MediaType.MediaDocument,
}


def session_store_url(database_url: str) -> str:
    """The whatsmeow store location handed to neonize: the app's PostgreSQL URL, made lib/pq-friendly."""
    if not database_url.startswith(("postgres://", "postgresql://")):
        return database_url
    if "sslmode=" in (urlsplit(database_url).query or ""):
        return database_url
    return database_url + ("&" if "?" in database_url else "?") + "sslmode=prefer"


class NeonizeDriver(WhatsAppDriver):
    name = "neonize"

    def __init__(self, database_url: str, *, threads: int | None = None) -> None:
        require_neonize()  # an unsupported neonize fails here, loudly, not at the first connect or send
        super().__init__()
        self.store = session_store_url(database_url)
        self._threads = threads or int(os.environ.get("WHATSAPP_THREADS") or DEFAULT_THREADS)
        self._clients: dict[uuid.UUID, NewAClient] = {}
        self._sessions: dict[uuid.UUID, DeviceSession] = {}  # devices we keep running until disconnect()
        self._failures: dict[uuid.UUID, int] = {}
        self._stopping: set[int] = set()  # id() of clients we are stopping on purpose
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="neonize"))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for device_id in list(self._clients):
            await self.disconnect(device_id)

    # -- clients --------------------------------------------------------------------------------
    def build_client(self, device: DeviceSession) -> NewAClient:
        """A client for ``device`` with every handler registered. Opens nothing."""
        jid = go_jid(device.jid) if device.jid else None
        props = DeviceProps(os=DEVICE_OS, requireFullSync=False)
        client = NewAClient(self.store, jid=jid, props=props, uuid=str(device.id), new_device=jid is None)
        _rekey(client, str(device.id))
        client.qr(partial(self._on_qr, device.id))
        forward = partial(self._forward, device.id)
        for event_class in FORWARDED_EVENTS:
            client.event(event_class)(forward)
        return client

    async def _on_qr(self, device_id: uuid.UUID, _client: NewAClient, code: bytes) -> None:
        url = await asyncio.to_thread(qr_data_url, code)
        await self.emit(device_id, complete(QREv(Codes=[url])))

    async def _forward(self, device_id: uuid.UUID, client: NewAClient, event: Any) -> None:
        if self._clients.get(device_id) is not client:
            return  # a replaced or stopped client
        session = self._sessions.get(device_id)
        if isinstance(event, PairStatusEv) and event.Status == PairStatusEv.SUCCESS and session is not None:
            self._sessions[device_id] = DeviceSession(session.id, session.account_id, jid_to_str(event.ID))
        elif isinstance(event, ConnectedEv):
            self._failures.pop(device_id, None)
        await self.emit(device_id, event)

    def _client(self, device_id: uuid.UUID) -> NewAClient:
        client = self._clients.get(device_id)
        # A client neonize never started has no Go-side session: goneonize dereferences a nil client for some
        # calls (GetMe, GetAllContacts, GetPNFromLID) and that kills the whole process.
        if client is None or client.connect_task is None:
            raise NotConnected(f"device not connected: {device_id}")
        return client

    # -- lifecycle ------------------------------------------------------------------------------
    async def connect(self, device: DeviceSession) -> None:
        old = self._clients.pop(device.id, None)
        if old is not None:
            await self._shutdown(old)
        client = self.attach(device)
        try:
            task = await self._dial(client)
        except Exception as exc:
            self._clients.pop(device.id, None)
            self._sessions.pop(device.id, None)
            raise DriverError(f"failed to connect: {exc}") from exc
        task.add_done_callback(partial(self._on_client_exit, device.id, client))

    def attach(self, device: DeviceSession) -> NewAClient:
        """Build the device's client and make it the one whose events are forwarded; connects nothing."""
        self._sessions[device.id] = device
        client = self.build_client(device)
        self._clients[device.id] = client
        return client

    async def _dial(self, client: NewAClient) -> asyncio.Task[Any]:
        """Start the Go session (socket, store); the task ends when the session does."""
        return await client.connect()

    def _on_client_exit(self, device_id: uuid.UUID, client: NewAClient, task: asyncio.Task[Any]) -> None:
        """neonize's connect task ends when the Go session stops. whatsmeow reconnects dropped sockets by
        itself; an unexpected end of the whole session (store error, crash) is reported as a Disconnected
        and the session is restarted with a growing delay until ``disconnect()``."""
        if id(client) in self._stopping:
            self._stopping.discard(id(client))
            return
        if task.cancelled() or self._clients.get(device_id) is not client:
            return
        exc = task.exception()
        log.warning("WhatsApp session of device %s ended unexpectedly: %s", device_id, exc)
        self._clients.pop(device_id, None)
        client._stop_finalizer.detach()  # see _shutdown
        failures = self._failures[device_id] = self._failures.get(device_id, 0) + 1
        self._spawn(self.emit(device_id, complete(DisconnectedEv(status=False))))
        self._spawn(self._restart(device_id, min(60.0, 2.0 * failures)))

    async def _restart(self, device_id: uuid.UUID, delay: float) -> None:
        await asyncio.sleep(delay)
        session = self._sessions.get(device_id)
        if session is None or device_id in self._clients:
            return  # disconnected meanwhile, or already reconnected
        try:
            await self.connect(session)
        except DriverError as exc:
            log.warning("restarting device %s failed: %s", device_id, exc)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shutdown(self, client: NewAClient) -> None:
        self._stopping.add(id(client))
        for step in (client.disconnect, client.stop):
            try:
                await step()
            except Exception as exc:
                log.debug("neonize %s: %s", step.__name__, exc)
        # neonize stops the Go session again when the Python object is collected; the key (device id) may
        # belong to a newer client of the same device by then, so this one must not.
        client._stop_finalizer.detach()
        if client.connect_task is None or client.connect_task.done():
            self._stopping.discard(id(client))  # no exit callback will consume the mark

    async def disconnect(self, device_id: uuid.UUID) -> None:
        self._sessions.pop(device_id, None)
        self._failures.pop(device_id, None)
        client = self._clients.pop(device_id, None)
        if client is not None:
            await self._shutdown(client)

    async def logout(self, device_id: uuid.UUID) -> None:
        client = self._client(device_id)
        try:
            await client.logout()
        except Exception as exc:
            raise DriverError(f"failed to log out: {exc}") from exc
        finally:
            await self.disconnect(device_id)

    async def is_connected(self, device_id: uuid.UUID) -> bool:
        client = self._clients.get(device_id)
        if client is None:
            return False
        try:
            return bool(await client.is_connected)  # neonize: an awaitable property
        except Exception:
            return False

    async def own_jid(self, device_id: uuid.UUID) -> str | None:
        client = self._clients.get(device_id)
        if client is None or client.connect_task is None:  # never started: see _client
            return None
        try:
            me = await client.get_me()
        except Exception as exc:
            log.debug("get_me failed for %s: %s", device_id, exc)
            return None
        return jid_to_str(me.JID) if me.JID.User else None

    # -- sending --------------------------------------------------------------------------------
    async def _send(self, device_id: uuid.UUID, to_jid: str, message: WAMessage) -> SentMessage:
        client = self._client(device_id)
        to = go_jid(to_jid)
        try:
            response = await client.send_message(to, message)
        except Exception as exc:
            raise DriverError(f"failed to send message: {exc}") from exc
        return SentMessage(response.ID, proto_time(response.Timestamp))

    async def send_text(
        self, device_id: uuid.UUID, to_jid: str, text: str, reply_to: QuotedMessage | None = None
    ) -> SentMessage:
        return await self._send(device_id, to_jid, build_text_message(text, reply_to))

    async def send_media(self, device_id: uuid.UUID, to_jid: str, media: OutgoingMedia) -> SentMessage:
        client = self._client(device_id)
        media_type = _MEDIA_TYPES.get(media.kind)
        if media_type is None:
            raise DriverError(f"unsupported media type: {media.kind}")
        try:
            up = await client.upload(media.data, media_type)
        except Exception as exc:
            raise DriverError(f"failed to upload to WhatsApp: {exc}") from exc
        upload = MediaUpload(up.url, up.DirectPath, up.MediaKey, up.FileEncSHA256, up.FileSHA256, up.FileLength)
        return await self._send(device_id, to_jid, build_media_message(media, upload))

    async def send_reaction(
        self, device_id: uuid.UUID, chat_jid: str, target_message_id: str, emoji: str, *,
        target_from_me: bool = False, target_sender_jid: str = "",
    ) -> SentMessage:
        message = build_reaction_message(
            chat_jid, target_message_id, emoji, target_from_me=target_from_me, target_sender_jid=target_sender_jid
        )
        return await self._send(device_id, chat_jid, message)

    async def send_poll(
        self, device_id: uuid.UUID, to_jid: str, question: str, options: list[str], max_selections: int
    ) -> SentMessage:
        client = self._client(device_id)
        vote_type = VoteType.SINGLE if max_selections <= 1 else VoteType.MULTIPLE
        try:
            # whatsmeow's builder adds the message secret (and stores it once sent) so votes decrypt.
            message = await client.build_poll_vote_creation(question, options, vote_type)
        except Exception as exc:
            raise DriverError(f"failed to build poll: {exc}") from exc
        for field in ("pollCreationMessage", "pollCreationMessageV3"):
            if message.HasField(field):
                getattr(message, field).selectableOptionsCount = max(1, max_selections)
        return await self._send(device_id, to_jid, message)

    async def send_presence(self, device_id: uuid.UUID, chat_jid: str, state: ChatState) -> None:
        client = self._client(device_id)
        presence = ChatPresence.CHAT_PRESENCE_COMPOSING if state == "composing" else ChatPresence.CHAT_PRESENCE_PAUSED
        try:
            await client.send_chat_presence(go_jid(chat_jid), presence, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT)
        except Exception as exc:
            raise DriverError(f"failed to send presence: {exc}") from exc

    # -- reading --------------------------------------------------------------------------------
    async def fetch_contacts(self, device_id: uuid.UUID) -> list[DeviceContact]:
        client = self._client(device_id)
        try:
            entries = await client.contact.get_all_contacts()
        except Exception as exc:
            raise DriverError(f"failed to read contacts: {exc}") from exc
        out: list[DeviceContact] = []
        for entry in entries:
            jid = JID(User=entry.JID.User, Server=entry.JID.Server)
            if jid.Server not in (USER_SERVER, LID_SERVER) or not jid.User:
                continue
            if jid.Server == LID_SERVER:
                resolved = await self._pn(client, complete(jid))
                if resolved is not None:
                    jid = resolved
            info = entry.Info
            out.append(DeviceContact(
                jid=jid_to_str(jid),
                phone=jid.User,
                name=info.FullName or info.FirstName or info.BusinessName,
                push_name=info.PushName,
                business_name=info.BusinessName,
            ))
        return out

    @staticmethod
    async def _pn(client: NewAClient, lid: JID) -> JID | None:
        try:
            pn = await client.get_pn_from_lid(lid)
        except Exception:
            return None
        return JID(User=pn.User, Server=pn.Server or USER_SERVER) if pn.User else None

    async def pn_for_lid(self, device_id: uuid.UUID, jid: str) -> str | None:
        parsed = parse_jid(jid)
        if parsed.Server != LID_SERVER:
            return None
        pn = await self._pn(self._client(device_id), go_jid(f"{parsed.User}@{LID_SERVER}"))
        return jid_to_str(pn) if pn is not None else None

    async def download_media(self, device_id: uuid.UUID, message: WAMessage) -> bytes:
        client = self._client(device_id)
        try:
            data = await client.download_any(message)
        except Exception as exc:
            raise DriverError(f"failed to download media: {exc}") from exc
        return data or b""

    async def decrypt_poll_vote(self, device_id: uuid.UUID, event: MessageEv) -> list[bytes]:
        client = self._client(device_id)
        try:
            vote = await _decrypt_poll_vote(client, event)
        except DriverError:
            raise
        except Exception as exc:
            raise DriverError(f"failed to decrypt poll vote: {exc}") from exc
        return list(vote.selectedOptions)

    async def profile_picture(self, device_id: uuid.UUID, jid: str) -> bytes | None:
        client = self._clients.get(device_id)
        if client is None or client.connect_task is None:  # never started: see _client
            return None
        try:
            parsed = parse_jid(jid)
            target = complete(JID(User=parsed.User, Server=parsed.Server))
            # neonize runs the Go call in a worker thread (async_gocode): the loop is not blocked
            async with asyncio.timeout(AVATAR_TIMEOUT):
                info = await client.get_profile_picture(target, GetProfilePictureParams(Preview=False))
            if not info.URL:
                return None
            async with asyncio.timeout(AVATAR_TIMEOUT):
                return await _download_picture(info.URL)
        except Exception as exc:  # no picture, privacy settings, network: an avatar is never worth an error
            log.debug("profile picture of %s via %s unavailable: %s", jid, device_id, exc)
            return None


async def _download_picture(url: str) -> bytes | None:
    """GET ``url`` with a timeout and a size cap; None on any non-200 answer or an oversized body."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(AVATAR_TIMEOUT), follow_redirects=True) as http:
        async with http.stream("GET", url) as response:
            if response.status_code != 200:
                return None
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > AVATAR_MAX_BYTES:
                return None
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > AVATAR_MAX_BYTES:
                    return None
                chunks.append(chunk)
    data = b"".join(chunks)
    return data or None


def go_jid(text: str) -> JID:
    """``text`` as a JID neonize can send to Go: its ``JID`` is proto2 with every field but ``IsEmpty`` required, so
    one missing ``Integrator`` (``parse_jid`` leaves it unset) fails serialization (send, resume, LID lookup)."""
    return complete(parse_jid(text))


async def _decrypt_poll_vote(client: NewAClient, event: MessageEv) -> Any:
    """``client.decrypt_poll_vote`` of neonize 0.5.2 always fails (``TypeError: expected bytes, LP_Bytes found``):
    ``DecryptPollVote`` is missing from the FFI calls whose ``Bytes*`` result neonize converts, so the raw pointer
    reaches protobuf. Same Go call here, its result taken (and freed) with neonize's own converter."""
    data = event.SerializeToString()
    raw = await asyncio.to_thread(gocode.DecryptPollVote, client.uuid, data, len(data))
    result = ReturnFunctionWithError.FromString(raw if isinstance(raw, bytes) else consume_bytes_struct(raw, None, None))
    if result.Error:
        raise DriverError(result.Error)
    return result.PollVoteMessage


def _rekey(client: NewAClient, key: str) -> None:
    """Key the Go-side client by the device id (not the phone number), finaliser included."""
    raw = key.encode()
    if client.uuid == raw:
        return
    client._stop_finalizer.detach()
    client.uuid = raw
    client.contact = ContactStore(raw)
    client.chat_settings = ChatSettingsStore(raw)
    client._stop_finalizer = weakref.finalize(client, NewAClient._release_ffi, raw, gocode)
