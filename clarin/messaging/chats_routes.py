"""Chats R20–R23, R25, R26 (api.md §4.3); rules in :mod:`clarin.messaging.chats`.

WebSocket (new — the original defined ``chat_update`` but never sent it), emitted by the writes in
:mod:`clarin.messaging.chats` (webhook outbox rows in the same transaction), to the caller's account after the
change committed:

- ``chat_update`` ``{action: "created", chat_id}`` — R21 (the initial message also sends ``message_sent``);
- ``chat_update`` ``{action: "read", chat_id, unread_count: 0}`` — R25, so every open dashboard clears the badge;
- ``chat_update`` ``{action: "deleted", chat_id}`` — R26;
- ``chat_update`` ``{action: "batch_deleted", ids, count}`` — R22 by ids (only when something was deleted);
  ``{action: "all_deleted", count}`` — R22 ``delete_all``.
"""

from __future__ import annotations

import uuid

from clarin.crm.filtering import lenient_uuid, list_window
from clarin.http.cached import cached_read
from clarin.http.errors import HTTPError
from clarin.http.request import Request, parse_uuid
from clarin.http.routes import RouteGroup
from clarin.messaging import chats
from clarin.messaging.chats import ChatFilter
from clarin.wire.chats import (
    ChatBatchDeleteBody,
    ChatDeleteResponse,
    ChatDetailResponse,
    ChatsPage,
    NewChatBody,
    NewChatResponse,
)
from clarin.wire.common import Ok
from clarin.wire.queries import ChatsQuery

routes = RouteGroup(tags=("chats",))

INVALID_CHAT_ID = "Invalid chat ID"
INVALID_DEVICE_ID = "Invalid device ID"
CHATS_DEFAULT_LIMIT = 50


def _lenient_ids(values: list[str]) -> list[uuid.UUID] | None:
    ids = [parsed for parsed in (lenient_uuid(value) for value in values) if parsed is not None]
    return ids or None


@routes.get("/api/chats", query=ChatsQuery, response=ChatsPage)
@cached_read
async def list_chats(req: Request) -> ChatsPage:
    flt = ChatFilter(
        search=req.query_str("search"),
        archived=req.query_bool("archived", False),
        unread_only=req.query_bool("unread_only", False),
        device_ids=_lenient_ids(req.query_list("device_ids")),
        tag_ids=_lenient_ids(req.query_list("tag_ids")),
    )
    window = list_window(req, CHATS_DEFAULT_LIMIT, non_positive_means_all=True)
    cursor = chats.parse_cursor(req.query_str("cursor"))
    page = await chats.list_chats(req.app, req.account_id, flt, window, cursor)
    return ChatsPage(chats=page.chats, total=page.total, total_capped=page.total_capped, limit=window.limit,
                     offset=window.offset, next_cursor=page.next_cursor)


@routes.post("/api/chats/new", body=NewChatBody, response=NewChatResponse, status=201)
async def new_chat(req: Request, body: NewChatBody) -> NewChatResponse:
    device_id = parse_uuid(body.device_id.strip(), INVALID_DEVICE_ID)
    chat, warning = await chats.open_chat(req.app, req.account_id, device_id, body.phone, body.initial_message)
    if warning:
        return NewChatResponse(chat=chat, warning=warning)
    return NewChatResponse(chat=chat)


@routes.delete("/api/chats/batch", body=ChatBatchDeleteBody, response=ChatDeleteResponse)
async def batch_delete(req: Request, body: ChatBatchDeleteBody) -> ChatDeleteResponse:
    if body.delete_all:
        count = await chats.delete_all_chats(req.app, req.account_id)
        return ChatDeleteResponse(message="All chats deleted", deleted=count)
    if not body.ids:
        raise HTTPError(400, "No IDs provided")
    ids = [parsed for parsed in (lenient_uuid(value) for value in body.ids) if parsed is not None]
    if not ids:
        raise HTTPError(400, "No valid IDs provided")
    deleted = await chats.delete_chats(req.app, req.account_id, ids)
    return ChatDeleteResponse(message=f"{len(deleted)} chats deleted", deleted=len(deleted))


@routes.get("/api/chats/:id", response=ChatDetailResponse)
async def get_chat(req: Request) -> ChatDetailResponse:
    chat_id = req.path_uuid("id", INVALID_CHAT_ID)
    return await chats.chat_details(req.app, req.account_id, chat_id)


@routes.post("/api/chats/:id/read", response=Ok)
async def mark_read(req: Request) -> Ok:
    chat_id = req.path_uuid("id", INVALID_CHAT_ID)
    await chats.mark_read(req.app, req.account_id, chat_id)
    return Ok()


@routes.delete("/api/chats/:id", response=ChatDeleteResponse)
async def delete_chat(req: Request) -> ChatDeleteResponse:
    chat_id = req.path_uuid("id", INVALID_CHAT_ID)
    if not await chats.delete_chats(req.app, req.account_id, [chat_id], one=True):
        raise HTTPError(404, chats.CHAT_NOT_FOUND)
    return ChatDeleteResponse(message="Chat deleted", deleted=1)
