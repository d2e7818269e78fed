"""Fan-out keeps each socket's events in publish order (clarin.realtime.hub: one queue and one task per process,
a slice of sockets at a time, a socket's writes queued behind its write in flight).

Against the session's real server: one socket relays a burst of ``typing`` events without waiting for any of
them; it and two other sockets of the account each get every event exactly once, in the order sent.
"""

from __future__ import annotations

import json

from websockets.sync.client import ClientConnection, connect

from tests import support
from tests.conftest import Tenant

BURST = 400  # more than the per-socket queue (256): the queue drains as the writes finish


def _open(server: support.ServerProcess, token: str) -> ClientConnection:
    # max_queue=None: the client library keeps reading, so no socket of this test is a slow consumer.
    return connect(f"{server.ws_url}?token={token}", open_timeout=10, close_timeout=2, max_queue=None)


def _received(ws: ClientConnection, marker: str) -> list[int]:
    seen: list[int] = []
    while len(seen) < BURST:
        event = json.loads(ws.recv(timeout=30))
        data = event.get("data") or {}
        if event.get("event") == "typing" and data.get("marker") == marker:
            seen.append(data["n"])
    return seen


def test_a_burst_reaches_every_socket_of_the_account_once_and_in_order(
    server: support.ServerProcess, tenant: Tenant,
) -> None:
    marker = "burst"
    with _open(server, tenant.token) as sender, _open(server, tenant.token) as one, \
            _open(server, tenant.token) as two:
        for ws in (one, two):  # all three registered before the burst
            ws.send('{"event":"ping"}')
            assert ws.recv(timeout=10) == '{"event":"pong"}'
        for n in range(BURST):
            sender.send(json.dumps({"event": "typing", "data": {"marker": marker, "n": n}}))
        for ws in (sender, one, two):
            assert _received(ws, marker) == list(range(BURST))
