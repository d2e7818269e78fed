"""Settings read from the environment once at start-up.

Empty environment values count as unset (the default applies), as in the original service.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

from clarin.auth.secret import MAX_PASSWORD_BYTES, PUBLIC_DEFAULT_SECRET, resolve_jwt_secret

DEV_CORS_ORIGINS = ("http://localhost:3000", "http://localhost:8080")
DISABLED_WORDS = frozenset({"off", "none", "disabled", "false", "0"})
TRUE_WORDS = frozenset({"1", "t", "true", "yes", "on"})
DEFAULT_JWT_SECRET = PUBLIC_DEFAULT_SECRET  # only the field default of hand-built Settings (tests)


MAX_DEFAULT_WORKERS = 4  # more workers only if asked: each opens up to DB_POOL_SIZE PostgreSQL connections


def default_workers() -> int:
    """``WORKERS`` when unset: one granian worker per CPU this process may run on (a worker is one Python thread
    plus one runtime thread), at most ``MAX_DEFAULT_WORKERS``. docs/OPERATIONS.md (Sizing) has the reasoning."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        usable = os.cpu_count() or 1
    return max(1, min(usable, MAX_DEFAULT_WORKERS))


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None = None
    data_dir: Path = Path(".clarin-data")
    keep_db: bool = False  # CLARIN_KEEP_DB: the embedded PostgreSQL outlives `clarin serve` (clarin.cli)
    db_pool_size: int = 10
    redis_url: str | None = "redis://localhost:6379"
    redis_prefix: str = "clarin"
    page_cache_ttl: float = 30.0  # seconds a cached read body lives at most (0 = no page cache; needs Redis)
    # TOTAL_COUNT_CAP: filtered list totals (leads, contacts, chats) are counted exactly up to this many rows, then
    # capped (clarin.http.totals; 300 chosen by measurement, bench/RESULTS.md)
    total_count_cap: int = 300
    jwt_secret: str = DEFAULT_JWT_SECRET
    host: str = "0.0.0.0"
    port: int = 8080
    workers: int = msgspec.field(default_factory=default_workers)
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
    # Security and operations (README "Security and operations"): auth revocation cache, login throttling,
    # log format, /metrics protection.
    auth_cache_ttl: float = 2.0  # seconds a worker trusts its cached token_version / is_active (0 = no cache)
    login_max_failures: int = 10  # failed logins per username per window (0 = off)
    login_max_failures_ip: int = 50  # failed logins per client IP per window (0 = off)
    login_failure_window: int = 900  # seconds
    log_format: str = "text"  # "json" (default when ENV=production) or "text"
    metrics_token: str = ""  # when set, GET /metrics needs "Authorization: Bearer <token>"
    # With neither a token nor METRICS_PUBLIC, production answers /metrics with 404: scrapes are opt-in there.
    metrics_public: bool = True  # METRICS_PUBLIC; default true in development, false in production
    metrics_per_account: bool = False  # METRICS_PER_ACCOUNT: account ids as labels (tenant identifiers)
    # API_DOCS_PUBLIC: GET /api/docs (Swagger UI); off (404) by default in production, like /metrics.
    api_docs_public: bool = True
    # Media storage (clarin.storage): "local" = CLARIN_DATA_DIR/media; "s3" = S3/MinIO. Unlike the original,
    # an unset MINIO_ENDPOINT means local storage (the original defaulted to localhost:9000).
    storage_backend: str = "local"
    minio_endpoint: str | None = None
    minio_access_key: str = "clarinadmin"
    minio_secret_key: str = "clarinadmin"
    minio_bucket: str = "clarin-media"
    minio_use_ssl: bool = False
    minio_public_url: str | None = None
    minio_region: str = "us-east-1"
    # WhatsApp (clarin.whatsapp): "neonize" (production) or "simulated" (tests, demos). Device lease:
    # TTL bounds how long a dead owner's devices stay unowned; renew = health-check / take-over interval.
    whatsapp_driver: str = "neonize"
    whatsapp_lease_ttl: int = 30
    whatsapp_lease_renew: int = 10
    # Number health (clarin.whatsapp.budget / health, docs/NUMBER_HEALTH.md): whether devices without their own
    # budget get the conservative default limits (SEND_BUDGET_DEFAULTS=auto: yes with the real driver, none with the
    # simulated one), and the failure-rate guard: at least health_min_sends finished sends in health_window seconds
    # of which health_failure_rate or more failed pauses the number's campaigns.
    send_budget_defaults: bool = True
    health_window: float = 600.0
    health_min_sends: int = 10
    health_failure_rate: float = 0.5
    # Kommo (clarin.kommo, spec integrations.md A.1 + api.md §5.2). Enabled when subdomain and token are both set.
    # KOMMO_CLIENT_ID / _SECRET / _REDIRECT_URI are loaded and unused, as in the original.
    kommo_subdomain: str = ""
    kommo_access_token: str = ""
    kommo_client_id: str = ""
    kommo_client_secret: str = ""
    kommo_redirect_uri: str = ""
    kommo_base_url: str = ""  # default https://<KOMMO_SUBDOMAIN>.kommo.com (the client appends /api/v4)
    kommo_rate_limit: float = 5.0  # requests/s shared by every Kommo call of the installation
    kommo_rate_headroom: float = 0.05  # pacing margin for network jitter (clarin.kommo.limiter)
    kommo_poll_interval: float = 5.0
    kommo_sync_overlap: int = 60  # incremental window re-reads this many seconds before the cursor
    kommo_timeout: float = 30.0
    kommo_max_retries: int = 5
    kommo_retry_base: float = 0.5
    kommo_retry_max: float = 30.0
    kommo_backoff_max: float = 300.0  # poller back-off ceiling after auth / repeated failures
    # Campaign worker (clarin.campaigns.worker): every pacing delay is multiplied by the scale (tests: 0.001);
    # the tick is how often each process looks for due / running campaigns (seconds).
    campaign_delay_scale: float = 1.0
    campaign_tick: float = 10.0
    # Scheduled-message sender (clarin.messaging.scheduled_sender): the longest it sleeps between scans of its
    # devices' due messages (it also wakes at the next send_at and when a create/edit nudges it).
    scheduled_tick: float = 10.0
    # HTTP server (clarin.cli): seconds a connection may take to deliver a request head, counted from accept
    # or from the previous response (so also the idle keep-alive timeout: hyper has one timer for both);
    # open connections per worker, 0 = what the open-files limit allows.
    http_header_timeout: float = 15.0
    http_max_connections: int = 0
    # WebSocket sockets per worker process (0 = the worker's connection limit minus a reserve kept for HTTP,
    # so /health and the API still answer when dashboards fill a worker) and per account per worker: past
    # either, the handshake is refused (503 / 429) before it costs anything.
    ws_max_connections: int = 0
    ws_max_per_account: int = 500
    # Outgoing webhooks (clarin.webhooks, docs/WEBHOOKS.md): loopback/private targets (never in production),
    # multiplier of the retry schedule and of the 24 h give-up window (tests: 0.001), per-attempt timeout,
    # how often the delivering process looks for due deliveries, days delivered rows are kept.
    webhook_allow_private: bool = False
    webhook_retry_scale: float = 1.0
    webhook_timeout: float = 10.0
    webhook_poll: float = 0.5
    webhook_retention_days: float = 7.0

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def redis_enabled(self) -> bool:
        return self.redis_url is not None

    @property
    def kommo_configured(self) -> bool:
        return bool(self.kommo_subdomain and self.kommo_access_token)


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
        keep_db=_bool(env, "CLARIN_KEEP_DB", False),
        db_pool_size=max(1, _int(env, "DB_POOL_SIZE", 10)),
        redis_url=None if redis_url.lower() in DISABLED_WORDS else redis_url,
        redis_prefix=_get(env, "REDIS_PREFIX") or "clarin",
        page_cache_ttl=max(0.0, _float(env, "PAGE_CACHE_TTL", 30.0)),
        total_count_cap=max(1, _int(env, "TOTAL_COUNT_CAP", 300)),
        # Production: a real secret or no start; development: generated once under CLARIN_DATA_DIR.
        jwt_secret=resolve_jwt_secret(_get(env, "JWT_SECRET"), production=app_env == "production",
                                      data_dir=Path(_get(env, "CLARIN_DATA_DIR") or ".clarin-data")),
        host=_get(env, "HOST") or "0.0.0.0",
        port=_int(env, "PORT", 8080),
        workers=max(1, _int(env, "WORKERS", default_workers())),
        threads=max(1, _int(env, "THREADS", 1)),
        env=app_env,
        admin_user=_get(env, "ADMIN_USER") or "admin",
        admin_password=_admin_password(env),
        admin_email=_get(env, "ADMIN_EMAIL") or "admin@clarin.local",
        cors_origins=cors,
        rate_limit=max(0, _int(env, "RATE_LIMIT", 500)),
        rate_limit_window=max(1, _int(env, "RATE_LIMIT_WINDOW", 60)),
        trust_proxy=_bool(env, "TRUST_PROXY", False),
        body_limit=max(1024, _int(env, "BODY_LIMIT", 32 * 1024 * 1024)),
        log_level=(_get(env, "LOG_LEVEL") or "INFO").upper(),
        access_log=_bool(env, "ACCESS_LOG", True),
        **_security_settings(env, app_env),
        **_storage_settings(env),
        **_whatsapp_settings(env),
        **_kommo_settings(env),
        campaign_delay_scale=max(0.0, _float(env, "CAMPAIGN_DELAY_SCALE", 1.0)),
        campaign_tick=max(0.01, _float(env, "CAMPAIGN_TICK", 10.0)),
        scheduled_tick=max(0.05, _float(env, "SCHEDULED_TICK", 10.0)),
        http_header_timeout=max(0.5, _float(env, "HTTP_HEADER_TIMEOUT", 15.0)),
        http_max_connections=max(0, _int(env, "HTTP_MAX_CONNECTIONS", 0)),
        ws_max_connections=max(0, _int(env, "WS_MAX_CONNECTIONS", 0)),
        ws_max_per_account=max(0, _int(env, "WS_MAX_PER_ACCOUNT", 500)),
        **_webhook_settings(env, app_env),
    )


def _webhook_settings(env: Mapping[str, str], app_env: str) -> dict[str, object]:
    allow_private = _bool(env, "WEBHOOK_ALLOW_PRIVATE", False)
    if allow_private and app_env == "production":
        raise ValueError("WEBHOOK_ALLOW_PRIVATE=true is for development and tests only (refused with ENV=production)")
    return {
        "webhook_allow_private": allow_private,
        "webhook_retry_scale": max(0.0, _float(env, "WEBHOOK_RETRY_SCALE", 1.0)),
        "webhook_timeout": max(0.1, _float(env, "WEBHOOK_TIMEOUT", 10.0)),
        "webhook_poll": max(0.01, _float(env, "WEBHOOK_POLL_INTERVAL", 0.5)),
        "webhook_retention_days": max(0.0, _float(env, "WEBHOOK_RETENTION_DAYS", 7.0)),
    }


def _admin_password(env: Mapping[str, str]) -> str:
    password = _get(env, "ADMIN_PASSWORD") or "clarin123"
    if len(password.encode()) > MAX_PASSWORD_BYTES:  # bcrypt would ignore the rest (clarin.auth.passwords)
        raise ValueError(f"ADMIN_PASSWORD must be at most {MAX_PASSWORD_BYTES} bytes (UTF-8)")
    return password


def _whatsapp_settings(env: Mapping[str, str]) -> dict[str, object]:
    driver = (_get(env, "WHATSAPP_DRIVER") or "neonize").lower()
    if driver not in ("neonize", "simulated"):
        raise ValueError(f"WHATSAPP_DRIVER must be 'neonize' or 'simulated', got {driver!r}")
    renew = max(1, _int(env, "WHATSAPP_LEASE_RENEW", 10))
    return {
        "whatsapp_driver": driver,
        "whatsapp_lease_ttl": max(renew, _int(env, "WHATSAPP_LEASE_TTL", 30)),
        "whatsapp_lease_renew": renew,
        "send_budget_defaults": _budget_defaults(env, driver),
        "health_window": max(10.0, _float(env, "HEALTH_WINDOW", 600.0)),
        "health_min_sends": max(1, _int(env, "HEALTH_MIN_SENDS", 10)),
        "health_failure_rate": min(1.0, max(0.01, _float(env, "HEALTH_FAILURE_RATE", 0.5))),
    }


def _budget_defaults(env: Mapping[str, str], driver: str) -> bool:
    value = (_get(env, "SEND_BUDGET_DEFAULTS") or "auto").lower()
    if value == "auto":
        return driver == "neonize"  # real numbers get the defaults; the simulated driver (tests, demos) none
    return value not in DISABLED_WORDS


def _storage_settings(env: Mapping[str, str]) -> dict[str, object]:
    endpoint = _get(env, "MINIO_ENDPOINT") or _get(env, "S3_ENDPOINT")
    backend = (_get(env, "STORAGE_BACKEND") or ("s3" if endpoint else "local")).lower()
    if backend not in ("local", "s3"):
        raise ValueError(f"STORAGE_BACKEND must be 'local' or 's3', got {backend!r}")
    if backend == "s3" and not endpoint:
        raise ValueError("STORAGE_BACKEND=s3 needs MINIO_ENDPOINT (or S3_ENDPOINT)")
    return {
        "storage_backend": backend,
        "minio_endpoint": endpoint,
        "minio_access_key": _get(env, "MINIO_ACCESS_KEY") or "clarinadmin",
        "minio_secret_key": _get(env, "MINIO_SECRET_KEY") or "clarinadmin",
        "minio_bucket": _get(env, "MINIO_BUCKET") or "clarin-media",
        "minio_use_ssl": _bool(env, "MINIO_USE_SSL", False),
        "minio_public_url": _get(env, "MINIO_PUBLIC_URL"),
        "minio_region": _get(env, "MINIO_REGION") or "us-east-1",
    }


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


def _kommo_settings(env: Mapping[str, str]) -> dict[str, object]:
    subdomain = _get(env, "KOMMO_SUBDOMAIN") or ""
    base_url = _get(env, "KOMMO_BASE_URL") or (f"https://{subdomain}.kommo.com" if subdomain else "")
    return {
        "kommo_subdomain": subdomain,
        "kommo_access_token": _get(env, "KOMMO_ACCESS_TOKEN") or "",
        "kommo_client_id": _get(env, "KOMMO_CLIENT_ID") or "",
        "kommo_client_secret": _get(env, "KOMMO_CLIENT_SECRET") or "",
        "kommo_redirect_uri": _get(env, "KOMMO_REDIRECT_URI") or "",
        "kommo_base_url": base_url.rstrip("/"),
        "kommo_rate_limit": max(0.1, _float(env, "KOMMO_RATE_LIMIT", 5.0)),
        "kommo_rate_headroom": min(1.0, max(0.0, _float(env, "KOMMO_RATE_HEADROOM", 0.05))),
        "kommo_poll_interval": max(0.1, _float(env, "KOMMO_POLL_INTERVAL", 5.0)),
        "kommo_sync_overlap": max(0, _int(env, "KOMMO_SYNC_OVERLAP", 60)),
        "kommo_timeout": max(0.1, _float(env, "KOMMO_TIMEOUT", 30.0)),
        "kommo_max_retries": max(0, _int(env, "KOMMO_MAX_RETRIES", 5)),
        "kommo_retry_base": max(0.0, _float(env, "KOMMO_RETRY_BASE_DELAY", 0.5)),
        "kommo_retry_max": max(0.0, _float(env, "KOMMO_RETRY_MAX_DELAY", 30.0)),
        "kommo_backoff_max": max(0.1, _float(env, "KOMMO_BACKOFF_MAX", 300.0)),
    }


def _security_settings(env: Mapping[str, str], app_env: str) -> dict[str, object]:
    log_format = (_get(env, "LOG_FORMAT") or ("json" if app_env == "production" else "text")).lower()
    if log_format not in ("json", "text"):
        raise ValueError(f"LOG_FORMAT must be 'json' or 'text', got {log_format!r}")
    return {
        "auth_cache_ttl": max(0.0, _float(env, "AUTH_CACHE_TTL", 2.0)),
        "login_max_failures": max(0, _int(env, "LOGIN_MAX_FAILURES", 10)),
        "login_max_failures_ip": max(0, _int(env, "LOGIN_MAX_FAILURES_IP", 50)),
        "login_failure_window": max(1, _int(env, "LOGIN_FAILURE_WINDOW", 900)),
        "log_format": log_format,
        "metrics_token": _get(env, "METRICS_TOKEN") or "",
        "metrics_public": _bool(env, "METRICS_PUBLIC", app_env != "production"),
        "metrics_per_account": _bool(env, "METRICS_PER_ACCOUNT", False),
        "api_docs_public": _bool(env, "API_DOCS_PUBLIC", app_env != "production"),
    }
