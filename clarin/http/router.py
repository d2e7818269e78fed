"""A small segment-trie router.

Rules (from the dashboard's expectations): paths match case-insensitively, a trailing slash is
optional, static segments beat parameters (``/leads/batch`` before ``/leads/:id``), a trailing
``*name`` segment captures the rest of the path. A path that exists with other methods gives 405.
"""

from __future__ import annotations

from enum import Enum
from typing import Any
from urllib.parse import unquote


class Auth(Enum):
    PUBLIC = "public"
    USER = "user"
    SUPER_ADMIN = "super_admin"


class Route:
    __slots__ = (
        "auth", "body", "body_error", "handler", "method", "name", "path", "query", "response", "responses",
        "status", "summary", "tags",
    )

    def __init__(
        self,
        method: str,
        path: str,
        handler: Any,
        *,
        body: Any = None,
        body_error: str = "Invalid request",
        query: Any = None,
        response: Any = None,
        responses: dict[int, str] | None = None,
        status: int = 200,
        auth: Auth = Auth.USER,
        summary: str = "",
        tags: tuple[str, ...] = (),
    ) -> None:
        self.method = method.upper()
        self.path = path
        self.handler = handler
        self.body = body
        self.body_error = body_error
        self.query = query
        self.response = response
        # Statuses worth documenting on their own (error envelope), status → description; e.g. a deliberate 501.
        self.responses = responses or {}
        self.status = status
        self.auth = auth
        self.summary = summary
        self.tags = tags
        self.name = getattr(handler, "__name__", path)

    def __repr__(self) -> str:
        return f"<Route {self.method} {self.path}>"


class NotFound(Exception):
    pass


class MethodNotAllowed(Exception):
    def __init__(self, allowed: list[str]) -> None:
        super().__init__(", ".join(allowed))
        self.allowed = allowed


class _Node:
    __slots__ = ("param", "routes", "static", "wildcard")

    def __init__(self) -> None:
        self.static: dict[str, _Node] = {}
        self.param: tuple[str, _Node] | None = None
        self.wildcard: tuple[str, dict[str, Route]] | None = None
        self.routes: dict[str, Route] = {}


def split_path(path: str) -> list[str]:
    return [segment for segment in path.strip("/").split("/") if segment] if path not in ("", "/") else []


class Router:
    def __init__(self) -> None:
        self._root = _Node()
        self.routes: list[Route] = []

    def add(self, route: Route) -> None:
        node = self._root
        segments = split_path(route.path)
        for index, segment in enumerate(segments):
            if segment.startswith("*"):
                if index != len(segments) - 1:
                    raise ValueError(f"wildcard must be last in {route.path}")
                if node.wildcard is None:
                    node.wildcard = (segment[1:], {})
                elif node.wildcard[0] != segment[1:]:
                    raise ValueError(f"conflicting wildcard names at {route.path}")
                self._register(node.wildcard[1], route)
                self.routes.append(route)
                return
            if segment.startswith(":") or segment.startswith("{"):
                name = segment.strip(":{}")
                if node.param is None:
                    node.param = (name, _Node())
                elif node.param[0] != name:
                    raise ValueError(f"conflicting parameter names {node.param[0]!r}/{name!r} at {route.path}")
                node = node.param[1]
            else:
                node = node.static.setdefault(segment.lower(), _Node())
        self._register(node.routes, route)
        self.routes.append(route)

    @staticmethod
    def _register(table: dict[str, Route], route: Route) -> None:
        if route.method in table:
            raise ValueError(f"duplicate route {route.method} {route.path}")
        table[route.method] = route

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        segments = split_path(path)
        params: dict[str, str] = {}
        table = self._find(self._root, segments, 0, params)
        if table is None:
            raise NotFound
        route = table.get(method)
        if route is None and method == "HEAD":
            route = table.get("GET")
        if route is None:
            raise MethodNotAllowed(sorted(table))
        return route, params

    def _find(self, node: _Node, segments: list[str], index: int, params: dict[str, str]) -> dict[str, Route] | None:
        if index == len(segments):
            if node.routes:
                return node.routes
            return node.wildcard[1] if node.wildcard is not None else None
        segment = segments[index]
        child = node.static.get(segment.lower())
        if child is not None:
            found = self._find(child, segments, index + 1, params)
            if found is not None:
                return found
        if node.param is not None:
            name, child = node.param
            found = self._find(child, segments, index + 1, params)
            if found is not None:
                params[name] = unquote(segment)
                return found
        if node.wildcard is not None:
            name, table = node.wildcard
            params[name] = unquote("/".join(segments[index:]))
            return table
        return None
