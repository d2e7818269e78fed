"""Device rules (api.md §4.2, integrations.md B.2–B.4): tenant-scoped rows, live status from the pool.

Every device id is checked against the caller's account first; foreign and unknown ids are both
``404 Device not found``. Lifecycle work (connect, disconnect, delete, contact sync) is delegated to the
:class:`~clarin.whatsapp.pool.DevicePool`, which owns the lease and the live session. Those functions and the
simulated driver's dev operations are :func:`~clarin.whatsapp.remote.routed`: when another process runs the
device, they run there.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import msgspec
from google.protobuf.json_format import MessageToDict

from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.whatsapp import budget
from clarin.whatsapp.driver import (
    DeviceContact,
    InvalidJID,
    NotConnected,
    jid_to_str,
    jid_user,
    non_ad,
    parse_jid,
)
from clarin.whatsapp.health_view import with_health
from clarin.whatsapp.live import NOT_CONNECTED, resuming_error
from clarin.whatsapp.pool import DevicePool
from clarin.whatsapp.remote import OwnedElsewhere, routed
from clarin.wire.devices import (
    Device,
    InboundSpec,
    PresenceOut,
    SendBudgetBody,
    SentCallOut,
    SimulatedContact,
    SimulatedFaultsBody,
)

if TYPE_CHECKING:
    from clarin.state import AppState
    from clarin.whatsapp.simulated_driver import SimulatedDriver

Q_LIST = query("list_devices")
Q_GET = query("get_device")
Q_CREATE = query("create_device")
Q_RENAME = query("rename_device")
Q_DELETE = query("delete_device")

DEVICE_NOT_FOUND = "Device not found"
MAX_DEVICES_PAGE = 1000


def pool_of(state: AppState) -> DevicePool:
    pool = getattr(state, "whatsapp", None)
    if pool is None:
        raise HTTPError(503, "WhatsApp is not available on this server")
    return pool


def _device(state: AppState, row: dict[str, Any]) -> Device:
    device = msgspec.convert(row, Device)
    status, qr = pool_of(state).live_view(uuid.UUID(device.id), row["status"], row["qr_code"], bool(row["leased"]))
    return msgspec.structs.replace(device, status=status, qr_code=qr or None)


async def _row(state: AppState, account_id: uuid.UUID, device_id: uuid.UUID) -> dict[str, Any]:
    row = await state.db.fetch_row(Q_GET, [device_id, account_id])
    if row is None:
        raise HTTPError(404, DEVICE_NOT_FOUND)
    return row


# -- CRUD -------------------------------------------------------------------------------------------
async def list_devices(state: AppState, account_id: uuid.UUID, limit: int, offset: int) -> list[Device]:
    rows = await state.db.fetch(Q_LIST, [account_id, limit, offset])
    return [_device(state, row) for row in rows]


async def get_device(state: AppState, account_id: uuid.UUID, device_id: uuid.UUID) -> Device:
    return _device(state, await _row(state, account_id, device_id))


async def get_device_health(state: AppState, account_id: uuid.UUID, device_id: uuid.UUID) -> Device:
    """R14 plus the number's health, send budget and paused campaigns (docs/NUMBER_HEALTH.md)."""
    return await with_health(state, account_id, await get_device(state, account_id, device_id))


async def set_send_budget(
    state: AppState, account_id: uuid.UUID, device_id: uuid.UUID, body: SendBudgetBody
) -> Device:
    """The number's own limits (replacing earlier ones; ``{}`` = the defaults). Not routed: the budget lives in
    PostgreSQL and is read by the owner at every send."""
    configured = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not msgspec.UNSET}
    if not await budget.set_budget(state.db, account_id, device_id, configured):
        raise HTTPError(404, DEVICE_NOT_FOUND)
    return await get_device_health(state, account_id, device_id)


async def create_device(state: AppState, account_id: uuid.UUID, name: str) -> Device:
    row = await state.db.fetch_row(Q_CREATE, [account_id, name])
    assert row is not None
    return _device(state, {**row, "leased": False})


async def rename_device(state: AppState, account_id: uuid.UUID, device_id: uuid.UUID, name: str) -> Device:
    if not name.strip():
        raise HTTPError(400, "Name is required")
    if await state.db.fetch_val(Q_RENAME, [device_id, account_id, name.strip()]) is None:
        raise HTTPError(404, DEVICE_NOT_FOUND)
    return await get_device(state, account_id, device_id)


# -- lifecycle --------------------------------------------------------------------------------------
@routed
async def connect_device(state: AppState, account_id: uuid.UUID, device_id: uuid.UUID) -> None:
    row = await _row(state, account_id, device_id)
    await pool_of(state).connect(device_id, account_id, row["jid"] or "", row["status"])


@routed
async def disconnect_device(state: AppState, account_id: uuid.UUID, device_id: uuid.UUID) -> None:
    await _row(state, account_id, device_id)
    await pool_of(state).disconnect(device_id, account_id)


@routed
async def delete_device(state: AppState, account_id: uuid.UUID, device_id: uuid.UUID) -> None:
    await _row(state, account_id, device_id)

    async def delete_row() -> None:
        await state.db.execute(Q_DELETE, [device_id, account_id])

    await pool_of(state).delete(device_id, account_id, delete_row)


@routed
async def sync_contacts(state: AppState, account_id: uuid.UUID, device_id: uuid.UUID) -> None:
    await _row(state, account_id, device_id)
    await pool_of(state).sync_contacts(device_id, account_id)


# -- dev routes (simulated driver) ------------------------------------------------------------------
def simulated_driver(state: AppState) -> SimulatedDriver | None:
    from clarin.whatsapp.simulated_driver import SimulatedDriver

    pool = getattr(state, "whatsapp", None)
    driver = pool.driver if pool is not None else None
    return driver if isinstance(driver, SimulatedDriver) else None


def _dev_driver(state: AppState) -> SimulatedDriver:
    driver = simulated_driver(state)
    if driver is None:  # the routes check first; a process on another driver cannot serve a routed call
        raise HTTPError(409, NOT_CONNECTED)
    return driver


async def _run_here(state: AppState, device_id: uuid.UUID) -> bool:
    """Whether this process runs the device; ``OwnedElsewhere`` (→ routed) when another one does."""
    pool = pool_of(state)
    if pool.owns(device_id):
        return True
    if await pool.leased_elsewhere(device_id):
        raise OwnedElsewhere()
    return False


@routed
async def simulate_inbound(
    state: AppState, account_id: uuid.UUID, device_id: uuid.UUID, spec: InboundSpec
) -> tuple[str, str]:
    """Deliver ``spec`` on the device; returns (neonize event class name, message id)."""
    await _row(state, account_id, device_id)
    pool = pool_of(state)
    if not await _run_here(state, device_id):
        raise await pool.not_running(device_id, account_id, HTTPError(409, NOT_CONNECTED))
    if pool.resuming(device_id):
        raise resuming_error()
    driver = _dev_driver(state)
    try:
        event = await driver.deliver_inbound(device_id, spec)
    except NotConnected:
        raise HTTPError(409, NOT_CONNECTED) from None
    except (InvalidJID, ValueError) as exc:
        raise HTTPError(400, str(exc)) from None
    name = type(event).__name__
    if name == "Message":
        return name, event.Info.ID
    if name == "Receipt":
        return name, event.MessageIDs[0] if event.MessageIDs else ""
    return name, ""


@routed
async def simulated_sent(state: AppState, account_id: uuid.UUID, device_id: uuid.UUID) -> list[SentCallOut]:
    """What the driver of the process running the device sent (this process's record when nobody runs it)."""
    await _row(state, account_id, device_id)
    await _run_here(state, device_id)
    return sent_here(state, device_id)


async def simulated_sent_here(state: AppState, account_id: uuid.UUID, device_id: uuid.UUID) -> list[SentCallOut]:
    """What THIS process's driver sent for the device, whoever runs it now (never routed): tests use it to
    prove that a process which does not own a device never sent through it."""
    await _row(state, account_id, device_id)
    return sent_here(state, device_id)


def sent_here(state: AppState, device_id: uuid.UUID) -> list[SentCallOut]:
    driver = _dev_driver(state)
    return [
        SentCallOut(
            kind=call.kind, to=call.to, id=call.result.id, timestamp=call.result.timestamp,
            message=MessageToDict(call.message, preserving_proto_field_name=True),
        )
        for call in driver.sent
        if call.device_id == device_id
    ]


@routed
async def set_simulated_contacts(
    state: AppState, account_id: uuid.UUID, device_id: uuid.UUID, contacts: list[SimulatedContact],
) -> None:
    """The address book of the device in the driver of the process running it (or of this one)."""
    await _row(state, account_id, device_id)
    await _run_here(state, device_id)
    driver = _dev_driver(state)
    book: list[DeviceContact] = []
    for contact in contacts:
        try:
            jid = non_ad(jid_to_str(parse_jid(contact.jid)))
        except InvalidJID as exc:
            raise HTTPError(400, str(exc)) from None
        book.append(DeviceContact(jid=jid, phone=jid_user(jid), name=contact.name or contact.business_name,
                                  push_name=contact.push_name, business_name=contact.business_name))
    driver.set_contacts(device_id, book)


@routed
async def set_simulated_faults(
    state: AppState, account_id: uuid.UUID, device_id: uuid.UUID, faults: SimulatedFaultsBody,
) -> None:
    """Make the device's sends fail like a throttled number, in the driver of the process running it."""
    from clarin.whatsapp.simulated_driver import SendFaults

    await _row(state, account_id, device_id)
    await _run_here(state, device_id)
    healthy = not faults.error and faults.failure_rate <= 0
    _dev_driver(state).set_faults(device_id, None if healthy else SendFaults(
        error=faults.error, after=faults.after, failure_rate=faults.failure_rate))


@routed
async def simulated_presences(state: AppState, account_id: uuid.UUID, device_id: uuid.UUID) -> list[PresenceOut]:
    """The chat presences (typing) the driver of the process running the device sent."""
    await _row(state, account_id, device_id)
    await _run_here(state, device_id)
    return [PresenceOut(to=chat, state=kind, at=at) for dev, chat, kind, at in _dev_driver(state).presences
            if dev == device_id]
