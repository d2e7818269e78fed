"""Unit tests of the segment-trie router (no server needed), plus a check over the mounted app's routes."""

from __future__ import annotations

import re
import uuid

import pytest

from clarin.http.router import MethodNotAllowed, NotFound, Route, Router


async def _handler(req):  # type: ignore[no-untyped-def]
    return None


def _route(method: str, path: str) -> Route:
    return Route(method, path, _handler)


@pytest.fixture
def router() -> Router:
    r = Router()
    for method, path in [
        ("GET", "/"),
        ("GET", "/api/leads"),
        ("POST", "/api/leads"),
        ("GET", "/api/leads/:id"),
        ("PUT", "/api/leads/:id"),
        ("DELETE", "/api/leads/batch"),
        ("POST", "/api/leads/batch"),
        ("GET", "/api/leads/:id/notes"),
        ("GET", "/api/media/file/*path"),
        ("GET", "/api/users/:id/accounts/:account_id"),
    ]:
        r.add(_route(method, path))
    return r


def test_static_segment_beats_parameter(router: Router) -> None:
    route, params = router.match("POST", "/api/leads/batch")
    assert route.path == "/api/leads/batch"
    assert params == {}
    route, params = router.match("GET", "/api/leads/1234")
    assert route.path == "/api/leads/:id"
    assert params == {"id": "1234"}


def test_static_segment_with_other_methods_falls_back_to_the_param_route_only_for_deeper_paths(
    router: Router,
) -> None:
    # "/api/leads/batch" exists (DELETE, POST) but has no GET: it is a 405, not the :id route.
    with pytest.raises(MethodNotAllowed) as exc:
        router.match("GET", "/api/leads/batch")
    assert exc.value.allowed == ["DELETE", "POST"]
    # A deeper path that only exists under the parameter branch backtracks into it.
    route, params = router.match("GET", "/api/leads/batch/notes")
    assert route.path == "/api/leads/:id/notes"
    assert params == {"id": "batch"}


def test_paths_match_case_insensitively_but_params_keep_their_case(router: Router) -> None:
    route, _ = router.match("POST", "/API/Leads/BATCH")
    assert route.path == "/api/leads/batch"
    route, params = router.match("GET", "/Api/LEADS/AbCdEf")
    assert route.path == "/api/leads/:id"
    assert params == {"id": "AbCdEf"}


def test_trailing_slash_is_optional(router: Router) -> None:
    assert router.match("GET", "/api/leads/")[0].path == "/api/leads"
    assert router.match("GET", "/api/leads")[0].path == "/api/leads"
    assert router.match("POST", "/api/leads/batch/")[0].path == "/api/leads/batch"
    route, params = router.match("GET", "/api/leads/42/")
    assert (route.path, params) == ("/api/leads/:id", {"id": "42"})
    assert router.match("GET", "/")[0].path == "/"


def test_method_not_allowed_lists_the_allowed_methods(router: Router) -> None:
    with pytest.raises(MethodNotAllowed) as exc:
        router.match("PATCH", "/api/leads")
    assert exc.value.allowed == ["GET", "POST"]
    with pytest.raises(MethodNotAllowed) as exc:
        router.match("DELETE", "/api/leads/77")
    assert exc.value.allowed == ["GET", "PUT"]


def test_head_falls_back_to_get(router: Router) -> None:
    route, _ = router.match("HEAD", "/api/leads")
    assert route.method == "GET"


def test_unknown_paths_raise_not_found(router: Router) -> None:
    for path in ("/api", "/api/nope", "/api/leads/1/notes/2", "/api/users/1/accounts", "/x"):
        with pytest.raises(NotFound):
            router.match("GET", path)


def test_wildcard_captures_the_rest_of_the_path(router: Router) -> None:
    route, params = router.match("GET", "/api/media/file/chats/123@s.whatsapp.net/photo.jpg")
    assert route.path == "/api/media/file/*path"
    assert params == {"path": "chats/123@s.whatsapp.net/photo.jpg"}
    route, params = router.match("GET", "/api/media/file/a%20b/c%2Bd.png")
    assert params == {"path": "a b/c+d.png"}


def test_params_are_percent_decoded(router: Router) -> None:
    _, params = router.match("GET", "/api/leads/hello%20world")
    assert params == {"id": "hello world"}
    _, params = router.match("GET", "/api/users/u%2D1/accounts/%C3%B1and%C3%BA")
    assert params == {"id": "u-1", "account_id": "ñandú"}


def test_duplicate_route_is_rejected(router: Router) -> None:
    with pytest.raises(ValueError, match="duplicate route"):
        router.add(_route("GET", "/api/leads/:id"))
    with pytest.raises(ValueError, match="duplicate route"):
        router.add(_route("get", "/API/Leads/"))
    with pytest.raises(ValueError, match="duplicate route"):
        router.add(_route("GET", "/api/media/file/*path"))


def test_conflicting_parameter_and_wildcard_names_are_rejected(router: Router) -> None:
    with pytest.raises(ValueError, match="conflicting parameter names"):
        router.add(_route("PATCH", "/api/leads/:lead_id"))
    with pytest.raises(ValueError, match="conflicting wildcard names"):
        router.add(_route("POST", "/api/media/file/*rest"))
    with pytest.raises(ValueError, match="wildcard must be last"):
        router.add(_route("GET", "/api/files/*path/meta"))


def test_routes_are_recorded_in_order() -> None:
    r = Router()
    a, b = _route("GET", "/a"), _route("POST", "/b/:id")
    r.add(a)
    r.add(b)
    assert r.routes == [a, b]


def test_every_mounted_route_is_reachable_by_its_own_path() -> None:
    """The real application's table: each route matches itself, with its params captured."""
    from clarin.app import app

    routes = app.router.routes
    assert len(routes) > 30
    seen: set[tuple[str, str]] = set()
    for route in routes:
        key = (route.method, route.path.lower().rstrip("/"))
        assert key not in seen, f"duplicate mount {key}"
        seen.add(key)
        values: dict[str, str] = {}

        def fill(match: re.Match[str], values: dict[str, str] = values) -> str:
            values[match.group(1)] = str(uuid.uuid4())
            return values[match.group(1)]

        path = re.sub(r"[:*]([A-Za-z_]+)", fill, route.path)
        matched, params = app.router.match(route.method, path)
        assert matched is route, f"{route} matched {matched}"
        assert params == values
