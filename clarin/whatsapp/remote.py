"""Device calls routed to the process that runs the device, through Redis pub/sub.

A device is run by exactly one process (its lease holder, :mod:`clarin.whatsapp.lease`). A request that
needs the live session (send, react, poll, forward, connect, disconnect, delete, contact sync, the
simulated driver's dev routes) may land on any worker of any server. The service functions that need
the session are decorated with :func:`routed`; such a function first runs locally, and when the pool
answers :class:`OwnedElsewhere` (another process holds the lease) the call is sent to the owner:

- every process has an instance id and a :class:`DeviceRouter` with one dedicated pub/sub connection,
  subscribed to its reply channel ``<REDIS_PREFIX>:wa:reply:<instance>`` and to
  ``<REDIS_PREFIX>:wa:dev:<device_id>`` for every device it runs (subscribed when the device starts
  running here, unsubscribed when it stops: the pool calls :meth:`DeviceRouter.ownership_changed`);
- the requester publishes ``{id, reply_to, op, account_id, device_id, payload}`` (msgpack; ``payload`` =
  the function's arguments) on the device channel. PUBLISH returns the number of receivers: ``0`` → no
  process can take it: ``409 device not connected`` when no process holds the lease (a send does not look
  the lease up before routing, see ``OwnedElsewhere.if_nobody``), otherwise (the owner is not subscribed
  yet, or has no Redis) the original ``503 device is connected on another server, retry`` +
  ``Retry-After: 2``;
- the owner checks it still runs the device, runs the *same* function locally (so DB writes, WebSocket
  events and cache invalidation happen exactly as for a local call) and publishes ``{id, status, body |
  error}`` on the requester's reply channel; the requester returns that result, or raises that same
  error (``HTTPError`` with its status, message, detail and headers; database errors as the same class,
  so the server maps them as it would locally);
- a receiver that does not run the device (its unsubscribe is still in flight) answers ``declined``;
  when every receiver declines, the requester answers the 503 above;
- no reply within ``WHATSAPP_REMOTE_TIMEOUT`` s (default 30) → ``504 "the server running the device did
  not answer in time"`` (the owner may still complete the operation; a reply arriving later is dropped).
  Losing the requester's own subscription fails its waiting calls at once with the same 504. When the owner
  dies before answering (its lease gone, checked every ``OWNER_CHECK`` s), the call ends within ~1 s with
  ``503 "the server running the device stopped, retry"`` + ``Retry-After: 1``.

Exactly once: Redis delivers a published message once per subscribed connection; the owner also remembers
the last ``SEEN_MAX`` request ids and never runs one twice. A requester never retries by itself.

Without Redis (``REDIS_URL`` unset, or Redis down): nothing is routed; such calls answer the 503 as before,
and the condition is logged once (again after Redis came back and went away again).

Metrics: ``clarin_whatsapp_routed_calls_total{op, outcome}`` (requester side: ``ok``, ``error``,
``no_owner``, ``declined``, ``timeout``, ``owner_gone``, ``unavailable``) and ``clarin_whatsapp_routed_executions_total{op}``
(owner side).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import os
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import msgspec
from prometheus_client import Counter

from clarin.cache.redis_client import CONNECTION_ERRORS
from clarin.db.errors import (
    ConstraintViolation,
    DatabaseError,
    DatabaseUnavailable,
    ForeignKeyViolation,
    UniqueViolation,
)
from clarin.http.errors import HTTPError
from clarin.whatsapp.budget import KINDS, OverBudget

if TYPE_CHECKING:
    from clarin.cache.redis_client import RedisHandle
    from clarin.whatsapp.pool import DevicePool

log = logging.getLogger("clarin.whatsapp.remote")

OWNED_ELSEWHERE = "device is connected on another server, retry"
TIMED_OUT = "the server running the device did not answer in time"
DEFAULT_TIMEOUT = 30.0
OWNER_GONE = "the server running the device stopped, retry"
OWNER_CHECK = 1.0  # seconds without a reply after which a routed call checks that its device still has an owner
SEEN_MAX = 10_000
RESYNC_INTERVAL = 5.0  # subscriptions are also reconciled with the pool this often (changes apply at once)
SHUTDOWN_GRACE = 5.0  # seconds in-flight executions for other processes get to finish at shutdown
_SKIPPED = ("state", "account_id", "device_id")

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

ROUTED_CALLS = Counter(
    "clarin_whatsapp_routed_calls_total", "Device calls sent to the process that runs the device, by outcome",
    ["op", "outcome"],
)
ROUTED_EXECUTIONS = Counter(
    "clarin_whatsapp_routed_executions_total", "Device calls run here on behalf of another process", ["op"],
)

# Set while a routed call runs on the owner: nothing inside it is routed again (no ping-pong).
_EXECUTING: contextvars.ContextVar[bool] = contextvars.ContextVar("clarin_routed_executing", default=False)


class _OwnerGone(Exception):
    """A routed call's device lost its owner before the owner answered."""


class OwnedElsewhere(HTTPError):
    """Another process holds the device's lease: ``503`` + ``Retry-After: 2`` unless the call is routed.

    ``if_nobody``: the lease was not looked up (a send while routing is available spares that query, the
    owner's answer settles it); when the call cannot be routed and no process holds the lease after all,
    that error (``409 device not connected``) is raised instead of the 503.
    """

    def __init__(self, if_nobody: HTTPError | None = None, account_id: uuid.UUID | None = None) -> None:
        super().__init__(503, OWNED_ELSEWHERE, headers=[("retry-after", "2")])
        self.if_nobody = if_nobody
        self.account_id = account_id


# -- wire ---------------------------------------------------------------------------------------------
class RouteRequest(msgspec.Struct, frozen=True):
    id: str
    reply_to: str
    op: str
    account_id: str
    device_id: str
    payload: bytes  # msgpack of the function's remaining arguments


class RouteReply(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    status: int  # 200 → ``body``; 0 → declined (not the owner); otherwise an error
    body: bytes = b""
    error: str = ""
    detail: str | None = None
    headers: list[tuple[str, str]] = []
    db_error: str = ""  # class name of a database error (re-raised as such by the requester)
    constraint: str = ""
    # An OverBudget answer (clarin.whatsapp.budget): re-raised as such, so background senders on any node wait
    # ``retry_after`` exactly as on the owner. Absent in replies of older processes: a plain 429 HTTPError then.
    budget_kind: str = ""
    retry_after: float = 0.0
    budget_window: str = ""


_DB_ERRORS: dict[str, type[DatabaseError]] = {
    cls.__name__: cls
    for cls in (DatabaseError, DatabaseUnavailable, UniqueViolation, ForeignKeyViolation, ConstraintViolation)
}
_request_decoder = msgspec.msgpack.Decoder(RouteRequest)
_reply_decoder = msgspec.msgpack.Decoder(RouteReply)
_encoder = msgspec.msgpack.Encoder()


# -- operations ---------------------------------------------------------------------------------------------
@dataclass
class _Op:
    name: str
    fn: Callable[..., Awaitable[Any]]  # the undecorated function
    _types: tuple[type[msgspec.Struct], Any] | None = None

    def types(self) -> tuple[type[msgspec.Struct], Any]:
        """(arguments struct, result type), built on first use (the module is fully imported by then)."""
        if self._types is None:
            namespace = self.fn.__globals__
            fields: list[Any] = []
            for param in inspect.signature(self.fn).parameters.values():
                if param.name in _SKIPPED:
                    continue
                hint = _resolve(param.annotation, namespace)
                fields.append((param.name, hint) if param.default is inspect.Parameter.empty
                              else (param.name, hint, param.default))
            args = msgspec.defstruct(self.name.replace(".", "_") + "_args", fields, kw_only=True)
            result = _resolve(inspect.signature(self.fn).return_annotation, namespace)
            self._types = (args, None if result is None or result is type(None) else result)
        return self._types


def _resolve(annotation: Any, namespace: dict[str, Any]) -> Any:
    if annotation is inspect.Parameter.empty:
        return Any
    if isinstance(annotation, str):
        return eval(annotation, namespace)  # our own annotations (from __future__), resolved once
    return annotation


_OPS: dict[str, _Op] = {}


def routed(fn: F) -> F:
    """Run ``fn(state, account_id, device_id, ...)`` locally; on :class:`OwnedElsewhere` run it on the owner.

    ``fn`` must raise ``OwnedElsewhere`` before it changes anything (the pool checks ownership first), take
    its arguments by name (``state``, ``account_id``, ``device_id`` + msgspec-encodable ones) and return a
    msgspec-encodable value (or ``None``).
    """
    op = _Op(f"{fn.__module__}.{fn.__qualname__}", fn)
    _OPS[op.name] = op
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except OwnedElsewhere as exc:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            router = router_of(bound.arguments["state"])
            if router is None:
                raise
            if _EXECUTING.get():
                await router.not_routed(exc, bound.arguments["device_id"])
            return await router.call(op, bound.arguments, exc)

    return wrapper  # type: ignore[return-value]


def router_of(state: Any) -> DeviceRouter | None:
    return getattr(getattr(state, "whatsapp", None), "remote", None)


# -- the router ---------------------------------------------------------------------------------------------
class _Pending:
    __slots__ = ("declines", "expected", "future")

    def __init__(self, future: asyncio.Future[RouteReply | None]) -> None:
        self.future = future
        self.expected = 0  # receivers, once PUBLISH answered
        self.declines = 0

    def reply(self, reply: RouteReply) -> None:
        if self.future.done():
            return
        if reply.status != 0:
            self.future.set_result(reply)
            return
        self.declines += 1
        self.settle()

    def settle(self) -> None:
        if self.expected and self.declines >= self.expected and not self.future.done():
            self.future.set_result(None)  # nobody runs it after all


def _timeout_from_env() -> float:
    raw = os.environ.get("WHATSAPP_REMOTE_TIMEOUT", "").strip()
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        log.warning("WHATSAPP_REMOTE_TIMEOUT=%r is not a number; using %s s", raw, DEFAULT_TIMEOUT)
        value = DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


class DeviceRouter:
    """One per process (``DevicePool.remote``); started by ``AppState.start`` with the app state."""

    def __init__(self, pool: DevicePool, timeout: float | None = None) -> None:
        self.pool = pool
        self.instance_id = uuid.uuid4().hex
        self.timeout = timeout if timeout is not None else _timeout_from_env()
        self._state: Any = None
        self._redis: RedisHandle | None = None
        self._prefix = "clarin"
        self._task: asyncio.Task[None] | None = None
        self._changed: asyncio.Event | None = None
        self._ready = False
        self._pending: dict[str, _Pending] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._running: set[asyncio.Task[Any]] = set()
        self._warned = False

    # -- lifecycle -------------------------------------------------------------------------------------------
    async def start(self, state: Any) -> None:
        self._state = state
        self._redis = state.redis
        self._prefix = state.settings.redis_prefix
        self._changed = asyncio.Event()
        if self._redis is not None and self._redis.configured:
            self._task = asyncio.create_task(self._run(), name="whatsapp-device-router")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._ready = False
        self._fail_pending()
        if self._running:  # calls run for other processes: let them finish while the devices still run
            _, late = await asyncio.wait(set(self._running), timeout=SHUTDOWN_GRACE)
            for task in late:
                task.cancel()

    def ownership_changed(self) -> None:
        """The set of devices this process runs changed: reconcile the subscriptions now."""
        if self._changed is not None:
            self._changed.set()

    @property
    def available(self) -> bool:
        return self._ready and self._redis is not None and self._redis.up

    @property
    def reply_channel(self) -> str:
        return f"{self._prefix}:wa:reply:{self.instance_id}"

    def device_channel(self, device_id: object) -> str:
        return f"{self._prefix}:wa:dev:{device_id}"

    # -- requester side ----------------------------------------------------------------------------------
    async def call(self, op: _Op, arguments: dict[str, Any], fallback: OwnedElsewhere) -> Any:
        """Run ``op`` on the device's owner with ``arguments`` (as bound by :func:`routed`)."""
        device_id = arguments["device_id"]
        if not self.available:
            self._warn_unavailable()
            ROUTED_CALLS.labels(op.name, "unavailable").inc()
            await self.not_routed(fallback, device_id)
        args_type, result_type = op.types()
        payload = _encoder.encode(args_type(**{name: arguments[name] for name in args_type.__struct_fields__}))
        request = RouteRequest(
            id=uuid.uuid4().hex, reply_to=self.reply_channel, op=op.name,
            account_id=str(arguments["account_id"]), device_id=str(arguments["device_id"]), payload=payload,
        )
        pending = _Pending(asyncio.get_running_loop().create_future())
        self._pending[request.id] = pending
        try:
            data = _encoder.encode(request)
            channel = self.device_channel(request.device_id)
            assert self._redis is not None
            receivers = await self._redis.guard(lambda r: r.publish(channel, data), None)
            if not receivers:  # None: Redis failed; 0: the owner is not listening (yet), or there is none
                ROUTED_CALLS.labels(op.name, "no_owner" if receivers == 0 else "unavailable").inc()
                await self.not_routed(fallback, device_id)
            pending.expected = int(receivers)
            pending.settle()
            try:
                reply = await self._answer(pending, uuid.UUID(str(device_id)))
            except _OwnerGone:
                # 503, not 504: a retry is what the client should do. With an Idempotency-Key it can never send
                # twice: the key stays "in progress" if the dead owner had linked a message (clarin.messaging.
                # idempotency), and is released otherwise; a take-over resumes the device within ~2 s.
                log.warning("routed %s on device %s: its owner died before answering", op.name, request.device_id)
                ROUTED_CALLS.labels(op.name, "owner_gone").inc()
                raise HTTPError(503, OWNER_GONE, headers=[("retry-after", "1")]) from None
            except TimeoutError:
                log.warning("routed %s on device %s: no answer (owner gone, or none in %.0f s)", op.name,
                            request.device_id, self.timeout)
                ROUTED_CALLS.labels(op.name, "timeout").inc()
                raise HTTPError(504, TIMED_OUT) from None
        finally:
            self._pending.pop(request.id, None)
        if reply is None:
            ROUTED_CALLS.labels(op.name, "declined").inc()
            await self.not_routed(fallback, device_id)
        if reply.status == 200:
            ROUTED_CALLS.labels(op.name, "ok").inc()
            return None if result_type is None else msgspec.msgpack.decode(reply.body, type=result_type)
        ROUTED_CALLS.labels(op.name, "error").inc()
        if reply.db_error:
            cls = _DB_ERRORS.get(reply.db_error, DatabaseError)
            if cls in (UniqueViolation, ForeignKeyViolation):
                raise cls(reply.detail or "", reply.constraint)  # type: ignore[call-arg]
            raise cls(reply.detail or "")
        if reply.budget_kind in KINDS:
            raise OverBudget(reply.retry_after, reply.budget_kind, reply.budget_window)  # type: ignore[arg-type]
        raise HTTPError(reply.status, reply.error, headers=[(k, v) for k, v in reply.headers], detail=reply.detail)

    async def _answer(self, pending: _Pending, device_id: uuid.UUID) -> RouteReply | None:
        """The owner's reply, or TimeoutError after ``self.timeout`` — or sooner when the owner is gone: a process
        killed as the request was published may still have been counted as a receiver (Redis had not yet seen
        its connection close), and nobody would answer. Every ``OWNER_CHECK`` s without a reply, the device's
        lease says whether another process still holds it; if none does, the call ends at once with ``_OwnerGone``
        (503 + Retry-After) instead of holding the client for the full timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError
            try:
                async with asyncio.timeout(min(OWNER_CHECK, left)):
                    return await asyncio.shield(pending.future)
            except TimeoutError:
                if loop.time() >= deadline:
                    raise
            try:
                owner_alive = await self.pool.leased_elsewhere(device_id)
            except Exception as exc:  # the database cannot say: keep waiting for the reply
                log.debug("routed call on device %s: lease check failed: %s", device_id, exc)
                continue
            if not owner_alive and not pending.future.done():
                raise _OwnerGone

    async def not_routed(self, exc: OwnedElsewhere, device_id: uuid.UUID) -> NoReturn:
        """The call stays unanswered by an owner: the 503; when no process holds the lease, ``exc.if_nobody``
        (409) — or 503 ``device is reconnecting`` when a take-over will resume it (DevicePool.not_running)."""
        if exc.if_nobody is not None and exc.account_id is not None:
            raise await self.pool.not_running(device_id, exc.account_id, exc.if_nobody)
        if exc.if_nobody is not None and not await self.pool.leased_elsewhere(device_id):
            raise exc.if_nobody
        raise OwnedElsewhere()

    def _warn_unavailable(self) -> None:
        if self._warned:
            return
        self._warned = True
        if self._redis is None or not self._redis.configured:
            log.warning("REDIS_URL is not set: calls for a device another process runs answer 503 (not routed)")
        else:
            log.warning("Redis is unavailable: calls for a device another process runs answer 503 until it is back")

    def _fail_pending(self) -> None:
        for pending in list(self._pending.values()):
            if not pending.future.done():
                pending.future.set_exception(HTTPError(504, TIMED_OUT))
        self._pending.clear()

    # -- subscription ------------------------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._redis is not None
        failing = False  # log a lost subscription once, not on every retry of an outage
        while True:
            if not self._redis.up:
                await asyncio.sleep(0.5)
                continue
            pubsub = self._redis.pubsub()
            channels: set[str] = set()
            tasks: list[asyncio.Task[None]] = []
            try:
                await pubsub.subscribe(self.reply_channel)
                tasks = [asyncio.create_task(self._listen(pubsub)), asyncio.create_task(self._sync(pubsub, channels))]
                self._ready = True
                if self._warned or failing:
                    log.info("device calls are routed to their owner again")
                self._warned = failing = False
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # raises what ended it
                raise RuntimeError("subscription ended")
            except asyncio.CancelledError:
                raise
            except CONNECTION_ERRORS as exc:
                self._redis.report_failure(exc)  # logged once per outage; the probe brings Redis back
                failing = True
            except Exception as exc:
                if not failing:
                    log.warning("device routing subscription lost (%s); calls for devices other processes run "
                                "answer 503 until it is back", exc)
                failing = self._warned = True
            finally:
                self._ready = False
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self._fail_pending()  # their replies would arrive on the connection that just went away
                try:
                    await pubsub.aclose()
                except Exception:
                    pass
            await asyncio.sleep(0.5)

    async def _sync(self, pubsub: Any, channels: set[str]) -> None:
        """Keep the device subscriptions equal to the devices this process runs."""
        assert self._changed is not None
        while True:
            self._changed.clear()
            wanted = {self.device_channel(device_id) for device_id in self.pool.owned_ids()}
            added, dropped = wanted - channels, channels - wanted
            if added:
                await pubsub.subscribe(*added)
                channels |= added
            if dropped:
                await pubsub.unsubscribe(*dropped)
                channels -= dropped
            try:
                async with asyncio.timeout(RESYNC_INTERVAL):
                    await self._changed.wait()
            except TimeoutError:
                pass

    async def _listen(self, pubsub: Any) -> None:
        reply_channel = self.reply_channel.encode()
        async for message in pubsub.listen():
            if message.get("type") != "message":
                continue
            channel = message["channel"]
            channel = channel if isinstance(channel, bytes) else str(channel).encode()
            try:
                if channel == reply_channel:
                    self._on_reply(_reply_decoder.decode(message["data"]))
                else:
                    self._on_request(_request_decoder.decode(message["data"]))
            except msgspec.DecodeError as exc:
                log.warning("ignoring a malformed routed message on %s: %s", channel.decode(errors="replace"), exc)

    def _on_reply(self, reply: RouteReply) -> None:
        pending = self._pending.get(reply.id)
        if pending is not None:  # otherwise the caller gave up already: dropped
            pending.reply(reply)

    # -- owner side ----------------------------------------------------------------------------------------
    def _on_request(self, request: RouteRequest) -> None:
        if request.id in self._seen:
            return  # never run a request twice
        self._seen[request.id] = None
        if len(self._seen) > SEEN_MAX:
            self._seen.popitem(last=False)
        try:
            device_id = uuid.UUID(request.device_id)
        except ValueError:
            return
        op = _OPS.get(request.op)
        if op is None or not self.pool.owns(device_id):
            # not ours (any more), or an operation this version does not know: the requester answers 503
            self._spawn(self._reply(request.reply_to, RouteReply(id=request.id, status=0)))
            return
        self._spawn(self._execute(op, request, device_id))

    async def _execute(self, op: _Op, request: RouteRequest, device_id: uuid.UUID) -> None:
        ROUTED_EXECUTIONS.labels(op.name).inc()
        _EXECUTING.set(True)  # this task's own context only
        try:
            args_type, _ = op.types()
            args = msgspec.msgpack.decode(request.payload, type=args_type)
            kwargs = {name: getattr(args, name) for name in args_type.__struct_fields__}
            result = await op.fn(self._state, account_id=uuid.UUID(request.account_id), device_id=device_id, **kwargs)
            reply = RouteReply(id=request.id, status=200, body=_encoder.encode(result))
        except OverBudget as exc:
            reply = RouteReply(id=request.id, status=exc.status, error=exc.message, headers=list(exc.headers),
                               budget_kind=exc.kind, retry_after=exc.retry_after, budget_window=exc.window)
        except HTTPError as exc:
            reply = RouteReply(id=request.id, status=exc.status, error=exc.message, detail=exc.detail,
                               headers=list(exc.headers))
        except DatabaseError as exc:
            reply = RouteReply(id=request.id, status=500, error="database error", detail=exc.detail,
                               db_error=type(exc).__name__, constraint=getattr(exc, "constraint", ""))
        except Exception:
            log.exception("routed %s on device %s failed", op.name, device_id)
            reply = RouteReply(id=request.id, status=500, error="Internal server error")
        await self._reply(request.reply_to, reply)

    async def _reply(self, channel: str, reply: RouteReply) -> None:
        assert self._redis is not None
        data = _encoder.encode(reply)
        if await self._redis.guard(lambda r: r.publish(channel, data), None) is None:
            log.warning("reply to routed call %s lost: Redis unavailable", reply.id)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
