"""``GET /ws?token=``: authenticate at the handshake (JWT + the same revocation check as HTTP:
revoked/deactivated → 401, disabled account → 403), then ping/pong and typing relay. The socket keeps
its token: when the user's access changes it is checked again and closed (``clarin.realtime.authwatch``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import msgspec

from clarin.auth.tokens import InvalidToken, verify_token
from clarin.db.errors import DatabaseError
from clarin.http.errors import HTTPError
from clarin.http.json import decode_any
from clarin.observability.metrics import WS_REFUSED
from clarin.realtime.hub import REFUSED_PROCESS_FULL

if TYPE_CHECKING:
    from clarin.state import AppState

log = logging.getLogger("clarin.ws")

PONG = '{"event":"pong"}'
CLOSE_NORMAL = 1000
WS_CLOSE = 0
HTTP_UNAUTHORIZED = 401
HTTP_NOT_FOUND = 404
HTTP_UNAVAILABLE = 503


async def handle_websocket(state: AppState, scope: Any, protocol: Any) -> None:
    if scope.path.rstrip("/").lower() != "/ws":
        protocol.close(HTTP_NOT_FOUND)
        return
    token = (parse_qs(scope.query_string).get("token") or [""])[0]
    if not token:
        protocol.close(HTTP_UNAUTHORIZED)
        return
    try:
        auth = verify_token(state.settings.jwt_secret, token)
        await state.auth_guard.check(auth)
    except InvalidToken:
        protocol.close(HTTP_UNAUTHORIZED)
        return
    except HTTPError as exc:
        protocol.close(exc.status)
        return
    except DatabaseError:
        protocol.close(HTTP_UNAVAILABLE)
        return
    account_id = str(auth.account_id)
    refused = state.hub.reserve(account_id)
    if refused:
        WS_REFUSED.labels("process" if refused == REFUSED_PROCESS_FULL else "account").inc()
        protocol.close(refused)
        return
    try:
        transport = await protocol.accept()
    except Exception as exc:  # e.g. out of file descriptors mid-upgrade: the client sees a failed handshake
        state.hub.release(account_id)
        log.warning("websocket handshake failed: %s", exc)
        return
    conn = state.hub.register(account_id, protocol, transport, auth, reserved=True)
    # A revocation between the handshake check and the registration found no socket to close: look again.
    await state.socket_auth.recheck([conn])
    try:
        while True:
            message = await transport.receive()
            if message.kind == WS_CLOSE:
                break
            await _on_client_message(state, conn, account_id, message.data)
    except Exception as exc:  # the peer vanished mid-read
        log.debug("websocket closed: %s", exc)
    finally:
        state.hub.unregister(conn, close=False)
        await conn.finish()
        try:
            protocol.close(CLOSE_NORMAL)
        except Exception:  # the transport is already gone
            pass


async def _on_client_message(state: AppState, conn: Any, account_id: str, data: str | bytes) -> None:
    try:
        message = decode_any(data)
    except msgspec.DecodeError:
        log.debug("ignoring invalid JSON from a WebSocket client")
        return
    if not isinstance(message, dict):
        return
    event = message.get("event")
    if event == "ping":
        conn.push(PONG)
    elif event == "typing":
        await state.broadcaster.broadcast(account_id, "typing", message.get("data"))
