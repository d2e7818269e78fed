"""10,000 idle or slowloris connections do not deny service, and the server closes them after
HTTP_HEADER_TIMEOUT (a real `clarin serve`, WORKERS=2, no front proxy).

The swarm is raw non-blocking sockets on one epoll: 9,000 that connect and send nothing, 1,000 that send a
request head one byte per second and never finish it, and 100 keep-alive connections idle after one
request. A normal client's p99 (200 sequential GET /api/me, a new connection each) is measured with none of
them open and with all of them open.
"""

from __future__ import annotations

import errno
import http.client
import resource
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import support

HEADER_TIMEOUT = 20  # seconds; long enough that the loaded measurement ends well before the first close
IDLE, SLOW, KEEPALIVE = 9_000, 1_000, 100
SAMPLES = 200
ROUNDS = 3
SLOW_HEAD = b"GET /api/me HTTP/1.1\r\nHost: clarin.test\r\nX-Slow: " + b"a" * 200  # never completed
BASELINE_FLOOR = 0.010  # seconds: below this, 2x of a near-zero p99 is scheduler noise, not a signal


@pytest.fixture(scope="module", autouse=True)
def open_files() -> Iterator[None]:
    """The test process holds the whole swarm: soft open-files limit up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard >= IDLE + SLOW + KEEPALIVE + 500, f"open-files hard limit {hard} is too low for the swarm"
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Swarm:
    """Client sockets on one epoll; records when the server closed each one."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.epoll = select.epoll()
        self.socks: dict[int, socket.socket] = {}
        self.kind: dict[int, str] = {}
        self.opened: dict[int, float] = {}
        self.closed: dict[int, float] = {}
        self.failed_connects = 0
        self._slow_sent: dict[int, int] = {}

    def open(self, count: int, kind: str, batch: int = 500, timeout: float = 5.0) -> None:
        """``count`` connections, ``batch`` handshakes in flight at a time."""
        for start in range(0, count, batch):
            pending: dict[int, socket.socket] = {}
            for _ in range(min(batch, count - start)):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                code = s.connect_ex(("127.0.0.1", self.port))
                if code not in (0, errno.EINPROGRESS):
                    s.close()
                    self.failed_connects += 1
                    continue
                pending[s.fileno()] = s
            poller = select.epoll()
            for fd in pending:
                poller.register(fd, select.EPOLLOUT)
            deadline = time.monotonic() + timeout
            while pending and time.monotonic() < deadline:
                for fd, _ in poller.poll(0.2):
                    s = pending.pop(fd)
                    poller.unregister(fd)
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        s.close()
                        self.failed_connects += 1
                    else:
                        self._keep(s, kind)
            poller.close()
            self.failed_connects += len(pending)
            for s in pending.values():
                s.close()

    def _keep(self, s: socket.socket, kind: str) -> None:
        fd = s.fileno()
        self.socks[fd], self.kind[fd], self.opened[fd] = s, kind, time.monotonic()
        if kind == "keepalive":  # one request, its answer read, then silence
            s.setblocking(True)
            s.settimeout(10)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: clarin.test\r\n\r\n")
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += s.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
            s.setblocking(False)
        if kind == "slow":
            self._slow_sent[fd] = 0
        self.epoll.register(fd, select.EPOLLIN | select.EPOLLRDHUP)

    def drip(self) -> None:
        """One more byte of the never-ending head on every slow connection that is still open."""
        for fd, sent in self._slow_sent.items():
            if fd in self.closed or sent >= len(SLOW_HEAD):
                continue
            try:
                self.socks[fd].send(SLOW_HEAD[sent:sent + 1])
                self._slow_sent[fd] = sent + 1
            except OSError:
                self._mark_closed(fd)

    def poll(self, timeout: float) -> None:
        for fd, _ in self.epoll.poll(timeout):
            if fd in self.closed:
                continue
            try:
                while data := self.socks[fd].recv(65536):
                    del data  # an answer (none expected) is read and ignored; EOF is what counts
                self._mark_closed(fd)
            except BlockingIOError:
                continue
            except OSError:
                self._mark_closed(fd)

    def _mark_closed(self, fd: int) -> None:
        self.closed[fd] = time.monotonic()
        self.epoll.unregister(fd)

    def open_count(self) -> int:
        return len(self.socks) - len(self.closed)

    def close(self) -> None:
        for s in self.socks.values():
            s.close()
        self.epoll.close()


class Dripper:
    """Background thread: drips the slow heads once a second and notices closes, until stopped."""

    def __init__(self, swarm: Swarm) -> None:
        self.swarm = swarm
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        next_drip = time.monotonic()
        while not self.stop.is_set():
            with self.lock:
                if time.monotonic() >= next_drip:
                    self.swarm.drip()
                    next_drip += 1.0
                self.swarm.poll(0.05)

    def __enter__(self) -> Dripper:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def p99_of_me(server: support.ServerProcess, token: str) -> float:
    """p99 latency (s) of sequential GET /api/me, each on a new connection; a failure counts as infinite."""
    latencies: list[float] = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=3)
        try:
            conn.request("GET", "/api/me", headers={"Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            ok = False
        finally:
            conn.close()
        latencies.append(time.perf_counter() - started if ok else float("inf"))
        if latencies.count(float("inf")) > 2:  # already no p99: do not wait out 200 time-outs
            return float("inf")
    latencies.sort()
    return latencies[int(len(latencies) * 0.99) - 1]


def steady_p99_of_me(server: support.ServerProcess, token: str) -> float:
    """The best p99 of ``ROUNDS`` rounds. Other jobs on this 2-core machine spike a single round now and then
    (a 16 ms baseline next to a 35 ms loaded round was seen while a build ran); the idle sockets, if they
    hurt, hurt every round. Baseline and loaded are measured the same way."""
    return min(p99_of_me(server, token) for _ in range(ROUNDS))


def test_ten_thousand_idle_and_slow_connections(database: str, log_dir: Path) -> None:
    env = support.base_env(database, WORKERS="2", HTTP_HEADER_TIMEOUT=str(HEADER_TIMEOUT))
    with support.running_server(env, log_dir, "idle-swarm") as srv:
        token = support.new_tenant(srv.url, "admin-pass-123", "Idle").token
        p99_of_me(srv, token)  # warm-up: caches, first connections to the pool
        baseline = steady_p99_of_me(srv, token)

        swarm = Swarm(srv.port)
        try:
            started = time.monotonic()
            swarm.open(IDLE, "idle")
            swarm.open(SLOW, "slow")
            swarm.open(KEEPALIVE, "keepalive")
            opened_in = time.monotonic() - started
            with Dripper(swarm) as dripper:
                loaded = steady_p99_of_me(srv, token)
                with dripper.lock:
                    measured_at = time.monotonic()
                    open_during = swarm.open_count()
                # every socket is closed by the server once HEADER_TIMEOUT has passed since it was opened
                deadline = max(swarm.opened.values()) + HEADER_TIMEOUT + 15
                while time.monotonic() < deadline:
                    with dripper.lock:
                        if not swarm.open_count():
                            break
                    time.sleep(0.2)
            lifetimes = {kind: [swarm.closed[fd] - swarm.opened[fd] for fd in swarm.closed if swarm.kind[fd] == kind]
                         for kind in ("idle", "slow", "keepalive")}
            still_open = {kind: sum(1 for fd in swarm.socks if swarm.kind[fd] == kind and fd not in swarm.closed)
                          for kind in ("idle", "slow", "keepalive")}
            print(f"\nnormal client p99 (GET /api/me, best of {ROUNDS} rounds of {SAMPLES} sequential, new connection each): "
                  f"{baseline * 1000:.1f} ms with 0 idle sockets, {loaded * 1000:.1f} ms with {open_during} open "
                  f"({IDLE} idle + {SLOW} slowloris + {KEEPALIVE} idle keep-alive, opened in {opened_in:.1f} s, "
                  f"{swarm.failed_connects} connects failed)")
            for kind, values in lifetimes.items():
                if values:
                    print(f"  {kind}: {len(values)} closed by the server after {min(values):.1f}-{max(values):.1f} s "
                          f"(HTTP_HEADER_TIMEOUT={HEADER_TIMEOUT}); {still_open[kind]} still open")
        finally:
            swarm.close()

        assert swarm.failed_connects == 0
        assert open_during == IDLE + SLOW + KEEPALIVE, "closed before the loaded measurement ended"
        assert measured_at - started < HEADER_TIMEOUT
        assert loaded <= 2 * max(baseline, BASELINE_FLOOR), (baseline, loaded)
        assert still_open == {"idle": 0, "slow": 0, "keepalive": 0}, still_open
        for kind, values in lifetimes.items():  # closed by the timeout: not before it, not long after it
            assert HEADER_TIMEOUT - 1 <= min(values) and max(values) <= HEADER_TIMEOUT + 10, (kind, min(values),
                                                                                            max(values))
        assert srv.proc.poll() is None
