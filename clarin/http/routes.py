"""Route declaration: each feature module builds a ``RouteGroup`` the application mounts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clarin.http.router import Auth, Route

Handler = Callable[..., Any]


class RouteGroup:
    def __init__(self, *, tags: tuple[str, ...] = (), auth: Auth = Auth.USER) -> None:
        self.tags = tags
        self.auth = auth
        self.routes: list[Route] = []

    def route(self, method: str, path: str, **options: Any) -> Callable[[Handler], Handler]:
        options.setdefault("auth", self.auth)
        options.setdefault("tags", self.tags)

        def register(handler: Handler) -> Handler:
            self.routes.append(Route(method, path, handler, **options))
            return handler

        return register

    def get(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **options)

    def patch(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **options)
