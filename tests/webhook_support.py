"""A real HTTP receiver for webhook tests: a threading HTTP server on 127.0.0.1 that records every request
(path, headers, body, arrival time) and answers per path as told (status sequence, hang)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def delivery(self) -> str:
        return self.headers["x-clarin-delivery"]


@dataclass
class Receiver:
    port: int
    hits: list[Hit] = field(default_factory=list)
    statuses: dict[str, list[int]] = field(default_factory=dict)  # path → answers to give, in order (then 200)
    hang: dict[str, float] = field(default_factory=dict)  # path → seconds to sleep before answering
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def of(self, path: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.path == path]

    def wait(self, what: str, check: Callable[[], Any], timeout: float = 15) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = check()
            if got:
                return got
            time.sleep(0.05)
        raise AssertionError(f"webhook receiver: {what} not seen in {timeout}s; got {len(self.hits)} hits")


@contextmanager
def receiver() -> Iterator[Receiver]:
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms delayed-ACK stalls

        def do_POST(self) -> None:
            rec = state["r"]
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            if len(body) < length:
                # The sender died mid-request (the crash test kills the delivering worker): like any HTTP server,
                # drop a request whose body never fully arrived rather than record a truncated delivery.
                self.close_connection = True
                return
            with rec.lock:
                rec.hits.append(Hit(self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                                    time.monotonic()))
                queue = rec.statuses.get(self.path)
                status = queue.pop(0) if queue else 200
                hang = rec.hang.get(self.path, 0.0)
            if hang:
                time.sleep(hang)
            payload = b'{"ok":true}'
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state["r"] = Receiver(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["r"]
    finally:
        server.shutdown()
        server.server_close()
