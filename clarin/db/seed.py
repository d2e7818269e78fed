"""First-start data, idempotent: the default account, the super admin and the default pipeline.

Unlike the original, nothing is promoted or re-linked on every boot: once the admin user exists
the seed only makes sure its membership and the default pipeline are there.
"""

from __future__ import annotations

import logging
import uuid

from clarin.auth.passwords import hash_password
from clarin.config import Settings
from clarin.db.pool import Database
from clarin.db.queries import query

log = logging.getLogger("clarin.seed")

Q_FIND_USER = query("seed_find_user_by_username")
Q_INSERT_ACCOUNT = query("seed_insert_account")
Q_UPSERT_ADMIN = query("seed_upsert_admin")
Q_ENSURE_MEMBERSHIP = query("seed_ensure_membership")
Q_DEFAULT_PIPELINE_EXISTS = query("seed_default_pipeline_exists")
Q_CREATE_DEFAULT_PIPELINE = query("create_default_pipeline")
Q_ASSIGN_UNSTAGED = query("assign_unstaged_leads_to_default")


async def seed(db: Database, settings: Settings) -> None:
    async with db.transaction() as tx:
        existing = await tx.fetch_row(Q_FIND_USER, [settings.admin_user])
        if existing is not None:
            user_id, account_id = existing["id"], existing["account_id"]
        else:
            account_id = await tx.fetch_val(Q_INSERT_ACCOUNT)
            row = await tx.fetch_row(
                Q_UPSERT_ADMIN,
                [uuid.UUID(account_id), settings.admin_user, settings.admin_email,
                 await hash_password(settings.admin_password)],
            )
            assert row is not None
            user_id, account_id = row["id"], row["account_id"]
            log.info("seeded super admin %r", settings.admin_user)
        account = uuid.UUID(str(account_id))
        await tx.execute(Q_ENSURE_MEMBERSHIP, [uuid.UUID(str(user_id)), account])
        await ensure_default_pipeline(tx, account)


async def ensure_default_pipeline(executor, account_id: uuid.UUID) -> None:  # type: ignore[no-untyped-def]
    if not await executor.fetch_val(Q_DEFAULT_PIPELINE_EXISTS, [account_id]):
        await executor.fetch(Q_CREATE_DEFAULT_PIPELINE, [account_id])
        await executor.execute(Q_ASSIGN_UNSTAGED, [account_id])
