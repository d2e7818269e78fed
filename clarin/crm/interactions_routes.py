"""Interaction routes R98–R100 and R45 ``GET /api/leads/:id/interactions`` (spec api.md §4.14, §4.7).
R83 ``GET /api/contacts/:id/interactions`` is mounted with the contacts routes.

WebSocket events (emitted by the writes in clarin.crm.interactions, their webhook outbox rows in the same
transaction; broadcast to the caller's account after the transaction commits):

- ``interaction_update`` ``{action: "created"|"deleted", interaction_id, contact_id?, lead_id?, event_id?}``
  (the optional keys only when the interaction points at one) — R98, R100.
- ``participant_update`` ``{action: "updated", event_id, participant_id}`` — when R98's outcome or next
  action changed the participant.
"""

from __future__ import annotations

from clarin.crm import interactions
from clarin.crm.filtering import lenient_uuid, list_window
from clarin.http.paging import MAX_LIMIT
from clarin.http.request import Request
from clarin.http.routes import RouteGroup
from clarin.wire.common import Ok
from clarin.wire.interactions import InteractionCreateBody, InteractionResponse, InteractionsResponse
from clarin.wire.queries import InteractionsPageQuery, InteractionsQuery

routes = RouteGroup(tags=("interactions",))


@routes.post("/api/interactions", body=InteractionCreateBody, response=InteractionResponse, status=201)
async def create_interaction(req: Request, body: InteractionCreateBody) -> InteractionResponse:
    created = await interactions.create_interaction(req.app, req.account_id, req.user_id, body)
    return InteractionResponse(interaction=created.interaction)


@routes.get("/api/interactions", query=InteractionsQuery, response=InteractionsResponse)
async def list_interactions(req: Request) -> InteractionsResponse:
    participant_id = lenient_uuid(req.query_str("participant_id"))
    # The original returned all of a participant's interactions: without a limit that is now the cap.
    window = list_window(
        req, MAX_LIMIT if participant_id is not None else interactions.DEFAULT_LIMIT, non_positive_means_all=False
    )
    items = await interactions.list_by_filter(
        req.app, req.account_id,
        participant_id=participant_id,
        event_id=lenient_uuid(req.query_str("event_id")),
        contact_id=lenient_uuid(req.query_str("contact_id")),
        lead_id=lenient_uuid(req.query_str("lead_id")),
        window=window,
    )
    return InteractionsResponse(interactions=items)


@routes.delete("/api/interactions/:id", response=Ok)
async def delete_interaction(req: Request) -> Ok:
    interaction_id = req.path_uuid("id", "Invalid interaction ID")
    await interactions.delete_interaction(req.app, req.account_id, interaction_id)
    return Ok()


@routes.get("/api/leads/:id/interactions", query=InteractionsPageQuery, response=InteractionsResponse)
async def lead_interactions(req: Request) -> InteractionsResponse:
    lead_id = req.path_uuid("id", "Invalid lead ID")
    window = list_window(req, interactions.DEFAULT_LIMIT, non_positive_means_all=False)
    return InteractionsResponse(interactions=await interactions.for_lead(req.app, req.account_id, lead_id, window))
