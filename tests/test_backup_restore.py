"""docs/OPERATIONS.md's backup and restore, run as written: `pg_dump -Fc` of a live database plus a tar of the
local media directory, `pg_restore` into a fresh database and the tar into a fresh data directory, then a real
`clarin serve` on the restored copy serves the same rows, sessions and media (real PostgreSQL, real servers)."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import httpx

from tests import support

PAYLOAD = os.urandom(4096)


def _pg(*argv: str) -> None:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_pg_dump_and_media_tar_restore_into_a_fresh_database_that_serves_them(log_dir: Path, tmp_path: Path) -> None:
    source_name, source_dsn = support.create_database()
    target_name = f"clarin_test_{uuid.uuid4().hex[:12]}"
    try:
        env = support.base_env(source_dsn, LOG_LEVEL="INFO")
        with support.running_server(env, log_dir, "backup-source") as server:
            tenant = support.new_tenant(server.url, "admin-pass-123", "Backup")
            lead = httpx.post(server.url + "/api/leads", headers=tenant.headers, json={
                "name": "Restored Lead", "phone": "987 654 321", "email": "lead@example.test", "notes": "keep me"})
            assert lead.status_code == 201, lead.text
            upload = httpx.post(server.url + "/api/media/upload", headers=tenant.headers,
                                files={"file": ("contract.pdf", PAYLOAD, "application/pdf")})
            assert upload.status_code == 200, upload.text
            # Online backup, as the documentation gives it: the server keeps running meanwhile.
            dump = tmp_path / "clarin.dump"
            _pg("pg_dump", "-Fc", "-d", source_dsn, "-f", str(dump))
            media_tar = tmp_path / "media.tar.gz"
            _pg("tar", "-C", env["CLARIN_DATA_DIR"], "-czf", str(media_tar), "media")

        # Restore: a fresh, empty database and a fresh data directory.
        support.run_sql(support.PG_ADMIN_DSN, f"CREATE DATABASE {target_name}")
        target_dsn = support.dsn_for(target_name)
        _pg("pg_restore", "--no-owner", "--exit-on-error", "-d", target_dsn, str(dump))
        restored_env = support.base_env(target_dsn, LOG_LEVEL="INFO", JWT_SECRET=env["JWT_SECRET"])
        _pg("tar", "-C", restored_env["CLARIN_DATA_DIR"], "-xzf", str(media_tar))

        with support.running_server(restored_env, log_dir, "backup-restored") as restored:
            assert "migrations applied: none pending" in restored.logs()
            # The session made before the backup is still valid (sessions are rows; same JWT_SECRET).
            got = httpx.get(restored.url + f"/api/leads/{lead.json()['lead']['id']}", headers=tenant.headers)
            assert got.status_code == 200, got.text
            restored_lead = got.json()["lead"]
            original = lead.json()["lead"]
            for key in ("id", "name", "phone", "email", "notes", "jid", "stage_id", "pipeline_id"):
                assert restored_lead[key] == original[key], key
            media = httpx.get(restored.url + upload.json()["proxy_url"])
            assert media.status_code == 200 and media.content == PAYLOAD
            # And it is a working server, not a read-only copy: the admin logs in, a new lead is written.
            support.login(restored.url, "admin", "admin-pass-123")
            more = httpx.post(restored.url + "/api/leads", headers=tenant.headers,
                              json={"name": "After restore", "phone": "987 654 322"})
            assert more.status_code == 201, more.text
        rows = support.run_sql(target_dsn, "SELECT count(*) AS n FROM leads WHERE account_id::text = $1",
                               [tenant.account_id])
        assert rows == [{"n": 2}]
        versions = support.run_sql(target_dsn, "SELECT count(*) AS n FROM schema_migrations")[0]["n"]
        assert versions == len(list((support.ROOT / "sql" / "migrations").glob("*.sql")))
    finally:
        support.drop_database(source_name)
        support.drop_database(target_name)
