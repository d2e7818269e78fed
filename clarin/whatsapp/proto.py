"""The one import point for neonize's protobuf classes (events, ``JID``, WhatsApp E2E messages).

Both drivers and the pool speak neonize's own protobuf types, so the simulated driver feeds the very
objects the real one does. Importing any ``neonize`` module runs ``neonize/__init__`` (it loads the
Go library and calls ``logging.basicConfig(level=INFO)`` at import time); this module undoes that
root-logger change so Clarin's ``LOG_LEVEL`` still applies. Import neonize through here only.
"""

from __future__ import annotations

import logging


def _import_neonize() -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    import neonize  # noqa: F401  (side effects: loads the library, configures logging)

    root.handlers[:] = handlers
    root.setLevel(level)


_import_neonize()

from neonize.events import (  # noqa: E402
    ClientOutdatedEv,
    ConnectedEv,
    ConnectFailureEv,
    DisconnectedEv,
    HistorySyncEv,
    KeepAliveRestoredEv,
    KeepAliveTimeoutEv,
    LoggedOutEv,
    MessageEv,
    PairStatusEv,
    PresenceEv,
    QREv,
    ReceiptEv,
    StreamReplacedEv,
    TemporaryBanEv,
    UndecryptableMessageEv,
)
from neonize.proto.Neonize_pb2 import (  # noqa: E402
    JID,
    MessageInfo,
    MessageSource,
    SendResponse,
)
from neonize.proto.waCommon.WACommon_pb2 import MessageKey  # noqa: E402
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as e2e  # noqa: E402

WAMessage = e2e.Message  # the WhatsApp message payload (``MessageEv.Message``)

__all__ = [
    "JID",
    "ClientOutdatedEv",
    "ConnectFailureEv",
    "ConnectedEv",
    "DisconnectedEv",
    "HistorySyncEv",
    "KeepAliveRestoredEv",
    "KeepAliveTimeoutEv",
    "LoggedOutEv",
    "MessageEv",
    "MessageInfo",
    "MessageKey",
    "MessageSource",
    "PairStatusEv",
    "PresenceEv",
    "QREv",
    "ReceiptEv",
    "SendResponse",
    "StreamReplacedEv",
    "TemporaryBanEv",
    "UndecryptableMessageEv",
    "WAMessage",
    "e2e",
]
