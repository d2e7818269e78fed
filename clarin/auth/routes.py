"""Auth, session and settings routes (spec §2, §4.1)."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from clarin.auth import service
from clarin.http.request import Request
from clarin.http.response import JSONResponse
from clarin.http.router import Auth
from clarin.http.routes import RouteGroup
from clarin.wire.auth import (
    AccountNameBody,
    LoginBody,
    LoginResponse,
    MembershipsResponse,
    MeResponse,
    PasswordBody,
    ProfileBody,
    SettingsAccount,
    SettingsResponse,
    SettingsUser,
    SwitchAccountBody,
    SwitchAccountResponse,
)
from clarin.wire.common import Ok

routes = RouteGroup(tags=("auth",))


@routes.post("/api/auth/login", body=LoginBody, response=LoginResponse, auth=Auth.PUBLIC)
async def login(req: Request, body: LoginBody) -> JSONResponse:
    token, user, accounts = await service.login(req.app, body.username, body.password, req.client_ip)
    return JSONResponse(
        LoginResponse(token=token, user=user, accounts=accounts),
        headers=[("set-cookie", service.session_cookie(req.app, token))],
    )


@routes.post("/api/auth/logout", response=Ok)
async def logout(req: Request) -> JSONResponse:
    """Ends this session only (the user's other devices stay logged in), then clears the cookie."""
    assert req.auth is not None
    await service.logout(req.app, req.auth)
    return JSONResponse(Ok(), headers=[("set-cookie", service.cleared_cookie())])


@routes.post("/api/auth/switch-account", body=SwitchAccountBody, response=SwitchAccountResponse)
async def switch_account(req: Request, body: SwitchAccountBody) -> JSONResponse:
    assert req.auth is not None
    token, user = await service.switch_account(req.app, req.auth, body.account_id)
    return JSONResponse(
        SwitchAccountResponse(token=token, user=user),
        headers=[("set-cookie", service.session_cookie(req.app, token))],
    )


@routes.get("/api/me", response=MeResponse)
async def me(req: Request) -> MeResponse:
    assert req.auth is not None
    user, accounts = await service.me(req.app, req.auth)
    return MeResponse(user=user, accounts=accounts)


@routes.get("/api/me/accounts", response=MembershipsResponse)
async def my_accounts(req: Request) -> MembershipsResponse:
    return MembershipsResponse(accounts=await service.memberships(req.app, req.user_id))


@routes.get("/api/settings", response=SettingsResponse)
async def get_settings(req: Request) -> SettingsResponse:
    assert req.auth is not None
    user, account = await service.settings_view(req.app, req.auth)
    return SettingsResponse(
        user=SettingsUser(id=str(user["id"]), name=user["display_name"] or "", email=user["email"],
                          role=user["role"] or ""),
        account=msgspec.convert(account, SettingsAccount) if account else msgspec.UNSET,
    )


@routes.put("/api/settings/profile", body=ProfileBody, response=Ok)
async def update_profile(req: Request, body: ProfileBody) -> Ok:
    assert req.auth is not None
    await service.update_profile(req.app, req.auth, body.name, body.email)
    return Ok()


@routes.put("/api/settings/account", body=AccountNameBody, response=Ok)
async def update_account(req: Request, body: AccountNameBody) -> Ok:
    assert req.auth is not None
    await service.rename_account(req.app, req.auth, body.name)
    return Ok()


@routes.put("/api/settings/password", body=PasswordBody, response=Ok)
async def change_password(req: Request, body: PasswordBody) -> JSONResponse:
    """Ends every other session of the user; the caller's token (header or cookie) keeps working."""
    assert req.auth is not None
    await service.change_password(req.app, req.auth, body.current_password, body.new_password)
    return JSONResponse(Ok())


health_routes = RouteGroup(tags=("health",), auth=Auth.PUBLIC)


@health_routes.get("/health")
async def health(req: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "time": datetime.now(UTC)})
