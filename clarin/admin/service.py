"""Super-admin rules for tenants and users (spec §4.18–4.19), with the original's quirks fixed:
partial updates, 404 for unknown IDs, 409 for duplicates, and guarded deletes in one statement.

Changes that take access away end every session of the user at once on every worker
(``state.auth_guard``, which also closes their open WebSockets): user toggle, password reset, role change,
membership removal or role change bump ``users.token_version`` (in SQL); a delete removes the user (and its
session rows); an account toggle is checked per request through the account's ``is_active``."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from clarin.auth.passwords import MAX_PASSWORD_BYTES, hash_password, too_long
from clarin.db.errors import UniqueViolation
from clarin.db.queries import query
from clarin.db.seed import ensure_default_pipeline
from clarin.http.errors import HTTPError, check_text
from clarin.state import AppState
from clarin.wire.admin import (
    Account,
    AccountCreateBody,
    AccountUpdateBody,
    AdminUser,
    LinkAccountBody,
    UserAccountLink,
    UserCreateBody,
    UserUpdateBody,
)

Q_LIST_ACCOUNTS = query("admin_list_accounts")
Q_GET_ACCOUNT = query("admin_get_account")
Q_CREATE_ACCOUNT = query("admin_create_account")
Q_UPDATE_ACCOUNT = query("admin_update_account")
Q_TOGGLE_ACCOUNT = query("admin_toggle_account")
Q_ACCOUNT_USAGE = query("admin_account_usage")
Q_DELETE_ACCOUNT = query("admin_delete_account")
Q_LIST_USERS = query("admin_list_users")
Q_ACCOUNT_EXISTS = query("admin_account_exists")
Q_CREATE_USER = query("admin_create_user")
Q_UPDATE_USER = query("admin_update_user")
Q_TOGGLE_USER = query("admin_toggle_user")
Q_SET_PASSWORD = query("admin_set_user_password")
Q_USER_FLAGS = query("admin_get_user_flags")
Q_DELETE_USER = query("admin_delete_user")
Q_LIST_LINKS = query("admin_list_user_accounts")
Q_USER_EXISTS = query("admin_user_exists")
Q_LINK = query("admin_link_user_account")
Q_CLEAR_DEFAULTS = query("admin_clear_other_defaults")
Q_SET_DEFAULT = query("admin_set_default_link")
Q_UNLINK = query("admin_unlink_user_account")
Q_BUMP_TOKEN_VERSION = query("admin_bump_token_version")
Q_MEMBERSHIP_ROLE = query("admin_membership_role")

MAX_PAGE = 1000
NAME_MAX = 255  # accounts.name/slug, users.username/email/display_name are varchar(255)
PLAN_MAX = 50  # accounts.plan is varchar(50)
INT4_MAX = 2_147_483_647  # accounts.max_devices is an integer column
ADMIN_ROLES = frozenset({"admin", "super_admin"})
VALID_ROLES = frozenset({"super_admin", "admin", "agent"})
ACCOUNT_NOT_FOUND = "Account not found"
USER_NOT_FOUND = "User not found"
# bcrypt ignores everything past 72 bytes: refused rather than silently truncated (clarin.auth.passwords).
PASSWORD_TOO_LONG = f"Password must be at most {MAX_PASSWORD_BYTES} bytes"


def page(limit: int, offset: int) -> tuple[int, int]:
    return (MAX_PAGE if limit <= 0 else min(limit, MAX_PAGE)), max(offset, 0)


def parse_id(raw: str, message: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except (ValueError, TypeError):
        raise HTTPError(400, message) from None


# -- accounts ---------------------------------------------------------------------------------------
async def list_accounts(state: AppState, limit: int, offset: int) -> list[Account]:
    rows = await state.db.fetch(Q_LIST_ACCOUNTS, page(limit, offset))
    return msgspec.convert(rows, list[Account])


async def get_account(state: AppState, account_id: uuid.UUID) -> Account:
    row = await state.db.fetch_row(Q_GET_ACCOUNT, [account_id])
    if row is None:
        raise HTTPError(404, ACCOUNT_NOT_FOUND)
    return msgspec.convert(row, Account)


async def create_account(state: AppState, body: AccountCreateBody) -> Account:
    name = body.name.strip()
    if not name:
        raise HTTPError(400, "Name is required")
    max_devices = body.max_devices if body.max_devices > 0 else 5
    _check_account_fields(name, body.slug.strip(), body.plan.strip(), max_devices)
    async with state.db.transaction() as tx:
        row = await tx.fetch_row(Q_CREATE_ACCOUNT, [name, body.slug.strip(), body.plan.strip() or "basic", max_devices])
        assert row is not None
        # New tenants start with the default pipeline, so their first lead has a stage to land in.
        await ensure_default_pipeline(tx, uuid.UUID(str(row["id"])))
    return msgspec.convert(row, Account)


async def update_account(state: AppState, account_id: uuid.UUID, body: AccountUpdateBody) -> Account:
    if body.name is not None and not body.name.strip():
        raise HTTPError(400, "Name is required")
    if body.max_devices is not None and body.max_devices <= 0:
        raise HTTPError(400, "max_devices must be positive")
    _check_account_fields(_strip(body.name), _strip(body.slug), _strip(body.plan), body.max_devices)
    row = await state.db.fetch_row(
        Q_UPDATE_ACCOUNT,
        [account_id, _strip(body.name), _strip(body.slug), _strip(body.plan), body.max_devices],
    )
    if row is None:
        raise HTTPError(404, ACCOUNT_NOT_FOUND)
    return msgspec.convert(row, Account)


async def toggle_account(state: AppState, account_id: uuid.UUID) -> None:
    if await state.db.fetch_row(Q_TOGGLE_ACCOUNT, [account_id]) is None:
        raise HTTPError(404, ACCOUNT_NOT_FOUND)
    await state.auth_guard.revoke_account(account_id)


async def delete_account(state: AppState, account_id: uuid.UUID) -> None:
    async with state.db.transaction() as tx:
        usage = await tx.fetch_row(Q_ACCOUNT_USAGE, [account_id])
        exists = await tx.fetch_val(Q_ACCOUNT_EXISTS, [account_id])
        if not exists or usage is None:
            raise HTTPError(404, ACCOUNT_NOT_FOUND)
        if usage["devices"] > 0 or usage["chats"] > 0:
            raise HTTPError(
                400,
                "No se puede eliminar una cuenta que tiene dispositivos o chats. Elimine primero los dispositivos.",
            )
        if usage["users"] > 0:
            raise HTTPError(400, "No se puede eliminar una cuenta que tiene usuarios. Elimine primero los usuarios.")
        await tx.execute(Q_DELETE_ACCOUNT, [account_id])
    await state.auth_guard.revoke_account(account_id)


# -- users ------------------------------------------------------------------------------------------
async def list_users(state: AppState, account_filter: str, limit: int, offset: int) -> list[AdminUser]:
    account = parse_id(account_filter, "Invalid account_id") if account_filter else None
    rows = await state.db.fetch(Q_LIST_USERS, [account, *page(limit, offset)])
    return msgspec.convert(rows, list[AdminUser])


async def create_user(state: AppState, body: UserCreateBody) -> AdminUser:
    if not (body.username.strip() and body.email.strip() and body.password and body.account_id):
        raise HTTPError(400, "username, email, password, and account_id are required")
    account_id = parse_id(body.account_id, "Invalid account_id")
    role = _role(body.role) or "agent"
    _check_user_fields(body.username.strip(), body.email.strip(), body.display_name)
    if too_long(body.password):
        raise HTTPError(400, PASSWORD_TOO_LONG)
    if not await state.db.fetch_val(Q_ACCOUNT_EXISTS, [account_id]):
        raise HTTPError(404, ACCOUNT_NOT_FOUND)
    password_hash = await hash_password(body.password)
    try:
        row = await state.db.fetch_row(
            Q_CREATE_USER,
            [account_id, body.username.strip(), body.email.strip(), password_hash, body.display_name,
             role, role in ADMIN_ROLES],
        )
    except UniqueViolation as exc:
        raise HTTPError(409, _duplicate_user_message(exc)) from None
    return msgspec.convert(row, AdminUser)


async def update_user(state: AppState, user_id: uuid.UUID, body: UserUpdateBody) -> None:
    if body.username is not None and not body.username.strip():
        raise HTTPError(400, "username cannot be empty")
    if body.email is not None and not body.email.strip():
        raise HTTPError(400, "email cannot be empty")
    _check_user_fields(_strip(body.username), _strip(body.email), body.display_name)
    try:
        updated = await state.db.fetch_val(
            Q_UPDATE_USER,
            [user_id, _strip(body.username), _strip(body.email), body.display_name, _role(body.role)],
        )
    except UniqueViolation as exc:
        raise HTTPError(409, _duplicate_user_message(exc)) from None
    if updated is None:
        raise HTTPError(404, USER_NOT_FOUND)
    if body.role is not None and body.role.strip():
        await state.auth_guard.revoke_user(user_id)  # the SQL bumped token_version if the role changed


async def toggle_user(state: AppState, user_id: uuid.UUID) -> None:
    if await state.db.fetch_row(Q_TOGGLE_USER, [user_id]) is None:
        raise HTTPError(404, USER_NOT_FOUND)
    await state.auth_guard.revoke_user(user_id)


async def reset_password(state: AppState, user_id: uuid.UUID, password: str) -> None:
    if not password:
        raise HTTPError(400, "Password is required")
    if too_long(password):
        raise HTTPError(400, PASSWORD_TOO_LONG)
    if await state.db.fetch_val(Q_SET_PASSWORD, [user_id, await hash_password(password)]) is None:
        raise HTTPError(404, USER_NOT_FOUND)
    await state.auth_guard.revoke_user(user_id)


async def delete_user(state: AppState, actor_id: uuid.UUID, user_id: uuid.UUID) -> None:
    if user_id == actor_id:
        raise HTTPError(400, "No puedes eliminar tu propia cuenta de usuario")
    target = await state.db.fetch_row(Q_USER_FLAGS, [user_id])
    if target is None:
        raise HTTPError(404, USER_NOT_FOUND)
    if target["is_super_admin"]:
        raise HTTPError(400, "No se puede eliminar un super administrador")
    await state.db.execute(Q_DELETE_USER, [user_id])
    await state.auth_guard.revoke_user(user_id)


async def list_links(state: AppState, user_id: uuid.UUID) -> list[UserAccountLink]:
    if not await state.db.fetch_val(Q_USER_EXISTS, [user_id]):
        raise HTTPError(404, USER_NOT_FOUND)
    return msgspec.convert(await state.db.fetch(Q_LIST_LINKS, [user_id]), list[UserAccountLink])


async def link_account(state: AppState, user_id: uuid.UUID, body: LinkAccountBody) -> None:
    account_id = parse_id(body.account_id, "Invalid account_id")
    role = _role(body.role) or "agent"
    async with state.db.transaction() as tx:
        if not await tx.fetch_val(Q_USER_EXISTS, [user_id]):
            raise HTTPError(404, USER_NOT_FOUND)
        if not await tx.fetch_val(Q_ACCOUNT_EXISTS, [account_id]):
            raise HTTPError(404, ACCOUNT_NOT_FOUND)
        previous_role = await tx.fetch_val(Q_MEMBERSHIP_ROLE, [user_id, account_id])
        await tx.execute(Q_LINK, [user_id, account_id, role, body.is_default])
        if body.is_default:
            # One default membership per user: clearing the others in the same transaction.
            await tx.execute(Q_CLEAR_DEFAULTS, [user_id, account_id])
            await tx.execute(Q_SET_DEFAULT, [user_id, account_id])
        role_changed = previous_role is not None and previous_role != role
        if role_changed:
            await tx.execute(Q_BUMP_TOKEN_VERSION, [user_id])
    if role_changed:
        await state.auth_guard.revoke_user(user_id)


async def unlink_account(state: AppState, user_id: uuid.UUID, account_id: uuid.UUID) -> None:
    async with state.db.transaction() as tx:
        if await tx.fetch_val(Q_UNLINK, [user_id, account_id]) is None:
            raise HTTPError(404, "Membership not found")
        await tx.execute(Q_BUMP_TOKEN_VERSION, [user_id])
    await state.auth_guard.revoke_user(user_id)


def _check_account_fields(name: str | None, slug: str | None, plan: str | None, max_devices: int | None) -> None:
    for value, field, limit in ((name, "name", NAME_MAX), (slug, "slug", NAME_MAX), (plan, "plan", PLAN_MAX)):
        if value is not None:
            check_text(value, field, limit)
    if max_devices is not None and max_devices > INT4_MAX:
        raise HTTPError(400, "max_devices is too large")


def _check_user_fields(username: str | None, email: str | None, display_name: str | None) -> None:
    for value, field in ((username, "username"), (email, "email"), (display_name, "display_name")):
        if value is not None:
            check_text(value, field, NAME_MAX)


def _strip(value: str | None) -> str | None:
    return value.strip() if value is not None else None


def _role(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    role = value.strip()
    if role not in VALID_ROLES:
        raise HTTPError(400, "role must be one of super_admin, admin, agent")
    return role


def _duplicate_user_message(exc: Any) -> str:
    if "email" in exc.constraint:
        return "A user with this email already exists"
    return "A user with this username already exists"
