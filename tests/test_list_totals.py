"""Cached list totals (clarin.cache.totals): the contacts page counts once per filter (the unfiltered total is the
account's counter instead), and every event that may change contacts drops the cached totals in its publish round
trip, on every worker (real server, PostgreSQL, Redis)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from clarin.cache.scopes import CHATS, CONTACTS, LEADS
from clarin.cache.totals import dropped_keys, totals_key
from tests.leads_support import random_phone, redis_client, sql


def add_contacts(dsn: str, account_id: str, count: int) -> list[str]:
    """Contacts written behind the server's back: no event, so nothing is dropped."""
    return [
        str(sql(dsn, "INSERT INTO contacts (account_id, jid, name) VALUES ($1, $2, 'Quiet') RETURNING id",
                uuid.UUID(account_id), random_phone() + "@s.whatsapp.net")[0]["id"])
        for _ in range(count)
    ]


def total(client: httpx.Client, tenant: Any, **params: Any) -> int:
    response = client.get("/api/contacts", params={"limit": 1, **params}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


def test_contacts_total_is_cached_per_filter_and_dropped_by_contact_events(
    client: httpx.Client, tenant: Any, database: str
) -> None:
    ids = add_contacts(database, tenant.account_id, 3)
    assert total(client, tenant) == 3
    assert total(client, tenant, search="quiet") == 3
    add_contacts(database, tenant.account_id, 2)
    # the unfiltered page, total included, still comes from the page cache (its total itself is the account's
    # counter, never a cached count); a filtered total is cached per filter: its count did not run again
    assert total(client, tenant) == 3
    assert total(client, tenant, search="quiet") == 3
    # a filter not asked before counts now
    assert total(client, tenant, has_phone="false", search="qui") == 5
    # deleting through the API broadcasts contact_update: every cached total of the account is dropped
    assert client.delete(f"/api/contacts/{ids[0]}", headers=tenant.headers).status_code == 200
    assert total(client, tenant) == 4
    assert total(client, tenant, search="quiet") == 4


def test_totals_keys_are_per_prefix_account_and_scope() -> None:
    account = uuid.uuid4()
    assert set(dropped_keys("p1", account, {CONTACTS, LEADS})) == {totals_key("p1", account, "contacts"),
                                                                   totals_key("p1", account, "chats")}
    assert dropped_keys("p1", account, {LEADS}) == ()
    # chats are searched by their contact's text and filtered by its tags: a contacts change drops them too
    assert dropped_keys("p1", account, {CHATS}) == (totals_key("p1", account, "chats"),)
    assert set(dropped_keys("p1", account, {CONTACTS})) == {totals_key("p1", account, name)
                                                           for name in ("contacts", "chats")}
    assert totals_key("p1", account, "contacts") != totals_key("p2", account, "contacts")
    assert str(account) in totals_key("p1", account, "contacts")


def add_chats(dsn: str, account_id: str, count: int) -> list[str]:
    """Chats written behind the server's back: no event, so nothing is dropped."""
    return [
        str(sql(dsn, "INSERT INTO chats (account_id, jid, name) VALUES ($1, $2, 'Quiet chat') RETURNING id",
                uuid.UUID(account_id), random_phone() + "@s.whatsapp.net")[0]["id"])
        for _ in range(count)
    ]


def chats_total(client: httpx.Client, tenant: Any, **params: Any) -> tuple[int, bool]:
    response = client.get("/api/chats", params={"limit": 1, **params}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return int(response.json()["total"]), bool(response.json()["total_capped"])


def test_chats_total_is_cached_per_filter_and_dropped_by_chat_and_contact_events(
    client: httpx.Client, tenant: Any, database: str
) -> None:
    ids = add_chats(database, tenant.account_id, 3)
    assert chats_total(client, tenant, search="quiet") == (3, False)
    assert chats_total(client, tenant, search="quiet", unread_only="true") == (0, False)
    add_chats(database, tenant.account_id, 2)
    # cached per filter: neither count ran again, a filter not asked before counts now
    assert chats_total(client, tenant, search="quiet") == (3, False)
    assert chats_total(client, tenant, search="quiet chat") == (5, False)
    # a chat deleted through the API broadcasts chat_update: the account's cached chats totals are dropped
    assert client.delete(f"/api/chats/{ids[0]}", headers=tenant.headers).status_code == 200
    assert chats_total(client, tenant, search="quiet") == (4, False)
    add_chats(database, tenant.account_id, 1)
    assert chats_total(client, tenant, search="quiet") == (4, False)
    # a contact change (chats are searched by their contact's text) drops them as well
    contact = add_contacts(database, tenant.account_id, 1)[0]
    renamed = client.put(f"/api/contacts/{contact}", json={"custom_name": "Renamed"}, headers=tenant.headers)
    assert renamed.status_code == 200, renamed.text
    assert chats_total(client, tenant, search="quiet") == (5, False)


def test_contacts_total_key_lives_under_the_server_prefix(client: httpx.Client, tenant: Any, database: str) -> None:
    add_contacts(database, tenant.account_id, 1)
    assert total(client, tenant, search="quiet") == 1  # filtered: the unfiltered total is not cached
    keys = [key.decode() for key in redis_client().scan_iter(match=f"*:totals:contacts:{tenant.account_id}")]
    assert len(keys) == 1 and redis_client().ttl(keys[0]) > 0, keys
