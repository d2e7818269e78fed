"""OpenAPI 3.1 document generated from the route table and the routes' msgspec types."""

from __future__ import annotations

import re
import typing
from collections import Counter
from collections.abc import Iterable
from typing import Any

import msgspec

from clarin.http.forms import FORM_MEDIA_TYPES, form_shape
from clarin.http.router import Auth, Route
from clarin.wire.common import ErrorEnvelope

_PARAM_RE = re.compile(r"[:*]([A-Za-z_][A-Za-z0-9_]*)")
REF_TEMPLATE = "#/components/schemas/{name}"

# Path parameters are UUIDs (handlers answer 400 for anything else) except these.
UUID_PARAM: dict[str, Any] = {"type": "string", "format": "uuid"}
PATH_PARAM_SCHEMAS: dict[str, dict[str, Any]] = {
    "key": {"type": "string"},  # /api/media/file/*key: a storage key
    "type": {"type": "string"},  # /api/tags/entity/:type/:id: the entity kind
    "kommoId": {"type": "string", "pattern": "^[0-9]{1,18}$"},  # a Kommo pipeline id
}


def openapi_path(path: str) -> str:
    return _PARAM_RE.sub(r"{\1}", path)


def operation_ids(routes: list[Route]) -> dict[Route, str]:
    """``<method>_<handler name>``; handler names that repeat (``batch_delete`` of leads, contacts and chats)
    fall back to ``<method>_<path>`` so every operationId stays unique, as OpenAPI requires."""
    base = {route: f"{route.method.lower()}_{route.name}" for route in routes}
    counts = Counter(base.values())
    return {
        route: name if counts[name] == 1
        else route.method.lower() + "_" + re.sub(r"[^a-z0-9]+", "_", route.path.lower()).strip("_")
        for route, name in base.items()
    }


def build_openapi(routes: Iterable[Route], *, title: str = "Clarin CRM API", version: str = "0.1.0") -> dict[str, Any]:
    routes = list(routes)
    ids = operation_ids(routes)
    types: list[Any] = [ErrorEnvelope]
    for route in routes:
        for candidate in (route.body, route.response):
            if candidate is not None and candidate not in types:
                types.append(candidate)
    query_parameters = _query_parameters([route.query for route in routes if route.query is not None])
    refs, components = msgspec.json.schema_components(types, ref_template=REF_TEMPLATE)
    ref_of = dict(zip(types, refs, strict=True))
    error_response = {
        "description": "Error envelope",
        "content": {"application/json": {"schema": ref_of[ErrorEnvelope]}},
    }
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        # A handler whose path parameter is not a UUID nor one of PATH_PARAM_SCHEMAS names its schema.
        path_schemas: dict[str, Any] = getattr(route.handler, "path_schemas", {})
        operation: dict[str, Any] = {
            "operationId": ids[route],
            "summary": route.summary or (route.handler.__doc__ or route.name).strip().splitlines()[0],
            "tags": list(route.tags),
            "parameters": [
                {"name": name, "in": "path", "required": True,
                 "schema": path_schemas.get(name) or PATH_PARAM_SCHEMAS.get(name, UUID_PARAM)}
                for name in _PARAM_RE.findall(route.path)
            ] + query_parameters.get(route.query, [])
            # Request headers a handler reads (e.g. Idempotency-Key, clarin.messaging.idempotency) it names itself.
            + list(getattr(route.handler, "header_parameters", ())),
            "responses": {
                str(route.status): {
                    "description": "Success",
                    "content": {"application/json": {"schema": ref_of[route.response]}}
                    if route.response is not None
                    # A handler answering another media type names it (e.g. /metrics: text/plain), or the
                    # several it may answer (the API docs' assets: JavaScript, CSS, PNG).
                    else {kind: {"schema": {"type": "string"}} for kind in _media_types(route.handler)}
                    if getattr(route.handler, "content_type", None)
                    else {"application/json": {"schema": {"type": "object"}}},
                },
                **{str(status): {**error_response, "description": description}
                   for status, description in sorted(route.responses.items())},
                "4XX": error_response,
                "5XX": error_response,
            },
        }
        if route.auth is not Auth.PUBLIC:
            operation["security"] = [{"bearerAuth": []}, {"cookieAuth": []}]
        if route.body is not None:
            # Flat body structs are also read from forms (clarin/http/forms.py); anything else a form or XML
            # body is sent to answers 415.
            media = ("application/json", *FORM_MEDIA_TYPES) if form_shape(route.body) else ("application/json",)
            operation["requestBody"] = {
                "required": False,
                "content": {kind: {"schema": ref_of[route.body]} for kind in media},
            }
            operation["responses"].setdefault(
                "415", {**error_response, "description": "Unsupported Media Type (XML; a form for a nested body)"})
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = operation
    _add_links(routes, ids, paths)
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


def _media_types(handler: Any) -> tuple[str, ...]:
    kinds = handler.content_type
    return (kinds,) if isinstance(kinds, str) else tuple(kinds)


def _query_parameters(types: list[Any]) -> dict[Any, list[dict[str, Any]]]:
    """The ``in: query`` parameters of each route's query struct (clarin/wire/queries.py): one per field, in
    field order, with the field's msgspec schema (``X | None`` → ``X``: an absent parameter is the null),
    its description, and ``required`` only for fields without a default. Lists are ``style: form,
    explode: true`` arrays (``?tag_ids=a&tag_ids=b``; the handlers also split comma-separated values)."""
    unique = list(dict.fromkeys(types))
    if not unique:
        return {}
    refs, components = msgspec.json.schema_components(unique, ref_template=REF_TEMPLATE)
    out: dict[Any, list[dict[str, Any]]] = {}
    for kind, ref in zip(unique, refs, strict=True):
        struct = components[ref["$ref"].rsplit("/", 1)[-1]]
        required = set(struct.get("required", ()))
        parameters = []
        for name, field_schema in struct["properties"].items():
            schema = _without_null(field_schema)
            if "$ref" in str(schema):
                raise TypeError(f"{kind.__name__}.{name}: a query parameter must be a scalar or a list of scalars")
            parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
            if "description" in schema:
                parameter["description"] = schema.pop("description")
            parameter["schema"] = schema
            if schema.get("type") == "array":
                parameter.update(style="form", explode=True)
            parameters.append(parameter)
        out[kind] = parameters
    return out


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    schema = dict(schema)
    options = [option for option in schema.pop("anyOf", ()) if option != {"type": "null"}]
    if len(options) == 1:
        schema.update(options[0])
    elif options:
        schema["anyOf"] = options
    if schema.get("default", 0) is None:
        del schema["default"]
    return schema


def _created_id_field(response: Any) -> str | None:
    """The envelope field holding the created record (``{"lead": {"id": ...}}`` → ``lead``), if any."""
    if response is None or not isinstance(response, type) or not issubclass(response, msgspec.Struct):
        return None
    for field in msgspec.structs.fields(response):
        for kind in typing.get_args(field.type) or (field.type,):  # ``Device | None`` → ``Device``
            if isinstance(kind, type) and issubclass(kind, msgspec.Struct) and "id" in kind.__struct_fields__:
                return field.encode_name
    return None


def _add_links(routes: list[Route], ids: dict[Route, str], paths: dict[str, dict[str, Any]]) -> None:
    """OpenAPI links from each create operation (``POST <collection>`` answering 201 with the record) to
    the operations on ``<collection>/{param}...``, so stateful testing can follow created IDs."""
    for route in routes:
        if route.method != "POST" or route.status != 201:
            continue
        envelope = _created_id_field(route.response)
        if envelope is None:
            continue
        collection = openapi_path(route.path).rstrip("/")
        request_params = _PARAM_RE.findall(route.path)
        links: dict[str, Any] = {}
        for target in routes:
            target_path = openapi_path(target.path)
            if not target_path.startswith(collection + "/{"):
                continue
            created = target_path[len(collection) + 2:].split("}", 1)[0]
            parameters = {created: f"$response.body#/{envelope}/id"}
            parameters.update({name: f"$request.path.{name}" for name in request_params if name != created})
            links[ids[target]] = {"operationId": ids[target], "parameters": parameters}
        if links:
            paths[openapi_path(route.path)][route.method.lower()]["responses"][str(route.status)]["links"] = links
