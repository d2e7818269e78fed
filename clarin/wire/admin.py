from __future__ import annotations

from datetime import datetime

import msgspec


class Account(msgspec.Struct, omit_defaults=True):
    id: str
    name: str
    slug: str
    plan: str
    max_devices: int
    is_active: bool
    created_at: datetime
    updated_at: datetime
    user_count: int = 0
    device_count: int = 0
    chat_count: int = 0


class AdminUser(msgspec.Struct, omit_defaults=True):
    id: str
    account_id: str
    username: str
    email: str
    display_name: str
    role: str
    is_admin: bool
    is_super_admin: bool
    is_active: bool
    created_at: datetime
    updated_at: datetime
    account_name: str = ""


class UserAccountLink(msgspec.Struct):
    id: str
    account_id: str
    account_name: str
    role: str
    is_default: bool


class AccountCreateBody(msgspec.Struct):
    name: str = ""
    slug: str = ""
    plan: str = ""
    max_devices: int = 0


class AccountUpdateBody(msgspec.Struct):
    name: str | None = None
    slug: str | None = None
    plan: str | None = None
    max_devices: int | None = None


class UserCreateBody(msgspec.Struct):
    account_id: str = ""
    username: str = ""
    email: str = ""
    password: str = ""
    display_name: str = ""
    role: str = ""


class UserUpdateBody(msgspec.Struct):
    username: str | None = None
    email: str | None = None
    display_name: str | None = None
    role: str | None = None


class PasswordResetBody(msgspec.Struct):
    password: str = ""


class LinkAccountBody(msgspec.Struct):
    account_id: str = ""
    role: str = ""
    is_default: bool = False


class AccountsResponse(msgspec.Struct):
    accounts: list[Account]
    success: bool = True


class AccountResponse(msgspec.Struct):
    account: Account
    success: bool = True


class UsersResponse(msgspec.Struct):
    users: list[AdminUser]
    success: bool = True


class UserResponse(msgspec.Struct):
    user: AdminUser
    success: bool = True


class UserAccountsResponse(msgspec.Struct):
    accounts: list[UserAccountLink]
    success: bool = True
