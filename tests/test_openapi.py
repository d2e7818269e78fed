"""GET /api/openapi.json documents every mounted route with its bodies and the error envelope."""

from __future__ import annotations

import httpx

from clarin.app import app
from clarin.http.openapi import openapi_path


def test_openapi_covers_every_route(client: httpx.Client) -> None:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    for route in app.router.routes:
        operations = doc["paths"].get(openapi_path(route.path))
        assert operations is not None, route.path
        assert route.method.lower() in operations, (route.method, route.path)
        operation = operations[route.method.lower()]
        assert "4XX" in operation["responses"]
        if route.body is not None:
            schema_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert schema_ref.rsplit("/", 1)[-1] in doc["components"]["schemas"]
    assert "ErrorEnvelope" in doc["components"]["schemas"]


def test_openapi_is_public(server) -> None:  # type: ignore[no-untyped-def]
    assert httpx.get(server.url + "/api/openapi.json").status_code == 200
