"""OpenAPI 3.1 document generated from the route table and the routes' msgspec types."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec

from clarin.http.router import Auth, Route
from clarin.wire.common import ErrorEnvelope

_PARAM_RE = re.compile(r"[:*]([A-Za-z_][A-Za-z0-9_]*)")
REF_TEMPLATE = "#/components/schemas/{name}"


def openapi_path(path: str) -> str:
    return _PARAM_RE.sub(r"{\1}", path)


def build_openapi(routes: Iterable[Route], *, title: str = "Clarin CRM API", version: str = "0.1.0") -> dict[str, Any]:
    routes = list(routes)
    types: list[Any] = [ErrorEnvelope]
    for route in routes:
        for candidate in (route.body, route.response, route.query):
            if candidate is not None and candidate not in types:
                types.append(candidate)
    refs, components = msgspec.json.schema_components(types, ref_template=REF_TEMPLATE)
    ref_of = dict(zip(types, refs, strict=True))
    error_response = {
        "description": "Error envelope",
        "content": {"application/json": {"schema": ref_of[ErrorEnvelope]}},
    }
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation: dict[str, Any] = {
            "operationId": f"{route.method.lower()}_{route.name}",
            "summary": route.summary or (route.handler.__doc__ or route.name).strip().splitlines()[0],
            "tags": list(route.tags),
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in _PARAM_RE.findall(route.path)
            ],
            "responses": {
                str(route.status): {
                    "description": "Success",
                    "content": {"application/json": {"schema": ref_of[route.response]}}
                    if route.response is not None
                    # A handler answering another media type names it (e.g. /metrics: text/plain).
                    else {route.handler.content_type: {"schema": {"type": "string"}}}
                    if getattr(route.handler, "content_type", None)
                    else {"application/json": {"schema": {"type": "object"}}},
                },
                "4XX": error_response,
                "5XX": error_response,
            },
        }
        if route.auth is not Auth.PUBLIC:
            operation["security"] = [{"bearerAuth": []}, {"cookieAuth": []}]
        if route.body is not None:
            operation["requestBody"] = {
                "required": False,
                "content": {"application/json": {"schema": ref_of[route.body]}},
            }
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "auth-token"},
            },
        },
    }
