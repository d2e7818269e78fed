"""``GET /api/docs``: an interactive API reference (Swagger UI) over ``GET /api/openapi.json``.

Decisions
---------
* **No CDN.** Swagger UI's dist files come from the ``swagger-ui-py`` wheel (a runtime dependency); the page
  references only ``/api/docs/assets/<file>`` so it works offline and on air-gapped installs. The package's
  Python side (a Jinja/YAML-based integration for other frameworks) is never imported: only its ``static``
  directory is located, through the import system's metadata.
* **Strict allow-list.** ``/api/docs/assets/<file>`` serves exactly the names in ``ASSETS``, never a path
  built from the request, so ``..``/encoded-slash tricks answer 404 without touching the file system.
* **No inline script.** The initializer is its own asset (``clarin-docs.js``) and the page carries a
  Content-Security-Policy of its own (``script-src 'self'``), stricter than the service's defaults; inline
  styles are allowed because Swagger UI's React components set ``style`` attributes.
* **Caching.** The HTML is ``no-cache`` (it names the asset version); assets are requested as
  ``?v=<version>`` and served ``immutable`` for a year with an ETag, so an upgrade of the package or of the
  initializer changes the URL and a browser never runs a stale mix.
* **Gate.** ``API_DOCS_PUBLIC`` (default on in development, off with ``ENV=production``): off → the page and
  its assets answer the same 404 an unknown path gets, like ``/metrics`` without ``METRICS_PUBLIC``. The
  document itself (``/api/openapi.json``) stays public as before; the page adds a browser "try it" console.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from functools import cache
from pathlib import Path

from clarin.http.errors import HTTPError
from clarin.http.request import Request
from clarin.http.response import FileResponse, Response
from clarin.http.router import Auth
from clarin.http.routes import RouteGroup

ASSET_PACKAGE = "swagger_ui"  # import name of the swagger-ui-py distribution
ASSET_DISTRIBUTION = "swagger-ui-py"
ASSET_PREFIX = "/api/docs/assets/"
INITIALIZER = "clarin-docs.js"
JS = "text/javascript; charset=utf-8"
# File name → content type. Everything else under the package's static dir (the editor bundles, the
# standalone preset with its "explore any URL" top bar, the OAuth2 redirect page) is not served.
ASSETS: dict[str, str] = {
    "swagger-ui-bundle.js": JS,
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
    INITIALIZER: JS,
}
ASSET_CONTENT_TYPES = tuple(dict.fromkeys(kind.split(";")[0] for kind in ASSETS.values()))  # documented

# The document is same-origin, so "try it" requests go to this server with the token given to Authorize.
# validatorUrl null: Swagger UI would otherwise embed a badge image from an external validator service.
INITIALIZER_JS = b"""// Clarin API reference: Swagger UI over the service's own OpenAPI document.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/api/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    filter: true,
    displayRequestDuration: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""

PAGE_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Clarin API reference</title>
<link rel="stylesheet" href="{prefix}swagger-ui.css?v={version}">
<link rel="icon" type="image/png" sizes="32x32" href="{prefix}favicon-32x32.png?v={version}">
<link rel="icon" type="image/png" sizes="16x16" href="{prefix}favicon-16x16.png?v={version}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{prefix}swagger-ui-bundle.js?v={version}"></script>
<script src="{prefix}{initializer}?v={version}"></script>
</body>
</html>
"""

PAGE_CSP = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",  # Swagger UI's icons are data: SVGs in its stylesheet
    "font-src 'self' data:",
    "connect-src 'self'",  # the document and the "try it" calls: this server only
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
PAGE_CACHE = ("cache-control", "no-cache")
ASSET_CACHE = ("cache-control", "public, max-age=31536000, immutable")
ASSETS_MISSING = f"API docs assets are not installed (pip install {ASSET_DISTRIBUTION})"

routes = RouteGroup(tags=("docs",), auth=Auth.PUBLIC)


@cache
def static_dir() -> Path | None:
    """The package's dist directory, found without importing it (its ``__init__`` pulls in Jinja and YAML)."""
    spec = importlib.util.find_spec(ASSET_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "static"
    return path if path.is_dir() else None


@cache
def asset_version() -> str:
    """Changes with the Swagger UI package's version and with the initializer: the assets' cache key."""
    try:
        package = importlib.metadata.version(ASSET_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        package = "missing"
    return hashlib.sha256(package.encode() + b"\0" + INITIALIZER_JS).hexdigest()[:12]


@cache
def page_html() -> bytes:
    return PAGE_TEMPLATE.format(prefix=ASSET_PREFIX, version=asset_version(), initializer=INITIALIZER).encode()


def _check_enabled(req: Request) -> None:
    if not req.app.settings.api_docs_public:
        raise HTTPError(404, f"Cannot {req.method} {req.path}")


@routes.get("/api/docs", summary="Interactive API reference (Swagger UI over /api/openapi.json)")
async def api_docs(req: Request) -> Response:
    _check_enabled(req)
    return Response(page_html(), 200, [
        ("content-type", "text/html; charset=utf-8"), PAGE_CACHE, ("content-security-policy", PAGE_CSP),
    ])


@routes.get(ASSET_PREFIX + ":file", summary="A static file of the API reference page (Swagger UI dist)")
async def api_docs_asset(req: Request) -> Response:
    _check_enabled(req)
    name = req.params.get("file", "")
    content_type = ASSETS.get(name)
    if content_type is None:
        raise HTTPError(404, "Asset not found")
    etag = f'"{asset_version()}-{name}"'
    headers = [("content-type", content_type), ASSET_CACHE, ("etag", etag)]
    if etag in (tag.strip() for tag in req.header("if-none-match").split(",")):
        return Response(b"", 304, headers)
    if name == INITIALIZER:
        return Response(INITIALIZER_JS, 200, headers)
    directory = static_dir()
    if directory is None:
        raise HTTPError(503, ASSETS_MISSING)
    path = directory / name
    if not path.is_file():
        raise HTTPError(503, ASSETS_MISSING)
    return FileResponse(str(path), 200, [*headers, ("content-length", str(path.stat().st_size))])


# For the OpenAPI document (clarin/http/openapi.py): media types and the asset names as an enum.
api_docs.content_type = "text/html"  # type: ignore[attr-defined]
api_docs_asset.content_type = ASSET_CONTENT_TYPES  # type: ignore[attr-defined]
api_docs_asset.path_schemas = {"file": {"type": "string", "enum": sorted(ASSETS)}}  # type: ignore[attr-defined]
