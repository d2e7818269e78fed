"""A WebSocket client that stops reading cannot hold the server's memory (issue 18 goal 2).

Against the session's real server: one raw socket of an account completes the handshake and then never reads
(a small receive buffer, so TCP backpressure reaches the server soon); another socket of the same account keeps
reading while it relays large ``typing`` events to the account. Once the stalled socket's TCP buffers are full,
its writes never finish, events queue behind them, and past the bounded queue the server closes it with 1013
(try again later) and counts it in ``clarin_ws_slow_consumers_closed_total``. The reading socket is not
affected. Behaviour only: no timings are asserted beyond generous deadlines.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import struct
import time

import httpx
from websockets.sync.client import connect

from tests import support
from tests.conftest import Tenant

EVENT_BYTES = 32 * 1024
MAX_EVENTS = 2000  # 64 MiB at most: far past TCP buffers (a few MiB) plus the server's queue (256 events)
CLOSE_TRY_AGAIN = 1013


def _metric(server: support.ServerProcess) -> float:
    text = httpx.get(server.url + "/metrics", timeout=15).text
    found = re.search(r"^clarin_ws_slow_consumers_closed_total (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def _stalled_socket(server: support.ServerProcess, token: str) -> socket.socket:
    """A WebSocket that completes its handshake and then reads nothing."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window stays small
    sock.settimeout(15)
    sock.connect(("127.0.0.1", server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # byte by byte: leave every frame after the response in the kernel buffer
        assert chunk, "the server closed the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _close_code(sock: socket.socket, deadline_s: float = 60) -> int | None:
    """Read the socket now: the frames it had stalled on, then the server's close frame (its code, or 0 when the
    frame carries none); None if the connection ended without a close frame."""
    buf = b""
    deadline = time.monotonic() + deadline_s
    sock.settimeout(5)
    while time.monotonic() < deadline:
        while len(buf) >= 2:
            opcode, n, at = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, at = struct.unpack_from("!H", buf, 2)[0], 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, at = struct.unpack_from("!Q", buf, 2)[0], 10
            if len(buf) < at + n:
                break
            payload, buf = buf[at : at + n], buf[at + n :]
            if opcode == 0x8:
                return struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else 0
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            continue
        if not chunk:
            return None
        buf += chunk
    raise AssertionError("the stalled socket was neither closed nor sent a close frame")


def test_a_client_that_stops_reading_is_closed_with_1013_and_counted(
    server: support.ServerProcess, tenant: Tenant,
) -> None:
    before = _metric(server)
    stalled = _stalled_socket(server, tenant.token)
    try:
        with connect(f"{server.ws_url}?token={tenant.token}", open_timeout=10, close_timeout=2,
                     max_size=None) as reader:
            filler = "x" * EVENT_BYTES
            closed_at = None
            for n in range(MAX_EVENTS):
                reader.send(json.dumps({"event": "typing", "data": {"n": n, "fill": filler}}))
                # The reader takes its own copy of every relay: it never falls behind.
                while json.loads(reader.recv(timeout=30)).get("data", {}).get("n") != n:
                    pass
                if n % 50 == 49 and _metric(server) > before:
                    closed_at = n
                    break
            assert closed_at is not None, f"{MAX_EVENTS} events of {EVENT_BYTES} bytes and the stalled socket is open"
            # The reader was not affected: it still gets its pong.
            reader.send('{"event":"ping"}')
            assert reader.recv(timeout=15) == '{"event":"pong"}'
        code = _close_code(stalled)
        # granian may send the close frame without its code; with a code it is 1013.
        assert code in (None, 0, CLOSE_TRY_AGAIN), code
        assert _metric(server) >= before + 1
    finally:
        stalled.close()
