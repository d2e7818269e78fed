"""Operational endpoints: readiness (database and Redis) and the WebSocket's plain-HTTP answer."""

from __future__ import annotations

from clarin.db.queries import query
from clarin.http.request import Request
from clarin.http.response import JSONResponse, error_response
from clarin.http.router import Auth
from clarin.http.routes import RouteGroup
from clarin.wire.auth import ReadyResponse

Q_PING = query("ping")

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


@routes.get("/ws")
async def websocket_over_http(req: Request) -> JSONResponse:
    return error_response(426, "Upgrade Required")  # type: ignore[return-value]
