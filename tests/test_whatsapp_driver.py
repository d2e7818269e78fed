"""WhatsApp drivers in-process: the neonize driver builds clients without any network, the simulated
driver builds every inbound type as the right neonize protobuf (checked after a serialize/parse
round trip) and runs the pairing sequence. No server, no database."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import uuid
from typing import Any

import psutil
import pytest
from PIL import Image

from clarin.whatsapp.driver import (
    DeviceSession,
    InvalidJID,
    NotConnected,
    OutgoingMedia,
    QuotedMessage,
    jid_to_str,
    jid_user,
    non_ad,
    option_hash,
    parse_jid,
    qr_data_url,
)
from clarin.whatsapp.proto import (
    ConnectedEv,
    MessageEv,
    PairStatusEv,
    PresenceEv,
    QREv,
    ReceiptEv,
    e2e,
)
from clarin.whatsapp.simulated_driver import SIM_IV, SimulatedDriver, build_inbound_event, simulated_jid
from clarin.wire.devices import InboundSpec

PEER = "51987654321"
PEER_JID = f"{PEER}@s.whatsapp.net"
OWN_JID = "51900000001:7@s.whatsapp.net"


def roundtrip(event: Any) -> Any:
    """What a consumer would see: the event serialized and parsed back with its own class."""
    return type(event).FromString(event.SerializeToString())


def inbound(media: dict[bytes, bytes] | None = None, **fields: Any) -> Any:
    spec = InboundSpec(from_=fields.pop("from_", PEER), **fields)
    return roundtrip(build_inbound_event(spec, own_jid=OWN_JID, media=media))


def inet_connections() -> set[tuple[Any, Any]]:
    return {(c.laddr, c.raddr) for c in psutil.Process().net_connections(kind="inet")}


# -- neonize driver ---------------------------------------------------------------------------------
def test_neonize_driver_builds_clients_without_network() -> None:
    from neonize.aioze.client import NewAClient
    from neonize.events import EVENT_TO_INT

    from clarin.whatsapp.neonize_driver import FORWARDED_EVENTS, NeonizeDriver

    before = inet_connections()
    driver = NeonizeDriver("postgres://clarin@db.invalid:5432/clarin")
    device = DeviceSession(uuid.uuid4(), uuid.uuid4())
    client = driver.build_client(device)
    assert isinstance(client, NewAClient)
    assert client.name == "postgres://clarin@db.invalid:5432/clarin?sslmode=prefer"  # the whatsmeow store
    assert client.uuid == str(device.id).encode()
    assert client.new_device is True and client.jid is None
    assert client.device_props.os == "Clarin CRM" and client.device_props.requireFullSync is False
    assert client.connect_task is None and client.connected is False
    assert set(client.event.list_func) == {EVENT_TO_INT[cls] for cls in FORWARDED_EVENTS}
    assert EVENT_TO_INT[MessageEv] in client.event.list_func

    paired = DeviceSession(uuid.uuid4(), uuid.uuid4(), "51987654321:12@s.whatsapp.net")
    resumed = driver.build_client(paired)
    assert resumed.new_device is False
    assert (resumed.jid.User, resumed.jid.Device, resumed.jid.Server) == ("51987654321", 12, "s.whatsapp.net")
    # re-keyed to the device id (neonize would key it by the phone number, colliding for a phone linked twice)
    assert resumed.uuid == str(paired.id).encode() and resumed.contact.uuid == resumed.uuid

    assert inet_connections() == before, "building clients must not open any socket"
    assert driver._clients == {}


def test_neonize_session_store_url() -> None:
    from clarin.whatsapp.neonize_driver import session_store_url

    assert session_store_url("postgresql://u@h/db") == "postgresql://u@h/db?sslmode=prefer"
    assert session_store_url("postgres://u@h/db?application_name=x") == "postgres://u@h/db?application_name=x&sslmode=prefer"
    assert session_store_url("postgres://u@h/db?sslmode=disable") == "postgres://u@h/db?sslmode=disable"
    assert session_store_url("/data/wa.sqlite3") == "/data/wa.sqlite3"


def test_neonize_driver_operations_need_a_client() -> None:
    from clarin.whatsapp.neonize_driver import NeonizeDriver

    driver = NeonizeDriver("postgres://clarin@db.invalid/clarin")
    device_id = uuid.uuid4()

    async def run() -> None:
        assert await driver.is_connected(device_id) is False
        assert await driver.own_jid(device_id) is None
        with pytest.raises(NotConnected):
            await driver.send_text(device_id, PEER_JID, "hi")
        await driver.disconnect(device_id)  # unknown device: no-op

    asyncio.run(run())


# -- shared helpers ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("51987654321@s.whatsapp.net", "51987654321@s.whatsapp.net"),
        ("51987654321:12@s.whatsapp.net", "51987654321:12@s.whatsapp.net"),
        ("51987654321.0:12@s.whatsapp.net", "51987654321:12@s.whatsapp.net"),
        ("1234567890@lid", "1234567890@lid"),
        ("120363025246125244@g.us", "120363025246125244@g.us"),
        ("status@broadcast", "status@broadcast"),
        ("51987654321", "51987654321@s.whatsapp.net"),  # bare numbers are accepted (fix of B.6 quirk 7)
        ("+51 987-654-321", "51987654321@s.whatsapp.net"),
    ],
)
def test_parse_jid(text: str, expected: str) -> None:
    assert jid_to_str(parse_jid(text)) == expected


@pytest.mark.parametrize("text", ["", "hello", "@s.whatsapp.net", "a@b@c", "123"])
def test_parse_jid_rejects(text: str) -> None:
    with pytest.raises(InvalidJID):
        parse_jid(text)


def test_jid_helpers() -> None:
    assert non_ad("51987654321:5@s.whatsapp.net") == "51987654321@s.whatsapp.net"
    assert jid_user("51987654321:5@s.whatsapp.net") == "51987654321"


def test_qr_data_url_is_a_256px_png() -> None:
    url = qr_data_url(b"2@abc,def,ghi,jkl")
    assert url.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert image.format == "PNG" and image.size == (256, 256)


# -- simulated inbound events ---------------------------------------------------------------------
def test_inbound_text() -> None:
    ev = inbound(type="text", body="hola", push_name="Ana", message_id="ABC123", timestamp=1_700_000_000)
    assert isinstance(ev, MessageEv)
    assert ev.Message.conversation == "hola" and ev.Raw.conversation == "hola"
    assert (ev.Info.ID, ev.Info.Pushname, ev.Info.Timestamp, ev.Info.Type) == ("ABC123", "Ana", 1_700_000_000, "text")
    source = ev.Info.MessageSource
    assert jid_to_str(source.Chat) == PEER_JID and jid_to_str(source.Sender) == PEER_JID
    assert source.IsFromMe is False and source.IsGroup is False
    assert ev.IsEdit is False


def test_inbound_reply_quotes_as_plain_text() -> None:
    ev = inbound(type="text", body="yes", quoted_message_id="Q1", quoted_body="are you there?", quoted_sender=OWN_JID)
    ext = ev.Message.extendedTextMessage
    assert ext.text == "yes"
    assert ext.contextInfo.stanzaID == "Q1" and ext.contextInfo.participant == OWN_JID
    assert ext.contextInfo.quotedMessage.conversation == "are you there?"


def test_inbound_from_me_group_and_lid() -> None:
    ev = inbound(type="text", body="sent from my phone", is_from_me=True)
    assert ev.Info.MessageSource.IsFromMe is True
    assert jid_to_str(ev.Info.MessageSource.Sender) == non_ad(OWN_JID)
    assert jid_to_str(ev.Info.MessageSource.Chat) == PEER_JID

    group = inbound(type="text", body="hi all", chat="120363025246125244@g.us")
    assert group.Info.MessageSource.IsGroup is True
    assert jid_to_str(group.Info.MessageSource.Chat) == "120363025246125244@g.us"
    assert jid_to_str(group.Info.MessageSource.Sender) == PEER_JID

    lid = inbound(from_="1234567890@lid", type="text", body="hidden")
    assert jid_to_str(lid.Info.MessageSource.Chat) == "1234567890@lid"


@pytest.mark.parametrize(
    ("kind", "field", "mimetype"),
    [
        ("image", "imageMessage", "image/jpeg"),
        ("video", "videoMessage", "video/mp4"),
        ("audio", "audioMessage", "audio/ogg; codecs=opus"),
        ("document", "documentMessage", "application/pdf"),
        ("sticker", "stickerMessage", "image/webp"),
    ],
)
def test_inbound_media(kind: str, field: str, mimetype: str) -> None:
    data = f"{kind} bytes".encode() * 10
    store: dict[bytes, bytes] = {}
    ev = inbound(store, type=kind, body="caption!", media_base64=base64.b64encode(data).decode(),
                 file_name="report.pdf" if kind == "document" else "")
    assert ev.Message.HasField(field)
    media = getattr(ev.Message, field)
    assert media.mimetype == mimetype
    assert media.fileSHA256 == hashlib.sha256(data).digest() and media.fileLength == len(data)
    assert media.URL and media.directPath and media.mediaKey
    assert store[media.fileSHA256] == data  # what download_media returns
    assert ev.Info.Type == "media"
    if kind in ("image", "video", "document"):
        assert media.caption == "caption!"
    if kind == "document":
        assert media.fileName == "report.pdf"
    if kind == "audio":
        assert media.PTT is True and ev.Info.MediaType == "ptt"


def test_inbound_location_and_contact() -> None:
    ev = inbound(type="location", latitude=-12.0464, longitude=-77.0428, body="Lima")
    loc = ev.Message.locationMessage
    assert (loc.degreesLatitude, loc.degreesLongitude, loc.name) == (-12.0464, -77.0428, "Lima")

    card = inbound(type="contact", body="Juan Perez", vcard="BEGIN:VCARD\nFN:Juan Perez\nEND:VCARD")
    assert card.Message.contactMessage.displayName == "Juan Perez"
    assert "FN:Juan Perez" in card.Message.contactMessage.vcard


def test_inbound_reaction() -> None:
    ev = inbound(type="reaction", target_message_id="TARGET1", emoji="👍", target_from_me=True)
    reaction = ev.Message.reactionMessage
    assert reaction.text == "👍" and reaction.key.ID == "TARGET1" and reaction.key.fromMe is True
    assert reaction.key.remoteJID == PEER_JID and ev.Info.Type == "reaction"
    removal = inbound(type="reaction", target_message_id="TARGET1", emoji="")
    assert removal.Message.HasField("reactionMessage") and removal.Message.reactionMessage.text == ""


def test_inbound_poll_and_vote_decrypt() -> None:
    poll = inbound(type="poll", body="¿Asistes?", options=["Sí", "No"], max_selections=1, message_id="POLL1")
    creation = poll.Message.pollCreationMessage
    assert creation.name == "¿Asistes?" and [o.optionName for o in creation.options] == ["Sí", "No"]
    assert creation.selectableOptionsCount == 1
    assert len(poll.Message.messageContextInfo.messageSecret) == 32

    vote = inbound(type="poll_vote", target_message_id="POLL1", selected_options=["No"])
    update = vote.Message.pollUpdateMessage
    assert update.pollCreationMessageKey.ID == "POLL1" and update.vote.encIV == SIM_IV
    selected = asyncio.run(SimulatedDriver().decrypt_poll_vote(uuid.uuid4(), vote))
    assert selected == [option_hash("No")]


def test_inbound_revoke_and_edit() -> None:
    revoke = inbound(type="revoke", target_message_id="OLD1")
    proto = revoke.Message.protocolMessage
    assert proto.type == e2e.ProtocolMessage.REVOKE and proto.key.ID == "OLD1" and revoke.Info.Edit == "7"

    edit = inbound(type="edit", target_message_id="OLD2", body="fixed typo")
    proto = edit.Message.protocolMessage
    assert edit.IsEdit is True and edit.Info.Edit == "1"
    assert proto.type == e2e.ProtocolMessage.MESSAGE_EDIT and proto.key.ID == "OLD2"
    assert proto.editedMessage.conversation == "fixed typo"
    assert edit.Raw.editedMessage.message.protocolMessage.editedMessage.conversation == "fixed typo"


def test_inbound_receipt_and_presence() -> None:
    receipt = inbound(type="receipt", target_message_id="M1", status="read", timestamp=1_700_000_123)
    assert isinstance(receipt, ReceiptEv)
    assert list(receipt.MessageIDs) == ["M1"] and receipt.Type == ReceiptEv.READ
    assert jid_to_str(receipt.MessageSource.Chat) == PEER_JID and receipt.Timestamp == 1_700_000_123
    delivered = inbound(type="receipt", message_ids=["A", "B"])
    assert list(delivered.MessageIDs) == ["A", "B"] and delivered.Type == ReceiptEv.DELIVERED

    online = inbound(type="presence")
    assert isinstance(online, PresenceEv) and online.Unavailable is False and jid_to_str(online.From) == PEER_JID
    offline = inbound(type="presence", available=False, timestamp=1_700_000_000)
    assert offline.Unavailable is True and offline.LastSeen == 1_700_000_000


@pytest.mark.parametrize(
    "fields",
    [
        {"from_": "not a jid", "type": "text"},
        {"type": "reaction", "emoji": "x"},
        {"type": "poll_vote"},
        {"type": "revoke"},
        {"type": "receipt"},
        {"type": "receipt", "target_message_id": "M1", "status": "seen"},
        {"type": "image", "media_base64": "%%% not base64"},
    ],
)
def test_inbound_rejects_bad_specs(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        inbound(**fields)


# -- simulated driver behaviour ---------------------------------------------------------------------
def test_simulated_driver_pairs_records_sends_and_delivers() -> None:
    async def run() -> None:
        driver = SimulatedDriver(pair_delay=0)
        events: list[tuple[uuid.UUID, Any]] = []

        async def sink(device_id: uuid.UUID, event: Any) -> None:
            events.append((device_id, event))

        driver.set_event_sink(sink)
        device = DeviceSession(uuid.uuid4(), uuid.uuid4())
        with pytest.raises(NotConnected):
            await driver.send_text(device.id, PEER_JID, "too early")
        await driver.connect(device)
        for _ in range(100):
            if await driver.is_connected(device.id):
                break
            await asyncio.sleep(0.01)
        kinds = [type(e) for _, e in events]
        assert kinds == [QREv, PairStatusEv, ConnectedEv]
        assert events[0][1].Codes[0].startswith("data:image/png;base64,")
        assert jid_to_str(events[1][1].ID) == simulated_jid(device.id)
        assert simulated_jid(device.id) == f"{int(device.id.hex[:10], 16) % 10**11:011d}@s.whatsapp.net"
        assert await driver.own_jid(device.id) == simulated_jid(device.id)

        sent = await driver.send_text(device.id, PEER_JID, "hello", QuotedMessage("Q1", PEER_JID, "hi?"))
        assert sent.id.startswith("3EB0") and sent.timestamp.tzinfo is not None
        media = await driver.send_media(device.id, PEER_JID, OutgoingMedia("audio", b"OggS...", "audio/ogg"))
        await driver.send_reaction(device.id, PEER_JID, sent.id, "❤️", target_from_me=True)
        await driver.send_poll(device.id, PEER_JID, "Q?", ["a", "b", "c"], 2)
        assert [c.kind for c in driver.sent] == ["text", "media", "reaction", "poll"]
        assert driver.sent[0].message.extendedTextMessage.contextInfo.stanzaID == "Q1"
        assert driver.sent[1].message.audioMessage.PTT is True and driver.sent[1].result == media
        assert driver.sent[2].message.reactionMessage.key.fromMe is True
        assert driver.sent[3].message.pollCreationMessage.selectableOptionsCount == 2
        assert await driver.download_media(device.id, driver.sent[1].message) == b"OggS..."

        event = await driver.deliver_inbound(device.id, InboundSpec(from_=PEER, body="inbound!", push_name="Ana"))
        assert events[-1] == (device.id, event) and event.Message.conversation == "inbound!"
        contacts = await driver.fetch_contacts(device.id)
        assert [(c.jid, c.push_name) for c in contacts] == [(PEER_JID, "Ana")]

        await driver.disconnect(device.id)
        assert await driver.is_connected(device.id) is False
        with pytest.raises(NotConnected):
            await driver.deliver_inbound(device.id, InboundSpec(from_=PEER))

        events.clear()
        await driver.connect(DeviceSession(device.id, device.account_id, simulated_jid(device.id)))
        await asyncio.sleep(0.05)
        assert [type(e) for _, e in events] == [ConnectedEv]  # a stored session resumes without QR

    asyncio.run(run())
