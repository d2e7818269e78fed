"""``GET /metrics``: Prometheus text exposition.

* ``METRICS_TOKEN`` set → ``Authorization: Bearer <METRICS_TOKEN>`` required (constant-time compare), else 401;
* no token and ``METRICS_PUBLIC`` (default on in development, off with ``ENV=production``) → open;
* no token, not public → the same 404 an unknown path gets: a production install exposes its traffic,
  pool and worker figures only to a scraper someone configured on purpose.
"""

from __future__ import annotations

import hmac

from clarin.auth.tokens import bearer_token
from clarin.http.errors import HTTPError
from clarin.http.request import Request
from clarin.http.response import Response
from clarin.http.router import Auth
from clarin.http.routes import RouteGroup
from clarin.observability import metrics

routes = RouteGroup(tags=("ops",), auth=Auth.PUBLIC)


@routes.get("/metrics", summary="Prometheus metrics (text exposition format)")
async def prometheus_metrics(req: Request) -> Response:
    expected = req.app.settings.metrics_token
    if expected:
        given = bearer_token(req.header("authorization"), "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise HTTPError(401, "Unauthorized")
    elif not req.app.settings.metrics_public:
        raise HTTPError(404, f"Cannot {req.method} {req.path}")
    body = await metrics.render(req.app)
    return Response(body, 200, [("content-type", metrics.CONTENT_TYPE), ("cache-control", "no-store")])


prometheus_metrics.content_type = "text/plain"  # type: ignore[attr-defined]  # for the OpenAPI document
