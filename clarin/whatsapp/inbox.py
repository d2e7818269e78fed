"""Per-device inbound queues: every non-lifecycle event of a device, in order, batched, to one handler.

One consumer task per device hands the events queued at that moment (up to ``INBOUND_BATCH``) to the
installed :class:`InboundHandler`. The driver's sink (``put``) returns only once its event was handled:
for neonize that is when whatsmeow may acknowledge the message, so an event is never acknowledged before
it is stored (the ingestor waits out a database outage instead of dropping the batch).

When a device stops running here (lease lost, disconnected, shutdown) its queue is *drained*: what was
received is still written — another process taking the device over cannot store it twice (the store is
idempotent). Only a deleted device's queue is dropped. At shutdown the drain is bounded; a batch cut short
keeps its callbacks unanswered, so WhatsApp delivers those events again to whoever runs the device next.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("clarin.whatsapp")

INBOUND_BATCH = 500
_DRAIN = object()  # the end mark of a device's queue


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """A device this process runs, as handed to the inbound handler and to senders."""

    id: uuid.UUID
    account_id: uuid.UUID
    jid: str  # own AD JID ("" until paired)


class InboundHandler(Protocol):
    """Receives every non-lifecycle event of the devices this process runs, in arrival order per device.

    Events of one device are handed over sequentially from a per-device queue (never concurrently). A
    handler may also define ``async handle_batch(device, events: list)``: it is then called with every
    event queued at that moment (up to ``INBOUND_BATCH``), so a burst can be written in one transaction.
    The driver's sink returns only after its event was handled (the simulated dev route relies on it).
    """

    async def handle(self, device: DeviceRef, event: Any) -> None:
        """Process one non-lifecycle neonize event (``MessageEv``, ``ReceiptEv``, ``PresenceEv``, …)."""


class LoggingInboundHandler:
    """The default until inbox ingestion is installed: log and ignore."""

    async def handle(self, device: DeviceRef, event: Any) -> None:
        log.debug("ignoring %s on device %s (no inbound handler installed)", type(event).__name__, device.id)


class DeviceInboxes:
    def __init__(self) -> None:
        self.handler: InboundHandler = LoggingInboundHandler()
        self._queues: dict[uuid.UUID, tuple[asyncio.Queue[Any], asyncio.Task[None]]] = {}
        self._draining: set[asyncio.Task[None]] = set()
        self._stopping = False

    async def put(self, device: DeviceRef, event: Any) -> None:
        """Queue one event of ``device`` and wait until it was handled."""
        inbox = self._queues.get(device.id)
        if inbox is None:
            queue: asyncio.Queue[Any] = asyncio.Queue()
            inbox = self._queues[device.id] = (queue, asyncio.create_task(self._consume(queue)))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        inbox[0].put_nowait((event, done, device))
        await done

    async def _consume(self, queue: asyncio.Queue[Any]) -> None:
        """Batches in arrival order until the drain mark; each event carries the device as it was when the
        event arrived, so events queued before the device stopped running here are still handled."""
        draining = False
        while not draining:
            item = await queue.get()
            if item is _DRAIN:
                return
            batch = [item]
            while len(batch) < INBOUND_BATCH and not queue.empty():
                item = queue.get_nowait()
                if item is _DRAIN:
                    draining = True
                    break
                batch.append(item)
            try:
                start = 0  # one handler call per device ref (the JID changes once, at pairing)
                for end in range(1, len(batch) + 1):
                    if end == len(batch) or batch[end][2] != batch[start][2]:
                        await self._handle(batch[start][2], [event for event, _, _ in batch[start:end]])
                        start = end
            finally:
                if not self._stopping:  # cut short by the shutdown: leave the callbacks unanswered
                    for _, done, _ in batch:
                        if not done.done():
                            done.set_result(None)

    async def _handle(self, device: DeviceRef, events: list[Any]) -> None:
        handle_batch = getattr(self.handler, "handle_batch", None)
        if handle_batch is not None:
            try:
                await handle_batch(device, events)
            except Exception:
                log.exception("inbound batch of %d events for device %s failed", len(events), device.id)
            return
        for event in events:
            try:
                await self.handler.handle(device, event)
            except Exception:
                log.exception("inbound %s for device %s failed", type(event).__name__, device.id)

    def drain(self, device_id: uuid.UUID) -> asyncio.Task[None] | None:
        """The device no longer runs here: handle what is queued, then end. Returns the consumer task."""
        inbox = self._queues.pop(device_id, None)
        if inbox is None:
            return None
        queue, task = inbox
        queue.put_nowait(_DRAIN)
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)
        return task

    def close(self, device_id: uuid.UUID) -> None:
        """The device was deleted: stop its consumer now and release what it holds."""
        inbox = self._queues.pop(device_id, None)
        if inbox is None:
            return
        queue, task = inbox
        task.cancel()
        while not queue.empty():
            item = queue.get_nowait()
            if item is not _DRAIN and not item[1].done():
                item[1].set_result(None)

    async def drain_all(self, timeout: float) -> None:
        """Shutdown: drain every queue for at most ``timeout`` seconds, then cancel what is left."""
        for device_id in list(self._queues):
            self.drain(device_id)
        pending = list(self._draining)
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        self._stopping = True
        for task in list(self._draining):
            task.cancel()
        if self._draining:
            await asyncio.gather(*self._draining, return_exceptions=True)
