"""Operational endpoints: readiness (database and Redis) and the WebSocket's plain-HTTP answer."""

from __future__ import annotations

from clarin.db.queries import query
from clarin.http.json import encode
from clarin.http.openapi import build_openapi
from clarin.http.request import Request
from clarin.http.response import JSONResponse, RawJSONResponse, error_response
from clarin.http.router import Auth
from clarin.http.routes import RouteGroup
from clarin.wire.auth import ReadyResponse

Q_PING = query("ping")
_OPENAPI_CACHE: dict[str, bytes] = {}


def openapi_document(req: Request) -> bytes:
    """Built once per process from the live route table (routes never change after start-up)."""
    cached = _OPENAPI_CACHE.get("doc")
    if cached is None:
        cached = _OPENAPI_CACHE["doc"] = encode(build_openapi(req.app.routes))
    return cached

routes = RouteGroup(tags=("ops",), auth=Auth.PUBLIC)


@routes.get("/ready", response=ReadyResponse)
async def ready(req: Request) -> JSONResponse:
    state = req.app
    try:
        await state.db.fetch_val(Q_PING)
        database = "ok"
    except Exception:
        database = "unavailable"
    if not state.redis.configured:
        redis = "disabled"
    else:
        redis = "ok" if await state.redis.guard(lambda r: r.ping(), False) else "unavailable"
    healthy = database == "ok" and redis != "unavailable"
    body = ReadyResponse(status="ready" if healthy else "unavailable", database=database, redis=redis)
    return JSONResponse(body, 200 if healthy else 503)


@routes.get("/api/openapi.json")
async def openapi(req: Request) -> RawJSONResponse:
    """The OpenAPI 3.1 document of every route, generated from the route table."""
    return RawJSONResponse(openapi_document(req))


@routes.get("/ws")
async def websocket_over_http(req: Request) -> JSONResponse:
    return error_response(426, "Upgrade Required")  # type: ignore[return-value]
