"""GET /api/openapi.json documents every mounted route with its bodies, query parameters and the error envelope."""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
from dataclasses import dataclass, field
from typing import Any

import httpx

from clarin.app import app
from clarin.crm import contacts_routes, leads_routes, tags_routes
from clarin.http.forms import form_shape
from clarin.http.openapi import build_openapi, openapi_path


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


# -- query parameters: what the handlers read is what the document declares ---------------------------------
#
# A handler reads its query string through the Request (`req.query_str("x")`, `query_int`, `query_bool`,
# `query_list`, `req.query.get("x")`, `req.query["x"]`, `"x" in req.query`), directly or in a helper it
# hands `req` to (`page_params(req, ...)`, `list_window(req, ...)`, `_event_id(req)` ...). The scanner below
# parses the handler's source (unwrapping decorators such as @cached_read), collects the literal names of
# those reads, and follows every call that passes the request on: a plain function of the clarin package is
# scanned the same way under the parameter name it receives the request as. Anything it cannot follow --
# a read whose name is not a string literal, any other use of `req.query`/`req.query_string`, or the request
# handed to a callee it cannot resolve -- is a "dynamic" read and must be listed in DYNAMIC_READS with the
# names it stands for and the reason, so nothing slips through unseen.

QUERY_METHODS = frozenset({"query_str", "query_int", "query_bool", "query_list"})

# Function (module.qualname) -> (names it reads without literals, why).
DYNAMIC_READS: dict[str, tuple[tuple[str, ...], str]] = {
    "clarin.crm.leads_routes.list_leads": (
        leads_routes.PAGED_PARAMS,
        "`any(name in req.query for name in PAGED_PARAMS)`: any of them switches to the paged mode",
    ),
}
# (method, path) -> {name read but deliberately not documented: why}.
UNDOCUMENTED_READS: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/api/events/upcoming-actions"): {
        "offset": "page_params reads it, but the route answers the soonest actions and ignores it",
    },
}


@dataclass
class QueryReads:
    names: set[str] = field(default_factory=set)
    dynamic: set[str] = field(default_factory=set)  # functions with reads the scanner cannot name


def _is_name(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _is_query(node: ast.AST, req: str) -> bool:
    """``<req>.query``"""
    return isinstance(node, ast.Attribute) and node.attr == "query" and _is_name(node.value, req)


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _resolve(node: ast.AST, scope: dict[str, Any]) -> Any:
    """The object a callee expression (``name`` or ``module.attr...``) names in the function's globals."""
    if isinstance(node, ast.Name):
        return scope.get(node.id)
    if isinstance(node, ast.Attribute):
        owner = _resolve(node.value, scope)
        return getattr(owner, node.attr, None) if owner is not None else None
    return None


def query_reads(func: Any, req: str | None = None, _seen: set[tuple[Any, str]] | None = None) -> QueryReads:
    """Query names ``func`` (and the helpers it passes the request to) reads; ``req``: its request parameter
    (the first one for a handler)."""
    func = inspect.unwrap(func)
    tree = ast.parse(textwrap.dedent(inspect.getsource(func))).body[0]
    assert isinstance(tree, ast.FunctionDef | ast.AsyncFunctionDef)
    params = [arg.arg for arg in tree.args.posonlyargs + tree.args.args]
    req = req or params[0]
    seen = _seen if _seen is not None else set()
    seen.add((func, req))
    where = f"{func.__module__}.{func.__qualname__}"
    reads = QueryReads()
    understood: set[int] = set()  # ids of the `<req>.query` nodes that belong to a recognised read

    def read(name_node: ast.AST | None) -> None:
        name = _literal(name_node)
        if name is None:
            reads.dynamic.add(where)
        else:
            reads.names.add(name)

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in QUERY_METHODS and _is_name(node.func.value, req):
                read(node.args[0] if node.args else None)
            elif node.func.attr == "get" and _is_query(node.func.value, req):
                understood.add(id(node.func.value))
                read(node.args[0] if node.args else None)
        if isinstance(node, ast.Subscript) and _is_query(node.value, req):
            understood.add(id(node.value))
            read(node.slice)
        if (isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.In | ast.NotIn)
                and _is_query(node.comparators[0], req)):
            understood.add(id(node.comparators[0]))
            read(node.left)
        if isinstance(node, ast.Call):
            passed = [(index, None) for index, arg in enumerate(node.args) if _is_name(arg, req)]
            passed += [(None, kw.arg) for kw in node.keywords if _is_name(kw.value, req)]
            if not passed:
                continue
            callee = _resolve(node.func, func.__globals__)
            if not (inspect.isfunction(callee) and callee.__module__.startswith("clarin.")):
                reads.dynamic.add(f"{where} -> {ast.unparse(node.func)}")
                continue
            callee_params = inspect.signature(callee).parameters
            for index, keyword in passed:
                target = keyword or list(callee_params)[index]
                if (inspect.unwrap(callee), target) not in seen:
                    found = query_reads(callee, target, seen)
                    reads.names |= found.names
                    reads.dynamic |= found.dynamic
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr in ("query", "query_string") and _is_name(node.value, req)
                and id(node) not in understood):
            reads.dynamic.add(where)
    for function in reads.dynamic & DYNAMIC_READS.keys():
        reads.names |= set(DYNAMIC_READS[function][0])
    return reads


def _documented_query(operation: dict[str, Any]) -> set[str]:
    return {param["name"] for param in operation["parameters"] if param["in"] == "query"}


def test_every_query_parameter_read_is_documented() -> None:
    """Each route documents exactly the query names its handler reads: a new `req.query_*("x")` without a
    field in the route's query struct (clarin/wire/queries.py) fails here, and so does a stale field."""
    doc = build_openapi(app.router.routes)
    dynamic_seen: set[str] = set()
    problems: list[str] = []
    for route in app.router.routes:
        reads = query_reads(route.handler)
        dynamic_seen |= reads.dynamic
        unexplained = reads.dynamic - DYNAMIC_READS.keys()
        if unexplained:
            problems.append(f"{route.method} {route.path}: unscannable query reads in {sorted(unexplained)}")
        documented = _documented_query(doc["paths"][openapi_path(route.path)][route.method.lower()])
        exempt = UNDOCUMENTED_READS.get((route.method, route.path), {})
        assert set(exempt) <= reads.names - documented, (route, "stale UNDOCUMENTED_READS entry")
        if missing := reads.names - documented - set(exempt):
            problems.append(f"{route.method} {route.path}: reads {sorted(missing)} but does not document them")
        if stale := documented - reads.names:
            problems.append(f"{route.method} {route.path}: documents {sorted(stale)} but never reads them")
    assert not problems, "\n".join(problems)
    assert dynamic_seen >= DYNAMIC_READS.keys(), "stale DYNAMIC_READS entry"


def test_query_scanner_sees_helpers_and_dynamic_reads() -> None:
    """The scanner itself: reads through helpers are found, a non-literal read is reported."""
    assert query_reads(contacts_routes.list_contacts).names == {
        "search", "is_group", "device_id", "has_phone", "tags", "tag_ids", "limit", "offset",  # via list_window
        "cursor"}
    assert query_reads(tags_routes.list_tags).names == {"limit", "offset"}  # via page_params

    async def sneaky(req: Any) -> None:
        name = "x"
        req.query_str(name)

    assert query_reads(sneaky).dynamic == {f"{__name__}.{sneaky.__qualname__}"}


def test_query_parameters_follow_the_handlers_rules() -> None:
    """Lists are exploded form arrays (repeated parameters; the handlers also split commas), only
    ``filename`` of the presigned upload is required, and the deliberate 501 of that route is documented."""
    doc = build_openapi(app.router.routes)
    for methods in doc["paths"].values():
        for operation in methods.values():
            for param in operation["parameters"]:
                if param["in"] != "query":
                    continue
                assert param["description"], param
                assert "null" not in json.dumps(param["schema"]), param
                if param["schema"]["type"] == "array":
                    assert (param["style"], param["explode"]) == ("form", True), param
                assert param["required"] == (param["name"] == "filename"), param
    upload = doc["paths"]["/api/media/upload-url"]["get"]
    assert upload["responses"]["501"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorEnvelope")
    assert not [name for name in doc["components"]["schemas"] if name.endswith("Query")]


def test_documented_limit_defaults_are_the_handlers() -> None:
    """clarin/wire/queries.py spells each route's default ``limit`` as a literal (wire types import no
    services): pin them to the constants the handlers page with."""
    from clarin.admin import service as admin_service
    from clarin.campaigns import recipients
    from clarin.crm import events_routes, interactions, quick_replies, tags
    from clarin.http.paging import MAX_LIMIT
    from clarin.messaging import chats_routes, message_reads, scheduled
    from clarin.webhooks import service as webhooks
    from clarin.whatsapp import service as devices

    expected = {
        "/api/admin/accounts": admin_service.MAX_PAGE, "/api/admin/users": admin_service.MAX_PAGE,
        "/api/contacts": contacts_routes.CONTACTS_DEFAULT_LIMIT, "/api/chats": chats_routes.CHATS_DEFAULT_LIMIT,
        "/api/chats/{id}/messages": message_reads.MESSAGES_DEFAULT_LIMIT, "/api/leads": leads_routes.DEFAULT_PAGE,
        "/api/events": events_routes.EVENTS_DEFAULT_LIMIT,
        "/api/events/upcoming-actions": events_routes.UPCOMING_DEFAULT_LIMIT,
        "/api/events/{id}/participants": MAX_LIMIT, "/api/interactions": interactions.DEFAULT_LIMIT,
        "/api/contacts/{id}/interactions": interactions.DEFAULT_LIMIT,
        "/api/leads/{id}/interactions": interactions.DEFAULT_LIMIT,
        "/api/quick-replies": quick_replies.MAX_QUICK_REPLIES, "/api/tags": tags.MAX_TAGS,
        "/api/devices": devices.MAX_DEVICES_PAGE, "/api/campaigns/{id}/recipients": recipients.RECIPIENT_PAGE,
        "/api/webhooks": webhooks.LIST_DEFAULT, "/api/webhooks/{id}/deliveries": webhooks.DELIVERIES_DEFAULT,
        "/api/messages/scheduled": scheduled.PAGE_DEFAULT,
    }
    doc = build_openapi(app.router.routes)
    documented = {
        path: param["schema"]["default"]
        for path, methods in doc["paths"].items() for param in methods.get("get", {}).get("parameters", [])
        if param["in"] == "query" and param["name"] == "limit"
    }
    assert documented == expected


def test_request_media_types_follow_the_form_rule() -> None:
    """Flat body structs document the form media types clarin/http/forms.py reads, with the JSON schema;
    nested ones only JSON; every route with a body documents the 415 (XML, a form for a nested body)."""
    doc = build_openapi(app.router.routes)
    forms = ["application/json", "application/x-www-form-urlencoded", "multipart/form-data"]
    for route in app.router.routes:
        if route.body is None:
            continue
        operation = doc["paths"][openapi_path(route.path)][route.method.lower()]
        content = operation["requestBody"]["content"]
        assert list(content) == (forms if form_shape(route.body) else forms[:1]), (route.method, route.path)
        assert len({json.dumps(media["schema"]) for media in content.values()}) == 1
        assert operation["responses"]["415"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/ErrorEnvelope")
    login = doc["paths"]["/api/auth/login"]["post"]["requestBody"]["content"]
    campaign = doc["paths"]["/api/campaigns"]["post"]["requestBody"]["content"]
    assert list(login) == forms and list(campaign) == forms[:1]
