"""The RSGI application: the request pipeline every HTTP call goes through.

Order: request id → CORS preflight → rate limit → route match → auth → body decode → handler →
error envelope → security/CORS/rate-limit headers → one log line. Handlers only ever see decoded,
authenticated requests; every failure leaves as ``{"success": false, "error": ...}``.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from clarin.auth.tokens import InvalidToken, bearer_token, verify_token
from clarin.db.errors import DatabaseError, DatabaseUnavailable, ForeignKeyViolation, UniqueViolation
from clarin.http.errors import HTTPError
from clarin.http.headers import HSTS, SECURITY_HEADERS, Cors
from clarin.http.json import decoder_for
from clarin.http.ratelimit import LIMITED_MESSAGE, RateLimiter
from clarin.http.request import Request
from clarin.http.response import JSONResponse, Response, error_response
from clarin.http.router import Auth, MethodNotAllowed, NotFound, Route, Router
from clarin.realtime.ws import handle_websocket
from clarin.state import AppState

log = logging.getLogger("clarin.http")
access_log = logging.getLogger("clarin.access")

RATE_LIMIT_EXEMPT = ("/api/media/file/", "/ws")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
SUPER_ADMIN_REQUIRED = "Forbidden: super admin access required"


class ClarinApp:
    def __init__(self, state_factory: Callable[[], AppState], routes: Iterable[Route]) -> None:
        self._state_factory = state_factory
        self.router = Router()
        for route in routes:
            self.router.add(route)
        self.state: AppState | None = None
        self._limiter: RateLimiter | None = None
        self._cors: Cors | None = None
        self._base_headers: list[tuple[str, str]] = []

    # -- lifecycle (called by granian in each worker) ------------------------------------------
    def __rsgi_init__(self, loop: Any) -> None:
        loop.run_until_complete(self.startup())

    def __rsgi_del__(self, loop: Any) -> None:
        loop.run_until_complete(self.shutdown())

    async def startup(self) -> None:
        state = self._state_factory()
        state.routes = self.router.routes
        await state.start()
        settings = state.settings
        self.state = state
        self._limiter = RateLimiter(
            settings.rate_limit, settings.rate_limit_window, state.redis, settings.redis_prefix
        )
        self._cors = Cors(settings.cors_origins)
        self._base_headers = SECURITY_HEADERS + ([HSTS] if settings.production else [])

    async def shutdown(self) -> None:
        if self.state is not None:
            await self.state.stop()

    # -- dispatch ------------------------------------------------------------------------------
    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        assert self.state is not None, "startup() has not run"
        if scope.proto == "ws":
            await handle_websocket(self.state, scope, protocol)
            return
        await self.handle_http(scope, protocol)

    async def handle_http(self, scope: Any, protocol: Any) -> None:
        state = self.state
        assert state is not None and self._limiter is not None and self._cors is not None
        started = time.perf_counter()
        headers = scope.headers
        incoming_id = headers.get("x-request-id") or ""
        request_id = incoming_id if _REQUEST_ID_RE.match(incoming_id) else uuid.uuid4().hex
        req = Request(state, scope, protocol, self._client_ip(scope, headers), request_id)
        origin = headers.get("origin") or ""
        extra: list[tuple[str, str]] = []
        try:
            response = await self._respond(req, origin, extra)
        except HTTPError as exc:
            response = error_response(exc.status, exc.message, exc.headers, exc.detail)
        except Exception as exc:
            response = self._server_error(req, exc)
        out_headers = self._base_headers + extra + [("x-request-id", request_id)]
        if origin and req.method != "OPTIONS":
            out_headers += self._cors.response_headers(origin)
        try:
            pending = response.send(protocol, out_headers)
            if pending is not None:  # streamed bodies (StreamResponse) finish asynchronously
                await pending
        except Exception as exc:  # the client went away before we answered
            log.debug("response not sent: %s", exc)
        if state.settings.access_log:
            access_log.info(
                "%s | %d | %.1fms | %s %s",
                time.strftime("%H:%M:%S"), response.status, (time.perf_counter() - started) * 1000,
                req.method, req.path,
            )

    async def _respond(self, req: Request, origin: str, extra: list[tuple[str, str]]) -> Response:
        assert self._limiter is not None and self._cors is not None and self.state is not None
        if self._limiter.enabled and not req.path.startswith(RATE_LIMIT_EXEMPT):
            verdict = await self._limiter.hit(req.client_ip)
            extra.extend(verdict.headers())
            if not verdict.allowed:
                raise HTTPError(429, LIMITED_MESSAGE, headers=[("retry-after", str(verdict.reset_in))])
        if req.method == "OPTIONS" and req.header("access-control-request-method"):
            return Response(b"", 204, self._cors.preflight_headers(origin))
        try:
            route, params = self.router.match(req.method, req.path)
        except NotFound:
            if req.path.lower().startswith("/api/"):
                self._authenticate(req)  # unknown /api paths answer 401 before 404, as the original
            raise HTTPError(404, f"Cannot {req.method} {req.path}") from None
        except MethodNotAllowed as exc:
            raise HTTPError(405, "Method Not Allowed", headers=[("allow", ", ".join(exc.allowed))]) from None
        req.params = params
        req.route = route
        if route.auth is not Auth.PUBLIC:
            auth = self._authenticate(req)
            if route.auth is Auth.SUPER_ADMIN and not auth.is_super_admin:
                raise HTTPError(403, SUPER_ADMIN_REQUIRED)
        if route.body is not None:
            body = await self._decode_body(req, route)
            result = await route.handler(req, body)
        else:
            result = await route.handler(req)
        if isinstance(result, Response):
            return result
        return JSONResponse(result, route.status)

    def _authenticate(self, req: Request) -> Any:
        assert self.state is not None
        token = bearer_token(req.header("authorization"), req.cookie("auth-token"))
        if not token:
            raise HTTPError(401, "Unauthorized")
        try:
            req.auth = verify_token(self.state.settings.jwt_secret, token)
        except InvalidToken:
            raise HTTPError(401, "Invalid token") from None
        return req.auth

    @staticmethod
    async def _decode_body(req: Request, route: Route) -> Any:
        raw = await req.body()
        if not raw.strip():
            raw = b"{}"
        try:
            return decoder_for(route.body).decode(raw)
        except msgspec.ValidationError as exc:
            raise HTTPError(400, route.body_error, detail=str(exc)) from None
        except msgspec.DecodeError:
            raise HTTPError(400, route.body_error, detail="malformed JSON") from None

    def _client_ip(self, scope: Any, headers: Any) -> str:
        assert self.state is not None
        if self.state.settings.trust_proxy:
            forwarded = headers.get("x-forwarded-for") or ""
            first = forwarded.split(",", 1)[0].strip()
            if first:
                return first
        client = scope.client or ""
        return client.rsplit(":", 1)[0].strip("[]") if ":" in client else client

    @staticmethod
    def _server_error(req: Request, exc: Exception) -> Response:
        if isinstance(exc, DatabaseUnavailable):
            log.error("database unavailable [%s %s id=%s]: %s", req.method, req.path, req.request_id, exc.detail)
            return error_response(503, "Service temporarily unavailable, please retry", [("retry-after", "2")])
        if isinstance(exc, UniqueViolation):
            log.info("unhandled unique violation on %s [%s %s]", exc.constraint, req.method, req.path)
            return error_response(409, "A record with these values already exists")
        if isinstance(exc, ForeignKeyViolation):
            log.info("unhandled FK violation on %s [%s %s]", exc.constraint, req.method, req.path)
            return error_response(409, "The referenced record does not exist or is still in use")
        if isinstance(exc, DatabaseError):
            log.error("database error [%s %s id=%s]: %s", req.method, req.path, req.request_id, exc.detail)
        else:
            log.exception("unhandled error [%s %s id=%s]", req.method, req.path, req.request_id)
        return error_response(500, "Internal server error")
