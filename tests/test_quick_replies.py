"""Quick replies R101–R104 against a real server and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests import support

REPLY_KEYS = {"id", "account_id", "shortcut", "title", "body", "created_at", "updated_at"}


# -- helpers ------------------------------------------------------------------------------------------
@contextmanager
def socket(server: Any, tenant: Any) -> Iterator[ClientConnection]:
    # close_timeout: the server does not answer a client's close frame (reported to the lead); don't wait 10 s.
    with connect(f"{server.ws_url}?token={tenant.token}", close_timeout=0.2) as ws:
        ws.send('{"event":"ping"}')  # the pong proves the socket is registered before we trigger anything
        assert json.loads(ws.recv(timeout=5)) == {"event": "pong"}
        yield ws


def next_event(ws: ClientConnection, name: str, timeout: float = 5) -> dict[str, Any]:
    while True:
        message = json.loads(ws.recv(timeout=timeout))
        if message.get("event") == name:
            return message


def assert_silent(ws: ClientConnection) -> None:
    with pytest.raises(TimeoutError):
        ws.recv(timeout=0.5)


def create_reply(client: httpx.Client, tenant: Any, shortcut: str, title: str = "Título", body: str = "Hola"
                 ) -> dict[str, Any]:
    response = client.post("/api/quick-replies", json={"shortcut": shortcut, "title": title, "body": body},
                           headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()["quick_reply"]


def list_replies(client: httpx.Client, tenant: Any) -> list[dict[str, Any]]:
    response = client.get("/api/quick-replies", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"success", "quick_replies"} and body["success"] is True
    return body["quick_replies"]


def error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["error"] == message, body


# -- tests --------------------------------------------------------------------------------------------
def test_create_and_list_ordered_by_shortcut(client: httpx.Client, tenant: Any) -> None:
    assert list_replies(client, tenant) == []
    response = client.post(
        "/api/quick-replies",
        json={"shortcut": "/saludo", "title": "Saludo", "body": "  Hola {{nombre}}\n"},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"success", "quick_reply"} and body["success"] is True
    reply = body["quick_reply"]
    assert set(reply) == REPLY_KEYS
    assert (reply["shortcut"], reply["title"], reply["body"], reply["account_id"]) == (
        "/saludo", "Saludo", "  Hola {{nombre}}\n", tenant.account_id)
    create_reply(client, tenant, "/adios")
    create_reply(client, tenant, "/precio")
    assert [r["shortcut"] for r in list_replies(client, tenant)] == ["/adios", "/precio", "/saludo"]
    assert list_replies(client, tenant)[2] == reply


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"title": "t", "body": "b"}, "Shortcut and body are required"),
        ({"shortcut": "  ", "title": "t", "body": "b"}, "Shortcut and body are required"),
        ({"shortcut": "/x", "title": "t", "body": ""}, "Shortcut and body are required"),
        ({"shortcut": "/x", "title": "t", "body": " \n "}, "Shortcut and body are required"),
        ({"shortcut": "/x", "body": "b"}, "Title is required"),
        ({"shortcut": "/" * 101, "title": "t", "body": "b"}, "Shortcut is too long (max 100 characters)"),
        ({"shortcut": "/x", "title": "t" * 256, "body": "b"}, "Title is too long (max 255 characters)"),
        ({"shortcut": "/x", "title": "t", "body": "a\u0000"}, "Request contains invalid characters"),
        ({"shortcut": 1, "title": "t", "body": "b"}, "Invalid request"),
    ],
)
def test_create_validation(client: httpx.Client, tenant: Any, payload: dict[str, Any], message: str) -> None:
    error(client.post("/api/quick-replies", json=payload, headers=tenant.headers), 400, message)
    assert list_replies(client, tenant) == []


def test_update_is_partial_and_returns_stored_row(client: httpx.Client, tenant: Any) -> None:
    reply = create_reply(client, tenant, "/uno", "Uno", "Cuerpo uno")
    response = client.put(f"/api/quick-replies/{reply['id']}", json={"title": "Nuevo"}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"success", "quick_reply"}
    updated = body["quick_reply"]
    assert set(updated) == REPLY_KEYS
    assert (updated["shortcut"], updated["title"], updated["body"]) == ("/uno", "Nuevo", "Cuerpo uno")
    assert (updated["id"], updated["account_id"], updated["created_at"]) == (
        reply["id"], tenant.account_id, reply["created_at"])

    updated = client.put(f"/api/quick-replies/{reply['id']}", json={"shortcut": "/dos", "body": "Otro"},
                         headers=tenant.headers).json()["quick_reply"]
    assert (updated["shortcut"], updated["title"], updated["body"]) == ("/dos", "Nuevo", "Otro")
    assert list_replies(client, tenant) == [updated]


def test_update_errors(client: httpx.Client, tenant: Any) -> None:
    reply = create_reply(client, tenant, "/uno")
    url = f"/api/quick-replies/{reply['id']}"
    error(client.put(url, json={"shortcut": ""}, headers=tenant.headers), 400, "Shortcut cannot be empty")
    error(client.put(url, json={"title": " "}, headers=tenant.headers), 400, "Title cannot be empty")
    error(client.put(url, json={"body": ""}, headers=tenant.headers), 400, "Body cannot be empty")
    error(client.put(url, content=b"{", headers=tenant.headers), 400, "Invalid request")
    error(client.put("/api/quick-replies/nope", json={"title": "x"}, headers=tenant.headers),
          400, "Invalid quick reply ID")
    error(client.put(f"/api/quick-replies/{uuid.uuid4()}", json={"title": "x"}, headers=tenant.headers),
          404, "Quick reply not found")
    assert list_replies(client, tenant) == [reply]


def test_delete(client: httpx.Client, tenant: Any) -> None:
    reply = create_reply(client, tenant, "/borrar")
    keep = create_reply(client, tenant, "/queda")
    response = client.delete(f"/api/quick-replies/{reply['id']}", headers=tenant.headers)
    assert response.status_code == 200 and response.json() == {"success": True}
    assert list_replies(client, tenant) == [keep]
    error(client.delete(f"/api/quick-replies/{reply['id']}", headers=tenant.headers), 404, "Quick reply not found")
    error(client.delete("/api/quick-replies/123", headers=tenant.headers), 400, "Invalid quick reply ID")


def test_events_reach_only_the_same_account(client: httpx.Client, make_tenant: Any, server: Any) -> None:
    tenant, other = make_tenant(), make_tenant()
    with socket(server, tenant) as ws, socket(server, other) as other_ws:
        reply = create_reply(client, tenant, "/evento")
        assert next_event(ws, "quick_reply_update") == {
            "event": "quick_reply_update", "account_id": tenant.account_id,
            "data": {"action": "created", "quick_reply_id": reply["id"]},
        }
        client.put(f"/api/quick-replies/{reply['id']}", json={"body": "x"}, headers=tenant.headers)
        assert next_event(ws, "quick_reply_update")["data"] == {"action": "updated", "quick_reply_id": reply["id"]}
        client.delete(f"/api/quick-replies/{reply['id']}", headers=tenant.headers)
        assert next_event(ws, "quick_reply_update")["data"] == {"action": "deleted", "quick_reply_id": reply["id"]}
        assert_silent(other_ws)


def test_other_tenant_cannot_see_or_touch_quick_replies(
    client: httpx.Client, make_tenant: Any, database: str
) -> None:
    owner, intruder = make_tenant(), make_tenant()
    reply = create_reply(client, owner, "/privado", "Privado", "Secreto")
    own = create_reply(client, intruder, "/mio")
    h = intruder.headers
    error(client.put(f"/api/quick-replies/{reply['id']}", json={"body": "hack"}, headers=h),
          404, "Quick reply not found")
    error(client.delete(f"/api/quick-replies/{reply['id']}", headers=h), 404, "Quick reply not found")
    assert list_replies(client, intruder) == [own]
    assert list_replies(client, owner) == [reply]
    rows = support.run_sql(database, "SELECT body FROM quick_replies WHERE id = $1", [uuid.UUID(reply["id"])])
    assert rows == [{"body": "Secreto"}]
