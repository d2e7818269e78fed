"""Item 12 (hardening): media keys are unguessable. The legacy avatar form ``<account>/avatars/<phone>.jpg``
is refused by the public proxy even when the object is still on disk, uploads (uuid4 names) keep working in
any folder, and migration 0005 unlinks contacts from legacy avatar keys so their picture is fetched again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clarin.db.migrate import discover, migrate
from clarin.db.pool import Database
from tests import support
from tests.conftest import Tenant

JPEG = b"\xff\xd8\xff\xe0legacy-avatar"


def _put_local(server_env: dict[str, str], key: str, data: bytes) -> None:
    """An object written straight into the shared server's local media root, as an older release left it."""
    path = Path(server_env["CLARIN_DATA_DIR"]) / "media" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_legacy_guessable_avatar_key_is_refused_even_when_the_file_exists(
    client: httpx.Client, tenant: Tenant, server_env: dict[str, str]
) -> None:
    phone = "51987" + str(uuid.uuid4().int)[:6]
    legacy = f"{tenant.account_id}/avatars/{phone}.jpg"
    current = f"{tenant.account_id}/avatars/{phone}-{uuid.uuid4().hex}.jpg"
    _put_local(server_env, legacy, JPEG)
    _put_local(server_env, current, JPEG)
    refused = client.get(f"/api/media/file/{legacy}")
    assert refused.status_code == 404 and refused.json()["error"] == "File not found"
    missing = client.get(f"/api/media/file/{tenant.account_id}/avatars/51000000000.jpg")
    assert (missing.status_code, missing.json()) == (refused.status_code, refused.json())  # no existence oracle
    served = client.get(f"/api/media/file/{current}")
    assert served.status_code == 200 and served.content == JPEG


def test_uploads_into_the_avatars_folder_are_not_mistaken_for_legacy_keys(client: httpx.Client, tenant: Tenant) -> None:
    response = client.post("/api/media/upload", headers=tenant.headers, data={"folder": "avatars"},
                           files={"file": ("123.jpg", JPEG, "image/jpeg")})
    assert response.status_code == 200, response.text
    proxy = response.json()["proxy_url"]
    assert proxy != f"/api/media/file/{tenant.account_id}/avatars/123.jpg"
    served = client.get(proxy)
    assert served.status_code == 200 and served.content == JPEG


# -- migration 0005 ---------------------------------------------------------------------------------
@pytest.fixture
def scratch_db() -> Iterator[str]:
    name, dsn = support.create_database()
    try:
        yield dsn
    finally:
        support.drop_database(name)


def _migrate(dsn: str, below: str | None = None) -> None:
    migrations = [m for m in discover() if below is None or m.version < below]

    async def run() -> None:
        db = Database(dsn, pool_size=2)
        try:
            await migrate(db, migrations)
        finally:
            db.close()

    asyncio.run(run())


def test_migration_0005_clears_only_legacy_avatar_urls(scratch_db: str) -> None:
    _migrate(scratch_db, below="0005")
    account = uuid.uuid4()
    support.run_sql(scratch_db, "INSERT INTO accounts (id, name) VALUES ($1, 'Legacy')", [account])
    urls = {
        "legacy-phone": f"/api/media/file/{account}/avatars/51987654321.jpg",
        "legacy-group": f"/api/media/file/{account}/avatars/51987654321-1600000000.jpg",
        "tokenised": f"/api/media/file/{account}/avatars/51987654321-{uuid.uuid4().hex}.jpg",
        "upload": f"/api/media/file/{account}/avatars/{uuid.uuid4()}_me.jpg",
        "external": "https://cdn.example.test/avatars/51987654321.jpg",
    }
    for jid, url in urls.items():
        support.run_sql(scratch_db, "INSERT INTO contacts (account_id, jid, avatar_url) VALUES ($1, $2, $3)",
                        [account, jid, url])
    _migrate(scratch_db)
    rows = support.run_sql(scratch_db, "SELECT jid, avatar_url FROM contacts WHERE account_id = $1", [account])
    after = {row["jid"]: row["avatar_url"] for row in rows}
    assert after == {**urls, "legacy-phone": None, "legacy-group": None}
