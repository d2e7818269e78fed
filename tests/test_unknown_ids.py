"""Every route that takes an ID, called by a tenant with IDs that are not theirs, must answer 4xx — never
2xx (a foreign or unknown row was touched or shown) and never 5xx. The route table drives it, so a new route
joins automatically."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from clarin.app import app
from clarin.http.router import Auth

SKIP_PREFIXES = ("/api/admin/", "/api/dev/", "/api/media/file/")
PARAM_VALUES = {"kommoId": "987654321", "type": "lead"}


def _id_routes() -> list[Any]:
    return [
        route for route in app.router.routes
        if (":" in route.path) and route.auth is not Auth.PUBLIC and not route.path.startswith(SKIP_PREFIXES)
    ]


def _fill(path: str) -> str:
    parts = []
    for segment in path.split("/"):
        if segment.startswith(":"):
            parts.append(PARAM_VALUES.get(segment[1:], str(uuid.uuid4())))
        else:
            parts.append(segment)
    return "/".join(parts)


@pytest.mark.parametrize("route", _id_routes(), ids=lambda r: f"{r.method} {r.path}")
def test_unknown_ids_are_4xx(route: Any, client: httpx.Client, tenant: Any) -> None:
    response = client.request(route.method, _fill(route.path), json={}, headers=tenant.headers)
    assert 400 <= response.status_code < 500 or (
        route.path.startswith("/api/kommo/") and response.status_code == 503  # Kommo not configured here
    ), (response.status_code, response.text)
    assert response.json()["success"] is False
