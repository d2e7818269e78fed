"""What ``GET /api/devices/:id`` adds about the number (docs/NUMBER_HEALTH.md): health with its evidence, the
send budget (limits in force, used, remaining, warm-up) and the campaigns the guard paused. Two statements, both
by primary key / the device's ledger rows of the last day."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from clarin.db.queries import query
from clarin.whatsapp.budget import KINDS, Limits
from clarin.whatsapp.health import OK, PAUSED
from clarin.wire.devices import (
    BudgetKinds,
    BudgetWindows,
    CampaignPause,
    Device,
    DeviceHealth,
    SendBudget,
    WarmUp,
)

if TYPE_CHECKING:
    from clarin.state import AppState

Q_VIEW = query("number_health_view")
Q_PAUSES = query("number_health_pauses")
MAX_PAUSES = 20
LOGGED_OUT_REASON = "device logged out (unlinked from the phone, or by WhatsApp): pair it again"


async def with_health(state: AppState, account_id: uuid.UUID, device: Device) -> Device:
    device_id = uuid.UUID(device.id)
    row = await state.db.fetch_row(Q_VIEW, [account_id, device_id])
    if row is None:
        return device
    pauses = await state.db.fetch(Q_PAUSES, [account_id, device_id, MAX_PAUSES])
    return msgspec.structs.replace(
        device, health=health_of(row), send_budget=budget_of(row, state.settings.send_budget_defaults),
        pauses=[CampaignPause(campaign_id=str(p["id"]), name=p["name"], status=p["status"], reason=p["pause_reason"],
                              paused_at=p["updated_at"]) for p in pauses],
    )


def health_of(row: dict[str, Any]) -> DeviceHealth:
    if row["status"] == "logged_out" and row["health"] == OK:
        # The existing rule fails its campaigns (docs/CAMPAIGNS.md); shown here as a paused number.
        return DeviceHealth(state=PAUSED, reason=LOGGED_OUT_REASON, evidence={"signal": "logged_out"})
    evidence = row["health_evidence"] if isinstance(row["health_evidence"], dict) else None
    return DeviceHealth(state=row["health"], reason=row["health_reason"], since=row["health_changed_at"],
                        evidence=evidence)


def budget_of(row: dict[str, Any], defaults: bool) -> SendBudget:
    configured = row["send_budget"] if isinstance(row["send_budget"], dict) else {}
    limits = Limits.resolve(configured, defaults)
    now = datetime.now(UTC)
    caps = {kind: limits.caps(kind, row["paired_at"], now) for kind in KINDS}
    used = {kind: tuple(int(row[f"{kind}_{w}"]) for w in ("minute", "hour", "day")) for kind in KINDS}

    def kinds(values: dict[str, tuple[int | None, ...]]) -> BudgetKinds:
        return BudgetKinds(**{kind: BudgetWindows(minute=v[0], hour=v[1], day=v[2]) for kind, v in values.items()})

    remaining = {
        kind: tuple(None if cap is None else max(0, cap - count)
                    for cap, count in zip(caps[kind], used[kind], strict=True))
        for kind in KINDS
    }
    step = limits.warmup_day(row["paired_at"], now)
    return SendBudget(
        defaults=defaults, configured=configured, limits=kinds(caps), used=kinds(used), remaining=kinds(remaining),
        warmup=WarmUp(paired_at=row["paired_at"], day=step, schedule=list(limits.warmup),
                      cold_per_day_cap=None if step is None else limits.warmup[step]),
    )
