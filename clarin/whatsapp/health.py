"""Number health: danger signals pause every campaign of the number (docs/NUMBER_HEALTH.md).

Signals, judged on the process that runs the device (every send of a device executes there, routed sends
included), after a send WhatsApp refused:

- WhatsApp's own throttling answers: ``463`` (reach-out timelock), ``429`` / ``rate-overlimit``, ``not-allowed``
  / ``403`` → health ``throttled``; an answer saying the account is banned (``banned``, ``401``) → ``banned``;
- the number's failure rate: at least ``HEALTH_MIN_SENDS`` sends in the last ``HEALTH_WINDOW`` s (from the last
  health change, a resume or the previous pause, if later) of which ``HEALTH_FAILURE_RATE`` or more failed →
  ``paused``.

A signal, in ONE transaction: the device's ``health``, reason and evidence (JSON) are written, every ``running``
or ``scheduled`` campaign of the number becomes ``paused`` with ``pause_reason``; after the commit the account's
dashboards get ``campaign_status`` per campaign and ``device_health`` (WebSocket and webhooks, same outbox
transaction). Resuming is a person's decision: ``POST /start`` on a campaign; when the worker then serves the
number it sets ``health`` back to ``ok`` (:func:`clear_if_resumed`), keeping the old evidence under
``resumed_after``. A logged-out number's running and scheduled campaigns are paused by the campaign supervisor (with a reason,
campaigns_pause_logged_out) and the number is shown as ``paused`` with signal ``logged_out`` by
:func:`clarin.whatsapp.health_view`.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.observability.metrics import CAMPAIGN_AUTO_PAUSES, HEALTH_CHANGES
from clarin.webhooks.recording import recording
from clarin.whatsapp.budget import Reservation
from clarin.wire.campaigns import CampaignStatusEvent
from clarin.wire.devices import DeviceHealthEvent

if TYPE_CHECKING:
    from clarin.state import AppState

log = logging.getLogger("clarin.whatsapp.health")

Q_OUTCOME = query("budget_outcome")
Q_FAILURES = query("health_failure_window")
Q_SET = query("health_set")
Q_PAUSE = query("health_pause_campaigns")
Q_CLEAR = query("health_clear_if_resumed")

OK, THROTTLED, PAUSED, BANNED = "ok", "throttled", "paused", "banned"
STATES = (OK, THROTTLED, PAUSED, BANNED)

# (pattern on the driver's error text, health state, signal). whatsmeow reports server refusals as
# "server returned error <code>" (463 reach-out timelock, 429 rate-overlimit, 403/not-allowed, 401).
_SIGNALS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"\b463\b|reach.?out.?time.?lock|timelock", re.I), THROTTLED, "reach_out_timelock"),
    (re.compile(r"\b429\b|rate.?over.?limit|rate.?limit", re.I), THROTTLED, "rate_limit"),
    (re.compile(r"\bbanned\b|\b401\b|account.{0,20}(?:suspended|blocked)", re.I), BANNED, "banned"),
    (re.compile(r"not.?allowed|\b403\b|forbidden", re.I), THROTTLED, "not_allowed"),
)
REASONS = {
    "reach_out_timelock": "WhatsApp refused a send with a reach-out timelock (463): the number may not start new "
                          "conversations for a while",
    "rate_limit": "WhatsApp rate-limited the number (429 / rate-overlimit)",
    "not_allowed": "WhatsApp refused a send as not allowed (403 / not-allowed)",
    "banned": "WhatsApp reports the account as banned",
    "failure_rate": "too many failed sends",
}


class DangerSignal(HTTPError):
    """A send WhatsApp refused with a danger signal: the number's campaigns were paused. Still the send's own
    ``502 failed to send message: …`` for an HTTP client; the campaign worker puts the recipient back (nothing
    was delivered) instead of failing it."""

    def __init__(self, exc: HTTPError, health: str, signal: str) -> None:
        super().__init__(exc.status, exc.message, headers=list(exc.headers), detail=exc.detail)
        self.health = health
        self.signal = signal


@dataclass(frozen=True, slots=True)
class Trip:
    health: str
    signal: str
    reason: str
    paused: list[str]


def classify(error: str) -> tuple[str, str] | None:
    """(health state, signal) for a driver error that is one of WhatsApp's throttling/ban answers, else None."""
    for pattern, state, signal in _SIGNALS:
        if pattern.search(error):
            return state, signal
    return None


async def after_failure(state: AppState, account_id: uuid.UUID, device_id: uuid.UUID,
                        reservation: Reservation | None, error: str) -> Trip | None:
    """Record a failed send in the number's ledger and trip the guard when it is a danger signal or the failure
    rate passed the threshold. Never raises: a send's own error must reach its caller whatever happens here."""
    try:
        if reservation is not None:
            await state.db.execute(Q_OUTCOME, [reservation.id, device_id, account_id, "failed", error[:500]])
        found = classify(error)
        if found is not None:
            health, signal = found
            return await trip(state, account_id, device_id, health, signal, {"error": error[:500]})
        s = state.settings
        row = await state.db.fetch_row(Q_FAILURES, [device_id, account_id, float(s.health_window)])
        finished, failed = (int(row["finished"]), int(row["failed"])) if row else (0, 0)
        if finished >= s.health_min_sends and failed >= s.health_failure_rate * finished:
            return await trip(state, account_id, device_id, PAUSED, "failure_rate", {
                "error": error[:500], "failed": failed, "sends": finished, "window_seconds": s.health_window,
                "threshold": s.health_failure_rate,
            })
    except Exception:
        log.exception("number health check of device %s failed", device_id)
    return None


async def trip(state: AppState, account_id: uuid.UUID, device_id: uuid.UUID, health: str, signal: str,
               evidence: dict[str, Any]) -> Trip | None:
    """Set the device's health and pause its campaigns, in one transaction; events after the commit."""
    reason = REASONS.get(signal, signal)
    evidence = {"signal": signal, "at": datetime.now(UTC).isoformat(), **evidence}
    pause_reason = f"paused by number health ({health}): {reason}"
    async with recording(state, account_id, quiet=True) as rec, rec.transaction() as tx:
        row = await tx.fetch_row(Q_SET, [device_id, account_id, health, reason,
                                         msgspec.json.encode(evidence).decode()])
        if row is None:
            return None
        paused = await tx.fetch(Q_PAUSE, [device_id, account_id, pause_reason])
        for campaign in paused:
            rec.emit("campaign_status", CampaignStatusEvent(campaign_id=str(campaign["id"]), status=campaign["status"]))
        rec.emit("device_health", DeviceHealthEvent(
            device_id=str(device_id), health=health, reason=reason, signal=signal,
            paused_campaigns=[str(c["id"]) for c in paused],
        ))
    HEALTH_CHANGES.labels(health, signal).inc()
    if paused:
        CAMPAIGN_AUTO_PAUSES.labels(signal).inc(len(paused))
    log.warning("device %s health %s (%s): %d campaign(s) paused", device_id, health, signal, len(paused))
    return Trip(health, signal, reason, [str(c["id"]) for c in paused])


async def clear_if_resumed(state: AppState, device_id: uuid.UUID) -> bool:
    """The worker, before serving a device: back to ``ok`` when a person started one of its campaigns after the
    pause (the only way a campaign of a paused number runs again)."""
    row = await state.db.fetch_row(Q_CLEAR, [device_id])
    if row is None:
        return False
    account_id = uuid.UUID(str(row["account_id"]))
    async with recording(state, account_id, quiet=True) as rec:
        rec.emit("device_health", DeviceHealthEvent(device_id=str(device_id), health=OK, reason="resumed",
                                                    signal="resumed", paused_campaigns=[]))
    HEALTH_CHANGES.labels(OK, "resumed").inc()
    log.warning("device %s health ok again: a campaign was started after the pause", device_id)
    return True
