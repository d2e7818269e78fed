"""WebSocket hub (spec §5.1): handshake auth, ping/pong, typing relay per account, cross-process fan-out."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests import support
from tests.conftest import Tenant

PONG = '{"event":"pong"}'


def _connect(url: str, token: str) -> ClientConnection:
    return connect(f"{url}?token={token}", open_timeout=10, close_timeout=2)


def _expect_rejected(url: str) -> None:
    with pytest.raises(InvalidStatus) as exc:
        connect(url, open_timeout=10)
    assert exc.value.response.status_code == 401


def _pong_next(ws: ClientConnection) -> None:
    """Send a ping and require the very next frame to be the pong: nothing else was queued before it."""
    ws.send('{"event":"ping"}')
    assert ws.recv(timeout=5) == PONG


def test_handshake_requires_a_valid_token(server: support.ServerProcess, tenant: Tenant) -> None:
    _expect_rejected(server.ws_url)
    _expect_rejected(f"{server.ws_url}?token=")
    _expect_rejected(f"{server.ws_url}?token=not-a-jwt")
    wrong_secret = jwt.encode({"user_id": tenant.user_id, "account_id": tenant.account_id,
                               "exp": int(time.time()) + 60}, "wrong-secret-wrong-secret-wrong-secret",
                              algorithm="HS256")
    _expect_rejected(f"{server.ws_url}?token={wrong_secret}")
    # Header or cookie do not count: the token travels in the query string only.
    with pytest.raises(InvalidStatus) as exc:
        connect(server.ws_url, open_timeout=10, additional_headers={
            "Authorization": f"Bearer {tenant.token}", "Cookie": f"auth-token={tenant.token}"})
    assert exc.value.response.status_code == 401


def test_ping_gets_exactly_pong(server: support.ServerProcess, tenant: Tenant) -> None:
    with _connect(server.ws_url, tenant.token) as ws:
        ws.send(json.dumps({"event": "ping"}))
        assert ws.recv(timeout=5) == PONG
        ws.send('{"event":"ping","data":{"x":1}}')
        assert ws.recv(timeout=5) == PONG


def test_invalid_and_unknown_messages_are_ignored(server: support.ServerProcess, tenant: Tenant) -> None:
    with _connect(server.ws_url, tenant.token) as ws:
        for junk in ("not json", "[1,2,3]", '"ping"', '{"event":"launch_rockets"}', '{"no_event":true}', "{"):
            ws.send(junk)
        ws.send(b'{"event":"ping"}')  # a binary frame with the same JSON is handled too
        assert ws.recv(timeout=5) == PONG
        _pong_next(ws)


def test_typing_reaches_the_account_and_no_other(server: support.ServerProcess, make_tenant) -> None:  # type: ignore[no-untyped-def]
    tenant, stranger = make_tenant(), make_tenant()
    second_token = support.login(server.url, tenant.username, tenant.password)
    data = {"chat_id": str(uuid.uuid4()), "is_typing": True, "nested": {"list": [1, "two", None]}, "ñ": "✓"}
    with _connect(server.ws_url, tenant.token) as sender, _connect(server.ws_url, second_token) as peer, \
            _connect(server.ws_url, stranger.token) as other:
        sender.send(json.dumps({"event": "typing", "account_id": stranger.account_id, "data": data}))
        for ws in (peer, sender):  # every connection of the account, the originator included
            message = json.loads(ws.recv(timeout=5))
            assert message == {"event": "typing", "account_id": tenant.account_id, "data": data}
        # The other account's socket got nothing: its next frame is the answer to its own ping.
        _pong_next(other)
        # The data is relayed verbatim whatever its JSON type; a missing data is null.
        for payload in (["a", 1], "text", 7, None):
            sender.send(json.dumps({"event": "typing", "data": payload}))
            assert json.loads(peer.recv(timeout=5)) == {"event": "typing", "account_id": tenant.account_id,
                                                        "data": payload}
            assert json.loads(sender.recv(timeout=5))["data"] == payload
        sender.send('{"event":"typing"}')
        assert json.loads(peer.recv(timeout=5))["data"] is None
        _pong_next(other)


def test_closing_one_socket_does_not_disturb_the_others(server: support.ServerProcess, tenant: Tenant) -> None:
    with _connect(server.ws_url, tenant.token) as keep:
        with _connect(server.ws_url, tenant.token) as gone:
            _pong_next(gone)
        with _connect(server.ws_url, tenant.token) as sender:
            sender.send('{"event":"typing","data":{"n":1}}')
            assert json.loads(keep.recv(timeout=5))["data"] == {"n": 1}
            assert json.loads(sender.recv(timeout=5))["data"] == {"n": 1}


@pytest.fixture(scope="module")
def second_server(server_env: dict[str, str], server: support.ServerProcess,
                  log_dir: Path) -> Iterator[support.ServerProcess]:
    """Another process on the same database, Redis and REDIS_PREFIX as the session server."""
    with support.running_server(server_env, log_dir, "second") as srv:
        yield srv


def _receive_typing(sender: ClientConnection, receiver: ClientConnection, account_id: str,
                    deadline_s: float = 15) -> dict[str, object]:
    """Send typing until the receiver on the other process sees it (subscriptions start asynchronously)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        marker = uuid.uuid4().hex
        sender.send(json.dumps({"event": "typing", "data": {"marker": marker}}))
        try:
            while True:
                message = json.loads(receiver.recv(timeout=0.5))
                if message["data"] == {"marker": marker}:
                    assert message == {"event": "typing", "account_id": account_id, "data": {"marker": marker}}
                    return message
        except TimeoutError:
            continue
    raise AssertionError("typing never crossed to the other process")


def test_typing_crosses_processes_through_redis(server: support.ServerProcess,
                                                second_server: support.ServerProcess, make_tenant) -> None:  # type: ignore[no-untyped-def]
    tenant, stranger = make_tenant(), make_tenant()
    assert second_server.port != server.port
    with _connect(server.ws_url, tenant.token) as x, _connect(second_server.ws_url, tenant.token) as y, \
            _connect(second_server.ws_url, stranger.token) as z:
        _receive_typing(x, y, tenant.account_id)
        _receive_typing(y, x, tenant.account_id)
        # Once both subscriptions are up, a single message is delivered exactly once on each side.
        for ws in (x, y):
            while True:
                try:
                    ws.recv(timeout=0.5)
                except TimeoutError:
                    break
        x.send('{"event":"typing","data":"once"}')
        assert json.loads(y.recv(timeout=5))["data"] == "once"
        assert json.loads(x.recv(timeout=5))["data"] == "once"
        _pong_next(y)
        _pong_next(x)
        # The other tenant's socket on the second process never saw any of it.
        _pong_next(z)


def test_plain_http_get_on_ws_is_426(server: support.ServerProcess) -> None:
    response = httpx.get(server.url + "/ws", timeout=10)
    assert response.status_code == 426
    assert response.json() == {"success": False, "error": "Upgrade Required"}
