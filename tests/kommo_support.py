"""Helpers for the Kommo tests: a migrated database, an in-process KommoService on real PostgreSQL/Redis, and an
independent oracle that derives the expected local rows from the fake's data by the spec's rules."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from types import SimpleNamespace
from typing import Any

from clarin._speedups import phone_pure
from clarin.cache import Cache, RedisHandle
from clarin.cache.pages import PageCache
from clarin.config import load_settings
from clarin.db.migrate import migrate
from clarin.db.pool import Database
from clarin.db.queries import query
from clarin.kommo.poller import KommoService
from clarin.realtime.broadcaster import Broadcaster
from clarin.realtime.hub import Hub
from tests import support
from tests.fake_kommo import Dataset

FAST_ENV = {
    "KOMMO_RATE_LIMIT": "500",
    "KOMMO_RETRY_BASE_DELAY": "0.01",
    "KOMMO_RETRY_MAX_DELAY": "0.05",
    "KOMMO_MAX_RETRIES": "8",
    "KOMMO_TIMEOUT": "5",
    "KOMMO_POLL_INTERVAL": "0.2",
}

Q_CONNECT = query("kommo_connect")


@contextmanager
def migrated_database() -> Iterator[str]:
    name, dsn = support.create_database()
    try:
        async def _migrate() -> None:
            db = Database(dsn, 2)
            try:
                await migrate(db)
            finally:
                db.close()

        asyncio.run(_migrate())
        yield dsn
    finally:
        support.drop_database(name)


def create_account(dsn: str, name: str = "Kommo tenant") -> uuid.UUID:
    account = support.run_sql(dsn, "INSERT INTO accounts (name) VALUES ($1) RETURNING id", [name])[0]["id"]
    account_id = uuid.UUID(str(account))
    support.run_sql(dsn, query("create_default_pipeline"), [account_id])
    return account_id


class EventSink:
    """A WebSocket stand-in registered on the real hub: collects what the account receives."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    async def send_str(self, payload: str) -> None:
        self.frames.append(json.loads(payload))

    def close(self, code: int) -> None:
        pass

    def events(self, name: str) -> list[dict[str, Any]]:
        return [f["data"] for f in self.frames if f["event"] == name]


@asynccontextmanager
async def kommo_service(
    dsn: str, base_url: str, *, token: str = "t", redis: bool = True, prefix: str | None = None, **env: str
) -> AsyncIterator[KommoService]:
    settings = load_settings({
        "KOMMO_SUBDOMAIN": "x", "KOMMO_ACCESS_TOKEN": token, "KOMMO_BASE_URL": base_url,
        "REDIS_URL": support.REDIS_URL if redis else "off",
        "REDIS_PREFIX": prefix or f"kommo-test-{uuid.uuid4().hex[:8]}",
        **FAST_ENV, **env,
    })
    handle = RedisHandle(settings.redis_url)
    await handle.start()
    db = Database(dsn, 3)  # modest: CI machines run several suites against one PostgreSQL
    hub = Hub()
    pages = PageCache(handle, settings.redis_prefix, ttl=settings.page_cache_ttl)
    state = SimpleNamespace(settings=settings, db=db, redis=handle, cache=Cache(handle), hub=hub, pages=pages,
                            broadcaster=Broadcaster(hub, handle, channel=f"{settings.redis_prefix}:ws",
                                                    retire=pages.retirement))
    service = KommoService(settings, dsn, state)
    try:
        yield service
    finally:
        await service.stop()
        await handle.close()
        db.close()


def listen(service: KommoService, account_id: uuid.UUID) -> EventSink:
    sink = EventSink()
    service.state.hub.register(str(account_id), sink, sink)
    return sink


async def connect(service: KommoService, account_id: uuid.UUID, kommo_pipeline_id: int) -> None:
    """What R109 does, minus the queued task."""
    pipeline_id = await service.sync.sync_pipeline(account_id, kommo_pipeline_id)
    await service.sync.sync_tags(account_id)
    await service.state.db.fetch(Q_CONNECT, [account_id, kommo_pipeline_id, pipeline_id])


async def full_sync(service: KommoService, account_id: uuid.UUID) -> dict[str, Any]:
    assert await service.start_full_sync(account_id)
    await service.wait_full_sync(account_id)
    status = await service.full_status(account_id)
    assert status is not None and not status["running"], status
    return status


# -- oracle ----------------------------------------------------------------------------------------------
def _clean(value: str | None) -> str:
    text = (value or "").strip(phone_pure.GO_WHITESPACE)
    return text[1:] if text.startswith("'") else text


def _field(contact: dict[str, Any], code: str) -> str:
    for item in contact.get("custom_fields_values") or []:
        if item.get("field_code") != code or not item.get("values"):
            continue
        value = item["values"][0].get("value")
        if isinstance(value, str):
            return value
    return ""


def _jid(phone: str) -> str:
    return phone + "@s.whatsapp.net" if 6 <= len(phone) <= 20 and phone.isascii() and phone.isdigit() else ""


def expected(data: Dataset, pipeline_order: list[int]) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]:
    """(leads by Kommo id, contacts by Kommo id) as the sync must store them, processing pipelines in order."""
    leads: dict[int, dict[str, Any]] = {}
    contacts: dict[int, dict[str, Any]] = {}
    lead_jids: set[str] = set()
    contact_jids: set[str] = set()
    for pipeline_id in pipeline_order:
        for lead_id in sorted(k for k, v in data.leads.items() if v["pipeline_id"] == pipeline_id):
            lead = data.leads[lead_id]
            phone = email = ""
            contact_kid = None
            cid = lead["contacts"][0] if lead["contacts"] else None
            contact = data.contacts.get(cid) if cid is not None else None
            if contact is not None:
                raw = _field(contact, "PHONE")
                if raw or contact.get("name"):
                    contact_kid = cid
                    phone = phone_pure.normalize_phone(raw)[:50]
                    email = _field(contact, "EMAIL").strip(phone_pure.GO_WHITESPACE)[:255]
                    if cid not in contacts:
                        real = _jid(phone)
                        jid = real if real and real not in contact_jids else f"kommo_{cid}@kommo.contact"
                        contact_jids.add(jid)
                        first = contact.get("first_name") or ""
                        ctags = sorted({t["name"].strip() for t in contact["_embedded"]["tags"]})
                        contacts[cid] = {
                            "jid": jid, "phone": phone or None, "email": email or None,
                            "name": (_clean(first) if first else _clean(contact.get("name"))) or None,
                            "last_name": _clean(contact.get("last_name")) or None, "tags": ctags,
                        }
            real = _jid(phone_pure.normalize_phone(phone))
            jid = real if real and real not in lead_jids else f"kommo_{lead_id}@kommo.lead"
            lead_jids.add(jid)
            tag_names = [data.tags[t].strip() for t in lead["tags"]]
            leads[lead_id] = {
                "name": _clean(lead["name"]) or None, "phone": phone or None, "email": email or None, "jid": jid,
                "kp": lead["pipeline_id"],
                "ks": None if lead["status_id"] in (142, 143) else lead["status_id"],
                "ck": contact_kid, "tags": tag_names or None, "links": sorted(tag_names),
                "status": "new", "source": "kommo",
            }
    return leads, contacts


LEADS_SQL = """
SELECT l.kommo_id, l.name, l.phone, l.email, l.jid, l.status, l.source, l.tags,
       p.kommo_id AS kp, ps.kommo_id AS ks, c.kommo_id AS ck,
       ARRAY(SELECT t.name FROM lead_tags lt JOIN tags t ON t.id = lt.tag_id WHERE lt.lead_id = l.id
             ORDER BY t.name) AS links
FROM leads l
LEFT JOIN pipelines p ON p.id = l.pipeline_id
LEFT JOIN pipeline_stages ps ON ps.id = l.stage_id
LEFT JOIN contacts c ON c.id = l.contact_id
WHERE l.account_id = $1
"""

CONTACTS_SQL = """
SELECT c.kommo_id, c.jid, c.phone, c.email, c.name, c.last_name, c.source,
       ARRAY(SELECT t.name FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id WHERE ct.contact_id = c.id
             ORDER BY t.name) AS tags
FROM contacts c
WHERE c.account_id = $1 AND c.kommo_id IS NOT NULL
"""


def stored_leads(dsn: str, account_id: uuid.UUID) -> dict[int, dict[str, Any]]:
    rows = support.run_sql(dsn, LEADS_SQL, [account_id])
    out: dict[int, dict[str, Any]] = {}
    for row in rows:
        kid = row.pop("kommo_id")
        assert kid is not None and kid not in out, f"duplicate or unlinked Kommo lead {kid}"
        out[kid] = row
    return out


def stored_contacts(dsn: str, account_id: uuid.UUID) -> dict[int, dict[str, Any]]:
    rows = support.run_sql(dsn, CONTACTS_SQL, [account_id])
    out: dict[int, dict[str, Any]] = {}
    for row in rows:
        kid = row.pop("kommo_id")
        assert kid not in out
        row.pop("source")
        out[kid] = row
    return out


def assert_matches(dsn: str, account_id: uuid.UUID, data: Dataset, pipeline_order: list[int]) -> None:
    want_leads, want_contacts = expected(data, pipeline_order)
    got_leads = stored_leads(dsn, account_id)
    assert set(got_leads) == set(want_leads), (len(got_leads), len(want_leads))
    bad = [(kid, got_leads[kid], want) for kid, want in want_leads.items() if got_leads[kid] != want]
    assert not bad, f"{len(bad)} leads differ, e.g. {bad[:3]}"
    got_contacts = stored_contacts(dsn, account_id)
    assert set(got_contacts) == set(want_contacts), (len(got_contacts), len(want_contacts))
    bad_c = [(kid, got_contacts[kid], want) for kid, want in want_contacts.items() if got_contacts[kid] != want]
    assert not bad_c, f"{len(bad_c)} contacts differ, e.g. {bad_c[:3]}"
