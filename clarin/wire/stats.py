from __future__ import annotations

import msgspec


class Stats(msgspec.Struct):
    connected_devices: int
    ws_clients: int
    leads: int
    contacts: int


class StatsResponse(msgspec.Struct):
    stats: Stats
    success: bool = True
