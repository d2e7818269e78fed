from __future__ import annotations

from datetime import datetime

import msgspec


class LoginBody(msgspec.Struct):
    username: str = ""
    password: str = ""


class SwitchAccountBody(msgspec.Struct):
    account_id: str = ""


class ProfileBody(msgspec.Struct):
    name: str | None = None
    email: str | None = None


class AccountNameBody(msgspec.Struct):
    name: str | None = None


class PasswordBody(msgspec.Struct, rename="camel"):
    current_password: str = ""
    new_password: str = ""


class SessionUser(msgspec.Struct):
    id: str
    username: str
    email: str
    display_name: str
    is_admin: bool
    is_super_admin: bool
    role: str
    account_id: str
    account_name: str


class Membership(msgspec.Struct):
    account_id: str
    account_name: str
    account_slug: str
    role: str
    is_default: bool


class LoginResponse(msgspec.Struct):
    token: str
    user: SessionUser
    accounts: list[Membership]
    success: bool = True


class SwitchAccountResponse(msgspec.Struct):
    token: str
    user: SessionUser
    success: bool = True


class MeResponse(msgspec.Struct):
    user: SessionUser
    accounts: list[Membership]
    success: bool = True


class MembershipsResponse(msgspec.Struct):
    accounts: list[Membership]
    success: bool = True


class SettingsUser(msgspec.Struct):
    id: str
    name: str
    email: str
    role: str


class SettingsAccount(msgspec.Struct):
    id: str
    name: str
    slug: str
    plan: str
    created_at: datetime


class SettingsResponse(msgspec.Struct):
    user: SettingsUser
    account: SettingsAccount | msgspec.UnsetType = msgspec.UNSET
    success: bool = True


class HealthResponse(msgspec.Struct):
    status: str
    time: datetime


class ReadyResponse(msgspec.Struct):
    status: str
    database: str
    redis: str
