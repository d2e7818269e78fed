"""GET /api/docs: the Swagger UI page and its allow-listed assets, served offline from the swagger-ui-py
package, and gated by API_DOCS_PUBLIC in production (the browser run is tests/test_api_docs_browser.py)."""

from __future__ import annotations

import http.client
import re
import uuid
from pathlib import Path

import httpx
import pytest

from clarin.config import load_settings
from clarin.http.docs import ASSET_PREFIX, ASSETS, INITIALIZER, static_dir
from tests import support

PROD_JWT_SECRET = "production-docs-secret-" + uuid.uuid4().hex  # production refuses short secrets
REFERENCE = re.compile(r'(?:src|href)="([^"]*)"')


def _raw_get(url: str, path: str, token: str) -> tuple[int, str, bytes]:
    """GET with the path sent byte for byte: httpx would resolve ``..`` segments before sending. With a
    token, because an unknown ``/api`` path answers 401 before 404 to an anonymous client (as the original)
    and a traversal that leaves the asset route is such a path."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path, headers=support.auth(token))
        response = connection.getresponse()
        return response.status, response.getheader("content-type", ""), response.read()
    finally:
        connection.close()


def test_page_references_only_local_assets(client: httpx.Client) -> None:
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    html = response.text
    assert not re.search(r"(?:https?:)?//", html), "no absolute or protocol-relative URL: nothing off this host"
    references = REFERENCE.findall(html)
    assert {ref.split("?")[0] for ref in references} == {ASSET_PREFIX + name for name in ASSETS}
    # Every script is a file (a CSP without 'unsafe-inline' would block an inline one).
    assert re.findall(r"<script[^>]*>", html) == [
        f'<script src="{ASSET_PREFIX}swagger-ui-bundle.js?v={_version(html)}">',
        f'<script src="{ASSET_PREFIX}{INITIALIZER}?v={_version(html)}">',
    ]
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-eval" not in csp
    # The service-wide headers still apply; the CSP is the page's own.
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in client.get("/health").headers


def _version(html: str) -> str:
    match = re.search(r"\?v=([0-9a-f]+)\"", html)
    assert match is not None
    return match.group(1)


def test_every_asset_is_served_with_its_content_type(client: httpx.Client) -> None:
    version = _version(client.get("/api/docs").text)
    directory = static_dir()
    assert directory is not None, "swagger-ui-py is a runtime dependency"
    for name, content_type in ASSETS.items():
        response = client.get(f"{ASSET_PREFIX}{name}?v={version}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == content_type, name
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable", name
        etag = response.headers["etag"]
        assert version in etag, name
        if name == INITIALIZER:
            assert b'url: "/api/openapi.json"' in response.content and b"validatorUrl: null" in response.content
        else:
            assert response.content == (directory / name).read_bytes(), name
        # Revalidation by ETag: nothing re-sent.
        again = client.get(f"{ASSET_PREFIX}{name}", headers={"if-none-match": etag})
        assert again.status_code == 304 and again.content == b"", name
    bundle = client.get(ASSET_PREFIX + "swagger-ui-bundle.js").text
    assert "SwaggerUIBundle" in bundle
    # Swagger UI 5+: the release line that renders OpenAPI 3.1 documents (ours is 3.1.0).
    match = re.search(r'PACKAGE_VERSION:"(\d+)\.', bundle)
    assert match is not None and int(match.group(1)) >= 5


@pytest.mark.parametrize("path", [
    "no-such-file.js",
    "swagger-editor-bundle.js",  # in the package's dist dir, but not allow-listed
    "oauth2-redirect.html",
    "LICENSE",
    "SWAGGER-UI.CSS",
    "swagger-ui.css%00",
    "swagger-ui.css%00.png",
    "..%2F..%2Fpyproject.toml",
    "%2e%2e%2f%2e%2e%2f%2e%2e%2fpyproject.toml",
    "..%2f__init__.py",
    "%2Fetc%2Fpasswd",
    "..%5C..%5Cpyproject.toml",
])
def test_unknown_or_traversing_asset_is_404(server: support.ServerProcess, admin_token: str, path: str) -> None:
    status, content_type, body = _raw_get(server.url, ASSET_PREFIX + path, admin_token)
    assert status == 404, (path, body[:200])
    assert content_type == "application/json"
    assert b'"error"' in body


@pytest.mark.parametrize("path", [
    "/api/docs/assets/../../../pyproject.toml",
    "/api/docs/assets/../../openapi.json/../../../README.md",
    "/api/docs/assets/./../assets/swagger-ui.css/../../../../etc/passwd",
])
def test_dot_segments_reach_nothing(server: support.ServerProcess, admin_token: str, path: str) -> None:
    status, _, body = _raw_get(server.url, path, admin_token)
    assert status == 404, (path, body[:200])
    assert b"[project]" not in body and b"root:" not in body and b"# Clarin" not in body


def test_setting_defaults() -> None:
    assert load_settings({}).api_docs_public is True
    assert load_settings({"ENV": "production", "JWT_SECRET": PROD_JWT_SECRET}).api_docs_public is False
    production_on = {"ENV": "production", "JWT_SECRET": PROD_JWT_SECRET, "API_DOCS_PUBLIC": "true"}
    assert load_settings(production_on).api_docs_public is True
    assert load_settings({"API_DOCS_PUBLIC": "false"}).api_docs_public is False


@pytest.mark.slow
@pytest.mark.parametrize(("extra", "expected"), [({}, 404), ({"API_DOCS_PUBLIC": "true"}, 200)])
def test_production_serves_docs_only_when_enabled(
    database: str, log_dir: Path, extra: dict[str, str], expected: int,
) -> None:
    env = support.base_env(database, ENV="production", JWT_SECRET=PROD_JWT_SECRET, **extra)
    with support.running_server(env, log_dir, "production-docs") as srv:
        page = httpx.get(srv.url + "/api/docs", timeout=10)
        asset = httpx.get(srv.url + ASSET_PREFIX + INITIALIZER, timeout=10)
        assert page.status_code == expected and asset.status_code == expected, (page.text[:200], asset.text[:200])
        if expected == 404:
            # The same answer as any unknown path: nothing says a docs page exists.
            assert page.json()["error"] == "Cannot GET /api/docs"
            assert asset.json()["error"] == f"Cannot GET {ASSET_PREFIX}{INITIALIZER}"
        else:
            assert "swagger-ui" in page.text and asset.headers["content-type"].startswith("text/javascript")
        # The document itself stays public either way (tests/test_openapi.py).
        assert httpx.get(srv.url + "/api/openapi.json", timeout=10).status_code == 200
