"""Keep-alive after early answers: a response sent before the request body was read (401, 413, 429, 503, a
route that takes no body) either leaves the connection usable for the next request, or says
``Connection: close`` — never a silent close that breaks the client's next request (broken pipe).

Raw sockets, so nothing in a client library hides a reconnect: the next request goes on the same socket.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import support
from tests.conftest import ADMIN_PASSWORD, ADMIN_USER, Tenant
from tests.fault_support import missing_binaries, private_postgres

HEAD_END = b"\r\n\r\n"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def closes(self) -> bool:
        return self.headers.get("connection", "").lower() == "close"


class KeepAliveClient:
    """One TCP connection, HTTP/1.1 requests written by hand, responses read by Content-Length."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self._buffer = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
             body_delay: float = 0.0, declared_length: int | None = None) -> None:
        """``body_delay``: the head goes first and the body that much later (the server answers in between)."""
        lines = [f"{method} {path} HTTP/1.1", "Host: clarin.test", "Content-Type: application/json",
                 f"Content-Length: {len(body) if declared_length is None else declared_length}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        if body_delay:
            time.sleep(body_delay)
        if body:
            self.sock.sendall(body)

    def receive(self) -> Answer | None:
        """The next response, or None when the server closed the connection first."""
        while HEAD_END not in self._buffer:
            chunk = self._recv()
            if not chunk:
                return None
            self._buffer += chunk
        head, self._buffer = self._buffer.split(HEAD_END, 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self._buffer) < length:
            chunk = self._recv()
            assert chunk, "connection closed in the middle of a response body"
            self._buffer += chunk
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return Answer(int(status_line.split()[1]), headers, body)

    def _recv(self) -> bytes:
        try:
            return self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return b""

    def server_closed(self, timeout: float = 5) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self._recv() == b""
        except TimeoutError:
            return False


@pytest.fixture
def connection(server: support.ServerProcess) -> Iterator[KeepAliveClient]:
    client = KeepAliveClient(server.url)
    try:
        yield client
    finally:
        client.close()


def assert_next_request_works_or_close_announced(client: KeepAliveClient, answer: Answer,
                                                 expect: tuple[int, ...] = (200,)) -> str:
    """The property under test. Returns which of the two happened."""
    if answer.closes:
        assert client.server_closed(), "the response said Connection: close but the server kept the connection"
        return "closed"
    try:
        client.send("GET", "/health")
        following = client.receive()
    except (BrokenPipeError, ConnectionResetError) as exc:
        raise AssertionError(f"{answer.status} without Connection: close, then the connection broke: {exc!r}") from exc
    assert following is not None, f"{answer.status} without Connection: close, then the server closed the connection"
    assert following.status in expect, following
    return "kept"


LEAD = b'{"name": "Keep-alive", "phone": "51987654321"}'


@pytest.mark.parametrize("body_delay", [0.0, 0.3], ids=["with-head", "after-the-answer"])
def test_401_before_a_small_body_keeps_the_connection(connection: KeepAliveClient, body_delay: float) -> None:
    connection.send("POST", "/api/leads", LEAD, body_delay=body_delay)
    answer = connection.receive()
    assert answer is not None and answer.status == 401, answer
    assert b'"error"' in answer.body
    # a small body is read and discarded: the connection stays usable (no reconnect for the client)
    assert assert_next_request_works_or_close_announced(connection, answer) == "kept"


def test_401_before_a_large_body_announces_the_close(connection: KeepAliveClient) -> None:
    padding = b" " * 300_000  # more than the server discards: it answers and closes
    connection.send("POST", "/api/leads", b"{" + padding + b"}", body_delay=0.3)
    answer = connection.receive()
    assert answer is not None and answer.status == 401, answer
    assert answer.closes, answer.headers
    assert_next_request_works_or_close_announced(connection, answer)


def test_413_on_the_declared_length_announces_the_close(connection: KeepAliveClient, tenant: Tenant) -> None:
    connection.send("POST", "/api/leads", b"{", headers={"Authorization": f"Bearer {tenant.token}"},
                    declared_length=64 * 1024 * 1024)  # over BODY_LIMIT (32 MiB); almost nothing is sent
    answer = connection.receive()
    assert answer is not None and answer.status == 413, answer
    assert answer.closes, answer.headers
    assert_next_request_works_or_close_announced(connection, answer)


def test_a_route_without_a_body_keeps_the_connection(connection: KeepAliveClient, tenant: Tenant) -> None:
    """Clients send bodies the route does not read (here ``{}`` on a GET): discarded, the connection kept."""
    for delay in (0.0, 0.3):
        connection.send("GET", "/api/leads?limit=1", b"{}", headers={"Authorization": f"Bearer {tenant.token}"},
                        body_delay=delay)
        answer = connection.receive()
        assert answer is not None and answer.status == 200, answer
        assert assert_next_request_works_or_close_announced(connection, answer) == "kept"


@pytest.mark.skipif(missing_binaries() is not None, reason=missing_binaries() or "")
def test_503_and_429_before_the_body(log_dir: Path) -> None:
    """The issue's case: PostgreSQL down, the auth check (no cache) answers 503 before the body is read; then
    the rate limiter's 429, also before the body."""
    env = support.base_env(None, AUTH_CACHE_TTL="0", RATE_LIMIT="40", RATE_LIMIT_WINDOW="600")
    with private_postgres() as pg, support.running_server({**env, "DATABASE_URL": pg.dsn}, log_dir, "conn-close") as srv:
        token = support.login(srv.url, ADMIN_USER, ADMIN_PASSWORD)
        pg.stop("fast")
        try:
            for delay in (0.0, 0.3):
                client = KeepAliveClient(srv.url)
                try:
                    client.send("POST", "/api/leads", LEAD, headers={"Authorization": f"Bearer {token}"},
                                body_delay=delay)
                    answer = client.receive()
                    assert answer is not None and answer.status == 503, answer
                    assert answer.headers.get("retry-after") == "2"
                    assert assert_next_request_works_or_close_announced(client, answer) == "kept"
                finally:
                    client.close()
        finally:
            pg.start()

        client = KeepAliveClient(srv.url)
        try:
            statuses = []
            for _ in range(60):  # the budget is 40 per window: the 429 comes, each on the same connection
                client.send("POST", "/api/leads", LEAD, body_delay=0.05)
                answer = client.receive()
                assert answer is not None, f"connection closed silently after {statuses}"
                statuses.append(answer.status)
                assert_next_request_works_or_close_announced(client, answer, expect=(200, 429))
                if answer.status == 429:
                    break
            assert statuses[-1] == 429, statuses
        finally:
            client.close()
