"""The production neonize driver's event wiring, driven the way goneonize drives it, with no network.

goneonize hands every event of a subscribed type to the ctypes callback that neonize's ``connect()`` builds
from ``client.event.execute`` — ``(uuid, pointer, size, event code)``, called from a Go thread — and QR codes
to the one built from the client's ``__onQr``. :func:`go_deliver` / :func:`go_qr` make exactly those calls
with real neonize protobuf events, so everything after the socket runs for real: neonize's decoding and
dispatch, the handlers ``NeonizeDriver.build_client`` registers, the device pool, the ingestor, PostgreSQL,
Redis and the WebSocket hub. The only part left out is the Go session itself (``NeonizeDriver._dial``),
which needs WhatsApp's servers.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from neonize._binder import func_callback_bytes, func_string
from neonize.aioze import events as neonize_events
from neonize.aioze.client import NewAClient
from neonize.events import EVENT_TO_INT
from neonize.proto.Neonize_pb2 import AddressingMode, ConnectFailureReason

from clarin.whatsapp.driver import DeviceSession, DriverError, NotConnected, complete, qr_data_url
from clarin.whatsapp.neonize_driver import NeonizeDriver, _decrypt_poll_vote, go_jid
from clarin.whatsapp.proto import (
    JID,
    ConnectedEv,
    DisconnectedEv,
    LoggedOutEv,
    MessageEv,
    MessageInfo,
    MessageKey,
    MessageSource,
    PairStatusEv,
    PresenceEv,
    ReceiptEv,
    WAMessage,
    e2e,
)
from tests import support

OWN = JID(User="51900000001", Device=12, Server="s.whatsapp.net")
OWN_JID = "51900000001:12@s.whatsapp.net"
QR_CODE = b"2@Rk9PQkFSZm9vYmFy,cHVia2V5Cg==,aWRlbnRpdHkK,YWR2c2VjcmV0Cg=="  # the shape whatsmeow emits


# -- goneonize's side of the FFI ------------------------------------------------------------------
def _from_go_thread(callback: Any, *args: Any) -> None:
    thread = threading.Thread(target=callback, args=args, name="go")
    thread.start()
    thread.join(5)
    assert not thread.is_alive()


def go_deliver(client: NewAClient, event: Any) -> None:
    """One event as goneonize delivers it: serialized, through neonize's ``execute`` callback, from a Go thread.
    Go only sends the event types the client subscribed to (``event.list_func`` at connect)."""
    code = EVENT_TO_INT[type(event)]
    assert code in client.event.list_func, f"{type(event).__name__} is not subscribed: Go would never send it"
    data = complete(event).SerializeToString()
    buffer = ctypes.create_string_buffer(data, len(data))
    _from_go_thread(func_callback_bytes(client.event.execute), client.uuid, ctypes.addressof(buffer), len(data), code)


def go_qr(client: NewAClient, code: bytes) -> None:
    """A pairing code as goneonize hands it over: a C string, to the callback built from ``__onQr``."""
    buffer = ctypes.create_string_buffer(code)
    _from_go_thread(func_string(client._NewAClient__onQr), None, ctypes.addressof(buffer))  # type: ignore[attr-defined]


@pytest.fixture
def neonize_loop(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], None]]:
    """neonize dispatches Go callbacks onto the loop its ``connect()`` registered (once per process); the test's
    loop stands in for it."""

    def bind() -> None:
        monkeypatch.setattr(neonize_events, "event_global_loop", asyncio.get_running_loop())

    yield bind


async def until(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


# -- neonize events with real field values --------------------------------------------------------
def source(peer: str, *, from_me: bool = False) -> MessageSource:
    chat = JID(User=peer, Server="s.whatsapp.net")
    sender = JID(User=OWN.User, Server=OWN.Server) if from_me else chat
    return MessageSource(Chat=chat, Sender=sender, IsFromMe=from_me, IsGroup=False,
                         AddressingMode=AddressingMode.PN)


def text_event(peer: str, message_id: str, body: str, *, push_name: str = "", from_me: bool = False,
               timestamp: int = 1_700_000_000) -> MessageEv:
    info = MessageInfo(ID=message_id, Type="text", Pushname=push_name, Timestamp=timestamp,
                       MessageSource=source(peer, from_me=from_me), Category="", MediaType="")
    message = WAMessage(conversation=body)
    return complete(MessageEv(Info=info, Message=message, Raw=message))


def poll_event(peer: str, message_id: str, question: str, options: list[str]) -> MessageEv:
    info = MessageInfo(ID=message_id, Type="poll", Pushname="Pia", Timestamp=1_700_000_100, MessageSource=source(peer))
    message = WAMessage(
        pollCreationMessageV3=e2e.PollCreationMessage(
            name=question, options=[e2e.PollCreationMessage.Option(optionName=o) for o in options],
            selectableOptionsCount=1),
        messageContextInfo=e2e.MessageContextInfo(messageSecret=bytes(range(32))),
    )
    return complete(MessageEv(Info=info, Message=message, Raw=message))


def vote_event(peer: str, message_id: str, poll_id: str) -> MessageEv:
    info = MessageInfo(ID=message_id, Type="poll", Timestamp=1_700_000_200, MessageSource=source(peer))
    message = WAMessage(pollUpdateMessage=e2e.PollUpdateMessage(
        pollCreationMessageKey=MessageKey(remoteJID=f"{peer}@s.whatsapp.net", fromMe=False, ID=poll_id),
        vote=e2e.PollEncValue(encPayload=bytes(48), encIV=bytes(12)),  # AES-GCM with the poll's secret
        senderTimestampMS=1_700_000_200_000,
    ))
    return complete(MessageEv(Info=info, Message=message, Raw=message))


def receipt_event(peer: str, ids: list[str], kind: int) -> ReceiptEv:
    return complete(ReceiptEv(MessageSource=source(peer), MessageIDs=ids, Timestamp=1_700_000_300, Type=kind))


def presence_event(peer: str, *, available: bool) -> PresenceEv:
    return complete(PresenceEv(From=JID(User=peer, Server="s.whatsapp.net"), Unavailable=not available,
                               LastSeen=0 if available else 1_700_000_400))


def paired_event() -> PairStatusEv:
    return complete(PairStatusEv(ID=OWN, BusinessName="", Platform="android", Status=PairStatusEv.SUCCESS))


# -- the driver alone ------------------------------------------------------------------------------
def test_registered_callbacks_forward_neonize_events_to_the_sink(neonize_loop: Callable[[], None]) -> None:
    """Every event type the driver subscribes to travels Go → neonize → the driver's handler → the sink, decoded
    into the same protobuf; pairing updates the session; a replaced client's events are dropped."""
    driver = NeonizeDriver("postgres://clarin@db.invalid/clarin")
    device = DeviceSession(uuid.uuid4(), uuid.uuid4())
    received: list[tuple[uuid.UUID, Any]] = []

    async def sink(device_id: uuid.UUID, event: Any) -> None:
        received.append((device_id, event))

    driver.set_event_sink(sink)
    peer = "51911112222"
    events = [
        paired_event(),
        complete(ConnectedEv(status=True)),
        text_event(peer, "IN-1", "hola", push_name="Ana"),
        receipt_event(peer, ["OUT-1"], ReceiptEv.READ),
        presence_event(peer, available=True),
        vote_event(peer, "VOTE-1", "POLL-1"),
        complete(DisconnectedEv(status=False)),
        complete(LoggedOutEv(OnConnect=False, Reason=ConnectFailureReason.LOGGED_OUT)),
    ]

    async def run() -> None:
        neonize_loop()
        client = driver.attach(device)
        assert driver._clients[device.id] is client and client.connect_task is None  # nothing dialled
        go_qr(client, QR_CODE)
        await until(lambda: len(received) == 1)
        for count, event in enumerate(events, start=2):
            go_deliver(client, event)
            await until(lambda n=count: len(received) == n)  # type: ignore[misc]
        assert client.connected is True  # neonize's own bookkeeping of the Connected event ran too
        assert driver._sessions[device.id].jid == OWN_JID  # PairStatus success: a restart resumes, no new QR
        replaced = driver.attach(device)
        go_deliver(client, text_event(peer, "STALE", "from the old client"))
        go_deliver(replaced, text_event(peer, "IN-2", "again"))
        await until(lambda: len(received) == len(events) + 2)
        await asyncio.sleep(0.05)

    asyncio.run(run())
    assert {device_id for device_id, _ in received} == {device.id}
    qr, *rest = [event for _, event in received]
    assert list(qr.Codes) == [qr_data_url(QR_CODE)]
    assert rest[: len(events)] == events
    assert [e.Info.ID for e in rest[len(events):]] == ["IN-2"]


def test_connect_registers_every_handler_before_dialing_and_cleans_up_a_failed_dial() -> None:
    """``connect`` = ``attach`` (client with its handlers, registered as the device's) + ``_dial``; a dial that
    fails leaves nothing behind and raises DriverError, as before the split."""
    seen: list[tuple[bool, set[int]]] = []

    class Refused(NeonizeDriver):
        async def _dial(self, client: NewAClient) -> asyncio.Task[Any]:
            seen.append((self._clients.get(device.id) is client, set(client.event.list_func)))
            raise OSError("dial refused")

    driver = Refused("postgres://clarin@db.invalid/clarin")
    device = DeviceSession(uuid.uuid4(), uuid.uuid4(), OWN_JID)
    with pytest.raises(DriverError, match="failed to connect: dial refused"):
        asyncio.run(driver.connect(device))
    from clarin.whatsapp.neonize_driver import FORWARDED_EVENTS

    assert seen == [(True, {EVENT_TO_INT[cls] for cls in FORWARDED_EVENTS})]
    assert driver._clients == {} and driver._sessions == {}


def test_jids_handed_to_neonize_serialize() -> None:
    """neonize's JID is proto2 with required fields: a resumed client's JID (serialized first thing by
    ``connect()``), a send's recipient and a LID lookup must serialize, with the values neonize's own
    ``build_jid`` gives. Without ``Integrator`` every send and every resume failed with an EncodeError."""
    from neonize.utils.jid import build_jid

    driver = NeonizeDriver("postgres://clarin@db.invalid/clarin")
    client = driver.build_client(DeviceSession(uuid.uuid4(), uuid.uuid4(), OWN_JID))
    assert JID.FromString(client.jid.SerializeToString()) == client.jid
    for text, user, server in (("+51 987-654-321", "51987654321", "s.whatsapp.net"),
                               ("51987654321@s.whatsapp.net", "51987654321", "s.whatsapp.net"),
                               ("99887766@lid", "99887766", "lid")):
        wire = JID.FromString(go_jid(text).SerializeToString())
        reference = build_jid(user, server)
        assert [getattr(wire, f) for f in ("User", "RawAgent", "Device", "Integrator", "Server")] == [
            getattr(reference, f) for f in ("User", "RawAgent", "Device", "Integrator", "Server")]
    assert go_jid(OWN_JID).Device == 12


def test_poll_vote_decryption_reaches_whatsmeow() -> None:
    """neonize 0.5.2's ``decrypt_poll_vote`` fails on every vote (``TypeError: expected bytes, LP_Bytes found``):
    the driver's own call gets goneonize's answer (for a client with no Go session: "client is nil")."""
    driver = NeonizeDriver("postgres://clarin@db.invalid/clarin")
    client = driver.build_client(DeviceSession(uuid.uuid4(), uuid.uuid4()))
    with pytest.raises(DriverError) as failed:
        asyncio.run(_decrypt_poll_vote(client, vote_event("51911112222", "VOTE-1", "POLL-1")))
    assert str(failed.value) == "failed to decrypt poll vote: client is nil"  # goneonize's own answer


def test_a_client_that_never_started_answers_not_connected() -> None:
    """goneonize dereferences a nil client in GetMe / GetAllContacts / GetPNFromLID (the process dies): a device
    whose client was built but never dialled answers like a device that is not connected."""
    driver = NeonizeDriver("postgres://clarin@db.invalid/clarin")
    device = DeviceSession(uuid.uuid4(), uuid.uuid4(), OWN_JID)

    async def run() -> None:
        driver.attach(device)
        assert await driver.own_jid(device.id) is None
        assert await driver.is_connected(device.id) is False
        assert await driver.profile_picture(device.id, "51911112222@s.whatsapp.net") is None
        for call in (driver.fetch_contacts(device.id), driver.pn_for_lid(device.id, "99887766@lid"),
                     driver.send_text(device.id, "51911112222", "hi"),
                     driver.decrypt_poll_vote(device.id, vote_event("51911112222", "V", "P"))):
            with pytest.raises(NotConnected):
                await call
        await driver.disconnect(device.id)  # Disconnect/Stop of an unknown session are no-ops in goneonize
        assert driver._clients == {}

    asyncio.run(run())


# -- through the device pool, the ingestor, PostgreSQL and the WebSocket hub ------------------------
@pytest.fixture(scope="module")
def pool_database(services: None) -> Iterator[str]:
    with support.migrated_database() as dsn:
        yield dsn


class Socket:
    """A WebSocket's transport as the hub sees it: what the browser would receive, in order."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    async def send_str(self, payload: str) -> None:
        self.frames.append(json.loads(payload))

    async def next(self, event: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next frame named ``event`` (frames before it are consumed)."""
        found = await until(lambda: next((i for i, f in enumerate(self.frames) if f["event"] == event), None)
                            is not None, timeout)
        assert found
        index = next(i for i, f in enumerate(self.frames) if f["event"] == event)
        frame = self.frames[index]
        del self.frames[: index + 1]
        return frame


@asynccontextmanager
async def neonize_app(dsn: str, data_dir: Any) -> AsyncIterator[tuple[Any, NeonizeDriver, uuid.UUID, uuid.UUID, Socket]]:
    """The real AppState with ``WHATSAPP_DRIVER=neonize`` and one device connected through the pool; the Go
    session is not dialled (WhatsApp is out of reach), everything else is production code."""
    from clarin.config import load_settings
    from clarin.state import AppState

    state = AppState.build(load_settings(support.base_env(dsn, WHATSAPP_DRIVER="neonize",
                                                          CLARIN_DATA_DIR=str(data_dir))), dsn)
    pool = state.whatsapp
    assert pool is not None and isinstance(pool.driver, NeonizeDriver)
    driver = pool.driver
    sessions: list[asyncio.Future[Any]] = []

    async def dial_nothing(client: NewAClient) -> asyncio.Task[Any]:
        session = asyncio.get_running_loop().create_future()
        sessions.append(session)
        return asyncio.ensure_future(session)

    driver._dial = dial_nothing  # type: ignore[method-assign]
    pool.renew_interval = 3600
    await state.start()
    name = f"neonize {uuid.uuid4().hex[:6]}"
    account = uuid.UUID((await sql(dsn, "INSERT INTO accounts (name) VALUES ($1) RETURNING id::text AS id", name))[0]["id"])
    device_id = uuid.UUID((await sql(
        dsn, "INSERT INTO devices (account_id, name) VALUES ($1, 'Phone') RETURNING id::text AS id", account))[0]["id"])
    socket = Socket()
    conn = state.hub.register(str(account), None, socket)
    try:
        assert await state.broadcaster.wait_subscribed(5)
        if not pool.leases.is_open:
            await pool.leases.open()
        await pool.connect(device_id, account, "", "disconnected")
        assert (await socket.next("device_status"))["data"]["status"] == "connecting"
        yield state, driver, account, device_id, socket
    finally:
        state.hub.unregister(conn)
        await state.stop()
        for session in sessions:
            session.cancel()


async def sql(dsn: str, statement: str, *params: Any) -> list[dict[str, Any]]:
    """support.run_sql runs its own event loop: from inside one, on a thread."""
    return await asyncio.to_thread(support.run_sql, dsn, statement, list(params))


async def device_row(dsn: str, device_id: uuid.UUID) -> dict[str, Any]:
    return (await sql(dsn, "SELECT status, jid, phone, qr_code FROM devices WHERE id = $1", device_id))[0]


def test_pairing_lifecycle_reaches_the_database_and_websocket(
    pool_database: str, tmp_path: Any, neonize_loop: Callable[[], None]
) -> None:
    """QR → qr_code event and row; PairStatus + Connected → connected with the paired JID; Disconnected →
    disconnected; Connected again; LoggedOut → logged_out, the client stopped and the lease released."""
    dsn = pool_database

    async def run() -> None:
        neonize_loop()
        async with neonize_app(dsn, tmp_path) as (state, driver, _account, device_id, ws):
            client = driver._clients[device_id]
            go_qr(client, QR_CODE)
            qr = await ws.next("qr_code")
            assert qr["data"] == {"device_id": str(device_id), "qr_code": qr_data_url(QR_CODE)}
            assert await device_row(dsn, device_id) == {"status": "connecting", "jid": None, "phone": None,
                                                  "qr_code": qr_data_url(QR_CODE)}

            go_deliver(client, paired_event())
            go_deliver(client, complete(ConnectedEv(status=True)))
            assert (await ws.next("device_status"))["data"] == {"device_id": str(device_id), "status": "connected",
                                                                "qr_code": ""}
            assert await device_row(dsn, device_id) == {"status": "connected", "jid": OWN_JID, "phone": "51900000001",
                                                  "qr_code": None}

            go_deliver(client, complete(DisconnectedEv(status=False)))
            assert (await ws.next("device_status"))["data"]["status"] == "disconnected"
            assert (await device_row(dsn, device_id))["status"] == "disconnected"
            go_deliver(client, complete(ConnectedEv(status=True)))
            assert (await ws.next("device_status"))["data"]["status"] == "connected"

            go_deliver(client, complete(LoggedOutEv(OnConnect=False, Reason=ConnectFailureReason.LOGGED_OUT)))
            assert (await ws.next("device_status"))["data"]["status"] == "logged_out"
            assert (await device_row(dsn, device_id))["status"] == "logged_out"
            assert device_id not in driver._clients and not state.whatsapp.owns(device_id)

    asyncio.run(run())


def test_inbound_events_reach_the_database_and_websocket(
    pool_database: str, tmp_path: Any, neonize_loop: Callable[[], None], caplog: pytest.LogCaptureFixture
) -> None:
    """Message → row, chat, lead and ``new_message``; receipt → status and ``message_status``; presence →
    ``presence``; a poll → stored with its options; a vote on it reaches the driver's decryption, which needs
    the device's live Go session: without one it is skipped (logged), nothing stored."""
    dsn = pool_database
    peer = "51911112222"
    caplog.set_level(logging.INFO, logger="clarin.ingest")

    async def run() -> tuple[uuid.UUID, uuid.UUID]:
        neonize_loop()
        async with neonize_app(dsn, tmp_path) as (_state, driver, account, device_id, ws):
            client = driver._clients[device_id]
            go_deliver(client, paired_event())
            go_deliver(client, complete(ConnectedEv(status=True)))
            await ws.next("device_status")

            go_deliver(client, text_event(peer, "IN-1", "hola", push_name="Ana"))
            new = await ws.next("new_message")
            assert new["data"]["chat_jid"] == f"{peer}@s.whatsapp.net" and new["data"]["sender_name"] == "Ana"
            assert new["data"]["message"]["message_id"] == "IN-1" and new["data"]["message"]["body"] == "hola"
            assert (await ws.next("lead_update"))["data"]["action"] == "created"

            go_deliver(client, text_event(peer, "OUT-1", "sent from the phone", from_me=True))
            await ws.next("new_message")
            await sql(dsn, "UPDATE messages SET status = 'sent' WHERE message_id = 'OUT-1'")
            go_deliver(client, receipt_event(peer, ["OUT-1"], ReceiptEv.READ))
            status = await ws.next("message_status")
            assert status["data"] == {"message_ids": ["OUT-1"], "chat_jid": f"{peer}@s.whatsapp.net",
                                      "status": "read", "timestamp": "2023-11-14T22:18:20Z"}

            go_deliver(client, presence_event(peer, available=False))
            presence = await ws.next("presence")
            assert presence["data"] == {"jid": f"{peer}@s.whatsapp.net", "available": False,
                                        "last_seen_at": "2023-11-14T22:20:00Z"}

            go_deliver(client, poll_event(peer, "POLL-1", "¿Cuándo?", ["lunes", "martes"]))
            await ws.next("new_message")
            go_deliver(client, vote_event(peer, "VOTE-1", "POLL-1"))
            await until(lambda: "poll vote VOTE-1 ignored" in caplog.text)
            go_deliver(client, text_event(peer, "IN-2", "after the vote"))
            await ws.next("new_message")
            assert not [f for f in ws.frames if f["event"] == "poll_update"]
            return account, device_id

    account, device_id = asyncio.run(run())
    rows = support.run_sql(dsn, "SELECT m.message_id, m.body, m.status, m.from_name, m.device_id, c.jid AS chat "
                           "FROM messages m JOIN chats c ON c.id = m.chat_id WHERE m.account_id = $1 "
                           "ORDER BY m.message_id", [account])
    assert [(r["message_id"], r["status"]) for r in rows] == [
        ("IN-1", "received"), ("IN-2", "received"), ("OUT-1", "read"), ("POLL-1", "received")]
    assert {(r["chat"], str(r["device_id"])) for r in rows} == {(f"{peer}@s.whatsapp.net", str(device_id))}
    assert rows[0]["from_name"] == "Ana" and rows[0]["body"] == "hola"
    options = support.run_sql(dsn, "SELECT o.name, o.vote_count FROM poll_options o JOIN messages m "
                              "ON m.id = o.message_id WHERE m.message_id = 'POLL-1' ORDER BY o.position", [])
    assert options == [{"name": "lunes", "vote_count": 0}, {"name": "martes", "vote_count": 0}]
    votes = support.run_sql(dsn, "SELECT count(*) AS n FROM poll_votes v JOIN messages m ON m.id = v.message_id "
                            "WHERE m.account_id = $1", [account])
    assert votes == [{"n": 0}]
    assert "client is nil" not in caplog.text  # the vote never reached a Go call without a session
    leads = support.run_sql(dsn, "SELECT jid, phone FROM leads WHERE account_id = $1", [account])
    assert leads == [{"jid": f"{peer}@s.whatsapp.net", "phone": peer}]
