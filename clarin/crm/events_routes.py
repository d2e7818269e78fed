"""Events and participants routes R85–R96 (spec api.md §4.13; R97 campaign-from-event lives with campaigns).

WebSocket events (emitted by the writes in clarin.crm.events / participants, their webhook outbox rows in the
same transaction; broadcast to the caller's account after the transaction commits):

- ``event_update`` ``{action: "created"|"updated"|"deleted", event_id}`` — R86, R89, R90.
- ``participant_update`` ``{action, event_id, participant_id?, count?}``: ``"created"`` (R92, with
  participant_id), ``"bulk_created"`` (R93, with ``count`` = rows added), ``"updated"`` (R94),
  ``"status_changed"`` (R95), ``"deleted"`` (R96).
- ``contact_update`` ``{action: "updated", contact_id}`` — when an R94 edit synced into the linked contact.

Path ids: ``400 Invalid event ID`` / ``400 Invalid participant ID``; a participant must belong to the
event in the path, and the event to the caller (else 404).
"""

from __future__ import annotations

import uuid

from clarin.crm import events, participants
from clarin.crm.filtering import list_window, uuid_list
from clarin.crm.participants import ParticipantFilter
from clarin.http.paging import MAX_LIMIT, page_params
from clarin.http.request import Request
from clarin.http.routes import RouteGroup
from clarin.wire.common import Ok
from clarin.wire.events import (
    ActionsResponse,
    BulkAddResponse,
    BulkParticipantsBody,
    EventCreateBody,
    EventResponse,
    EventsPage,
    EventUpdateBody,
    ParticipantInput,
    ParticipantResponse,
    ParticipantsPage,
    ParticipantStatusBody,
    ParticipantUpdateBody,
)
from clarin.wire.queries import EventsQuery, ParticipantsQuery, UpcomingActionsQuery

routes = RouteGroup(tags=("events",))

INVALID_EVENT_ID = "Invalid event ID"
INVALID_PARTICIPANT_ID = "Invalid participant ID"
EVENTS_DEFAULT_LIMIT = 50
UPCOMING_DEFAULT_LIMIT = 20


def _event_id(req: Request) -> uuid.UUID:
    return req.path_uuid("id", INVALID_EVENT_ID)


def _participant_ids(req: Request) -> tuple[uuid.UUID, uuid.UUID]:
    return _event_id(req), req.path_uuid("pid", INVALID_PARTICIPANT_ID)


# -- events -------------------------------------------------------------------------------------------------
@routes.get("/api/events", query=EventsQuery, response=EventsPage)
async def list_events(req: Request) -> EventsPage:
    window = list_window(req, EVENTS_DEFAULT_LIMIT, non_positive_means_all=True)
    items, total = await events.list_events(
        req.app, req.account_id, req.query_str("status"), req.query_str("search"), window
    )
    return EventsPage(events=items, total=total)


@routes.post("/api/events", body=EventCreateBody, response=EventResponse, status=201)
async def create_event(req: Request, body: EventCreateBody) -> EventResponse:
    event = await events.create_event(req.app, req.account_id, req.user_id, body)
    return EventResponse(event=event)


@routes.get("/api/events/upcoming-actions", query=UpcomingActionsQuery, response=ActionsResponse)
async def upcoming_actions(req: Request) -> ActionsResponse:
    page = page_params(req, UPCOMING_DEFAULT_LIMIT, MAX_LIMIT)
    return ActionsResponse(actions=await participants.upcoming_actions(req.app, req.account_id, page.limit))


@routes.get("/api/events/:id", response=EventResponse)
async def get_event(req: Request) -> EventResponse:
    return EventResponse(event=await events.get_event(req.app, req.account_id, _event_id(req)))


@routes.put("/api/events/:id", body=EventUpdateBody, response=EventResponse)
async def update_event(req: Request, body: EventUpdateBody) -> EventResponse:
    event = await events.update_event(req.app, req.account_id, _event_id(req), body)
    return EventResponse(event=event)


@routes.delete("/api/events/:id", response=Ok)
async def delete_event(req: Request) -> Ok:
    await events.delete_event(req.app, req.account_id, _event_id(req))
    return Ok()


# -- participants -------------------------------------------------------------------------------------------
@routes.get("/api/events/:id/participants", query=ParticipantsQuery, response=ParticipantsPage)
async def list_participants(req: Request) -> ParticipantsPage:
    event_id = _event_id(req)
    flt = ParticipantFilter(
        status=req.query_str("status"),
        search=req.query_str("search"),
        tag_ids=uuid_list(req.query_list("tags"), "Invalid tag ID") or None,
        has_phone=req.query_str("has_phone") == "true",  # only the literal "true" applies, as the original
    )
    # The dashboard loads an event's participants without paging: default to the cap.
    window = list_window(req, MAX_LIMIT, non_positive_means_all=True)
    items, total = await participants.list_participants(req.app, req.account_id, event_id, flt, window)
    return ParticipantsPage(participants=items, total=total)


@routes.post("/api/events/:id/participants", body=ParticipantInput, response=ParticipantResponse, status=201)
async def add_participant(req: Request, body: ParticipantInput) -> ParticipantResponse:
    event_id = _event_id(req)
    participant = await participants.add_participant(req.app, req.account_id, event_id, body)
    return ParticipantResponse(participant=participant)


@routes.post("/api/events/:id/participants/bulk", body=BulkParticipantsBody, response=BulkAddResponse)
async def add_participants_bulk(req: Request, body: BulkParticipantsBody) -> BulkAddResponse:
    event_id = _event_id(req)
    result = await participants.add_participants_bulk(req.app, req.account_id, event_id, body.participants)
    return BulkAddResponse(count=result.submitted, added=result.added, skipped=result.submitted - result.added)


@routes.put("/api/events/:id/participants/:pid", body=ParticipantUpdateBody, response=ParticipantResponse)
async def update_participant(req: Request, body: ParticipantUpdateBody) -> ParticipantResponse:
    event_id, participant_id = _participant_ids(req)
    participant, _ = await participants.update_participant(req.app, req.account_id, event_id, participant_id, body)
    return ParticipantResponse(participant=participant)


@routes.patch("/api/events/:id/participants/:pid/status", body=ParticipantStatusBody, response=Ok)
async def set_participant_status(req: Request, body: ParticipantStatusBody) -> Ok:
    event_id, participant_id = _participant_ids(req)
    await participants.set_status(req.app, req.account_id, event_id, participant_id, body.status)
    return Ok()


@routes.delete("/api/events/:id/participants/:pid", response=Ok)
async def delete_participant(req: Request) -> Ok:
    event_id, participant_id = _participant_ids(req)
    await participants.delete_participant(req.app, req.account_id, event_id, participant_id)
    return Ok()

