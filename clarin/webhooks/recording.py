"""Webhook outbox rows that commit with the change that caused them (issue 15; docs/WEBHOOKS.md, "Durability").

Every write path that announces a data change does it through one block::

    async with recording(state, account_id) as rec:
        row = await rec.db.fetch_row(Q_UPDATE, [...])   # a single statement: rec.db
        async with rec.transaction() as tx:              # several statements: one transaction
            ...
        rec.emit("tag_update", {"action": "updated", "tag_id": ...})
        rec.on_commit(lambda: invalidate_leads(state, account_id))

For an account with an enabled subscription (``Outbox.wanted``, cached per process) the whole block is ONE
transaction: ``rec.db`` is that transaction, ``rec.transaction()`` yields it again, and the outbox rows of the
emitted events are inserted in it right before COMMIT, so the change and its webhook commit together or not at
all. For every other account nothing is added: ``rec.db`` is the pool (a single statement auto-commits, as
before), ``rec.transaction()`` opens the transaction the code always opened, and no outbox query runs.

After the block has committed: the ``on_commit`` hooks (cache drops that must precede the event), then the
events are broadcast in order, ``recorded=True`` when their rows were written here (the broadcaster then does not
write them again; otherwise it is the broadcaster's fallback :meth:`Outbox.record` that looks once more, for a
subscription created meanwhile). An exception leaving the block rolls the transaction back and broadcasts
nothing, so ``emit`` goes after the last statement that can fail. Inside the block use ``rec.db`` only, never
``state.db``: another pooled connection does not see the uncommitted change (and would hold a second connection).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

from clarin.db.pool import Database, Transaction

log = logging.getLogger("clarin.webhooks.recording")

if TYPE_CHECKING:
    from clarin.realtime.broadcaster import Broadcaster


class Writer(Protocol):
    """What a recorded write needs: the pool and the broadcaster (whose ``outbox`` is the webhook outbox).
    ``AppState`` is one; so is the device pool (device status)."""

    db: Database
    broadcaster: Broadcaster

class Recorder:
    """What one recorded write emits; ``db`` is where its statements go (see the module docstring)."""

    __slots__ = ("_database", "_hooks", "db", "events", "recording")

    def __init__(self, database: Database, db: Database | Transaction, recording: bool) -> None:
        self._database = database
        self.db = db
        self.recording = recording  # the outbox rows are written in this block's transaction
        self.events: list[tuple[str, Any]] = []
        self._hooks: list[Callable[[], Awaitable[Any]]] = []

    def emit(self, event: str, data: Any) -> None:
        self.events.append((event, data))

    def on_commit(self, hook: Callable[[], Awaitable[Any]]) -> None:
        """Run ``hook()`` after the commit, before the events go out (e.g. drop a cache the event invalidates)."""
        self._hooks.append(hook)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """The recording transaction itself, or (not recording) a transaction of its own from the pool."""
        if isinstance(self.db, Transaction):
            yield self.db
            return
        async with self._database.transaction() as tx:
            yield tx


@asynccontextmanager
async def recording(state: Writer, account_id: object, *, quiet: bool = False) -> AsyncIterator[Recorder]:
    """A write of ``account_id`` whose events' outbox rows commit with it. ``quiet``: a failure to announce after
    the commit is logged, not raised (writers that must not fail over a live update: a send that reached
    WhatsApp, background workers)."""
    account = str(account_id)
    outbox = state.broadcaster.outbox
    if outbox is not None and await outbox.wanted(account):
        async with state.db.transaction() as tx:
            rec = Recorder(state.db, tx, False)
            yield rec
            if rec.events:
                rec.recording = await outbox.write_in(tx, account, rec.events)
        if rec.recording and outbox is not None:
            outbox.written()
    else:
        rec = Recorder(state.db, state.db, False)
        yield rec
    try:
        await announce(state, account, rec.events, hooks=rec._hooks, recorded=rec.recording)
    except Exception as exc:
        if not quiet:
            raise
        log.warning("account %s: announcing %d committed events failed: %s", account, len(rec.events), exc)


async def announce(state: Writer, account: str, events: list[tuple[str, Any]], *,
                   hooks: list[Callable[[], Awaitable[Any]]] | None = None, recorded: bool) -> None:
    """After the commit: the hooks, then the events in order (one broadcast, or one batch)."""
    for hook in hooks or ():
        await hook()
    if len(events) == 1:
        await state.broadcaster.broadcast(account, events[0][0], events[0][1], recorded=recorded)
    elif events:
        await state.broadcaster.broadcast_many(account, events, recorded=recorded)
