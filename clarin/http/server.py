"""The RSGI application: the request pipeline every HTTP call goes through.

Order: request id → CORS preflight → rate limit → route match → auth (JWT + revocation check) → body
decode → handler → error envelope → security/CORS/rate-limit headers → metrics + one access-log line.
Handlers only ever see decoded, authenticated requests; every failure leaves as
``{"success": false, "error": ...}``.

Graceful shutdown: granian drains in-flight HTTP requests on SIGTERM/SIGINT but drops upgraded
WebSocket connections without a close frame. ``install_graceful_signals`` wraps granian's worker signal
set-up so the first signal first closes this worker's sockets (a proper close handshake; clients then
reconnect elsewhere), waits up to ``WS_DRAIN_SECONDS`` for their handlers to end, refuses new
handshakes (503), and only then lets granian stop; ``__rsgi_del__`` then stops the background workers
and closes the database pool last (``AppState.stop``). A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from clarin.auth.tokens import AuthContext, InvalidToken, TokenVerifier, bearer_token
from clarin.db.errors import (
    DatabaseError,
    DatabaseUnavailable,
    ForeignKeyViolation,
    OutageLog,
    UniqueViolation,
)
from clarin.http import forms, parent_watch
from clarin.http.errors import HTTPError
from clarin.http.headers import HSTS, SECURITY_HEADERS, Cors
from clarin.http.json import NUL_MESSAGE, TOO_DEEP, JSONHasNUL, JSONTooDeep, decoder_for
from clarin.http.ratelimit import LIMITED_MESSAGE, RateLimiter
from clarin.http.request import BODY_DONE, BODY_UNREAD, Request
from clarin.http.response import JSONResponse, Response, error_response
from clarin.http.router import Auth, MethodNotAllowed, NotFound, Route, Router
from clarin.observability import metrics
from clarin.observability.logging import request_id_var
from clarin.realtime.ws import handle_websocket
from clarin.state import AppState

log = logging.getLogger("clarin.http")
access_log = logging.getLogger("clarin.access")
db_outage_log = OutageLog(log)  # a database outage is a few log lines, not one per failed request

RATE_LIMIT_EXEMPT = ("/api/media/file/", "/ws")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
SUPER_ADMIN_REQUIRED = "Forbidden: super admin access required"
WS_DRAIN_SECONDS = 1.0
HTTP_SERVICE_UNAVAILABLE = 503
# A body the handler left unread (an early 401/413/429/503, a route without a body): after the response hyper
# discards only what it has already buffered and otherwise closes the connection, but the response is out by
# then without "Connection: close", so a keep-alive client's next request fails (broken pipe). Up to these
# bounds the server reads and discards it first; beyond them the response says "Connection: close".
DISCARD_BODY_BYTES = 64 * 1024
DISCARD_BODY_SECONDS = 1.0
CONNECTION_CLOSE = ("connection", "close")


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
        self._metrics: metrics.MetricsRuntime | None = None
        self._parent_watch: asyncio.Task[None] | None = None
        self._tokens: TokenVerifier | None = None
        self.draining = False
        self._ws_active = 0
        self._ws_idle = asyncio.Event()

    # -- lifecycle (called by granian in each worker) ------------------------------------------
    def __rsgi_init__(self, loop: Any) -> None:
        global _serving_app
        loop.run_until_complete(self.startup())
        _serving_app = self
        # Everything loaded so far (modules, protobuf descriptors, the route table, the state) lives as long as
        # the worker. Frozen, the collector's full (gen2) passes walk only what requests leave behind: measured
        # 60-77 ms pauses → 2 ms, read p99 at 64 connections ~50 ms → ~8 ms (bench/RESULTS.md, "GC").
        gc.collect()
        gc.freeze()

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
        self._tokens = TokenVerifier(settings.jwt_secret)
        self._metrics = metrics.MetricsRuntime(state)
        self._metrics.start()
        self._parent_watch = parent_watch.start()  # an orphaned worker stops (clarin.http.parent_watch)

    async def shutdown(self) -> None:
        self.draining = True
        if self._parent_watch is not None:
            self._parent_watch.cancel()
        if self._metrics is not None:
            await self._metrics.stop()
        if self.state is not None:
            await self.state.stop()

    async def drain_websockets(self, timeout: float = WS_DRAIN_SECONDS) -> None:
        """Close every socket of this worker and wait (bounded) for their handlers to finish."""
        self.draining = True
        if self.state is None:
            return
        self.state.hub.close_all()
        if self._ws_active:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._ws_idle.wait()

    # -- dispatch ------------------------------------------------------------------------------
    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        assert self.state is not None, "startup() has not run"
        if scope.proto == "ws":
            if self.draining:
                protocol.close(HTTP_SERVICE_UNAVAILABLE)
                return
            self._ws_active += 1
            self._ws_idle.clear()
            try:
                await handle_websocket(self.state, scope, protocol)
            finally:
                self._ws_active -= 1
                if not self._ws_active:
                    self._ws_idle.set()
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
        context_token = request_id_var.set(request_id)  # every log line of this request carries it
        try:
            await self._serve(req, protocol, started)
        finally:
            request_id_var.reset(context_token)

    async def _serve(self, req: Request, protocol: Any, started: float) -> None:
        state = self.state
        assert state is not None and self._cors is not None
        request_id = req.request_id
        origin = req.header("origin")
        extra: list[tuple[str, str]] = []
        try:
            response = await self._respond(req, origin, extra)
        except HTTPError as exc:
            response = error_response(exc.status, exc.message, exc.headers, exc.detail)
        except Exception as exc:
            response = self._server_error(req, exc)
        out_headers = self._base_headers + extra + [("x-request-id", request_id)]
        if req.body_state != BODY_DONE and _declares_body(req) and not await _discard_body(req):
            out_headers.append(CONNECTION_CLOSE)
        if origin and req.method != "OPTIONS":
            out_headers += self._cors.response_headers(origin)
        try:
            pending = response.send(protocol, out_headers)
            if pending is not None:  # streamed bodies (StreamResponse) finish asynchronously
                await pending
        except Exception as exc:  # the client went away before we answered
            log.debug("response not sent: %s", exc)
        elapsed = time.perf_counter() - started
        route_path = req.route.path if req.route is not None else None
        metrics.observe_request(req.method, route_path, response.status, elapsed)
        if state.settings.access_log:
            auth = req.auth
            access_log.info(
                "%s %s %d %.1fms", req.method, req.path, response.status, elapsed * 1000,
                extra={
                    "request_id": request_id, "method": req.method, "path": req.path, "route": route_path,
                    "status": response.status, "duration_ms": round(elapsed * 1000, 3),
                    "account_id": str(auth.account_id) if auth is not None else None,
                    "user_id": str(auth.user_id) if auth is not None else None,
                },
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
                await self._authenticate(req)  # unknown /api paths answer 401 before 404, as the original
            raise HTTPError(404, f"Cannot {req.method} {req.path}") from None
        except MethodNotAllowed as exc:
            raise HTTPError(405, "Method Not Allowed", headers=[("allow", ", ".join(exc.allowed))]) from None
        req.params = params
        req.route = route
        if route.auth is not Auth.PUBLIC:
            auth = await self._authenticate(req)
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

    async def _authenticate(self, req: Request) -> AuthContext:
        assert self.state is not None and self._tokens is not None
        token = bearer_token(req.header("authorization"), req.cookie("auth-token"))
        if not token:
            raise HTTPError(401, "Unauthorized")
        try:
            auth = self._tokens.verify(token)  # signature + expiry (memoised per token string)
        except InvalidToken:
            raise HTTPError(401, "Invalid token") from None
        # Revoked (token_version), deactivated user → 401; disabled account → 403. A dict hit when warm.
        await self.state.auth_guard.check(auth)
        req.auth = auth
        return auth

    @staticmethod
    async def _decode_body(req: Request, route: Route) -> Any:
        # JSON whatever the Content-Type (the dashboard sends application/json, scripts often none); flat forms
        # as Fiber's BodyParser did, XML and forms for nested structs → 415 (clarin/http/forms.py).
        content_type = req.header("content-type")
        if content_type:
            kind = forms.media_type(content_type)
            if forms.is_form(kind):
                return await forms.decode_form(req, kind, content_type, route.body, route.body_error)
            forms.refuse_xml(kind)
        raw = await req.body()
        if not raw.strip():
            raw = b"{}"
        try:
            return decoder_for(route.body).decode(raw)
        except JSONHasNUL as exc:
            raise HTTPError(400, NUL_MESSAGE, detail=str(exc)) from None
        except JSONTooDeep:
            raise HTTPError(400, TOO_DEEP) from None
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
            db_outage_log.report("database unavailable [%s %s id=%s]: %s", req.method, req.path, req.request_id,
                                exc.detail)
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


# -- finish the body: the connection stays usable after any response ----------------------------------
def _declares_body(req: Request) -> bool:
    length = req.headers.get("content-length")
    if length is not None:
        return length.strip() != "0"
    return req.headers.get("transfer-encoding") is not None


async def _discard_body(req: Request) -> bool:
    """Read and drop the rest of the request body within the bounds; False: the connection must close."""
    if req.body_state != BODY_UNREAD:  # granian cannot resume a body read that stopped half-way
        return False
    declared = req.headers.get("content-length") or ""
    if declared.isdigit() and int(declared) > DISCARD_BODY_BYTES:
        return False
    size = 0
    try:
        async with asyncio.timeout(DISCARD_BODY_SECONDS):
            async for chunk in req.protocol:
                size += len(chunk)
                if size > DISCARD_BODY_BYTES:
                    return False
    except Exception:  # timed out, client gone, protocol error: nothing more to save
        return False
    return True


# -- graceful shutdown: close WebSockets before granian tears the connections down --------------------
_serving_app: ClarinApp | None = None


def install_graceful_signals() -> None:
    """Wrap granian's per-worker signal set-up (``granian._signals.set_loop_signals``, imported by the
    worker right after it loads this app) so SIGTERM/SIGINT first drain this worker's WebSockets.

    Without it granian stops its Rust server on the signal and the upgraded connections vanish with no
    close frame (clients see 1006). granian ignores the code given to ``close()`` after the upgrade, so
    the frame carries no status (clients see 1005, a clean close); HTTP requests in flight are drained
    by granian as before. Anything unexpected (another granian layout, no loop signal support) leaves
    granian's own handling in place."""
    try:
        import granian._signals as granian_signals
    except ImportError:
        return
    original = granian_signals.set_loop_signals
    if getattr(original, "_clarin_wrapped", False):
        return

    def set_loop_signals(loop: Any) -> Any:
        event = original(loop)
        state = {"signalled": False}

        def on_signal() -> None:
            app = _serving_app
            if state["signalled"] or app is None:
                event.set()  # second signal, or nothing to drain: stop now
                return
            state["signalled"] = True

            async def drain_then_stop() -> None:
                try:
                    await app.drain_websockets()
                except Exception:
                    log.exception("closing WebSockets before shutdown failed")
                finally:
                    event.set()

            loop.create_task(drain_then_stop())

        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, on_signal)
        except (NotImplementedError, RuntimeError, ValueError, AttributeError):
            pass  # granian fell back to signal.signal: its handlers stay
        return event

    set_loop_signals._clarin_wrapped = True  # type: ignore[attr-defined]
    granian_signals.set_loop_signals = set_loop_signals


install_graceful_signals()
