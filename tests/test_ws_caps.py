"""Socket exhaustion is graceful (issue 18 goal 3), against a real server started with a small open-files limit.

The server starts with ``RLIMIT_NOFILE`` soft 200 / hard 400 (what ``ulimit -n`` sets): it raises the soft limit
to the hard one and logs both, derives its connection cap from it and keeps a reserve of those connections for
HTTP, so its WebSocket cap is below what the descriptors allow. The test opens sockets until the per-account cap
(429) and then the process cap (503): each refusal is a clean handshake status with no traceback in the log,
is counted in ``/metrics``, and at the cap ``/health`` and API requests still answer. A closed socket frees its
slot.
"""

from __future__ import annotations

import contextlib
import re
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests import support

ADMIN_PASSWORD = "admin-pass-123"
SOFT, HARD = 200, 400
PER_ACCOUNT = 20


@pytest.fixture(scope="module")
def capped_server(database: str, log_dir: Path) -> Iterator[support.ServerProcess]:
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < HARD:
        pytest.fail(f"this machine's hard open-files limit is below {HARD}: the test cannot set up its server")
    env = support.base_env(database, LOG_LEVEL="INFO", WORKERS="1", WS_MAX_PER_ACCOUNT=str(PER_ACCOUNT),
                           HTTP_MAX_CONNECTIONS="0", WS_MAX_CONNECTIONS="0")
    port = support.free_port()
    server = support.ServerProcess.__new__(support.ServerProcess)
    server.port, server.url, server.ws_url = port, f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws"
    server.log_path = log_dir / "ws-caps.log"
    server._log = open(server.log_path, "w")

    def small_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (SOFT, HARD))

    server.proc = subprocess.Popen([sys.executable, "-m", "clarin", "serve"],
                                   env={**env, "PORT": str(port), "HOST": "127.0.0.1"}, cwd=support.ROOT,
                                   stdout=server._log, stderr=subprocess.STDOUT, preexec_fn=small_limit)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _connect(server: support.ServerProcess, token: str) -> ClientConnection:
    return connect(f"{server.ws_url}?token={token}", open_timeout=10)


def _refusal(server: support.ServerProcess, token: str) -> int:
    with pytest.raises(InvalidStatus) as caught, _connect(server, token):
        pass
    return caught.value.response.status_code


def _refused_metric(server: support.ServerProcess, reason: str) -> float:
    text = httpx.get(server.url + "/metrics").text
    match = re.search(rf'^clarin_ws_refused_total\{{reason="{reason}"\}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_sockets_until_the_caps_are_refused_cleanly_and_http_still_answers(
    capped_server: support.ServerProcess,
) -> None:
    logs = capped_server.logs()
    assert f"open files: soft limit raised from {SOFT} to the hard limit {HARD}" in logs, logs[-2000:]
    found = re.search(r"up to (\d+) connections per worker, of them up to (\d+) WebSockets, (\d+) per account", logs)
    assert found, logs[-2000:]
    connections, ws_cap, per_account = map(int, found.groups())
    assert per_account == PER_ACCOUNT and 0 < ws_cap < connections <= HARD

    tenants = [support.new_tenant(capped_server.url, ADMIN_PASSWORD, f"Caps{i}") for i in range(ws_cap // PER_ACCOUNT + 1)]
    sockets: list[ClientConnection] = []
    with contextlib.ExitStack() as stack:

        def _open(server: support.ServerProcess, token: str) -> ClientConnection:
            return stack.enter_context(_connect(server, token))

        # One account: PER_ACCOUNT sockets, then 429 for that account only.
        sockets += [_open(capped_server, tenants[0].token) for _ in range(PER_ACCOUNT)]
        assert _refusal(capped_server, tenants[0].token) == 429
        # The others fill the process up to its cap, then 503 for everyone.
        for tenant in tenants[1:]:
            while len(sockets) < ws_cap and sum(1 for s in sockets if s.request.path.endswith(tenant.token)) < PER_ACCOUNT:
                sockets.append(_open(capped_server, tenant.token))
        assert len(sockets) == ws_cap
        assert _refusal(capped_server, tenants[-1].token) == 503
        # At the cap the reserve keeps HTTP alive: health, and an ordinary API read, on fresh connections.
        for _ in range(5):
            assert httpx.get(capped_server.url + "/health", timeout=5).status_code == 200
            assert httpx.get(capped_server.url + "/api/leads?limit=5", headers=tenants[0].headers,
                             timeout=5).status_code == 200
        # Every socket is still served (a ping gets its pong).
        for ws in sockets[:: max(1, len(sockets) // 10)]:
            ws.send('{"event":"ping"}')
            assert "pong" in str(ws.recv(timeout=10))
        assert _refused_metric(capped_server, "account") >= 1
        assert _refused_metric(capped_server, "process") >= 1
        # A closed socket frees its slot.
        sockets.pop().close()
        deadline = time.monotonic() + 10
        while True:
            try:
                sockets.append(_open(capped_server, tenants[-1].token))
                break
            except InvalidStatus:
                assert time.monotonic() < deadline, "the closed socket's slot was never released"
                time.sleep(0.1)
    logs = capped_server.logs()
    assert "Traceback" not in logs and "Too many open files" not in logs, logs[-3000:]
