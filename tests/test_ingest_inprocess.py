"""Inbound ingestion driven in-process (integrations.md B.5–B.10): a DevicePool with the simulated driver and the
InboundIngestor on its own migrated database, run on a private event loop — bursts, corrupt protobufs through the
driver's sink, a commit lost with its connection, LID chats. The end-to-end tests through the server's dev route
are in tests/test_ingest.py.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests import support


def sql(dsn: str, statement: str, *params: Any) -> list[dict[str, Any]]:
    return support.run_sql(dsn, statement, list(params) if params else None)


def count(dsn: str, statement: str, *params: Any) -> int:
    return int(sql(dsn, statement, *params)[0]["n"])

@pytest.fixture(scope="module")
def pool_database(services: None) -> Iterator[str]:
    with support.migrated_database() as dsn:
        yield dsn


@contextmanager
def live_pool(dsn: str, data_dir: Any) -> Iterator[tuple[Any, asyncio.AbstractEventLoop]]:
    """The real AppState (PostgreSQL, Redis, local storage, device pool with the simulated driver and the
    InboundIngestor installed by ``start``) on ``dsn``, run on a private event loop."""
    from clarin.config import load_settings
    from clarin.state import AppState

    async def build() -> Any:
        state = AppState.build(load_settings(support.base_env(dsn, CLARIN_DATA_DIR=str(data_dir))), dsn)
        assert state.whatsapp is not None
        state.whatsapp.renew_interval = 3600
        await state.start()
        return state

    loop = asyncio.new_event_loop()
    state = loop.run_until_complete(build())
    try:
        yield state, loop
    finally:
        loop.run_until_complete(state.stop())
        loop.close()


def _paired_device(state: Any, loop: asyncio.AbstractEventLoop, dsn: str, name: str) -> tuple[uuid.UUID, uuid.UUID]:
    account = uuid.UUID(sql(dsn, "INSERT INTO accounts (name) VALUES ($1) RETURNING id::text AS id", name)[0]["id"])
    device_id = uuid.UUID(sql(dsn, "INSERT INTO devices (account_id, name) VALUES ($1, 'x') RETURNING id::text AS id",
                              account)[0]["id"])
    pool = state.whatsapp

    async def pair() -> None:
        if not pool.leases.is_open:
            await pool.leases.open()
        await pool.connect(device_id, account, "", "disconnected")
        for _ in range(300):
            if await pool.driver.is_connected(device_id) and pool.owns(device_id):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # the Connected event (contact sync) has been handled

    loop.run_until_complete(pair())
    return account, device_id


async def _emit_all(driver: Any, device_id: uuid.UUID, events: list[Any]) -> None:
    await asyncio.gather(*(driver.emit(device_id, event) for event in events))


def test_burst_of_10k_messages_is_written_in_batches(pool_database: str, tmp_path: Any) -> None:
    """10k events reach the pool at once (as after a reconnect): ingested in batches of up to 500, one
    transaction each — counted by the distinct xmin of the stored rows."""
    from clarin.whatsapp.simulated_driver import build_inbound_event
    from clarin.wire.devices import InboundSpec

    total, senders = 10_000, 100
    with live_pool(pool_database, tmp_path) as (state, loop):
        account, device_id = _paired_device(state, loop, pool_database, "burst")
        events = [build_inbound_event(InboundSpec(from_=f"5198{i % senders:07d}", push_name=f"S{i % senders}",
                                                  body=f"burst {i}", message_id=f"BURST-{i:05d}",
                                                  timestamp=1_700_000_000 + i)) for i in range(total)]
        driver = state.whatsapp.driver
        started = time.perf_counter()
        loop.run_until_complete(_emit_all(driver, device_id, events))
        elapsed = time.perf_counter() - started
        stats = state.whatsapp.inbound.stats
    stored = sql(pool_database, "SELECT count(*) AS n, count(DISTINCT xmin::text) AS transactions FROM messages "
                 "WHERE account_id = $1", account)[0]
    assert stored["n"] == total
    assert stored["transactions"] <= total // 100, stored  # 20 batches of 500 in practice
    assert stats.transactions == stored["transactions"] and stats.messages == total
    chats = sql(pool_database, "SELECT count(*) AS n, sum(unread_count) AS unread, min(last_message_at) AS oldest "
                "FROM chats WHERE account_id = $1", account)[0]
    assert (chats["n"], chats["unread"]) == (senders, total)
    last = sql(pool_database, "SELECT last_message FROM chats WHERE account_id = $1 AND jid = $2", account,
               f"5198{(total - 1) % senders:07d}@s.whatsapp.net")
    assert last == [{"last_message": f"burst {total - 1}"}]  # the newest message wins the preview
    assert count(pool_database, "SELECT count(*) AS n FROM leads WHERE account_id = $1", account) == senders
    assert count(pool_database, "SELECT count(*) AS n FROM contacts WHERE account_id = $1", account) == senders
    print(f"\n10k burst through the pool: {total / elapsed:.0f} msgs/s, {stored['transactions']} transactions")


# -- in-process: the pool's sink with corrupt events ------------------------------------------------
def test_corrupt_protobufs_through_the_driver_sink_are_skipped(pool_database: str, tmp_path: Any) -> None:
    """Garbage handed to the pool by the driver is logged and skipped; the valid events of the same batches
    are stored and the pool keeps working. An event PostgreSQL refuses fails its batch's transaction: the
    batch is retried in halves and only that event is lost."""
    from clarin.whatsapp.proto import JID, MessageEv, MessageInfo, MessageSource, ReceiptEv, WAMessage
    from clarin.whatsapp.simulated_driver import build_inbound_event
    from clarin.wire.devices import InboundSpec

    def text(i: int, body: str = "") -> Any:
        return build_inbound_event(InboundSpec(from_="51911111111", body=body or f"ok {i}", message_id=f"OK-{i}"))

    no_chat = MessageEv(Info=MessageInfo(ID="NO-CHAT"), Message=WAMessage(conversation="x"))
    no_id = MessageEv(Info=MessageInfo(MessageSource=MessageSource(Chat=JID(User="519", Server="s.whatsapp.net"))),
                      Message=WAMessage(conversation="x"))
    bad_utf8 = text(90)
    bad_utf8.Message.ParseFromString(b"\x0a\x02\xff\xfe")  # a "string" that is not UTF-8 (decodes as bytes)
    no_receipt_chat = ReceiptEv(MessageIDs=["x"], Type=ReceiptEv.READ)
    noise: list[Any] = [no_chat, no_id, bad_utf8, no_receipt_chat, b"\x00\x01 not a protobuf", object()]

    sql(pool_database, "ALTER TABLE messages ADD CONSTRAINT test_poison CHECK (body <> 'poison')")
    try:
        with live_pool(pool_database, tmp_path) as (state, loop):
            account, device_id = _paired_device(state, loop, pool_database, "corrupt")
            driver = state.whatsapp.driver
            first = [text(0), *noise[:3], text(1), *noise[3:], text(2)]
            loop.run_until_complete(_emit_all(driver, device_id, first))
            second = [text(i) for i in range(3, 9)] + [text(9, "poison")] + [text(i) for i in range(10, 14)]
            loop.run_until_complete(_emit_all(driver, device_id, second))
            loop.run_until_complete(driver.emit(device_id, text(14)))
            assert state.whatsapp.owns(device_id)
            stats = state.whatsapp.inbound.stats
    finally:
        sql(pool_database, "ALTER TABLE messages DROP CONSTRAINT test_poison")
    stored = sql(pool_database, "SELECT message_id FROM messages WHERE account_id = $1", account)
    assert sorted(r["message_id"] for r in stored) == sorted(f"OK-{i}" for i in range(15) if i != 9)
    assert stats.corrupt == 4  # no chat, no id, bad UTF-8, receipt without chat (the rest is ignored)
    assert stats.skipped == 1 and stats.messages == 14


def test_commit_lost_with_its_connection_is_retried_and_announced_once(pool_database: str, tmp_path: Any) -> None:
    """The connection drops during COMMIT after the commit was applied (outcome unknown to the client): the
    batch is written again, which stores nothing twice, and its events still go out exactly once."""
    from contextlib import asynccontextmanager

    from clarin.db.errors import DatabaseUnavailable
    from clarin.whatsapp.simulated_driver import build_inbound_event
    from clarin.wire.devices import InboundSpec

    with live_pool(pool_database, tmp_path) as (state, loop):
        account, device_id = _paired_device(state, loop, pool_database, "unsure commit")
        real_transaction, real_broadcast = state.db.transaction, state.broadcaster.broadcast_many
        lost = [DatabaseUnavailable("connection closed")]
        sent: list[str] = []
        kept: list[tuple[str, ...]] = []  # the scopes each announcement spared

        @asynccontextmanager
        async def commit_then_lose_the_answer() -> Any:
            async with real_transaction() as tx:
                yield tx
            if lost:  # committed, but the client never hears it
                raise lost.pop()

        async def broadcast_many(account_id: Any, events: list[tuple[str, Any]], *, recorded: bool = False,
                                 unchanged: Any = ()) -> None:
            sent.extend(name for name, _ in events)
            kept.append(tuple(unchanged))
            await real_broadcast(account_id, events, recorded=recorded, unchanged=unchanged)

        state.db.transaction = commit_then_lose_the_answer
        state.broadcaster.broadcast_many = broadcast_many
        events = [build_inbound_event(InboundSpec(from_="51966666666", push_name="U", body=f"once {i}",
                                                  message_id=f"UNSURE-{i}")) for i in range(3)]
        loop.run_until_complete(_emit_all(state.whatsapp.driver, device_id, events))
        stats = state.whatsapp.inbound.stats
    assert not lost and stats.held >= 1
    rows = sql(pool_database, "SELECT message_id FROM messages WHERE account_id = $1", account)
    assert sorted(r["message_id"] for r in rows) == ["UNSURE-0", "UNSURE-1", "UNSURE-2"]
    assert sent.count("new_message") == 3 and sent.count("lead_update") == 1, sent
    assert kept == [()]  # the committed attempt wrote the sender's contact: the retry still retires contacts
    chat = sql(pool_database, "SELECT unread_count FROM chats WHERE account_id = $1", account)
    assert chat == [{"unread_count": 3}]


def test_lid_chats_resolve_through_the_drivers_lid_map(pool_database: str, tmp_path: Any) -> None:
    """B.6: an @lid chat the LID map knows is stored under the phone JID (chat, contact, lead); the sender
    stays as received in from_jid; the mapping is asked once and cached."""
    from clarin.whatsapp.simulated_driver import build_inbound_event
    from clarin.wire.devices import InboundSpec

    asked: list[str] = []

    async def pn_for_lid(device_id: uuid.UUID, jid: str) -> str | None:
        asked.append(jid)
        return "51977777777@s.whatsapp.net" if jid == "888777666@lid" else None

    with live_pool(pool_database, tmp_path) as (state, loop):
        account, device_id = _paired_device(state, loop, pool_database, "lid")
        driver = state.whatsapp.driver
        driver.pn_for_lid = pn_for_lid  # the simulation has no LID map of its own
        events = [build_inbound_event(InboundSpec(from_="888777666@lid", push_name="Lu", body=f"hi {i}",
                                                  message_id=f"LIDMAP-{i}")) for i in range(3)]
        loop.run_until_complete(_emit_all(driver, device_id, events))
        loop.run_until_complete(driver.emit(device_id, build_inbound_event(
            InboundSpec(from_="888777666@lid", body="again", message_id="LIDMAP-3"))))
    rows = sql(pool_database, "SELECT c.jid, m.from_jid FROM messages m JOIN chats c ON c.id = m.chat_id "
               "WHERE m.account_id = $1", account)
    assert {(r["jid"], r["from_jid"]) for r in rows} == {("51977777777@s.whatsapp.net", "888777666@lid")}
    assert len(rows) == 4
    leads = sql(pool_database, "SELECT jid, phone FROM leads WHERE account_id = $1", account)
    assert leads == [{"jid": "51977777777@s.whatsapp.net", "phone": "51977777777"}]
    assert asked == ["888777666@lid"]


def test_parse_uses_the_events_own_phone_number_for_lid_chats() -> None:
    from clarin.messaging.ingest_parse import parse_event
    from clarin.whatsapp.proto import JID
    from clarin.whatsapp.simulated_driver import build_inbound_event
    from clarin.wire.devices import InboundSpec

    event = build_inbound_event(InboundSpec(from_="99887766@lid", body="hi", push_name="L"))
    event.Info.MessageSource.SenderAlt.CopyFrom(JID(User="51987654321", Server="s.whatsapp.net"))
    record = parse_event(event)
    assert record is not None and record.raw_chat_jid == "99887766@lid"
    assert record.chat_hint == "51987654321@s.whatsapp.net"  # type: ignore[union-attr]
