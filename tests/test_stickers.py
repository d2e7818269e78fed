"""Stickers R31–R34: recent sticker URLs from the account's messages and the saved collection, per tenant."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests import support


@pytest.fixture
def sc(server: support.ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=15) as c:
        yield c


def _chat(dsn: str, account_id: str) -> str:
    rows = support.run_sql(
        dsn, "INSERT INTO chats (account_id, jid, name) VALUES ($1, $2, 'Sticker fan') RETURNING id",
        [uuid.UUID(account_id), f"5199{uuid.uuid4().int % 10**7:07d}@s.whatsapp.net"],
    )
    return rows[0]["id"]


def _messages(dsn: str, account_id: str, chat_id: str, rows: list[tuple[str, str | None]]) -> None:
    """Insert (message_type, media_url) rows in one statement."""
    support.run_sql(
        dsn,
        """INSERT INTO messages (account_id, chat_id, message_id, message_type, media_url, "timestamp")
           SELECT $1, $2, m.id, m.kind, m.url, now() - (m.n || ' seconds')::interval
           FROM unnest($3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS m(id, kind, url, n)""",
        [uuid.UUID(account_id), uuid.UUID(chat_id), [uuid.uuid4().hex for _ in rows],
         [kind for kind, _ in rows], [url for _, url in rows]],
    )


def test_recent_stickers_distinct_sorted_and_scoped(sc: httpx.Client, make_tenant, database: str) -> None:  # type: ignore[no-untyped-def]
    me, other = make_tenant(), make_tenant()
    empty = sc.get("/api/stickers/recent", headers=me.headers)
    assert empty.status_code == 200
    assert empty.json() == {"stickers": [], "success": True}

    mine = _chat(database, me.account_id)
    theirs = _chat(database, other.account_id)
    base = f"/api/media/file/{me.account_id}/chats/x"
    _messages(database, me.account_id, mine, [
        ("sticker", f"{base}/b.webp"), ("sticker", f"{base}/a.webp"), ("sticker", f"{base}/b.webp"),
        ("sticker", f"{base}/c.webp"), ("sticker", ""), ("sticker", None),
        ("image", f"{base}/z-image.jpg"), ("text", None),
    ])
    _messages(database, other.account_id, theirs, [("sticker", "/api/media/file/other/zz.webp")])

    recent = sc.get("/api/stickers/recent", headers=me.headers).json()
    assert recent == {"stickers": [f"{base}/c.webp", f"{base}/b.webp", f"{base}/a.webp"], "success": True}
    assert sc.get("/api/stickers/recent", headers=other.headers).json()["stickers"] == ["/api/media/file/other/zz.webp"]


def test_recent_stickers_capped_at_50(sc: httpx.Client, tenant, database: str) -> None:  # type: ignore[no-untyped-def]
    chat = _chat(database, tenant.account_id)
    urls = [f"/api/media/file/{tenant.account_id}/chats/x/{i:03d}.webp" for i in range(60)]
    _messages(database, tenant.account_id, chat, [("sticker", url) for url in urls])
    stickers = sc.get("/api/stickers/recent", headers=tenant.headers).json()["stickers"]
    assert stickers == sorted(urls, reverse=True)[:50]


def test_saved_stickers_lifecycle_and_tenant_scope(sc: httpx.Client, make_tenant, database: str) -> None:  # type: ignore[no-untyped-def]
    me, other = make_tenant(), make_tenant()
    assert sc.get("/api/stickers/saved", headers=me.headers).json() == {"stickers": [], "success": True}

    first, second = "/api/media/file/a/first.webp", "/api/media/file/a/second.webp"
    for url in (first, second, first):  # saving twice is idempotent
        saved = sc.post("/api/stickers/saved", json={"media_url": url}, headers=me.headers)
        assert saved.status_code == 200
        assert saved.json() == {"success": True}
    assert sc.get("/api/stickers/saved", headers=me.headers).json()["stickers"] == [second, first]
    rows = support.run_sql(database, "SELECT count(*) AS n FROM saved_stickers WHERE account_id = $1",
                           [uuid.UUID(me.account_id)])
    assert rows[0]["n"] == 2

    # another tenant neither sees nor can remove my stickers
    assert sc.get("/api/stickers/saved", headers=other.headers).json()["stickers"] == []
    assert sc.request("DELETE", "/api/stickers/saved", json={"media_url": first}, headers=other.headers).status_code == 200
    assert sc.post("/api/stickers/saved", json={"media_url": first}, headers=other.headers).status_code == 200
    assert sc.get("/api/stickers/saved", headers=me.headers).json()["stickers"] == [second, first]
    assert sc.get("/api/stickers/saved", headers=other.headers).json()["stickers"] == [first]

    removed = sc.request("DELETE", "/api/stickers/saved", json={"media_url": second}, headers=me.headers)
    assert removed.status_code == 200 and removed.json() == {"success": True}
    assert sc.get("/api/stickers/saved", headers=me.headers).json()["stickers"] == [first]
    # removing something not saved still succeeds
    assert sc.request("DELETE", "/api/stickers/saved", json={"media_url": second}, headers=me.headers).status_code == 200


@pytest.mark.parametrize("method", ["POST", "DELETE"])
@pytest.mark.parametrize("body", [b"", b"{}", b'{"media_url": ""}', b'{"media_url": "   "}', b'{"media_url": 5}',
                                  b"not json", b"[]"])
def test_media_url_required(sc: httpx.Client, tenant, method: str, body: bytes) -> None:  # type: ignore[no-untyped-def]
    response = sc.request(method, "/api/stickers/saved", content=body,
                          headers={**tenant.headers, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert response.json()["error"] == "media_url is required"


def test_stickers_require_auth(sc: httpx.Client) -> None:
    assert sc.get("/api/stickers/recent").status_code == 401
    assert sc.get("/api/stickers/saved").status_code == 401
    assert sc.post("/api/stickers/saved", json={"media_url": "x"}).status_code == 401
