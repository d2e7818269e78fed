"""The device pool: which devices this process runs, their live status and QR, and the lifecycle rules
of integrations.md B.3–B.5 and B.11.

Ownership: a device is run by exactly one process at a time, the holder of its lease
(:mod:`clarin.whatsapp.lease`, PostgreSQL advisory locks). Consequences for callers:

- an operation that needs the live session (:meth:`sender`, :meth:`connect`, :meth:`disconnect`,
  :meth:`delete`, :meth:`sync_contacts`) on a device whose lease another process holds raises
  :class:`~clarin.whatsapp.remote.OwnedElsewhere` (``503 "device is connected on another server, retry"``,
  ``Retry-After: 2``) before changing anything. The service functions around them (sends in
  :mod:`clarin.messaging.outbound`, device commands and dev routes in :mod:`clarin.whatsapp.service`) are
  :func:`~clarin.whatsapp.remote.routed`: they catch it and run the whole call on the owner through Redis
  pub/sub (:class:`~clarin.whatsapp.remote.DeviceRouter`, ``pool.remote``), answering what the owner answered.
  The 503 reaches a client only when that is impossible (no Redis, or the owner not subscribed yet);
- the router subscribes to the channel of every device in this pool (:meth:`owned_ids`; every change of
  that set calls ``remote.ownership_changed()``) and runs the calls other processes send for them;
- nobody answers for the device: ``409 "device not connected"``, or ``503 "device is reconnecting, retry"``
  (``Retry-After: 1``) while a paired device with a live last status waits to be resumed (:meth:`not_running`).

Status: the owner writes every change to ``devices`` first, so other processes read the owner's view
(:meth:`live_view`); a device no process holds is ``disconnected`` (``logged_out`` is kept).

Start-up and take-over (:class:`~clarin.whatsapp.claims.DeviceClaims`, owned by the pool as ``pool.claims``): paired
devices nobody holds are claimed and resumed (at start-up all of them, then every ``WHATSAPP_LEASE_RENEW`` s the ones
whose last status is live). A watchdog pings the lease session every ``LEASE_CHECK`` s and stops every device the
moment it is lost; the session is re-opened every ``REOPEN_INTERVAL`` s and this process's former devices re-claimed
at once, others only after ``CLAIM_GRACE``.
Graceful shutdown releases the leases without writing ``disconnected``: another server takes over at once.

Events: the driver's sink is :meth:`DevicePool.on_event`. Connection lifecycle events (QR, PairStatus,
Connected, Disconnected, LoggedOut, …) are handled here; everything else (messages, receipts, presence,
history sync) goes to the pluggable :class:`InboundHandler` (``pool.inbound``), which by default logs
and ignores them until the inbox ingestion is installed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.webhooks.recording import recording
from clarin.whatsapp.claims import DeviceClaims
from clarin.whatsapp.contacts import sync_device_contacts, upsert_device_contacts
from clarin.whatsapp.driver import (
    DeviceContact,
    DeviceSession,
    DriverError,
    WhatsAppDriver,
    jid_to_str,
    jid_user,
)
from clarin.whatsapp.drivers import make_driver
from clarin.whatsapp.held import HeldWrites
from clarin.whatsapp.inbox import DeviceInboxes, DeviceRef, InboundHandler
from clarin.whatsapp.lease import DeviceLeases, LeaseUnavailable
from clarin.whatsapp.live import (
    CONNECTED,
    CONNECTING,
    DISCONNECTED,
    LIVE_STATUSES,
    LOGGED_OUT,
    NOT_CONNECTED,
    LiveDevice,
    describe_event,
    resuming_error,
    set_fields,
)
from clarin.whatsapp.peers import PeerWatch
from clarin.whatsapp.proto import (
    ClientOutdatedEv,
    ConnectedEv,
    ConnectFailureEv,
    DisconnectedEv,
    LoggedOutEv,
    PairStatusEv,
    QREv,
    StreamReplacedEv,
    TemporaryBanEv,
)
from clarin.whatsapp.remote import DeviceRouter, OwnedElsewhere
from clarin.wire.devices import DeviceStatusEvent, QRCodeEvent

if TYPE_CHECKING:
    from clarin.config import Settings
    from clarin.db.pool import Database
    from clarin.realtime.broadcaster import Broadcaster

log = logging.getLogger("clarin.whatsapp.pool")

QR_TIMEOUT = 160.0  # whatsmeow: 60 s for the first code + 5 × 20 s (B.4); neonize does not report it
SHUTDOWN_DRAIN_SECONDS = 5.0  # at shutdown, how long received events may take to be written

Q_SET_STATUS = query("device_set_status")
Q_SET_QR = query("device_set_qr")
Q_SET_CONNECTED = query("device_set_connected")
Q_MARK_DISCONNECTED = query("device_mark_disconnected_if_live")
Q_LEASE_HELD = query("device_lease_held")
Q_RUN_STATE = query("device_run_state")


class DevicePool:
    def __init__(
        self,
        driver: WhatsAppDriver,
        db: Database,
        broadcaster: Broadcaster,
        leases: DeviceLeases,
        *,
        renew_interval: float = 10.0,
        qr_timeout: float = QR_TIMEOUT,
        peers: PeerWatch | None = None,
    ) -> None:
        self.driver = driver
        self.db = db
        self.broadcaster = broadcaster
        self.leases = leases
        self.inboxes = DeviceInboxes()
        self.qr_timeout = qr_timeout
        self._devices: dict[uuid.UUID, LiveDevice] = {}
        self._locks: dict[uuid.UUID, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # start-up / take-over scans and the lease watchdog (clarin.whatsapp.claims)
        self.claims = DeviceClaims(db, leases, self._devices, self._claim_one, self._drop_all,
                                   renew_interval=renew_interval, peers=peers)
        self.on_connected: Callable[[uuid.UUID], None] | None = None  # e.g. resume its campaigns now
        self.held = HeldWrites()  # send results waiting for the database (clarin.messaging.outbound_store)
        self.remote = DeviceRouter(self)  # calls for devices another process runs (started by AppState.start)
        driver.set_event_sink(self.on_event)

    @classmethod
    def create(cls, settings: Settings, dsn: str, db: Database, broadcaster: Broadcaster) -> DevicePool:
        pool = cls(
            make_driver(settings, dsn), db, broadcaster, DeviceLeases(dsn, settings.whatsapp_lease_ttl),
            renew_interval=settings.whatsapp_lease_renew,
        )
        pool.claims.peers = PeerWatch(dsn, lambda _peer: pool.claims.wake())
        return pool

    @property
    def renew_interval(self) -> float:
        """Seconds between take-over scans (``WHATSAPP_LEASE_RENEW``); read at each scan."""
        return self.claims.renew_interval

    @renew_interval.setter
    def renew_interval(self, seconds: float) -> None:
        self.claims.renew_interval = seconds

    # -- process lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        await self.driver.start()
        self.claims.start()

    async def stop(self) -> None:
        await self.remote.stop()  # no more calls from other processes; in-flight ones finish first
        await self.claims.stop()
        await self.held.drain(SHUTDOWN_DRAIN_SECONDS)
        await self.inboxes.drain_all(SHUTDOWN_DRAIN_SECONDS)
        for task in list(self._tasks):
            task.cancel()
        for live in list(self._devices.values()):
            self._cancel_qr_timer(live)
            try:
                await self.driver.disconnect(live.id)
            except Exception as exc:
                log.warning("disconnecting %s at shutdown: %s", live.id, exc)
        self._devices.clear()
        self.remote.ownership_changed()
        await self.leases.close()  # releases every lease at once; DB status stays live → take-over
        await self.driver.stop()

    async def _claim_one(self, device_id: uuid.UUID, account_id: uuid.UUID, jid: str, reason: str) -> bool:
        """Take the lease of a device this process does not run and resume it (for :class:`DeviceClaims`).
        ``False``: run here already, or another process holds its lease. A resume that fails after the lease
        was taken is logged and still counts as claimed."""
        async with self._lock(device_id):
            if device_id in self._devices or not await self.leases.try_acquire(device_id):
                return False
            log.info("%s: resuming device %s", reason, device_id)
            try:
                await self._start(device_id, account_id, jid)
            except Exception as exc:
                log.warning("%s of device %s failed: %s", reason, device_id, exc)
            return True

    async def _drop_all(self, reason: str, stopped: Callable[[uuid.UUID], None]) -> None:
        """The leases are gone: stop every client now so no session runs twice (``stopped(id)`` as each leaves)."""
        for live in list(self._devices.values()):
            log.error("stopping device %s: %s", live.id, reason)
            self._cancel_qr_timer(live)
            self._devices.pop(live.id, None)
            # Events already received are still written (they wait for the database if it is down, and
            # another process taking the device over cannot store them twice).
            self.inboxes.drain(live.id)
            stopped(live.id)
            try:
                await self.driver.disconnect(live.id)
            except Exception as exc:
                log.debug("disconnect %s: %s", live.id, exc)
        self.remote.ownership_changed()

    @property
    def inbound(self) -> InboundHandler:
        """The handler of every non-lifecycle event (clarin.messaging.ingest installs the ingestor)."""
        return self.inboxes.handler

    @inbound.setter
    def inbound(self, handler: InboundHandler) -> None:
        self.inboxes.handler = handler

    # -- reads ----------------------------------------------------------------------------------
    def owns(self, device_id: uuid.UUID) -> bool:
        return device_id in self._devices

    def owned_ids(self) -> list[uuid.UUID]:
        """The devices this process runs (their calls are routed here, see :mod:`clarin.whatsapp.remote`)."""
        return list(self._devices)

    def live_view(self, device_id: uuid.UUID, db_status: str, db_qr: str | None, leased: bool) -> tuple[str, str | None]:
        """The (status, qr_code) a device read shows (B.3 read path, across processes).

        This process owns it → the in-memory status, and the in-memory QR when non-empty. Another process
        holds its lease → the row as that owner wrote it. Nobody holds it → ``disconnected`` (or
        ``logged_out``) with the row's QR."""
        live = self._devices.get(device_id)
        if live is not None:
            return live.status, (live.qr_code or db_qr)
        if leased:
            return db_status, db_qr
        return (LOGGED_OUT if db_status == LOGGED_OUT else DISCONNECTED), db_qr

    async def leased_elsewhere(self, device_id: uuid.UUID) -> bool:
        if device_id in self._devices:
            return False
        return bool(await self.db.fetch_val(Q_LEASE_HELD, [device_id]))

    async def sender(self, device_id: uuid.UUID, account_id: uuid.UUID) -> DeviceRef:
        """The live device to send through; 503 when another server runs it, 409 when not connected.
        (The caller has already checked that the device exists in ``account_id``.)

        Not run here while calls can be routed: ``OwnedElsewhere`` without looking the lease up (the routed
        call finds the owner, or falls back to the lease check: 503 or 409)."""
        live = self._devices.get(device_id)
        if live is None or live.account_id != account_id:
            if self.remote.available:
                raise OwnedElsewhere(if_nobody=HTTPError(409, NOT_CONNECTED), account_id=account_id)
            raise await self.not_running(device_id, account_id, HTTPError(409, NOT_CONNECTED))
        if live.status != CONNECTED or not await self.driver.is_connected(device_id):
            if self.resuming(device_id):
                raise resuming_error()
            raise HTTPError(409, NOT_CONNECTED)
        return live.ref()

    def resuming(self, device_id: uuid.UUID) -> bool:
        """Run here, a paired session coming back (not a QR pairing): it will be connected in a moment."""
        live = self._devices.get(device_id)
        return live is not None and live.status == CONNECTING and bool(live.jid)

    async def refused(self, device_id: uuid.UUID, account_id: uuid.UUID, exc: HTTPError) -> HTTPError:
        """The error for a driver call refused as not connected (``exc``, the 409), which sent nothing. The client
        the call started on may have been stopped by a lost lease session (its DeviceRef taken before), and the
        device resumed since: resuming or connected again here, or stopped and not run here any more
        (:meth:`not_running`), is a 503 the client retries; the 409 only for a device that is down here."""
        live = self._devices.get(device_id)
        if live is None:
            return await self.not_running(device_id, account_id, exc)
        if live.status == CONNECTED or self.resuming(device_id):
            return resuming_error()
        return exc

    async def not_running(self, device_id: uuid.UUID, account_id: uuid.UUID, nobody: HTTPError) -> HTTPError:
        """The error for a call on a device no process answers for: another process holds the lease → the 503 of
        :class:`OwnedElsewhere`; nobody holds it but it will be resumed (a paired device whose last status is live:
        its owner lost its lease or died, a take-over is coming) → ``503 device is reconnecting, retry``;
        otherwise ``nobody`` (``409 device not connected``)."""
        row = await self.db.fetch_row(Q_RUN_STATE, [device_id, account_id])
        if row is not None and row["held"]:
            return OwnedElsewhere()
        if row is not None and row["resumable"]:
            return resuming_error()
        return nobody

    # -- commands -------------------------------------------------------------------------------
    async def connect(self, device_id: uuid.UUID, account_id: uuid.UUID, jid: str, db_status: str) -> None:
        """R16. No-op while the device is connecting (QR shown) or connected here."""
        async with self._lock(device_id):
            live = self._devices.get(device_id)
            if live is not None and live.status in LIVE_STATUSES:
                return
            try:
                acquired = await self.leases.try_acquire(device_id)
            except LeaseUnavailable:
                raise HTTPError(503, "WhatsApp device ownership is unavailable, retry",
                                headers=[("retry-after", "2")]) from None
            if not acquired:
                raise OwnedElsewhere()
            # A logged-out device's session is gone from the store: pair it again from scratch.
            await self._start(device_id, account_id, "" if db_status == LOGGED_OUT else jid)

    async def _start(self, device_id: uuid.UUID, account_id: uuid.UUID, jid: str) -> None:
        """Connect a device whose lease this process holds (caller holds the device lock)."""
        live = LiveDevice(device_id, account_id, jid=jid, status=CONNECTING)
        self._devices[device_id] = live
        self.remote.ownership_changed()
        try:
            await self._persist_status(live, CONNECTING)
        except BaseException:
            self._devices.pop(device_id, None)
            self.remote.ownership_changed()
            await self.leases.release(device_id)
            raise
        try:
            await self.driver.connect(DeviceSession(device_id, account_id, jid))
        except Exception as exc:
            log.warning("connect of device %s failed: %s", device_id, exc)
            await self._release(live, DISCONNECTED)
            raise HTTPError(502, f"failed to connect: {exc}") from exc

    async def disconnect(self, device_id: uuid.UUID, account_id: uuid.UUID) -> None:
        """R17: close the socket, keep the session; the device will not be taken over."""
        async with self._lock(device_id):
            live = self._devices.get(device_id)
            if live is None:
                if await self.leased_elsewhere(device_id):
                    raise OwnedElsewhere()
                await self.db.execute(Q_MARK_DISCONNECTED, [device_id, account_id])
                return
            await self._stop_client(live)
            await self._release(live, DISCONNECTED)

    async def delete(self, device_id: uuid.UUID, account_id: uuid.UUID, delete_row: Any) -> None:
        """R18: log the phone out (while still connected), disconnect, drop, then ``delete_row()``."""
        async with self._lock(device_id):
            live = self._devices.get(device_id)
            if live is None:
                try:
                    acquired = await self.leases.try_acquire(device_id)
                except LeaseUnavailable:
                    acquired = not await self.leased_elsewhere(device_id)
                if not acquired:
                    raise OwnedElsewhere()
            else:
                self._cancel_qr_timer(live)
                if live.status == CONNECTED and await self.driver.is_connected(device_id):
                    try:
                        await self.driver.logout(device_id)
                    except DriverError as exc:
                        log.warning("logout of device %s failed: %s", device_id, exc)
                await self._stop_client(live)
                self._devices.pop(device_id, None)
                self.remote.ownership_changed()
                self.inboxes.close(device_id)
            try:
                await delete_row()
            finally:
                await self.leases.release(device_id)
        self._locks.pop(device_id, None)

    async def sync_contacts(self, device_id: uuid.UUID, account_id: uuid.UUID) -> None:
        """R19: start a background contact sync of a connected device this process runs."""
        live = self._devices.get(device_id)
        if live is None or live.account_id != account_id:
            if await self.leased_elsewhere(device_id):
                raise OwnedElsewhere()
            raise HTTPError(409, NOT_CONNECTED)
        if live.status != CONNECTED:
            raise HTTPError(409, NOT_CONNECTED)
        self._spawn(self._sync_contacts(live.ref()))

    # -- driver events --------------------------------------------------------------------------
    async def on_event(self, device_id: uuid.UUID, event: Any) -> None:
        """The driver's sink. Never raises: a bad event is logged and skipped."""
        live = self._devices.get(device_id)
        if live is None:
            log.debug("dropping %s for device %s (not run by this process)", type(event).__name__, device_id)
            return
        try:
            if isinstance(event, QREv):
                await self._on_qr(live, event)
            elif isinstance(event, PairStatusEv):
                self._on_pair_status(live, event)
            elif isinstance(event, ConnectedEv):
                await self._on_connected(device_id)
            elif isinstance(event, DisconnectedEv):
                await self._on_disconnected(device_id)
            elif isinstance(event, LoggedOutEv):
                await self._on_logged_out(device_id, event)
            elif isinstance(event, (ConnectFailureEv, StreamReplacedEv, TemporaryBanEv, ClientOutdatedEv)):
                log.warning("device %s: %s %s", device_id, type(event).__name__, describe_event(event))
            else:
                await self.inboxes.put(live.ref(), event)
        except Exception:
            log.exception("handling %s for device %s failed", type(event).__name__, device_id)

    async def _on_qr(self, live: LiveDevice, event: Any) -> None:
        if not event.Codes:
            return
        await self.db.execute(Q_SET_QR, [live.id, live.account_id, event.Codes[0]])
        live.qr_code, live.status = event.Codes[0], CONNECTING
        await self._broadcast(live, "qr_code", QRCodeEvent(str(live.id), live.qr_code))
        if live.qr_timer is None:
            live.qr_timer = self._spawn(self._qr_timeout(live.id))

    def _on_pair_status(self, live: LiveDevice, event: Any) -> None:
        if event.Status == PairStatusEv.SUCCESS and event.ID.User:
            live.jid = jid_to_str(event.ID)
            log.info("device %s paired as %s", live.id, live.jid)
        else:
            log.warning("device %s pairing failed: %s", live.id, event.Error)

    async def _on_connected(self, device_id: uuid.UUID) -> None:
        async with self._lock(device_id):
            live = self._devices.get(device_id)
            if live is None:
                return
            self._cancel_qr_timer(live)
            jid = await self.driver.own_jid(device_id) or live.jid
            # the row first, then memory: a reader elsewhere never sees an older status than this process
            async with recording(self, live.account_id, quiet=True) as rec:  # device_status outbox rows with it
                await rec.db.execute(Q_SET_CONNECTED, [device_id, live.account_id, jid, jid_user(jid)])
                rec.emit("device_status", DeviceStatusEvent(str(device_id), CONNECTED))
                rec.on_commit(lambda: set_fields(live, jid=jid, status=CONNECTED, qr_code=""))
            self._spawn(self._sync_contacts(live.ref()))  # on every (re)connect (B.5)
        if self.on_connected is not None:
            self.on_connected(device_id)

    async def _on_disconnected(self, device_id: uuid.UUID) -> None:
        """Unexpected socket loss: the driver reconnects by itself; the lease is kept."""
        async with self._lock(device_id):
            live = self._devices.get(device_id)
            if live is None or live.status == DISCONNECTED:
                return
            await self._persist_status(live, DISCONNECTED)

    async def _on_logged_out(self, device_id: uuid.UUID, event: Any) -> None:
        async with self._lock(device_id):
            live = self._devices.get(device_id)
            if live is None:
                return
            log.warning("device %s logged out (reason %s)", device_id, event.Reason)
            live.jid = ""  # memory only: devices.jid is kept (B.3)
            await self._stop_client(live)
            await self._release(live, LOGGED_OUT)

    async def _qr_timeout(self, device_id: uuid.UUID) -> None:
        await asyncio.sleep(self.qr_timeout)
        async with self._lock(device_id):
            live = self._devices.get(device_id)
            if live is None or live.status == CONNECTED:
                return
            live.qr_timer = None  # this task: do not cancel ourselves below
            log.info("device %s: pairing QR expired", device_id)
            await self._stop_client(live)
            await self._release(live, DISCONNECTED)

    # -- contact sync (B.11, clarin.whatsapp.contacts) -------------------------------------------------
    async def _sync_contacts(self, device: DeviceRef) -> None:
        await sync_device_contacts(self.driver, self.db, self.broadcaster, device)

    async def upsert_contacts(self, device: DeviceRef, contacts: list[DeviceContact]) -> int:
        return await upsert_device_contacts(self.db, device, contacts)

    # -- helpers --------------------------------------------------------------------------------
    def _lock(self, device_id: uuid.UUID) -> asyncio.Lock:
        lock = self._locks.get(device_id)
        if lock is None:
            lock = self._locks[device_id] = asyncio.Lock()
        return lock

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _cancel_qr_timer(self, live: LiveDevice) -> None:
        if live.qr_timer is not None:
            live.qr_timer.cancel()
            live.qr_timer = None

    async def _stop_client(self, live: LiveDevice) -> None:
        self._cancel_qr_timer(live)
        try:
            await self.driver.disconnect(live.id)
        except Exception as exc:
            log.warning("disconnect of device %s failed: %s", live.id, exc)

    async def _release(self, live: LiveDevice, status: str) -> None:
        """Stop running a device here: final status persisted and broadcast, lease released."""
        try:
            await self._persist_status(live, status)
        finally:
            self._devices.pop(live.id, None)
            self.remote.ownership_changed()
            self.inboxes.drain(live.id)  # what was received before the status change is still written
            live.status = status
            await self.leases.release(live.id)

    async def _persist_status(self, live: LiveDevice, status: str) -> None:
        async with recording(self, live.account_id, quiet=True) as rec:  # device_status outbox rows with the row
            await rec.db.execute(Q_SET_STATUS, [live.id, live.account_id, status])
            rec.emit("device_status", DeviceStatusEvent(str(live.id), status))
            rec.on_commit(lambda: set_fields(live, status=status))

    async def _broadcast(self, live: LiveDevice, event: str, payload: Any) -> None:
        try:
            await self.broadcaster.broadcast(live.account_id, event, payload)
        except Exception as exc:
            log.warning("broadcast of %s failed: %s", event, exc)
