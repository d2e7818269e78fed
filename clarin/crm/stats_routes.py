"""R114 ``GET /api/stats``: dashboard counters for the caller's account.

Fix of the original's quirk: ``connected_devices`` counts this account's devices with status
``connected`` (not every tenant's), and ``ws_clients`` counts this account's WebSocket connections
held by this worker process (not all clients of all tenants).

The counters come from the account's page cache (retired by any change to the account); only
``ws_clients`` is read live, as it is per process.
"""

from __future__ import annotations

from typing import Any

import msgspec

from clarin.db.queries import query
from clarin.http.json import encode
from clarin.http.request import Request
from clarin.http.routes import RouteGroup
from clarin.wire.stats import Stats, StatsResponse

routes = RouteGroup(tags=("stats",))

Q_COUNTS = query("stats_account_counts")
COUNTS_KEY = "stats:counts"


@routes.get("/api/stats", response=StatsResponse)
async def get_stats(req: Request) -> StatsResponse:
    state = req.app
    account_id = req.account_id

    async def count() -> bytes:
        return encode(await state.db.fetch_row(Q_COUNTS, [account_id]) or {})

    entry = await state.pages.fetch(account_id, COUNTS_KEY, count)
    row: dict[str, Any] = msgspec.json.decode(entry.body if entry is not None else await count())
    return StatsResponse(
        stats=Stats(
            connected_devices=int(row.get("connected_devices") or 0),
            ws_clients=state.hub.account_connection_count(str(req.account_id)),
            leads=int(row.get("leads") or 0),
            contacts=int(row.get("contacts") or 0),
        )
    )
