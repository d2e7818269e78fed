"""Start-up check of the installed neonize for the production WhatsApp driver (docs/WHATSAPP.md).

The neonize driver uses neonize 0.5 APIs (``NewAClient(..., new_device=)``) and some of its internals
(``NewAClient._stop_finalizer`` / ``_release_ffi``, ``_binder.gocode``, ``consume_bytes_struct``): another
neonize may import fine and still break at the first connect, send or poll vote. ``clarin serve`` with
``WHATSAPP_DRIVER=neonize`` runs :func:`check_neonize` before anything else and refuses to start with one
error line naming the version found and the range expected; building a ``NeonizeDriver`` runs it too
(:func:`require_neonize`), so a worker started some other way fails loudly instead of half-working.

This module is outside :mod:`clarin.whatsapp` on purpose: importing that package imports neonize, and
"neonize is not installed / does not load" must be reported, not raised as an ImportError elsewhere.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import re
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

MIN_VERSION = (0, 5, 2)
BELOW_VERSION = (0, 6)
SUPPORTED = "neonize>=0.5.2,<0.6"

# What the driver touches, per module (attribute paths). Checked by name so a renamed or removed one is
# reported before the first device connects, not as an AttributeError inside a running session.
REQUIRED: dict[str, tuple[str, ...]] = {
    "neonize._binder": (
        "gocode", "gocode.DecryptPollVote", "gocode.Stop", "consume_bytes_struct",
    ),
    "neonize.aioze.client": (
        "ChatSettingsStore", "ContactStore", "NewAClient", "NewAClient._release_ffi",
        *(f"NewAClient.{m}" for m in (
            "connect", "disconnect", "stop", "logout", "is_connected", "get_me", "send_message", "upload",
            "build_poll_vote_creation", "get_pn_from_lid", "download_any", "get_profile_picture",
            "send_chat_presence",
        )),
    ),
    "neonize.aioze.events": ("Event.execute", "Event.qr", "Event.__call__", "event_global_loop"),
    "neonize.events": (
        "EVENT_TO_INT", "ClientOutdatedEv", "ConnectedEv", "ConnectFailureEv", "DisconnectedEv", "HistorySyncEv",
        "LoggedOutEv", "MessageEv", "PairStatusEv", "PresenceEv", "QREv", "ReceiptEv", "StreamReplacedEv",
        "TemporaryBanEv", "UndecryptableMessageEv",
    ),
    "neonize.proto.Neonize_pb2": ("GetProfilePictureParams", "JID", "ReturnFunctionWithError"),
    "neonize.utils.enum": (
        "MediaType.MediaImage", "MediaType.MediaVideo", "MediaType.MediaAudio", "MediaType.MediaDocument",
        "VoteType.SINGLE", "VoteType.MULTIPLE", "ChatPresence.CHAT_PRESENCE_COMPOSING",
        "ChatPresence.CHAT_PRESENCE_PAUSED", "ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT",
    ),
}
CLIENT_ARGS = ("name", "jid", "props", "uuid", "new_device")
_MISSING = object()
CLIENT_ATTRS = ("uuid", "contact", "chat_settings", "event", "connect_task", "_stop_finalizer")


class NeonizeUnsupported(RuntimeError):
    """The installed neonize cannot run Clarin's driver; the text says what was found and what is expected."""


def parse_version(text: str) -> tuple[int, ...] | None:
    """The release numbers of a final PEP 440 version (``0.5.2``, ``0.5.2.post1``); None for a pre-release,
    a dev build or anything unparsable — those are never "in range", as pip's ``<0.6`` would not pick them."""
    match = re.fullmatch(r"v?(\d+(?:\.\d+)*)(?:\.?post\d*)?(?:\+[\w.]+)?", text.strip())
    return tuple(int(part) for part in match[1].split(".")) if match else None


def version_supported(text: str) -> bool:
    release = parse_version(text)
    return release is not None and MIN_VERSION <= release < BELOW_VERSION


def missing_features(modules: Mapping[str, Any]) -> list[str]:
    """``module:attribute`` of everything in :data:`REQUIRED` the given modules lack, plus what a client object
    must have (constructor arguments, instance attributes). Builds one client: that opens nothing."""
    missing: list[str] = []
    for name, paths in REQUIRED.items():
        module = modules.get(name)
        for path in paths:
            if _resolve(module, path) is _MISSING:
                missing.append(f"{name}:{path}")
    client_class = _resolve(modules.get("neonize.aioze.client"), "NewAClient")
    if client_class is _MISSING:
        return missing
    try:
        params = inspect.signature(client_class).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    absent = [arg for arg in CLIENT_ARGS if arg not in params]
    missing += [f"NewAClient({arg}=...)" for arg in absent]
    if absent:
        return missing
    try:
        client = client_class("clarin-startup-check", uuid="clarin-startup-check", new_device=True)
    except Exception as exc:
        return [*missing, f"NewAClient(...) failed: {exc}"]
    missing += [f"NewAClient().{attr}" for attr in CLIENT_ATTRS if not hasattr(client, attr)]
    finalizer = getattr(client, "_stop_finalizer", None)
    if finalizer is not None and not callable(getattr(finalizer, "detach", None)):
        missing.append("NewAClient()._stop_finalizer.detach")
    elif finalizer is not None:
        finalizer.detach()  # the probe client never started: nothing to stop on the Go side
    return missing


def check_neonize(
    installed_version: Callable[[str], str] = importlib.metadata.version,
    import_module: Callable[[str], ModuleType] = importlib.import_module,
) -> str:
    """The installed neonize version when it can run the driver, else :class:`NeonizeUnsupported`."""
    hint = f"Clarin's WhatsApp driver needs {SUPPORTED} (pip install '{SUPPORTED}'), or WHATSAPP_DRIVER=simulated"
    try:
        version = installed_version("neonize")
    except importlib.metadata.PackageNotFoundError:
        raise NeonizeUnsupported(f"neonize is not installed; {hint}") from None
    if not version_supported(version):
        raise NeonizeUnsupported(f"neonize {version} is installed; {hint}")
    modules: dict[str, Any] = {}
    try:
        import_module("clarin.whatsapp.proto")  # loads neonize the way the app does (logging kept)
        for name in REQUIRED:
            modules[name] = import_module(name)
    except Exception as exc:
        raise NeonizeUnsupported(f"neonize {version} does not load ({type(exc).__name__}: {exc}); {hint}") from None
    missing = missing_features(modules)
    if missing:
        raise NeonizeUnsupported(f"neonize {version} lacks what the driver uses ({', '.join(missing)}); {hint}")
    return version


_checked: list[str] = []


def require_neonize() -> str:
    """:func:`check_neonize` once per process (raises again until it passes)."""
    if not _checked:
        _checked.append(check_neonize())
    return _checked[0]


def _resolve(root: Any, path: str) -> Any:
    """``root.a.b`` for ``path`` ``"a.b"``, or :data:`_MISSING` when any step is absent (a value of None counts as
    present: ``event_global_loop`` is None until the first connect)."""
    value = root
    for step in path.split("."):
        value = getattr(value, step, _MISSING)
        if value is _MISSING:
            break
    return value
