"""Devices R12–R19 (api.md §4.2) and the dev-only simulated WhatsApp routes.

Live events (WebSocket, to the device's account): ``device_status {device_id, status, qr_code: ""}`` on
every status change, ``qr_code {device_id, qr_code}`` for each pairing QR, ``contacts_synced
{device_id, count}`` after each contact sync (on connect and R19). Unlike the original, a manual
disconnect also emits ``device_status`` ``disconnected``.

Multi-worker / multi-server: a device is run by one process at a time (see :mod:`clarin.whatsapp.pool`);
connect, disconnect, delete, sync and the dev routes on a process that does not run it are executed by the
owner (through Redis, :mod:`clarin.whatsapp.remote`) and answer what the owner answered. Without Redis, or
before the owner listens, they answer ``503 "device is connected on another server, retry"``.

Dev routes (only with ``WHATSAPP_DRIVER=simulated``; otherwise they answer exactly like an unknown
route, ``404 Cannot <METHOD> <path>``):

- ``POST /api/dev/whatsapp/:device_id/inbound`` body :class:`~clarin.wire.devices.InboundSpec` → the
  driver delivers the matching neonize event (``{"success":true,"event":"Message","message_id":...}``);
- ``GET /api/dev/whatsapp/:device_id/sent`` → every payload the driver "sent" for the device (of the process
  running it; ``?here=true``: this process's own record, not routed);
- ``PUT /api/dev/whatsapp/:device_id/contacts`` body ``{contacts:[{jid,name,push_name,business_name}]}``
  → the device's simulated address book (what contact sync reads).
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from clarin.http.errors import HTTPError
from clarin.http.json import decoder_for
from clarin.http.paging import page_params
from clarin.http.request import Request
from clarin.http.routes import RouteGroup
from clarin.whatsapp import service
from clarin.whatsapp.simulated_driver import SimulatedDriver
from clarin.wire.common import Ok
from clarin.wire.devices import (
    DeviceNameBody,
    DeviceResponse,
    DevicesResponse,
    InboundResponse,
    InboundSpec,
    MessageResponse,
    PresencesResponse,
    SendBudgetBody,
    SentCallsResponse,
    SimulatedContactsBody,
    SimulatedFaultsBody,
)
from clarin.wire.queries import DevSentQuery, PageQuery

routes = RouteGroup(tags=("devices",))

T = TypeVar("T")

INVALID_ID = "Invalid device ID"


@routes.get("/api/devices", query=PageQuery, response=DevicesResponse)
async def list_devices(req: Request) -> DevicesResponse:
    page = page_params(req, service.MAX_DEVICES_PAGE)
    return DevicesResponse(devices=await service.list_devices(req.app, req.account_id, page.limit, page.offset))


@routes.post("/api/devices", body=DeviceNameBody, response=DeviceResponse, status=201)
async def create_device(req: Request, body: DeviceNameBody) -> DeviceResponse:
    return DeviceResponse(device=await service.create_device(req.app, req.account_id, body.name))


@routes.get("/api/devices/:id", response=DeviceResponse)
async def get_device(req: Request) -> DeviceResponse:
    device_id = req.path_uuid("id", INVALID_ID)
    return DeviceResponse(device=await service.get_device_health(req.app, req.account_id, device_id))


@routes.put("/api/devices/:id/budget", body=SendBudgetBody, response=DeviceResponse)
async def set_send_budget(req: Request, body: SendBudgetBody) -> DeviceResponse:
    """The number's own send limits (docs/NUMBER_HEALTH.md); answers the device with its health and budget."""
    device_id = req.path_uuid("id", INVALID_ID)
    return DeviceResponse(device=await service.set_send_budget(req.app, req.account_id, device_id, body))


@routes.put("/api/devices/:id", body=DeviceNameBody, response=DeviceResponse)
async def rename_device(req: Request, body: DeviceNameBody) -> DeviceResponse:
    device_id = req.path_uuid("id", INVALID_ID)
    return DeviceResponse(device=await service.rename_device(req.app, req.account_id, device_id, body.name))


@routes.post("/api/devices/:id/connect", response=MessageResponse)
async def connect_device(req: Request) -> MessageResponse:
    await service.connect_device(req.app, req.account_id, req.path_uuid("id", INVALID_ID))
    return MessageResponse(message="Connecting device...")


@routes.post("/api/devices/:id/disconnect", response=MessageResponse)
async def disconnect_device(req: Request) -> MessageResponse:
    await service.disconnect_device(req.app, req.account_id, req.path_uuid("id", INVALID_ID))
    return MessageResponse(message="Device disconnected")


@routes.delete("/api/devices/:id", response=MessageResponse)
async def delete_device(req: Request) -> MessageResponse:
    await service.delete_device(req.app, req.account_id, req.path_uuid("id", INVALID_ID))
    return MessageResponse(message="Device deleted")


@routes.post("/api/devices/:id/sync-contacts", response=MessageResponse)
async def sync_contacts(req: Request) -> MessageResponse:
    await service.sync_contacts(req.app, req.account_id, req.path_uuid("id", "invalid device id"))
    return MessageResponse(message="sync started")


# -- dev-only (simulated driver) ------------------------------------------------------------------
def _simulated(req: Request) -> SimulatedDriver:
    driver = service.simulated_driver(req.app)
    if driver is None:
        raise HTTPError(404, f"Cannot {req.method} {req.path}")
    return driver


async def _decode(req: Request, kind: type[T]) -> T:
    """Bodies of dev routes are decoded after the driver check, so the routes stay invisible otherwise."""
    try:
        return decoder_for(kind).decode(await req.body() or b"{}")
    except msgspec.ValidationError as exc:
        raise HTTPError(400, "Invalid request", detail=str(exc)) from None
    except msgspec.DecodeError:
        raise HTTPError(400, "Invalid request", detail="malformed JSON") from None


@routes.post("/api/dev/whatsapp/:device_id/inbound", response=InboundResponse)
async def simulate_inbound(req: Request) -> InboundResponse:
    _simulated(req)
    device_id = req.path_uuid("device_id", INVALID_ID)
    body = await _decode(req, InboundSpec)
    event, message_id = await service.simulate_inbound(req.app, req.account_id, device_id, body)
    return InboundResponse(event=event, message_id=message_id)


@routes.get("/api/dev/whatsapp/:device_id/sent", response=SentCallsResponse, query=DevSentQuery)
async def simulated_sent(req: Request) -> SentCallsResponse:
    _simulated(req)
    device_id = req.path_uuid("device_id", INVALID_ID)
    if req.query_bool("here", False):
        return SentCallsResponse(sent=await service.simulated_sent_here(req.app, req.account_id, device_id))
    return SentCallsResponse(sent=await service.simulated_sent(req.app, req.account_id, device_id))


@routes.put("/api/dev/whatsapp/:device_id/contacts", response=Ok)
async def set_simulated_contacts(req: Request) -> Ok:
    _simulated(req)
    device_id = req.path_uuid("device_id", INVALID_ID)
    body = await _decode(req, SimulatedContactsBody)
    await service.set_simulated_contacts(req.app, req.account_id, device_id, body.contacts)
    return Ok()


@routes.put("/api/dev/whatsapp/:device_id/faults", response=Ok)
async def set_simulated_faults(req: Request) -> Ok:
    """The device's sends fail like a throttled number's (docs/NUMBER_HEALTH.md)."""
    _simulated(req)
    device_id = req.path_uuid("device_id", INVALID_ID)
    body = await _decode(req, SimulatedFaultsBody)
    await service.set_simulated_faults(req.app, req.account_id, device_id, body)
    return Ok()


@routes.get("/api/dev/whatsapp/:device_id/presences", response=PresencesResponse)
async def simulated_presences(req: Request) -> PresencesResponse:
    _simulated(req)
    device_id = req.path_uuid("device_id", INVALID_ID)
    return PresencesResponse(presences=await service.simulated_presences(req.app, req.account_id, device_id))
