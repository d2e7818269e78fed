"""Stickers R31–R34 (account-scoped): recently received/sent sticker URLs and the saved collection."""

from __future__ import annotations

import uuid

from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.http.request import Request
from clarin.http.routes import RouteGroup
from clarin.messaging.media_source import refuse_foreign_media
from clarin.state import AppState
from clarin.wire.common import Ok
from clarin.wire.media import StickerBody, StickersResponse

routes = RouteGroup(tags=("stickers",))

Q_RECENT = query("stickers_recent")
Q_SAVED = query("stickers_saved_list")
Q_SAVE = query("stickers_save")
Q_UNSAVE = query("stickers_unsave")

RECENT_LIMIT = 50
SAVED_LIMIT = 1000
MAX_URL_LENGTH = 4096
MEDIA_URL_REQUIRED = "media_url is required"


# -- service ---------------------------------------------------------------------------------------
async def recent_stickers(state: AppState, account_id: uuid.UUID) -> list[str]:
    rows = await state.db.fetch(Q_RECENT, [account_id, RECENT_LIMIT, 0])
    return [row["media_url"] for row in rows]


async def saved_stickers(state: AppState, account_id: uuid.UUID) -> list[str]:
    rows = await state.db.fetch(Q_SAVED, [account_id, SAVED_LIMIT, 0])
    return [row["media_url"] for row in rows]


def _media_url(body: StickerBody) -> str:
    url = body.media_url.strip()
    if not url:
        raise HTTPError(400, MEDIA_URL_REQUIRED)
    if len(url) > MAX_URL_LENGTH:
        raise HTTPError(400, "media_url is too long")
    return url


async def save_sticker(state: AppState, account_id: uuid.UUID, body: StickerBody) -> None:
    url = _media_url(body)
    refuse_foreign_media(state, account_id, url)  # another tenant's key: 404, as sending it would be
    await state.db.execute(Q_SAVE, [account_id, url])


async def unsave_sticker(state: AppState, account_id: uuid.UUID, body: StickerBody) -> None:
    await state.db.execute(Q_UNSAVE, [account_id, _media_url(body)])


# -- routes ----------------------------------------------------------------------------------------
@routes.get("/api/stickers/recent", response=StickersResponse)
async def get_recent(req: Request) -> StickersResponse:
    return StickersResponse(stickers=await recent_stickers(req.app, req.account_id))


@routes.get("/api/stickers/saved", response=StickersResponse)
async def get_saved(req: Request) -> StickersResponse:
    return StickersResponse(stickers=await saved_stickers(req.app, req.account_id))


@routes.post("/api/stickers/saved", body=StickerBody, body_error=MEDIA_URL_REQUIRED, response=Ok)
async def post_saved(req: Request, body: StickerBody) -> Ok:
    await save_sticker(req.app, req.account_id, body)
    return Ok()


@routes.delete("/api/stickers/saved", body=StickerBody, body_error=MEDIA_URL_REQUIRED, response=Ok)
async def delete_saved(req: Request, body: StickerBody) -> Ok:
    await unsave_sticker(req.app, req.account_id, body)
    return Ok()
