"""Settings read from the environment once at start-up.

Empty environment values count as unset (the default applies), as in the original service.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

DEV_CORS_ORIGINS = ("http://localhost:3000", "http://localhost:8080")
DISABLED_WORDS = frozenset({"off", "none", "disabled", "false", "0"})
TRUE_WORDS = frozenset({"1", "t", "true", "yes", "on"})
DEFAULT_JWT_SECRET = "clarin_jwt_secret_change_in_production_2026"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None = None
    data_dir: Path = Path(".clarin-data")
    db_pool_size: int = 25
    redis_url: str | None = "redis://localhost:6379"
    redis_prefix: str = "clarin"
    jwt_secret: str = DEFAULT_JWT_SECRET
    host: str = "0.0.0.0"
    port: int = 8080
    workers: int = 1
    threads: int = 1
    env: str = "development"
    admin_user: str = "admin"
    admin_password: str = "clarin123"
    admin_email: str = "admin@clarin.local"
    cors_origins: tuple[str, ...] = DEV_CORS_ORIGINS
    rate_limit: int = 500
    rate_limit_window: int = 60
    trust_proxy: bool = False
    body_limit: int = 32 * 1024 * 1024
    log_level: str = "INFO"
    access_log: bool = True

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def redis_enabled(self) -> bool:
        return self.redis_url is not None


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _get(env, name)
    return default if raw is None else raw.lower() in TRUE_WORDS


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    app_env = _get(env, "ENV") or "development"
    redis_url = _get(env, "REDIS_URL") or "redis://localhost:6379"
    cors_raw = _get(env, "CORS_ORIGINS")
    if cors_raw:
        cors = tuple(o.strip() for o in cors_raw.split(",") if o.strip())
    elif app_env == "production":
        cors = ("http://localhost:3000",)
    else:
        cors = DEV_CORS_ORIGINS
    return Settings(
        database_url=_get(env, "DATABASE_URL"),
        data_dir=Path(_get(env, "CLARIN_DATA_DIR") or ".clarin-data"),
        db_pool_size=max(1, _int(env, "DB_POOL_SIZE", 25)),
        redis_url=None if redis_url.lower() in DISABLED_WORDS else redis_url,
        redis_prefix=_get(env, "REDIS_PREFIX") or "clarin",
        jwt_secret=_get(env, "JWT_SECRET") or DEFAULT_JWT_SECRET,
        host=_get(env, "HOST") or "0.0.0.0",
        port=_int(env, "PORT", 8080),
        workers=max(1, _int(env, "WORKERS", 1)),
        threads=max(1, _int(env, "THREADS", 1)),
        env=app_env,
        admin_user=_get(env, "ADMIN_USER") or "admin",
        admin_password=_get(env, "ADMIN_PASSWORD") or "clarin123",
        admin_email=_get(env, "ADMIN_EMAIL") or "admin@clarin.local",
        cors_origins=cors,
        rate_limit=max(0, _int(env, "RATE_LIMIT", 500)),
        rate_limit_window=max(1, _int(env, "RATE_LIMIT_WINDOW", 60)),
        trust_proxy=_bool(env, "TRUST_PROXY", False),
        body_limit=max(1024, _int(env, "BODY_LIMIT", 32 * 1024 * 1024)),
        log_level=(_get(env, "LOG_LEVEL") or "INFO").upper(),
        access_log=_bool(env, "ACCESS_LOG", True),
    )
