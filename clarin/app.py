"""Application assembly: every feature's routes mounted on one RSGI app.

``granian --interface rsgi clarin.app:app`` (what ``clarin serve`` runs) imports ``app`` in each
worker; start-up then opens that worker's pool, Redis connection and WebSocket fan-out.
"""

from __future__ import annotations

from clarin.admin.routes import routes as admin_routes
from clarin.auth.routes import health_routes
from clarin.auth.routes import routes as auth_routes
from clarin.campaigns.routes import routes as campaign_routes
from clarin.config import load_settings
from clarin.crm import (
    contacts_routes,
    events_routes,
    imports_routes,
    interactions_routes,
    leads_routes,
    pipelines_routes,
    quick_replies_routes,
    stats_routes,
    tags_routes,
)
from clarin.http.docs import routes as api_docs_routes
from clarin.http.routes import RouteGroup
from clarin.http.server import ClarinApp
from clarin.kommo.routes import routes as kommo_routes
from clarin.messaging import chats_routes, messages_routes, scheduled_routes
from clarin.observability.logging import configure_logging as configure_log_output
from clarin.observability.routes import routes as metrics_routes
from clarin.ops.routes import routes as ops_routes
from clarin.state import AppState
from clarin.storage import routes as media_routes
from clarin.storage import stickers as sticker_routes
from clarin.webhooks.routes import routes as webhook_routes
from clarin.whatsapp.routes import routes as devices_routes

ROUTE_GROUPS: tuple[RouteGroup, ...] = (
    health_routes,
    ops_routes,
    metrics_routes,
    api_docs_routes,
    auth_routes,
    admin_routes,
    leads_routes.routes,
    pipelines_routes.routes,
    tags_routes.routes,
    imports_routes.routes,
    contacts_routes.routes,
    events_routes.routes,
    interactions_routes.routes,
    quick_replies_routes.routes,
    stats_routes.routes,
    media_routes.routes,
    sticker_routes.routes,
    devices_routes,
    chats_routes.routes,
    messages_routes.routes,
    scheduled_routes.routes,
    kommo_routes,
    campaign_routes,
    webhook_routes,
)


def configure_logging(level: str, log_format: str = "text") -> None:
    configure_log_output(level, log_format)  # LOG_FORMAT=json: one JSON object per line


def _state_from_env() -> AppState:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    dsn = settings.database_url
    if not dsn:
        raise RuntimeError("DATABASE_URL is not set (clarin serve starts an embedded PostgreSQL and sets it)")
    return AppState.build(settings, dsn)


def create_app() -> ClarinApp:
    return ClarinApp(_state_from_env, [route for group in ROUTE_GROUPS for route in group.routes])


app = create_app()
