"""Tags and tag links, R54–R60 (spec §4.9). Rules live in ``clarin.crm.tags``.

Live events (WebSocket, to the caller's account only, sent after the change is committed):

- ``tag_update`` ``{"action": "created" | "updated" | "deleted", "tag_id"}``.
- ``tag_assignment`` ``{"action": "assigned" | "removed", "entity_type", "entity_id", "tag_id"}`` — only when a
  link was actually added or removed (repeating an assign/remove is a silent success).
- ``lead_update`` ``{"action": "tags_changed", "lead_id"}`` in addition, when the entity is a lead.

Leads cache (``leads:<account_id>``) dropped by: tag update, tag delete, assign/remove on a lead.
"""

from __future__ import annotations

from clarin.crm import tags as service
from clarin.http.paging import page_params
from clarin.http.request import Request
from clarin.http.routes import RouteGroup
from clarin.wire.common import Ok
from clarin.wire.queries import PageQuery
from clarin.wire.tags import TagAssignBody, TagCreateBody, TagResponse, TagsResponse, TagUpdateBody

routes = RouteGroup(tags=("tags",))

INVALID_TAG_ID = "Invalid tag ID"


@routes.get("/api/tags", query=PageQuery, response=TagsResponse)
async def list_tags(req: Request) -> TagsResponse:
    page = page_params(req, service.MAX_TAGS)
    return TagsResponse(tags=await service.list_tags(req.app, req.account_id, page.limit, page.offset))


@routes.post("/api/tags", body=TagCreateBody, response=TagResponse, status=201)
async def create_tag(req: Request, body: TagCreateBody) -> TagResponse:
    return TagResponse(tag=await service.create_tag(req.app, req.account_id, body))


@routes.post("/api/tags/assign", body=TagAssignBody, response=Ok)
async def assign_tag(req: Request, body: TagAssignBody) -> Ok:
    await service.assign_tag(req.app, req.account_id, body)
    return Ok()


@routes.post("/api/tags/remove", body=TagAssignBody, response=Ok)
async def remove_tag(req: Request, body: TagAssignBody) -> Ok:
    await service.remove_tag(req.app, req.account_id, body)
    return Ok()


@routes.get("/api/tags/entity/:type/:id", response=TagsResponse)
async def entity_tags(req: Request) -> TagsResponse:
    entity_id = req.path_uuid("id", "Invalid ID")
    tags = await service.entity_tags(req.app, req.account_id, req.params.get("type", ""), entity_id)
    return TagsResponse(tags=tags)


@routes.put("/api/tags/:id", body=TagUpdateBody, response=TagResponse)
async def update_tag(req: Request, body: TagUpdateBody) -> TagResponse:
    tag_id = req.path_uuid("id", INVALID_TAG_ID)
    return TagResponse(tag=await service.update_tag(req.app, req.account_id, tag_id, body))


@routes.delete("/api/tags/:id", response=Ok)
async def delete_tag(req: Request) -> Ok:
    await service.delete_tag(req.app, req.account_id, req.path_uuid("id", INVALID_TAG_ID))
    return Ok()
