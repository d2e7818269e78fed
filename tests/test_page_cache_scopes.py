"""Per-scope page-cache generations (clarin.cache.scopes): a change retires only the cached reads that can show
it. Real server, PostgreSQL and Redis; the in-process tests drive a PageCache + Broadcaster on a real Redis."""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from clarin.cache import scopes
from clarin.cache.pages import PageCache
from clarin.cache.redis_client import RedisHandle
from clarin.realtime.broadcaster import Broadcaster
from clarin.realtime.hub import Hub
from tests import support

ROOT = Path(__file__).resolve().parent.parent


def _get(client: httpx.Client, tenant: Any, path: str) -> Any:
    response = client.get(path, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


def _connected_device(client: httpx.Client, tenant: Any) -> str:
    created = client.post("/api/devices", json={"name": "Inbox"}, headers=tenant.headers)
    assert created.status_code == 201, created.text
    device_id = created.json()["device"]["id"]
    assert client.post(f"/api/devices/{device_id}/connect", headers=tenant.headers).status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if client.get(f"/api/devices/{device_id}", headers=tenant.headers).json()["device"]["status"] == "connected":
            return str(device_id)
        time.sleep(0.05)
    raise AssertionError("device never connected")


def _wait_for(ws: ClientConnection, event: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        message = json.loads(ws.recv(timeout=max(0.05, deadline - time.monotonic())))
        if message.get("event") == event:
            return message


def test_inbound_message_keeps_leads_pages_and_a_lead_change_retires_them(
    server: support.ServerProcess, client: httpx.Client, tenant: Any, database: str
) -> None:
    device_id = _connected_device(client, tenant)
    number = "519" + str(uuid.uuid4().int)[:8]
    stamps = [1_700_000_000, 1_700_000_060]

    def inbound(ws: ClientConnection, body: str) -> None:
        response = client.post(f"/api/dev/whatsapp/{device_id}/inbound", headers=tenant.headers,
                               json={"from": number, "push_name": "Ana", "body": body, "timestamp": stamps.pop(0)})
        assert response.status_code == 200, response.text
        _wait_for(ws, "new_message")  # sent after the commit and after the scopes were retired

    # A contact with an avatar already: no background avatar fetch (which retires the pages on its own).
    support.run_sql(database, "INSERT INTO contacts (account_id, jid, phone, name, avatar_url) "
                    "VALUES ($1, $2, $3, 'Ana', '/api/media/file/x.jpg')",
                    [uuid.UUID(tenant.account_id), f"{number}@s.whatsapp.net", number])
    with connect(f"{server.ws_url}?token={tenant.token}", close_timeout=0.2) as ws:
        inbound(ws, "first")  # creates the chat and the lead (lead_update)
        lead = _get(client, tenant, "/api/leads?limit=10")["leads"][0]
        assert _get(client, tenant, f"/api/leads/{lead['id']}")["lead"]["name"] == "Ana"
        chat = _get(client, tenant, "/api/chats?limit=10")["chats"][0]
        assert chat["last_message"] == "first"
        # Behind the API's back: invisible while the cached leads page is current (proof of a hit below).
        support.run_sql(database, "UPDATE leads SET name = 'Behind' WHERE id = $1", [uuid.UUID(lead["id"])])
        inbound(ws, "second")
    # The inbound message retired the chat list and the message page ...
    assert _get(client, tenant, "/api/chats?limit=10")["chats"][0]["last_message"] == "second"
    bodies = [m["body"] for m in _get(client, tenant, f"/api/chats/{chat['id']}/messages?limit=10")["messages"]]
    assert bodies == ["second", "first"]
    # ... but not the leads page nor the lead, which no inbound message without a new lead can change.
    assert _get(client, tenant, "/api/leads?limit=10")["leads"][0]["name"] == "Ana"
    assert _get(client, tenant, f"/api/leads/{lead['id']}")["lead"]["name"] == "Ana"
    # A lead change through the API retires them (and the contacts page: the lead syncs into its contact).
    contacts_before = _get(client, tenant, "/api/contacts?limit=10")["contacts"]
    assert [c.get("custom_name") for c in contacts_before] == [None]
    response = client.put(f"/api/leads/{lead['id']}", json={"name": "After"}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert _get(client, tenant, "/api/leads?limit=10")["leads"][0]["name"] == "After"
    assert _get(client, tenant, f"/api/leads/{lead['id']}")["lead"]["name"] == "After"
    assert [c.get("custom_name") for c in _get(client, tenant, "/api/contacts?limit=10")["contacts"]] == ["After"]


def test_inbound_message_retires_the_contacts_pages_only_when_it_wrote_a_contact(
    server: support.ServerProcess, client: httpx.Client, tenant: Any, database: str
) -> None:
    """new_message names the contacts scope for the sender's contact upsert, which writes nothing for a known
    sender under the same name: such a batch keeps the cached contacts pages (busy_account, issue 13)."""
    device_id = _connected_device(client, tenant)
    number = "519" + str(uuid.uuid4().int)[:8]
    jid = f"{number}@s.whatsapp.net"
    account = uuid.UUID(tenant.account_id)
    stamps = [1_700_000_000, 1_700_000_060, 1_700_000_120]

    def inbound(ws: ClientConnection, name: str, body: str) -> None:
        response = client.post(f"/api/dev/whatsapp/{device_id}/inbound", headers=tenant.headers,
                               json={"from": number, "push_name": name, "body": body, "timestamp": stamps.pop(0)})
        assert response.status_code == 200, response.text
        _wait_for(ws, "new_message")

    def shown_custom_name() -> Any:
        contacts = _get(client, tenant, "/api/contacts?limit=10")["contacts"]
        return [c.get("custom_name") for c in contacts if c["jid"] == jid]

    support.run_sql(database, "INSERT INTO contacts (account_id, jid, phone, name, push_name, avatar_url) "
                    "VALUES ($1, $2, $3, 'Ana', 'Ana', '/api/media/file/x.jpg')", [account, jid, number])
    with connect(f"{server.ws_url}?token={tenant.token}", close_timeout=0.2) as ws:
        inbound(ws, "Ana", "first")  # creates the chat and the lead, writes no contact
        assert shown_custom_name() == [None]
        support.run_sql(database, "UPDATE contacts SET custom_name = 'Behind' WHERE account_id = $1 AND jid = $2",
                        [account, jid])
        inbound(ws, "Ana", "second")  # same sender, same name: no contact written
        assert shown_custom_name() == [None]  # still the cached page
        assert _get(client, tenant, "/api/chats?limit=10")["chats"][0]["last_message"] == "second"
        inbound(ws, "Ana María", "third")  # a new push name: the contact is written
        assert shown_custom_name() == ["Behind"]


def test_a_change_retires_only_its_scopes_and_an_unknown_event_retires_all() -> None:
    async def scenario() -> None:
        handle = RedisHandle(support.REDIS_URL)
        await handle.start()
        prefix = f"pc-scope-test-{uuid.uuid4().hex[:8]}"
        cache = PageCache(handle, prefix, ttl=30)
        broadcaster = Broadcaster(Hub(), handle, channel=f"pc-scope-test-{uuid.uuid4().hex[:8]}:ws",
                                  retire=cache.retirement)
        account = uuid.uuid4()
        builds: dict[str, int] = dict.fromkeys(scopes.ALL, 0)

        async def read(scope: str) -> bytes:
            async def build() -> bytes:
                builds[scope] += 1
                return b"%d" % builds[scope]

            entry = await cache.fetch(account, f"read-{scope}", build, (scope,))
            assert entry is not None
            return entry.body

        async def rebuilt_after(event: str) -> set[str]:
            before = dict(builds)
            await broadcaster.broadcast(account, event, {"action": "test"})
            for scope in scopes.ALL:
                await read(scope)
            return {scope for scope in scopes.ALL if builds[scope] != before[scope]}

        try:
            for scope in scopes.ALL:
                await read(scope)
            assert await rebuilt_after("typing") == set()
            assert await rebuilt_after("new_message") == {scopes.MESSAGES, scopes.CHATS, scopes.CONTACTS}
            assert await rebuilt_after("pipeline_update") == {scopes.LEADS}
            assert await rebuilt_after("event_that_does_not_exist_yet") == set(scopes.ALL)
            # Subscribed (cross-process): the retirement travels in the publish's round trip, same effect.
            await broadcaster.start()
            assert await broadcaster.wait_subscribed(5)
            # The board cache (clarin.crm.leads_cache) goes with a leads change, in the same round trip.
            board = f"{prefix}:leads:{account}"
            assert handle.client is not None
            await handle.client.set(board, b"{}", ex=30)
            assert await rebuilt_after("new_message") == {scopes.MESSAGES, scopes.CHATS, scopes.CONTACTS}
            assert await handle.client.get(board) == b"{}"
            assert await rebuilt_after("lead_update") == {scopes.LEADS, scopes.CONTACTS}
            assert await handle.client.get(board) is None
            assert await rebuilt_after("another_unknown_event") == set(scopes.ALL)
            # A direct invalidate without scopes (writers that broadcast nothing) retires everything too.
            before = dict(builds)
            await cache.invalidate(account)
            for scope in scopes.ALL:
                await read(scope)
            assert all(builds[scope] == before[scope] + 1 for scope in scopes.ALL)
            # A read of several scopes is retired by a change to any of them.
            multi = 0

            async def build_multi() -> bytes:
                nonlocal multi
                multi += 1
                return b"m"

            key_scopes = (scopes.CHATS, scopes.CONTACTS, scopes.DEVICES)
            await cache.fetch(account, "multi", build_multi, key_scopes)
            await cache.fetch(account, "multi", build_multi, key_scopes)
            assert multi == 1
            await broadcaster.broadcast(account, "device_status", {})
            await cache.fetch(account, "multi", build_multi, key_scopes)
            assert multi == 2
        finally:
            await broadcaster.stop()
            await handle.close()

    asyncio.run(scenario())


def _documented_events() -> set[str]:
    """Every event name docs/EVENTS.md documents (table rows and the spec list)."""
    text = (ROOT / "docs" / "EVENTS.md").read_text()
    names = set(re.findall(r"^\| `([a-z_]+)`", text, re.MULTILINE))
    spec = re.search(r"## Spec events.*?\n(.*?)— payloads", text, re.DOTALL)
    assert spec is not None
    names.update(re.findall(r"`([a-z_]+)`", spec.group(1)))
    return names - {"ping"}  # client → server only


def test_every_documented_event_and_cached_read_has_scopes() -> None:
    documented = _documented_events()
    assert {"new_message", "lead_update", "chat_update", "webhook_disabled", "campaign_progress"} <= documented
    assert documented <= set(scopes.EVENT_SCOPES), documented - set(scopes.EVENT_SCOPES)
    for changed in scopes.EVENT_SCOPES.values():
        assert changed <= set(scopes.ALL)
    assert scopes.ALL == tuple(sorted(scopes.ALL))
    for name, read in scopes.READ_SCOPES.items():
        assert read and set(read) <= set(scopes.ALL), name
        if name.startswith("clarin."):  # a handler: it must exist (a renamed handler would fall back to ALL)
            module, _, attr = name.rpartition(".")
            assert callable(getattr(importlib.import_module(module), attr)), name
    from clarin.crm.stats_routes import COUNTS_KEY

    assert COUNTS_KEY in scopes.READ_SCOPES
    assert scopes.read_scopes("not-listed") == scopes.ALL
    assert scopes.changed_scopes(["new_message", "no_such_event"]) == frozenset(scopes.ALL)


@pytest.mark.parametrize("event", ["new_message", "message_status", "poll_update", "message_sent"])
def test_inbox_events_never_retire_leads(event: str) -> None:
    assert scopes.LEADS not in scopes.changed_scopes([event])
    assert set(scopes.read_scopes("clarin.crm.leads_routes.list_leads")).isdisjoint(scopes.changed_scopes([event]))
