"""Super-admin routes R115–R129 under ``/api/admin`` (403 for everyone else)."""

from __future__ import annotations

from clarin.admin import service
from clarin.http.request import Request
from clarin.http.router import Auth
from clarin.http.routes import RouteGroup
from clarin.wire.admin import (
    AccountCreateBody,
    AccountResponse,
    AccountsResponse,
    AccountUpdateBody,
    LinkAccountBody,
    PasswordResetBody,
    UserAccountsResponse,
    UserCreateBody,
    UserResponse,
    UsersResponse,
    UserUpdateBody,
)
from clarin.wire.common import Ok
from clarin.wire.queries import AdminPageQuery, AdminUsersQuery

routes = RouteGroup(tags=("admin",), auth=Auth.SUPER_ADMIN)

INVALID_ID = "Invalid ID"
INVALID_USER_ID = "Invalid user ID"


@routes.get("/api/admin/accounts", query=AdminPageQuery, response=AccountsResponse)
async def list_accounts(req: Request) -> AccountsResponse:
    accounts = await service.list_accounts(req.app, req.query_int("limit", 0), req.query_int("offset", 0))
    return AccountsResponse(accounts=accounts)


@routes.post("/api/admin/accounts", body=AccountCreateBody, response=AccountResponse, status=201)
async def create_account(req: Request, body: AccountCreateBody) -> AccountResponse:
    return AccountResponse(account=await service.create_account(req.app, body))


@routes.get("/api/admin/accounts/:id", response=AccountResponse)
async def get_account(req: Request) -> AccountResponse:
    return AccountResponse(account=await service.get_account(req.app, req.path_uuid("id", INVALID_ID)))


@routes.put("/api/admin/accounts/:id", body=AccountUpdateBody, response=AccountResponse)
async def update_account(req: Request, body: AccountUpdateBody) -> AccountResponse:
    account_id = req.path_uuid("id", INVALID_ID)
    return AccountResponse(account=await service.update_account(req.app, account_id, body))


@routes.patch("/api/admin/accounts/:id/toggle", response=Ok)
async def toggle_account(req: Request) -> Ok:
    await service.toggle_account(req.app, req.path_uuid("id", INVALID_ID))
    return Ok()


@routes.delete("/api/admin/accounts/:id", response=Ok)
async def delete_account(req: Request) -> Ok:
    await service.delete_account(req.app, req.path_uuid("id", INVALID_ID))
    return Ok()


@routes.get("/api/admin/users", query=AdminUsersQuery, response=UsersResponse)
async def list_users(req: Request) -> UsersResponse:
    users = await service.list_users(
        req.app, req.query_str("account_id"), req.query_int("limit", 0), req.query_int("offset", 0)
    )
    return UsersResponse(users=users)


@routes.post("/api/admin/users", body=UserCreateBody, response=UserResponse, status=201)
async def create_user(req: Request, body: UserCreateBody) -> UserResponse:
    return UserResponse(user=await service.create_user(req.app, body))


@routes.put("/api/admin/users/:id", body=UserUpdateBody, response=Ok)
async def update_user(req: Request, body: UserUpdateBody) -> Ok:
    await service.update_user(req.app, req.path_uuid("id", INVALID_ID), body)
    return Ok()


@routes.patch("/api/admin/users/:id/toggle", response=Ok)
async def toggle_user(req: Request) -> Ok:
    await service.toggle_user(req.app, req.path_uuid("id", INVALID_ID))
    return Ok()


@routes.patch("/api/admin/users/:id/password", body=PasswordResetBody, response=Ok)
async def reset_password(req: Request, body: PasswordResetBody) -> Ok:
    await service.reset_password(req.app, req.path_uuid("id", INVALID_ID), body.password)
    return Ok()


@routes.delete("/api/admin/users/:id", response=Ok)
async def delete_user(req: Request) -> Ok:
    await service.delete_user(req.app, req.user_id, req.path_uuid("id", INVALID_ID))
    return Ok()


@routes.get("/api/admin/users/:id/accounts", response=UserAccountsResponse)
async def list_user_accounts(req: Request) -> UserAccountsResponse:
    return UserAccountsResponse(accounts=await service.list_links(req.app, req.path_uuid("id", INVALID_USER_ID)))


@routes.post("/api/admin/users/:id/accounts", body=LinkAccountBody, response=Ok)
async def link_user_account(req: Request, body: LinkAccountBody) -> Ok:
    await service.link_account(req.app, req.path_uuid("id", INVALID_USER_ID), body)
    return Ok()


@routes.delete("/api/admin/users/:id/accounts/:account_id", response=Ok)
async def unlink_user_account(req: Request) -> Ok:
    user_id = req.path_uuid("id", INVALID_USER_ID)
    await service.unlink_account(req.app, user_id, req.path_uuid("account_id", "Invalid account_id"))
    return Ok()
