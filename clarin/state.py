"""Everything a worker process shares between requests, built once at start-up."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from clarin.auth.revocation import TokenGuard
from clarin.auth.throttle import LoginThrottle
from clarin.cache import Cache, RedisHandle
from clarin.cache.pages import PageCache
from clarin.cache.totals import Totals
from clarin.campaigns.worker import CampaignWorker
from clarin.config import Settings
from clarin.db.pool import Database
from clarin.kommo.poller import KommoService
from clarin.messaging import outbound
from clarin.messaging.ingest import InboundIngestor
from clarin.messaging.scheduled import ScheduledMessages
from clarin.messaging.scheduled_sender import ScheduledSender, wake_owner
from clarin.realtime.authwatch import SocketAuthWatch
from clarin.realtime.broadcaster import Broadcaster
from clarin.realtime.hub import Hub
from clarin.storage.backend import MediaStorage, build_storage
from clarin.webhooks.outbox import Outbox
from clarin.webhooks.service import WebhookService
from clarin.webhooks.worker import DeliveryWorker
from clarin.whatsapp.pool import DevicePool


@dataclass
class AppState:
    settings: Settings
    db: Database
    redis: RedisHandle
    cache: Cache
    hub: Hub
    broadcaster: Broadcaster
    storage: MediaStorage
    pages: PageCache  # cached bodies of hot reads, retired per scope by the changes that affect them
    started_at: float = field(default_factory=time.time)
    routes: list[Any] = field(default_factory=list)  # the mounted route table (for OpenAPI)
    whatsapp: DevicePool | None = None  # WhatsApp device pool (WHATSAPP_DRIVER)
    kommo: KommoService | None = None  # Kommo sync (only when KOMMO_SUBDOMAIN and KOMMO_ACCESS_TOKEN are set)
    campaigns: CampaignWorker | None = None  # campaign sender (one pacing loop per device this process runs)
    scheduled_messages: ScheduledMessages | None = None  # scheduled single messages (clarin.messaging.scheduled)
    scheduled_sender: ScheduledSender | None = None  # sends them for the devices this process runs
    webhooks: WebhookService | None = None  # outgoing-webhook subscriptions (clarin.webhooks)
    webhook_outbox: Outbox | None = None  # outbox rows written by the broadcaster before events go out
    webhook_worker: DeliveryWorker | None = None  # delivers for the cluster while it holds the lock
    auth_guard: TokenGuard = field(init=False)  # per-request token revocation check (clarin.auth.revocation)
    login_throttle: LoginThrottle = field(init=False)  # failed-login limits (clarin.auth.throttle)
    totals: Totals = field(init=False)  # cached "N total" of paged lists (clarin.cache.totals)
    socket_auth: SocketAuthWatch = field(init=False)  # closes open WebSockets whose access was revoked

    def __post_init__(self) -> None:
        s = self.settings
        self.auth_guard = TokenGuard(self.db, self.redis, f"{s.redis_prefix}:auth", s.auth_cache_ttl)
        self.socket_auth = SocketAuthWatch(self.hub, self.auth_guard, s.auth_cache_ttl)
        self.totals = Totals(self.cache, s.redis_prefix)
        self.login_throttle = LoginThrottle(
            self.redis, s.redis_prefix, max_user=s.login_max_failures, max_ip=s.login_max_failures_ip,
            window=s.login_failure_window,
        )

    @classmethod
    def build(cls, settings: Settings, dsn: str) -> AppState:
        redis = RedisHandle(settings.redis_url)
        hub = Hub(max_connections=settings.ws_max_connections, max_per_account=settings.ws_max_per_account)
        pages = PageCache(redis, settings.redis_prefix, ttl=settings.page_cache_ttl)
        state = cls(
            settings=settings,
            db=Database(dsn, settings.db_pool_size),
            redis=redis,
            cache=Cache(redis),
            hub=hub,
            broadcaster=Broadcaster(hub, redis, channel=f"{settings.redis_prefix}:ws", retire=pages.retirement),
            storage=build_storage(settings),
            pages=pages,
        )
        state.whatsapp = DevicePool.create(settings, dsn, state.db, state.broadcaster)
        state.kommo = KommoService.create(settings, dsn, state)
        state.campaigns = CampaignWorker.create(settings, dsn, state)
        campaigns = state.campaigns
        # A device (re)connected here, e.g. taken over from a dead process: its running campaigns resume now,
        # not at the next CAMPAIGN_TICK.
        state._build_scheduled(dsn)
        scheduled = state.scheduled_sender
        assert scheduled is not None
        state.whatsapp.on_connected = lambda _device: (campaigns.wake(), scheduled.wake())
        state._build_webhooks(dsn)
        return state

    def _build_scheduled(self, dsn: str) -> None:
        self.scheduled_messages = ScheduledMessages(
            self.db, self.broadcaster, nudge=lambda account_id, device_id: wake_owner(self, account_id, device_id),
            count_cap=self.settings.total_count_cap)

        def send(account_id: Any, device_id: Any, to: str, body: str, idem: Any) -> Any:
            return outbound.send_text(self, account_id, device_id, to, body, idem=idem)

        self.scheduled_sender = ScheduledSender(self.db, dsn, self.whatsapp, self.scheduled_messages, send,
                                                tick=self.settings.scheduled_tick)

    def _build_webhooks(self, dsn: str) -> None:
        s = self.settings
        outbox = Outbox(self.db, self.redis, f"{s.redis_prefix}:webhooks", ttl=s.auth_cache_ttl or 2.0)
        worker = DeliveryWorker(
            dsn, self.db, self.broadcaster.broadcast, retry_scale=s.webhook_retry_scale, timeout=s.webhook_timeout,
            allow_private=s.webhook_allow_private, poll=s.webhook_poll, retention_days=s.webhook_retention_days,
        )
        outbox.on_written = worker.wake
        self.broadcaster.outbox = outbox
        self.webhook_outbox, self.webhook_worker = outbox, worker
        self.webhooks = WebhookService(
            self.db, outbox, self.broadcaster.broadcast, production=s.production,
            allow_private=s.webhook_allow_private, wake=worker.wake,
        )

    async def start(self) -> None:
        await self.redis.start()
        await self.auth_guard.start()
        await self.socket_auth.start()
        await self.broadcaster.start()
        if self.webhook_outbox is not None and self.webhook_worker is not None:
            await self.webhook_outbox.start()
            await self.webhook_worker.start()
        await self.storage.start()
        if self.whatsapp is not None:
            self.whatsapp.inbound = InboundIngestor(self)  # before start: boot reconnects may deliver at once
            await self.whatsapp.start()
            await self.whatsapp.remote.start(self)  # device calls from/to the processes that run the devices
        if self.kommo is not None:
            await self.kommo.start()
        if self.campaigns is not None:
            await self.campaigns.start()
        if self.scheduled_sender is not None:
            await self.scheduled_sender.start()

    async def stop(self) -> None:
        if self.campaigns is not None:
            await self.campaigns.stop()  # first: in-flight sends finish while the devices are still connected
        if self.scheduled_sender is not None:
            await self.scheduled_sender.stop()  # likewise
        if self.kommo is not None:
            await self.kommo.stop()
        if self.whatsapp is not None:
            await self.whatsapp.stop()
            if isinstance(self.whatsapp.inbound, InboundIngestor):
                await self.whatsapp.inbound.close()
        if self.webhook_worker is not None:
            await self.webhook_worker.stop()
        await self.socket_auth.stop()
        self.hub.close_all()
        await self.auth_guard.stop()
        await self.broadcaster.stop()
        if self.webhook_outbox is not None:
            await self.webhook_outbox.stop()
        await self.storage.close()
        await self.redis.close()
        self.db.close()
