"""deploy/nginx.conf in front of a real server and a stub dashboard, as the original dashboard uses it.

The shipped file runs as it is; only its upstream addresses and listen port are changed (``_render``), so
what passes here is what docs/DASHBOARD.md tells operators to deploy. nginx is Debian's binary, started
as a foreground child process with a private prefix; CI installs it (.ci/services.sh).
"""

from __future__ import annotations

import http.server
import json
import os
import pwd
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests import support
from tests.conftest import ADMIN_PASSWORD

SHIPPED = support.ROOT / "deploy" / "nginx.conf"
# The only text tests change in the shipped file: the Docker service addresses and the public port.
API_UPSTREAM = "server app:8080;"
DASHBOARD_UPSTREAM = "server dashboard:3000;"
LISTEN = "listen 80;"
MiB = 1024 * 1024
BODY_LIMIT = 32 * MiB  # Clarin's default BODY_LIMIT, which the shipped client_max_body_size matches
RATE_LIMIT = 40


def _nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found is None:
        pytest.fail("nginx is not installed: tests/test_proxy.py runs deploy/nginx.conf with it. Install it with "
                    "`apt-get update && apt-get install -y nginx-light` (or run `bash .ci/services.sh`, which does "
                    "that and keeps the distro's own nginx service stopped)")
    return found


def _render(api_port: int, dashboard_port: int, listen_port: int) -> str:
    text = SHIPPED.read_text()
    for old, new in ((API_UPSTREAM, f"server 127.0.0.1:{api_port};"),
                     (DASHBOARD_UPSTREAM, f"server 127.0.0.1:{dashboard_port};"),
                     (LISTEN, f"listen 127.0.0.1:{listen_port};")):
        assert text.count(old) == 1, f"deploy/nginx.conf must contain `{old}` exactly once (tests substitute it)"
        text = text.replace(old, new)
    return text


class _StubDashboard(http.server.BaseHTTPRequestHandler):
    """Stands in for `next start`: answers every path with what it received."""

    protocol_version = "HTTP/1.1"  # nginx keeps upstream connections alive (keepalive in the upstream block)

    def do_GET(self) -> None:
        body = json.dumps({"dashboard": True, "path": self.path,
                           "x_forwarded_for": self.headers.get("X-Forwarded-For")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Proxy:
    url: str
    ws_url: str
    server: support.ServerProcess
    prefix: Path  # error.log, access.log


@pytest.fixture(scope="module")
def dashboard_stub() -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StubDashboard)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def proxied_server(database: str, log_dir: Path) -> Iterator[support.ServerProcess]:
    """A server configured as docs/DASHBOARD.md says to run it behind the proxy; a small rate limit per short
    window makes the client address it sees observable (test_client_address_is_the_proxys_view)."""
    env = support.base_env(database, TRUST_PROXY="true", RATE_LIMIT=str(RATE_LIMIT), RATE_LIMIT_WINDOW="2")
    with support.running_server(env, log_dir, "proxied") as srv:
        yield srv


@pytest.fixture(scope="module")
def proxy(proxied_server: support.ServerProcess, dashboard_stub: int, tmp_path_factory: pytest.TempPathFactory,
          ) -> Iterator[Proxy]:
    binary = _nginx_binary()
    prefix = tmp_path_factory.mktemp("nginx")
    port = support.free_port()
    (prefix / "clarin.conf").write_text(_render(proxied_server.port, dashboard_stub, port))
    temp_paths = "\n".join(f"    {kind}_temp_path {prefix / kind};" for kind in
                           ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # Root's workers would run as nobody and could not write the request-body temp files under the test's
    # private directory: keep them as the current user.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    (prefix / "nginx.conf").write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} warn;\n"
        f"events {{ worker_connections 512; }}\n"
        f"http {{\n    access_log {prefix / 'access.log'};\n{temp_paths}\n    include {prefix / 'clarin.conf'};\n}}\n")
    args = [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")]
    checked = subprocess.run([*args, "-t"], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, (prefix / "error.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "nginx did not answer: " + (prefix / "error.log").read_text()
            time.sleep(0.1)
        yield Proxy(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws", proxied_server, prefix)
    finally:
        proc.terminate()  # SIGTERM: nginx's fast shutdown
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_shipped_config_differs_from_the_tested_one_only_in_addresses() -> None:
    shipped = SHIPPED.read_text().splitlines()
    rendered = _render(1111, 2222, 3333).splitlines()
    changed = [(a.strip(), b.strip()) for a, b in zip(shipped, rendered, strict=True) if a != b]
    assert changed == [(API_UPSTREAM, "server 127.0.0.1:1111;"), (DASHBOARD_UPSTREAM, "server 127.0.0.1:2222;"),
                       (LISTEN, "listen 127.0.0.1:3333;")]


def test_rest_login_and_me_through_the_proxy(proxy: Proxy) -> None:
    tenant = support.new_tenant(proxy.server.url, ADMIN_PASSWORD, "Proxy")
    with httpx.Client(base_url=proxy.url, timeout=15) as client:
        # The dashboard's login page posts exactly this, to a relative URL.
        login = client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert login.status_code == 200, login.text
        assert login.json()["success"] is True
        me = client.get("/api/me", headers=support.auth(login.json()["token"]))
        assert me.status_code == 200, me.text
        assert me.json()["user"]["username"] == "admin"
        # Clarin answered, not the dashboard: its own envelope and headers.
        mine = client.get("/api/me", headers=tenant.headers)
        assert mine.status_code == 200 and mine.json()["user"]["account_id"] == tenant.account_id
        assert "x-request-id" in mine.headers
        # The login also set Clarin's auth-token cookie, which the client now sends (the dashboard's
        # `credentials: 'include'`): it authenticates through the proxy as well.
        assert client.cookies.get("auth-token") == login.json()["token"]
        assert client.get("/api/leads").status_code == 200
    unauthenticated = httpx.get(proxy.url + "/api/leads", timeout=10)
    assert unauthenticated.status_code == 401 and unauthenticated.json()["success"] is False
    assert "dashboard" not in httpx.get(proxy.url + "/health", timeout=10).json()


def test_live_websocket_event_through_the_proxy(proxy: Proxy) -> None:
    tenant = support.new_tenant(proxy.server.url, ADMIN_PASSWORD, "ProxyWs")
    # As the dashboard opens it: `${ws|wss}://${window.location.host}/ws?token=<JWT from localStorage>`.
    with connect(f"{proxy.ws_url}?token={tenant.token}", open_timeout=10, close_timeout=2) as ws:
        ws.send('{"event":"ping"}')
        assert ws.recv(timeout=5) == '{"event":"pong"}'
        name = f"proxy-{uuid.uuid4().hex[:8]}"
        created = httpx.post(proxy.url + "/api/tags", json={"name": name}, headers=tenant.headers, timeout=15)
        assert created.status_code == 201, created.text
        tag_id = created.json()["tag"]["id"]
        deadline = time.monotonic() + 10
        while True:
            message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message["event"] == "tag_update":
                break
        assert message == {"event": "tag_update", "account_id": tenant.account_id,
                           "data": {"action": "created", "tag_id": tag_id}}
        # The trailing-slash form Clarin accepts is routed to it too, not to the dashboard.
    with connect(f"{proxy.ws_url}/?token={tenant.token}", open_timeout=10, close_timeout=2) as ws:
        ws.send('{"event":"ping"}')
        assert ws.recv(timeout=5) == '{"event":"pong"}'
    # The socket's token is not written to the access log (the location turns it off), other requests are.
    access_log = (proxy.prefix / "access.log").read_text()
    assert "/api/tags" in access_log
    assert tenant.token not in access_log and "/ws" not in access_log


def test_other_paths_reach_the_dashboard(proxy: Proxy) -> None:
    for path in ("/", "/dashboard/chats?x=1", "/_next/static/chunks/main.js", "/favicon.ico"):
        response = httpx.get(proxy.url + path, headers={"X-Forwarded-For": "203.0.113.9"}, timeout=10)
        assert response.status_code == 200, (path, response.text)
        # The proxy's own view of the client replaces what the client claimed.
        assert response.json() == {"dashboard": True, "path": path, "x_forwarded_for": "127.0.0.1"}


def _multipart(size: int) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="folder"\r\n\r\nproxy\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    payload = (uuid.uuid4().bytes * (size // 16 + 1))[: size - len(head) - len(tail)]
    return head + payload + tail, boundary


def test_bodies_up_to_the_limit_pass_and_larger_ones_are_refused(proxy: Proxy) -> None:
    tenant = support.new_tenant(proxy.server.url, ADMIN_PASSWORD, "ProxyBody")
    with httpx.Client(base_url=proxy.url, timeout=60) as client:
        body, boundary = _multipart(BODY_LIMIT - 4096)
        content_type = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        uploaded = client.post("/api/media/upload", content=body, headers={**tenant.headers, **content_type})
        assert uploaded.status_code == 200, uploaded.text[:500]
        stored = client.get(uploaded.json()["proxy_url"], headers=tenant.headers)
        assert stored.status_code == 200
        assert len(stored.content) == len(body) - body.index(b"\r\n\r\n", body.index(b"big.bin")) - 4 - len(
            f"\r\n--{boundary}--\r\n")
        over, boundary = _multipart(BODY_LIMIT + 1)
        refused = client.post("/api/media/upload", content=over,
                              headers={**tenant.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert refused.status_code == 413


def test_client_address_is_the_proxys_view(proxy: Proxy) -> None:
    """TRUST_PROXY=true honours X-Forwarded-For; through the proxy a client cannot forge it: requests that
    each claim another address still share the one rate-limit bucket of their real address."""
    direct = [httpx.get(proxy.server.url + "/health", headers={"X-Forwarded-For": f"198.51.100.{i}"}, timeout=10)
              for i in range(RATE_LIMIT + 10)]
    assert {r.status_code for r in direct} == {200}, "each forged address got a bucket of its own (direct)"
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        proxied = [client.get("/health", headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code
                   for i in range(2 * RATE_LIMIT + 10)]
        assert 429 in proxied, "forged X-Forwarded-For values reached Clarin through the proxy"
        # Leave the shared bucket usable for whatever runs next: wait out the 2 s window.
        deadline = time.monotonic() + 10
        while client.get("/health").status_code == 429:
            assert time.monotonic() < deadline
            time.sleep(0.2)
