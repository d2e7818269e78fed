"""Prometheus metrics, exposed at ``GET /metrics`` (text exposition format 0.0.4).

Why ``prometheus-client``: it is the maintained reference client, and its multi-process mode is the
standard answer to "N forked worker processes behind one port" — a scrape lands on one granian worker,
which must still report every worker's counters.

Multi-process mode: ``clarin serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory (a temp
dir removed at exit, or the directory you set, emptied at start) before granian starts its workers.
Each worker writes its samples to memory-mapped files there; the worker answering ``/metrics`` merges
them. Counters and histograms survive a worker's restart; live gauges (``livesum``) drop a dead
worker's values. Without the variable (tests that build the app in-process, scripts) the ordinary
single-process registry is used.

Hot path cost: one counter ``inc`` and one histogram ``observe`` per request and one ``observe`` per
query, on label children cached in dicts (no label lookup per call).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from clarin.db import pool as db_pool
from clarin.db.queries import query
from clarin.observability.multiprocess import MULTIPROC_ENV

if TYPE_CHECKING:
    from clarin.state import AppState

log = logging.getLogger("clarin.metrics")

# The classic text format every Prometheus version scrapes (generate_latest writes it).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REFRESH_SECONDS = 5.0
UNMATCHED_ROUTE = "<unmatched>"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
QUERY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

Q_DEVICES_BY_STATUS = query("metrics_devices_by_status")

HTTP_REQUESTS = Counter(
    "clarin_http_requests_total", "HTTP requests by method, route template and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "clarin_http_request_duration_seconds", "HTTP request latency by method, route template and status",
    ["method", "route", "status"], buckets=LATENCY_BUCKETS,
)
DB_QUERY_LATENCY = Histogram(
    "clarin_db_query_duration_seconds", "Database statement latency by named query", ["query"],
    buckets=QUERY_BUCKETS,
)
DB_POOL = Gauge(
    "clarin_db_pool_connections", "Database pool connections (summed over live workers) by state",
    ["state"], multiprocess_mode="livesum",
)
WS_CONNECTIONS = Gauge(
    "clarin_ws_connections", "Open WebSocket connections (all accounts)", multiprocess_mode="livesum",
)
WS_REFUSED = Counter(
    "clarin_ws_refused_total", "WebSocket handshakes refused at a cap (reason: process | account)", ["reason"],
)
WS_SLOW_CLOSED = Counter(
    "clarin_ws_slow_consumers_closed_total",
    "WebSockets closed (1013) because their client fell behind: its bounded send queue was full",
)
# Account ids are tenant identifiers: this family gets samples only with METRICS_PER_ACCOUNT=true (an
# operator's explicit choice, e.g. for a private Prometheus); by default only the aggregate above exists.
WS_ACCOUNT_CONNECTIONS = Gauge(
    "clarin_ws_account_connections", "Open WebSocket connections by account (METRICS_PER_ACCOUNT=true only)",
    ["account_id"],
    multiprocess_mode="livesum",
)
WORKER_RUNNING = Gauge(
    "clarin_background_worker_running", "Background workers running, by kind (summed over live processes)",
    ["worker"], multiprocess_mode="livesum",
)
KOMMO_QUEUE = Gauge(
    "clarin_kommo_queue_length", "Kommo sync tasks queued in this installation's processes",
    multiprocess_mode="livesum",
)
KOMMO_LEADER = Gauge(
    "clarin_kommo_leader", "1 in the process that currently leads Kommo polling", multiprocess_mode="livesum",
)
AUTH_CACHE = Gauge(
    "clarin_auth_cache_lookups", "Token revocation checks since process start, by cache result",
    ["result"], multiprocess_mode="livesum",
)
PAGE_CACHE = Gauge(
    "clarin_page_cache_lookups", "Page cache lookups since process start, by result (local, shared, built, bypass)",
    ["result"], multiprocess_mode="livesum",
)
CAMPAIGN_WORKER = Gauge(
    "clarin_campaign_worker", "Campaign worker figures reported by state.campaigns.metrics_snapshot()",
    ["name"], multiprocess_mode="livesum",
)
# Number health (clarin.whatsapp.budget / health, docs/NUMBER_HEALTH.md): no tenant or device ids in labels.
# kind = cold | reply; window = minute | hour | day; state = ok | throttled | paused | banned.
BUDGET_SENDS = Counter(
    "clarin_send_budget_sends_total", "Messages that took a slot of their number's send budget, by kind", ["kind"],
)
BUDGET_REFUSALS = Counter(
    "clarin_send_budget_refusals_total", "Sends refused (429 / a campaign waits) because the number's budget for "
    "the kind was spent, by kind and the window that frees last", ["kind", "window"],
)
HEALTH_CHANGES = Counter(
    "clarin_device_health_changes_total", "Danger signals that changed a number's health, by new state and signal",
    ["state", "signal"],
)
CAMPAIGN_AUTO_PAUSES = Counter(
    "clarin_campaign_auto_pauses_total", "Campaigns paused by the number-health guard, by signal", ["signal"],
)
# Outgoing webhooks (clarin.webhooks.worker): no tenant ids in labels. result = delivered | retry | failed
# (given up after 24 h). Queue figures come from the one process that delivers for the cluster (livemax).
WEBHOOK_DELIVERIES = Counter(
    "clarin_webhook_deliveries_total", "Webhook delivery attempts by result (delivered, retry, failed)", ["result"],
)
WEBHOOK_LATENCY = Histogram(
    "clarin_webhook_delivery_duration_seconds", "Webhook delivery attempt latency by result", ["result"],
    buckets=LATENCY_BUCKETS,
)
WEBHOOK_QUEUE = Gauge(
    "clarin_webhook_queue_depth", "Pending webhook deliveries (whole cluster)", multiprocess_mode="livemax",
)
WEBHOOK_OLDEST = Gauge(
    "clarin_webhook_oldest_pending_seconds", "Age of the oldest pending webhook delivery (whole cluster)",
    multiprocess_mode="livemax",
)

_http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
_query_children: dict[str, Any] = {}
_ws_accounts_seen: set[str] = set()


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


# -- hot path ---------------------------------------------------------------------------------------
def observe_request(method: str, route: str | None, status: int, seconds: float) -> None:
    key = (method, route or UNMATCHED_ROUTE, status)
    children = _http_children.get(key)
    if children is None:
        labels = (key[0], key[1], str(status))
        children = _http_children[key] = (HTTP_REQUESTS.labels(*labels), HTTP_LATENCY.labels(*labels))
    children[0].inc()
    children[1].observe(seconds)


def observe_query(sql: str, seconds: float) -> None:
    name = getattr(sql, "name", None) or "unnamed"
    child = _query_children.get(name)
    if child is None:
        child = _query_children[name] = DB_QUERY_LATENCY.labels(name)
    child.observe(seconds)


# -- per-process gauges -----------------------------------------------------------------------------
def refresh_process_gauges(state: AppState) -> None:
    """This worker's pool, sockets and background workers (called every few seconds and per scrape)."""
    try:
        pool = state.db.status()
        DB_POOL.labels("in_use").set(max(0, pool["size"] - pool["available"]))
        DB_POOL.labels("idle").set(pool["available"])
        DB_POOL.labels("max").set(pool["max_size"])
        DB_POOL.labels("waiting").set(pool["waiting"])
    except Exception as exc:  # a closed pool during shutdown
        log.debug("pool status unavailable: %s", exc)
    hub = state.hub
    WS_CONNECTIONS.set(hub.connection_count())
    if state.settings.metrics_per_account:
        _refresh_account_sockets(hub)
    for kind in ("whatsapp", "kommo", "campaigns"):
        worker = getattr(state, kind, None)
        WORKER_RUNNING.labels(kind).set(1 if worker is not None and getattr(worker, "running", True) else 0)
    kommo = getattr(state, "kommo", None)
    if kommo is not None:
        KOMMO_QUEUE.set(_number(getattr(kommo, "queue_length", 0)))
        KOMMO_LEADER.set(1 if getattr(kommo, "leader", False) else 0)
    campaigns = getattr(state, "campaigns", None)
    snapshot = getattr(campaigns, "metrics_snapshot", None)
    if callable(snapshot):
        try:
            for name, value in dict(snapshot()).items():
                CAMPAIGN_WORKER.labels(str(name)).set(_number(value))
        except Exception as exc:
            log.debug("campaign metrics unavailable: %s", exc)
    guard = getattr(state, "auth_guard", None)
    if guard is not None:
        AUTH_CACHE.labels("hit").set(guard.hits)
        AUTH_CACHE.labels("miss").set(guard.misses)
    pages = getattr(state, "pages", None)
    if pages is not None:
        for result, count in pages.lookups.items():
            PAGE_CACHE.labels(result).set(count)


def _refresh_account_sockets(hub: Any) -> None:
    by_account: dict[str, Any] = getattr(hub, "_by_account", {})
    current = {str(account): len(conns) for account, conns in by_account.items()}
    for account in _ws_accounts_seen - current.keys():
        WS_ACCOUNT_CONNECTIONS.labels(account).set(0)
    for account, count in current.items():
        WS_ACCOUNT_CONNECTIONS.labels(account).set(count)
    _ws_accounts_seen.update(current)


def _number(value: Any) -> float:
    try:
        return float(value() if callable(value) else value)
    except (TypeError, ValueError):
        return 0.0


# -- exposition -------------------------------------------------------------------------------------
class _Snapshot:
    """Families computed for one scrape (installation-wide figures read from the database)."""

    def __init__(self, families: Iterable[Any]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Any]:
        return self._families


async def render(state: AppState) -> bytes:
    refresh_process_gauges(state)
    families = []
    try:
        rows = await state.db.fetch(Q_DEVICES_BY_STATUS)
        devices = GaugeMetricFamily("clarin_whatsapp_devices", "WhatsApp devices by status (all accounts)",
                                    labels=["status"])
        for row in rows:
            devices.add_metric([str(row["status"])], float(row["n"]))
        families.append(devices)
    except Exception as exc:  # the database is down: the rest of the metrics still matter
        log.debug("device metrics unavailable: %s", exc)
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(_Snapshot(families))  # type: ignore[arg-type]
    path = multiprocess_dir()
    if path:
        merged = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(merged, path)
        body = generate_latest(merged)
    else:
        body = generate_latest(REGISTRY)
    return body + generate_latest(scrape)


# -- lifecycle --------------------------------------------------------------------------------------
class MetricsRuntime:
    """Installs the query timer and refreshes this worker's gauges in the background."""

    def __init__(self, state: AppState) -> None:
        self._state = state
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        db_pool.query_observer = observe_query
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                refresh_process_gauges(self._state)
            await asyncio.sleep(REFRESH_SECONDS)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if db_pool.query_observer is observe_query:
            db_pool.query_observer = None
        if multiprocess_dir():
            # Live gauges of this worker leave the merged view; counters and histograms stay.
            with contextlib.suppress(Exception):
                mark_process_dead(os.getpid())
