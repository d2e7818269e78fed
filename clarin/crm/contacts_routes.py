"""Contacts routes R75–R84 (spec api.md §4.12).

WebSocket events (emitted by the writes in clarin.crm.contacts / contact_merge, their webhook outbox rows in
the same transaction; broadcast to the caller's account after the transaction commits):

- ``contact_update`` ``{action: "updated", contact_id}`` — R80 (also when a participant edit synced into
  the contact, see events routes); ``{action: "reset", contact_id}`` — R81;
  ``{action: "deleted", contact_id}`` — R82; ``{action: "batch_deleted", ids}`` — R78;
  ``{action: "merged", kept_id, ids}`` — R77 (``ids`` = the merged-away contacts).
- ``lead_update`` ``{action: "updated", ids}`` — when a contact write changed leads: the contact→lead
  field sync of R80, a merge that re-keyed/relinked/deleted leads, a delete that unlinked leads.
- ``participant_update`` ``{action: "updated", event_id, participant_id}`` — per participant the R80
  contact→participant sync rewrote.

``GET /api/contacts`` adds ``cursor`` (keyset paging, ``next_cursor`` in the answer; 400 "Invalid cursor") and
``total_capped`` (filtered totals are exact up to ``TOTAL_COUNT_CAP``, clarin.http.totals); a 1-2 character ``search`` is
``400 search must be at least 3 characters``.

Messages follow the original: ``400 invalid id`` for a bad path UUID, ``400 invalid body`` for a body
that does not parse, ``404 contact not found`` for an unknown or foreign contact.
"""

from __future__ import annotations

from clarin.crm import contact_merge, contact_reads, contacts, events, interactions
from clarin.crm.contacts import ContactFilter
from clarin.crm.filtering import lenient_uuid, list_window, uuid_list
from clarin.http.cached import cached_read
from clarin.http.errors import HTTPError
from clarin.http.request import Request
from clarin.http.response import RawJSONResponse
from clarin.http.routes import RouteGroup
from clarin.wire.common import Ok
from clarin.wire.contacts import (
    BatchDeleteResponse,
    ContactResponse,
    ContactsPage,
    ContactUpdateBody,
    DuplicatesResponse,
    IdsBody,
    MergeBody,
    MergeResponse,
)
from clarin.wire.events import EventsResponse
from clarin.wire.interactions import InteractionsResponse
from clarin.wire.queries import ContactsQuery, InteractionsPageQuery

routes = RouteGroup(tags=("contacts",))

INVALID_ID = "invalid id"
INVALID_CONTACT_ID = "Invalid contact ID"
INVALID_BODY = "invalid body"
CONTACTS_DEFAULT_LIMIT = 50


@routes.get("/api/contacts", query=ContactsQuery, response=ContactsPage)
@cached_read
async def list_contacts(req: Request) -> RawJSONResponse:
    flt = ContactFilter(
        search=req.query_str("search"),
        is_group=req.query_bool("is_group", False),
        device_id=lenient_uuid(req.query_str("device_id")),
        has_phone=req.query_bool("has_phone", False),
        tags=req.query_list("tags") or None,  # NUL: refused with every query parameter (Request.query)
        tag_ids=uuid_list(req.query_list("tag_ids"), "Invalid tag ID") or None,
    )
    window = list_window(req, CONTACTS_DEFAULT_LIMIT, non_positive_means_all=True)
    cursor = contact_reads.parse_cursor(req.query_str("cursor"))
    page = await contact_reads.list_contacts(req.app, req.account_id, flt, window, cursor)
    next_cursor = b'"%s"' % page.next_cursor.encode("ascii") if page.next_cursor else b"null"
    return RawJSONResponse(
        b'{"contacts":%s,"total":%d,"total_capped":%s,"limit":%d,"offset":%d,"next_cursor":%s,"success":true}' % (
            page.body, page.total, b"true" if page.total_capped else b"false", window.limit, window.offset,
            next_cursor))


@routes.get("/api/contacts/duplicates", response=DuplicatesResponse)
async def duplicates(req: Request) -> DuplicatesResponse:
    return DuplicatesResponse(duplicates=await contacts.duplicates(req.app, req.account_id))


@routes.post("/api/contacts/merge", body=MergeBody, body_error=INVALID_BODY, response=MergeResponse)
async def merge(req: Request, body: MergeBody) -> MergeResponse:
    result = await contact_merge.merge_contacts(req.app, req.account_id, body.keep_id, body.merge_ids)
    return MergeResponse(merged=len(result.merged_ids))


@routes.delete("/api/contacts/batch", body=IdsBody, body_error="provide ids array", response=BatchDeleteResponse)
async def batch_delete(req: Request, body: IdsBody) -> BatchDeleteResponse:
    if not body.ids:
        raise HTTPError(400, "provide ids array")
    deleted = await contacts.delete_contacts(req.app, req.account_id, body.ids)
    return BatchDeleteResponse(deleted=len(deleted))


@routes.get("/api/contacts/:id", response=ContactResponse)
async def get_contact(req: Request) -> ContactResponse:
    contact_id = req.path_uuid("id", INVALID_ID)
    return ContactResponse(contact=await contacts.get_contact(req.app, req.account_id, contact_id))


@routes.put("/api/contacts/:id", body=ContactUpdateBody, body_error=INVALID_BODY, response=ContactResponse)
async def update_contact(req: Request, body: ContactUpdateBody) -> ContactResponse:
    contact_id = req.path_uuid("id", INVALID_ID)
    contact = await contacts.update_contact(req.app, req.account_id, contact_id, body)
    return ContactResponse(contact=contact)


@routes.post("/api/contacts/:id/reset", response=ContactResponse)
async def reset_contact(req: Request) -> ContactResponse:
    contact_id = req.path_uuid("id", INVALID_ID)
    contact = await contacts.reset_contact(req.app, req.account_id, contact_id)
    return ContactResponse(contact=contact)


@routes.delete("/api/contacts/:id", response=Ok)
async def delete_contact(req: Request) -> Ok:
    contact_id = req.path_uuid("id", INVALID_ID)
    if not await contacts.delete_contacts(req.app, req.account_id, [contact_id], one=True):
        raise HTTPError(404, contacts.CONTACT_NOT_FOUND)
    return Ok()


@routes.get("/api/contacts/:id/interactions", query=InteractionsPageQuery, response=InteractionsResponse)
async def contact_interactions(req: Request) -> InteractionsResponse:
    contact_id = req.path_uuid("id", INVALID_CONTACT_ID)
    window = list_window(req, interactions.DEFAULT_LIMIT, non_positive_means_all=False)
    items = await interactions.for_contact(req.app, req.account_id, contact_id, window)
    return InteractionsResponse(interactions=items)


@routes.get("/api/contacts/:id/events", response=EventsResponse)
async def contact_events(req: Request) -> EventsResponse:
    contact_id = req.path_uuid("id", INVALID_CONTACT_ID)
    return EventsResponse(events=await events.events_of_contact(req.app, req.account_id, contact_id))

