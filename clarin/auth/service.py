"""Login, session, profile and password rules.

Sessions (README "Security and operations"): each login creates a ``user_sessions`` row named by the
token's ``sid``. Logout revokes that session only; a password change keeps the caller's session and
revokes every other one; both tell every worker (``state.auth_guard``). Logins are throttled per
username and per client IP (``state.login_throttle``). A disabled account's membership is skipped at
login (the next active membership is used) and cannot be switched to: 403 ``account disabled``.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any

import msgspec

from clarin.auth.passwords import MAX_PASSWORD_BYTES, hash_password, too_long, verify_password
from clarin.auth.revocation import ACCOUNT_DISABLED
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
Q_CREATE_SESSION = query("create_session")
Q_REVOKE_SESSION = query("revoke_session")

INVALID_CREDENTIALS = "invalid credentials"
MIN_PASSWORD_BYTES = 8
PASSWORD_TOO_LONG = f"La contraseña no puede tener más de {MAX_PASSWORD_BYTES} bytes"
TEXT_MAX = 255  # users.display_name/email and accounts.name are varchar(255)


async def memberships(state: AppState, user_id: uuid.UUID | str) -> list[Membership]:
    rows = await state.db.fetch(Q_MEMBERSHIPS, [_uuid(user_id)])
    return msgspec.convert(rows, list[Membership])


async def login(
    state: AppState, username: str, password: str, client_ip: str = ""
) -> tuple[str, SessionUser, list[Membership]]:
    throttle = state.login_throttle
    await throttle.check(username, client_ip)  # 429 before any bcrypt work
    # PostgreSQL text cannot hold NUL: such a username cannot exist, and must not reach the driver.
    lookup = bool(username) and "\x00" not in username
    user = await state.db.fetch_row(Q_USER_BY_USERNAME, [username]) if lookup else None
    # Always run bcrypt, even for unknown users, so timing does not reveal which usernames exist.
    ok = await verify_password(password, user["password_hash"] if user else None)
    if user is None or not ok:
        await throttle.failed(username, client_ip)
        raise HTTPError(401, INVALID_CREDENTIALS)
    await throttle.succeeded(username)
    rows = await state.db.fetch(Q_MEMBERSHIPS, [uuid.UUID(user["id"])])
    links = msgspec.convert(rows, list[Membership])
    account_id, role, account_name = _login_account(user, rows)
    session = _session_user(user, account_id, role, account_name)
    issued = int(time.time())
    expires = issued + TOKEN_TTL_SECONDS
    session_id = await state.db.fetch_val(
        Q_CREATE_SESSION, [uuid.UUID(user["id"]), datetime.fromtimestamp(expires, UTC)]
    )
    token = _token_for(state, session, user["token_version"], session_id, issued=issued, expires=expires)
    return token, session, links


def _login_account(user: dict[str, Any], links: list[dict[str, Any]]) -> tuple[str, str, str]:
    """The default membership; if its account is disabled, the first active one (default first, then
    by name); none active → 403. Super admins always get their default (they manage the accounts)."""
    if not links:
        if not user["account_active"] and not user["is_super_admin"]:
            raise HTTPError(403, ACCOUNT_DISABLED)
        return user["account_id"], user["role"], user["account_name"]
    chosen = next((m for m in links if m["is_default"]), None)
    if not user["is_super_admin"] and (chosen is None or not chosen["account_active"]):
        chosen = next((m for m in links if m["account_active"]), None)
        if chosen is None:
            raise HTTPError(403, ACCOUNT_DISABLED)
    if chosen is None:
        return user["account_id"], user["role"], user["account_name"]
    return chosen["account_id"], chosen["role"], chosen["account_name"]


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
    if not link["account_active"] and not user["is_super_admin"]:
        raise HTTPError(403, ACCOUNT_DISABLED)
    session = _session_user(user, str(target), link["role"], link["account_name"])
    # The same login session in another account: logout with either token ends both, and the session's
    # lifetime (its row's expires_at) does not grow by switching.
    expires = auth.claims.get("exp")
    token = _token_for(state, session, user["token_version"], str(auth.session_id),
                       expires=expires if type(expires) is int else None)
    return token, session


async def logout(state: AppState, auth: AuthContext) -> None:
    """End this session (the caller's token, on every worker); the user's other sessions stay."""
    await state.db.fetch_val(Q_REVOKE_SESSION, [auth.user_id, auth.session_id])
    await state.auth_guard.revoke_user(auth.user_id)


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
    """Set the new password; the caller's session (and token) stays valid, every other session ends."""
    if len(new.encode()) < MIN_PASSWORD_BYTES:
        raise HTTPError(400, "La contraseña debe tener al menos 8 caracteres")
    if too_long(new):
        raise HTTPError(400, PASSWORD_TOO_LONG)
    row = await state.db.fetch_row(Q_PASSWORD_HASH, [auth.user_id])
    if row is None:
        raise HTTPError(404, "User not found")
    if not await verify_password(current, row["password_hash"]):
        raise HTTPError(400, "Contraseña actual incorrecta")
    changed = await state.db.fetch_val(Q_SET_PASSWORD, [auth.user_id, await hash_password(new), auth.session_id])
    if changed is None:
        raise HTTPError(404, "User not found")
    await state.auth_guard.revoke_user(auth.user_id)


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


def _token_for(
    state: AppState, user: SessionUser, token_version: int, session_id: str, *,
    issued: int | None = None, expires: int | None = None,
) -> str:
    return issue_token(
        state.settings.jwt_secret,
        user_id=user.id,
        account_id=user.account_id,
        username=user.username,
        is_admin=user.is_admin,
        is_super_admin=user.is_super_admin,
        role=user.role,
        token_version=token_version,
        session_id=session_id,
        now=issued,
        expires_at=expires,
    )


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
