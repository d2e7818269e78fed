"""Device contact sync (integrations.md B.11): the phone's address book into ``contacts`` and
``contact_device_names``, on every (re)connect and on R19. Split from clarin.whatsapp.pool (which calls it)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from clarin.db.queries import query
from clarin.whatsapp.driver import DeviceContact, NotConnected, WhatsAppDriver
from clarin.whatsapp.inbox import DeviceRef
from clarin.wire.devices import ContactsSyncedEvent

if TYPE_CHECKING:
    from clarin.db.pool import Database
    from clarin.realtime.broadcaster import Broadcaster

log = logging.getLogger("clarin.whatsapp.pool")

CONTACT_BATCH = 5000
Q_UPSERT_CONTACTS = query("upsert_device_contacts")


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
    count = await upsert_device_contacts(db, device, contacts)
    await broadcaster.broadcast(device.account_id, "contacts_synced", ContactsSyncedEvent(str(device.id), count))


async def upsert_device_contacts(db: Database, device: DeviceRef, contacts: list[DeviceContact]) -> int:
    unique: dict[str, DeviceContact] = {}
    for contact in contacts:
        if contact.jid:
            unique[contact.jid] = contact
    entries = list(unique.values())
    count = 0
    for start in range(0, len(entries), CONTACT_BATCH):
        batch = entries[start : start + CONTACT_BATCH]
        try:
            row = await db.fetch_row(Q_UPSERT_CONTACTS, [
                device.account_id, device.id,
                [c.jid for c in batch], [c.phone for c in batch], [c.name for c in batch],
                [c.push_name for c in batch], [c.business_name for c in batch],
            ])
        except Exception as exc:
            log.warning("contact batch of device %s skipped: %s", device.id, exc)
            continue
        count += int(row["count"]) if row else 0
    return count
