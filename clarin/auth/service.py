"""Login, session, profile and password rules."""

from __future__ import annotations

import time
import uuid
from email.utils import formatdate
from typing import Any

import msgspec

from clarin.auth.passwords import hash_password, verify_password
from clarin.auth.tokens import COOKIE_NAME, TOKEN_TTL_SECONDS, AuthContext, issue_token
from clarin.db.errors import UniqueViolation
from clarin.db.queries import query
from clarin.http.errors import HTTPError, check_text
from clarin.state import AppState
from clarin.wire.auth import Membership, SessionUser

Q_USER_BY_USERNAME = query("get_active_user_by_username")
Q_USER_BY_ID = query("get_user_by_id")
Q_MEMBERSHIPS = query("list_user_memberships")
Q_MEMBERSHIP = query("get_user_membership")
Q_ACCOUNT_SUMMARY = query("get_account_summary")
Q_UPDATE_PROFILE = query("update_user_profile")
Q_RENAME_ACCOUNT = query("rename_account")
Q_PASSWORD_HASH = query("get_user_password_hash")
Q_SET_PASSWORD = query("set_user_password")

INVALID_CREDENTIALS = "invalid credentials"
MIN_PASSWORD_BYTES = 8
TEXT_MAX = 255  # users.display_name/email and accounts.name are varchar(255)


async def memberships(state: AppState, user_id: uuid.UUID | str) -> list[Membership]:
    rows = await state.db.fetch(Q_MEMBERSHIPS, [_uuid(user_id)])
    return msgspec.convert(rows, list[Membership])


async def login(state: AppState, username: str, password: str) -> tuple[str, SessionUser, list[Membership]]:
    # PostgreSQL text cannot hold NUL: such a username cannot exist, and must not reach the driver.
    lookup = bool(username) and "\x00" not in username
    user = await state.db.fetch_row(Q_USER_BY_USERNAME, [username]) if lookup else None
    # Always run bcrypt, even for unknown users, so timing does not reveal which usernames exist.
    ok = await verify_password(password, user["password_hash"] if user else None)
    if user is None or not ok:
        raise HTTPError(401, INVALID_CREDENTIALS)
    links = await memberships(state, user["id"])
    active = next((m for m in links if m.is_default), None)
    account_id = active.account_id if active else user["account_id"]
    role = active.role if active else user["role"]
    account_name = active.account_name if active else user["account_name"]
    session = _session_user(user, account_id, role, account_name)
    return _token_for(state, session), session, links


async def switch_account(state: AppState, auth: AuthContext, raw_account_id: str) -> tuple[str, SessionUser]:
    try:
        target = uuid.UUID(raw_account_id)
    except ValueError:
        raise HTTPError(400, "Invalid account_id") from None
    user = await state.db.fetch_row(Q_USER_BY_ID, [auth.user_id])
    if user is None or not user["is_active"]:
        raise HTTPError(403, "user not found")
    link = await state.db.fetch_row(Q_MEMBERSHIP, [auth.user_id, target])
    if link is None:
        raise HTTPError(403, "no tiene acceso a esta cuenta")
    session = _session_user(user, str(target), link["role"], link["account_name"])
    return _token_for(state, session), session


async def me(state: AppState, auth: AuthContext) -> tuple[SessionUser, list[Membership]]:
    user = await state.db.fetch_row(Q_USER_BY_ID, [auth.user_id])
    if user is None:
        raise HTTPError(404, "User not found")
    links = await memberships(state, auth.user_id)
    token_account = str(auth.account_id)
    name = next((m.account_name for m in links if m.account_id == token_account), user["account_name"])
    return _session_user(user, token_account, user["role"], name), links


async def settings_view(state: AppState, auth: AuthContext) -> tuple[dict[str, Any], dict[str, Any] | None]:
    user = await state.db.fetch_row(Q_USER_BY_ID, [auth.user_id])
    if user is None:
        raise HTTPError(404, "User not found")
    account = await state.db.fetch_row(Q_ACCOUNT_SUMMARY, [auth.account_id])
    return user, account


async def update_profile(state: AppState, auth: AuthContext, name: str | None, email: str | None) -> None:
    if name:
        check_text(name, "name", TEXT_MAX)
    if email:
        check_text(email, "email", TEXT_MAX)
    try:
        updated = await state.db.fetch_val(Q_UPDATE_PROFILE, [auth.user_id, name or None, email or None])
    except UniqueViolation:
        raise HTTPError(409, "Email already in use") from None
    if updated is None:
        raise HTTPError(404, "User not found")


async def rename_account(state: AppState, auth: AuthContext, name: str | None) -> None:
    if not name:
        # Empty names are ignored, as in the original; the account must still exist.
        if await state.db.fetch_row(Q_ACCOUNT_SUMMARY, [auth.account_id]) is None:
            raise HTTPError(404, "Account not found")
        return
    check_text(name, "name", TEXT_MAX)
    if await state.db.fetch_val(Q_RENAME_ACCOUNT, [auth.account_id, name]) is None:
        raise HTTPError(404, "Account not found")


async def change_password(state: AppState, auth: AuthContext, current: str, new: str) -> None:
    if len(new.encode()) < MIN_PASSWORD_BYTES:
        raise HTTPError(400, "La contraseña debe tener al menos 8 caracteres")
    row = await state.db.fetch_row(Q_PASSWORD_HASH, [auth.user_id])
    if row is None:
        raise HTTPError(404, "User not found")
    if not await verify_password(current, row["password_hash"]):
        raise HTTPError(400, "Contraseña actual incorrecta")
    await state.db.execute(Q_SET_PASSWORD, [auth.user_id, await hash_password(new)])


def session_cookie(state: AppState, token: str) -> str:
    expires = formatdate(time.time() + TOKEN_TTL_SECONDS, usegmt=True)
    secure = "; Secure" if state.settings.production else ""
    return f"{COOKIE_NAME}={token}; Path=/; Expires={expires}; HttpOnly{secure}; SameSite=Lax"


def cleared_cookie() -> str:
    expires = formatdate(time.time() - 3600, usegmt=True)
    return f"{COOKIE_NAME}=; Path=/; Expires={expires}; SameSite=Lax"


def _session_user(user: dict[str, Any], account_id: str, role: str, account_name: str) -> SessionUser:
    return SessionUser(
        id=str(user["id"]),
        username=user["username"],
        email=user["email"],
        display_name=user["display_name"] or "",
        is_admin=bool(user["is_admin"]),
        is_super_admin=bool(user["is_super_admin"]),
        role=role or "",
        account_id=str(account_id),
        account_name=account_name or "",
    )


def _token_for(state: AppState, user: SessionUser) -> str:
    return issue_token(
        state.settings.jwt_secret,
        user_id=user.id,
        account_id=user.account_id,
        username=user.username,
        is_admin=user.is_admin,
        is_super_admin=user.is_super_admin,
        role=user.role,
    )


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
