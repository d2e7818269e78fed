"""Device contact sync (integrations.md B.11): the phone's address book into ``contacts`` and
``contact_device_names``, on every (re)connect and on R19. Split from clarin.whatsapp.pool (which calls it)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clarin.db.queries import query
from clarin.webhooks.recording import Writer, recording
from clarin.whatsapp.driver import DeviceContact, NotConnected, WhatsAppDriver
from clarin.whatsapp.inbox import DeviceRef
from clarin.wire.devices import ContactsSyncedEvent

if TYPE_CHECKING:
    from clarin.db.pool import Database
    from clarin.realtime.broadcaster import Broadcaster

log = logging.getLogger("clarin.whatsapp.pool")

CONTACT_BATCH = 5000
EVENT = "contacts_synced"
Q_UPSERT_CONTACTS = query("upsert_device_contacts")


@dataclass(frozen=True, slots=True)
class _Writer:
    db: Database
    broadcaster: Broadcaster


async def sync_device_contacts(
    driver: WhatsAppDriver, db: Database, broadcaster: Broadcaster, device: DeviceRef
) -> None:
    try:
        contacts = await driver.fetch_contacts(device.id)
    except NotConnected:
        return
    except Exception as exc:
        log.warning("contact sync of device %s failed: %s", device.id, exc)
        return
    await upsert_device_contacts(db, device, contacts, announce=_Writer(db, broadcaster))


async def upsert_device_contacts(db: Database, device: DeviceRef, contacts: list[DeviceContact], *,
                                 announce: Writer | None = None) -> int:
    """Upsert in batches (a failing batch is logged and skipped); returns how many rows changed. ``announce``: end
    with ``contacts_synced``, its webhook outbox rows in the transaction of the last batch (the sync's last write)
    or, when that one failed or there was none, in their own right after."""
    unique: dict[str, DeviceContact] = {}
    for contact in contacts:
        if contact.jid:
            unique[contact.jid] = contact
    entries = list(unique.values())
    batches = [entries[start : start + CONTACT_BATCH] for start in range(0, len(entries), CONTACT_BATCH)]
    count = 0
    for index, batch in enumerate(batches):
        params = [
            device.account_id, device.id,
            [c.jid for c in batch], [c.phone for c in batch], [c.name for c in batch],
            [c.push_name for c in batch], [c.business_name for c in batch],
        ]
        try:
            if announce is not None and index == len(batches) - 1:
                async with recording(announce, device.account_id, quiet=True) as rec:
                    row = await rec.db.fetch_row(Q_UPSERT_CONTACTS, params)
                    rec.emit(EVENT, ContactsSyncedEvent(str(device.id), count + _changed(row)))
                return count + _changed(row)
            row = await db.fetch_row(Q_UPSERT_CONTACTS, params)
        except Exception as exc:
            log.warning("contact batch of device %s skipped: %s", device.id, exc)
            continue
        count += _changed(row)
    if announce is not None:
        try:
            async with recording(announce, device.account_id, quiet=True) as rec:
                rec.emit(EVENT, ContactsSyncedEvent(str(device.id), count))
        except Exception as exc:  # the contacts are stored; the next (re)connect announces again
            log.warning("contacts_synced of device %s not recorded: %s", device.id, exc)
    return count


def _changed(row: dict[str, Any] | None) -> int:
    return int(row["count"]) if row else 0
