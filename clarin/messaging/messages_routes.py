"""Messages: the page R24 and the sends R27–R30 (api.md §4.3–§4.4); rules in
:mod:`clarin.messaging.chats` (page) and :mod:`clarin.messaging.outbound` (sends).

Errors: ``400 Invalid device ID`` / ``Invalid chat ID`` for malformed UUIDs, ``400 invalid JID: <to>``,
``404 Device not found`` (unknown or foreign device), ``409 device not connected``, ``502 failed to send
message: <reason>`` when WhatsApp refuses the send. A send that lands on a worker that does not run the device
is run by the one that does (Redis, :mod:`clarin.whatsapp.remote`); only when it cannot be routed: ``503 device
is connected on another server, retry`` (``Retry-After: 2``), ``504`` when the owner does not answer in time.
WebSocket: ``message_sent`` (R27, R28, R30), ``message_reaction`` (R29).

Every send route takes an optional ``Idempotency-Key`` header (:mod:`clarin.messaging.idempotency`): a retry with
the same key gets the first answer and sends nothing.

R24 query: ``limit`` (default 50, ``<=0`` → 50, at most 500), ``offset``, and keyset ``before=<RFC 3339>``
or ``before_id=<message uuid>`` (see :mod:`clarin.messaging.chats`).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from clarin.http.cached import cached_read
from clarin.http.errors import HTTPError
from clarin.http.paging import page_params
from clarin.http.request import Request, parse_uuid
from clarin.http.response import RawJSONResponse
from clarin.http.routes import RouteGroup
from clarin.messaging import message_reads, outbound
from clarin.messaging.idempotency import IdemClaim, idempotent
from clarin.messaging.message_reads import MessageCursor
from clarin.whatsapp.driver import QuotedMessage
from clarin.wire.common import Ok
from clarin.wire.messages import (
    ChatMessagesResponse,
    ForwardMessageBody,
    InboxMessageResponse,
    PollBody,
    ReactBody,
    SendMessageBody,
)
from clarin.wire.queries import ChatMessagesQuery

routes = RouteGroup(tags=("messages",))

INVALID_CHAT_ID = "Invalid chat ID"
INVALID_DEVICE_ID = "Invalid device ID"


def _device_id(raw: str) -> uuid.UUID:
    return parse_uuid(raw.strip(), INVALID_DEVICE_ID)


def _before(raw: str) -> datetime | None:
    """An RFC 3339 time with a zone; a ``+`` decoded as a space by the query string is restored."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace(" ", "+"))
    except ValueError:
        raise HTTPError(400, "Invalid before timestamp") from None
    if value.tzinfo is None:
        raise HTTPError(400, "Invalid before timestamp")
    return value


@routes.get("/api/chats/:id/messages", query=ChatMessagesQuery, response=ChatMessagesResponse)
@cached_read
async def chat_messages(req: Request) -> RawJSONResponse:
    chat_id = req.path_uuid("id", INVALID_CHAT_ID)
    page = page_params(req, message_reads.MESSAGES_DEFAULT_LIMIT, message_reads.MESSAGES_MAX_LIMIT)
    before_id_raw = req.query_str("before_id").strip()
    cursor = MessageCursor(
        before=_before(req.query_str("before")),
        before_id=parse_uuid(before_id_raw, "Invalid before_id") if before_id_raw else None,
    )
    messages = await message_reads.chat_messages(req.app, req.account_id, chat_id, page.limit, page.offset, cursor)
    return RawJSONResponse(b'{"messages":' + messages + b',"success":true}')


@routes.post("/api/messages/send", body=SendMessageBody, response=InboxMessageResponse)
@idempotent
async def send_message(req: Request, body: SendMessageBody, idem: IdemClaim | None = None) -> InboxMessageResponse:
    device_id = _device_id(body.device_id)
    state, account_id = req.app, req.account_id
    if body.media_url.strip() and body.media_type.strip():
        _, message = await outbound.send_media(
            state, account_id, device_id, body.to, body.media_url, body.media_type, body.body, idem=idem
        )
    else:
        quoted = None
        if body.quoted_message_id.strip():
            quoted = QuotedMessage(body.quoted_message_id.strip(), body.quoted_sender.strip(), body.quoted_body)
        _, message = await outbound.send_text(state, account_id, device_id, body.to, body.body, quoted=quoted,
                                              idem=idem)
    return InboxMessageResponse(message=message)


@routes.post("/api/messages/forward", body=ForwardMessageBody, response=InboxMessageResponse)
@idempotent
async def forward_message(req: Request, body: ForwardMessageBody, idem: IdemClaim | None = None) -> InboxMessageResponse:
    device_id = _device_id(body.device_id)
    chat_id = parse_uuid(body.chat_id.strip(), INVALID_CHAT_ID)
    _, message = await outbound.forward(req.app, req.account_id, device_id, body.to, chat_id, body.message_id,
                                        idem=idem)
    return InboxMessageResponse(message=message)


@routes.post("/api/messages/react", body=ReactBody, response=Ok)
@idempotent
async def react(req: Request, body: ReactBody, idem: IdemClaim | None = None) -> Ok:
    device_id = _device_id(body.device_id)
    if not body.target_message_id.strip():
        raise HTTPError(400, "target_message_id is required")
    await outbound.send_reaction(req.app, req.account_id, device_id, body.to, body.target_message_id, body.emoji)
    return Ok()


@routes.post("/api/messages/poll", body=PollBody, response=InboxMessageResponse)
@idempotent
async def send_poll(req: Request, body: PollBody, idem: IdemClaim | None = None) -> InboxMessageResponse:
    device_id = _device_id(body.device_id)
    _, message = await outbound.send_poll(
        req.app, req.account_id, device_id, body.to, body.question, body.options or [], body.max_selections,
        idem=idem,
    )
    return InboxMessageResponse(message=message)
