"""Kommo → Clarin data rules (spec integrations.md A.8–A.14), written in batches.

One page of Kommo leads (≤ 250) and their first contacts is written in ONE transaction with a fixed number of
statements (lookups, then ``unnest`` batch updates/inserts for tags, contacts, leads and both tag junctions),
keyed by (account_id, kommo_id). Phones of the whole page are normalised with ``normalize_phones`` in one call.

Rules kept from the spec: A.10/A.11 column rules (values Kommo leaves empty never erase local ones; tags are
replaced only when Kommo sends ≥ 1), A.12 custom-field extraction, A.13 normalisation (the lead JID is the
contact phone normalised twice), A.14 ``cleanQuotes``, stage position = index in Kommo's array, statuses
142/143 skipped, stage colour kept only when it starts with ``#``.

Documented fixes of the original's QUIRKs:
- A.10.7 JID collisions: a Kommo lead whose JID already belongs to a local lead WITHOUT kommo_id (WhatsApp,
  CSV, manual) adopts that row (its kommo_id is set); when the owner is another Kommo lead (two Kommo leads
  sharing one phone) the newcomer gets ``kommo_<id>@kommo.lead`` instead of failing on every poll.
- A.11 contacts: same adoption; a phone-less or colliding contact gets ``kommo_<id>@kommo.contact`` instead
  of ``""`` (the original's second phone-less contact failed on UNIQUE(account_id, jid)).
- A phone makes a WhatsApp JID only when, normalised, it is 6–20 ASCII digits (``"abc"`` or
  ``"987654321ext2"`` are stored as the phone but never become ``abc@s.whatsapp.net``).
- A lead's JID stays fixed (A.10 table), except that a placeholder ``kommo_<id>@kommo.lead`` is replaced by
  the phone JID once the lead gets a usable phone.
- Stages are keyed per pipeline (``(pipeline_id, kommo_id)``), so every tenant gets its own stages (A.8).
- Kommo ``is_main`` makes the pipeline the account's default only after the old default is cleared in the
  same transaction (one default per account).
- A.9 tag name clash: a local tag with the same name and no kommo_id is adopted instead of failing forever.
- Lead tags are linked by Kommo tag id first, then by name; links are diffed (no delete-all/re-insert churn).
- Only rows that really changed are rewritten and counted, so the 60 s overlap re-read does not re-announce
  unchanged leads every poll (the original sent ~12 ``lead_update`` per change).
- Items of a page that do not decode (missing id, wrong types) are skipped and reported; the rest is written.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from clarin._speedups import normalize_phones
from clarin._speedups.phone_pure import GO_WHITESPACE
from clarin.db.errors import UniqueViolation
from clarin.db.pool import Database, Transaction
from clarin.db.queries import query
from clarin.kommo.client import KommoClient
from clarin.kommo.records import (
    CLOSED_STATUSES,
    EMAIL_MAX,
    MAX_REPORTED,
    NAME_MAX,
    PHONE_MAX,
    TAG_SEPARATOR,
    KContact,
    KLead,
    KPipeline,
    KTag,
    _tag_pairs,
    clean_quotes,
    clip,
    contact_placeholder,
    custom_field,
    decode_items,
    first_contact_id,
    lead_placeholder,
    lead_tags,
    phone_jid,
    stage_color,
)

log = logging.getLogger("clarin.kommo.sync")

Q_UNANNOUNCED_ADD = query("kommo_unannounced_add")
Q_CUSTOM_PLANS = query("kommo_custom_plans")
Q_CONNECTED_SET_PIPELINE = query("kommo_connected_set_pipeline")
Q_CLEAR_DEFAULT = query("kommo_clear_default")
Q_PIPELINE_UPSERT = query("kommo_pipeline_upsert")
Q_STAGES_UPSERT = query("kommo_stages_upsert")
Q_MAPPING = query("kommo_mapping")
Q_TAGS_LOOKUP = query("kommo_tags_lookup")
Q_TAGS_UPDATE = query("kommo_tags_update")
Q_TAGS_INSERT = query("kommo_tags_insert")
Q_CONTACTS_LOOKUP = query("kommo_contacts_lookup")
Q_CONTACTS_UPDATE = query("kommo_contacts_update")
Q_CONTACTS_INSERT = query("kommo_contacts_insert")
Q_CONTACT_TAGS_PRUNE = query("kommo_contact_tags_prune")
Q_CONTACT_TAGS_ADD = query("kommo_contact_tags_add")
Q_LEADS_LOOKUP = query("kommo_leads_lookup")
Q_LEADS_UPDATE = query("kommo_leads_update")
Q_LEADS_INSERT = query("kommo_leads_insert")
Q_LEAD_TAGS_PRUNE = query("kommo_lead_tags_prune")
Q_LEAD_TAGS_ADD = query("kommo_lead_tags_add")

MAPPING_CAP = 100_000
WRITE_ATTEMPTS = 3


class PipelineNotFound(Exception):
    pass


# -- results ------------------------------------------------------------------------------------------
@dataclass
class LeadSyncResult:
    processed: int = 0  # leads written (inserted, updated or already identical)
    changed: int = 0  # leads whose row or tag links changed
    pages: int = 0
    errors: list[str] = field(default_factory=list)
    error_count: int = 0

    def report(self, messages: Iterable[str]) -> None:
        for message in messages:
            self.error_count += 1
            if len(self.errors) < MAX_REPORTED:
                self.errors.append(message)
            log.warning("kommo sync: %s", message)

    @property
    def error_summary(self) -> list[str]:
        hidden = self.error_count - len(self.errors)
        return self.errors + ([f"... and {hidden} more"] if hidden > 0 else [])


@dataclass
class Mapping:
    pipelines: dict[int, uuid.UUID] = field(default_factory=dict)
    stages: dict[tuple[uuid.UUID, int], uuid.UUID] = field(default_factory=dict)

    def resolve(self, lead: KLead) -> tuple[uuid.UUID | None, uuid.UUID | None]:
        pipeline = self.pipelines.get(lead.pipeline_id) if lead.pipeline_id is not None else None
        if pipeline is None or lead.status_id is None:
            return pipeline, None
        return pipeline, self.stages.get((pipeline, lead.status_id))

    def knows(self, lead: KLead) -> bool:
        pipeline, stage = self.resolve(lead)
        return pipeline is not None and (stage is not None or lead.status_id in CLOSED_STATUSES
                                         or lead.status_id is None)


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


# -- the sync -----------------------------------------------------------------------------------------
class KommoSync:
    def __init__(self, db: Database, client: KommoClient) -> None:
        self.db = db
        self.client = client

    # -- pipelines and stages (A.8) ---------------------------------------------------------------------
    async def fetch_pipelines(self) -> list[KPipeline]:
        pipelines, _ = decode_items(await self.client.pipelines(), KPipeline, "pipeline")  # bad ones: skipped
        return pipelines

    async def sync_pipeline(
        self, account_id: uuid.UUID, kommo_pipeline_id: int, pipelines: list[KPipeline] | None = None
    ) -> uuid.UUID:
        """Upsert one Kommo pipeline and its stages into the account; returns the local pipeline id."""
        if pipelines is None:
            pipelines = await self.fetch_pipelines()
        found = next((p for p in pipelines if p.id == kommo_pipeline_id), None)
        if found is None:
            raise PipelineNotFound(f"pipeline {kommo_pipeline_id} not found in Kommo")
        statuses = found.embedded.statuses if found.embedded and found.embedded.statuses else []
        ids: list[int] = []
        names: list[str] = []
        colors: list[str] = []
        positions: list[int] = []
        seen: set[int] = set()
        for index, status in enumerate(statuses):  # position = index in Kommo's array, gaps included
            if status.id in CLOSED_STATUSES or status.id in seen:
                continue
            seen.add(status.id)
            ids.append(status.id)
            names.append(clip(status.name, NAME_MAX) or f"Etapa {status.id}")
            colors.append(stage_color(status.color))
            positions.append(index)
        is_main = bool(found.is_main)
        name = clip(found.name, NAME_MAX) or f"Kommo {found.id}"
        async with self.db.transaction() as tx:
            if is_main:
                await tx.execute(Q_CLEAR_DEFAULT, [account_id, found.id])
            pipeline_id = _uuid(await tx.fetch_val(Q_PIPELINE_UPSERT, [account_id, name, is_main, found.id]))
            if ids:
                await tx.execute(Q_STAGES_UPSERT, [account_id, pipeline_id, ids, names, colors, positions])
            await tx.execute(Q_CONNECTED_SET_PIPELINE, [account_id, found.id, pipeline_id])
        return pipeline_id

    async def load_mapping(self, account_id: uuid.UUID) -> Mapping:
        mapping = Mapping()
        for row in await self.db.fetch(Q_MAPPING, [account_id, MAPPING_CAP]):
            pipeline = _uuid(row["pipeline_id"])
            mapping.pipelines[int(row["kommo_pipeline_id"])] = pipeline
            if row["stage_id"] is not None:
                mapping.stages[(pipeline, int(row["kommo_status_id"]))] = _uuid(row["stage_id"])
        return mapping

    # -- tags (A.9) ----------------------------------------------------------------------------------
    async def sync_tags(self, account_id: uuid.UUID) -> int:
        raw = await self.client.lead_tags()
        tags, _ = decode_items(raw, KTag, "tag")
        wanted = _tag_pairs(tags)
        if not wanted:
            return 0

        async def write(tx: Transaction) -> int:
            by_kid, by_name = await upsert_tags(tx, account_id, wanted)
            return sum(1 for kid, name in wanted if (kid is not None and kid in by_kid) or name in by_name)

        return await self._in_transaction(write)

    # -- leads (A.10) --------------------------------------------------------------------------------
    async def sync_leads(
        self,
        account_id: uuid.UUID,
        kommo_pipeline_id: int,
        updated_since: int | None,
        on_page: Callable[[LeadSyncResult], Awaitable[None]] | None = None,
        count_unannounced: bool = False,
    ) -> LeadSyncResult:
        """Page through the pipeline's leads (changed since ``updated_since``, unix s; None = all).
        ``count_unannounced`` (the account has a webhook subscription): each page adds its changed leads to the
        pipeline's ``unannounced`` count in its own transaction (clarin.kommo.poller announces it).

        The next page and its contacts are fetched while the current one is written (one page of look-ahead),
        so Kommo round trips and database writes overlap.
        """
        result = LeadSyncResult()
        mapping = await self.load_mapping(account_id)
        refreshed = False
        pages: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)
        producer = asyncio.create_task(self._fetch_pages(kommo_pipeline_id, updated_since, pages))
        try:
            while True:
                item = await pages.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                leads, contacts, errors = item
                result.report(errors)
                if not refreshed and any(
                    not mapping.knows(lead) for lead in leads if lead.pipeline_id in (None, kommo_pipeline_id)
                ):
                    # A stage (or the pipeline) appeared in Kommo after the last metadata sync: refresh once.
                    refreshed = True
                    try:
                        await self.sync_pipeline(account_id, kommo_pipeline_id)
                    except PipelineNotFound as exc:
                        result.report([str(exc)])
                    mapping = await self.load_mapping(account_id)
                processed, changed = await self.write_leads(
                    account_id, leads, contacts, mapping, count_for=kommo_pipeline_id if count_unannounced else None)
                result.processed += processed
                result.changed += changed
                result.pages += 1
                if on_page is not None:
                    await on_page(result)
        finally:
            # Its outcome already came through the queue. Cancelled again while it runs on: a library that swallows
            # a cancel (tests/test_redis_cancel.py) would otherwise leave it blocked on a put nobody reads.
            while not producer.done():
                producer.cancel()
                await asyncio.wait([producer], timeout=1.0)
        return result

    async def _fetch_pages(self, kommo_pipeline_id: int, updated_since: int | None, out: asyncio.Queue[Any]) -> None:
        try:
            async for raw_items in self.client.lead_pages(kommo_pipeline_id, updated_since):
                leads, errors = decode_items(raw_items, KLead, "lead")
                contact_ids = [cid for cid in (first_contact_id(lead) for lead in leads) if cid is not None]
                raw_contacts = await self.client.contacts_by_ids(contact_ids) if contact_ids else []
                contacts, contact_errors = decode_items(raw_contacts, KContact, "contact")
                await out.put((leads, contacts, errors + contact_errors))
            await out.put(None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await out.put(exc)

    async def write_leads(
        self, account_id: uuid.UUID, leads: list[KLead], contacts: list[KContact], mapping: Mapping,
        count_for: int | None = None,
    ) -> tuple[int, int]:
        """Write one page in one transaction; returns (processed, changed). ``count_for``: the Kommo pipeline whose
        ``unannounced`` count the changed leads are added to, in the same transaction."""
        if not leads:
            return 0, 0
        unique: dict[int, KLead] = {}
        for lead in leads:
            unique[lead.id] = lead  # a lead twice in a page: the later copy wins
        page = list(unique.values())
        contacts_by_id = {c.id: c for c in contacts}

        async def write(tx: Transaction) -> tuple[int, int]:
            processed, changed = await _write_page(tx, account_id, page, contacts_by_id, mapping)
            if changed and count_for is not None:
                await tx.execute(Q_UNANNOUNCED_ADD, [account_id, count_for, changed])
            return processed, changed

        return await self._in_transaction(write)

    async def _in_transaction(self, work: Callable[[Transaction], Awaitable[Any]]) -> Any:
        """Run ``work`` in a transaction; a unique violation (a concurrent writer took a key between our
        lookups and writes) is retried with fresh lookups."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                async with self.db.transaction() as tx:
                    await tx.execute(Q_CUSTOM_PLANS)
                    return await work(tx)
            except UniqueViolation as exc:
                if attempt == WRITE_ATTEMPTS:
                    raise
                log.info("kommo write hit %s (concurrent writer); retrying", exc.constraint)
        raise AssertionError("unreachable")


# -- page writer --------------------------------------------------------------------------------------
async def upsert_tags(
    tx: Transaction, account_id: uuid.UUID, wanted: list[tuple[int | None, str]]
) -> tuple[dict[int, uuid.UUID], dict[str, uuid.UUID]]:
    """Find or create tags by Kommo id, then by name (A.9 + A.10.6); returns both lookups."""
    kids = sorted({kid for kid, _ in wanted if kid is not None})
    names = sorted({name for _, name in wanted})
    rows = await tx.fetch(Q_TAGS_LOOKUP, [account_id, kids, names])
    by_kid: dict[int, uuid.UUID] = {}
    by_name: dict[str, uuid.UUID] = {}
    row_kid: dict[uuid.UUID, int | None] = {}
    row_name: dict[uuid.UUID, str] = {}
    for row in rows:
        tag_id = _uuid(row["id"])
        row_kid[tag_id] = row["kommo_id"]
        row_name[tag_id] = row["name"]
        by_name[row["name"]] = tag_id
        if row["kommo_id"] is not None:
            by_kid[int(row["kommo_id"])] = tag_id
    updates: dict[uuid.UUID, tuple[str, int | None]] = {}
    inserts: dict[str, int | None] = {}
    for kid, name in wanted:
        if kid is not None and kid in by_kid:
            tag_id = by_kid[kid]
            owner = by_name.get(name)
            if row_name[tag_id] != name and (owner is None or owner == tag_id):  # renamed in Kommo
                by_name.pop(row_name[tag_id], None)
                row_name[tag_id] = name
                by_name[name] = tag_id
                updates[tag_id] = (name, kid)
            by_name.setdefault(name, tag_id)
        elif name in by_name:
            tag_id = by_name[name]
            if kid is not None and row_kid.get(tag_id) is None:  # adopt the local same-named tag
                row_kid[tag_id] = kid
                by_kid[kid] = tag_id
                updates[tag_id] = (name, kid)
            elif kid is not None:
                by_kid.setdefault(kid, tag_id)
        elif name not in inserts:
            inserts[name] = kid
    if updates:
        ids = list(updates)
        await tx.execute(Q_TAGS_UPDATE, [account_id, ids, [updates[i][0] for i in ids],
                                         [updates[i][1] for i in ids]])
    if inserts:
        names_in = list(inserts)
        created = await tx.fetch(Q_TAGS_INSERT, [account_id, names_in, [inserts[n] for n in names_in]])
        for row in created:
            tag_id = _uuid(row["id"])
            by_name[row["name"]] = tag_id
            if row["kommo_id"] is not None:
                by_kid[int(row["kommo_id"])] = tag_id
        missing = [n for n in names_in if n not in by_name]
        if missing:  # inserted concurrently by someone else: read them
            for row in await tx.fetch(Q_TAGS_LOOKUP, [account_id, [], missing]):
                by_name[row["name"]] = _uuid(row["id"])
    return by_kid, by_name


@dataclass
class _ContactOutcome:
    local_id: uuid.UUID | None
    phone: str
    email: str


async def _write_contacts(
    tx: Transaction,
    account_id: uuid.UUID,
    wanted_ids: list[int],
    contacts: dict[int, KContact],
    tag_ids: Callable[[list[tuple[int | None, str]]], list[uuid.UUID]],
) -> dict[int, _ContactOutcome]:
    """A.11 for the page's first contacts. Contacts Kommo did not return fall back to the local row (A.10.2)."""
    usable: list[KContact] = []
    raw_phones: list[str] = []
    emails: list[str] = []
    for kid in wanted_ids:
        contact = contacts.get(kid)
        if contact is None:
            continue
        phone = custom_field(contact.custom_fields_values, "PHONE")
        if not phone and not (contact.name or ""):
            continue  # A.11 step 2: nothing to identify it by
        usable.append(contact)
        raw_phones.append(phone)
        emails.append(clip(custom_field(contact.custom_fields_values, "EMAIL").strip(GO_WHITESPACE), EMAIL_MAX))
    phones = [clip(p, PHONE_MAX) for p in normalize_phones(raw_phones)]
    real_jids = [phone_jid(p) for p in phones]
    lookup_jids = sorted({j for j in real_jids if j} | {contact_placeholder(c.id) for c in usable})
    rows = await tx.fetch(Q_CONTACTS_LOOKUP, [account_id, list(wanted_ids), lookup_jids])
    by_kid = {int(r["kommo_id"]): r for r in rows if r["kommo_id"] is not None}
    by_jid = {r["jid"]: r for r in rows}
    claimed: set[str] = set()
    adopted: set[str] = set()
    outcome: dict[int, _ContactOutcome] = {}
    upd: list[tuple[uuid.UUID, int, str | None, str, str, str, str]] = []
    ins: list[tuple[str, str, str, str, str, int]] = []
    tags_for: dict[int, list[tuple[int | None, str]]] = {}
    for contact, phone, email, real in zip(usable, phones, emails, real_jids, strict=True):
        first = contact.first_name or ""
        name = clip(clean_quotes(first) if first else clean_quotes(contact.name), NAME_MAX)
        last_name = clip(clean_quotes(contact.last_name), NAME_MAX)
        row = by_kid.get(contact.id)
        if row is None and real:
            owner = by_jid.get(real)
            if owner is not None and owner["kommo_id"] is None and owner["id"] not in adopted:
                row = owner  # A.11 step 5: adopt the contact created from WhatsApp / CSV
                adopted.add(owner["id"])
        if row is not None:
            new_jid = None
            if real and real != row["jid"] and real not in claimed and (
                real not in by_jid or by_jid[real]["id"] == row["id"]
            ):
                new_jid = real
            claimed.add(new_jid or row["jid"])
            upd.append((_uuid(row["id"]), contact.id, new_jid, phone, name, last_name, email))
            outcome[contact.id] = _ContactOutcome(
                _uuid(row["id"]), phone or (row["phone"] or ""), email or (row["email"] or "")
            )
        else:
            jid = real if real and real not in claimed and real not in by_jid else contact_placeholder(contact.id)
            if jid in by_jid or jid in claimed:
                continue  # the placeholder is taken (should not happen): leave this contact out
            claimed.add(jid)
            ins.append((jid, phone, name, last_name, email, contact.id))
            outcome[contact.id] = _ContactOutcome(None, phone, email)
        pairs = _tag_pairs(contact.embedded.tags if contact.embedded else None)
        if pairs:
            tags_for[contact.id] = pairs
    if upd:
        await tx.execute(Q_CONTACTS_UPDATE, [
            account_id, [u[0] for u in upd], [u[1] for u in upd], [u[2] for u in upd],
            [u[3] or None for u in upd], [u[4] or None for u in upd], [u[5] or None for u in upd],
            [u[6] or None for u in upd],
        ])
    if ins:
        created = await tx.fetch(Q_CONTACTS_INSERT, [
            account_id, [i[0] for i in ins], [i[1] or None for i in ins], [i[2] or None for i in ins],
            [i[3] or None for i in ins], [i[4] or None for i in ins], [i[5] for i in ins],
        ])
        for row in created:
            outcome[int(row["kommo_id"])].local_id = _uuid(row["id"])
    # Contacts Kommo did not return (deleted, or skipped): the existing local row, if any (A.10 step 2).
    for kid in wanted_ids:
        if kid not in outcome and kid not in contacts and kid in by_kid:
            row = by_kid[kid]
            outcome[kid] = _ContactOutcome(_uuid(row["id"]), row["phone"] or "", row["email"] or "")
    if tags_for:
        await _relink(
            tx, account_id, Q_CONTACT_TAGS_PRUNE, Q_CONTACT_TAGS_ADD,
            {outcome[kid].local_id: tag_ids(pairs) for kid, pairs in tags_for.items()
             if outcome.get(kid) and outcome[kid].local_id is not None},
        )
    return outcome


async def _relink(
    tx: Transaction, account_id: uuid.UUID, prune: str, add: str, links: dict[Any, list[uuid.UUID]]
) -> set[str]:
    """Make the junction rows of these owners exactly ``links``; returns the owners whose links changed."""
    if not links:
        return set()
    owners = list(links)
    left: list[uuid.UUID] = []
    right: list[uuid.UUID] = []
    for owner, tag_ids in links.items():
        for tag_id in dict.fromkeys(tag_ids):
            left.append(owner)
            right.append(tag_id)
    changed = {str(r[next(iter(r))]) for r in await tx.fetch(prune, [account_id, owners, left, right])}
    if left:
        changed |= {str(r[next(iter(r))]) for r in await tx.fetch(add, [account_id, left, right])}
    return changed


async def _write_page(
    tx: Transaction,
    account_id: uuid.UUID,
    leads: list[KLead],
    contacts: dict[int, KContact],
    mapping: Mapping,
) -> tuple[int, int]:
    # Tags of the page (leads + their contacts) first: one lookup, at most one update and one insert.
    wanted_contacts = list(dict.fromkeys(cid for cid in (first_contact_id(lead) for lead in leads) if cid))
    all_pairs: dict[tuple[int | None, str], None] = {}
    for lead in leads:
        all_pairs.update(dict.fromkeys(lead_tags(lead)))
    for kid in wanted_contacts:
        contact = contacts.get(kid)
        if contact is not None and contact.embedded is not None:
            all_pairs.update(dict.fromkeys(_tag_pairs(contact.embedded.tags)))
    by_kid: dict[int, uuid.UUID] = {}
    by_name: dict[str, uuid.UUID] = {}
    if all_pairs:
        by_kid, by_name = await upsert_tags(tx, account_id, list(all_pairs))

    def tag_ids(pairs: list[tuple[int | None, str]]) -> list[uuid.UUID]:
        out: list[uuid.UUID] = []
        for kid, name in pairs:
            tag_id = (by_kid.get(kid) if kid is not None else None) or by_name.get(name)
            if tag_id is not None:
                out.append(tag_id)
        return out

    contact_of = await _write_contacts(tx, account_id, wanted_contacts, contacts, tag_ids)

    # Leads: the phone JID is the contact's stored (normalised) phone normalised once more (A.10 step 3).
    lead_contact = [contact_of.get(cid) if cid else None for cid in (first_contact_id(lead) for lead in leads)]
    lead_phones = [c.phone if c else "" for c in lead_contact]
    real_jids = [phone_jid(p) for p in normalize_phones(lead_phones)]
    lookup_jids = sorted({j for j in real_jids if j} | {lead_placeholder(lead.id) for lead in leads})
    rows = await tx.fetch(Q_LEADS_LOOKUP, [account_id, [lead.id for lead in leads], lookup_jids])
    by_lead_kid = {int(r["kommo_id"]): r for r in rows if r["kommo_id"] is not None}
    by_jid = {r["jid"]: r for r in rows}
    claimed: set[str] = set()
    adopted: set[str] = set()
    upd: list[tuple[Any, ...]] = []
    ins: list[tuple[Any, ...]] = []
    links_by_kid: dict[int, list[uuid.UUID]] = {}
    for lead, contact, phone, real in zip(leads, lead_contact, lead_phones, real_jids, strict=True):
        pipeline_id, stage_id = mapping.resolve(lead)
        name = clip(clean_quotes(lead.name), NAME_MAX)
        email = contact.email if contact else ""
        contact_id = contact.local_id if contact else None
        pairs = lead_tags(lead)
        tags_text = TAG_SEPARATOR.join(name_ for _, name_ in pairs) or None
        if pairs:
            links_by_kid[lead.id] = tag_ids(pairs)
        row = by_lead_kid.get(lead.id)
        if row is None and real:
            owner = by_jid.get(real)
            if owner is not None and owner["kommo_id"] is None and owner["id"] not in adopted:
                row = owner  # A.10.7 fix: adopt the WhatsApp / CSV / manual lead with this JID
                adopted.add(owner["id"])
        if row is not None:
            new_jid = None
            placeholder = lead_placeholder(lead.id)
            if row["jid"] == placeholder and real and real not in claimed and real not in by_jid:
                new_jid = real  # the lead got a usable phone: move it to its WhatsApp chat JID
            claimed.add(new_jid or row["jid"])
            upd.append((_uuid(row["id"]), lead.id, contact_id, new_jid, name or None, phone or None,
                        email or None, pipeline_id, stage_id, tags_text))
        else:
            jid = real if real and real not in claimed and real not in by_jid else lead_placeholder(lead.id)
            if jid in by_jid or jid in claimed:
                links_by_kid.pop(lead.id, None)
                continue
            claimed.add(jid)
            ins.append((lead.id, contact_id, jid, name or None, phone or None, email or None, pipeline_id,
                        stage_id, tags_text))
    changed: set[str] = set()
    local_of: dict[int, uuid.UUID] = {u[1]: u[0] for u in upd}
    if upd:
        cols = list(zip(*upd, strict=True))
        changed |= {str(r["id"]) for r in await tx.fetch(Q_LEADS_UPDATE, [account_id, *map(list, cols)])}
    if ins:
        cols = list(zip(*ins, strict=True))
        for row in await tx.fetch(Q_LEADS_INSERT, [account_id, *map(list, cols)]):
            local_of[int(row["kommo_id"])] = _uuid(row["id"])
            changed.add(str(row["id"]))
    links = {local_of[kid]: ids for kid, ids in links_by_kid.items() if kid in local_of}
    changed |= await _relink(tx, account_id, Q_LEAD_TAGS_PRUNE, Q_LEAD_TAGS_ADD, links)
    return len(upd) + len(ins), len(changed)
